"""``recover``: finish, or roll back, what a crash or ``kill -9`` left half-done.

``apply`` and ``create`` journal each GPU's target and its layout before
(:mod:`migctl.ops.journal`). A journal still there means the process died mid-change: the
GPU is taken to the target (``finished``) or, failing that, back to the layout before
(``rolled_back``); only when both fail is the journal kept (``failed``). ``apply`` does this
first, under the same lock.
"""

from __future__ import annotations

import pynvml

from migctl.device import Node
from migctl.errors import MigctlError
from migctl.ops import journal
from migctl.ops.execute import converge
from migctl.ops.lock import host_lock
from migctl.records.layouts import RecoveredGpu, RecoverReport


def recover_locked(node: Node) -> list[RecoveredGpu]:
    """Finish (or, failing that, roll back) every change a crash left in the journal (lock held)."""
    done = []
    for entry in journal.pending():
        index = int(entry["gpu"])
        path = journal.journal_dir() / f"gpu-{index}.json"
        if index >= len(node.gpus):
            path.unlink(missing_ok=True)
            continue
        gpu = node.gpus[index]
        try:
            converge(gpu, journal.target_from(entry["target"]))
            detail = f"finished the interrupted apply of config {entry['config']!r}"
            done.append(RecoveredGpu(index, "finished", detail))
        except (pynvml.NVMLError, MigctlError) as exc:
            try:
                converge(gpu, journal.target_from(entry["before"]))
            except (pynvml.NVMLError, MigctlError) as again:
                done.append(RecoveredGpu(index, "failed", f"{exc}; rollback failed too: {again}"))
                continue
            detail = f"could not finish config {entry['config']!r} ({exc}); rolled back to the layout before it"
            done.append(RecoveredGpu(index, "rolled_back", detail))
        path.unlink(missing_ok=True)
    return done


def recover(node: Node, *, wait_s: float | None = None) -> RecoverReport:
    """``migctl recover``: complete or undo an apply (or create) interrupted by a crash or ``kill -9``."""
    with host_lock(wait_s):
        return RecoverReport(tuple(recover_locked(node)))
