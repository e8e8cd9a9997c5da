"""What the scheduling policy reads and returns: jobs, GPU states, reconfiguration costs, decisions.

Pure, frozen records. Times are seconds on the caller's clock (the policy never reads a clock:
``now`` is an argument). A job's *work* is in seconds at relative speed 1.0, and its speed on
a profile comes from :meth:`Job.speed_on`, so its run time there is ``work / speed``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from migctl.core.geometry import GiProfile, GpuGeometry, Placement
from migctl.core.layout import Plan

Objective = Literal["jct", "makespan"]
OBJECTIVES: tuple[Objective, ...] = ("jct", "makespan")

_NAME = re.compile(r"^(?P<g>\d+)g(?:\.(?P<mem>\d+(?:\.\d+)?)gb)?(?P<suffix>[+-].*)?$")


def _parse(name: str) -> tuple[int, float | None, str] | None:
    """``"3g.20gb"`` -> (3, 20.0, ""), ``"1g.5gb+me"`` -> (1, 5.0, "+me"), ``"3g"`` -> (3, None, "")."""
    m = _NAME.match(name.strip().lower())
    if m is None:
        return None
    mem = m["mem"]
    return int(m["g"]), (float(mem) if mem is not None else None), m["suffix"] or ""


@lru_cache(maxsize=8192)
def _speed(speeds: tuple[tuple[str, float], ...], profile_name: str) -> float | None:
    """:meth:`Job.speed_on`, memoised (the policy asks for the same pairs many times)."""
    if not speeds:
        return 1.0
    table = {k.strip().lower(): v for k, v in speeds}
    name = profile_name.lower()
    if name in table:
        return table[name]
    parsed = _parse(name)
    if parsed is None:
        return None
    slices, mem, suffix = parsed
    if suffix and name.removesuffix(suffix) in table:
        return table[name.removesuffix(suffix)]
    if f"{slices}g" in table:
        return table[f"{slices}g"]
    best: tuple[float, float] | None = None  # (memory, speed) of the closest smaller entry
    for key, speed in table.items():
        other = _parse(key)
        if other is None or other[0] != slices or other[1] is None or mem is None or other[1] > mem:
            continue
        if best is None or (other[1], speed) > best:
            best = (other[1], speed)
    return best[1] if best is not None else None


@dataclass(frozen=True)
class Job:
    """A job waiting to run.

    * ``memory_mib``: the least memory it needs; only profiles with at least that much are used.
    * ``work``: what is left to do, in seconds at relative speed 1.0 (for a speed table whose
      reference is the 7g profile: the run time on 7g).
    * ``speeds``: relative speed per profile, keyed by profile name (``"3g.20gb"``) or by
      compute-slice count (``"3g"``). Empty: speed unknown, taken as the same on every profile
      (the job then gets the smallest profile that fits, as people partition by hand).
    * ``arrival``: when it was queued; ties in priority go to the earlier one.
    """

    name: str
    memory_mib: int = 0
    work: float = 1.0
    speeds: tuple[tuple[str, float], ...] = ()
    arrival: float = 0.0

    def speed_on(self, profile: GiProfile) -> float | None:
        """Relative speed on ``profile``; ``None`` when the table says nothing that applies.

        Looked up by the profile's name, then by its name without a ``+me``/``-me`` suffix
        (same compute and memory), then by its compute-slice count (``"3g"``), then from a
        listed profile with the same compute slices and no more memory (a job measured on
        ``1g.5gb`` runs at least as fast on ``1g.10gb``: same compute, more memory).
        """
        return _speed(self.speeds, profile.name)

    def fits(self, profile: GiProfile) -> bool:
        """Whether ``profile`` has the memory this job needs and a known speed for it."""
        speed = _speed(self.speeds, profile.name)
        return profile.memory_mib >= self.memory_mib and speed is not None and speed > 0

    def duration_on(self, profile: GiProfile) -> float | None:
        """Seconds to finish on ``profile``; ``None`` if it cannot run there."""
        if profile.memory_mib < self.memory_mib:
            return None
        speed = _speed(self.speeds, profile.name)
        if speed is None or speed <= 0:
            return None
        return self.work / speed


@dataclass(frozen=True)
class Slot:
    """A GPU instance as the policy sees it.

    ``busy`` is true while a process runs on it or migctl holds a lease on it: the policy never
    destroys, reshapes or assigns a busy instance. ``free_at`` is when its job is expected to
    end (``None``: unknown, taken as never for planning).
    """

    gi_id: int
    profile_id: int
    placement: Placement
    compute: tuple[str, ...] = ()
    busy: bool = False
    free_at: float | None = None


@dataclass(frozen=True)
class GpuState:
    """One GPU: what it can hold, what it holds now, and whether MIG is on.

    A GPU with MIG off can be given MIG only while nothing runs on it (``whole_busy`` false);
    that costs a mode change, and on Ampere (``mode_change_resets``) a GPU reset.
    """

    index: int
    geometry: GpuGeometry
    instances: tuple[Slot, ...] = ()
    mig_enabled: bool = True
    whole_busy: bool = False
    mode_change_resets: bool = True


@dataclass(frozen=True)
class ReconfigCost:
    """Seconds per reconfiguration call; a plan's cost is the sum of its calls (they run in order)."""

    create_gi_s: float = 0.0
    create_ci_s: float = 0.0
    destroy_gi_s: float = 0.0
    destroy_ci_s: float = 0.0
    mig_mode_s: float = 0.0
    reset_s: float = 0.0

    @classmethod
    def from_nvml(cls, latency: Mapping[str, float]) -> ReconfigCost:
        """From seconds per NVML call name (``nvmlDeviceCreateGpuInstanceWithPlacement``...,
        plus ``simResetGpu`` for a GPU reset), as the simulator's latency model lists them."""
        return cls(
            create_gi_s=latency.get("nvmlDeviceCreateGpuInstanceWithPlacement", 0.0),
            create_ci_s=latency.get("nvmlGpuInstanceCreateComputeInstance", 0.0),
            destroy_gi_s=latency.get("nvmlGpuInstanceDestroy", 0.0),
            destroy_ci_s=latency.get("nvmlComputeInstanceDestroy", 0.0),
            mig_mode_s=latency.get("nvmlDeviceSetMigMode", 0.0),
            reset_s=latency.get("simResetGpu", 0.0),
        )

    def create_s(self, compute_instances: int = 1) -> float:
        return self.create_gi_s + compute_instances * self.create_ci_s

    def destroy_s(self, compute_instances: int = 1) -> float:
        return self.destroy_gi_s + compute_instances * self.destroy_ci_s

    def plan_s(self, plan: Plan) -> float:
        """Seconds to carry out ``plan``: destroys, compute-instance swaps, then creates."""
        total = sum(self.destroy_s(max(1, len(e.compute))) for e in plan.destroy)
        for r in plan.recompute:
            total += len(r.instance.compute) * self.destroy_ci_s + len(r.compute) * self.create_ci_s
        total += sum(self.create_s(len(c.compute)) for c in plan.create)
        return total

    def mode_change_s(self, resets: bool) -> float:
        return self.mig_mode_s + (self.reset_s if resets else 0.0)


@dataclass(frozen=True)
class Tuning:
    """The policy's knobs (see docs/scheduler.md for what each does and how it was chosen).

    * ``area_weight``: how much a job pays, under the ``jct`` objective, for the GPU capacity
      it holds while others wait (0: every job takes its fastest option, as if alone).
    * ``arrival_rate``: expected job arrivals per second (0 for a batch: all jobs known). Jobs
      expected to arrive while a job runs count as waiting behind it.
    * ``lookahead``: how many waiting jobs may reserve slices that are still busy; jobs after
      them only start where they fit now.
    * ``rollouts``, ``close_call``, ``horizon``: for the first ``rollouts`` jobs in priority
      order, when the two best options' estimates differ by less than ``close_call`` of the
      job's run time, plan the next ``horizon`` jobs both ways and keep the better plan.
    """

    area_weight: float = 1.0
    arrival_rate: float = 0.0
    lookahead: int = 16
    rollouts: int = 4
    close_call: float = 0.1
    horizon: int = 8


@dataclass(frozen=True)
class Start:
    """Start ``job`` on a ``profile_id`` instance at ``placement`` of GPU ``gpu``.

    ``gi_id`` is the idle instance it reuses, or ``None`` when the GPU's :class:`GpuAction`
    creates it. ``ready_at`` is when the instance is expected to be there (``now`` plus the
    reconfiguration before it); ``expected_end`` is ``ready_at`` plus the job's run time.
    """

    job: str
    gpu: int
    profile_id: int
    placement: Placement
    gi_id: int | None
    ready_at: float
    expected_end: float


@dataclass(frozen=True)
class GpuAction:
    """Reshape one GPU's idle slices: enable MIG first if asked, then carry out ``plan``.

    ``plan`` comes from :func:`migctl.core.planner.plan`; it only destroys or recomputes idle
    instances. ``seconds`` is the estimated time for the whole action.
    """

    gpu: int
    plan: Plan
    enable_mig: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Waiting:
    """A job that does not start now; ``gpu``/``profile_id``/``expected_start`` say what it waits for."""

    job: str
    gpu: int | None = None
    profile_id: int | None = None
    expected_start: float | None = None


@dataclass(frozen=True)
class Unplaceable:
    """A job no GPU of this node can ever run, and why."""

    job: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """What to do now. Carry out each action, then start the jobs; call again on the next event."""

    actions: tuple[GpuAction, ...] = ()
    starts: tuple[Start, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    unplaceable: tuple[Unplaceable, ...] = field(default=())

    @property
    def is_noop(self) -> bool:
        return not (self.actions or self.starts)
