"""Ctrl-C and SIGTERM during a change: stop at the next safe point, never inside a step.

A command that changes GPUs runs inside :func:`cancellable`: while it does, SIGINT and SIGTERM
only *ask* it to stop (the handler sets a flag; no exception can land between an NVML call and
the record of what it did). Before every step that changes a GPU the operation calls
:func:`checkpoint`, which raises :class:`Cancelled` once a stop was asked for; the operation
then undoes its own changes (inside :func:`shielded`, where checkpoints do not raise) and
reports per GPU what happened. Further Ctrl-Cs while it undoes are noted and ignored: the
undo takes seconds, and a ``kill -9`` is still journaled.

Outside the main thread no handler can be installed; there a change cannot be cancelled by a
signal (the default handlers apply). A caller that blocks the stop signals itself (``batch
--auto`` takes them with ``sigtimedwait`` between its rounds) lets a change it started finish,
and asks :func:`stop_pending` before it starts another.

Test hooks, honoured only with the simulator (``MIGCTL_SIM`` set), so that the reliability
suite can stop a command at an exact step instead of by timing luck:

* ``MIGCTL_STEP_LOG=FILE``: append each step's description to FILE, one line per step.
* ``MIGCTL_FAULT_STEP=N:SIGNAL``: at the N-th step of this process (counted from 1, across
  threads), send itself ``SIGNAL`` (``KILL``, ``TERM``, ``INT``, or ``STOP`` to freeze there
  until a ``SIGCONT``, so a test can race another command against that exact step).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType


class Cancelled(Exception):
    """A stop was asked for (raised by :func:`checkpoint`); the operation undoes its changes."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Cancel:
    """Whether (and by which signal) the running command was asked to stop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.repeats = 0

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def request(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        else:
            self.repeats += 1


_active: Cancel | None = None
_shield = threading.local()


@contextlib.contextmanager
def cancellable() -> Iterator[Cancel]:
    """Turn SIGINT/SIGTERM into a stop request for the block (re-entrant: an inner use shares it)."""
    global _active
    if _active is not None:
        yield _active
        return
    cancel = Cancel()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        cancel.request(signum)

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    _active = cancel
    try:
        yield cancel
    finally:
        _active = None
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


def stop_pending() -> bool:
    """Whether SIGINT, SIGTERM or SIGHUP waits, blocked by this thread (``batch --auto``), to be taken."""
    blocked = set(signal.pthread_sigmask(signal.SIG_BLOCK, [])) & {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    return bool(blocked and signal.sigpending() & blocked)


def current() -> Cancel | None:
    """The stop request of the command running now (``None`` outside :func:`cancellable`)."""
    return _active


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Undoing: checkpoints in this thread do not raise (a stop asked for is already being honoured)."""
    _shield.depth = getattr(_shield, "depth", 0) + 1
    try:
        yield
    finally:
        _shield.depth -= 1


_passed = threading.local()


def checkpoint(what: str) -> None:
    """A safe point just before a step that changes a GPU: raises :class:`Cancelled` if asked to stop."""
    if _hooks_on():
        _test_hooks(what)
    cancel = _active
    if cancel is not None and cancel.signum is not None and not getattr(_shield, "depth", 0):
        raise Cancelled(cancel.signum)
    _passed.n = getattr(_passed, "n", 0) + 1


class Progress:
    """Whether this thread went past a checkpoint since this was made (so may have changed a GPU)."""

    def __init__(self) -> None:
        self._start = getattr(_passed, "n", 0)

    @property
    def changed(self) -> bool:
        return getattr(_passed, "n", 0) > self._start


# -- test hooks (simulator only) -------------------------------------------------------------------

_count_lock = threading.Lock()
_count = 0


def _hooks_on() -> bool:
    return bool(os.environ.get("MIGCTL_SIM")) and bool(
        os.environ.get("MIGCTL_STEP_LOG") or os.environ.get("MIGCTL_FAULT_STEP")
    )


def _test_hooks(what: str) -> None:
    global _count
    with _count_lock:
        _count += 1
        n = _count
        log = os.environ.get("MIGCTL_STEP_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{n} {what}\n")
    rule = os.environ.get("MIGCTL_FAULT_STEP", "")
    at, _, sig = rule.partition(":")
    if not at.isascii() or not at.isdigit() or int(at) != n:
        return
    signals = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT, "STOP": signal.SIGSTOP}
    signum = signals.get(sig.upper(), signal.SIGKILL)
    os.kill(os.getpid(), signum)
    if signum == signal.SIGSTOP:
        return
    # A handler runs in the main thread; wait until it has seen the signal, so the stop lands at
    # exactly this step whichever thread got here.
    deadline = time.monotonic() + 5
    while _active is not None and not _active.requested and time.monotonic() < deadline:
        time.sleep(0.001)


def reset_step_count() -> None:
    """Count steps from 1 again (the in-process test runner calls the CLI many times)."""
    global _count
    with _count_lock:
        _count = 0
