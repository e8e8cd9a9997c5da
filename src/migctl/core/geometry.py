"""What a MIG GPU can hold: GPU-instance profiles, their legal placements, and shared engines.

Pure data and rules, no I/O. The device layer builds a :class:`GpuGeometry` from what NVML
reports (``nvmlDeviceGetGpuInstanceProfileInfo`` and ``...PossiblePlacements``); tests build
one from the simulator's catalog. Everything the planner decides is checked against these
rules, which mirror what the driver refuses with ``NVML_ERROR_INSUFFICIENT_RESOURCES``:

* a GPU instance occupies the memory slices ``[start, start + size)`` of its placement, and two
  instances never overlap;
* a profile has at most ``instance_count`` instances (the ``+me`` profiles: one);
* media engines (decoders, encoders, JPEG, OFA) are a shared pool: the sum over instances
  never exceeds what the full-GPU profile has (one OFA: one ``+me`` instance, and on RTX PRO
  a ``+me.all`` instance leaves room only for ``-me`` profiles).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Placement:
    """A span of memory slices ``[start, start + size)``, as ``nvidia-smi mig -lgipp`` prints it."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def overlaps(self, other: Placement) -> bool:
        return self.start < other.end and other.start < self.end

    def __str__(self) -> str:
        return f"{self.start}:{self.size}"


@dataclass(frozen=True)
class Engines:
    """Media engines an instance takes from the GPU's shared pool."""

    dec: int = 0
    enc: int = 0
    jpeg: int = 0
    ofa: int = 0

    def __add__(self, other: Engines) -> Engines:
        return Engines(
            self.dec + other.dec,
            self.enc + other.enc,
            self.jpeg + other.jpeg,
            self.ofa + other.ofa,
        )

    def within(self, total: Engines) -> bool:
        return (
            self.dec <= total.dec
            and self.enc <= total.enc
            and self.jpeg <= total.jpeg
            and self.ofa <= total.ofa
        )


@dataclass(frozen=True)
class GiProfile:
    """One GPU-instance profile (a row of ``nvidia-smi mig -lgip``).

    ``id`` is the profile ID nvidia-smi prints (``info.id`` in NVML, e.g. 19 for ``1g.12gb``),
    not the ``NVML_GPU_INSTANCE_PROFILE_*`` enum value. ``name`` has no ``MIG `` prefix.
    """

    id: int
    name: str
    slice_count: int
    instance_count: int
    memory_mib: int
    placements: tuple[Placement, ...]
    engines: Engines = field(default_factory=Engines)
    sm: int = 0
    ce: int = 0
    p2p: bool = False

    @property
    def placement_size(self) -> int:
        """Memory slices one instance occupies (8 for 7g, 4 for 3g on 8-slot GPUs)."""
        return self.placements[0].size if self.placements else 0

    def placement_at(self, start: int) -> Placement | None:
        for p in self.placements:
            if p.start == start:
                return p
        return None


@dataclass(frozen=True)
class Occupant:
    """An instance already on the GPU (or planned): its profile and placement."""

    profile_id: int
    placement: Placement


@dataclass(frozen=True)
class GpuGeometry:
    """The profiles one GPU offers, and the pool of media engines they share.

    ``engine_totals`` is ``None`` when the pool is unknown; then only slices and instance
    counts are checked.
    """

    profiles: tuple[GiProfile, ...]
    engine_totals: Engines | None = None

    def __post_init__(self) -> None:
        ids = [p.id for p in self.profiles]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate GPU-instance profile IDs: {sorted(ids)}")

    @property
    def span(self) -> int:
        """Number of memory slices on the GPU (8 on A100/H100/H200/H20/B200, 4 on A30)."""
        return max((p.end for prof in self.profiles for p in prof.placements), default=0)

    def by_id(self, profile_id: int) -> GiProfile:
        for p in self.profiles:
            if p.id == profile_id:
                return p
        raise KeyError(profile_id)

    def by_name(self, name: str) -> GiProfile:
        key = name.removeprefix("MIG ").strip().lower()
        for p in self.profiles:
            if p.name.lower() == key:
                return p
        raise KeyError(name)

    def find(self, key: int | str) -> GiProfile | None:
        """A profile by ID (int or digit string) or by name; ``None`` if the GPU lacks it."""
        try:
            if isinstance(key, int):
                return self.by_id(key)
            if key.strip().isdigit():
                return self.by_id(int(key))
            return self.by_name(key)
        except KeyError:
            return None

    def engines_of(self, occupants: Iterable[Occupant]) -> Engines:
        total = Engines()
        for o in occupants:
            total = total + self.by_id(o.profile_id).engines
        return total

    def why_not(self, occupants: Sequence[Occupant], profile: GiProfile, placement: Placement) -> str | None:
        """Why ``profile`` cannot go at ``placement`` next to ``occupants``; ``None`` if it can."""
        if placement not in profile.placements:
            legal = ",".join(str(p.start) for p in profile.placements)
            return f"{profile.name} cannot start at slice {placement.start} (legal starts: {legal})"
        for o in occupants:
            if o.placement.overlaps(placement):
                other = self.by_id(o.profile_id).name
                return f"slices {placement} overlap the {other} instance at {o.placement}"
        same = sum(1 for o in occupants if o.profile_id == profile.id)
        if same >= profile.instance_count:
            return f"{profile.name} allows at most {profile.instance_count} instance(s)"
        if self.engine_totals is not None:
            used = self.engines_of(occupants) + profile.engines
            if not used.within(self.engine_totals):
                return f"{profile.name} needs media engines that other instances already hold"
        return None

    def can_place(self, occupants: Sequence[Occupant], profile: GiProfile, placement: Placement) -> bool:
        return self.why_not(occupants, profile, placement) is None

    def free_placements(self, occupants: Sequence[Occupant], profile: GiProfile) -> list[Placement]:
        """Placements of ``profile`` where one more instance could be created now."""
        return [p for p in profile.placements if self.can_place(occupants, profile, p)]

    def free_slices(self, occupants: Sequence[Occupant]) -> list[int]:
        used = {s for o in occupants for s in range(o.placement.start, o.placement.end)}
        return [s for s in range(self.span) if s not in used]
