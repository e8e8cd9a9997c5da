"""The host-wide lock that serialises every command that changes MIG state.

One ``filelock`` at ``<state_dir>/migctl.lock`` (0600). The holder writes its pid and command
to ``migctl.lock.owner`` so a waiter that times out can say who is in the way. Read-only
commands never take it. The lock is an ``flock``: the kernel frees it if the holder dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator

from filelock import FileLock, Timeout

from migctl.errors import LockTimeoutError
from migctl.paths import state_dir
from migctl.sim.state import atomic_write_json

DEFAULT_WAIT_S = 60.0
_depth = threading.local()


def _describe_owner() -> str:
    owner = state_dir() / "migctl.lock.owner"
    try:
        data = json.loads(owner.read_text())
        return f"pid {data.get('pid')} ({data.get('command', '?')})"
    except (OSError, ValueError):
        return "another migctl process"


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
    wait = DEFAULT_WAIT_S if wait_s is None else wait_s
    root = state_dir()
    lock = FileLock(str(root / "migctl.lock"), timeout=wait, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        raise LockTimeoutError(
            f"another migctl is changing MIG state: {_describe_owner()} holds the lock (waited {wait:g} s)",
            hint="wait for it to finish, or retry with a longer --wait",
        ) from None
    try:
        atomic_write_json(
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
