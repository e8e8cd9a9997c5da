"""``migctl batch``: many jobs in parallel, each on its own MIG device as soon as one is free.

One process schedules every job: it leases a free device, starts the job there directly
(``posix_spawn``, the same environment and lease logic as ``migctl run``; no ``migctl run``
per job), and waits for children, signals and deadlines in one ``sigtimedwait`` loop. The
MIG inventory is read once; a launch touches only the device it uses (its lease file, one NVML
process query, and on the simulator one registration), so starting a job costs a few ms.

Each job leads its own session (``setsid``), so its process group is everything it started:
a timeout, Ctrl-C or SIGTERM ends the whole group (SIGTERM, then SIGKILL after the grace
period), and when a job's main process ends, what it left behind in its group is killed so
the device is free at once.

Jobs file (YAML or JSON)::

    defaults:              # optional; every job inherits these
      retries: 1
      timeout: 3600        # seconds per attempt
      env: {PYTHONUNBUFFERED: "1"}
    jobs:
      - name: train-a                 # default job-<n>
        command: [python, train.py, --lr, "0.1"]   # argv list, no shell
        profile: 1g.12gb              # or target: MIG-<uuid> | GPU:GI | profile; default any
        env: {SEED: "1"}
        retries: 2
        timeout: 600
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from migctl.device import MigDeviceInfo, Node
from migctl.errors import MigctlError, UsageError
from migctl.ops import launch, leases
from migctl.ops.launch import Child, Launcher
from migctl.ops.run import blocked

DEFAULT_GRACE_S = 10.0
#: How often devices that someone else holds are looked at again while jobs wait for them.
RECHECK_S = 0.5
REFRESH_S = 0.25
#: Variables migctl sets for each job; a jobs file may not override them.
RESERVED_ENV = frozenset(launch.device_env(MigDeviceInfo(0, 0, "MIG-x", 0, 0, "p", 0)))

# -- the jobs file ----------------------------------------------------------------------------------

Scalar = str | int | float | bool


def _as_text(value: Scalar) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobDefaults(_Strict):
    target: str | None = None
    profile: str | None = None
    env: dict[str, Scalar] = Field(default_factory=dict)
    retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)


class JobSpec(_Strict):
    """One job as a jobs file gives it."""

    name: str | None = Field(default=None, min_length=1)
    command: list[Scalar] = Field(min_length=1)
    target: str | None = None
    profile: str | None = None
    env: dict[str, Scalar] = Field(default_factory=dict)
    retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "expected an argv list such as [python, train.py] (no shell is used; for one write [sh, -c, '...'])"
            )
        return value


class JobsFile(_Strict):
    defaults: JobDefaults | None = None
    jobs: list[JobSpec] = Field(min_length=1)


PathKey = tuple[str | int, ...]


def _fmt_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(source: str, lines: Mapping[PathKey, int], path: PathKey) -> str:
    line = next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)
    head = source if line is None else f"{source}:{line}"
    return f"{head}: {_fmt_path(path)}" if path else head


def file_error(source: str, lines: Mapping[PathKey, int], path: PathKey, message: str) -> UsageError:
    """``jobs.yaml:7: jobs[2].command: message`` (exit 2)."""
    return UsageError(f"{_where(source, lines, path)}: {' '.join(message.split())}")


def _compose(text: str, source: str) -> tuple[Any, dict[PathKey, int]]:
    """YAML (or JSON) -> plain data plus the line of every key and list item."""
    lines: dict[PathKey, int] = {}
    ctor = yaml.constructor.SafeConstructor()

    def walk(node: yaml.Node, path: PathKey) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return ctor.construct_object(node)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                sub: PathKey = (*path, i)
                lines[sub] = item.start_mark.line + 1
                items.append(walk(item, sub))
            return items
        assert isinstance(node, yaml.MappingNode)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            at: PathKey = (*path, key)
            if key in out:
                line = {at: key_node.start_mark.line + 1}
                raise file_error(source, line, at, f"duplicate key (first at line {lines[at]})")
            lines[at] = key_node.start_mark.line + 1
            out[key] = walk(value_node, at)
        return out

    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 10x faster
        if root is None:
            raise UsageError(f"{source}: the file is empty", hint="it needs a 'jobs:' list")
        return walk(root, ()), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{source}{line}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: invalid YAML: {exc}") from None


def _locate(loc: Sequence[Any], data: Any) -> PathKey:
    """pydantic's error location (with union-member tags) -> the path of keys in ``data``."""
    path: list[str | int] = []
    cur = data
    for n, part in enumerate(loc):
        in_dict = isinstance(cur, dict) and isinstance(part, str) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_dict or in_list:
            cur = cur[part]
        elif n == len(loc) - 1 and isinstance(cur, dict) and isinstance(part, str):
            cur = None  # a missing or unknown key
        else:
            continue
        path.append(part)
    return tuple(path)


def _pydantic_message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    if kind == "too_short":
        return "must not be empty"
    got = err.get("input")
    shown = repr(got) if isinstance(got, str | int | float | bool | type(None)) else type(got).__name__
    return f"{err['msg'].lower()}, got {shown}"


# -- jobs ------------------------------------------------------------------------------------------


@dataclass
class Attempt:
    device: MigDeviceInfo
    returncode: int | None = None
    reason: str = ""
    duration_s: float = 0.0


@dataclass(eq=False)
class Job:
    """A job and, once running, its state."""

    name: str
    argv: list[str]
    candidates: list[MigDeviceInfo]
    target: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    timeout: float | None = None
    executable: str | None = None
    # state
    status: str = "pending"  # pending, running, succeeded, failed, interrupted, not started
    attempts: list[Attempt] = field(default_factory=list)
    child: Child | None = None
    lease: leases.Lease | None = None
    log: Path | None = None
    timed_out: bool = False
    kill_at: float | None = None
    any_device: bool = False

    def __post_init__(self) -> None:
        self._uuids = frozenset(d.uuid for d in self.candidates)

    def allows(self, dev: MigDeviceInfo) -> bool:
        return self.any_device or dev.uuid in self._uuids

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def duration_s(self) -> float:
        return sum(a.duration_s for a in self.attempts)


def _job_env(values: Mapping[str, Scalar], source: str, lines: Mapping[PathKey, int], path: PathKey) -> dict[str, str]:
    env = {}
    for key, value in values.items():
        if key in RESERVED_ENV:
            raise file_error(source, lines, (*path, key), "set by migctl for the device it picks; remove it")
        env[key] = _as_text(value)
    return env


def load_jobs(path: Path, node: Node, *, retries: int | None = None, timeout: float | None = None) -> list[Job]:
    """Read and check a jobs file against the node; every problem is ``file:line: key: message`` (exit 2).

    ``retries``/``timeout`` are defaults for jobs (and a ``defaults:`` section) that set none.
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{source}: cannot read the jobs file: {exc.strerror or exc}") from None
    data, lines = _compose(text, source)
    try:
        spec = JobsFile.model_validate(data)
    except ValidationError as exc:
        found = []
        for e in exc.errors():
            loc = _locate(e["loc"], data)
            line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 0)
            found.append((line, loc, e))
        found.sort(key=lambda f: f[0])
        _, loc, first = found[0]
        # A value given in one of several accepted types fails once per type: count places, not tries.
        places = len({f[1] for f in found})
        more = f" (and {places - 1} more problem{'s' if places > 2 else ''})" if places > 1 else ""
        raise file_error(source, lines, loc, _pydantic_message(first) + more) from None
    devices = launch.inventory(node)
    if not devices:
        raise launch.no_mig_devices()
    defaults = spec.defaults or JobDefaults()
    default_env = _job_env(defaults.env, source, lines, ("defaults", "env"))
    jobs: list[Job] = []
    names: dict[str, int] = {}
    resolved: dict[tuple[str, str], str] = {}
    matched: dict[str | None, list[MigDeviceInfo]] = {}
    for n, js in enumerate(spec.jobs):
        at: PathKey = ("jobs", n)
        name = js.name or f"job-{n + 1}"
        if name in names:
            raise file_error(source, lines, (*at, "name"), f"duplicate job name (also jobs[{names[name]}])")
        names[name] = n
        target = js.target
        if js.target is not None and js.profile is not None:
            raise file_error(source, lines, (*at, "profile"), "give target or profile, not both")
        if target is None:
            target = js.profile
        if target is None and js.target is None:
            target = defaults.target if defaults.target is not None else defaults.profile
        key = "target" if js.target is not None else "profile"
        try:
            candidates = matched.get(target) or matched.setdefault(target, launch.match_target(target, devices))
        except UsageError as exc:
            raise file_error(source, lines, (*at, key) if (*at, key) in lines else at, f"{exc}") from None
        env = {**default_env, **_job_env(js.env, source, lines, (*at, "env"))}
        argv = [_as_text(a) for a in js.command]
        search = env.get("PATH", os.environ.get("PATH", os.defpath))
        exe = resolved.get((argv[0], search))
        if exe is None:
            try:
                exe = launch.resolve_command(argv, {"PATH": search})
            except UsageError as exc:
                raise file_error(source, lines, (*at, "command"), exc.message) from None
            resolved[(argv[0], search)] = exe
        jobs.append(
            Job(
                name=name,
                argv=argv,
                candidates=candidates,
                target=target,
                env=env,
                retries=_first(js.retries, defaults.retries, retries, 0),
                timeout=_first(js.timeout, defaults.timeout, timeout),
                executable=exe,
                any_device=target is None,
            )
        )
    return jobs


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def each_instance_jobs(
    node: Node, argv: Sequence[str], target: str | None = None, *, retries: int = 0, timeout: float | None = None
) -> list[Job]:
    """One job per MIG device (those ``target`` selects), each pinned to its device."""
    exe = launch.resolve_command(argv)
    devices = launch.match_target(target, launch.inventory(node))
    return [
        Job(
            name=f"gpu{d.gpu_index}-gi{d.gi_id}" + (f"-ci{d.ci_id}" if d.ci_id else ""),
            argv=list(argv),
            candidates=[d],
            target=d.uuid,
            retries=retries,
            timeout=timeout,
            executable=exe,
        )
        for d in devices
    ]


def make_job(
    name: str,
    argv: Sequence[str],
    devices: Sequence[MigDeviceInfo],
    *,
    target: str | None = None,
    env: Mapping[str, str] | None = None,
    retries: int = 0,
    timeout: float | None = None,
) -> Job:
    """A job for the Python API (what one entry of a jobs file becomes)."""
    return Job(
        name=name,
        argv=list(argv),
        candidates=launch.match_target(target, devices),
        target=target,
        env=dict(env or {}),
        retries=retries,
        timeout=timeout,
        executable=launch.resolve_command(argv, {**os.environ, **(env or {})}),
        any_device=target is None,
    )


# -- running ---------------------------------------------------------------------------------------


def default_logs_dir() -> Path:
    return Path.cwd() / "migctl-logs" / time.strftime(f"batch-%Y%m%d-%H%M%S-{os.getpid()}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120] or "job"


@dataclass
class BatchResult:
    jobs: list[Job]
    wall_s: float
    logs_dir: Path
    interrupted: int | None = None  # the signal that stopped the batch
    launch_costs: list[float] = field(default_factory=list)  # seconds spent starting each attempt

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.jobs if j.status != "succeeded"]

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 128 + self.interrupted
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for j in self.jobs:
            counts[j.status] = counts.get(j.status, 0) + 1
        return {
            "jobs": [_job_json(j) for j in self.jobs],
            "summary": {
                "jobs": len(self.jobs),
                "succeeded": counts.get("succeeded", 0),
                "failed": counts.get("failed", 0),
                "interrupted": counts.get("interrupted", 0),
                "not_started": counts.get("not started", 0),
                "wall_s": round(self.wall_s, 3),
                "stopped_by": signal.Signals(self.interrupted).name if self.interrupted else None,
                "logs": str(self.logs_dir),
                "exit_code": self.exit_code,
                "launch_ms_mean": round(1000 * sum(self.launch_costs) / len(self.launch_costs), 3)
                if self.launch_costs
                else None,
            },
        }


def _device_json(d: MigDeviceInfo | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "uuid": d.uuid,
        "gpu": d.gpu_index,
        "gpu_instance_id": d.gi_id,
        "compute_instance_id": d.ci_id,
        "profile": d.profile,
    }


def _job_json(j: Job) -> dict[str, Any]:
    last = j.last
    return {
        "name": j.name,
        "status": j.status,
        "exit_code": None if last is None or last.returncode is None else launch.exit_code(last.returncode),
        "reason": last.reason if last else ("not started" if j.status == "not started" else ""),
        "attempts": len(j.attempts),
        "duration_s": round(j.duration_s, 3),
        "instance": _device_json(last.device if last else None),
        "log": str(j.log) if j.log else None,
        "command": j.argv,
        "history": [
            {
                "instance": a.device.uuid,
                "exit_code": None if a.returncode is None else launch.exit_code(a.returncode),
                "reason": a.reason,
                "duration_s": round(a.duration_s, 3),
            }
            for a in j.attempts
        ],
    }


class Batch:
    """The scheduler. Build it with jobs, call :meth:`run` once."""

    def __init__(
        self,
        node: Node,
        jobs: Sequence[Job],
        *,
        logs_dir: Path | None = None,
        grace_s: float = DEFAULT_GRACE_S,
        max_parallel: int | None = None,
        console: Console | None = None,
    ) -> None:
        self.node = node
        self.jobs = list(jobs)
        self.logs_dir = logs_dir or default_logs_dir()
        self.grace_s = grace_s
        self.max_parallel = max_parallel
        self.console = console
        self.launcher = Launcher(node, background_registration=True)
        seen: dict[str, MigDeviceInfo] = {}
        for candidates in {id(j.candidates): j.candidates for j in self.jobs}.values():
            for d in candidates:
                seen.setdefault(d.uuid, d)
        self.devices = sorted(seen.values(), key=lambda d: (d.gpu_index, d.index))
        self.pending: list[Job] = list(self.jobs)
        self.running: dict[int, Job] = {}  # pid -> job
        self.ours: dict[str, Job] = {}  # uuid -> job
        self.load: dict[int, int] = {}
        self.elsewhere_until: dict[str, float] = {}  # held by someone else: look again after
        self.stopping: int | None = None
        self.started = 0.0
        self._devnull = -1
        self._live: Live | None = None
        self._last_refresh = 0.0
        self.launch_costs: list[float] = []  # seconds per launch: log, spawn, lease record, registration

    # -- launching --

    def _free(self, now: float) -> list[MigDeviceInfo]:
        for uuid in [u for u, t in self.elsewhere_until.items() if t <= now]:
            del self.elsewhere_until[uuid]
        return [d for d in self.devices if d.uuid not in self.ours and self.elsewhere_until.get(d.uuid, 0.0) <= now]

    def _launch_ready(self) -> None:
        if not self.pending:
            return
        now = time.monotonic()
        free = self._free(now)
        for job in list(self.pending):
            if not free or (self.max_parallel and len(self.running) >= self.max_parallel):
                break
            options = [d for d in free if job.allows(d)]
            if not options:
                continue
            failed_on = {a.device.uuid for a in job.attempts}
            options.sort(key=lambda d: (d.uuid in failed_on, self.load.get(d.gpu_index, 0), d.gpu_index, d.index))
            for dev in options:
                free.remove(dev)
                lease, who = self.launcher.try_lease(dev, " ".join(job.argv), job=job.name)
                if lease is None:
                    if who is not None and who.get("gone"):
                        self._gone(dev, str(who.get("command")))
                        if job.status != "pending":
                            break
                    else:
                        self.elsewhere_until[dev.uuid] = now + RECHECK_S
                    continue
                self._start(job, dev, lease)
                break
        # Started jobs leave the queue; a failed start may have put one back at its head.
        self.pending = [j for j in dict.fromkeys(self.pending) if j.status == "pending"]

    def _gone(self, dev: MigDeviceInfo, why: str) -> None:
        """A device was destroyed under the batch: drop it; jobs only it could run fail."""
        self.devices = [d for d in self.devices if d.uuid != dev.uuid]
        left = {d.uuid for d in self.devices}
        for job in self.pending:
            if not any(d.uuid in left for d in job.candidates):
                job.status = "failed"
                job.attempts.append(Attempt(dev, None, f"{dev.uuid} {why}"))

    def _start(self, job: Job, dev: MigDeviceInfo, lease: leases.Lease) -> None:
        t0 = time.perf_counter()
        try:
            self._start_attempt(job, dev, lease)
        finally:
            self.launch_costs.append(time.perf_counter() - t0)

    def _start_attempt(self, job: Job, dev: MigDeviceInfo, lease: leases.Lease) -> None:
        job.status = "running"
        attempt = Attempt(dev)
        job.attempts.append(attempt)
        job.timed_out = False
        job.kill_at = None
        if job.log is None:
            job.log = self.logs_dir / f"{_safe(job.name)}.log"
        fd = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(
                fd,
                (
                    f"### migctl batch: {job.name} attempt {len(job.attempts)} on {dev.uuid} ({launch.label(dev)}) "
                    f"at {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(job.argv)}\n"
                ).encode(),
            )
            child = self.launcher.start(
                dev,
                lease,
                job.argv,
                extra_env=job.env,
                new_session=True,
                stdin=self._devnull,
                stdout=fd,
                stderr=fd,
                executable=job.executable,
                job=job.name,
            )
        except MigctlError as exc:
            lease.release()
            attempt.returncode = 127
            attempt.reason = str(exc)
            self._after_attempt(job, dev)
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

    def _finished(self, job: Job) -> None:
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
            attempt.reason = f"timed out after {job.timeout:g} s ({launch.describe_exit(rc)})"
        elif rc == -signal.SIGKILL:
            attempt.reason = "killed by SIGKILL (out of memory? see the kernel log)"
        elif rc != 0:
            attempt.reason = launch.describe_exit(rc)
        self._after_attempt(job, dev)

    def _after_attempt(self, job: Job, dev: MigDeviceInfo) -> None:
        rc = job.attempts[-1].returncode
        if rc == 0:
            job.status = "succeeded"
        elif self.stopping is not None:
            job.status = "interrupted"
        elif len(job.attempts) <= job.retries:
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
            if job.kill_at is not None and now >= job.kill_at:
                job.child.signal_group(signal.SIGKILL)
                job.kill_at = None
            elif job.timeout is not None and not job.timed_out and now - job.child.started >= job.timeout:
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
            elif job.timeout is not None and not job.timed_out:
                times.append(job.child.started + job.timeout)
        if self.pending and self.stopping is None:
            times.extend(t for t in self.elsewhere_until.values() if t > now)
        if self._live is not None:
            times.append(self._last_refresh + REFRESH_S)
        return max(0.0, min(times) - now)

    # -- the loop --

    def run(self) -> BatchResult:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)
        self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with blocked(signals), self._progress():
                while self.pending or self.running:
                    if self.stopping is None:
                        self._launch_ready()
                    info = signal.sigtimedwait(set(signals), self._next_wakeup())
                    if info is not None and info.si_signo != signal.SIGCHLD:
                        self._stop(info.si_signo)
                    self._reap()
                    self._deadlines()
                    self._refresh()
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
        return BatchResult(self.jobs, time.monotonic() - self.started, self.logs_dir, self.stopping, self.launch_costs)

    # -- the live view (a terminal only) --

    @contextlib.contextmanager
    def _progress(self) -> Any:
        if self.console is None:
            yield
            return
        with Live(self._view(), console=self.console, auto_refresh=False, transient=True) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._live is None or now - self._last_refresh < REFRESH_S:
            return
        self._last_refresh = now
        self._live.update(self._view(), refresh=True)

    def _view(self) -> Group:
        counts = {"succeeded": 0, "failed": 0, "interrupted": 0}
        for j in self.jobs:
            if j.status in counts:
                counts[j.status] += 1
        done = sum(counts.values())
        elapsed = time.monotonic() - self.started if self.started else 0.0
        head = Text(
            f"jobs {done}/{len(self.jobs)} done ({counts['succeeded']} ok, {counts['failed']} failed), "
            f"{len(self.running)} running, {len(self.pending)} waiting   {elapsed:.1f} s"
            + ("   stopping..." if self.stopping else "")
        )
        table = Table(box=None, pad_edge=False, header_style="dim")
        for col in ("job", "instance", "attempt", "running"):
            table.add_column(col)
        now = time.monotonic()
        shown = list(self.running.values())[:20]
        for j in shown:
            assert j.child is not None and j.last is not None
            where = f"{launch.short(j.last.device)} {j.last.device.uuid}"
            table.add_row(j.name, where, str(len(j.attempts)), f"{now - j.child.started:.1f} s")
        parts: list[Any] = [head, ProgressBar(total=max(1, len(self.jobs)), completed=done, width=60), table]
        if len(self.running) > len(shown):
            parts.append(Text(f"... and {len(self.running) - len(shown)} more running", style="dim"))
        return Group(*parts)


def run_batch(
    node: Node,
    jobs: Sequence[Job],
    *,
    logs_dir: Path | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    max_parallel: int | None = None,
    console: Console | None = None,
) -> BatchResult:
    """Run ``jobs`` to the end (or to Ctrl-C/SIGTERM); ``console`` shows a live view."""
    return Batch(node, jobs, logs_dir=logs_dir, grace_s=grace_s, max_parallel=max_parallel, console=console).run()


def render_summary(console: Console, data: dict[str, Any]) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("job", "instance", "exit", "attempts", "duration", "status"):
        # one line per job even on a narrow terminal: the UUID is cut there (whole in --json)
        table.add_column(
            col,
            justify="right" if col in ("exit", "attempts", "duration") else "left",
            no_wrap=col == "instance",
            overflow="ellipsis",
        )
    for j in data["jobs"]:
        inst = j["instance"]
        where = "-" if inst is None else f"{inst['gpu']}:{inst['gpu_instance_id']} {inst['uuid']}"
        status = j["status"] + (f": {j['reason']}" if j["reason"] and j["status"] != "succeeded" else "")
        table.add_row(
            j["name"],
            where,
            "-" if j["exit_code"] is None else str(j["exit_code"]),
            str(j["attempts"]),
            f"{j['duration_s']:.1f} s",
            status,
        )
    console.print(table)
    s = data["summary"]
    line = (
        f"{s['jobs']} jobs: {s['succeeded']} succeeded, {s['failed']} failed"
        + (f", {s['interrupted']} interrupted" if s["interrupted"] else "")
        + (f", {s['not_started']} not started" if s["not_started"] else "")
        + f" in {s['wall_s']:.1f} s; logs in {s['logs']}"
    )
    if s["stopped_by"]:
        line = f"stopped by {s['stopped_by']}: " + line
    console.print(line, markup=False)
