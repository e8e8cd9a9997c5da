"""Carrying out the scheduler's reshapes (``GpuAction``) through ``apply``'s transactions.

Each action's planner plan becomes a pinned target (kept and recomputed instances where they
are, new ones at their placements) and goes through :func:`migctl.ops.apply.apply`: under the
host lock, re-planned from the node as it is then (an instance that became busy meanwhile makes
that GPU refuse, and nothing changes on it), journaled (a ``kill -9`` half-way is finished or
rolled back by the next ``apply`` or ``migctl recover``), rolled back when the driver fails
part-way, GPUs in parallel. A MIG mode change the driver leaves pending (Ampere) is completed
with a GPU reset, which :func:`migctl.ops.mode.reset` refuses while anything uses the GPU.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from migctl.core.geometry import GpuGeometry
from migctl.core.layout import Plan, Target, TargetInstance
from migctl.core.scheduler import GpuAction
from migctl.device import Node
from migctl.errors import InsufficientResourcesError, InUseError, LockTimeoutError, MigctlError
from migctl.ops import mode as mode_ops
from migctl.ops.apply import apply
from migctl.ops.plan import GpuPlan, NodePlan
from migctl.records.autobatch import Reshape, ReshapeResult
from migctl.records.layouts import GpuOutcome

#: What the journal and ``migctl status`` call these changes.
CONFIG_NAME = "migctl batch --auto"
#: How long a reshape waits for another migctl holding the host lock (then it is retried later).
LOCK_WAIT_S = 5.0


def target_of(plan: Plan) -> Target:
    """The layout ``plan`` leads to, every instance pinned at its placement with its compute instances."""
    instances = [TargetInstance(e.profile_id, e.placement, tuple(e.compute)) for e in plan.keep]
    instances += [TargetInstance(r.instance.profile_id, r.instance.placement, tuple(r.compute)) for r in plan.recompute]
    instances += [TargetInstance(c.profile_id, c.placement, tuple(c.compute)) for c in plan.create]
    return Target(True, tuple(instances))


def _names(geometry: GpuGeometry, plan: Plan) -> tuple[tuple[str, ...], tuple[str, ...]]:
    def name(profile_id: int, start: int, size: int) -> str:
        return f"{geometry.by_id(profile_id).name}@{start}:{size}"

    destroyed = tuple(name(e.profile_id, e.placement.start, e.placement.size) for e in plan.destroy)
    created = tuple(name(c.profile_id, c.placement.start, c.placement.size) for c in plan.create)
    return destroyed, created


def _apply(node: Node, actions: Sequence[GpuAction]) -> dict[int, GpuOutcome | MigctlError]:
    """One apply over every action's GPU; a GPU that refuses is retried alone so the others go ahead."""
    gpus = tuple(GpuPlan(a.gpu, node.gpus[a.gpu].name, target_of(a.plan)) for a in actions)
    try:
        report = apply(node, NodePlan(CONFIG_NAME, CONFIG_NAME, gpus), wait_s=LOCK_WAIT_S)
    except (InUseError, InsufficientResourcesError) as exc:
        if len(gpus) == 1:
            return {gpus[0].gpu: exc}
        out: dict[int, GpuOutcome | MigctlError] = {}
        for a in actions:
            out.update(_apply(node, [a]))
        return out
    except LockTimeoutError as exc:
        return {g.gpu: exc for g in gpus}
    return {o.gpu: o for o in report.gpus}


def carry_out(node: Node, actions: Sequence[GpuAction], *, since: float) -> list[Reshape]:
    """Apply ``actions`` (GPUs in parallel); one :class:`Reshape` per GPU. ``since``: the batch's
    start on :func:`time.monotonic`'s clock, for the records' times."""
    began = time.monotonic()
    found = _apply(node, actions)
    seconds = {gpu: time.monotonic() - began for gpu in found}
    resets: set[int] = set()
    for a in actions:
        got = found[a.gpu]
        if isinstance(got, GpuOutcome) and got.result == "pending":
            # The driver keeps MIG pending until a GPU reset (Ampere): reset it now that it is idle
            # (refused, changing nothing, if anything uses it), then make the instances.
            t0 = time.monotonic()
            try:
                mode_ops.reset(node, [node.gpus[a.gpu]], wait_s=LOCK_WAIT_S)
                resets.add(a.gpu)
                found.update(_apply(node, [a]))
            except MigctlError as exc:
                found[a.gpu] = exc
            seconds[a.gpu] += time.monotonic() - t0
    out = []
    for a in actions:
        got = found[a.gpu]
        geometry = node.gpus[a.gpu].geometry()
        destroyed, created = _names(geometry, a.plan)
        result: ReshapeResult
        if isinstance(got, MigctlError):
            result, detail = "refused", got.message
        elif got.result in ("applied", "unchanged"):
            result, detail = "applied", got.detail
        elif got.result == "pending":
            result, detail = "refused", got.detail
        elif got.result == "rolled_back":
            result, detail = "rolled_back", got.detail
        else:
            result, detail = "failed", got.detail
        out.append(
            Reshape(
                gpu=a.gpu,
                at_s=round(began - since, 3),
                seconds=round(seconds[a.gpu], 3),
                predicted_s=round(a.seconds, 3),
                enable_mig=a.enable_mig,
                reset=a.gpu in resets,
                destroyed=destroyed,
                created=created,
                result=result,
                detail=detail,
            )
        )
    return out
