"""The ``migctl batch`` jobs file: YAML or JSON text -> typed :class:`JobSpec` entries.

Pure: it reads text and checks its shape; matching targets to devices and looking commands up
in ``PATH`` happen against the node, in :mod:`migctl.ops.jobs`. Every problem is a
:class:`~migctl.config.errors.ConfigError` ``jobs.yaml:7: jobs[2].command: message``.

The text goes through the layout loader's YAML walker (:func:`migctl.config.document.parse_document`):
the same line numbers, duplicate-key check and size/alias guard (a "billion laughs" file is
refused, not expanded).

::

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

With ``migctl batch --auto`` a job also says what it needs and how fast it runs where
(``memory``, ``work``, ``speeds``/``times``, ``model``/``batch``): those keys are parsed by
:mod:`migctl.config.autojobs` and kept in :attr:`JobSpec.auto`; plain ``migctl batch`` ignores them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from migctl.config.autojobs import AutoKeyError, AutoKeys, AutoSpec, auto_spec
from migctl.config.document import error_path as _error_path
from migctl.config.document import parse_document
from migctl.config.errors import ConfigError, Path, format_path
from migctl.config.target import ANY, Target, parse_target

Scalar = str | int | float | bool


@dataclass(frozen=True)
class JobSpec:
    """One job: what an entry of a jobs file becomes, and what :meth:`migctl.Node.batch` takes.

    ``name``: unique in the batch (``None``: ``job-<n>``, its position from 1). ``command``: an
    argv list (no shell). ``target``: the devices it may run on (any by default). ``env``: added
    to the job's environment. ``retries``/``timeout`` (seconds per attempt): ``None`` takes the
    batch's default. ``auto``: what ``migctl batch --auto`` needs to know (memory, work,
    speeds; ``None`` when the job says nothing of it), see :mod:`migctl.config.autojobs`.
    """

    command: tuple[str, ...]
    name: str | None = None
    target: Target = ANY
    env: Mapping[str, str] = field(default_factory=dict)
    retries: int | None = None
    timeout: float | None = None
    auto: AutoSpec | None = None


def job(
    command: Sequence[str],
    *,
    name: str | None = None,
    on: str | None = None,
    env: Mapping[str, str] | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    auto: AutoSpec | None = None,
) -> JobSpec:
    """A :class:`JobSpec` from plain values (``on``: a target as ``--on`` takes it; ``auto``:
    what ``batch --auto`` needs, made by :func:`migctl.config.autojobs.needs`).

    >>> job(["python", "train.py"], on="1g.12gb", retries=1).target
    ProfileName(text='1g.12gb')
    """
    return JobSpec(tuple(command), name, parse_target(on), dict(env or {}), retries, timeout, auto)


@dataclass(frozen=True)
class JobsFile:
    """A checked jobs file: its jobs in order, and where each key is (for later errors)."""

    source: str
    jobs: tuple[JobSpec, ...]
    lines: Mapping[Path, int]

    def error(self, index: int, keys: Iterable[str], message: str) -> ConfigError:
        """``source:line: jobs[index].key: message`` for the first of ``keys`` the job has, else the job."""
        at: Path = ("jobs", index)
        path = next(((*at, k) for k in keys if (*at, k) in self.lines), at)
        return _error(self.source, self.lines, path, message)


# -- the schema ------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The --auto keys (memory, work, speeds, times, model, batch) come from AutoKeys
# (migctl.config.autojobs), mixed into both models below; parse_jobs turns them into JobSpec.auto.


class _Defaults(_Strict, AutoKeys):
    target: str | None = None
    profile: str | None = None
    env: dict[str, Scalar] = Field(default_factory=dict)
    retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)


class _Job(_Strict, AutoKeys):
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


class _File(_Strict):
    defaults: _Defaults | None = None
    jobs: list[_Job] = Field(min_length=1)


# -- parsing ---------------------------------------------------------------------------------------


def _line(lines: Mapping[Path, int], path: Path) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    return next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)


def _error(source: str, lines: Mapping[Path, int], path: Path, message: str) -> ConfigError:
    return ConfigError(message, source=source, line=_line(lines, path), key=format_path(path) or None)


def _as_text(value: Scalar) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _describe(err: Mapping[str, Any]) -> str:
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


def _validate(data: Any, lines: Mapping[Path, int], source: str) -> _File:
    try:
        return _File.model_validate(data)
    except ValidationError as exc:
        found = [(_line(lines, path) or 0, path, e) for e in exc.errors() for path in [_error_path(e, data)]]
        found.sort(key=lambda f: f[0])
        _, path, first = found[0]
        # A value given in one of several accepted types fails once per type: count places, not tries.
        places = len({f[1] for f in found})
        more = f" (and {places - 1} more problem{'s' if places > 2 else ''})" if places > 1 else ""
        raise _error(source, lines, path, _describe(first) + more) from None


def _env(
    values: Mapping[str, Scalar], reserved: frozenset[str], source: str, lines: Mapping[Path, int], path: Path
) -> dict[str, str]:
    env = {}
    for key, value in values.items():
        if key in reserved:
            raise _error(source, lines, (*path, key), "set by migctl for the device it picks; remove it")
        env[key] = _as_text(value)
    return env


def parse_jobs(text: str, source: str = "<jobs>", *, reserved_env: frozenset[str]) -> JobsFile:
    """Parse and check a jobs file. ``reserved_env``: variables a job may not set (migctl sets
    them for the device it picks). Raises :class:`ConfigError` for the first problem."""
    try:
        doc = parse_document(text, source)
    except ConfigError as exc:
        if exc.line is None and exc.key is None and exc.message == "the document is empty":
            raise ConfigError("the file is empty; it needs a 'jobs:' list", source=source) from None
        raise
    data, lines = doc.data, doc.lines
    spec = _validate(data, lines, source)
    defaults = spec.defaults or _Defaults()
    default_env = _env(defaults.env, reserved_env, source, lines, ("defaults", "env"))
    default_target = defaults.target if defaults.target is not None else defaults.profile
    jobs: list[JobSpec] = []
    names: dict[str, int] = {}
    for n, job in enumerate(spec.jobs):
        at: Path = ("jobs", n)
        name = job.name or f"job-{n + 1}"
        if name in names:
            raise _error(source, lines, (*at, "name"), f"duplicate job name (also jobs[{names[name]}])")
        names[name] = n
        if job.target is not None and job.profile is not None:
            raise _error(source, lines, (*at, "profile"), "give target or profile, not both")
        target = job.target if job.target is not None else job.profile
        # -- batch --auto: the job's needs (config/autojobs.py) ---------------------------------
        try:
            auto = auto_spec(job, defaults)
        except AutoKeyError as exc:
            where: Path = ("defaults", exc.key) if exc.in_defaults else (*at, exc.key)
            raise _error(source, lines, where, exc.message) from None
        # -- end of batch --auto ----------------------------------------------------------------
        jobs.append(
            JobSpec(
                command=tuple(_as_text(a) for a in job.command),
                name=name,
                target=parse_target(default_target if target is None else target),
                env={**default_env, **_env(job.env, reserved_env, source, lines, (*at, "env"))},
                retries=job.retries if job.retries is not None else defaults.retries,
                timeout=job.timeout if job.timeout is not None else defaults.timeout,
                auto=auto,
            )
        )
    return JobsFile(source, tuple(jobs), lines)


def unique_names(specs: Sequence[JobSpec]) -> list[str]:
    """Each job's name (``job-<n>`` when it has none); a repeated name is a :class:`ConfigError`."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for n, spec in enumerate(specs):
        name = spec.name or f"job-{n + 1}"
        if name in seen:
            raise ConfigError(f"duplicate job name {name!r} (jobs {seen[name] + 1} and {n + 1})", source="jobs")
        seen[name] = n
        out.append(name)
    return out
