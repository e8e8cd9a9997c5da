"""A trace-driven simulator of MIG GPUs running training jobs: virtual clock, no sleeps.

It executes what a scheduling policy orders on GPUs described by the product's own
``GpuGeometry`` (the simulator catalog's A100/A30 entries), with every reshape a
``core.planner`` plan whose duration comes from the simulator's ``realistic`` latency model
(``migctl.sim.faults.REALISTIC_S``, via ``ReconfigCost.from_nvml``). It checks what the
policies do as the real node would: an instance with a job on it is never destroyed (unless
the policy evicts the job first, which only the MISO-like baseline does, paying a checkpoint
overhead), a job only runs on an instance with the memory it needs, reshapes on one GPU run
one after another.

Events are processed in time order; all events at the same instant are applied before the
policy is asked what to do. A job's run time on a profile is ``work / speed``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from migctl.core.geometry import GiProfile, GpuGeometry, Placement
from migctl.core.layout import Plan, default_compute
from migctl.core.scheduler import Job, ReconfigCost


@dataclass(frozen=True)
class TraceJob:
    """One job of a trace: when it arrives and what it needs (``work`` in seconds at speed 1.0)."""

    name: str
    arrival: float
    work: float
    memory_mib: int
    speeds: tuple[tuple[str, float], ...]
    model: str = ""

    def as_job(self, remaining: float | None = None) -> Job:
        return Job(self.name, self.memory_mib, self.work if remaining is None else remaining, self.speeds, self.arrival)


@dataclass
class Instance:
    gi_id: int
    profile: GiProfile
    placement: Placement
    compute: tuple[str, ...]
    ready_at: float  # when its creation finishes
    job: str | None = None


@dataclass
class SimGpu:
    index: int
    geometry: GpuGeometry
    instances: dict[int, Instance] = field(default_factory=dict)
    lane_free: float = 0.0  # when the reconfigurations already ordered on this GPU finish
    next_gi: int = 1

    def add(self, profile: GiProfile, placement: Placement, compute: tuple[str, ...], ready_at: float) -> Instance:
        inst = Instance(self.next_gi, profile, placement, compute, ready_at)
        self.instances[inst.gi_id] = inst
        self.next_gi += 1
        return inst

    def at(self, placement: Placement) -> Instance:
        for inst in self.instances.values():
            if inst.placement == placement:
                return inst
        raise KeyError(f"GPU {self.index} has no instance at {placement}")


@dataclass
class Run:
    """A job on an instance: ``remaining`` work as of ``since``, progressing at ``speed`` after ``since``."""

    job: TraceJob
    gpu: int
    gi_id: int
    speed: float
    since: float
    remaining: float
    version: int = 0

    @property
    def expected_end(self) -> float:
        return self.since + self.remaining / self.speed


@dataclass
class Result:
    policy: str
    jct: dict[str, float]
    completion: dict[str, float]
    first_start: dict[str, float]
    reconfigurations: int
    creates: int
    destroys: int
    evictions: int

    @property
    def avg_jct(self) -> float:
        return sum(self.jct.values()) / len(self.jct)

    def makespan(self, arrivals: dict[str, float]) -> float:
        return max(self.completion.values()) - min(arrivals.values())


class Policy(Protocol):
    name: str

    def setup(self, sim: Simulator) -> None: ...

    def step(self, sim: Simulator) -> None: ...


class SimulationError(RuntimeError):
    """A policy asked for something the node would refuse (a bug in that policy)."""


_ARRIVE, _FINISH, _WAKE = 0, 1, 2


class Simulator:
    """The virtual node. Policies read ``now``, ``queue``, ``gpus``, ``running`` and call
    :meth:`reshape`, :meth:`start` and (MISO-like only) :meth:`evict`."""

    def __init__(self, geometries: Sequence[GpuGeometry], trace: Iterable[TraceJob], cost: ReconfigCost) -> None:
        self.gpus = [SimGpu(i, g) for i, g in enumerate(geometries)]
        self.cost = cost
        self.trace = sorted(trace, key=lambda j: (j.arrival, j.name))
        self.jobs = {j.name: j for j in self.trace}
        if len(self.jobs) != len(self.trace):
            raise ValueError("job names must be unique")
        self.now = 0.0
        self.queue: list[TraceJob] = []  # arrived, not running, in arrival order
        self.suspended: dict[str, float] = {}  # evicted job -> remaining work
        self.running: dict[str, Run] = {}
        self.done: dict[str, float] = {}
        self.first_start: dict[str, float] = {}
        self.reconfigurations = self.creates = self.destroys = self.evictions = 0
        self._events: list[tuple[float, int, int, str, int]] = []
        self._seq = itertools.count()
        for j in self.trace:
            self._push(j.arrival, _ARRIVE, j.name)

    def _push(self, t: float, kind: int, name: str = "", version: int = 0) -> None:
        heapq.heappush(self._events, (t, next(self._seq), kind, name, version))

    # ------------------------------------------------------------------ policy API

    def remaining(self, job: TraceJob) -> float:
        return self.suspended.get(job.name, job.work)

    def reshape(self, gpu: int, plan: Plan, extra_s: float = 0.0, *, count: bool = True) -> float:
        """Carry out a planner ``plan`` on ``gpu``; returns when its new instances are ready.

        ``extra_s`` adds time before the plan (a MIG mode change). ``count=False`` for the
        initial layout a static policy starts from (not a reconfiguration during the run).
        """
        g = self.gpus[gpu]
        for e in (*plan.destroy, *(r.instance for r in plan.recompute)):
            inst = g.instances.get(e.gi_id)
            if inst is None or inst.placement != e.placement:
                raise SimulationError(f"GPU {gpu}: plan touches GI {e.gi_id}, which is not there")
            if inst.job is not None:
                raise SimulationError(f"GPU {gpu}: plan destroys GI {e.gi_id} while {inst.job} runs on it")
        begin = max(self.now, g.lane_free)
        seconds = extra_s + (self.cost.plan_s(plan) if count else 0.0)
        done = begin + seconds
        for e in plan.destroy:
            del g.instances[e.gi_id]
        for r in plan.recompute:
            g.instances[r.instance.gi_id].compute = tuple(r.compute)
            g.instances[r.instance.gi_id].ready_at = done
        for c in plan.create:
            g.add(g.geometry.by_id(c.profile_id), c.placement, tuple(c.compute), done)
        g.lane_free = done
        if count and not plan.is_noop:
            self.reconfigurations += 1
            self.creates += len(plan.create)
            self.destroys += len(plan.destroy)
        return done

    def start(self, job: TraceJob, gpu: int, gi_id: int, not_before: float = 0.0) -> Run:
        """Run ``job`` on idle instance ``gi_id`` as soon as it exists (and not before ``not_before``)."""
        g = self.gpus[gpu]
        inst = g.instances.get(gi_id)
        if inst is None:
            raise SimulationError(f"GPU {gpu} has no GI {gi_id}")
        if inst.job is not None:
            raise SimulationError(f"GPU {gpu} GI {gi_id} already runs {inst.job}")
        if job not in self.queue:
            raise SimulationError(f"{job.name} is not waiting")
        as_job = job.as_job()
        speed = as_job.speed_on(inst.profile)
        if not as_job.fits(inst.profile) or speed is None:
            raise SimulationError(f"{job.name} cannot run on {inst.profile.name}")
        if inst.compute != default_compute(inst.profile.name):
            raise SimulationError(f"GPU {gpu} GI {gi_id} has compute instances {inst.compute}")
        self.queue.remove(job)
        begin = max(self.now, inst.ready_at, not_before)
        inst.job = job.name
        # A fresh version per run, so a finish event left over from before an eviction is ignored.
        run = Run(job, gpu, gi_id, speed, begin, self.suspended.pop(job.name, job.work), next(self._seq))
        self.running[job.name] = run
        self.first_start.setdefault(job.name, begin)
        self._push(run.expected_end, _FINISH, job.name, run.version)
        return run

    def evict(self, name: str) -> TraceJob:
        """Checkpoint and stop a running job (MISO migrates jobs); it waits again at the queue's head."""
        run = self.running.pop(name)
        done = max(0.0, self.now - run.since) * run.speed
        self.suspended[name] = max(0.0, run.remaining - done)
        self.gpus[run.gpu].instances[run.gi_id].job = None
        self.queue.insert(0, run.job)
        self.evictions += 1
        return run.job

    def wake_at(self, t: float) -> None:
        """Ask to be stepped again at ``t`` even if nothing else happens then."""
        self._push(t, _WAKE)

    # ------------------------------------------------------------------ loop

    def run(self, policy: Policy) -> Result:
        policy.setup(self)
        while self._events:
            t = self._events[0][0]
            if t < self.now - 1e-9:
                raise SimulationError(f"clock would go back from {self.now} to {t}")
            self.now = max(self.now, t)
            while self._events and self._events[0][0] <= self.now:
                _, _, kind, name, version = heapq.heappop(self._events)
                if kind == _ARRIVE:
                    self.queue.append(self.jobs[name])
                elif kind == _FINISH:
                    run = self.running.get(name)
                    if run is None or run.version != version:
                        continue  # evicted (and perhaps restarted) since this event was queued
                    del self.running[name]
                    self.gpus[run.gpu].instances[run.gi_id].job = None
                    self.done[name] = self.now
            policy.step(self)
        if len(self.done) != len(self.trace):
            stuck = sorted({j.name for j in self.trace} - set(self.done))
            raise SimulationError(f"{policy.name}: {len(stuck)} job(s) never finished: {', '.join(stuck[:5])}")
        arrivals = {j.name: j.arrival for j in self.trace}
        return Result(
            policy=policy.name,
            jct={n: self.done[n] - arrivals[n] for n in self.done},
            completion=dict(self.done),
            first_start=dict(self.first_start),
            reconfigurations=self.reconfigurations,
            creates=self.creates,
            destroys=self.destroys,
            evictions=self.evictions,
        )
