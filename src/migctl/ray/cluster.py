"""``migctl cluster status | plan | apply | assert``: every Ray node's layout, through its agent.

Each node's part runs on that node (in its agent), with the same planning, transaction and
journal as ``migctl apply`` there; the nodes run in parallel. A node that dies or cannot be
reached is reported as such (its own journal finishes or rolls back its GPUs on the next
apply there, or ``migctl recover``), and makes the whole command fail. Every answer is a
typed record of :mod:`migctl.records.cluster`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from migctl.ray import control
from migctl.records.cluster import (
    ClusterApplyReport,
    ClusterAssertReport,
    ClusterNodeStatus,
    ClusterPlanReport,
    ClusterStatusReport,
    NodeApplyOutcome,
    NodeAssertOutcome,
    NodePlanOutcome,
    RayNode,
)

Outcome = TypeVar("Outcome", NodePlanOutcome, NodeApplyOutcome, NodeAssertOutcome)

_UNREACHABLE = {
    "apply": "the node died or could not be reached during apply; GPUs it was changing are finished or rolled "
    "back from its journal by the next apply there (or migctl recover on it)",
}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _unknown(node_id: str) -> RayNode:
    return RayNode(node_id, "?", "?", None)


def _gather(
    calls: dict[str, Any], command: str, timeout_s: float | None, unreachable: Callable[[str, str], Outcome]
) -> list[Outcome]:
    ray = control.ray_module()
    out: list[Outcome] = []
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    for node_id, ref in calls.items():
        left = None if deadline is None else max(0.1, deadline - time.monotonic())
        try:
            out.append(ray.get(ref, timeout=left))
        except ray.exceptions.RayError as exc:  # the node died, its agent could not start, or timed out
            what = _UNREACHABLE.get(command, "the node died or could not be reached")
            out.append(unreachable(node_id, f"{what} ({_first_line(exc)})"))
    return out


def status(address: str | None = None) -> ClusterStatusReport:
    """Every node's ``migctl status``, with the instances made on demand there."""
    control.connect(address)
    ray = control.ray_module()
    calls = {nid: a.status.remote() for nid, a in control.agents().items()}
    out: list[ClusterNodeStatus] = []
    for node_id, ref in calls.items():
        try:
            out.append(ray.get(ref, timeout=120))
        except ray.exceptions.RayError as exc:
            out.append(ClusterNodeStatus(_unknown(node_id), None, _first_line(exc) or "unreachable", ()))
    return ClusterStatusReport(tuple(out))


def _config(reports: list[Any], name: str | None) -> str:
    return next((n.report.config for n in reports if n.report is not None), name or "")


def plan(text: str, source: str, name: str | None, address: str | None = None) -> ClusterPlanReport:
    control.connect(address)
    calls = {nid: a.plan.remote(text, source, name) for nid, a in control.agents().items()}
    nodes = _gather(calls, "plan", 300.0, lambda n, why: NodePlanOutcome(_unknown(n), False, "unreachable", why,
                                                                          0.0, None))
    return ClusterPlanReport(_config(nodes, name), bool(nodes) and all(n.ok for n in nodes), tuple(nodes))


def apply(
    text: str, source: str, name: str | None, address: str | None = None, wait_s: float = 60.0
) -> ClusterApplyReport:
    control.connect(address)
    calls = {nid: a.apply.remote(text, source, name, wait_s) for nid, a in control.agents().items()}
    nodes = _gather(calls, "apply", None, lambda n, why: NodeApplyOutcome(_unknown(n), False, "unreachable", why,
                                                                           0.0, None))
    return ClusterApplyReport(_config(nodes, name), bool(nodes) and all(n.ok for n in nodes), tuple(nodes))


def check(text: str, source: str, name: str | None, address: str | None = None) -> ClusterAssertReport:
    control.connect(address)
    calls = {nid: a.check.remote(text, source, name) for nid, a in control.agents().items()}
    nodes = _gather(calls, "assert", 300.0, lambda n, why: NodeAssertOutcome(_unknown(n), False, "unreachable",
                                                                              why, 0.0, None))
    return ClusterAssertReport(_config(nodes, name), bool(nodes) and all(n.ok for n in nodes), tuple(nodes))
