"""``recover``: finish, or roll back, what a crash or ``kill -9`` left half-done.

``apply``, ``create`` and ``destroy`` journal each GPU's target and its layout before
(:mod:`migctl.ops.journal`). A journal still there means the process died mid-change: the
GPU is taken to the target (``finished``) or, failing that, back to the layout before
(``rolled_back``); only when both fail is the journal kept (``failed``). A change the user
cancelled (Ctrl-C/SIGTERM) is only ever rolled back, never finished. A journal that cannot be
read is moved aside and its GPU left alone (``damaged``): migctl cannot tell what it was doing,
so it changes nothing there and says what the GPU has now. ``apply`` does all this first,
under the same lock.

:func:`migctl.ops.journal.left_behind` is the read-only view (for ``status``, ``doctor`` and
``assert``): which GPUs an interrupted command left, without changing anything.
"""

from __future__ import annotations

from migctl.device import Gpu, Node
from migctl.ops import cancel, journal
from migctl.ops.busy import Claim
from migctl.ops.execute import converge
from migctl.ops.lock import host_lock
from migctl.records.layouts import RecoveredGpu, RecoverReport


def layout_words(gpu: Gpu) -> str:
    """What ``gpu`` has now, in words (``MIG enabled: GI 7 1g.12gb at 0:1 (1 CI), ...``)."""
    try:
        mode = gpu.mig_mode()
        if mode is None or not mode.current:
            return "MIG disabled"
        gis = gpu.gpu_instances()
        parts = [f"GI {gi.id} {gi.profile} at {gi.placement} ({len(gi.compute_instances())} CI)" for gi in gis]
        return "MIG enabled: " + (", ".join(parts) if parts else "no instances")
    except Exception as exc:  # only words for a message: never fail the report over them
        return f"unknown ({exc})"


def _damaged(node: Node, d: journal.Damaged) -> RecoveredGpu:
    moved = journal.move_aside(d)
    n = d.gpu
    head = f"the journal {d.path} is damaged ({d.problem}); it was moved to {moved}"
    if n >= len(node.gpus):
        return RecoveredGpu(n, "damaged", f"{head}; this node has no GPU {n}, so nothing was changed")
    detail = (
        f"{head}. GPU {n} was left alone: it has {layout_words(node.gpus[n])}, which may be neither its layout "
        f"before the interrupted change nor the one that change was making; check it with migctl status -i {n}, "
        f"then apply the layout you want (migctl apply -i {n} ...)"
    )
    return RecoveredGpu(n, "damaged", detail)


def _recover_one(gpu: Gpu, entry: journal.Entry) -> RecoveredGpu:
    what = journal.change_words(entry.config)
    claim = Claim(f"migctl recover ({entry.config})")
    try:
        if entry.cancelled:
            raise cancel.Cancelled(2)  # the user cancelled it: roll back only
        converge(gpu, entry.target, claim)
        result = RecoveredGpu(entry.gpu, "finished", f"finished the interrupted {what}")
    except Exception as exc:  # any failure, or a stop request: back to the layout before
        claim.release()
        if entry.cancelled:
            why = f"the {what} had been cancelled by the user, so it is never finished"
        elif isinstance(exc, cancel.Cancelled):
            why = f"interrupted by {exc} while finishing the {what}"
        else:
            why = f"could not finish the {what} ({exc})"
        with cancel.shielded(), Claim(f"migctl recover ({entry.config}): rolling back") as back:
            try:
                converge(gpu, entry.before, back)
            except Exception as again:
                detail = f"{why}; rolling back failed too: {again}; the journal is kept"
                return RecoveredGpu(entry.gpu, "failed", detail)
        result = RecoveredGpu(entry.gpu, "rolled_back", f"{why}; rolled back to the layout before it")
    finally:
        claim.release()
    journal.remove(entry.path)
    return result


def recover_locked(node: Node) -> list[RecoveredGpu]:
    """Finish (or roll back) every change a crash left in the journal, and move damaged journals
    aside (lock held). A stop request leaves the journals not yet handled for the next time."""
    entries, damaged = journal.scan(len(node.gpus))
    done = [_damaged(node, d) for d in damaged]
    stop = cancel.current()
    for entry in entries:
        if stop is not None and stop.requested:
            break
        done.append(_recover_one(node.gpus[entry.gpu], entry))
    return done


def recover(node: Node, *, wait_s: float | None = None) -> RecoverReport:
    """``migctl recover``: complete or undo an apply (or create) interrupted by a crash or ``kill -9``."""
    with host_lock(wait_s), cancel.cancellable() as stop:
        done = recover_locked(node)
        return RecoverReport(tuple(done), stop.name or None)
