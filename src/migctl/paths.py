"""Where migctl keeps its state (locks, leases, journals, the simulated node), and whether it is safe.

Which directory, first match wins:

1. ``MIGCTL_STATE_DIR`` (or ``--state-dir``), as given.
2. A simulated node (``MIGCTL_SIM`` / ``--sim`` / ``migctl.Node(sim=...)``): the per-user
   directory below, even for root. Simulated state never lands in a system path unless asked,
   and a simulated apply's journal can never be "recovered" onto real GPUs.
3. root: ``/var/lib/migctl`` (one place per host, so the host lock really is host-wide).
4. A user who can use ``/var/lib/migctl`` (the shared-server setup: its ``migctl`` group,
   see docs/safety.md): that directory, so their ``migctl run`` and root's see each
   other's leases.
5. Anyone else: ``$XDG_STATE_HOME/migctl`` (default ``~/.local/state/migctl``).

A directory migctl creates is made 0700. An existing one is used as it is (migctl never
changes the mode of a directory it did not create) if it is safe: a directory, owned by this
user or by root, writable by this user, and not writable by everyone (``/tmp`` is refused: any
user could plant or remove lease files there). A directory that is group-writable is the shared
setup: files migctl makes in it are then 0660 (group members take leases in them), else 0600.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from migctl.errors import PermissionDeniedError, StateError

SYSTEM_STATE_DIR = Path("/var/lib/migctl")
SHARED_GROUP = "migctl"
SETUP_DOC = "docs/safety.md, 'Shared servers'"


def user_state_dir() -> Path:
    """``$XDG_STATE_HOME/migctl`` (default ``~/.local/state/migctl``): this user's own."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "migctl"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _choose() -> tuple[Path, str]:
    env = os.environ.get("MIGCTL_STATE_DIR")
    if env:
        return Path(env).expanduser(), "MIGCTL_STATE_DIR"
    if os.environ.get("MIGCTL_SIM"):
        return user_state_dir(), "the simulator's per-user default"
    if _is_root():
        return SYSTEM_STATE_DIR, "root's default"
    if SYSTEM_STATE_DIR.is_dir() and os.access(SYSTEM_STATE_DIR, os.R_OK | os.W_OK | os.X_OK):
        return SYSTEM_STATE_DIR, f"the shared state directory (group {SHARED_GROUP})"
    return user_state_dir(), "this user's default"


def state_dir() -> Path:
    """The state directory, created (0700) if missing; a :class:`StateError` or
    :class:`PermissionDeniedError` naming it when it is unusable or unsafe."""
    path, origin = _choose()
    return ensure_state_dir(path, origin)


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _fix(origin: str) -> str:
    if origin == "MIGCTL_STATE_DIR":
        return "point MIGCTL_STATE_DIR (or --state-dir) at a directory of your own; migctl creates a missing one 0700"
    return "or set MIGCTL_STATE_DIR (or --state-dir) to a directory of your own"


def ensure_state_dir(path: Path, origin: str = "MIGCTL_STATE_DIR") -> Path:
    """``path`` made (0700) or checked as described in the module doc."""
    try:
        try:
            os.mkdir(path, 0o700)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except PermissionError:
        raise PermissionDeniedError(
            f"cannot create or reach the state directory {path} ({origin}): permission denied",
            hint=f"run as root, {_fix(origin)}",
        ) from None
    except OSError as exc:
        raise StateError(
            f"cannot create the state directory {path} ({origin}): {exc.strerror or exc}",
            hint=_fix(origin),
        ) from None
    else:
        os.chmod(path, 0o700)  # ours: made just now (the umask may have narrowed it further)
        return path
    return check_state_dir(path, origin)


def check_state_dir(path: Path, origin: str = "MIGCTL_STATE_DIR") -> Path:
    """An existing state directory, refused (never changed) when it is not safe to use."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise StateError(f"cannot use the state directory {path}: {exc.strerror or exc}", hint=_fix(origin)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(
            f"the state directory {path} ({origin}) is not a directory",
            hint=f"move that file away, {_fix(origin)}",
        )
    mode = stat.S_IMODE(st.st_mode)
    euid = os.geteuid()
    if st.st_uid not in (euid, 0):
        raise StateError(
            f"the state directory {path} ({origin}) belongs to {_owner(st.st_uid)}, not to you or root: "
            "its owner could forge or remove the leases that protect running jobs",
            hint=_fix(origin),
        )
    if mode & stat.S_IWOTH:
        raise StateError(
            f"the state directory {path} ({origin}) is writable by every user (mode {mode:04o}): anyone could "
            "forge or remove the leases and journals migctl keeps there; migctl does not change the mode of a "
            "directory it did not create",
            hint=f"{_fix(origin)} (a shared server: {SETUP_DOC})",
        )
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        who = _owner(st.st_uid)
        raise PermissionDeniedError(
            f"cannot use the state directory {path} ({origin}): it belongs to {who} (mode {mode:04o}) and you "
            "may not write there",
            hint=f"run as root, or join its group if it is set up for sharing ({SETUP_DOC}), {_fix(origin)}",
        )
    return path


def shared(root: Path) -> bool:
    """Whether ``root`` is set up for a group of users (group-writable): files are then 0660."""
    try:
        return bool(os.stat(root).st_mode & stat.S_IWGRP)
    except OSError:
        return False


def file_mode(root: Path) -> int:
    """The mode of files migctl makes under ``root``: 0660 when it is shared, else 0600."""
    return 0o660 if shared(root) else 0o600
