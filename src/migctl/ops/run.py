"""``migctl run``: lease a MIG device, run one command on it, and pass its fate back.

The command is started as an argv list, bound to the device by its environment (see
:mod:`migctl.ops.launch`), in migctl's own process group, so a terminal's Ctrl-C reaches it as
it would without migctl. migctl then waits with every forwarded signal blocked and collected by
``sigtimedwait``: a SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 sent to migctl is passed on
to the child, except a terminal's (the kernel already delivered it to the child too). The exit
status is the child's (``128+N`` when a signal ends it). The child holds the lease through its
inherited descriptor: if migctl is killed, the lease lasts until the child ends.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from migctl.device import MigDeviceInfo, Node
from migctl.errors import UsageError
from migctl.ops import launch, leases
from migctl.ops.launch import Child, Launcher


@dataclass
class RunOptions:
    target: str | None = None
    wait: float | None = 0.0  # 0: fail at once if busy; None: wait as long as needed
    quiet: bool = False


def parse_args(args: Sequence[str]) -> tuple[RunOptions, list[str]]:
    """``[--on TARGET] [--wait [SECONDS] | --no-wait] [-q] [--] COMMAND...`` (options before the command)."""
    opts = RunOptions()
    i = 0
    seen_wait: str | None = None
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in ("--on", "-o"):
            if i + 1 >= len(args):
                raise UsageError(f"{a} needs a TARGET (a MIG-<uuid>, GPU:GI such as 0:13, or a profile)")
            opts.target = args[i + 1]
            i += 2
        elif a.startswith("--on="):
            opts.target = a.split("=", 1)[1]
            i += 1
        elif a == "--wait" or a.startswith("--wait="):
            if seen_wait == "--no-wait":
                raise UsageError("--wait and --no-wait exclude each other")
            seen_wait = "--wait"
            value: str | None = a.split("=", 1)[1] if "=" in a else None
            i += 1
            if value is None and i < len(args) and _is_number(args[i]):
                value = args[i]
                i += 1
            opts.wait = None if value is None else _seconds(value)
        elif a == "--no-wait":
            if seen_wait == "--wait":
                raise UsageError("--wait and --no-wait exclude each other")
            seen_wait = a
            opts.wait = 0.0
            i += 1
        elif a in ("-q", "--quiet"):
            opts.quiet = True
            i += 1
        elif a.startswith("-") and a != "-":
            raise UsageError(
                f"run: no such option {a!r}",
                hint="options go before the command; put the command after --: migctl run --on 0:13 -- python -u x.py",
            )
        else:
            break
    command = list(args[i:])
    if not command:
        raise UsageError("run: no command given", hint="e.g. migctl run --on 1g.12gb -- python train.py")
    return opts, command


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--wait {text!r}: expected a number of seconds") from None
    if value < 0 or value != value:
        raise UsageError(f"--wait {text!r}: expected a number of seconds >= 0")
    return value


def describe_wait(wait: float | None) -> str:
    return "as long as needed" if wait is None else f"up to {wait:g} s"


def select(
    node: Node,
    target: str | None,
    *,
    command: str,
    wait: float | None,
    on_wait: Callable[[list[dict[str, Any]]], None] | None = None,
) -> tuple[Launcher, MigDeviceInfo, Any]:
    """Resolve ``target`` on the node and lease one free device of it (waiting as asked)."""
    candidates = launch.match_target(target, launch.inventory(node))
    launcher = Launcher(node)
    what = "on this node" if target is None else f"matching {target!r}"
    dev, lease = launch.acquire(launcher, candidates, command=command, wait=wait, what=what, on_wait=on_wait)
    return launcher, dev, lease


def supervise(child: Child, *, forward_tty_signals: bool = False) -> int:
    """Wait for ``child``, forwarding signals; returns its return code (``-N`` if signal N ended it).

    Call with :data:`launch.FORWARDED` and SIGCHLD already blocked (see :func:`blocked`).
    """
    waited = {*launch.FORWARDED, signal.SIGCHLD}
    same_group = child.pgid is None
    while True:
        code = child.poll()
        if code is not None:
            return code
        info = signal.sigtimedwait(waited, 1.0)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_code == launch.SI_KERNEL and same_group and not forward_tty_signals:
            continue  # typed on the terminal: the child, in our foreground group, got it already
        child.signal(info.si_signo)


class blocked:
    """Block the launcher's signals in this thread for the block (restored, not dropped, after)."""

    def __init__(self, signals: Sequence[int] = (*launch.FORWARDED, signal.SIGCHLD)) -> None:
        self.signals = set(signals)
        self.old: set[int] | None = None

    def __enter__(self) -> blocked:
        self.old = set(signal.pthread_sigmask(signal.SIG_BLOCK, self.signals))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)


def run(
    node: Node,
    command: Sequence[str],
    opts: RunOptions,
    *,
    say: Callable[[str], None] | None = None,
) -> int:
    """Run ``command`` on a leased MIG device; returns the exit status for migctl to exit with."""
    exe = launch.resolve_command(command)  # before leasing: a typo must not hold a device
    text = " ".join(command)

    def waiting(busy: list[dict[str, Any]]) -> None:
        if say is not None and not opts.quiet:
            first = busy[0]
            say(
                f"waiting {describe_wait(opts.wait)} for a free MIG device "
                f"({len(busy)} busy; {first.get('uuid')} {leases.describe_holder(first)})"
            )

    # Waiting for a device happens with signals as usual (Ctrl-C ends the wait); from the
    # moment a device is leased they are blocked and collected, so none is lost around the start.
    launcher, dev, lease = select(node, opts.target, command=text, wait=opts.wait, on_wait=waiting)
    try:
        with blocked():
            if say is not None and not opts.quiet:
                say(f"running on {launch.label(dev)} {dev.uuid}: {text}")
            child = launcher.start(dev, lease, command, executable=exe)
            try:
                code = supervise(child)
            except BaseException:
                lease.detach()  # the child may still run: leave the lease to it
                raise
    finally:
        lease.release()
    return launch.exit_code(code)
