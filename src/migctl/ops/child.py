"""Starting and watching child processes: argv lookup, ``posix_spawn`` with a clean signal mask,
exit statuses as a shell reports them, and blocking the signals a launcher collects.

Children are started from an argv list (never a shell). Launchers (``run``, ``batch``,
``doctor``) wait for signals with ``sigtimedwait`` and keep them blocked meanwhile; a child
must not inherit that mask, nor Python's ignored SIGPIPE/SIGXFSZ.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migctl.errors import UsageError

#: Signals a launcher forwards to its child (``run``) or turns into a graceful stop (``batch``).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
#: What Python ignores that a child should get back at their defaults (as subprocess does).
_RESTORE_DEFAULT = tuple(s for s in (signal.SIGPIPE, getattr(signal, "SIGXFSZ", None)) if s is not None)
#: ``si_code`` of a signal the kernel sent itself: Ctrl-C on a terminal reaches the whole
#: foreground process group this way, so a child in ours already has it.
SI_KERNEL = 0x80


class CommandNotFoundError(UsageError):
    """The command to run does not exist (exit 127, as a shell) or cannot be executed (126)."""

    exit_code = 127
    kind = "command_not_found"


class CommandNotExecutableError(CommandNotFoundError):
    exit_code = 126
    kind = "command_not_executable"


def resolve_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The executable ``argv[0]`` names, looked up in the child's ``PATH`` (as a shell would)."""
    if not argv:
        raise UsageError("no command given", hint="put it after --, e.g. migctl run -- python train.py")
    name = argv[0]
    if "/" in name:
        path = name
        if not os.path.exists(path):
            raise CommandNotFoundError(f"{name}: no such file")
    else:
        search = (env or os.environ).get("PATH", os.defpath)
        found = shutil.which(name, path=search)
        if found is None:
            if any(os.path.exists(os.path.join(d, name)) for d in search.split(os.pathsep) if d):
                raise CommandNotExecutableError(f"{name}: permission denied (not executable)")
            raise CommandNotFoundError(f"{name}: command not found")
        path = found
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise CommandNotExecutableError(f"{name}: permission denied (not executable)")
    return path


@dataclass
class Child:
    """A started process. ``pgid`` is set when it leads its own session (its process group)."""

    pid: int
    argv: list[str]
    started: float  # time.monotonic()
    started_at: float  # time.time()
    pgid: int | None = None
    returncode: int | None = None  # as subprocess: -N when killed by signal N

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 255
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def signal_group(self, sig: int) -> bool:
        """Signal the child's whole process group; ``False`` if none of it is left."""
        if self.pgid is None:
            self.signal(sig)
            return self.returncode is None
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:  # a member changed identity; still there
            return True
        return True


def exit_code(returncode: int) -> int:
    """A child's return code as a shell reports it: ``128+N`` when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_exit(returncode: int) -> str:
    """``exit 3`` or ``killed by SIGTERM``."""
    return f"exit {returncode}" if returncode >= 0 else f"killed by {signal_name(-returncode)}"


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    pass_fds: Iterable[int] = (),
    new_session: bool = False,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    executable: str | None = None,
) -> Child:
    """Start ``argv`` (no shell) with ``env``; ``pass_fds`` stay open in the child.

    ``new_session`` makes the child lead a session and process group (``batch``: so a timeout
    or Ctrl-C can end the job with everything it started). The child gets an empty signal
    mask and SIGPIPE/SIGXFSZ at their defaults whatever the launcher blocks.
    """
    exe = executable or resolve_command(argv, env)
    actions: list[tuple[Any, ...]] = []
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        if fd is not None:
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
    passed = list(pass_fds)
    for fd in passed:
        os.set_inheritable(fd, True)
    try:
        pid = os.posix_spawn(
            exe,
            list(argv),
            dict(env),
            file_actions=actions or None,
            setsid=new_session,
            setsigmask=(),
            setsigdef=_RESTORE_DEFAULT,
        )
    except PermissionError:
        raise CommandNotExecutableError(f"{argv[0]}: permission denied") from None
    except FileNotFoundError:
        raise CommandNotFoundError(f"{argv[0]}: command not found") from None
    except OSError as exc:
        raise CommandNotExecutableError(f"{argv[0]}: cannot execute: {exc.strerror}") from None
    finally:
        for fd in passed:
            os.set_inheritable(fd, False)
    return Child(pid, list(argv), time.monotonic(), time.time(), pgid=pid if new_session else None)


class blocked:
    """Block the launcher's signals in this thread for the block (restored, not dropped, after)."""

    def __init__(self, signals: Sequence[int] = (*FORWARDED, signal.SIGCHLD)) -> None:
        self.signals = set(signals)
        self.old: set[int] | None = None

    def __enter__(self) -> blocked:
        self.old = set(signal.pthread_sigmask(signal.SIG_BLOCK, self.signals))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)
