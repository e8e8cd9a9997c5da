"""Exclusive leases on MIG devices, released by the kernel when the holder dies.

A lease is an ``flock`` on ``<state_dir>/leases/<MIG-uuid>.lock``. The file also holds a JSON
line describing the holder (pid, command, since). The lock belongs to the open file, so passing
the descriptor to a child keeps the lease for the child's whole life, and when every holder
has exited (even by ``kill -9``) the kernel drops the lock: a lease can never go stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migctl.errors import InUseError
from migctl.paths import state_dir
from migctl.sim.state import ensure_private_dir


def lease_dir() -> Path:
    return ensure_private_dir(state_dir() / "leases")


def _path(uuid: str) -> Path:
    safe = "".join(c for c in uuid if c.isalnum() or c in "-_")
    return lease_dir() / f"{safe}.lock"


@dataclass
class Lease:
    """A held lease. ``fd`` can be passed to a child (``pass_fds``) to extend it to the child."""

    uuid: str
    fd: int

    def describe(self, **info: Any) -> None:
        """Record who holds the lease (shown by ``migctl status``)."""
        data = json.dumps({"uuid": self.uuid, **info}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_acquire(uuid: str, **info: Any) -> Lease | None:
    """Take the lease now, or return ``None`` if someone holds it."""
    fd = os.open(_path(uuid), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    lease = Lease(uuid, fd)
    lease.describe(pid=os.getpid(), since=time.time(), **info)
    return lease


def holder(uuid: str) -> dict[str, Any] | None:
    """Who holds the lease on ``uuid`` (``None`` if nobody)."""
    path = _path(uuid)
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 65536, 0)
            try:
                data: dict[str, Any] = json.loads(raw.decode() or "{}")
            except ValueError:
                data = {}
            return data or {"uuid": uuid, "pid": None, "command": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def holders() -> dict[str, dict[str, Any]]:
    """Every lease held now, by MIG UUID."""
    out = {}
    directory = state_dir() / "leases"
    if not directory.exists():
        return {}
    for path in directory.glob("*.lock"):
        uuid = path.stem
        info = holder(uuid)
        if info is not None:
            out[uuid] = info
    return out


def busy_error(uuid: str, info: dict[str, Any]) -> InUseError:
    since = info.get("since")
    when = time.strftime("%H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    return InUseError(
        f"MIG device {uuid} is leased by pid {info.get('pid')} ({info.get('command', '?')}) since {when}",
        hint="wait for it with --wait, or pick another instance",
        holder=info,
    )
