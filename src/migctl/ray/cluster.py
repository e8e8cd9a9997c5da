"""``migctl cluster status | plan | apply | assert``: every Ray node's layout, through its agent.

Each node's part runs on that node (in its agent), with the same planning, transaction and
journal as ``migctl apply`` there; the nodes run in parallel. A node that dies or cannot be
reached is reported as such (its own journal finishes or rolls back its GPUs on the next
apply there, or ``migctl recover``), and makes the whole command fail.
"""

from __future__ import annotations

import time
from typing import Any

from migctl.ray import control
from migctl.ray.types import ClusterReport, NodeHeader, NodeOutcome, NodeStatus


def _unreachable(node_id: str, command: str, exc: BaseException) -> NodeOutcome:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    what = {
        "apply": "the node died or could not be reached during apply; GPUs it was changing are finished or rolled "
        "back from its journal by the next apply there (or migctl recover on it)",
    }.get(command, "the node died or could not be reached")
    return NodeOutcome(NodeHeader(node_id, "?", "?", None), False, "unreachable", f"{what} ({first})")


def _gather(calls: dict[str, Any], command: str, timeout_s: float | None) -> list[NodeOutcome]:
    ray = control.ray_module()
    out = []
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    for node_id, ref in calls.items():
        left = None if deadline is None else max(0.1, deadline - time.monotonic())
        try:
            out.append(ray.get(ref, timeout=left))
        except Exception as exc:
            ray_errors = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "GetTimeoutError",
                          "NodeDiedError", "ActorUnschedulableError", "RayTaskError", "OwnerDiedError")
            if type(exc).__name__ not in ray_errors and not isinstance(exc, ray.exceptions.RayError):
                raise
            out.append(_unreachable(node_id, command, exc))
    return out


def status(address: str | None = None) -> list[NodeStatus]:
    control.connect(address)
    ray = control.ray_module()
    calls = {nid: a.status.remote() for nid, a in control.agents().items()}
    out: list[NodeStatus] = []
    for node_id, ref in calls.items():
        try:
            out.append(ray.get(ref, timeout=120))
        except ray.exceptions.RayError as exc:
            header = NodeHeader(node_id, "?", "?", None)
            out.append(NodeStatus(header, {"error": str(exc).splitlines()[0] if str(exc) else "unreachable"}))
    return out


def _run(command: str, text: str, source: str, name: str | None, address: str | None, wait_s: float) -> ClusterReport:
    control.connect(address)
    agents = control.agents()
    if command == "plan":
        calls = {nid: a.plan.remote(text, source, name) for nid, a in agents.items()}
    elif command == "apply":
        calls = {nid: a.apply.remote(text, source, name, wait_s) for nid, a in agents.items()}
    else:
        calls = {nid: a.check.remote(text, source, name) for nid, a in agents.items()}
    nodes = _gather(calls, command, None if command == "apply" else 300.0)
    config = next((str(n.data.get("config")) for n in nodes if n.data.get("config")), name or "")
    return ClusterReport(command, config, tuple(nodes))


def plan(text: str, source: str, name: str | None, address: str | None = None) -> ClusterReport:
    return _run("plan", text, source, name, address, 0.0)


def apply(text: str, source: str, name: str | None, address: str | None = None, wait_s: float = 60.0) -> ClusterReport:
    return _run("apply", text, source, name, address, wait_s)


def check(text: str, source: str, name: str | None, address: str | None = None) -> ClusterReport:
    return _run("assert", text, source, name, address, 0.0)
