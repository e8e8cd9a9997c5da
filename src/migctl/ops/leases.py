"""Exclusive leases on MIG devices, released by the kernel when the holder dies.

A lease is an ``flock`` on ``<state_dir>/leases/<MIG-uuid>.lock``. The file also holds a JSON
line describing the holder (pid, command, since). The lock belongs to the open file, so passing
the descriptor to a child keeps the lease for the child's whole life, and when every holder
has exited (even by ``kill -9``) the kernel drops the lock: a lease can never go stale.

Processes a lease holder starts inherit the descriptor too, so they keep the lease while they
live (they may be using the device). When the recorded holder is gone but such a process still
holds the lock, :func:`holder` names that process instead.

Holders are typed :class:`~migctl.records.common.Holder` records (:func:`holder`,
:func:`holder_records`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from migctl.ops import statefiles
from migctl.paths import file_mode, state_dir
from migctl.records import to_data
from migctl.records.common import Holder, InheritedFrom


def lease_dir() -> Path:
    return statefiles.subdir("leases")


_dirs: dict[tuple[str | None, str | None], Path] = {}


def lease_path(uuid: str) -> Path:
    """``<state_dir>/leases/<uuid>.lock`` (the folder is made if missing)."""
    # The folder is made (and checked) once per state directory, not on every lease.
    key = (os.environ.get("MIGCTL_STATE_DIR"), os.environ.get("MIGCTL_SIM"))
    directory = _dirs.get(key)
    if directory is None or not directory.is_dir():
        directory = _dirs[key] = lease_dir()
    safe = "".join(c for c in uuid if c.isascii() and (c.isalnum() or c in "-_"))
    return directory / f"{safe}.lock"


_path = lease_path


def _open_lease(path: Path) -> int:
    """Open (creating) a lease file for locking; a typed error naming it when that is impossible."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise statefiles.os_error(exc, path, "open the lease file") from None
    try:
        st = os.fstat(fd)
        want = file_mode(path.parent)
        if st.st_uid == os.geteuid() and st.st_mode & 0o777 != want:
            os.fchmod(fd, want)  # a file of ours: shared state directories need group access
    except OSError:
        pass
    return fd


@dataclass
class Lease:
    """A held lease. ``fd`` can be passed to a child (``pass_fds``) to extend it to the child."""

    uuid: str
    fd: int
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self, **info: Any) -> None:
        """Record who holds the lease (shown by ``migctl status``); merged into what is recorded.

        The record always has ``pid``, ``command`` and ``since`` (epoch seconds).
        """
        self.info.update(info)
        _write_record(self.fd, json.dumps({"uuid": self.uuid, **self.info}).encode())

    @property
    def held(self) -> bool:
        return self.fd >= 0

    def release(self) -> None:
        """Give up this process's hold; clear the record if nobody else holds the lease now.

        Processes that inherited the descriptor (what a child left running) keep the lease;
        the record then stays, and :func:`holder` finds them.
        """
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        try:
            fd = os.open(_path(self.uuid), os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_record(fd, b"")
        except OSError:  # BlockingIOError: still held by an inheritor
            pass
        finally:
            os.close(fd)

    def detach(self) -> None:
        """Close this process's descriptor, leaving the lease to the children that inherited it.

        The kernel drops the lock when the last of them exits; the record is left as it is, so
        ``migctl status`` keeps naming the child until then.
        """
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


#: Records are padded to this size and overwritten in place: truncating a file is a journalled
#: metadata change (slow on ext4 under load), rewriting a few bytes of a cached page is not.
RECORD_BYTES = 1024


def _write_record(fd: int, data: bytes) -> None:
    if len(data) < RECORD_BYTES:
        os.pwrite(fd, data + b" " * (RECORD_BYTES - len(data)), 0)
        if os.fstat(fd).st_size > RECORD_BYTES:  # after a long record
            os.ftruncate(fd, RECORD_BYTES)
    else:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))


# holder() probes a lease with a shared lock for an instant; a taker that meets only such a probe
# retries after a moment rather than reporting the device busy.
_PROBE_RETRIES = (0.001, 0.004)


def try_acquire(uuid: str, **info: Any) -> Lease | None:
    """Take the lease now, or return ``None`` if someone holds it.

    ``info`` is recorded with ``pid`` (this process) and ``since``; pass ``command``.
    The descriptor is close-on-exec: hand it to a child explicitly (``pass_fds``).
    """
    fd = _open_lease(_path(uuid))
    for pause in (*_PROBE_RETRIES, None):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if pause is None:
                os.close(fd)
                return None
            time.sleep(pause)
    lease = Lease(uuid, fd)
    try:
        lease.describe(pid=os.getpid(), command=info.pop("command", _own_command()), since=time.time(), **info)
    except OSError as exc:  # a full disk: the record cannot be written
        lease.release()
        raise statefiles.os_error(exc, _path(uuid), "write the lease record to") from None
    return lease


def _own_command() -> str:
    return " ".join(sys.argv) or "python"


def holder(uuid: str) -> Holder | None:
    """Who holds the lease on ``uuid`` (``None`` if nobody)."""
    path = _path(uuid)
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                raw = os.pread(fd, 65536, 0)
            except OSError as exc:  # a directory in the lease file's place, held by someone
                return Holder(pid=None, command=f"damaged lease file {path}: {exc.strerror}", since=None)
            recorded = _parse_record(raw)
            if not _alive(recorded.pid):
                return _inheritor(path, recorded)
            return recorded
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _parse_record(raw: bytes) -> Holder:
    """The JSON line :meth:`Lease.describe` wrote (a torn or foreign file reads as an unknown holder)."""
    try:
        data = json.loads(raw.decode().strip() or "{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = {}
    return as_holder(data if isinstance(data, dict) else {})


def _alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _inheritor(path: Path, recorded: Holder) -> Holder:
    """The recorded holder is gone: find a live process that still has the lease file open."""
    target = os.path.realpath(path)
    me = os.getpid()
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit() or int(proc_dir.name) == me:
            continue
        try:
            fds = os.listdir(proc_dir / "fd")
        except OSError:
            continue
        for name in fds:
            try:
                if os.readlink(proc_dir / "fd" / name) != target:
                    continue
            except OSError:
                continue
            pid = int(proc_dir.name)
            try:
                proc = psutil.Process(pid)
                command = " ".join(proc.cmdline()) or proc.name()
                since: float | None = proc.create_time()
            except psutil.Error:
                command, since = "?", None
            parent = InheritedFrom(recorded.pid, recorded.command, recorded.since)
            return replace(recorded, pid=pid, command=command, since=since, inherited_from=parent)
    return recorded


def holder_records() -> dict[str, Holder]:
    """Every lease held now, by MIG UUID."""
    out = {}
    directory = state_dir() / "leases"
    if not directory.is_dir():
        return {}
    for path in directory.glob("*.lock"):
        uuid = path.stem
        info = holder(uuid)
        if info is not None:
            out[uuid] = info
    return out


def as_holder(info: Mapping[str, Any] | Holder) -> Holder:
    """A lease record (the JSON a lease file holds) as a typed :class:`Holder`."""
    if isinstance(info, Holder):
        return info

    def num(value: Any) -> float | None:  # a time: finite, and one localtime() can show
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e11
        return float(value) if ok else None

    def pid(value: Any) -> int | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 31
        return value if ok else None

    parent = info.get("inherited_from")
    return Holder(
        pid=pid(info.get("pid")),
        command=str(info.get("command", "?")),
        since=num(info.get("since")),
        source="nvml" if info.get("source") == "nvml" else "lease",
        job=str(info["job"]) if info.get("job") is not None else None,
        launcher=pid(info.get("launcher")),
        inherited_from=(
            InheritedFrom(pid(parent.get("pid")), str(parent.get("command", "?")), num(parent.get("since")))
            if isinstance(parent, dict)
            else None
        ),
    )


def holder_details(uuid: str, h: Holder) -> dict[str, Any]:
    """``{"uuid": ..., "pid": ...}``: a holder as an error's JSON details carry it."""
    return {"uuid": uuid, **to_data(h)}


def describe_holder(h: Holder) -> str:
    """``leased by pid 123 (python train.py) since 14:02:11`` (or ``used by`` for a foreign process)."""
    when = time.strftime("%H:%M:%S", time.localtime(h.since)) if h.since is not None else "?"
    verb = "used by" if h.source == "nvml" else "leased by"
    if h.pid is None:  # a lease file without a readable record, or a device that is gone
        text = f"{verb} an unknown process" if h.command == "?" else f"unusable ({h.command})"
    else:
        text = f"{verb} pid {h.pid} ({h.command}) since {when}"
    parent = h.inherited_from
    if parent is not None:
        text += f", left running by pid {parent.pid} ({parent.command}) which has exited"
    return text
