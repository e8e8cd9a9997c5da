"""A node's current layout as a v1 config, the inverse of loading and selecting.

One entry per GPU (``devices: [i]``, no ``device-filter`` unless asked for), ``mig-devices``
counts, and ``x-migctl.instances`` holding each instance's placement (``placements=True``)
and any compute layout other than the default single full-size compute instance. A GPU
instance with one smaller compute instance is written the way mig-parted writes it, as a
``1c.3g.48gb`` count, which needs no extension. ``extensions=False`` leaves ``x-migctl``
out, so mig-parted can read the file (placements and multi-CI layouts are then lost).

``select(load_text(export_text(gpus)), "current", ...)`` gives back the same targets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from migctl.config.spec import VERSION, normalize_profile, parse_profile


@dataclass(frozen=True)
class CurrentInstance:
    """A GPU instance on the GPU now: its profile name (``3g.48gb``), start slice, and the
    profile names of its compute instances (``None``: not known, taken as the default)."""

    profile: str
    start: int
    compute: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CurrentGpu:
    """One GPU as it is now. ``pci_device_id`` is NVML's 32-bit form (``0x233010DE``)."""

    index: int
    pci_device_id: int
    mig_enabled: bool
    instances: tuple[CurrentInstance, ...] = ()


def _key(inst: CurrentInstance) -> tuple[str, list[str] | None]:
    """The ``mig-devices`` key for ``inst`` and the compute list ``x-migctl`` must add."""
    gi, compute = normalize_profile(inst.profile), inst.compute
    if compute is None or [normalize_profile(c) for c in compute] == [gi]:
        return inst.profile, None  # the default compute instance
    if len(compute) == 1:
        parsed = parse_profile(compute[0])
        if parsed is not None and parsed[0] is not None and normalize_profile(compute[0]).endswith(f".{gi}"):
            # "1c.3g.48gb": 1 says it without the extension ("3c.3g.48gb" is the default one)
            return (inst.profile if parsed[0] == parsed[1] else compute[0]), None
    return inst.profile, list(compute)


def _largest_first(inst: CurrentInstance) -> tuple[int, int, str]:
    parsed = parse_profile(inst.profile)
    return (-parsed[1] if parsed else 0, inst.start, inst.profile)


def _entry(gpu: CurrentGpu, placements: bool, extensions: bool, device_filter: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if device_filter:
        entry["device-filter"] = f"0x{gpu.pci_device_id:08X}"
    entry["devices"] = [gpu.index]
    entry["mig-enabled"] = gpu.mig_enabled
    if not gpu.mig_enabled:
        return entry
    counts: dict[str, int] = {}
    pins: list[dict[str, Any]] = []
    for inst in sorted(gpu.instances, key=_largest_first):
        key, compute = _key(inst)
        counts[key] = counts.get(key, 0) + 1
        pin: dict[str, Any] = {"profile": key}
        if placements:
            pin["placement"] = inst.start
        if compute is not None:
            pin["compute"] = compute
        if len(pin) > 1:
            pins.append(pin)
    entry["mig-devices"] = counts
    if pins and extensions:
        entry["x-migctl"] = {"instances": pins}
    return entry


def export_spec(
    gpus: Sequence[CurrentGpu],
    name: str = "current",
    *,
    placements: bool = True,
    extensions: bool = True,
    device_filter: bool = False,
) -> dict[str, Any]:
    """The layout of ``gpus`` as v1 config data (a config called ``name``)."""
    entries = [_entry(g, placements, extensions, device_filter) for g in sorted(gpus, key=lambda g: g.index)]
    return {"version": VERSION, "mig-configs": {name: entries}}


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of scalars (``devices: [0]``, ``compute: [1c.3g.48gb]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(x, dict | list) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def render(doc: dict[str, Any], fmt: Literal["yaml", "json"] = "yaml") -> str:
    """``doc`` as YAML (mig-parted's default) or JSON."""
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def export_text(
    gpus: Sequence[CurrentGpu],
    name: str = "current",
    *,
    fmt: Literal["yaml", "json"] = "yaml",
    placements: bool = True,
    extensions: bool = True,
    device_filter: bool = False,
) -> str:
    """:func:`export_spec`, rendered."""
    doc = export_spec(gpus, name, placements=placements, extensions=extensions, device_filter=device_filter)
    return render(doc, fmt)
