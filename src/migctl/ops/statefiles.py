"""migctl's own state files (leases, journals, the lock owner): folders, atomic writes, and errors.

Every problem a user, a crash or a full disk can cause with these files is a typed error that
names the file, says what is wrong and how to fix it: a :class:`~migctl.errors.StateError`
(exit 11) for a damaged or unwritable file, a :class:`~migctl.errors.PermissionDeniedError`
(exit 6) for one this user may not touch. Never an internal error.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from migctl.errors import MigctlError, PermissionDeniedError, StateError
from migctl.paths import file_mode, shared, state_dir

#: The largest state file migctl reads (journals and lock owners are a few hundred bytes).
MAX_STATE_FILE_BYTES = 1 << 20


def os_error(exc: OSError, path: Path | str, doing: str) -> MigctlError:
    """``exc`` (raised while ``doing`` ``path``) as migctl's typed error, with the fix."""
    why = exc.strerror or str(exc)
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(
            f"cannot {doing} {path}: {why}",
            hint="run as root (or as the user who owns migctl's state directory), or set MIGCTL_STATE_DIR",
        )
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StateError(f"cannot {doing} {path}: {why}", hint=f"free space on the file system of {path}")
    if exc.errno == errno.EROFS:
        return StateError(f"cannot {doing} {path}: {why}", hint="set MIGCTL_STATE_DIR to a writable directory")
    if isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)) or exc.errno == errno.ELOOP:
        return StateError(
            f"cannot {doing} {path}: {why}: something else is in the place of migctl's file",
            hint=f"move {path} out of the way while no migctl command runs; migctl makes a new one",
        )
    return StateError(f"cannot {doing} {path}: {why}", hint=f"check {path} and its file system")


def subdir(name: str) -> Path:
    """``<state_dir>/<name>``, made if missing (0700, or 02770 in a shared state directory)."""
    root = state_dir()
    path = root / name
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise os_error(exc, path, "use") from None
        if not stat.S_ISDIR(st.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise StateError(
                f"{path} is {kind}: migctl keeps its {name} there",
                hint=f"move {path} out of the way; migctl makes a new one",
            ) from None
        return path
    except OSError as exc:
        raise os_error(exc, path, "create") from None
    with contextlib.suppress(OSError):  # ours: made just now
        os.chmod(path, 0o2770 if shared(root) else 0o700)
    return path


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a mix.

    A temporary file beside it, fsync, rename; the temporary file never outlives a failure.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise os_error(exc, path, "write") from None
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), file_mode(path.parent))
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise os_error(exc, path, "write") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_small(path: Path, limit: int = MAX_STATE_FILE_BYTES) -> bytes:
    """The bytes of a small state file; ``OSError`` as raised, an oversized file as ``ValueError``."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data


def load_json(data: bytes | str) -> Any:
    """A state file's JSON; anything that is not JSON is a ``ValueError``, also a document nested
    past the parser's depth (``[[[[...``: a ``RecursionError`` from :func:`json.loads`)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("it is nested too deeply to be JSON migctl wrote") from None


def move_aside(path: Path, why: str) -> Path:
    """Rename a damaged state file to ``<name>.damaged-<n>`` beside it (kept for a post-mortem)."""
    n = 1
    while True:
        dest = path.with_name(f"{path.name}.damaged-{n}")
        if not dest.exists() and not dest.is_symlink():
            break
        n += 1
    try:
        os.rename(path, dest)
    except OSError as exc:
        raise os_error(exc, path, f"move the damaged file ({why}) aside from") from None
    return dest
