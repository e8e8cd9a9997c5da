"""A node's current layout as a v1 config, the inverse of loading and selecting.

One entry per GPU (``devices: [i]``, no ``device-filter`` unless asked for). ``mig-devices``
is written as mig-parted's own export writes it: one count per compute-instance profile
(``3g.48gb`` for a GPU instance's full-size compute instance, ``1c.3g.48gb`` for a 1-slice one),
whenever mig-parted reads those counts back as exactly this GPU's instances
(:func:`reads_back`, with the grouping of :mod:`migctl.config.grouping`). When it would not
(a GPU instance without compute instances, or compute instances mig-parted would group
differently, e.g. two 3g instances holding one 1c each), the counts are of GPU instances and
``x-migctl`` gives each one's compute instances. ``x-migctl.instances`` holds each
instance's placement (``placements=True``) and any compute layout other than the default
single full-size compute instance. ``extensions=False`` leaves ``x-migctl`` out and always
writes mig-parted's counts, so mig-parted can read the file (placements are then lost; the
operations layer warns where mig-parted would build something else).

``select(load_text(export_text(gpus)), "current", ...)`` gives back the same targets.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from migctl.config.errors import ConfigError
from migctl.config.select import GpuFacts, resolve
from migctl.config.spec import VERSION, MigConfigEntry, normalize_profile, parse_profile
from migctl.core.geometry import GpuGeometry


@dataclass(frozen=True)
class CurrentInstance:
    """A GPU instance on the GPU now: its profile name (``3g.48gb``), start slice, and the
    profile names of its compute instances (``None``: not known, taken as the default)."""

    profile: str
    start: int
    compute: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CurrentGpu:
    """One GPU as it is now. ``pci_device_id`` is NVML's 32-bit form (``0x233010DE``);
    ``geometry`` (its profiles) lets the export check how mig-parted reads its counts back."""

    index: int
    pci_device_id: int
    mig_enabled: bool
    instances: tuple[CurrentInstance, ...] = ()
    geometry: GpuGeometry | None = None


def _compute_keys(inst: CurrentInstance) -> list[str]:
    """The ``mig-devices`` key of each compute instance of ``inst``, as mig-parted's export
    counts them (``3g.48gb`` for the full-size one, ``1c.3g.48gb``), largest first."""
    compute = (inst.profile,) if inst.compute is None else inst.compute
    return sorted(compute, key=lambda c: (-_slices(c), c))


def _slices(name: str) -> int:
    parsed = parse_profile(name)
    if parsed is None:
        return 0
    return parsed[0] if parsed[0] is not None else parsed[1]


def _is_default(inst: CurrentInstance) -> bool:
    return inst.compute is None or [normalize_profile(c) for c in inst.compute] == [normalize_profile(inst.profile)]


def _key_order(key: str) -> tuple[int, int, str]:
    parsed = parse_profile(key)
    return (-parsed[1] if parsed else 0, -_slices(key), key)


def compute_counts(gpu: CurrentGpu) -> dict[str, int]:
    """``mig-devices`` as mig-parted's export writes it: one count per compute-instance profile
    (a GPU instance without compute instances has none, so it is not there)."""
    counts: dict[str, int] = {}
    for inst in gpu.instances:
        for key in _compute_keys(inst):
            counts[key] = counts.get(key, 0) + 1
    return {k: counts[k] for k in sorted(counts, key=_key_order)}


def _shape(profiles: Iterable[tuple[str, tuple[str, ...]]]) -> Counter[tuple[str, tuple[str, ...]]]:
    return Counter((normalize_profile(p), tuple(sorted(normalize_profile(c) for c in cs))) for p, cs in profiles)


def mig_parted_reading(gpu: CurrentGpu, counts: dict[str, int]) -> list[tuple[str, tuple[str, ...]]] | None:
    """The GPU instances (profile, compute instances) mig-parted builds from ``counts`` on this
    GPU (:mod:`migctl.config.grouping`); ``None`` without the GPU's geometry."""
    if gpu.geometry is None or not counts:
        return None if gpu.geometry is None else []
    entry = MigConfigEntry.model_validate({"devices": "all", "mig-enabled": True, "mig-devices": counts})
    try:
        target = resolve(entry, GpuFacts(gpu.index, gpu.pci_device_id, gpu.geometry))
    except ConfigError:
        return None  # a compute-instance profile the geometry cannot name
    out = []
    for t in target.instances:
        gi = gpu.geometry.by_id(t.profile_id)
        out.append((gi.name, (gi.name,) if t.compute is None else t.compute))
    return out


def reads_back(gpu: CurrentGpu) -> bool:
    """Whether mig-parted reads :func:`compute_counts` back as exactly this GPU's instances."""
    reading = mig_parted_reading(gpu, compute_counts(gpu))
    if reading is None:
        return False
    actual = [(i.profile, (i.profile,) if i.compute is None else i.compute) for i in gpu.instances]
    return _shape(reading) == _shape(actual)


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
    natural = not extensions or reads_back(gpu)
    pins: list[dict[str, Any]] = []
    per_instance: dict[str, int] = {}
    for inst in sorted(gpu.instances, key=_largest_first):
        keys = _compute_keys(inst)
        # The pin names a key this GPU instance holds; written as GPU instances, its profile.
        pin: dict[str, Any] = {"profile": keys[0] if natural and keys else inst.profile}
        per_instance[inst.profile] = per_instance.get(inst.profile, 0) + 1
        if placements:
            pin["placement"] = inst.start
        if not _is_default(inst):
            pin["compute"] = list(inst.compute or ())
        if len(pin) > 1:
            pins.append(pin)
    entry["mig-devices"] = compute_counts(gpu) if natural else {
        k: per_instance[k] for k in sorted(per_instance, key=_key_order)
    }
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
