"""``assert``: does the node have the layout? Per GPU, how it differs (mig-parted's ``assert``).

A GPU differs when its MIG mode is not the target's (or a change is pending), or when its
instances differ (:func:`migctl.core.planner.difference`: missing, unexpected, compute layout).
As in mig-parted, a MIG-capable GPU that no entry of the config covers fails the assert.
"""

from __future__ import annotations

from migctl.core.planner import difference
from migctl.device import Node
from migctl.errors import MismatchError
from migctl.ops.plan import GpuPlan, NodePlan
from migctl.records.common import GpuDifferences
from migctl.records.layouts import AssertReport


def _differences(node: Node, config: str, g: GpuPlan) -> list[str]:
    if g.target is None:
        return [f"no entry of config {config!r} covers this GPU"]
    mode = node.gpus[g.gpu].mig_mode()
    lines = []
    if mode is not None and mode.current != g.target.mig_enabled:
        lines.append(
            f"MIG is {'enabled' if mode.current else 'disabled'}, target wants it "
            f"{'enabled' if g.target.mig_enabled else 'disabled'}"
        )
    if mode is not None and mode.pending != mode.current:
        lines.append("a MIG mode change is pending (needs a GPU reset)")
    if g.target.mig_enabled and mode is not None and mode.current and g.geometry is not None:
        lines += difference(g.geometry, g.before, g.target.instances)
    return lines


def check(node_plan: NodePlan, node: Node) -> AssertReport:
    """How each GPU differs from its target (GPUs no entry covers and that are not MIG-capable
    are left out; an empty ``differences``: it matches)."""
    gpus = tuple(
        GpuDifferences(g.gpu, tuple(_differences(node, node_plan.config, g)))
        for g in node_plan.gpus
        if g.target is not None or g.uncovered
    )
    return AssertReport(node_plan.config, not any(g.differences for g in gpus), gpus, node_plan.warnings)


def assert_node(node: Node, node_plan: NodePlan) -> AssertReport:
    """:func:`check`, raising :class:`~migctl.errors.MismatchError` (exit 10) when some GPU differs."""
    report = check(node_plan, node)
    bad = tuple(g for g in report.gpus if g.differences)
    if bad:
        text = " | ".join(f"GPU {g.gpu}: " + "; ".join(g.differences) for g in bad)
        raise MismatchError(f"the node does not match config {node_plan.config!r}: {text}", differences=bad)
    return report
