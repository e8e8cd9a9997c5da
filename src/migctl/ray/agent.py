"""The node agent: one per Ray node, owning that node's MIG state through migctl's operations.

It runs as a detached, named Ray actor (``migctl-agent-<node id>`` in namespace ``migctl``)
pinned to its node with a hard ``NodeAffinitySchedulingStrategy``, so it inherits the node's
environment: ``MIGCTL_SIM`` and ``MIGCTL_STATE_DIR`` as they were when that node's
``ray start`` (or ``Cluster.add_node``) ran.

It answers: its node's view (:class:`NodeView`); making instances for the scheduler
(:meth:`NodeAgent.make_many`: plain creates through ``ops.create.create_at``, GPUs with idle
instances to replace through ``apply``, both host-locked and journaled, busy instances never
touched; asks that arrive while a change runs are carried out together by the next one);
reclaiming idle instances it made; and a mig-parted config's plan, apply and assert for
``migctl cluster``. A node that died mid-change is finished or rolled back by the next
change there (or ``migctl recover``). Calls run on a small thread pool (a slow change does
not hold up a view); changes are serialised by a lock here and by the host lock between
processes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field

from migctl.errors import InUseError, MigctlError
from migctl.ray import _node_ops as node_ops
from migctl.ray.types import Ask, ChangeResult, DeviceRef, GpuView, Made, NodeView
from migctl.records.cluster import (
    ClusterNodeStatus,
    NodeApplyOutcome,
    NodeAssertOutcome,
    NodePlanOutcome,
    NodeResult,
    OnDemandInstance,
    RayNode,
)

#: A layout read is kept at most this long (changes made without migctl, e.g. nvidia-smi, show
#: within it; migctl's own changes, from any process, show at once).
LAYOUT_MAX_AGE_S = 10.0


@dataclass
class _Batch:
    """One caller's asks, waiting for the change that carries them out (possibly another caller's)."""

    asks: list[Ask]
    what: str
    made: list[Made] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    done: bool = False


class NodeAgent:
    """The actor's class (wrapped with ``ray.remote`` by :func:`migctl.ray.control.start_agent`)."""

    def __init__(self, node_id: str) -> None:
        import ray

        here = ray.get_runtime_context().get_node_id()
        if here != node_id:  # the hard affinity makes this impossible; say so if it ever is not
            raise RuntimeError(f"migctl agent for node {node_id} started on node {here}")
        self.node_id = node_id
        self.no_gpus = ""  # why this node has no GPUs to manage (a CPU-only node: no NVIDIA driver)
        try:
            self.node = node_ops.open_local_node()
        except MigctlError as exc:
            if exc.nvml_code not in node_ops.NO_DRIVER:
                raise
            self.node = node_ops.empty_node()
            self.no_gpus = str(exc.message)
        self._mutex = threading.Lock()  # one change at a time (and the host lock between processes)
        self._queue_lock = threading.Lock()
        self._queue: list[_Batch] = []  # asks waiting for the next change
        self._on_demand: set[tuple[int, int, int]] = self._load_on_demand()
        self._layout: tuple[int, float, tuple[GpuView, ...]] | None = None  # (stamp, read at, layout)

    # -- reading ---------------------------------------------------------------------------

    def ping(self) -> str:
        return self.node_id

    def view(self, fresh: bool = False) -> NodeView:
        """The node as it is: the layout (re-read when the node changed, after the agent's own
        changes, or every :data:`LAYOUT_MAX_AGE_S`), and who holds each device now."""
        # Read while a change may be under way (only changes take the lock): an instance that
        # vanishes between two NVML calls makes the read fail; read again.
        for attempt in range(4):
            try:
                taken_at = time.time()  # before reading: a view is as old as its first read
                stamp = node_ops.layout_stamp()
                cached = self._layout
                if fresh or cached is None or cached[0] != stamp or time.monotonic() - cached[1] > LAYOUT_MAX_AGE_S:
                    cached = self._layout = (stamp, time.monotonic(), node_ops.read_layout(self.node))
                view = node_ops.node_view(self.node, self.node_id, set(self._on_demand), cached[2], taken_at)
                break
            except node_ops.NVML_ERRORS:
                self._layout = None
                if attempt == 3:
                    raise
                time.sleep(0.05)
        live = {(g.index, i.gi_id, i.placement.start) for g in view.gpus for i in g.instances}
        if not self._on_demand <= live:
            self._on_demand &= live
            self._save_on_demand()
        return view

    def header(self) -> RayNode:
        return RayNode(self.node_id, socket.gethostname(), node_ops.address(), node_ops.sim_spec())

    def status(self) -> ClusterNodeStatus:
        self.view()  # forgets on-demand instances that are gone
        made = tuple(OnDemandInstance(gpu, gi) for gpu, gi, _ in sorted(self._on_demand))
        return ClusterNodeStatus(self.header(), node_ops.status(self.node), None, made)

    # -- on-demand instances ---------------------------------------------------------------

    def make_many(self, asks: list[Ask], what: str) -> ChangeResult:
        """Make the instances asked for (reshaping idle ones where an ask says so); one change.

        Asks that arrive while a change runs wait and are then carried out together, as one
        change: creates on free slices are one journaled, all-or-nothing ``create_at`` for the
        node, GPUs with instances to destroy are one ``apply`` transaction each (planned from
        the GPU as it is, busy instances refused). The executors of the devices to destroy are
        stopped first, under their leases (no task can start on them meanwhile).
        """
        started = time.perf_counter()
        mine = _Batch(list(asks), what)
        with self._queue_lock:
            self._queue.append(mine)
        with self._mutex:
            if not mine.done:  # nobody carried it out while we waited: carry out everything queued
                with self._queue_lock:
                    batches, self._queue = self._queue, []
                self._change(batches, time.perf_counter() - started)
        view = self.view(fresh=True)
        return ChangeResult(tuple(mine.made), view, time.perf_counter() - started, tuple(mine.phases.items()))

    def _change(self, batches: list[_Batch], queued: float) -> None:
        asks = [(b, i, a) for b in batches for i, a in enumerate(b.asks)]
        results: dict[tuple[int, int], Made] = {}
        phases = {"queued": queued}
        t = time.perf_counter()
        # 1. The executors of devices about to be destroyed go first, under the devices' leases.
        doomed: dict[int, set[int]] = {}
        for _, _, a in asks:
            doomed.setdefault(a.gpu, set()).update(a.destroy)
        refused = self._retire({gpu: gis for gpu, gis in doomed.items() if gis})
        phases["retire"] = time.perf_counter() - t
        # 2. Plain creates on free slices: one create_at for the node.
        t = time.perf_counter()
        plain = [(b, i, a) for b, i, a in asks if not doomed.get(a.gpu) and a.gpu not in refused]
        if plain:
            out = node_ops.create_instances(self.node, [(a.gpu, a.profile_id, a.placement) for _, _, a in plain],
                                            batches[0].what)
            for (b, i, a), got in zip(plain, out, strict=True):
                results[(id(b), i)] = self._made(a, got)
        phases["create"] = time.perf_counter() - t
        # 3. Reshapes: one apply transaction per GPU (destroy the idle instances, create the new ones).
        t = time.perf_counter()
        changes = {
            gpu: (tuple(sorted(gis)), tuple((a.profile_id, a.placement) for _, _, a in asks if a.gpu == gpu))
            for gpu, gis in doomed.items()
            if gis and gpu not in refused
        }
        done = node_ops.change_gpus(self.node, changes, what=batches[0].what) if changes else {}
        # An executor may bind to a doomed device between the retire and the apply (it was being
        # started when the retire looked): the apply then refuses that GPU. Retire and try once more.
        again = {g: changes[g] for g, (ok, _) in done.items() if not ok and self._bound(g, set(changes[g][0]))}
        if again:
            refused_now = self._retire({gpu: set(change[0]) for gpu, change in again.items()})
            retry = {gpu: change for gpu, change in again.items() if gpu not in refused_now}
            done.update(node_ops.change_gpus(self.node, retry, what=batches[0].what) if retry else {})
            done.update({gpu: (False, why) for gpu, why in refused_now.items()})
        for gpu, (ok, why) in done.items():
            if ok:
                gone = set(changes[gpu][0])
                self._on_demand = {k for k in self._on_demand if not (k[0] == gpu and k[1] in gone)}
            for b, i, a in asks:
                if a.gpu == gpu:
                    dev = node_ops.device_at(self.node, gpu, a.placement) if ok else None
                    results[(id(b), i)] = self._made(a, dev if dev is not None else (why or "no MIG device made"))
        phases["reshape"] = time.perf_counter() - t
        for b, i, a in asks:
            if a.gpu in refused:
                results[(id(b), i)] = Made(None, refused[a.gpu])
        self._save_on_demand()
        for b in batches:
            b.made = [results.get((id(b), i), Made(None, "not carried out")) for i in range(len(b.asks))]
            b.phases = dict(phases)
            b.done = True

    def _made(self, ask: Ask, got: DeviceRef | str) -> Made:
        if isinstance(got, str):
            return Made(None, got)
        self._on_demand.add((got.gpu, got.gi_id, ask.placement.start))
        return Made(got)

    def reclaim(self, gpu: int, gi_ids: tuple[int, ...], what: str) -> ChangeResult:
        """Destroy idle instances made on demand (refused, changing nothing, if any is busy)."""
        started = time.perf_counter()
        with self._mutex:
            mine = {gi for g, gi, _ in self._on_demand if g == gpu}
            chosen = tuple(gi for gi in gi_ids if gi in mine)
            why = self._retire({gpu: set(chosen)}).get(gpu, "") if chosen else "not made on demand"
            if not why:
                why = node_ops.destroy_instances(self.node, gpu, chosen)
                if not why:
                    self._on_demand = {k for k in self._on_demand if not (k[0] == gpu and k[1] in chosen)}
                    self._save_on_demand()
        made = (Made(None, why),) if why else ()
        return ChangeResult(made, self.view(fresh=True), time.perf_counter() - started)

    def _retire(self, doomed: dict[int, set[int]]) -> dict[int, str]:
        """Stop the executors of the devices of GPU instances ``doomed`` (per GPU); why per GPU refused."""
        uuids: dict[str, int] = {}
        for gpu, gis in doomed.items():
            for m in self.node.gpus[gpu].mig_devices():
                if m.gi_id in gis:
                    uuids[m.uuid] = gpu
        refused: dict[int, str] = {}
        for uuid, why in node_ops.retire(set(uuids)).items():
            refused.setdefault(uuids[uuid], why)
        return refused

    def _bound(self, gpu: int, gis: set[int]) -> bool:
        """Whether a live executor is bound to a device of GPU instances ``gis`` of GPU ``gpu``."""
        uuids = {m.uuid for m in self.node.gpus[gpu].mig_devices() if m.gi_id in gis}
        return any(uuid in uuids for uuid in node_ops.executors().values())

    def _retire_idle(self, instances: list[tuple[int, int]]) -> bool:
        """Stop idle executors on ``(gpu, gi_id)`` instances nobody leases; whether any was stopped."""
        by_gi = {(m.gpu_index, m.gi_id): m.uuid for g in self.node.gpus for m in g.mig_devices()}
        uuids = {by_gi[k] for k in instances if k in by_gi}
        idle = {u for u in uuids if node_ops.lease_holder(u) is None}
        victims = [pid for pid, uuid in node_ops.executors().items() if uuid in idle]
        if victims:
            node_ops.stop_executors(victims)
        return bool(victims)

    def _load_on_demand(self) -> set[tuple[int, int, int]]:
        try:
            data = json.loads((node_ops.ray_dir() / "ondemand.json").read_text())
            return {(int(a), int(b), int(c)) for a, b, c in data}
        except (OSError, ValueError, TypeError):
            return set()

    def _save_on_demand(self) -> None:
        from migctl.sim.state import atomic_write_json

        atomic_write_json(node_ops.ray_dir() / "ondemand.json", sorted(self._on_demand))

    # -- cluster layout commands --------------------------------------------------------------

    def plan(self, text: str, source: str, name: str | None) -> NodePlanOutcome:
        started = time.perf_counter()
        if self.no_gpus:
            return NodePlanOutcome(self.header(), True, "skipped", self._no_gpus(), 0.0, None)
        try:
            report = node_ops.plan_config(self.node, text, source, name)
        except MigctlError as exc:
            return NodePlanOutcome(self.header(), False, _failed(exc), str(exc), _since(started), None)
        why = report.error.message if report.error is not None else ""
        result: NodeResult = "refused" if report.refused else "planned"
        return NodePlanOutcome(self.header(), not report.refused, result, why, _since(started), report)

    def apply(self, text: str, source: str, name: str | None, wait_s: float) -> NodeApplyOutcome:
        started = time.perf_counter()
        if self.no_gpus:
            return NodeApplyOutcome(self.header(), True, "skipped", self._no_gpus(), 0.0, None)
        try:
            with self._mutex:
                try:
                    report = node_ops.apply_config(self.node, text, source, name, wait_s)
                except InUseError:
                    busy = node_ops.busy_in_plan(self.node, text, source, name)
                    if not self._retire_idle(busy):
                        raise
                    # Idle migctl.ray executors (no lease: no task running) were all that stood in the way.
                    report = node_ops.apply_config(self.node, text, source, name, wait_s)
        except MigctlError as exc:
            return NodeApplyOutcome(self.header(), False, _failed(exc), str(exc), _since(started), None)
        if not report.ok:
            bad = [f"GPU {o.gpu}: {o.result}: {o.detail}" for o in report.gpus if o.result not in _DONE]
            hooks = ["the apply-exit hook failed"] if report.exit_hook_failed else []
            return NodeApplyOutcome(self.header(), False, "failed", "; ".join(bad + hooks), _since(started), report)
        changed = any(o.result == "applied" for o in report.gpus) or bool(report.recovered)
        result: NodeResult = "applied" if changed else "unchanged"
        return NodeApplyOutcome(self.header(), True, result, "", _since(started), report)

    def check(self, text: str, source: str, name: str | None) -> NodeAssertOutcome:
        started = time.perf_counter()
        if self.no_gpus:
            return NodeAssertOutcome(self.header(), True, "skipped", self._no_gpus(), 0.0, None)
        try:
            report = node_ops.assert_config(self.node, text, source, name)
        except MigctlError as exc:
            return NodeAssertOutcome(self.header(), False, _failed(exc), str(exc), _since(started), None)
        differs = " | ".join(f"GPU {g.gpu}: " + "; ".join(g.differences) for g in report.gpus if g.differences)
        result: NodeResult = "matches" if report.matches else "differs"
        return NodeAssertOutcome(self.header(), report.matches, result, differs, _since(started), report)

    def _no_gpus(self) -> str:
        return f"no GPUs here: {self.no_gpus}"


_DONE = ("applied", "unchanged", "skipped")


def _failed(exc: MigctlError) -> NodeResult:
    """A node's command that raised: ``refused`` when nothing was changed by design, else ``failed``."""
    return "refused" if exc.exit_code in (2, 4, 5) else "failed"


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
