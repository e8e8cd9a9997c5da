"""One GPU's timeline while the policy plans: what holds which slices from when to when.

Part of :mod:`migctl.core.scheduler` (pure). During one decision each GPU keeps the busy
instances (until their expected end), the starts decided so far and the reservations of jobs
that wait, and answers where a profile could go at a given time: legal per
:meth:`GpuGeometry.why_not` next to everything that overlaps it in time. Starting now is
checked once more by :func:`migctl.core.planner.plan` when committed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache

from migctl.core.geometry import GiProfile, GpuGeometry, Occupant, Placement
from migctl.core.layout import ExistingInstance, Plan, TargetInstance, default_compute
from migctl.core.planner import plan as plan_gpu
from migctl.core.scheduler.model import GpuState, Job, ReconfigCost, Slot

INF = float("inf")
_SOON = 1e-6


def bits(p: Placement) -> int:
    return ((1 << p.size) - 1) << p.start


@dataclass
class Hold:
    """Slices held from ``start`` to ``end``: a busy instance, a start decided now, or a reservation."""

    mask: int
    profile_id: int
    placement: Placement
    start: float
    end: float
    size: int


@dataclass(frozen=True)
class Option:
    gpu: int
    profile: GiProfile
    placement: Placement
    start: float  # when the slices are taken (reconfiguration begins)
    finish: float
    duration: float
    reuse: int | None  # gi_id of an idle instance reused as is
    rank: tuple[float, int, int]  # reconfiguration seconds, room blocked, start slice
    held_idle: float = 0.0  # GPU-seconds of slices free now that a later start keeps idle until then


@dataclass(frozen=True)
class _Spot:
    """A placement free at some time: its rank, reconfiguration, and until when it stays free."""

    rank: tuple[float, int, int]
    placement: Placement
    mask: int
    rc: float
    reuse: int | None
    free_until: float
    held_idle: float


class GpuTimeline:
    """One GPU's working state during one decision."""

    def __init__(self, state: GpuState, now: float, cost: ReconfigCost) -> None:
        self.state = state
        self.geometry: GpuGeometry = state.geometry
        self.span = span_of(state.geometry)
        self.usable = state.mig_enabled or not state.whole_busy
        self.mode_s = 0.0 if state.mig_enabled else cost.mode_change_s(state.mode_change_resets)
        self.enable_mig = False
        self.occs: list[Hold] = []
        self.idle: dict[int, Slot] = {}
        for s in state.instances:
            if s.busy:
                # A job past its expected end is taken to end any moment now.
                end = INF if s.free_at is None else max(s.free_at, now + _SOON)
                size = s.placement.size
                self.occs.append(Hold(bits(s.placement), s.profile_id, s.placement, now, end, size))
            else:
                self.idle[s.gi_id] = s
        self.reused: dict[int, Slot] = {}
        self.new: list[tuple[GiProfile, Placement]] = []
        self.all_masks = [bits(p) for prof in self.geometry.profiles for p in prof.placements]
        smallest = min((p.placement_size for p in self.geometry.profiles if p.placements), default=0)
        self.coverable = 0
        for prof in self.geometry.profiles:
            if prof.placements and prof.placement_size == smallest:
                for q in prof.placements:
                    self.coverable |= bits(q)
        self.plan: Plan | None = None
        self._cache: dict[tuple[int, float], list[_Spot]] = {}
        self._times: list[float] | None = None

    def held(self, start: float, end: float) -> list[Hold]:
        """What holds slices at some moment of ``[start, end)``."""
        return [o for o in self.occs if o.start < end and start < o.end]

    def active(self, t: float) -> list[Hold]:
        """What holds slices at the moment ``t``."""
        return [o for o in self.occs if o.start <= t < o.end]

    def options(self, job: Job, now: float, cost: ReconfigCost, future: bool) -> list[Option]:
        """The best placement of each profile ``job`` fits, at the earliest time it is free."""
        if not self.usable:
            return []
        found: list[Option] = []
        if self._times is None:
            self._times = [now, *sorted({o.end for o in self.occs if now < o.end < INF})]
        times = self._times if future else self._times[:1]
        for prof in self.geometry.profiles:
            duration = job.duration_on(prof)
            if duration is None:
                continue
            for t in times:
                opt = self._at(prof, t, duration, now, cost)
                if opt is not None:
                    found.append(opt)
                    break
        return found

    def _candidates(self, prof: GiProfile, t: float, now: float, cost: ReconfigCost) -> list[_Spot]:
        """Placements of ``prof`` free at ``t``, best first, with how long each stays free.

        Depends only on the timeline, not on the job, so it is worked out once per
        (profile, time) until the timeline changes.
        """
        key = (prof.id, t)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        setup = self.mode_s if not self.enable_mig else 0.0
        occupied = 0
        for o in self.active(t):
            occupied |= o.mask
        busy_now = 0
        for o in self.active(now):
            busy_now |= o.mask
        if t == now:
            for s in self.idle.values():
                occupied |= bits(s.placement)
        open_masks = [m for m in self.all_masks if not m & occupied]
        later = [o for o in self.occs if o.start > t]
        spots: list[_Spot] = []
        for q in prof.placements:
            qmask = bits(q)
            if any(o.mask & qmask for o in self.occs if o.start <= t < o.end):
                continue
            reuse: int | None = None
            in_the_way: list[Slot] = []
            if t == now:
                for s in self.idle.values():
                    if not bits(s.placement) & qmask:
                        continue
                    if s.profile_id == prof.id and s.placement == q and s.compute == default_compute(prof.name):
                        reuse = s.gi_id
                    else:
                        in_the_way.append(s)
            rc = setup
            if reuse is None:
                rc += cost.create_s() + sum(cost.destroy_s(max(1, len(s.compute))) for s in in_the_way)
            free_until = min((o.start for o in later if o.mask & qmask), default=INF)
            # Room it takes from later instances: the still-open placements it blocks, by size.
            blocked = sum(m.bit_count() for m in open_masks if m & qmask)
            held_idle = (t - now) * (qmask & ~busy_now).bit_count() / self.span if t > now else 0.0
            spots.append(_Spot((rc, blocked, q.start), q, qmask, rc, reuse, free_until, held_idle))
        spots.sort(key=lambda sp: sp.rank)
        self._cache[key] = spots
        return spots

    def _at(self, prof: GiProfile, t: float, duration: float, now: float, cost: ReconfigCost) -> Option | None:
        for sp in self._candidates(prof, t, now, cost):
            finish = t + sp.rc + duration
            if finish > sp.free_until:
                continue
            occupants = [Occupant(o.profile_id, o.placement) for o in self.held(t, finish)]
            if t == now:
                occupants += [
                    Occupant(s.profile_id, s.placement)
                    for s in self.idle.values()
                    if s.gi_id != sp.reuse and not bits(s.placement) & sp.mask
                ]
            if self.geometry.why_not(occupants, prof, sp.placement) is not None:
                continue
            return Option(self.state.index, prof, sp.placement, t, finish, duration, sp.reuse, sp.rank, sp.held_idle)
        return None

    def _changed(self) -> None:
        self._cache = {}
        self._times = None

    # ------------------------------------------------------------------ committing

    def targets(self) -> tuple[list[ExistingInstance], list[TargetInstance]]:
        current = [
            ExistingInstance(s.gi_id, s.profile_id, s.placement, tuple(sorted(s.compute)), s.busy)
            for s in self.state.instances
        ]
        target = [
            TargetInstance(s.profile_id, s.placement, tuple(s.compute))
            for s in self.state.instances
            if s.busy or s.gi_id in self.idle or s.gi_id in self.reused
        ]
        target += [TargetInstance(p.id, q, None) for p, q in self.new]
        return current, target

    def commit_now(self, opt: Option) -> bool:
        """Take ``opt``'s slices now; ``False`` (and nothing changed) if the planner refuses the result."""
        saved = (dict(self.idle), dict(self.reused), list(self.new), self.enable_mig)
        qmask = bits(opt.placement)
        if opt.reuse is not None:
            self.reused[opt.reuse] = self.idle.pop(opt.reuse)
        else:
            for gi in [gi for gi, s in self.idle.items() if bits(s.placement) & qmask]:
                del self.idle[gi]
            self.new.append((opt.profile, opt.placement))
        if not self.state.mig_enabled:
            self.enable_mig = True
        current, target = self.targets()
        result = plan_gpu(self.geometry, current, target)
        if not isinstance(result, Plan):
            self.idle, self.reused, self.new, self.enable_mig = saved
            return False
        self.plan = result
        self._changed()
        self.occs.append(Hold(qmask, opt.profile.id, opt.placement, opt.start, opt.finish, opt.placement.size))
        return True

    def clone(self) -> GpuTimeline:
        other = copy.copy(self)
        other.occs = list(self.occs)
        other.idle = dict(self.idle)
        other.reused = dict(self.reused)
        other.new = list(self.new)
        other._cache = dict(self._cache)
        return other

    def reserve(self, opt: Option) -> None:
        self._changed()
        mask = bits(opt.placement)
        self.occs.append(Hold(mask, opt.profile.id, opt.placement, opt.start, opt.finish, opt.placement.size))

    def free_now(self, now: float) -> int:
        """Memory slices free at ``now`` (idle instances count as free) that the smallest profile can use."""
        if not self.usable:
            return 0
        held = 0
        for o in self.active(now):
            held |= o.mask
        return (self.coverable & ~held).bit_count()

    def area_after(self, now: float) -> float:
        """GPU-seconds already committed from ``now`` on (busy instances with a known end included)."""
        return sum((o.end - max(o.start, now)) * o.size / self.span for o in self.occs if o.end < INF)


@lru_cache(maxsize=256)
def span_of(geometry: GpuGeometry) -> int:
    """Memory slices of a GPU (at least 1, so shares never divide by zero)."""
    return max(1, geometry.span)
