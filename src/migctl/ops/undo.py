"""Undoing what a create made when the driver fails, Ctrl-C/SIGTERM arrives, or anything else goes wrong.

``create`` and ``create-ci`` record each instance they make in an :class:`Undo`; on a failure
they destroy them again, newest first, and say per GPU whether that worked, so each GPU ends
exactly as it was (promise 2) or the user is told precisely what is left.

Undoing is a destroy like any other: a MIG device this command made, that a job leased in the
meantime, is never destroyed (:class:`~migctl.ops.busy.Claim`); it is kept and named instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pynvml

from migctl.device import ComputeInstance, GpuInstance
from migctl.errors import MigctlError, from_nvml
from migctl.ops import cancel
from migctl.ops.busy import Claim

Made = TypeVar("Made", GpuInstance, ComputeInstance)


def _gpu_of(obj: GpuInstance | ComputeInstance) -> int:
    return obj.gpu.index if isinstance(obj, GpuInstance) else obj.gpu_instance.gpu.index


class Undo:
    """What this command created, so a failure can put each GPU back as it was."""

    def __init__(self, what: str = "migctl create") -> None:
        self.what = what
        self.steps: list[GpuInstance | ComputeInstance] = []

    def create(self, make: Callable[[], Made], find: Callable[[], Made | None] | None = None) -> Made:
        """``make()`` an instance and record it (signals only set a flag, so nothing slips between).

        A create the driver reports as failed may have happened (the call made it, then a query
        about it failed): ``find()`` looks for it then, so the undo knows about it too.
        """
        try:
            made = make()
        except BaseException:
            if find is not None:
                try:
                    found = find()
                except Exception:  # the driver may still be failing: the error raised says so
                    found = None
                if found is not None:
                    self.steps.append(found)
            raise
        self.steps.append(made)
        return made

    def made(self, gpu: int | None = None) -> str:
        """What would be undone (on ``gpu``), in words ("2 GPU instance(s) and 2 compute instance(s)")."""
        steps = [s for s in self.steps if gpu is None or _gpu_of(s) == gpu]
        gis = sum(1 for s in steps if isinstance(s, GpuInstance))
        parts = [f"{n} {what} instance(s)" for n, what in ((gis, "GPU"), (len(steps) - gis, "compute")) if n]
        return " and ".join(parts)

    def _destroy(self, obj: GpuInstance | ComputeInstance, claim: Claim) -> str | None:
        """Destroy one instance this command made; a problem in words, or ``None``."""
        if isinstance(obj, ComputeInstance):
            gi = obj.gpu_instance
            gpu = gi.gpu
            who = claim.users(gpu, gi, [obj], only_ci=obj.id)
            if who:
                return f"kept CI {gi.id}:{obj.id} on GPU {gpu.index}, in use since it was created: {', '.join(who)}"
            cancel.checkpoint(f"undo: destroy CI {gi.id}:{obj.id} on GPU {gpu.index}")
            obj.destroy()
            claim.destroyed([obj.uuid])
            return None
        if obj.compute_instances():
            return f"kept GI {obj.id} on GPU {obj.gpu.index}: it still has compute instances"
        cancel.checkpoint(f"undo: destroy GI {obj.id} on GPU {obj.gpu.index}")
        obj.destroy()
        return None

    def rollback(self) -> list[str]:
        """Destroy everything made, newest first; the problems, in words (empty: all gone)."""
        problems = []
        with cancel.shielded(), Claim(f"{self.what}: undoing") as claim:
            for obj in reversed(self.steps):
                try:
                    problem = self._destroy(obj, claim)
                except pynvml.NVMLError as exc:
                    kind = "GI" if isinstance(obj, GpuInstance) else "CI"
                    problem = f"could not destroy {kind} {obj.id} on GPU {_gpu_of(obj)}: {exc}"
                except Exception as exc:
                    kind = "GI" if isinstance(obj, GpuInstance) else "CI"
                    problem = f"could not destroy {kind} {obj.id} on GPU {_gpu_of(obj)}: {exc}"
                if problem:
                    problems.append(problem)
        self.steps.clear()
        return problems

    def note(self, gpus: list[int] | None = None) -> tuple[str, bool]:
        """Roll back and say what happened on each GPU; the flag is whether the rollback was complete.

        ``gpus``: the GPUs the command was changing (each is named, even where nothing was made yet).
        """
        touched = list(dict.fromkeys([*(gpus or []), *(_gpu_of(s) for s in self.steps)]))
        made = {g: self.made(g) for g in touched}
        problems = self.rollback()
        if problems:
            where = f"; inspect with migctl status -i {','.join(map(str, touched))}" if touched else ""
            return "rollback incomplete: " + "; ".join(problems) + where, False
        if not any(made.values()):
            return "nothing had been created yet; nothing changed", True
        words = [
            f"GPU {g}: " + (f"the {made[g]} this command had created were destroyed again" if made[g] else "untouched")
            for g in touched
        ]
        return "; ".join(words) + "; nothing changed", True

    def failed(self, exc: pynvml.NVMLError, action: str, gpu_index: int) -> MigctlError:
        """Roll back after the driver refused ``action``; the typed error says how that went."""
        note, complete = self.note([gpu_index])
        return from_nvml(exc, action, hint=note, rolled_back=complete)
