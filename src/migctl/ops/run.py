"""``migctl run``: lease a MIG device, run one command on it, and report its fate.

The command is started as an argv list, bound to the device by its environment (see
:mod:`migctl.ops.launch`), in migctl's own process group, so a terminal's Ctrl-C reaches it as
it would without migctl. migctl then waits with every forwarded signal blocked and collected by
``sigtimedwait``: a SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 sent to migctl is passed on
to the child, except a terminal's (the kernel already delivered it to the child too). The
child holds the lease through its inherited descriptor: if migctl is killed, the lease lasts
until the child ends. The result is a :class:`~migctl.records.run.RunReport`; the front end
exits with its ``exit_code``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from migctl.config.target import ANY, Target
from migctl.device import MigDeviceInfo, Node
from migctl.ops import child as children
from migctl.ops import launch
from migctl.ops.child import Child, blocked
from migctl.ops.leases import Lease
from migctl.records.run import BusyDevice, RunEvent, RunReport, RunStarting, RunWaiting


@dataclass(frozen=True)
class RunRequest:
    """What to run, and where.

    ``wait_s``: ``0`` fails at once (:class:`~migctl.errors.InUseError`) when every matching
    device is busy; ``None`` waits as long as needed; a number waits at most that long.
    """

    command: tuple[str, ...]
    target: Target = ANY
    wait_s: float | None = 0.0


def select(
    node: Node,
    target: Target,
    *,
    command: str,
    wait: float | None,
    on_wait: Callable[[list[BusyDevice]], None] | None = None,
) -> tuple[launch.Launcher, MigDeviceInfo, Lease]:
    """Resolve ``target`` on the node and lease one free device of it (waiting as asked)."""
    candidates = launch.match_target(target, launch.inventory(node))
    launcher = launch.Launcher(node)
    what = launch.describe_target(target)
    dev, lease = launch.acquire(launcher, candidates, command=command, wait=wait, what=what, on_wait=on_wait)
    return launcher, dev, lease


def supervise(child: Child, *, forward_tty_signals: bool = False) -> tuple[int, list[int]]:
    """Wait for ``child``, forwarding signals; returns its return code (``-N`` if signal N ended
    it) and the signals forwarded.

    Call with :data:`~migctl.ops.child.FORWARDED` and SIGCHLD already blocked (see :class:`blocked`).
    """
    waited = {*children.FORWARDED, signal.SIGCHLD}
    same_group = child.pgid is None
    forwarded: list[int] = []
    while True:
        code = child.poll()
        if code is not None:
            return code, forwarded
        info = signal.sigtimedwait(waited, 1.0)
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_code == children.SI_KERNEL and same_group and not forward_tty_signals:
            continue  # typed on the terminal: the child, in our foreground group, got it already
        child.signal(info.si_signo)
        forwarded.append(info.si_signo)


def run(node: Node, request: RunRequest, *, on_event: Callable[[RunEvent], None] | None = None) -> RunReport:
    """Run ``request.command`` on a leased MIG device until it ends.

    ``on_event`` hears :class:`~migctl.records.run.RunWaiting` (once, when every matching
    device is busy and the request waits) and :class:`~migctl.records.run.RunStarting`.
    Raises :class:`~migctl.ops.child.CommandNotFoundError` (before leasing anything),
    :class:`~migctl.errors.UsageError` for a target that names nothing,
    :class:`~migctl.errors.NotSupportedError` without MIG devices, and
    :class:`~migctl.errors.InUseError` when the wait ends with every match busy.
    """
    argv = list(request.command)
    exe = children.resolve_command(argv)  # before leasing: a typo must not hold a device
    text = " ".join(argv)

    def waiting(busy: list[BusyDevice]) -> None:
        if on_event is not None:
            on_event(RunWaiting(request.wait_s, tuple(busy)))

    # Waiting for a device happens with signals as usual (Ctrl-C ends the wait); from the
    # moment a device is leased they are blocked and collected, so none is lost around the start.
    asked = time.monotonic()
    launcher, dev, lease = select(node, request.target, command=text, wait=request.wait_s, on_wait=waiting)
    waited_s = time.monotonic() - asked
    try:
        with blocked():
            if on_event is not None:  # before the child can write: the notice comes first
                on_event(RunStarting(launch.device_ref(dev), tuple(argv)))
            child = launcher.start(dev, lease, argv, executable=exe)
            try:
                code, forwarded = supervise(child)
            except BaseException:
                lease.detach()  # the child may still run: leave the lease to it
                raise
    finally:
        lease.release()
    return RunReport(
        command=tuple(argv),
        device=launch.device_ref(dev),
        pid=child.pid,
        exit_code=children.exit_code(code),
        signal=children.signal_name(-code) if code < 0 else None,
        forwarded=tuple(children.signal_name(s) for s in forwarded),
        started=child.started_at,
        waited_s=round(waited_s, 3),
        duration_s=round(time.monotonic() - child.started, 3),
    )

