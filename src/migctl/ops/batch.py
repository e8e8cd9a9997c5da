"""``migctl batch``'s scheduler: many jobs in parallel, each on its own MIG device as soon as one is free.

One process schedules every job (:class:`~migctl.ops.jobs.ReadyJob`): it leases a free device,
starts the job there directly (``posix_spawn``, the same environment and lease logic as
``migctl run``; no ``migctl run`` per job), and waits for children, signals and deadlines in
one ``sigtimedwait`` loop. The MIG inventory is read once; a launch touches only the device it
uses (its lease file, one NVML process query, and on the simulator one registration), so
starting a job costs a few ms.

Each job leads its own session (``setsid``), so its process group is everything it started:
a timeout, Ctrl-C or SIGTERM ends the whole group (SIGTERM, then SIGKILL after the grace
period), and when a job's main process ends, what it left behind in its group is killed so
the device is free at once. The result is a :class:`~migctl.records.batch.BatchReport`; a
front end that wants a live view passes ``on_progress``.

(Over 400 lines for a reason: it is one scheduler, whose launch, reap, stop and deadline steps
all work on the same job and device state; the jobs file and the rendering live elsewhere.)
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migctl.device import MigDeviceInfo, Node
from migctl.errors import MigctlError
from migctl.ops import child as children
from migctl.ops import launch, leases
from migctl.ops.child import Child, blocked
from migctl.ops.jobs import ReadyJob
from migctl.records.batch import (
    AttemptRecord,
    BatchJob,
    BatchProgress,
    BatchReport,
    BatchSummary,
    JobStatus,
    RunningJob,
)

DEFAULT_GRACE_S = 10.0
#: How often devices that someone else holds are looked at again while jobs wait for them.
RECHECK_S = 0.5
#: How often ``on_progress`` hears from a running batch.
PROGRESS_S = 0.25


def default_logs_dir() -> Path:
    return Path.cwd() / "migctl-logs" / time.strftime(f"batch-%Y%m%d-%H%M%S-{os.getpid()}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120] or "job"


#: A job's state once the batch is over (a job cannot end pending or running).
_FINAL: dict[str, JobStatus] = {"succeeded": "succeeded", "interrupted": "interrupted", "not started": "not started"}


@dataclass
class _Attempt:
    device: MigDeviceInfo
    returncode: int | None = None
    reason: str = ""
    duration_s: float = 0.0


@dataclass(eq=False)
class _Job:
    """A job and, once running, its state."""

    spec: ReadyJob
    status: str = "pending"  # pending, running, succeeded, failed, interrupted, not started
    attempts: list[_Attempt] = field(default_factory=list)
    child: Child | None = None
    lease: leases.Lease | None = None
    log: Path | None = None
    timed_out: bool = False
    kill_at: float | None = None

    def __post_init__(self) -> None:
        self._uuids = frozenset(d.uuid for d in self.spec.candidates)

    def allows(self, dev: MigDeviceInfo) -> bool:
        return self.spec.any_device or dev.uuid in self._uuids

    def record(self) -> BatchJob:
        last = self.attempts[-1] if self.attempts else None
        return BatchJob(
            name=self.spec.name,
            status=_FINAL.get(self.status, "failed"),
            exit_code=None if last is None or last.returncode is None else children.exit_code(last.returncode),
            reason=last.reason if last else ("not started" if self.status == "not started" else ""),
            attempts=len(self.attempts),
            duration_s=round(sum(a.duration_s for a in self.attempts), 3),
            instance=launch.device_ref(last.device) if last else None,
            log=str(self.log) if self.log else None,
            command=self.spec.argv,
            history=tuple(
                AttemptRecord(
                    instance=a.device.uuid,
                    exit_code=None if a.returncode is None else children.exit_code(a.returncode),
                    reason=a.reason,
                    duration_s=round(a.duration_s, 3),
                )
                for a in self.attempts
            ),
        )


class Batch:
    """The scheduler. Build it with jobs, call :meth:`run` once."""

    def __init__(
        self,
        node: Node,
        jobs: Sequence[ReadyJob],
        *,
        logs_dir: Path | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        max_parallel: int | None = None,
        on_progress: Callable[[BatchProgress], None] | None = None,
    ) -> None:
        self.node = node
        self.jobs = [_Job(j) for j in jobs]
        self.logs_dir = logs_dir or default_logs_dir()
        self.grace_s = grace_s
        self.max_parallel = max_parallel
        self.on_progress = on_progress
        self.launcher = launch.Launcher(node, background_registration=True)
        seen: dict[str, MigDeviceInfo] = {}
        for candidates in {id(j.candidates): j.candidates for j in jobs}.values():
            for d in candidates:
                seen.setdefault(d.uuid, d)
        self.devices = sorted(seen.values(), key=lambda d: (d.gpu_index, d.index))
        self.pending: list[_Job] = list(self.jobs)
        self.running: dict[int, _Job] = {}  # pid -> job
        self.ours: dict[str, _Job] = {}  # uuid -> job
        self.load: dict[int, int] = {}
        self.elsewhere_until: dict[str, float] = {}  # held by someone else: look again after
        self.stopping: int | None = None
        self.started = 0.0
        self._devnull = -1
        self._last_progress = 0.0
        self.launch_costs: list[float] = []  # seconds per launch: log, spawn, lease record, registration

    # -- launching --

    def _free(self, now: float) -> list[MigDeviceInfo]:
        for uuid in [u for u, t in self.elsewhere_until.items() if t <= now]:
            del self.elsewhere_until[uuid]
        return [d for d in self.devices if d.uuid not in self.ours and self.elsewhere_until.get(d.uuid, 0.0) <= now]

    def _launch_ready(self) -> None:
        """Start what can start. The assignment is planned: jobs that name devices (a profile,
        ``GPU:GI``, a UUID) choose first, in queue order, among the free devices they accept;
        then the jobs that run anywhere take, in queue order, the smallest free device left. So
        a job that could run anywhere never takes the instance a waiting job asked for."""
        if not self.pending:
            return
        now = time.monotonic()
        free = self._free(now)
        named = [j for j in self.pending if not j.spec.any_device]
        for job in named + [j for j in self.pending if j.spec.any_device]:
            if not free or (self.max_parallel and len(self.running) >= self.max_parallel):
                break
            options = [d for d in free if job.allows(d)]
            if not options:
                continue
            failed_on = {a.device.uuid for a in job.attempts}

            def order(d: MigDeviceInfo, job: _Job = job, failed_on: set[str] = failed_on) -> tuple[object, ...]:
                smallest = launch.size(d) if job.spec.any_device else (0, 0)
                return (d.uuid in failed_on, smallest, self.load.get(d.gpu_index, 0), d.gpu_index, d.index)

            options.sort(key=order)
            for dev in options:
                free.remove(dev)
                found = self.launcher.try_lease(dev, " ".join(job.spec.argv), job=job.spec.name)
                if isinstance(found, launch.Gone):
                    self._gone(dev, found.why)
                    if job.status != "pending":
                        break
                    continue
                if not isinstance(found, leases.Lease):
                    self.elsewhere_until[dev.uuid] = now + RECHECK_S
                    continue
                self._start(job, dev, found)
                break
        # Started jobs leave the queue; a failed start may have put one back at its head.
        self.pending = [j for j in dict.fromkeys(self.pending) if j.status == "pending"]

    def _gone(self, dev: MigDeviceInfo, why: str) -> None:
        """A device was destroyed under the batch: drop it; jobs only it could run fail."""
        self.devices = [d for d in self.devices if d.uuid != dev.uuid]
        left = {d.uuid for d in self.devices}
        for job in self.pending:
            if not any(d.uuid in left for d in job.spec.candidates):
                job.status = "failed"
                job.attempts.append(_Attempt(dev, None, f"{dev.uuid}: {why}"))

    def _start(self, job: _Job, dev: MigDeviceInfo, lease: leases.Lease) -> None:
        t0 = time.perf_counter()
        try:
            self._start_attempt(job, dev, lease)
        finally:
            self.launch_costs.append(time.perf_counter() - t0)

    def _start_attempt(self, job: _Job, dev: MigDeviceInfo, lease: leases.Lease) -> None:
        job.status = "running"
        attempt = _Attempt(dev)
        job.attempts.append(attempt)
        job.timed_out = False
        job.kill_at = None
        if job.log is None:
            job.log = self.logs_dir / f"{_safe(job.spec.name)}.log"
        fd = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(
                fd,
                (
                    f"### migctl batch: {job.spec.name} attempt {len(job.attempts)} on {dev.uuid} "
                    f"({launch.label(dev)}) at {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(job.spec.argv)}\n"
                ).encode(),
            )
            child = self.launcher.start(
                dev,
                lease,
                job.spec.argv,
                extra_env=job.spec.env,
                new_session=True,
                stdin=self._devnull,
                stdout=fd,
                stderr=fd,
                executable=job.spec.executable,
                job=job.spec.name,
            )
        except MigctlError as exc:
            lease.release()
            attempt.returncode = 127
            attempt.reason = str(exc)
            self._after_attempt(job)
            return
        finally:
            os.close(fd)
        job.child = child
        job.lease = lease
        self.running[child.pid] = job
        self.ours[dev.uuid] = job
        self.load[dev.gpu_index] = self.load.get(dev.gpu_index, 0) + 1

    # -- finishing --

    def _reap(self) -> None:
        # Each of our children by pid (not waitpid(-1)): a program using the Python API may have
        # children of its own, whose exit statuses are not ours to take.
        for pid, job in list(self.running.items()):
            assert job.child is not None
            if job.child.poll() is not None:
                del self.running[pid]
                self._finished(job)

    def _finished(self, job: _Job) -> None:
        assert job.child is not None and job.lease is not None
        child, attempt = job.child, job.attempts[-1]
        rc = child.returncode
        assert rc is not None
        attempt.returncode = rc
        attempt.duration_s = time.monotonic() - child.started
        # Whatever the job left running in its group would hold the device: end it.
        child.signal_group(signal.SIGKILL)
        job.lease.release()
        job.lease = None
        dev = attempt.device
        self.ours.pop(dev.uuid, None)
        self.load[dev.gpu_index] -= 1
        if job.timed_out:
            assert job.spec.timeout is not None
            attempt.reason = f"timed out after {job.spec.timeout:g} s ({children.describe_exit(rc)})"
        elif rc == -signal.SIGKILL:
            attempt.reason = "killed by SIGKILL (out of memory? see the kernel log)"
        elif rc != 0:
            attempt.reason = children.describe_exit(rc)
        self._after_attempt(job)

    def _after_attempt(self, job: _Job) -> None:
        rc = job.attempts[-1].returncode
        if rc == 0:
            job.status = "succeeded"
        elif self.stopping is not None:
            job.status = "interrupted"
        elif len(job.attempts) <= job.spec.retries:
            job.status = "pending"
            self.pending.insert(0, job)
        else:
            job.status = "failed"

    # -- stopping --

    def _stop(self, sig: int) -> None:
        now = time.monotonic()
        if self.stopping is not None:  # a second Ctrl-C: no more grace
            for job in self.running.values():
                assert job.child is not None
                job.child.signal_group(signal.SIGKILL)
            return
        self.stopping = sig
        for job in self.pending:
            job.status = "not started"
        self.pending = []
        for job in self.running.values():
            assert job.child is not None
            job.child.signal_group(signal.SIGTERM)
            job.kill_at = now + self.grace_s

    def _deadlines(self) -> None:
        now = time.monotonic()
        for job in self.running.values():
            assert job.child is not None
            timeout = job.spec.timeout
            if job.kill_at is not None and now >= job.kill_at:
                job.child.signal_group(signal.SIGKILL)
                job.kill_at = None
            elif timeout is not None and not job.timed_out and now - job.child.started >= timeout:
                job.timed_out = True
                job.child.signal_group(signal.SIGTERM)
                job.kill_at = now + self.grace_s

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        times = [now + 1.0]
        for job in self.running.values():
            assert job.child is not None
            if job.kill_at is not None:
                times.append(job.kill_at)
            elif job.spec.timeout is not None and not job.timed_out:
                times.append(job.child.started + job.spec.timeout)
        if self.pending and self.stopping is None:
            times.extend(t for t in self.elsewhere_until.values() if t > now)
        if self.on_progress is not None:
            times.append(self._last_progress + PROGRESS_S)
        return max(0.0, min(times) - now)

    # -- the loop --

    def run(self) -> BatchReport:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)
        self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with blocked(signals):
                self._progress(force=True)
                while self.pending or self.running:
                    if self.stopping is None:
                        self._launch_ready()
                    info = signal.sigtimedwait(set(signals), self._next_wakeup())
                    if info is not None and info.si_signo != signal.SIGCHLD:
                        self._stop(info.si_signo)
                    self._reap()
                    self._deadlines()
                    self._progress()
        finally:
            self.launcher.registry.close()
            os.close(self._devnull)
            for job in list(self.running.values()):  # only on an unexpected error: leave nothing behind
                assert job.child is not None
                job.child.signal_group(signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(job.child.pid, 0)
                if job.lease is not None:
                    job.lease.release()
        return self._report(time.monotonic() - self.started)

    def _report(self, wall_s: float) -> BatchReport:
        jobs = tuple(j.record() for j in self.jobs)
        statuses = ("succeeded", "failed", "interrupted", "not started")
        counts = {s: sum(1 for j in jobs if j.status == s) for s in statuses}
        not_ok = len(jobs) - counts["succeeded"]
        costs = self.launch_costs
        summary = BatchSummary(
            jobs=len(jobs),
            succeeded=counts["succeeded"],
            failed=counts["failed"],
            interrupted=counts["interrupted"],
            not_started=counts["not started"],
            wall_s=round(wall_s, 3),
            stopped_by=None if self.stopping is None else children.signal_name(self.stopping),
            logs=str(self.logs_dir),
            exit_code=BatchSummary.exit_status(not_ok, self.stopping),
            launch_ms_mean=round(1000 * sum(costs) / len(costs), 3) if costs else None,
        )
        return BatchReport(jobs, summary)

    # -- progress (for a live view) --

    def _progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress is None or (not force and now - self._last_progress < PROGRESS_S):
            return
        self._last_progress = now
        counts = {"succeeded": 0, "failed": 0, "interrupted": 0}
        for j in self.jobs:
            if j.status in counts:
                counts[j.status] += 1
        running = []
        for j in self.running.values():
            assert j.child is not None
            device = launch.device_ref(j.attempts[-1].device)
            running.append(RunningJob(j.spec.name, device, len(j.attempts), now - j.child.started))
        self.on_progress(
            BatchProgress(
                total=len(self.jobs),
                succeeded=counts["succeeded"],
                failed=counts["failed"],
                interrupted=counts["interrupted"],
                waiting=len(self.pending),
                running=tuple(running),
                elapsed_s=now - self.started,
                stopping=self.stopping is not None,
            )
        )


def run_batch(
    node: Node,
    jobs: Sequence[ReadyJob],
    *,
    logs_dir: Path | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    max_parallel: int | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
) -> BatchReport:
    """Run ``jobs`` to the end (or to Ctrl-C/SIGTERM/SIGHUP, which stop it gracefully)."""
    return Batch(
        node, jobs, logs_dir=logs_dir, grace_s=grace_s, max_parallel=max_parallel, on_progress=on_progress
    ).run()
