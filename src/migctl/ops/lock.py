"""The host-wide lock that serialises every command that changes MIG state.

One ``filelock`` at ``<state_dir>/migctl.lock`` (0600; 0660 in a shared state directory). The
holder writes its pid and command to ``migctl.lock.owner`` so a waiter that times out can say
who is in the way (the owner file is only informative: a damaged one never stops a command).
Read-only commands never take it. The lock is an ``flock``: the kernel frees it if the holder dies.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Iterator

from filelock import FileLock, Timeout

from migctl.errors import LockTimeoutError, UsageError
from migctl.ops.statefiles import load_json, os_error, read_small, subdir, write_json
from migctl.paths import file_mode, state_dir

DEFAULT_WAIT_S = 60.0
_depth = threading.local()


def owner() -> dict[str, object] | None:
    """What ``migctl.lock.owner`` says about the holder (``None``: nobody, or unreadable)."""
    try:
        data = load_json(read_small(state_dir() / "migctl.lock.owner"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe_owner() -> str:
    data = owner()
    if data is None:
        return "another migctl process"
    return f"pid {data.get('pid', '?')} ({data.get('command', '?')})"


def check_wait(wait_s: float | None, option: str = "--wait") -> None:
    """A wait must be a finite number of seconds, 0 or more (``nan`` and ``inf`` are refused)."""
    if wait_s is not None and (not math.isfinite(wait_s) or wait_s < 0):
        raise UsageError(
            f"{option} {wait_s}: expected a number of seconds, 0 or more", hint=f"e.g. {option} 60; nothing was changed"
        )


@contextlib.contextmanager
def host_lock(wait_s: float | None = None, what: str | None = None) -> Iterator[None]:
    """Hold the host lock for the block; wait up to ``wait_s`` (default 60 s) for it.

    Re-entrant within a thread: an operation that calls another (``mode disable
    --destroy-instances`` destroys) keeps the one lock it already holds.
    """
    if getattr(_depth, "n", 0):
        _depth.n += 1
        try:
            yield
        finally:
            _depth.n -= 1
        return
    check_wait(wait_s)
    wait = DEFAULT_WAIT_S if wait_s is None else wait_s
    root = state_dir()
    path = root / "migctl.lock"
    lock = FileLock(str(path), timeout=wait, mode=file_mode(root))
    try:
        lock.acquire()
    except Timeout:
        raise LockTimeoutError(
            f"another migctl is changing MIG state: {_describe_owner()} holds the lock (waited {wait:g} s)",
            hint="wait for it to finish, or retry with a longer --wait",
        ) from None
    except OSError as exc:
        raise os_error(exc, path, "take the host lock") from None
    try:
        for folder in ("leases", "journal"):  # a damaged folder stops the command before any change
            subdir(folder)
    except BaseException:
        lock.release()
        raise
    try:
        with contextlib.suppress(Exception):  # informative only: a damaged owner file never stops a command
            write_json(
                root / "migctl.lock.owner",
                {"pid": os.getpid(), "command": what or " ".join(["migctl", *sys.argv[1:]]), "since": time.time()},
            )
        _depth.n = 1
        yield
    finally:
        _depth.n = 0
        with contextlib.suppress(OSError):
            (root / "migctl.lock.owner").unlink()
        lock.release()
