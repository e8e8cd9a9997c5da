"""The journal: what a GPU is being changed to, and what it was, until the change is done.

``apply``, ``create`` and ``destroy`` write ``<state_dir>/journal/gpu-N.json`` (atomically,
0600) before their first change to GPU N and remove it when the GPU is done or rolled back. A
file that is still there means the process died mid-change (a crash, ``kill -9``): the next
``apply`` or ``migctl recover`` finishes the change, or rolls the GPU back to ``before``.

A change the user cancelled (Ctrl-C, SIGTERM) whose rollback could not complete stays
journaled with ``cancelled: true``: ``recover`` then only ever rolls it back, never finishes it.

A journal that cannot be read or does not have the expected shape (truncated, garbled, an
unknown GPU, a directory in its place) is never dropped: :func:`scan` reports it as
:class:`Damaged`, and :func:`move_aside` keeps it as ``gpu-N.json.damaged-K`` for a post-mortem.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil

from migctl.core.geometry import Placement
from migctl.core.layout import ExistingInstance, Target, TargetInstance
from migctl.errors import MigctlError
from migctl.ops import statefiles
from migctl.paths import state_dir
from migctl.records.common import InterruptedChange

_NAME = re.compile(r"gpu-([0-9]+)\.json", re.ASCII)


def journal_dir() -> Path:
    return statefiles.subdir("journal")


def target_json(t: Target) -> dict[str, Any]:
    return {
        "mig_enabled": t.mig_enabled,
        "instances": [
            {
                "profile_id": i.profile_id,
                "placement": None if i.placement is None else [i.placement.start, i.placement.size],
                "compute": None if i.compute is None else list(i.compute),
            }
            for i in t.instances
        ],
    }


class _Bad(ValueError):
    """The journal's content does not have the shape :func:`write` gives it."""


def _int(value: Any, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _Bad(f"{what} is {json.dumps(value)}, not a whole number of at least {low}")
    return value


def _instance(data: Any, where: str) -> TargetInstance:
    if not isinstance(data, dict):
        raise _Bad(f"{where} is not an object")
    profile = _int(data.get("profile_id"), f"{where}.profile_id")
    raw = data.get("placement")
    placement = None
    if raw is not None:
        if not isinstance(raw, list) or len(raw) != 2:
            raise _Bad(f"{where}.placement is not [start, size]")
        placement = Placement(_int(raw[0], f"{where}.placement start"), _int(raw[1], f"{where}.placement size", 1))
    compute = data.get("compute")
    if compute is not None and not (isinstance(compute, list) and all(isinstance(c, str) for c in compute)):
        raise _Bad(f"{where}.compute is not a list of compute-instance profile names")
    return TargetInstance(profile, placement, None if compute is None else tuple(compute))


def target_from(data: Any, where: str = "target") -> Target:
    """A journaled target; :class:`ValueError` (naming the key) if it has another shape."""
    if not isinstance(data, dict):
        raise _Bad(f"{where} is not an object")
    enabled = data.get("mig_enabled")
    if not isinstance(enabled, bool):
        raise _Bad(f"{where}.mig_enabled is not true or false")
    instances = data.get("instances")
    if not isinstance(instances, list):
        raise _Bad(f"{where}.instances is not a list")
    return Target(enabled, tuple(_instance(i, f"{where}.instances[{n}]") for n, i in enumerate(instances)))


def change_words(config: str) -> str:
    """How a journal's ``config`` reads in a sentence: ``apply of config 'x'``, or the command
    (``migctl create 1g.12gb:7``) for ``create`` and ``destroy``."""
    return config if config.startswith("migctl ") else f"apply of config {config!r}"


def pinned(mig_enabled: bool, instances: Sequence[ExistingInstance]) -> Target:
    """A layout as a target pinned to its exact placements and compute instances."""
    return Target(
        mig_enabled=mig_enabled,
        instances=tuple(TargetInstance(e.profile_id, e.placement, tuple(sorted(e.compute))) for e in instances),
    )


@dataclass(frozen=True)
class Entry:
    """A readable journal: GPU ``gpu`` was being changed from ``before`` to ``target``."""

    path: Path
    gpu: int
    config: str
    pid: int | None
    started: float | None
    target: Target
    before: Target
    cancelled: bool = False
    """The user cancelled the change (Ctrl-C/SIGTERM) and its rollback did not complete: only roll back."""


@dataclass(frozen=True)
class Damaged:
    """A journal that cannot be trusted: unreadable, or not in the shape migctl writes."""

    path: Path
    gpu: int
    """The GPU its file name names (``gpu-N.json``)."""
    problem: str


def write(gpu: int, what: str, target: Target, before: Target) -> Path:
    """Record that GPU ``gpu`` is about to change from ``before`` to ``target`` (by ``what``)."""
    path = journal_dir() / f"gpu-{gpu}.json"
    statefiles.write_json(path, _data(gpu, what, target, before, cancelled=False))
    return path


def _data(gpu: int, what: str, target: Target, before: Target, *, cancelled: bool) -> dict[str, Any]:
    return {
        "gpu": gpu,
        "config": what,
        "pid": os.getpid(),
        "started": time.time(),
        "target": target_json(target),
        "before": target_json(before),
        "cancelled": cancelled,
    }


def mark_cancelled(path: Path, gpu: int, what: str, target: Target, before: Target) -> None:
    """The user cancelled this change and the rollback did not complete: ``recover`` only rolls back."""
    statefiles.write_json(path, _data(gpu, what, target, before, cancelled=True))


def remove(path: Path) -> None:
    """The change is done (or undone): drop its journal."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise statefiles.os_error(exc, path, "remove the finished journal") from None


def parse(path: Path, raw: bytes, gpus: int | None = None) -> Entry:
    """A journal file's bytes as an :class:`Entry`; :class:`ValueError` saying what is wrong."""
    m = _NAME.fullmatch(path.name)
    if m is None:
        raise _Bad("its name is not gpu-N.json")
    index = int(m[1])
    try:
        data = statefiles.load_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Bad("it is not UTF-8 text") from None
    except ValueError as exc:
        raise _Bad("it is not valid JSON (truncated or garbled?)" if raw.strip() else "it is empty") from exc
    if not isinstance(data, dict):
        raise _Bad("it is not a JSON object")
    gpu = _int(data.get("gpu"), "gpu")
    if gpu != index:
        raise _Bad(f"it says GPU {gpu} but is the journal of GPU {index}")
    if gpus is not None and gpu >= gpus:
        raise _Bad(f"it names GPU {gpu}, and this node has {gpus} GPU(s)")
    config = data.get("config")
    if not isinstance(config, str):
        raise _Bad("config is not a string")
    pid = data.get("pid")
    started = data.get("started")
    cancelled = data.get("cancelled", False)
    if not isinstance(cancelled, bool):
        raise _Bad("cancelled is not true or false")
    return Entry(
        path=path,
        gpu=gpu,
        config=config,
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        started=float(started) if isinstance(started, (int, float)) and not isinstance(started, bool) else None,
        target=target_from(data.get("target"), "target"),
        before=target_from(data.get("before"), "before"),
        cancelled=cancelled,
    )


def scan(gpus: int | None = None) -> tuple[list[Entry], list[Damaged]]:
    """Every journal left behind, readable ones and damaged ones (``gpus``: the node's GPU count).

    Read-only: nothing is moved or removed (see :func:`move_aside`). A journal directory that
    cannot be listed is a :class:`~migctl.errors.StateError` naming it.
    """
    directory = state_dir() / "journal"
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise statefiles.os_error(exc, directory, "read") from None
    if not stat.S_ISDIR(st.st_mode):
        raise statefiles.os_error(NotADirectoryError(20, "Not a directory"), directory, "read the journals in")
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise statefiles.os_error(exc, directory, "read the journals in") from None
    entries: list[Entry] = []
    damaged: list[Damaged] = []
    for name in names:
        m = _NAME.fullmatch(name)
        if m is None:
            continue  # moved-aside ``.damaged-N`` files, a writer's temporary files
        path = directory / name
        index = int(m[1])
        try:
            entries.append(parse(path, statefiles.read_small(path), gpus))
        except IsADirectoryError:
            damaged.append(Damaged(path, index, "it is a directory, not a file"))
        except PermissionError as exc:  # not damaged: this user may not read it
            raise statefiles.os_error(exc, path, "read the journal") from None
        except OSError as exc:
            damaged.append(Damaged(path, index, f"it cannot be read: {exc.strerror or exc}"))
        except ValueError as exc:
            damaged.append(Damaged(path, index, str(exc)))
    return entries, damaged


def pending() -> list[Entry]:
    """The readable journals left behind (what :func:`scan` finds, without the damaged ones)."""
    return scan()[0]


def move_aside(d: Damaged) -> Path:
    """Keep a damaged journal as ``gpu-N.json.damaged-K`` so it no longer blocks its GPU."""
    return statefiles.move_aside(d.path, d.problem)


# -- the read-only view (status, doctor, assert) --------------------------------------------------


def _alive(pid: int | None) -> bool:
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def left_behind(gpus: int | None = None) -> tuple[InterruptedChange, ...]:
    """The GPUs an interrupted change left (journals still there), changing nothing.

    A journal whose writer still runs and holds the host lock is a change ``in_progress``, not
    an interrupted one. A state directory that cannot be read is reported as one ``unreadable``
    entry rather than failing the read-only command that asks.
    """
    try:
        entries, damaged = scan(gpus)
    except MigctlError as exc:
        return (InterruptedChange(None, "unreadable", None, None, str(exc), "see the message"),)
    from migctl.ops.lock import owner

    holder = owner()
    running = holder.get("pid") if holder else None
    out = []
    for e in entries:
        if e.pid is not None and e.pid == running and _alive(e.pid):
            out.append(InterruptedChange(e.gpu, "in_progress", e.config, e.pid, f"pid {e.pid} is changing it now", ""))
            continue
        state: Literal["cancelled", "interrupted"] = "cancelled" if e.cancelled else "interrupted"
        out.append(
            InterruptedChange(
                e.gpu,
                state,
                e.config,
                e.pid,
                f"an {change_words(e.config)} (pid {e.pid}) was "
                f"{'cancelled and not fully undone' if e.cancelled else 'interrupted part-way'}: GPU {e.gpu} may be in "
                "neither its layout before nor the one it was changing to",
                "run migctl recover (it " + ("rolls it back)" if e.cancelled else "finishes it, or rolls it back)"),
            )
        )
    for d in damaged:
        out.append(
            InterruptedChange(
                d.gpu,
                "damaged",
                None,
                None,
                f"its journal {d.path} is damaged ({d.problem})",
                f"run migctl recover: it moves the journal aside and leaves GPU {d.gpu} alone; then check "
                f"migctl status -i {d.gpu} and apply the layout you want",
            )
        )
    return tuple(out)


def describe(change: InterruptedChange) -> str:
    """One line for a human: ``GPU 3: 'migctl apply x' (pid 7) was interrupted ...; run migctl recover``."""
    where = f"GPU {change.gpu}: " if change.gpu is not None else ""
    return f"{where}{change.detail}" + (f"; {change.fix}" if change.fix else "")
