"""The scheduling policy: which waiting job goes on which profile, and when to reshape idle slices.

Pure: :func:`decide` reads GPU states, the queue and a cost model and returns a
:class:`~migctl.core.scheduler.model.Decision`; it has no clock, no I/O and no randomness, so
the same inputs always give the same decision. The caller (the batch runner, or the trace
simulator in ``benchmarks/``) carries the decision out and calls again at the next event: a
job arrives or ends, or a reconfiguration finishes.

How it decides (docs/scheduler.md has the reasons):

1. **Order.** ``jct``: shortest job first (its run time on its fastest profile); ``makespan``:
   longest first. Ties: earlier arrival, then name.
2. **Options.** Each job in that order looks, on every GPU, for each profile it fits (memory,
   known speed), at the earliest moment that profile can be placed: now, or when one of the
   busy instances or reservations in its way is expected to end. Idle instances count as free
   space: reusing one of the right shape costs nothing, reshaping costs the reconfiguration
   time of the cost model (and a mode change, with a reset on Ampere, on a GPU without MIG).
   A placement is legal when :meth:`GpuGeometry.why_not` allows it next to everything that
   overlaps it in time; among legal ones the policy takes the one that blocks the fewest
   still-open placements, the planner's and the driver's own rule.
3. **Choice.** ``jct``: the earliest finish plus the delay the option imposes on others: the
   larger of (a) its GPU area (run time x share of a GPU) spread over the jobs waiting behind
   it and those expected to arrive meanwhile (``Tuning.area_weight``, ``arrival_rate``), and
   (b) for the slices it takes now beyond the leanest option, the jobs behind it that then
   cannot start now, each waiting until something frees. So a lone job gets the fastest
   slice and a crowd gets efficient small ones. ``makespan``: the smallest estimate of the
   batch's makespan (the later of this job's finish and all remaining area spread over the
   GPUs), then the earliest finish. Options within 0.1% are ties, won by the one that leaves
   the most room; for the first ``Tuning.rollouts`` jobs, two close options are both planned
   a few jobs ahead and the better plan wins.
4. **Commit.** An option that starts now becomes a :class:`Start`; the GPU's target (busy
   instances and kept idle ones pinned where they are, new instances pinned at their
   placements) is planned by :func:`migctl.core.planner.plan` at once, and the option is
   dropped if the planner refuses. A later option reserves its slices, so jobs behind it use
   them only if they finish first (backfilling).

Busy instances are pinned in every target, so a plan never destroys or recomputes them; the
planner refuses such a plan anyway.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from migctl.core.scheduler.model import (
    OBJECTIVES,
    Decision,
    GpuAction,
    GpuState,
    Job,
    Objective,
    ReconfigCost,
    Start,
    Tuning,
    Unplaceable,
    Waiting,
)
from migctl.core.scheduler.timeline import INF, GpuTimeline, Option, bits, span_of

__all__ = ["decide", "priority_order"]


def _best_duration(job: Job, gpus: Sequence[GpuState]) -> float | None:
    best: float | None = None
    for g in gpus:
        for prof in g.geometry.profiles:
            d = job.duration_on(prof)
            if d is not None and (best is None or d < best):
                best = d
    return best


def _least_area(job: Job, gpus: Sequence[GpuState]) -> float:
    best = INF
    for g in gpus:
        span = span_of(g.geometry)
        for prof in g.geometry.profiles:
            d = job.duration_on(prof)
            if d is not None and prof.placements:
                best = min(best, d * prof.placement_size / span)
    return 0.0 if best == INF else best


def _least_size(job: Job, gpus: Sequence[GpuState]) -> int:
    sizes = [p.placement_size for g in gpus for p in g.geometry.profiles if p.placements and job.fits(p)]
    return min(sizes, default=0)


def priority_order(queue: Sequence[Job], gpus: Sequence[GpuState], objective: Objective = "jct") -> list[Job]:
    """The order in which :func:`decide` serves ``queue`` (jobs no GPU can run are left out)."""
    keyed: list[tuple[float, float, str, Job]] = []
    for job in queue:
        d = _best_duration(job, gpus)
        if d is None:
            continue
        keyed.append((d if objective == "jct" else -d, job.arrival, job.name, job))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def _why_unplaceable(job: Job, gpus: Sequence[GpuState]) -> str:
    profiles = [p for g in gpus for p in g.geometry.profiles]
    if not profiles:
        return "this node has no MIG-capable GPU"
    biggest = max(profiles, key=lambda p: p.memory_mib)
    if job.memory_mib > biggest.memory_mib:
        return (
            f"it needs {job.memory_mib} MiB of GPU memory and the largest instance here ({biggest.name}) "
            f"has {biggest.memory_mib} MiB"
        )
    names = sorted({p.name for p in profiles if p.memory_mib >= job.memory_mib})
    listed = ", ".join(k for k, _ in job.speeds) or "none"
    return (
        f"its speed table ({listed}) gives no speed for a profile with enough memory here "
        f"({', '.join(names)}); add a speed for one of them"
    )


def _same_shape(a: Option, b: Option) -> bool:
    """Options that differ only in a profile variant (``+me``) or GPU: no point comparing them."""
    return (a.duration, a.placement.size, a.start) == (b.duration, b.placement.size, b.start)


class _Run:
    """One pass over the queue in priority order, committing each job's best option."""

    def __init__(
        self,
        states: Sequence[GpuState],
        order: Sequence[Job],
        now: float,
        cost: ReconfigCost,
        objective: Objective,
        tuning: Tuning,
    ) -> None:
        self.order = order
        self.now = now
        self.cost = cost
        self.objective = objective
        self.tuning = tuning
        self.states = states
        self.work = [GpuTimeline(g, now, cost) for g in states]
        self.n_gpus = max(1, len(states))
        self.least = [_least_area(j, states) for j in order]
        # demand[i]: memory slices the jobs from position i on need at least (their smallest
        # profile each); mean_size[i]: that per job.
        sizes = [_least_size(j, states) for j in order]
        self.demand = [sum(sizes[i:]) for i in range(len(order) + 1)]
        self.mean_size = [self.demand[i] / max(1, len(order) - i) or 1.0 for i in range(len(order) + 1)]
        self.rest_area = sum(self.least)
        self.committed_area = sum(g.area_after(now) for g in self.work)
        self.starts: list[tuple[Option, Job]] = []
        self.waiting: list[Waiting] = []
        self.finish: dict[int, float] = {}
        self.reservations = 0

    def clone(self) -> _Run:
        other = copy.copy(self)
        other.work = [g.clone() for g in self.work]
        other.starts = list(self.starts)
        other.waiting = list(self.waiting)
        other.finish = dict(self.finish)
        return other

    def gpu(self, index: int) -> GpuTimeline:
        for g in self.work:
            if g.state.index == index:
                return g
        raise KeyError(index)

    def ranked(self, pos: int) -> list[tuple[float, tuple[float, ...], Option]]:
        """``job``'s options, best first: (estimate, sort key, option)."""
        job = self.order[pos]
        future = self.reservations < self.tuning.lookahead
        options = [opt for g in self.work for opt in g.options(job, self.now, self.cost, future)]
        if not options:
            return []
        shortest = min(opt.duration for opt in options)
        # Options within 0.1% of the job's run time are equal; then the one that leaves the
        # most room (best fit across GPUs) wins.
        quantum = max(1e-9, 0.001 * shortest)
        behind = len(self.order) - pos - 1
        base = self.committed_area + self.rest_area - self.least[pos]
        # Slices an option takes now beyond the leanest option push jobs behind it that would
        # have started now into waiting until something frees: a cost the area term, an
        # average over the whole queue, misses when few jobs are left.
        free = sum(g.free_now(self.now) for g in self.work)
        demand = self.demand[pos + 1]
        shortfall = {id(o): max(0, demand - free + self._takes_now(o)) for o in options}
        least_short = min(shortfall.values())
        ends = [o.end for g in self.work for o in g.occs if self.now < o.end < INF]
        next_free = (min(ends) if ends else self.now + shortest) - self.now
        out: list[tuple[float, tuple[float, ...], Option]] = []
        for opt in options:
            area = opt.duration * opt.placement.size / self.gpu(opt.gpu).span + opt.held_idle
            if self.objective == "makespan":
                estimate = max(opt.finish, self.now + (base + area) / self.n_gpus)
            else:
                # Jobs arriving before it finishes wait, on average, half that time behind it.
                waiting_behind = behind + 0.5 * self.tuning.arrival_rate * (opt.finish - self.now)
                spread = self.tuning.area_weight * waiting_behind * area / self.n_gpus
                displaced = (shortfall[id(opt)] - least_short) / self.mean_size[pos + 1] * next_free
                estimate = opt.finish + max(spread, displaced)
            tie = (float(opt.rank[1]), opt.finish, float(opt.gpu), float(opt.profile.id), float(opt.placement.start))
            out.append((estimate, (float(round(estimate / quantum)), *tie), opt))
        out.sort(key=lambda x: x[1])
        return out

    def _takes_now(self, opt: Option) -> int:
        """Usable free slices ``opt`` takes now (none if it starts later)."""
        if opt.start != self.now:
            return 0
        return (bits(opt.placement) & self.gpu(opt.gpu).coverable).bit_count()

    def take(self, pos: int, opt: Option) -> bool:
        """Commit ``opt`` for the ``pos``-th job; ``False`` if the planner refuses it (nothing changed)."""
        job = self.order[pos]
        g = self.gpu(opt.gpu)
        if opt.start == self.now:
            if not g.commit_now(opt):
                return False
            self.starts.append((opt, job))
        else:
            g.reserve(opt)
            self.reservations += 1
            self.waiting.append(Waiting(job.name, opt.gpu, opt.profile.id, opt.start))
        self.finish[pos] = opt.finish
        self.rest_area -= self.least[pos]
        self.committed_area += opt.duration * opt.placement.size / g.span
        return True

    def skip(self, pos: int) -> None:
        self.waiting.append(Waiting(self.order[pos].name))
        self.rest_area -= self.least[pos]

    def serve(self, pos: int, choices: Sequence[tuple[float, tuple[float, ...], Option]]) -> None:
        for _, _, opt in choices:
            if self.take(pos, opt):
                return
        self.skip(pos)

    def value(self, first: int, stop: int) -> float:
        """How good the plan for positions ``first..stop`` is (lower is better)."""
        ends = [self.finish.get(p, INF) for p in range(first, stop)]
        if self.objective == "makespan":
            return max(ends, default=0.0)
        return sum(e - self.now for e in ends)

    def run(self, first: int, stop: int, rollouts: int) -> None:
        """Serve positions ``first..stop``; the first ``rollouts`` of them look ahead on close calls.

        A close call is two best options whose estimates differ by less than
        ``Tuning.close_call`` of the job's run time: both are tried, the jobs after it (up to
        ``Tuning.horizon`` of them) are planned greedily each way, and the better plan wins.
        """
        for pos in range(first, stop):
            choices = self.ranked(pos)
            distinct = [c for c in choices if not _same_shape(c[2], choices[0][2])]
            if pos - first < rollouts and distinct:
                choices = [choices[0], distinct[0], *(c for c in choices[1:] if c is not distinct[0])]
                gap = choices[1][0] - choices[0][0]
                if gap <= self.tuning.close_call * choices[0][2].duration:
                    horizon = min(stop, pos + 1 + self.tuning.horizon)
                    best: tuple[float, int] | None = None
                    for k, (_, _, opt) in enumerate(choices[:2]):
                        if k and _same_shape(opt, choices[0][2]):
                            continue
                        trial = self.clone()
                        if not trial.take(pos, opt):
                            continue
                        trial.run(pos + 1, horizon, 0)
                        v = trial.value(pos, horizon)
                        if best is None or v < best[0]:
                            best = (v, k)
                    if best is not None:
                        choices = [choices[best[1]], *(c for i, c in enumerate(choices) if i != best[1])]
            self.serve(pos, choices)


def decide(
    gpus: Sequence[GpuState],
    queue: Sequence[Job],
    *,
    now: float,
    cost: ReconfigCost | None = None,
    objective: Objective = "jct",
    tuning: Tuning | None = None,
) -> Decision:
    """What to do at time ``now`` with the jobs in ``queue`` (see the module docstring).

    ``gpus`` lists every GPU the jobs may use, with their instances (busy ones with the time
    their job is expected to end, if known). Returns the GPUs to reshape (planner plans that
    touch only idle instances), the jobs to start, the jobs that wait, and the jobs no GPU
    here can ever run. Deterministic: the same arguments give the same decision.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of: {', '.join(OBJECTIVES)}")
    cost = cost or ReconfigCost()
    tuning = tuning or Tuning()
    names = [j.name for j in queue]
    if len(names) != len(set(names)):
        raise ValueError("job names in the queue must be unique")
    states = sorted(gpus, key=lambda g: g.index)
    if len({g.index for g in states}) != len(states):
        raise ValueError("GPU indices must be unique")
    order = priority_order(queue, states, objective)
    in_order = {j.name for j in order}
    unplaceable = tuple(
        Unplaceable(j.name, _why_unplaceable(j, states))
        for j in sorted(queue, key=lambda j: j.name)
        if j.name not in in_order
    )
    run = _Run(states, order, now, cost, objective, tuning)
    run.run(0, len(order), tuning.rollouts)
    work, starts, waiting = run.work, run.starts, run.waiting

    actions: list[GpuAction] = []
    ready: dict[int, float] = {}
    for g in work:
        if g.plan is None or (g.plan.is_noop and not g.enable_mig):
            continue
        seconds = (g.mode_s if g.enable_mig else 0.0) + cost.plan_s(g.plan)
        actions.append(GpuAction(g.state.index, g.plan, g.enable_mig, seconds))
        ready[g.state.index] = now + seconds
    start_records = tuple(
        Start(
            job=job.name,
            gpu=opt.gpu,
            profile_id=opt.profile.id,
            placement=opt.placement,
            gi_id=opt.reuse,
            ready_at=now if opt.reuse is not None else ready.get(opt.gpu, now),
            expected_end=(now if opt.reuse is not None else ready.get(opt.gpu, now)) + opt.duration,
        )
        for opt, job in starts
    )
    return Decision(
        actions=tuple(actions),
        starts=start_records,
        waiting=tuple(waiting),
        unplaceable=unplaceable,
    )
