"""Starting and finding migctl's Ray actors: node agents, the scheduler, the job's dispatcher."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from migctl.ray.errors import RayNotAvailableError
from migctl.ray.types import NAMESPACE, SCHEDULER_NAME, NodeView, SchedulerConfig, agent_name

if TYPE_CHECKING:
    from migctl.records.cluster import RayDownReport, RayUpReport

_lock = threading.Lock()
_dispatchers: dict[str, Any] = {}


def ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise RayNotAvailableError(
            "Ray is not installed", hint="install migctl with the Ray extra: pip install 'migctl[ray]'"
        ) from None
    return ray


def connect(address: str | None = None) -> Any:
    """Connect this process to the Ray cluster (``address``: ``auto``, ``host:port``; ``None``: as ``ray.init``)."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    _reachable(address)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=True)
    except ConnectionError as exc:
        where = address or "auto"
        raise RayNotAvailableError(
            f"no Ray cluster at {where}: {str(exc).splitlines()[0] if str(exc) else 'connection refused'}",
            hint="start one with 'ray start --head' (each node's MIGCTL_SIM/MIGCTL_STATE_DIR set), or pass --address",
        ) from None
    return ray


def _reachable(address: str | None) -> None:
    """Fail in seconds, not minutes, when ``host:port`` has nothing listening (Ray would keep retrying)."""
    import socket

    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except (OSError, ValueError) as exc:
        raise RayNotAvailableError(
            f"no Ray cluster at {address}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}",
            hint="start one with 'ray start --head' (each node's MIGCTL_SIM/MIGCTL_STATE_DIR set), or fix --address",
        ) from None


def alive_nodes() -> list[str]:
    ray = ray_module()
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))


def start_agent(node_id: str) -> Any:
    """The agent of ``node_id`` (started if it is not running): detached, named, pinned to its node."""
    ray = ray_module()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from migctl.ray.agent import NodeAgent

    return (
        ray.remote(NodeAgent)
        .options(
            name=agent_name(node_id),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=16,
            max_restarts=-1,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        )
        .remote(node_id)
    )


def agents() -> dict[str, Any]:
    """An agent handle per alive node (starting the missing ones)."""
    return {node_id: start_agent(node_id) for node_id in alive_nodes()}


def scheduler(config: SchedulerConfig | None = None) -> Any:
    """The cluster scheduler (started if it is not running)."""
    ray = ray_module()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from migctl.ray.scheduler import Scheduler

    head = next((n["NodeID"] for n in ray.nodes() if n.get("Alive") and "node:__internal_head__" in n["Resources"]),
                None)
    options: dict[str, Any] = {
        "name": SCHEDULER_NAME,
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "get_if_exists": True,
        "num_cpus": 0,
        "max_concurrency": 100_000,
        "max_restarts": -1,
    }
    if head is not None:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(head, soft=True)
    return ray.remote(Scheduler).options(**options).remote(config or SchedulerConfig())


def dispatcher(executor_idle_s: float | None = None, prestart: int | None = None) -> Any:
    """This job's dispatcher (one per job, owned by the first process of the job that asks)."""
    ray = ray_module()
    from migctl.ray.dispatch import Dispatcher

    job = ray.get_runtime_context().get_job_id()
    with _lock:
        found = _dispatchers.get(job)
        if found is None:
            found = (
                ray.remote(Dispatcher)
                .options(
                    name=f"migctl-dispatch-{job}",
                    namespace=NAMESPACE,
                    get_if_exists=True,
                    num_cpus=0,
                    max_concurrency=100_000,
                )
                .remote(job, 30.0 if executor_idle_s is None else executor_idle_s, prestart or 0)
            )
            _dispatchers[job] = found
        elif executor_idle_s is not None or prestart is not None:
            ray.get(found.configure.remote(30.0 if executor_idle_s is None else executor_idle_s, prestart or 0))
    return found


def init(
    address: str | None = None,
    *,
    placement: str = "migctl",
    reclaim_after_s: float = 60.0,
    drain_after_s: float = 2.0,
    executor_idle_s: float = 30.0,
    prestart: int = 2,
    wait_s: float = 60.0,
) -> list[NodeView]:
    """Connect to Ray, start migctl's agent on every node and the scheduler; returns each node's view.

    Safe to call again (from the same or another driver): running actors are reused and the
    scheduler takes the new settings. Nodes that join later get their agent within a second.
    ``placement``: ``"migctl"`` (best fit, planner placement) or ``"first-fit"``.
    ``reclaim_after_s``: destroy an instance made on demand once idle this long (negative: never).
    ``executor_idle_s``: stop a MIG task's worker process once idle this long.
    ``prestart``: blank executor processes to keep warm per node for this job (started in the
    background, topped up as they are bound): a device made on demand gets a worker at once
    instead of waiting for a new process (about a second each; Ray starts a few at a time).
    """
    if placement not in ("migctl", "first-fit"):
        from migctl.ray.errors import MigRequestError

        raise MigRequestError(f"placement={placement!r}: expected 'migctl' or 'first-fit'")
    ray = connect(address)
    config = SchedulerConfig(
        placement="migctl" if placement == "migctl" else "first-fit",
        reclaim_after_s=reclaim_after_s,
        drain_after_s=drain_after_s,
    )
    views: list[NodeView] = ray.get(scheduler(config).start.remote(config, wait_s), timeout=wait_s + 30)
    d = dispatcher(executor_idle_s, prestart)
    if prestart:  # started in the background: init does not wait for worker processes
        d.prestart.remote(prestart, [v.node_id for v in views if v.gpus])
    return views


def up(address: str | None = None, *, placement: str = "migctl", reclaim_after_s: float = 60.0) -> RayUpReport:
    """``migctl ray up``: :func:`init`, as a record."""
    from migctl.records.cluster import AgentUp, RayUpReport

    views = init(address, placement=placement, reclaim_after_s=reclaim_after_s)
    nodes = tuple(
        AgentUp(v.node_id, v.hostname, v.address, v.sim_spec, v.state_dir, len(v.gpus), len(v.devices()))
        for v in views
    )
    return RayUpReport("first-fit" if placement == "first-fit" else "migctl", reclaim_after_s, nodes)


def down() -> RayDownReport:
    """``migctl ray down``: :func:`shutdown_actors`, as a record."""
    from migctl.records.cluster import RayDownReport

    return RayDownReport(tuple(shutdown_actors()))


def shutdown_actors() -> list[str]:
    """Stop the scheduler and every agent (``migctl ray down``); MIG instances stay as they are."""
    ray = ray_module()
    stopped = []
    names = [SCHEDULER_NAME] + [agent_name(n) for n in alive_nodes()]
    for name in names:
        try:
            handle = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            continue
        ray.kill(handle)
        stopped.append(name)
    _dispatchers.clear()
    return stopped
