"""Records of the Ray front end's commands: ``ray up|down`` and ``cluster status|plan|apply|assert``.

Each node's part of a ``cluster`` command is that node's own record (``status``, ``plan``,
``apply``, ``assert`` on that node), headed by which Ray node it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.records.base import Record
from migctl.records.inspect import StatusReport
from migctl.records.layouts import ApplyReport, AssertReport, PlanReport


@dataclass(frozen=True)
class RayNode(Record):
    """A Ray node, as its migctl agent describes it."""

    node_id: str
    """Ray's node ID (hex)."""
    hostname: str
    """``?`` when the node could not be reached."""
    address: str
    """The node's IP address as Ray knows it (``?`` when unreachable)."""
    sim_spec: str | None
    """The node's ``MIGCTL_SIM`` spec (``null``: real GPUs through the driver)."""


# -- ray up | down -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentUp(Record):
    """A node whose agent is running."""

    node_id: str
    hostname: str
    address: str
    sim_spec: str | None
    state_dir: str
    """The node's ``MIGCTL_STATE_DIR`` (leases, journals, on-demand records)."""
    gpus: int
    mig_devices: int


@dataclass(frozen=True)
class RayUpReport(Record):
    """``migctl ray up``: the scheduler and one agent per node are running."""

    placement: Literal["migctl", "first-fit"]
    """Where instances made on demand go (``migctl``: best fit with the planner's placement)."""
    reclaim_after_s: float
    """Idle seconds after which an instance made on demand is destroyed (negative: never)."""
    nodes: tuple[AgentUp, ...]


@dataclass(frozen=True)
class RayDownReport(Record):
    """``migctl ray down``: the actors stopped (MIG instances stay as they are)."""

    stopped: tuple[str, ...]
    """Names of the Ray actors stopped (``migctl-scheduler``, ``migctl-agent-<node>``)."""


# -- cluster status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnDemandInstance(Record):
    """A GPU instance migctl.ray made for a request (destroyed once idle ``reclaim_after_s``)."""

    gpu: int
    gpu_instance_id: int


@dataclass(frozen=True)
class ClusterNodeStatus(Record):
    """One node: what ``migctl status`` shows there, and which instances were made on demand."""

    node: RayNode
    status: StatusReport | None
    """``null`` when the node could not be reached (``error`` says why)."""
    error: str | None
    on_demand: tuple[OnDemandInstance, ...]


@dataclass(frozen=True)
class ClusterStatusReport(Record):
    """``migctl cluster status``: every Ray node's GPUs, instances and MIG devices."""

    nodes: tuple[ClusterNodeStatus, ...]


# -- cluster plan | apply | assert ---------------------------------------------------------------

#: ``skipped``: a node without NVIDIA GPUs (a CPU-only head); ``unreachable``: it died or could
#: not be asked (during ``apply``: its own journal finishes or rolls back its GPUs later).
NodeResult = Literal[
    "planned", "refused", "applied", "unchanged", "failed", "matches", "differs", "skipped", "unreachable"
]


@dataclass(frozen=True)
class NodePlanOutcome(Record):
    node: RayNode
    ok: bool
    result: NodeResult
    """``planned`` or ``refused`` (some GPU of the node refuses: apply would change nothing there)."""
    detail: str
    seconds: float
    report: PlanReport | None
    """The node's own ``migctl plan`` record (``null`` when it could not be planned)."""


@dataclass(frozen=True)
class ClusterPlanReport(Record):
    """``migctl cluster plan``: what apply would do on each node; nothing is changed."""

    config: str
    ok: bool
    """Every node could be planned and none refuses."""
    nodes: tuple[NodePlanOutcome, ...]


@dataclass(frozen=True)
class NodeApplyOutcome(Record):
    node: RayNode
    ok: bool
    result: NodeResult
    """``applied``, ``unchanged``, ``skipped`` (fine); ``refused`` (nothing changed there), ``failed``,
    ``unreachable``."""
    detail: str
    seconds: float
    report: ApplyReport | None
    """The node's own ``migctl apply`` record (``null`` when refused before any change, or unreachable)."""


@dataclass(frozen=True)
class ClusterApplyReport(Record):
    """``migctl cluster apply``: each node's apply, run on that node, all nodes in parallel."""

    config: str
    ok: bool
    """Every node applied (or was already right, or has no GPUs); exit 1 otherwise."""
    nodes: tuple[NodeApplyOutcome, ...]


@dataclass(frozen=True)
class NodeAssertOutcome(Record):
    node: RayNode
    ok: bool
    result: NodeResult
    """``matches``, ``differs``, ``skipped``, ``failed`` or ``unreachable``."""
    detail: str
    seconds: float
    report: AssertReport | None
    """The node's own ``migctl assert`` record."""


@dataclass(frozen=True)
class ClusterAssertReport(Record):
    """``migctl cluster assert``: exit 0 when every node matches, 10 when some differ, 1 when one failed."""

    config: str
    ok: bool
    nodes: tuple[NodeAssertOutcome, ...]


NodeOutcome = NodePlanOutcome | NodeApplyOutcome | NodeAssertOutcome
ClusterReport = ClusterPlanReport | ClusterApplyReport | ClusterAssertReport
