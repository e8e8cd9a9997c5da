"""Jobs ready to schedule: :class:`~migctl.config.jobs.JobSpec` entries checked against the node.

Each job's target is matched to the MIG devices it may use and its command looked up in
``PATH`` (the job's own, when its ``env`` sets one) before anything runs, so a batch with a
typo fails at once, with the file and line when the jobs came from a file, leasing nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migctl.config.errors import ConfigError
from migctl.config.jobs import JobsFile, JobSpec, parse_jobs, unique_names
from migctl.config.target import AnyDevice, Target, UuidPrefix
from migctl.device import MigDeviceInfo, Node
from migctl.errors import UsageError
from migctl.ops import child, launch


@dataclass(frozen=True)
class ReadyJob:
    """A job whose devices and executable are known."""

    name: str
    argv: tuple[str, ...]
    candidates: tuple[MigDeviceInfo, ...]
    """The devices it may run on (every device when ``any_device``)."""
    any_device: bool
    executable: str
    env: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    timeout: float | None = None


def load_jobs(path: Path, node: Node, *, retries: int | None = None, timeout: float | None = None) -> list[ReadyJob]:
    """Read a jobs file and check it against the node; every problem is a :class:`UsageError`
    ``file:line: key: message`` (exit 2). ``retries``/``timeout`` are the defaults of jobs that
    (and whose ``defaults:``) set none."""
    parsed = read_jobs_file(path)
    try:
        return ready(node, parsed.jobs, retries=retries, timeout=timeout, located=parsed)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def read_jobs_file(path: Path) -> JobsFile:
    """A jobs file (``-``: stdin) parsed, size-bounded like every file migctl reads; any problem is
    a :class:`UsageError` ``file:line: key: message``."""
    from migctl.ops.files import read_text

    text, source = read_text(path, "jobs file")
    try:
        return parse_jobs(text, source, reserved_env=launch.DEVICE_ENV_NAMES)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def ready(
    node: Node,
    specs: Sequence[JobSpec],
    *,
    retries: int | None = None,
    timeout: float | None = None,
    located: JobsFile | None = None,
) -> list[ReadyJob]:
    """Check ``specs`` against the node. Problems are :class:`ConfigError` located in the file
    when ``located`` is the file they came from, else :class:`UsageError` naming the job."""
    devices = launch.inventory(node)
    if not devices:
        raise launch.no_mig_devices()
    matched: dict[Target, list[MigDeviceInfo]] = {}
    executables = Executables()
    out: list[ReadyJob] = []
    for spec, name, problem in named_specs(specs, located):
        try:
            candidates = matched.get(spec.target) or matched.setdefault(
                spec.target, launch.match_target(spec.target, devices)
            )
        except UsageError as exc:
            raise problem(("target", "profile"), str(exc)) from None
        argv, exe = executables.resolve(spec, problem)
        out.append(
            ReadyJob(
                name=name,
                argv=argv,
                candidates=tuple(candidates),
                any_device=isinstance(spec.target, AnyDevice),
                executable=exe,
                env=dict(spec.env),
                retries=first_set(spec.retries, retries, 0),
                timeout=spec.timeout if spec.timeout is not None else timeout,
            )
        )
    return out


def first_set(*values: int | None) -> int:
    """The first of ``values`` that is set (a job's own, then the batch's default, then 0)."""
    return next(v for v in values if v is not None)


Problem = Callable[[tuple[str, ...], str], Exception]
"""Builds the error for a job's ``keys``: located in its file (line and key) when it came from one."""


def named_specs(specs: Sequence[JobSpec], located: JobsFile | None) -> Iterator[tuple[JobSpec, str, Problem]]:
    """Each job with its unique name and how to report a problem with it, refusing first what every
    batch refuses: duplicate names, and an ``env`` that sets what migctl sets for the device."""
    try:
        names = unique_names(specs)
    except ConfigError as exc:
        raise UsageError(exc.message) from None
    for n, (spec, name) in enumerate(zip(specs, names, strict=True)):

        def problem(keys: tuple[str, ...], message: str, n: int = n, name: str = name) -> Exception:
            if located is not None:
                return located.error(n, keys, message)
            return UsageError(f"job {name!r}: {message}")

        for key in spec.env:
            if key in launch.DEVICE_ENV_NAMES:
                raise problem(("env",), f"{key} is set by migctl for the device it picks; remove it")
        yield spec, name, problem


class Executables:
    """Jobs' commands looked up in ``PATH`` (the job's own when its ``env`` sets one), once per command and ``PATH``."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], str] = {}

    def resolve(self, spec: JobSpec, problem: Problem) -> tuple[tuple[str, ...], str]:
        """``spec``'s argv and the executable it runs; a command not found is ``problem(("command",), ...)``."""
        argv = tuple(spec.command)
        search = spec.env.get("PATH", os.environ.get("PATH", os.defpath))
        exe = self._found.get((argv[0], search)) if argv else None
        if exe is None:
            try:
                exe = child.resolve_command(argv, {"PATH": search})
            except UsageError as exc:
                raise problem(("command",), exc.message) from None
            self._found[(argv[0], search)] = exe
        return argv, exe


def each_instance(
    node: Node, argv: Sequence[str], target: Target, *, retries: int = 0, timeout: float | None = None
) -> list[ReadyJob]:
    """One job per MIG device (those ``target`` selects), each pinned to its device, named
    ``gpu0-gi11`` (``gpu0-gi11-ci1`` for a compute instance other than 0)."""
    child.resolve_command(argv)  # a typo is one error (exit 127), before anything else
    devices = launch.match_target(target, launch.inventory(node))
    specs = [
        JobSpec(
            command=tuple(argv),
            name=f"gpu{d.gpu_index}-gi{d.gi_id}" + (f"-ci{d.ci_id}" if d.ci_id else ""),
            target=UuidPrefix(d.uuid),
            retries=retries,
            timeout=timeout,
        )
        for d in devices
    ]
    return ready(node, specs)
