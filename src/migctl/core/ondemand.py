"""Where a MIG device made on demand goes: the cluster-level placement policy (pure).

The Ray front end (``migctl.ray``) asks this module, for a request that no free MIG device
satisfies, which GPU of which node should get a new GPU instance, at which placement, and
which idle instances (if any) must be destroyed first. Nothing here does I/O: the caller
describes each GPU as a :class:`GpuRoom` (its geometry and what holds which slices) and then
carries the answer out through migctl's own operations (planned, journaled apply).

Two policies:

* ``"migctl"``: keep room for the largest profiles. Within each GPU, the free placement that
  costs the fewest placements of the largest sizes (below), and among those the product
  planner's choice (the driver's own order of preference: the placement that blocks the
  fewest still-possible placements; a lone 1g goes to slice 6, leaving 0-3 for a 3g or 4g).
  Among the GPUs, the one where that create costs the least room for the largest profiles:
  the fewest placements lost of the largest placement size, then of the next size, and so
  on (a 1g goes on a GPU already in use rather than on an empty one, which keeps its 7g;
  then where it keeps an aligned half free for a 3g). Ties go to the GPU left with the
  fewest free memory slices (best fit).
* ``"first-fit"``: the first GPU (in the order given) where the profile fits, at the lowest
  free placement. This is what a naive allocator (and the DRA driver's users report) does;
  it is here as the baseline the benchmark measures fragmentation against.

When nothing fits, ``reshape`` may destroy *idle* instances (never a running or pinned one):
the fewest instances, then the fewest slices, then the ones the caller ranks first
(instances made on demand, longest idle). :func:`drain_target` picks a GPU to stop handing
out so a large request that keeps losing to small ones gets its room (no starvation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from migctl.core.geometry import GiProfile, GpuGeometry, Occupant, Placement
from migctl.core.layout import ExistingInstance, Plan, TargetInstance
from migctl.core.planner import plan

Policy = Literal["migctl", "first-fit"]
POLICIES: tuple[Policy, ...] = ("migctl", "first-fit")

#: Slot states. ``idle``: no work on it; may be destroyed to make room. ``running``: Ray work
#: that will end; never destroyed, but a drain may wait for it. ``pinned``: anything else (an
#: actor, a process or lease migctl.ray does not own, an instance without a MIG device).
SlotState = Literal["idle", "running", "pinned"]

#: Profiles with media-engine or graphics suffixes are only used when asked for by name.
_SPECIAL = ("+", "-me")


@dataclass(frozen=True)
class Slot:
    """A GPU instance as the policy sees it."""

    gi_id: int
    profile_id: int
    placement: Placement
    state: SlotState
    rank: int = 0  # among idle slots, lower is destroyed first


@dataclass(frozen=True)
class GpuRoom:
    """One GPU: its geometry, its instances, and placements promised to changes in flight."""

    key: Hashable
    geometry: GpuGeometry
    slots: tuple[Slot, ...] = ()
    reserved: tuple[Occupant, ...] = ()  # being created now, or held for a drain

    def occupants(self, without: frozenset[int] = frozenset()) -> tuple[Occupant, ...]:
        kept = tuple(Occupant(s.profile_id, s.placement) for s in self.slots if s.gi_id not in without)
        return kept + self.reserved

    def free_slices(self) -> int:
        return len(self.geometry.free_slices(list(self.occupants())))


@dataclass(frozen=True)
class Creation:
    """Make one GPU instance of ``profile_id`` at ``placement`` on GPU ``key``, first destroying ``destroy``."""

    key: Hashable
    profile_id: int
    placement: Placement
    destroy: tuple[int, ...] = ()


@dataclass(frozen=True)
class Drain:
    """Stop handing out GPU ``key``'s instances ``blockers`` until they are idle, then reshape."""

    key: Hashable
    profile_id: int
    placement: Placement
    blockers: tuple[int, ...]


def is_plain(profile: GiProfile) -> bool:
    """A profile without media-engine or graphics options (``1g.12gb``, not ``1g.12gb+me``)."""
    return not any(mark in profile.name for mark in _SPECIAL)


def smallest_fitting(geometry: GpuGeometry, memory_mib: int) -> GiProfile | None:
    """The plain profile with the least memory of at least ``memory_mib`` (then fewest slices)."""
    fits = [p for p in geometry.profiles if is_plain(p) and p.memory_mib >= memory_mib]
    return min(fits, key=lambda p: (p.memory_mib, p.slice_count, p.placement_size, p.id), default=None)


def wanted_profile(geometry: GpuGeometry, profile: str | None, memory_mib: int | None) -> GiProfile | None:
    """The profile a request means on a GPU of ``geometry`` (by name, else by memory)."""
    if profile is not None:
        return geometry.find(profile)
    if memory_mib is not None:
        return smallest_fitting(geometry, memory_mib)
    return None


Want = Callable[[GpuGeometry], GiProfile | None]


@functools.lru_cache(maxsize=8192)
def _planned(geometry: GpuGeometry, occupants: tuple[Occupant, ...], profile_id: int) -> Placement | None:
    """The product planner's placement for one more ``profile_id`` next to ``occupants``."""
    current = [ExistingInstance(-1 - i, o.profile_id, o.placement, (), busy=True) for i, o in enumerate(occupants)]
    target = [TargetInstance(o.profile_id, o.placement, ()) for o in occupants]
    result = plan(geometry, current, [*target, TargetInstance(profile_id)])
    if not isinstance(result, Plan) or result.destroy or len(result.create) != 1:
        return None
    return result.create[0].placement


def _first_free(geometry: GpuGeometry, occupants: tuple[Occupant, ...], profile: GiProfile) -> Placement | None:
    free = geometry.free_placements(list(occupants), profile)
    return min(free, key=lambda p: p.start, default=None)


def _where(policy: Policy, room: GpuRoom, profile: GiProfile, without: frozenset[int]) -> Placement | None:
    occupants = room.occupants(without)
    if not room.geometry.free_placements(list(occupants), profile):
        return None
    if policy == "first-fit":
        return _first_free(room.geometry, occupants, profile)
    return _best_at(room.geometry, tuple(sorted(occupants, key=lambda o: (o.placement, o.profile_id))), profile.id)


@functools.lru_cache(maxsize=8192)
def _best_at(geometry: GpuGeometry, occupants: tuple[Occupant, ...], profile_id: int) -> Placement | None:
    """migctl's placement on one GPU: of the free placements, the one that costs the fewest
    placements of the largest sizes (:func:`_cost`), the planner's own choice among equals.

    The planner alone (the driver's preference: block the fewest possible placements of any
    profile) now and then costs a 3g/4g placement that another free placement would keep; taking
    the lowest cost first means migctl never costs more large placements than first-fit would.
    """
    profile = geometry.by_id(profile_id)
    free = geometry.free_placements(list(occupants), profile)
    if not free:
        return None
    planned = _planned(geometry, occupants, profile_id)
    return min(free, key=lambda at: (_cost(geometry, occupants, profile_id, at), at != planned, at.start))


#: Placement sizes (memory slices) every GPU's costs are compared on, largest first, so that GPUs of
#: different models (8 slices, 4 on an A30) compare the same sizes; a size not listed comes after.
_SIZES = (8, 4, 2, 1)


@functools.lru_cache(maxsize=64)
def _by_size(geometry: GpuGeometry) -> tuple[tuple[GiProfile, ...], ...]:
    """The GPU's profiles grouped by placement size: one group per size of :data:`_SIZES`
    (empty if the GPU has none), then any other sizes, largest first."""
    others = sorted({p.placement_size for p in geometry.profiles} - set(_SIZES), reverse=True)
    return tuple(tuple(p for p in geometry.profiles if p.placement_size == size) for size in (*_SIZES, *others))


def _starts(geometry: GpuGeometry, occupants: Sequence[Occupant], group: Sequence[GiProfile]) -> int:
    return len({at.start for p in group for at in geometry.free_placements(occupants, p)})


def _left_after(room: GpuRoom, without: frozenset[int], profile: GiProfile, at: Placement) -> tuple[int, ...]:
    """What the create costs, lower is better: per placement size (largest first) the placements
    it makes impossible, then the free memory slices left."""
    occupants = tuple(sorted(room.occupants(without), key=lambda o: (o.placement, o.profile_id)))
    return _cost(room.geometry, occupants, profile.id, at)


@functools.lru_cache(maxsize=65536)
def _cost(geometry: GpuGeometry, occupants: tuple[Occupant, ...], profile_id: int, at: Placement) -> tuple[int, ...]:
    before = list(occupants)
    after = [*before, Occupant(profile_id, at)]
    lost = tuple(_starts(geometry, before, g) - _starts(geometry, after, g) for g in _by_size(geometry))
    return (*lost, len(geometry.free_slices(after)))


def place(rooms: Sequence[GpuRoom], want: Want, policy: Policy = "migctl", *, reshape: bool = False) -> Creation | None:
    """Where to make one instance of the wanted profile, or ``None`` if no GPU has room.

    Without ``reshape`` only free slices are used. With it, idle instances may be destroyed
    when no GPU has room otherwise (the fewest, then the smallest, then the lowest ranked).
    """
    found = _place_free(rooms, want, policy)
    if found is not None or not reshape:
        return found
    return _place_reshaping(rooms, want, policy)


def _place_free(rooms: Sequence[GpuRoom], want: Want, policy: Policy) -> Creation | None:
    best: tuple[tuple[int, ...], Creation] | None = None
    for order, room in enumerate(rooms):
        profile = want(room.geometry)
        if profile is None:
            continue
        at = _where(policy, room, profile, frozenset())
        if at is None:
            continue
        made = Creation(room.key, profile.id, at)
        if policy == "first-fit":
            return made
        score = (*_left_after(room, frozenset(), profile, at), order)
        if best is None or score < best[0]:
            best = (score, made)
    return None if best is None else best[1]


def _place_reshaping(rooms: Sequence[GpuRoom], want: Want, policy: Policy) -> Creation | None:
    best: tuple[tuple[int, ...], Creation] | None = None
    for order, room in enumerate(rooms):
        profile = want(room.geometry)
        if profile is None:
            continue
        idle = sorted((s for s in room.slots if s.state == "idle"), key=lambda s: (s.rank, s.gi_id))
        for k in range(1, len(idle) + 1):
            options: list[tuple[tuple[int, ...], Creation]] = []
            for chosen in combinations(idle, k):
                without = frozenset(s.gi_id for s in chosen)
                at = _where(policy, room, profile, without)
                if at is None:
                    continue
                size = sum(s.placement.size for s in chosen)
                rank = sum(s.rank for s in chosen)
                left = _left_after(room, without, profile, at)
                made = Creation(room.key, profile.id, at, tuple(sorted(without)))
                options.append(((k, size, rank, *left, order), made))
            if options:
                here = min(options, key=lambda o: o[0])
                if policy == "first-fit":
                    return here[1]
                if best is None or here[0] < best[0]:
                    best = here
                break
    return None if best is None else best[1]


def drain_target(rooms: Sequence[GpuRoom], want: Want) -> Drain | None:
    """A GPU where the wanted profile would fit once some running Ray work ends.

    Only idle and running instances may stand in the way (never a pinned one, never a
    reserved placement). Chooses the placement with the fewest running blockers, then the
    fewest blockers in all.
    """
    best: tuple[tuple[int, int, int, int], Drain] | None = None
    for order, room in enumerate(rooms):
        profile = want(room.geometry)
        if profile is None:
            continue
        for at in profile.placements:
            blockers = [s for s in room.slots if s.placement.overlaps(at)]
            if any(s.state == "pinned" for s in blockers):
                continue
            if any(r.placement.overlaps(at) for r in room.reserved):
                continue
            without = frozenset(s.gi_id for s in blockers)
            if not room.geometry.can_place(list(room.occupants(without)), profile, at):
                continue
            running = sum(1 for s in blockers if s.state == "running")
            score = (running, len(blockers), order, at.start)
            if best is None or score < best[0]:
                best = (score, Drain(room.key, profile.id, at, tuple(sorted(without))))
    return None if best is None else best[1]


def usable_free_slices(rooms: Sequence[GpuRoom], want: Want) -> tuple[int, int]:
    """Free memory slices the wanted profile could use, summed over GPUs; and the most it needs.

    A slice counts if no instance holds it and some placement of the profile covers it (slice
    7 of an H100 is no use to a 1g.10gb). When the sum reaches the profile's placement size yet
    no GPU has a free placement, the request waits only because free memory is scattered:
    that is fragmentation.
    """
    total, need = 0, 0
    for room in rooms:
        profile = want(room.geometry)
        if profile is None:
            continue
        need = max(need, profile.placement_size)
        reach = {s for p in profile.placements for s in range(p.start, p.end)}
        total += len(reach & set(room.geometry.free_slices(list(room.occupants()))))
    return total, need


def free_slices_total(rooms: Sequence[GpuRoom]) -> int:
    """Memory slices no instance holds, summed over every GPU (what fragmentation wastes)."""
    return sum(room.free_slices() for room in rooms)


__all__ = [
    "POLICIES",
    "Creation",
    "Drain",
    "GpuRoom",
    "Policy",
    "Slot",
    "Want",
    "drain_target",
    "free_slices_total",
    "is_plain",
    "place",
    "smallest_fitting",
    "usable_free_slices",
    "wanted_profile",
]
