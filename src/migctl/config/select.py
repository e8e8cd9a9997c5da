"""Which entry of a named config applies to each GPU, resolved to a :class:`Target`.

mig-parted's rules (``assert.WalkSelectedMigConfigForEachGPU``, ``apply.ApplyMigConfig``,
``api/spec/v1/helpers.go``, ``pkg/types/device.go``):

* entries are checked in file order; an entry covers a GPU when its ``device-filter`` (if
  any) lists the GPU's PCI device ID (and, for a ``0xDDDDVVVV:0xSSSSVVVV`` filter, its PCI
  subsystem ID) and ``devices`` is ``all`` or contains its index; a filter that is not a PCI ID
  (a model name, ``0x233010DE:0x16C010DE:extra``) matches no GPU (:func:`filter_warnings`
  says so);
* when **several entries** cover a GPU, mig-parted applies each one in turn, so the **last**
  one is what the GPU ends up with; migctl resolves to the last one directly and records the
  earlier ones in :attr:`Selection.overridden` (worth a warning);
* a GPU **no entry** covers is left alone and reported in :attr:`Selection.skipped`
  (``mig-parted assert`` would fail on it);
* a GPU that is not MIG-capable is skipped when the entry says ``devices: all`` or
  ``mig-enabled: false``; an entry that names it by index and enables MIG is an error.

Profile names are resolved against each GPU's own geometry, so one config serves a mixed
node. Counts above a profile's instance count are not checked here (the planner explains
why a layout does not fit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from migctl.config.errors import ConfigError, Path, format_path
from migctl.config.grouping import Device, Grouped, build, flatten
from migctl.config.load import get_config
from migctl.config.spec import (
    MigConfigEntry,
    MigSpec,
    normalize_profile,
    parse_device_filter,
    parse_profile,
)
from migctl.core.geometry import GiProfile, GpuGeometry, Placement
from migctl.core.layout import Target, TargetInstance
from migctl.core.planner import fits as fits_empty


@dataclass(frozen=True)
class GpuFacts:
    """What selection needs to know about one GPU of the node.

    ``pci_device_id`` is NVML's 32-bit form (device << 16 | vendor, e.g. ``0x233010DE``),
    ``pci_subsystem_id`` NVML's ``pciSubSystemId`` (subsystem device << 16 | subsystem vendor,
    e.g. ``0x16C010DE``; ``None``: unknown, matched as 0 as mig-parted does);
    ``geometry`` is ``None`` for a GPU that is not MIG-capable; ``name`` (e.g.
    ``"NVIDIA H100 80GB HBM3"``) only improves messages.
    """

    index: int
    pci_device_id: int
    geometry: GpuGeometry | None
    name: str = ""
    pci_subsystem_id: int | None = None

    def describe(self) -> str:
        model = f"{self.name}, " if self.name else ""
        return f"GPU {self.index} ({model}0x{self.pci_device_id:08X})"


@dataclass(frozen=True)
class Selection:
    """The outcome of selecting config ``config`` on a node.

    ``targets``: GPU index -> what it should hold; ``entry``: GPU index -> index of the entry
    that decided it; ``overridden``: earlier entries that also covered it; ``skipped``: GPUs
    left alone, with the reason; ``warnings``: :func:`filter_warnings`.
    """

    config: str
    targets: dict[int, Target] = field(default_factory=dict)
    entry: dict[int, int] = field(default_factory=dict)
    overridden: dict[int, tuple[int, ...]] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


#: Builds the error for a problem at a path below the entry being resolved.
ErrorAt = Callable[[Path, str], ConfigError]


def _filters(entry: MigConfigEntry) -> list[str]:
    """The entry's filters as mig-parted lists them: ``""`` alone means none."""
    if isinstance(entry.device_filter, str):
        return [entry.device_filter] if entry.device_filter else []
    return list(entry.device_filter or [])


def matches(entry: MigConfigEntry, gpu: GpuFacts) -> bool:
    """Does ``entry`` cover ``gpu``? (``device-filter`` and ``devices``, as mig-parted.)"""
    filters = _filters(entry)
    if filters and not any(_filter_matches(f, gpu) for f in filters):
        return False
    return entry.devices == "all" or gpu.index in entry.devices


def _filter_matches(text: str, gpu: GpuFacts) -> bool:
    """mig-parted's ``DeviceID.Matches``: the device and vendor IDs must be the GPU's; a subsystem
    ID, when the filter has one, must be too (an unknown one reads as 0). A filter that is not a
    PCI ID matches no GPU."""
    try:
        device, subsystem = parse_device_filter(text)
    except ValueError:
        return False
    if device != gpu.pci_device_id:
        return False
    return subsystem is None or subsystem == (gpu.pci_subsystem_id or 0)


def filter_warnings(spec: MigSpec, name: str | None) -> list[str]:
    """Entries and filters of config ``name`` that cannot match any GPU: an empty entry, or a
    filter that is not a PCI ID (a model name such as ``A100-SXM4-40GB``, a typo). mig-parted
    accepts and never matches them, and so does migctl, but a user almost certainly meant
    something else."""
    entries = get_config(spec, name)
    chosen = name or spec.names()[0]
    out = []
    for i, entry in enumerate(entries):
        if entry is None:
            out.append(f"config {chosen!r} entry {i} is empty, so it matches no GPU (as in mig-parted)")
            continue
        for text in _filters(entry):
            try:
                parse_device_filter(text)
            except ValueError:
                out.append(
                    f"config {chosen!r} entry {i}: device-filter {text!r} is not a PCI ID (like 0x233010DE or "
                    "0x233010DE:0x16C010DE), so it matches no GPU (mig-parted ignores it the same way)"
                )
    return out


def suggest(name: str, geometry: GpuGeometry) -> str | None:
    """The profile of ``geometry`` nearest to ``name``: same slice count (``<N>g``), same
    ``+me``/``-me`` style suffix if there is one, closest memory. ``1g.24gb`` on a B200 ->
    ``1g.23gb``."""
    parsed = parse_profile(name)
    if parsed is None:
        return None
    _, g, gb, suffix = parsed
    same = [p for p in geometry.profiles if p.slice_count == g]
    styled = [p for p in same if _suffix(p) == suffix] or same
    if not styled:
        return None
    return min(styled, key=lambda p: (abs(_gb(p) - gb), p.name)).name


def _suffix(profile: GiProfile) -> str:
    parsed = parse_profile(profile.name)
    return parsed[3] if parsed else ""


def _gb(profile: GiProfile) -> float:
    parsed = parse_profile(profile.name)
    return parsed[2] if parsed else profile.memory_mib / 1024


def _compute(names: Sequence[str], gi: GiProfile, error: Callable[[str], ConfigError]) -> tuple[str, ...]:
    """Compute-instance names -> canonical ``Nc.<gi name>`` (or the GI's own name for the
    full-size one). ``1c`` is short for ``1c.<gi name>``."""
    out = []
    for name in names:
        key = normalize_profile(name)
        head, _, rest = key.partition(".")
        if not head.endswith("c") or not head[:-1].isdigit():
            head, rest = f"{gi.slice_count}c", key
        if rest and rest != gi.name.lower():
            raise error(f"compute instance {name} does not belong to a {gi.name} instance")
        slices = int(head[:-1])
        if not 0 < slices <= gi.slice_count:
            raise error(f"compute instance {name} needs {slices} slices; {gi.name} has {gi.slice_count}")
        out.append(gi.name if slices == gi.slice_count else f"{slices}c.{gi.name}")
    return tuple(out)


def _device(name: str, gpu: GpuFacts, geometry: GpuGeometry, error: Callable[[str], ConfigError]) -> Device:
    """A ``mig-devices`` key -> the compute instance it asks for (``1c.3g.48gb``: a 1-slice one
    in a 3g.48gb GPU instance; ``3g.48gb``: that GPU instance's full-size one)."""
    key = normalize_profile(name)
    parsed = parse_profile(key)
    gi_name = key.partition(".")[2] if parsed and parsed[0] is not None else key
    gi = geometry.find(gi_name)
    if gi is None:
        near = suggest(gi_name, geometry)
        hint = f"; did you mean {near}?" if near else ""
        offers = ", ".join(p.name for p in geometry.profiles)
        raise error(f"{gpu.describe()} has no profile {gi_name}{hint} (it offers: {offers})")
    if parsed is None or parsed[0] is None:
        return Device(name, gi, gi.name, gi.slice_count)
    (compute,) = _compute([key], gi, error)
    return Device(name, gi, compute, parsed[0])


def _canonical(compute: tuple[str, ...] | None, gi: GiProfile) -> tuple[str, ...] | None:
    return None if compute == (gi.name,) else compute


def _pinned(entry: MigConfigEntry, groups: Sequence[Grouped], err: ErrorAt) -> list[TargetInstance]:
    """The GPU instances ``groups`` describe, with ``x-migctl``'s pins applied.

    A pin names a ``mig-devices`` key and takes one GPU instance holding that key's compute
    instances (with ``compute`` given: preferably one that already holds exactly those), in
    the order mig-parted created them; ``placement`` pins its start slice and ``compute``
    replaces its compute instances.
    """
    taken: set[int] = set()
    placement: dict[int, Placement] = {}
    compute: dict[int, tuple[str, ...] | None] = {}
    keys = [{normalize_profile(k) for k in g.keys} for g in groups]
    for i, pin in enumerate(entry.x_migctl.instances if entry.x_migctl else []):
        key = normalize_profile(pin.profile)
        free = [j for j in range(len(groups)) if j not in taken and key in keys[j]]
        if not free:
            made = sum(1 for k in keys if key in k)
            raise err(("x-migctl", "instances", i, "profile"),
                      f"x-migctl pins more GPU instances holding {pin.profile} than mig-devices makes ({made}; "
                      "mig-parted puts compute instances into the GPU instance it created last while they fit)")
        chosen = free[0]
        if pin.compute is not None:
            gi = groups[chosen].gi

            def pin_error(m: str, i: int = i) -> ConfigError:
                return err(("x-migctl", "instances", i, "compute"), m)

            wanted = _compute(pin.compute, gi, pin_error)
            chosen = next((j for j in free if groups[j].compute == tuple(sorted(wanted))), chosen)
            compute[chosen] = _canonical(wanted, gi)
        taken.add(chosen)
        if pin.placement is not None:
            placement[chosen] = Placement(pin.placement, groups[chosen].gi.placement_size)
    return [
        TargetInstance(g.gi.id, placement.get(j), compute[j] if j in compute else _canonical(g.compute, g.gi))
        for j, g in enumerate(groups)
    ]


def resolve(entry: MigConfigEntry, gpu: GpuFacts, error_at: ErrorAt | None = None) -> Target:
    """The :class:`Target` ``entry`` asks of ``gpu``, names resolved against its geometry.

    ``mig-devices`` is read as mig-parted reads it (:mod:`migctl.config.grouping`): compute
    instances, flattened and grouped into GPU instances the way ``SetMigConfig`` creates them.
    Instances come largest first (then by profile ID, pinned first, by start slice), so equal
    layouts give equal targets. ``error_at(path, message)`` builds the error for a problem at
    ``path`` below the entry (default: a :class:`ConfigError` from ``--layout``, the one
    source of entries that are not in a file).
    """
    err = error_at or (lambda path, msg: ConfigError(msg, source="--layout", key=format_path(path) or None))
    if not entry.mig_enabled:
        return Target(mig_enabled=False)
    if gpu.geometry is None:
        raise err(("mig-enabled",), f"{gpu.describe()} is not MIG-capable")
    geometry = gpu.geometry
    counts: list[tuple[Device, int]] = []
    for name, count in (entry.mig_devices or {}).items():

        def name_error(m: str, name: str = name) -> ConfigError:
            return err(("mig-devices", name), m)

        counts.append((_device(name, gpu, geometry, name_error), count))

    def fits(groups: Sequence[Grouped], complete: bool) -> bool:
        """Whether these GPU instances fit an empty GPU: what decides mig-parted's order."""
        if not complete:
            return fits_empty(geometry, [TargetInstance(g.gi.id) for g in groups])
        try:
            return fits_empty(geometry, _pinned(entry, groups, err))
        except ConfigError:
            return False

    instances = _pinned(entry, build(flatten(counts), fits), err)
    instances.sort(key=lambda t: _order(t, geometry))
    return Target(mig_enabled=True, instances=tuple(instances))


def _order(t: TargetInstance, geometry: GpuGeometry) -> tuple[int, int, int, int, int, tuple[str, ...]]:
    gi = geometry.by_id(t.profile_id)
    start = -1 if t.placement is None else t.placement.start
    return (-gi.placement_size, -gi.slice_count, gi.id, t.placement is None, start,
            t.compute if t.compute is not None else ("",))


def _locator(spec: MigSpec, name: str, index: int) -> ErrorAt:
    def error_at(path: Path, message: str) -> ConfigError:
        full: Path = ("mig-configs", name, index, *path)
        return ConfigError(f"config {name!r}: {message}", source=spec.source,
                           line=spec.line_of(full), key=format_path(full))
    return error_at


def _select_one(spec: MigSpec, name: str, entries: Sequence[MigConfigEntry | None], gpu: GpuFacts,
                out: Selection) -> None:
    covering = [i for i, e in enumerate(entries) if e is not None and matches(e, gpu)]
    if not covering:
        out.skipped[gpu.index] = f"no entry of config {name!r} covers {gpu.describe()}; left alone"
        return
    last = covering[-1]
    entry = entries[last]
    assert entry is not None
    if len(covering) > 1:
        out.overridden[gpu.index] = tuple(covering[:-1])
    if gpu.geometry is None and (entry.devices == "all" or not entry.mig_enabled):
        out.skipped[gpu.index] = f"{gpu.describe()} is not MIG-capable; left alone"
        return
    out.entry[gpu.index] = last
    out.targets[gpu.index] = resolve(entry, gpu, _locator(spec, name, last))


def select(spec: MigSpec, name: str | None, gpus: Sequence[GpuFacts]) -> Selection:
    """Resolve config ``name`` (``None``: the only one) for every GPU of the node."""
    entries = get_config(spec, name)
    chosen = name or spec.names()[0]
    out = Selection(config=chosen, warnings=tuple(filter_warnings(spec, name)))
    for gpu in gpus:
        _select_one(spec, chosen, entries, gpu, out)
    return out


def applies_to(spec: MigSpec, name: str | None, gpus: Sequence[GpuFacts]) -> Mapping[int, bool]:
    """GPU index -> whether config ``name`` gives that GPU a target: some entry covers it and
    every profile it names exists on that GPU (fit is not checked). Pass one GPU per model
    to build a config x model matrix."""
    entries = get_config(spec, name)
    chosen = name or spec.names()[0]
    result: dict[int, bool] = {}
    for gpu in gpus:
        out = Selection(config=chosen)
        try:
            _select_one(spec, chosen, entries, gpu, out)
        except ConfigError:
            result[gpu.index] = False
            continue
        result[gpu.index] = gpu.index in out.targets
    return result
