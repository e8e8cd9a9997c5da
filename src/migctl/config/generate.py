"""``migctl generate-config``: a v1 config built from the profiles the node's GPUs report.

The same configs as ``nvidia-mig-parted generate-config`` (``pkg/mig/builder``):

* ``all-disabled`` (MIG off) and ``all-enabled`` (MIG on, no instances), for every GPU;
* ``all-<profile>`` for every GPU-instance profile, ``+`` written ``.`` in the name
  (``all-1g.10gb.me``), asking for as many instances as the profile allows; GPUs whose
  maximum differs get one entry each;
* ``all-balanced`` per model: two 1-slice, one 2-slice and one 3-slice instance on 7-slice
  GPUs, two 1-slice and one 2-slice on 4-slice GPUs, each the profile without a suffix that
  allows the most instances (``1g.10gb`` rather than ``1g.20gb``).

Entries carry a ``device-filter`` (``0xDDDDVVVV``) only when the node has more than one model.
Pure: the caller passes each GPU's PCI device ID and geometry (read from NVML).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from migctl.config.spec import VERSION, parse_profile
from migctl.core.geometry import GiProfile, GpuGeometry

#: Max slices -> {slices of a profile: how many of it} (mig-parted's balancedFormula).
BALANCED = {7: {1: 2, 2: 1, 3: 1}, 4: {1: 2, 2: 1}}


def _device_id(pci_device_id: int) -> str:
    return f"0x{pci_device_id:08X}"


def _base(p: GiProfile) -> bool:
    parsed = parse_profile(p.name)
    return parsed is not None and parsed[0] is None and parsed[3] == ""


def _balanced(profiles: Sequence[GiProfile]) -> dict[str, int] | None:
    base = [p for p in profiles if _base(p)]
    if not base:
        return None
    formula = BALANCED.get(max(p.slice_count for p in base))
    if formula is None:
        return None
    chosen: dict[int, GiProfile] = {}
    for p in base:  # NVML's order; a later profile wins only with strictly more instances
        if p.slice_count in formula and (p.slice_count not in chosen
                                         or p.instance_count > chosen[p.slice_count].instance_count):
            chosen[p.slice_count] = p
    if set(chosen) != set(formula):
        return None
    return {chosen[g].name: formula[g] for g in sorted(formula)}


def generate_spec(gpus: Sequence[tuple[int, GpuGeometry]]) -> dict[str, Any]:
    """The config data for a node whose MIG-capable GPUs are ``(pci_device_id, geometry)``."""
    models: dict[str, GpuGeometry] = {}
    for pci, geometry in gpus:
        models.setdefault(_device_id(pci), geometry)
    several = len(models) > 1
    configs: dict[str, list[dict[str, Any]]] = {
        "all-disabled": [{"devices": "all", "mig-enabled": False}],
        "all-enabled": [{"devices": "all", "mig-enabled": True, "mig-devices": {}}],
    }
    balanced = []
    for device_id in sorted(models):
        counts = _balanced(models[device_id].profiles)
        if counts is not None:
            entry: dict[str, Any] = {"device-filter": [device_id]} if several else {}
            balanced.append({**entry, "devices": "all", "mig-enabled": True, "mig-devices": counts})
    if balanced:
        configs["all-balanced"] = balanced
    by_profile: dict[str, dict[int, list[str]]] = {}
    for device_id, geometry in models.items():
        for p in geometry.profiles:
            parsed = parse_profile(p.name)
            if parsed is None or parsed[0] is not None:
                continue
            by_profile.setdefault(p.name, {}).setdefault(p.instance_count, []).append(device_id)
    for name in sorted(by_profile):
        entries = []
        for count in sorted(by_profile[name]):
            entry = {"device-filter": sorted(by_profile[name][count])} if several else {}
            entries.append({**entry, "devices": "all", "mig-enabled": True, "mig-devices": {name: count}})
        configs[f"all-{name.replace('+', '.')}"] = entries
    return {"version": VERSION, "mig-configs": dict(sorted(configs.items()))}
