"""Jobs ready for ``migctl batch --auto``: each job's memory, work and speeds known, checked against the GPUs.

A job's needs come from the jobs file (:mod:`migctl.config.autojobs`) and, for a ``model``, from
migctl's speed table (:func:`migctl.data.find_workload`: its speeds, and its memory unless the
file gives one). Everything is checked before anything runs or changes, so a bad batch fails at
once, naming the file, line and key: a job without memory or work, a model the table lacks, a
job with a ``target`` (``--auto`` picks devices itself), a command not found, and a job no
profile of the chosen GPUs can hold (with the scheduler's reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migctl.config.errors import ConfigError
from migctl.config.jobs import JobsFile, JobSpec
from migctl.config.target import AnyDevice
from migctl.core.geometry import GpuGeometry
from migctl.core.scheduler import GpuState, Job, decide
from migctl.device import Gpu, Node
from migctl.errors import NotSupportedError, UsageError
from migctl.ops.gpus import for_reshape
from migctl.ops.jobs import Executables, ReadyJob, first_set, named_specs, read_jobs_file


@dataclass(frozen=True)
class AutoJob:
    """A job of ``batch --auto``: how to run it (:class:`ReadyJob`) and what the scheduler knows of it."""

    ready: ReadyJob
    memory_mib: int
    work_s: float
    speeds: tuple[tuple[str, float], ...]
    model: str | None = None
    """``resnet:128`` when its speeds came from the speed table."""

    @property
    def name(self) -> str:
        return self.ready.name

    def as_job(self, arrival: float = 0.0) -> Job:
        """The scheduler's view of it."""
        return Job(self.name, self.memory_mib, self.work_s, self.speeds, arrival)


def scope(node: Node, gpus: str | None) -> list[Gpu]:
    """The MIG-capable GPUs ``gpus`` (``-i``) names (:func:`migctl.ops.gpus.for_reshape`), each
    with profiles the driver reports.

    A chosen GPU that is not MIG-capable is a :class:`UsageError`; none at all is a
    :class:`NotSupportedError`.
    """
    out = []
    for g in for_reshape(node, gpus):
        if g.geometry().profiles:
            out.append(g)
        elif gpus is not None:
            raise UsageError(
                f"-i {gpus}: GPU {g.index} lists no MIG profiles while MIG is off",
                hint=f"switch MIG on first: migctl mode enable -i {g.index}",
            )
    if not out:
        raise NotSupportedError(
            "no MIG-capable GPU to schedule on" + (f" among -i {gpus}" if gpus is not None else ""),
            hint="batch --auto needs GPUs whose driver lists MIG profiles (enable MIG on one: migctl mode enable -i N)",
        )
    return out


def load_auto_jobs(
    path: Path,
    node: Node,
    gpus: Sequence[Gpu],
    *,
    retries: int | None = None,
    timeout: float | None = None,
) -> list[AutoJob]:
    """Read a jobs file for ``--auto``; every problem is a :class:`UsageError` ``file:line: key: message``."""
    parsed = read_jobs_file(path)
    try:
        return ready_auto(node, gpus, parsed.jobs, retries=retries, timeout=timeout, located=parsed)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def ready_auto(
    node: Node,
    gpus: Sequence[Gpu],
    specs: Sequence[JobSpec],
    *,
    retries: int | None = None,
    timeout: float | None = None,
    located: JobsFile | None = None,
) -> list[AutoJob]:
    """Check ``specs`` for ``--auto`` against ``gpus``. Problems are :class:`ConfigError` located in
    the file when ``located`` is the file they came from, else :class:`UsageError` naming the job."""
    geometries = [(g.index, g.geometry()) for g in gpus]
    executables = Executables()
    out: list[AutoJob] = []
    for spec, name, problem in named_specs(specs, located):
        if not isinstance(spec.target, AnyDevice):
            raise problem(
                ("target", "profile"),
                "with --auto migctl chooses each job's profile and device; remove target/profile "
                "(or run the batch without --auto)",
            )
        auto = spec.auto
        memory = auto.memory_mib if auto else None
        speeds = auto.speeds if auto else ()
        model: str | None = None
        if auto is not None and auto.model is not None:
            from migctl.data import find_workload, workloads

            try:
                row = find_workload(workloads(), auto.model, auto.batch)
            except KeyError as exc:
                raise problem(("model", "batch"), str(exc.args[0])) from None
            model = row.key
            memory = memory if memory is not None else row.memory_mib
            speeds = speeds or row.speeds()
        if memory is None:
            raise problem(
                ("memory",),
                "with --auto each job needs memory: (the GPU memory it uses, e.g. memory: 10GiB) "
                "or model: (a row of the speed table)",
            )
        work = auto.work_s if auto else None
        if work is None:
            raise problem(
                ("work", "times"),
                "with --auto each job needs work: (its run time where its speed is 1.0, e.g. work: 20m; "
                "with a model, its run time on the largest profile) or times: (run time per profile)",
            )
        job = AutoJob(
            ReadyJob(name, tuple(spec.command), (), True, "", dict(spec.env)), memory, work, tuple(speeds), model
        )
        reason = _why_unfit(job.as_job(), geometries)
        if reason is not None:
            raise problem(("memory", "speeds", "times", "model"), f"no GPU here can run it: {reason}")
        argv, exe = executables.resolve(spec, problem)
        ready = ReadyJob(
            name=name,
            argv=argv,
            candidates=(),
            any_device=True,
            executable=exe,
            env=dict(spec.env),
            retries=first_set(spec.retries, retries, 0),
            timeout=spec.timeout if spec.timeout is not None else timeout,
        )
        out.append(AutoJob(ready, memory, work, tuple(speeds), model))
    return out


def _why_unfit(job: Job, geometries: Sequence[tuple[int, GpuGeometry]]) -> str | None:
    """Why no profile of these GPUs can ever hold ``job`` (the scheduler's words); ``None`` if one can."""
    if any(job.fits(p) and p.placements for _, geo in geometries for p in geo.profiles):
        return None
    decision = decide([GpuState(i, geo) for i, geo in geometries], [job], now=0.0)
    return decision.unplaceable[0].reason if decision.unplaceable else "no profile fits it"
