"""What ``migctl batch --auto`` reads from a jobs file: each job's memory, length and speeds.

Pure: parses and checks the ``--auto`` keys of a job (and of ``defaults:``); looking a model up
in the speed table and checking a job against the node's profiles happen in
:mod:`migctl.ops.autojobs`. :mod:`migctl.config.jobs` mixes :class:`AutoKeys` into its schema and
stores the result as :attr:`JobSpec.auto <migctl.config.jobs.JobSpec.auto>`.

::

    defaults:
      memory: 10GiB                # the GPU memory a job needs (a number alone is MiB)
    jobs:
      - command: [python, train.py]
        memory: 18GiB
        work: 20m                  # its run time where its speed is 1.0 (seconds, or 90s, 20m, 1.5h)
        speeds: {1g.10gb: 1.0, 3g.40gb: 2.7, 7g.80gb: 5.0}   # relative speed per profile
      - command: [python, bert.py]
        memory: 6GiB
        times: {1g.10gb: 50m, 7g.80gb: 10m}    # or run times per profile (then no work:)
      - command: [python, resnet.py]
        model: resnet              # from migctl's speed table (speeds and memory; A100-40GB)
        batch: 128
        work: 15m                  # with a model: the run time on the largest profile (7g)

Speeds and times are keyed by profile name (``3g.40gb``) or compute slices (``3g``); a
profile not listed takes the speed of a listed one with the same compute slices and no more
memory (see :meth:`migctl.core.scheduler.Job.speed_on`). Every key may also be set in
``defaults:``; a job's own key wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, field_validator

#: The keys this module adds to a job (and to ``defaults:``).
AUTO_KEYS = ("memory", "work", "model", "batch", "speeds", "times")

_UNITS_BYTES = {
    "": 2**20,  # a number alone is MiB, as nvidia-smi reports memory
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|sec|min|s|m|h|d)?", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
#: ``3g.40gb``, ``1g.10gb+me``, ``1g.12gb-me``, ``7g`` (the forms :meth:`Job.speed_on` understands).
PROFILE_KEY = re.compile(r"^\d+g(?:\.\d+(?:\.\d+)?gb)?(?:[+-][a-z0-9]+)*$", re.IGNORECASE)


def parse_memory(value: object) -> int:
    """A memory size -> MiB, rounded up: ``18GiB`` -> 18432, ``512MiB``, ``20GB`` (decimal), ``4096`` (MiB).

    >>> parse_memory("18GiB"), parse_memory(4096), parse_memory("1.5 gib")
    (18432, 4096, 1536)
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a size such as 18GiB or 512MiB, got {type(value).__name__}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        m = _SIZE.match(value)
        if m is None or m[2].lower() not in _UNITS_BYTES:
            raise ValueError(f"expected a size such as 18GiB, 512MiB or 20GB, got {value!r}")
        number, unit = float(m[1]), m[2].lower()
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"the memory must be more than 0, got {value!r}")
    mib = math.ceil(number * _UNITS_BYTES[unit] / 2**20 - 1e-9)
    if mib > 2**40:
        raise ValueError(f"{value!r} is more memory than any GPU has")
    return max(1, mib)


def parse_duration(value: object) -> float:
    """A length of time -> seconds: ``90`` or ``90s``, ``20m``, ``1.5h``, ``1h30m``, ``250ms``.

    >>> parse_duration("1h30m"), parse_duration(90), parse_duration("2.5m")
    (5400.0, 90.0, 150.0)
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected seconds or a duration such as 20m, got {type(value).__name__}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        pos, seconds, parts = 0, 0.0, 0
        while pos < len(text):
            m = _DURATION_PART.match(text, pos)
            if m is None or m.end() == pos:
                raise ValueError(f"expected seconds or a duration such as 90s, 20m or 1h30m, got {value!r}")
            seconds += float(m[1]) * _DURATION_UNITS[(m[2] or "").lower()]
            parts += 1
            pos = m.end()
            while pos < len(text) and text[pos] == " ":
                pos += 1
        if not parts:
            raise ValueError(f"expected seconds or a duration such as 90s, 20m or 1h30m, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"the time must be more than 0, got {value!r}")
    return seconds


def _profile_key(key: str) -> str:
    if not PROFILE_KEY.match(key.strip()):
        raise ValueError(f"{key!r} is not a profile name (expected e.g. 3g.40gb, 1g.10gb+me, or 3g for any 3g one)")
    return key.strip().lower()


class AutoKeys(BaseModel):
    """The ``--auto`` keys, mixed into the jobs file's ``jobs[]`` and ``defaults`` schema."""

    memory: int | None = None
    work: float | None = None
    model: str | None = Field(default=None, min_length=1)
    batch: int | None = Field(default=None, gt=0)
    speeds: dict[str, float] | None = None
    times: dict[str, float] | None = None

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return None if value is None else parse_memory(value)

    @field_validator("work", mode="before")
    @classmethod
    def _work(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("speeds", mode="before")
    @classmethod
    def _speeds(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict) or not value:
            raise ValueError("expected a mapping of profile to relative speed, e.g. {1g.10gb: 1.0, 7g.80gb: 4.5}")
        out: dict[str, float] = {}
        for key, speed in value.items():
            name = _profile_key(str(key))
            if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed) or speed <= 0:
                raise ValueError(f"the speed of {key} must be a number above 0, got {speed!r}")
            out[name] = float(speed)
        return out

    @field_validator("times", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict) or not value:
            raise ValueError("expected a mapping of profile to run time, e.g. {1g.10gb: 50m, 7g.80gb: 10m}")
        out: dict[str, float] = {}
        for key, t in value.items():
            name = _profile_key(str(key))
            try:
                out[name] = parse_duration(t)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return out


@dataclass(frozen=True)
class AutoSpec:
    """What ``--auto`` knows of a job from the jobs file (before the speed table is consulted).

    ``memory_mib``: the GPU memory it needs. ``work_s``: its run time where its speed is 1.0.
    ``speeds``: relative speed per profile name or compute-slice count (``3g``). ``model`` and
    ``batch``: a row of the speed table (:func:`migctl.data.find_workload`), which gives
    speeds, and the memory when ``memory_mib`` is not set. ``None``/empty: not given.
    """

    memory_mib: int | None = None
    work_s: float | None = None
    speeds: tuple[tuple[str, float], ...] = ()
    model: str | None = None
    batch: int | None = None


class AutoKeyError(ValueError):
    """A problem with one ``--auto`` key of a job; ``key`` is that key, ``in_defaults`` where it was set."""

    def __init__(self, key: str, message: str, *, in_defaults: bool = False) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
        self.in_defaults = in_defaults


def from_times(times: Mapping[str, float]) -> tuple[float, tuple[tuple[str, float], ...]]:
    """Run times per profile -> (work, speeds): the reference is the profile with the most
    compute slices (ties: the shortest time), whose speed is 1.0.

    >>> from_times({"1g.10gb": 600.0, "7g.80gb": 120.0})
    (120.0, (('1g.10gb', 0.2), ('7g.80gb', 1.0)))
    """

    def slices(name: str) -> int:
        return int(name.split("g", 1)[0])

    ref = min(times, key=lambda k: (-slices(k), times[k], k))
    work = times[ref]
    return work, tuple(sorted((k, work / t) for k, t in times.items()))


def auto_spec(job: AutoKeys, defaults: AutoKeys | None = None) -> AutoSpec | None:
    """A job's :class:`AutoSpec` (its own keys over ``defaults``'); ``None`` when neither sets any.

    Raises :class:`AutoKeyError` for keys that contradict each other (``speeds`` and ``times``;
    ``times`` and ``work``; ``batch`` without ``model``).
    """
    base = defaults or AutoKeys()
    values: dict[str, Any] = {}
    own: dict[str, bool] = {}
    for key in AUTO_KEYS:
        mine = getattr(job, key)
        values[key] = mine if mine is not None else getattr(base, key)
        own[key] = mine is not None
    if all(v is None for v in values.values()):
        return None

    def clash(a: str, b: str, message: str) -> AutoKeyError:
        at = b if own[b] or not own[a] else a
        return AutoKeyError(at, message, in_defaults=not own[at])

    if values["speeds"] is not None and values["times"] is not None:
        raise clash("speeds", "times", "give speeds or times, not both")
    if values["times"] is not None and values["work"] is not None:
        raise clash("work", "times", "times already say how long the job takes; remove work")
    if values["batch"] is not None and values["model"] is None:
        raise AutoKeyError("batch", "batch goes with model (a row of the speed table)", in_defaults=not own["batch"])
    work: float | None = values["work"]
    speeds: tuple[tuple[str, float], ...] = tuple(sorted((values["speeds"] or {}).items()))
    if values["times"] is not None:
        work, speeds = from_times(values["times"])
    return AutoSpec(
        memory_mib=values["memory"],
        work_s=work,
        speeds=speeds,
        model=values["model"].strip().lower() if values["model"] is not None else None,
        batch=values["batch"],
    )


def needs(
    *,
    memory: str | int | None = None,
    work: str | float | None = None,
    speeds: Mapping[str, float] | None = None,
    times: Mapping[str, str | float] | None = None,
    model: str | None = None,
    batch: int | None = None,
) -> AutoSpec:
    """An :class:`AutoSpec` from the values a jobs file would hold (for the Python API).

    >>> needs(memory="18GiB", work="20m", speeds={"1g.10gb": 1.0, "7g.80gb": 4.5})
    AutoSpec(memory_mib=18432, work_s=1200.0, speeds=(('1g.10gb', 1.0), ('7g.80gb', 4.5)), model=None, batch=None)

    Raises :class:`ValueError` naming the key for a value a jobs file could not hold either.
    """
    from pydantic import ValidationError

    given = {"memory": memory, "work": work, "speeds": speeds, "times": times, "model": model, "batch": batch}
    try:
        keys = AutoKeys.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        why = first.get("ctx", {}).get("error", first["msg"])
        raise ValueError(f"{where}: {why}") from None
    try:
        spec = auto_spec(keys)
    except AutoKeyError as exc:
        raise ValueError(f"{exc.key}: {exc.message}") from None
    return spec or AutoSpec()
