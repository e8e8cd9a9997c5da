"""Undoing what a create made when the driver fails (or Ctrl-C/SIGTERM arrives) part-way.

``create`` and ``create-ci`` record each instance they make in an :class:`Undo`; on a failure
they destroy them again, newest first, and say in the error whether that worked, so the GPU
ends exactly as it was (promise 2) or the user is told precisely what is left.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import pynvml

from migctl.device import ComputeInstance, GpuInstance
from migctl.errors import MigctlError, from_nvml

Made = TypeVar("Made", GpuInstance, ComputeInstance)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (they are delivered right after it).

    So an instance the driver created is always recorded before Ctrl-C or SIGTERM can stop
    the command: otherwise an interrupt between the create and its record would leave an
    instance the rollback does not know about.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Undo:
    """What this command created, so a failure can put the GPU back as it was."""

    def __init__(self) -> None:
        self.steps: list[GpuInstance | ComputeInstance] = []

    def create(self, make: Callable[[], Made]) -> Made:
        """``make()`` an instance and record it, with no interrupt in between."""
        with signals_held():
            made = make()
            self.steps.append(made)
        return made

    def made(self) -> str:
        """What would be undone, in words ("2 GPU instance(s) and 2 compute instance(s)")."""
        gis = sum(1 for s in self.steps if isinstance(s, GpuInstance))
        parts = [f"{n} {what} instance(s)" for n, what in ((gis, "GPU"), (len(self.steps) - gis, "compute")) if n]
        return " and ".join(parts)

    def rollback(self) -> list[str]:
        """Destroy everything made, newest first; the problems, in words (empty: all gone)."""
        problems = []
        for obj in reversed(self.steps):
            try:
                obj.destroy()
            except pynvml.NVMLError as exc:
                kind = "gi" if isinstance(obj, GpuInstance) else "ci"
                problems.append(f"could not destroy {kind} {obj.id}: {exc}")
        self.steps.clear()
        return problems

    def note(self, gpu_index: int) -> tuple[str, bool]:
        """Roll back and say what happened; the flag is whether the rollback was complete."""
        made = self.made()
        problems = self.rollback()
        if problems:
            return "rollback incomplete: " + "; ".join(problems) + f"; inspect with migctl status -i {gpu_index}", False
        if not made:
            return "nothing had been created yet; nothing changed", True
        return f"the {made} this command had created were destroyed again; nothing changed", True

    def failed(self, exc: pynvml.NVMLError, action: str, gpu_index: int) -> MigctlError:
        """Roll back after the driver refused ``action``; the typed error says how that went."""
        note, complete = self.note(gpu_index)
        return from_nvml(exc, action, hint=note, rolled_back=complete)
