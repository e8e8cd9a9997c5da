"""The policies the scheduler benchmark compares, each driving :mod:`tracesim`.

* :class:`Static`: a fixed layout on every GPU, jobs in arrival order, each on the fastest idle
  instance it fits; a job that fits none waits and later jobs may use the other idle
  instances (backfilling). With the single 7g layout it is the unpartitioned baseline (one job
  per whole GPU, FIFO).
* :class:`MisoLike`: MISO's idea (SoCC'22) with true speeds instead of its MPS-based
  prediction: a job goes, in arrival order, to the GPU with the fewest jobs whose mix (plus
  it) still has a layout; that GPU is re-partitioned into the layout with one instance per job
  that minimises the sum of the jobs' slowdowns; running jobs whose instance changes are
  checkpointed and restarted (``overhead_s``, MISO's default 30 s). When nobody waits, a GPU
  with idle instances is re-partitioned for the jobs it still has.
* :class:`Migctl`: ``migctl.core.scheduler.decide`` at every event, its decision carried out;
  with ``estimate_rate`` it tells the policy the arrival rate of the last 20 arrivals, as a
  runner watching its queue could.
* :class:`FixedList`: tasks started strictly in a given order, each on a given profile and
  placement as soon as those slices are free (the schedules the exhaustive search ranges over).

Every reshape is a ``core.planner`` plan. :func:`layouts` lists every layout a GPU can hold,
asking the planner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import cache

from migctl.core.geometry import GiProfile, GpuGeometry, Placement
from migctl.core.layout import ExistingInstance, Plan, TargetInstance
from migctl.core.planner import plan
from migctl.core.scheduler import GpuState, Objective, Slot, Tuning, decide
from tracesim import Run, SimGpu, Simulator, TraceJob


def base_profiles(geometry: GpuGeometry) -> list[GiProfile]:
    """The profiles a training job would use: the ``+me``/``-me`` variants equal their base for it."""
    return [p for p in geometry.profiles if "+" not in p.name and "-" not in p.name]


def layouts(geometry: GpuGeometry, profiles: Sequence[GiProfile], maximal: bool = True) -> list[tuple[int, ...]]:
    """Every multiset of ``profiles`` (as sorted profile IDs) the planner can place on an empty GPU.

    ``maximal``: only those to which no further instance of ``profiles`` can be added.
    """
    ids = sorted(p.id for p in profiles)

    @cache
    def fits(layout: tuple[int, ...]) -> bool:
        return isinstance(plan(geometry, [], [TargetInstance(pid) for pid in layout]), Plan)

    found: list[tuple[int, ...]] = []

    def grow(layout: tuple[int, ...], first: int) -> None:
        for k in range(first, len(ids)):
            bigger = (*layout, ids[k])
            if fits(bigger):
                found.append(bigger)
                grow(bigger, k)

    grow((), 0)
    if maximal:
        found = [lay for lay in found if not any(fits(tuple(sorted((*lay, pid)))) for pid in ids)]
    return sorted(found)


def layout_name(geometry: GpuGeometry, layout: Iterable[int]) -> str:
    names = [geometry.by_id(pid).name for pid in layout]
    names.sort(key=lambda n: (-int(n.split("g")[0]), n))
    return "+".join(names)


def _initial(sim: Simulator, layout: Sequence[int]) -> None:
    for g in sim.gpus:
        result = plan(g.geometry, [], [TargetInstance(pid) for pid in layout])
        assert isinstance(result, Plan), result
        sim.reshape(g.index, result, count=False)


def _existing(g: SimGpu, busy: bool) -> list[ExistingInstance]:
    return [
        ExistingInstance(i.gi_id, i.profile.id, i.placement, i.compute, busy and i.job is not None)
        for i in g.instances.values()
    ]


class Static:
    """One layout on every GPU for the whole run; arrival order with backfilling."""

    def __init__(self, layout: Sequence[int], name: str = "static") -> None:
        self.layout = tuple(layout)
        self.name = name

    def setup(self, sim: Simulator) -> None:
        _initial(sim, self.layout)

    def step(self, sim: Simulator) -> None:
        for job in list(sim.queue):
            as_job = job.as_job()
            best: tuple[tuple[float, int, int, int], int, int] | None = None
            for g in sim.gpus:
                for inst in g.instances.values():
                    if inst.job is not None or not as_job.fits(inst.profile):
                        continue
                    speed = as_job.speed_on(inst.profile) or 0.0
                    key = (-speed, inst.placement.size, g.index, inst.gi_id)
                    if best is None or key < best[0]:
                        best = (key, g.index, inst.gi_id)
            if best is not None:
                sim.start(job, best[1], best[2])


_Assignment = tuple[float, tuple[int, ...]]  # (sum of slowdowns, profile ID per job)


class MisoLike:
    """Best layout for each GPU's job mix at every arrival and departure, migrating running jobs."""

    name = "MISO-like"

    def __init__(self, geometry: GpuGeometry, overhead_s: float = 30.0) -> None:
        self.geometry = geometry
        self.overhead_s = overhead_s
        self.profiles = {p.id: p for p in base_profiles(geometry)}
        self.by_count: dict[int, list[tuple[int, ...]]] = {}
        for lay in layouts(geometry, list(self.profiles.values())):
            self.by_count.setdefault(len(lay), []).append(lay)

    def setup(self, sim: Simulator) -> None:
        _initial(sim, (max(self.profiles.values(), key=lambda p: p.placement_size).id,))

    def _jobs_on(self, sim: Simulator, gpu: int) -> list[TraceJob]:
        return sorted((r.job for r in sim.running.values() if r.gpu == gpu), key=lambda j: j.name)

    def _best(self, jobs: Sequence[TraceJob]) -> tuple[float, tuple[int, ...], dict[str, int]] | None:
        """The layout with one instance per job and the assignment minimising the sum of slowdowns."""
        best: tuple[float, tuple[int, ...], dict[str, int]] | None = None
        as_jobs = [j.as_job() for j in jobs]
        for lay in self.by_count.get(len(jobs), []):
            kinds = sorted(set(lay))
            memo: dict[tuple[int, tuple[int, ...]], _Assignment | None] = {}

            def assign(
                i: int,
                counts: tuple[int, ...],
                kinds: list[int] = kinds,
                memo: dict[tuple[int, tuple[int, ...]], _Assignment | None] = memo,
            ) -> _Assignment | None:
                if i == len(as_jobs):
                    return (0.0, ())
                key = (i, counts)
                if key in memo:
                    return memo[key]
                result: _Assignment | None = None
                for k, pid in enumerate(kinds):
                    if not counts[k]:
                        continue
                    speed = as_jobs[i].speed_on(self.profiles[pid])
                    if speed is None or not as_jobs[i].fits(self.profiles[pid]):
                        continue
                    rest = assign(i + 1, (*counts[:k], counts[k] - 1, *counts[k + 1 :]))
                    if rest is not None and (result is None or 1 / speed + rest[0] < result[0]):
                        result = (1 / speed + rest[0], (pid, *rest[1]))
                memo[key] = result
                return result

            found = assign(0, tuple(lay.count(pid) for pid in kinds))
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], lay, {j.name: pid for j, pid in zip(jobs, found[1], strict=True)})
        return best

    def _repartition(self, sim: Simulator, gpu: int, jobs: Sequence[TraceJob], new: TraceJob | None) -> None:
        best = self._best(jobs)
        assert best is not None
        _, lay, assign = best
        g = sim.gpus[gpu]
        result = plan(g.geometry, _existing(g, busy=False), [TargetInstance(pid) for pid in lay])
        assert isinstance(result, Plan), result
        kept = {e.gi_id for e in result.keep}
        stay: set[str] = set()
        for inst in g.instances.values():
            if inst.job is not None and inst.gi_id in kept and assign[inst.job] == inst.profile.id:
                stay.add(inst.job)
        moved = [sim.evict(r.job.name) for r in list(sim.running.values()) if r.gpu == gpu and r.job.name not in stay]
        if not result.is_noop:
            sim.reshape(gpu, result)
        for job in [*moved, *([new] if new is not None else [])]:
            inst = next(
                i
                for i in sorted(g.instances.values(), key=lambda i: i.gi_id)
                if i.job is None and i.profile.id == assign[job.name]
            )
            sim.start(job, gpu, inst.gi_id, not_before=sim.now + (self.overhead_s if job is not new else 0.0))

    def step(self, sim: Simulator) -> None:
        while sim.queue:
            job = sim.queue[0]
            options = []
            for g in sim.gpus:
                mix = self._jobs_on(sim, g.index)
                if self._best([*mix, job]) is not None:
                    options.append((len(mix), g.index, mix))
            if not options:
                break
            _, gpu, mix = min(options, key=lambda o: (o[0], o[1]))
            self._repartition(sim, gpu, [*mix, job], job)
        if sim.queue:
            return
        for g in sim.gpus:
            mix = self._jobs_on(sim, g.index)
            if not mix or all(i.job is not None for i in g.instances.values()):
                continue
            best = self._best(mix)
            assert best is not None
            now = {i.job: i.profile.id for i in g.instances.values() if i.job is not None}
            if best[1] != tuple(sorted(now.values())) or best[2] != now:
                self._repartition(sim, g.index, mix, None)


class Migctl:
    """migctl's own policy: ``decide`` at every event, its decision carried out as the runner would."""

    def __init__(
        self,
        objective: Objective = "jct",
        tuning: Tuning | None = None,
        name: str = "",
        estimate_rate: bool = False,
        window: int = 20,
    ) -> None:
        self.objective: Objective = objective
        self.tuning = tuning or Tuning()
        self.name = name or f"migctl ({objective})"
        self.estimate_rate = estimate_rate  # pass Tuning.arrival_rate measured from recent arrivals
        self.window = window
        self.decisions = 0

    def setup(self, sim: Simulator) -> None:
        pass

    @staticmethod
    def states(sim: Simulator) -> list[GpuState]:
        out = []
        for g in sim.gpus:
            slots = []
            for i in sorted(g.instances.values(), key=lambda i: i.gi_id):
                run: Run | None = sim.running.get(i.job) if i.job is not None else None
                slots.append(
                    Slot(
                        i.gi_id,
                        i.profile.id,
                        i.placement,
                        i.compute,
                        busy=i.job is not None,
                        free_at=run.expected_end if run is not None else None,
                    )
                )
            out.append(GpuState(g.index, g.geometry, tuple(slots)))
        return out

    def step(self, sim: Simulator) -> None:
        if not sim.queue:
            return
        queue = [j.as_job(sim.remaining(j)) for j in sim.queue]
        tuning = self.tuning
        if self.estimate_rate:
            # What a runner could know: the rate of the last ``window`` arrivals (recent load,
            # not the whole history: MISO's trace starts with a burst).
            seen = [j.arrival for j in sim.trace if j.arrival <= sim.now][-self.window - 1 :]
            if len(seen) > 1 and sim.now > seen[0]:
                tuning = replace(tuning, arrival_rate=(len(seen) - 1) / (sim.now - seen[0]))
        d = decide(self.states(sim), queue, now=sim.now, cost=sim.cost, objective=self.objective, tuning=tuning)
        self.decisions += 1
        if d.unplaceable:
            raise RuntimeError(f"{self.name}: unplaceable jobs {d.unplaceable}")
        for a in d.actions:
            sim.reshape(a.gpu, a.plan)
        for s in d.starts:
            g = sim.gpus[s.gpu]
            gi = s.gi_id if s.gi_id is not None else g.at(s.placement).gi_id
            sim.start(sim.jobs[s.job], s.gpu, gi)


class FixedList:
    """Start ``tasks`` strictly in order, each at its (profile, placement), once those slices are free."""

    def __init__(self, tasks: Sequence[tuple[str, int, Placement]], gpu: int = 0, name: str = "list") -> None:
        self.tasks = list(tasks)
        self.gpu = gpu
        self.name = name
        self.next = 0

    def setup(self, sim: Simulator) -> None:
        pass

    def step(self, sim: Simulator) -> None:
        g = sim.gpus[self.gpu]
        while self.next < len(self.tasks):
            name, pid, q = self.tasks[self.next]
            job = sim.jobs[name]
            if job not in sim.queue:
                return  # not arrived yet
            if any(i.job is not None and i.placement.overlaps(q) for i in g.instances.values()):
                return
            target = [
                TargetInstance(i.profile.id, i.placement, i.compute)
                for i in g.instances.values()
                if not i.placement.overlaps(q)
            ]
            target.append(TargetInstance(pid, q))
            result = plan(g.geometry, _existing(g, busy=True), target)
            if not isinstance(result, Plan):
                raise RuntimeError(f"{name} cannot go at {q}: {result.reason}")
            if not result.is_noop:
                sim.reshape(self.gpu, result)
            sim.start(job, self.gpu, g.at(q).gi_id)
            self.next += 1


def lower_bound(trace: Sequence[TraceJob], geometry: GpuGeometry) -> tuple[float, float]:
    """Average JCT and makespan if every job ran on its fastest profile the moment it arrived."""
    best = {}
    for j in trace:
        as_job = j.as_job()
        times = [d for p in geometry.profiles if (d := as_job.duration_on(p)) is not None]
        best[j.name] = min(times)
    avg = sum(best.values()) / len(trace)
    t0 = min(j.arrival for j in trace)
    return avg, max(j.arrival + best[j.name] for j in trace) - t0
