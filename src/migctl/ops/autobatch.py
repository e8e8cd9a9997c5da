"""``migctl batch --auto``: the scheduler chooses each job's profile and reshapes idle slices for it.

:class:`AutoBatch` is ``migctl batch``'s runner (:class:`migctl.ops.batch.Batch`: the same
leases, environment, logs, retries, timeouts, signal handling and summary) with its device
choice replaced. At the start and after every event (a job's attempt ends, a reshape is done,
or, while something it does not own is in the way, every couple of seconds) it reads the node
(:mod:`migctl.ops.busy`: an instance with a process or a lease on it is busy), asks
:func:`migctl.core.scheduler.decide` what to do, carries out the reshapes through ``apply``'s
transactions (:mod:`migctl.ops.autoreshape`: planned, journaled, busy instances never touched,
an Ampere mode change completed by a reset only while the GPU is idle), and starts each chosen
job on its instance under a lease, as ``batch`` does. Reshapes run inside the batch's loop with
SIGINT/SIGTERM/SIGHUP blocked, so a Ctrl-C arriving during one lets it finish (or roll back)
before the jobs are stopped; a ``kill -9`` leaves the journal for ``migctl recover``.

A job's expected end (start plus its run time on the chosen profile) is what the policy plans
with for the instance it holds; instances used by others have no known end.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from migctl.core.scheduler import Decision, GpuState, ReconfigCost, Slot, Start, Tuning, decide
from migctl.core.scheduler.model import Objective
from migctl.device import Gpu, MigDeviceInfo, Node
from migctl.errors import MigctlError
from migctl.ops import busy, launch, leases
from migctl.ops.autojobs import AutoJob
from migctl.ops.autoreshape import carry_out
from migctl.ops.batch import DEFAULT_GRACE_S, Batch, _Job
from migctl.records.autobatch import AutoBatchReport, AutoSummary, Reshape
from migctl.records.autobatch import AutoJob as AutoJobRecord
from migctl.records.batch import BatchProgress

#: How soon the node is looked at again after a reshape was refused or a lease was taken by
#: someone else, and how often while an instance someone else uses is in the way.
RECHECK_S = 2.0
#: Rounds in a row that start nothing while none of the batch's jobs runs and nothing of others'
#: is in the way (a reshape refused or failing each time...), before the waiting jobs are given up.
MAX_IDLE_ROUNDS = 30
#: The signals that stop a batch (blocked while it runs; :class:`Batch` takes them).
_STOP = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def default_cost() -> ReconfigCost:
    """Reconfiguration times measured on an A100 (the simulator's ``realistic`` latencies)."""
    from migctl.sim.faults import REALISTIC_S

    return ReconfigCost.from_nvml(REALISTIC_S)


@dataclass(frozen=True)
class _Placed:
    gpu: int
    gi_id: int
    profile: str
    speed: float
    start_s: float
    predicted_end_s: float


class AutoBatch(Batch):
    """The ``--auto`` runner. Build it with jobs and the GPUs it may use, call :meth:`run_auto` once."""

    def __init__(
        self,
        node: Node,
        jobs: Sequence[AutoJob],
        gpus: Sequence[Gpu],
        *,
        objective: Objective = "jct",
        logs_dir: Path | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        on_progress: Callable[[BatchProgress], None] | None = None,
        cost: ReconfigCost | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        super().__init__(node, [j.ready for j in jobs], logs_dir=logs_dir, grace_s=grace_s, on_progress=on_progress)
        self.auto = {j.name: j for j in jobs}
        self.gpus = list(gpus)
        self.geometry = {g.index: g.geometry() for g in self.gpus}
        self.objective: Objective = objective
        self.cost = cost or default_cost()
        self.tuning = tuning or Tuning()
        self.placed: dict[str, _Placed] = {}
        self.ended: dict[str, float] = {}
        self.on_gi: dict[tuple[int, int], str] = {}  # (GPU, GI) -> the job of ours running there
        self.reshapes: list[Reshape] = []
        self.gave_up: dict[str, str] = {}
        self.decisions = 0
        self._dirty = True
        self._recheck_at: float | None = None
        self._idle_rounds = 0
        self._problem = ""  # what went wrong in the last round (a refused reshape, a lease lost...)
        self._foreign = False  # in the last round, something the batch does not own was in the way

    # -- the node as the policy sees it --

    def _clock(self) -> float:
        return time.monotonic() - self.started

    def _states(self) -> tuple[list[GpuState], bool]:
        """Every GPU's state, and whether something the batch does not own holds a slice or a GPU."""
        held = busy.node_leases()
        states = []
        foreign = False
        for gpu in self.gpus:
            mode = gpu.mig_mode()
            if mode is None:
                continue
            geometry = self.geometry[gpu.index]
            if not mode.current:
                whole_busy = bool(gpu.processes())
                foreign |= whole_busy
                states.append(GpuState(gpu.index, geometry, (), mig_enabled=False, whole_busy=whole_busy))
                continue
            slots = []
            for e in busy.existing_instances(gpu, busy.snapshot(gpu, held)):
                mine = self.on_gi.get((gpu.index, e.gi_id))
                foreign |= e.busy and mine is None
                free_at = self.placed[mine].predicted_end_s if mine is not None else None
                slots.append(Slot(e.gi_id, e.profile_id, e.placement, e.compute, e.busy or mine is not None, free_at))
            states.append(GpuState(gpu.index, geometry, tuple(slots)))
        return states, foreign

    # -- one round: decide, reshape, start --

    def _launch_ready(self) -> None:
        if not self.pending:
            return
        if not self._dirty and (self._recheck_at is None or time.monotonic() < self._recheck_at):
            return
        self._dirty = False
        self._recheck_at = None
        self._problem = ""
        self._foreign = False
        try:
            started = self._round()
        except MigctlError as exc:  # the node could not be read or changed: try again shortly
            self._problem = exc.message
            started = False
        if self._problem:
            self._recheck_at = time.monotonic() + RECHECK_S
        if started or self.running or not self.pending:
            self._idle_rounds = 0
            return
        if not self._problem and self._foreign:
            return  # waiting for what others use, as batch waits for devices others hold
        # Nothing runs, nothing started, and nothing of others' is in the way: a node that keeps
        # failing (or a policy that starts nothing) must not hang the batch.
        self._idle_rounds += 1
        self._recheck_at = time.monotonic() + RECHECK_S
        if self._idle_rounds >= MAX_IDLE_ROUNDS:
            why = self._problem or "the scheduler started nothing on an idle node"
            for job in self.pending:
                self._give_up(job, f"could not be started in {MAX_IDLE_ROUNDS} tries: {why}")
            self.pending = []

    def _give_up(self, job: _Job, reason: str) -> None:
        job.status = "failed"
        self.gave_up[job.spec.name] = reason

    def _round(self) -> bool:
        """Ask the policy and carry out what it says; whether any job started."""
        states, self._foreign = self._states()
        now = self._clock()
        decision = decide(
            states,
            [self.auto[j.spec.name].as_job() for j in self.pending],
            now=now,
            cost=self.cost,
            objective=self.objective,
            tuning=self.tuning,
        )
        self.decisions += 1
        by_name = {j.spec.name: j for j in self.pending}
        for u in decision.unplaceable:
            self._give_up(by_name[u.job], f"no GPU here can run it: {u.reason}")
        refused = self._reshape(decision)
        started = False
        if signal.sigpending() & _STOP:  # Ctrl-C came during the reshape: start nothing, the loop stops
            return started
        devices: dict[int, list[MigDeviceInfo]] = {}
        for s in decision.starts:
            if s.gi_id is None and s.gpu in refused:
                continue
            started |= self._start_on(by_name[s.job], s, devices)
        if self._foreign and decision.waiting:
            self._recheck_at = time.monotonic() + RECHECK_S
        # A start that failed may have put its job back at the queue's head: keep each job once.
        self.pending = [j for j in dict.fromkeys(self.pending) if j.status == "pending"]
        return started

    def _reshape(self, decision: Decision) -> set[int]:
        """Carry out the decision's reshapes; the GPUs where that did not happen."""
        if not decision.actions:
            return set()
        done = carry_out(self.node, decision.actions, since=self.started)
        self.reshapes += done
        refused = {r.gpu for r in done if r.result != "applied"}
        if refused:
            self._problem = "; ".join(f"GPU {r.gpu}: {r.detail}" for r in done if r.result != "applied")
        return refused

    def _device(self, s: Start, devices: dict[int, list[MigDeviceInfo]]) -> MigDeviceInfo | None:
        """The MIG device of the instance ``s`` names (reused, or made by the reshape at its placement)."""
        gpu = self.node.gpus[s.gpu]
        gi_id = s.gi_id
        if gi_id is None:
            gi_id = next(
                (g.id for g in gpu.gpu_instances() if g.profile_id == s.profile_id and g.placement == s.placement), None
            )
            if gi_id is None:
                return None
        if s.gpu not in devices:
            devices[s.gpu] = gpu.mig_devices()
        found = [d for d in devices[s.gpu] if d.gi_id == gi_id]
        return found[0] if len(found) == 1 else None

    def _start_on(self, job: _Job, s: Start, devices: dict[int, list[MigDeviceInfo]]) -> bool:
        dev = self._device(s, devices)
        if dev is None:
            self._problem = f"GPU {s.gpu}: the instance chosen for {job.spec.name} is not there"
            return False
        found = self.launcher.try_lease(dev, " ".join(job.spec.argv), job=job.spec.name)
        if not isinstance(found, leases.Lease):
            self._problem = f"{launch.label(dev)} was taken by someone else"
            return False
        self._start(job, dev, found)
        if job.status != "running" or job.child is None:
            return False
        profile = self.geometry[s.gpu].by_id(s.profile_id)
        spec = self.auto[job.spec.name].as_job()
        duration = spec.duration_on(profile) or 0.0
        start_s = job.child.started - self.started
        self.placed[job.spec.name] = _Placed(
            s.gpu, dev.gi_id, profile.name, spec.speed_on(profile) or 0.0, start_s, start_s + duration
        )
        self.on_gi[(s.gpu, dev.gi_id)] = job.spec.name
        return True

    # -- events --

    def _after_attempt(self, job: _Job) -> None:
        placed = self.placed.get(job.spec.name)
        if placed is not None:
            self.on_gi.pop((placed.gpu, placed.gi_id), None)
        self.ended[job.spec.name] = self._clock()
        self._dirty = True
        super()._after_attempt(job)

    def _next_wakeup(self) -> float:
        wait = super()._next_wakeup()
        if self._recheck_at is not None and self.pending and self.stopping is None:
            wait = min(wait, max(0.0, self._recheck_at - time.monotonic()))
        return wait

    # -- the report --

    def run_auto(self) -> AutoBatchReport:
        """Run every job to the end (or to Ctrl-C/SIGTERM/SIGHUP, which stop it gracefully)."""
        base = self.run()
        jobs = tuple(replace(j, reason=self.gave_up[j.name]) if j.name in self.gave_up else j for j in base.jobs)
        schedule = []
        for spec in self.jobs:
            name = spec.spec.name
            a = self.auto[name]
            p = self.placed.get(name)
            schedule.append(
                AutoJobRecord(
                    name=name,
                    memory_mib=a.memory_mib,
                    work_s=round(a.work_s, 3),
                    model=a.model,
                    gpu=p.gpu if p else None,
                    gpu_instance_id=p.gi_id if p else None,
                    profile=p.profile if p else None,
                    speed=round(p.speed, 6) if p else None,
                    start_s=round(p.start_s, 3) if p else None,
                    end_s=round(self.ended[name], 3) if p and name in self.ended else None,
                    predicted_end_s=round(p.predicted_end_s, 3) if p else None,
                )
            )
        ok = [s for s, j in zip(schedule, jobs, strict=True) if j.status == "succeeded" and s.end_s is not None]
        summary = AutoSummary(
            objective=self.objective,
            gpus=tuple(g.index for g in self.gpus),
            decisions=self.decisions,
            reshapes=sum(1 for r in self.reshapes if r.result == "applied"),
            avg_jct_s=round(statistics.fmean(s.end_s for s in ok if s.end_s is not None), 3) if ok else None,
            makespan_s=max((s.end_s for s in ok if s.end_s is not None), default=None),
            predicted_avg_jct_s=(
                round(statistics.fmean(s.predicted_end_s for s in ok if s.predicted_end_s is not None), 3)
                if ok
                else None
            ),
        )
        return AutoBatchReport(jobs, base.summary, summary, tuple(schedule), tuple(self.reshapes))


def run_auto_batch(
    node: Node,
    jobs: Sequence[AutoJob],
    gpus: Sequence[Gpu],
    *,
    objective: Objective = "jct",
    logs_dir: Path | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    on_progress: Callable[[BatchProgress], None] | None = None,
) -> AutoBatchReport:
    """Run ``jobs`` on ``gpus``, migctl choosing each job's profile and reshaping idle slices."""
    return AutoBatch(
        node, jobs, gpus, objective=objective, logs_dir=logs_dir, grace_s=grace_s, on_progress=on_progress
    ).run_auto()
