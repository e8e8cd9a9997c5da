"""The one place where migctl.ray calls migctl's node operations (device layer, ops, config).

Everything the agents, executors and actors do to a node (read its MIG state, take and
probe leases, register a process on a simulated MIG device, change instances through the
planned and journaled apply, plan/apply/assert a mig-parted config) goes through the
functions below and comes back as migctl.ray's own records (:mod:`migctl.ray.types`). When
the operations' signatures change, this file is the only one to adapt.

All of it runs on the node concerned (inside that node's agent or worker processes), so the
state directory and the simulator spec are that node's: ``MIGCTL_STATE_DIR`` and
``MIGCTL_SIM`` as they were when the node's ``ray start`` (or ``Cluster.add_node``) ran.

Longer than most modules on purpose: it is the single seam between the Ray front end and
migctl's operations, so that a change of the operations' API is adapted in one file.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from migctl.core.geometry import GpuGeometry, Placement
from migctl.core.layout import Target, TargetInstance
from migctl.device import Gpu, Node, open_node
from migctl.errors import MigctlError
from migctl.ray.types import DeviceRef, DeviceView, GpuView, InstanceView, NodeView

if TYPE_CHECKING:
    from migctl.ops.leases import Lease
    from migctl.ops.plan import NodePlan
    from migctl.records.common import Holder
    from migctl.records.inspect import StatusReport
    from migctl.records.layouts import ApplyReport, AssertReport, PlanReport


def _nvml_error() -> type[Exception]:
    import pynvml

    error: type[Exception] = pynvml.NVMLError
    return error


#: What a read of NVML raises when the state changes under it (an instance destroyed meanwhile).
NVML_ERRORS: tuple[type[Exception], ...] = (_nvml_error(),)


def _no_driver_codes() -> tuple[int, ...]:
    import pynvml

    return (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED)


#: NVML codes that mean "no NVIDIA driver on this node" (a CPU-only Ray node), not a failure.
NO_DRIVER: tuple[int, ...] = _no_driver_codes()


class _NoGpus:
    """Stands for the node of a CPU-only machine: no GPUs, nothing to close."""

    gpus: list[Gpu] = []
    is_simulator = False

    def close(self) -> None:
        return None


def empty_node() -> Node:
    """A node with no GPUs (an agent on a CPU-only Ray node reports it as such)."""
    from typing import cast

    return cast(Node, _NoGpus())


def open_local_node() -> Node:
    """This node's GPUs: the simulator when ``MIGCTL_SIM`` is set in the node's environment."""
    return open_node(None)


def state_root() -> Path:
    from migctl.paths import state_dir

    return state_dir()


def ray_dir() -> Path:
    from migctl.sim.state import ensure_private_dir

    return ensure_private_dir(state_root() / "ray")


# -- leases and processes (executors and actors) ---------------------------------------------


def device_env(dev: DeviceRef) -> dict[str, str]:
    """``CUDA_VISIBLE_DEVICES`` and the ``MIGCTL_*`` variables that bind a process to ``dev``."""
    from migctl.device import MigDeviceInfo
    from migctl.ops.launch import device_env as launch_env

    return launch_env(MigDeviceInfo(dev.gpu, 0, dev.uuid, dev.gi_id, dev.ci_id, dev.profile, dev.memory_mib))


def take_lease(uuid: str, command: str) -> Lease | None:
    """The migctl lease on ``uuid`` for this process (``None`` if someone holds it)."""
    from migctl.ops import leases

    return leases.try_acquire(uuid, command=command)


def lease_holder(uuid: str) -> Holder | None:
    from migctl.ops import leases

    return leases.holder(uuid)


def describe_holder(holder: Holder | None) -> str:
    from migctl.ops import leases

    return "free" if holder is None else leases.describe_holder(holder)


def register_process(uuid: str, pid: int, node: Node | None = None) -> None:
    """Make ``pid`` a process on MIG device ``uuid`` as CUDA does when it creates its context.

    Through the node's platform: a record on a simulated node, nothing on real GPUs (CUDA
    registers the process itself). A device that went meanwhile is nothing to be seen on.
    """
    import pynvml

    from migctl.device.process import ProcessRegistry

    mine = node is None
    here = open_local_node() if node is None else node
    try:
        ProcessRegistry(here.nvml).register(uuid, pid)
    except pynvml.NVMLError:
        pass
    finally:
        if mine:
            here.close()


def mark_executor(uuid: str, pid: int, job: str, actor_name: str) -> Path:
    """Leave a note that ``pid`` is a migctl.ray executor bound to ``uuid`` (the agent reads it)."""
    from migctl.sim.state import atomic_write_json, ensure_private_dir

    folder = ensure_private_dir(ray_dir() / "executors")
    path = folder / f"{pid}.json"
    atomic_write_json(path, {"pid": pid, "uuid": uuid, "job": job, "actor": actor_name, "since": time.time()})
    return path


def executor_notes() -> dict[int, tuple[str, str]]:
    """Live executors on this node: pid -> (the MIG UUID it is bound to, its actor name)."""
    folder = state_root() / "ray" / "executors"
    out: dict[int, tuple[str, str]] = {}
    if not folder.is_dir():
        return out
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text())
            pid = int(data["pid"])
            note = (str(data["uuid"]), str(data.get("actor", "")))
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if psutil.pid_exists(pid):
            out[pid] = note
        else:
            path.unlink(missing_ok=True)
    return out


def executors() -> dict[int, str]:
    """Live executors on this node: pid -> the MIG UUID it is bound to."""
    return {pid: uuid for pid, (uuid, _) in executor_notes().items()}


def retire(uuids: set[str], wait_s: float = 8.0) -> dict[str, str]:
    """Stop the executors bound to MIG devices ``uuids``, so the devices can be destroyed.

    Each device's lease is taken first, so no task can start on it meanwhile (an executor that
    meets the held lease gives the task back to be placed elsewhere; it never runs). Idle
    executors are then killed at once (``ray.kill``: no graceful exit, which takes a second per
    process), and the lease is given back once they are gone. Returns the devices that could
    not be retired, and why (a task or someone else holds the lease; a process did not exit).
    """
    import ray

    from migctl.ray.types import NAMESPACE

    refused: dict[str, str] = {}
    if not uuids:
        return refused
    notes = executor_notes()
    held: list[Lease] = []
    procs: dict[str, list[psutil.Process]] = {}
    try:
        for uuid in sorted(uuids):
            lease = take_lease(uuid, "migctl.ray agent: retiring this device's idle executors")
            if lease is None:
                refused[uuid] = f"MIG device {uuid} is {describe_holder(lease_holder(uuid))}"
                continue
            held.append(lease)
            for pid, (bound, name) in notes.items():
                if bound != uuid:
                    continue
                with contextlib.suppress(psutil.Error):
                    procs.setdefault(uuid, []).append(psutil.Process(pid))
                try:
                    ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
                except Exception:  # no such actor (any more), or Ray unreachable: SIGKILL it
                    with contextlib.suppress(psutil.Error):
                        psutil.Process(pid).kill()
        for uuid, ps in procs.items():
            left = _wait_gone(ps, wait_s)
            if left:
                refused[uuid] = f"executor(s) {', '.join(str(p.pid) for p in left)} of {uuid} did not exit"
    finally:
        for lease in held:
            lease.release()
    return refused


def stop_executors(pids: list[int], wait_s: float = 8.0) -> list[int]:
    """Ask idle executors to exit (a clean actor exit), SIGKILL the ones that do not; returns any left.

    For ``cluster apply``, which does not go through the scheduler: the graceful exit lets a
    task already queued on the executor fail before it starts (its dispatcher retries it).
    """
    import ray

    from migctl.ray.types import NAMESPACE

    notes = executor_notes()
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
        name = notes.get(pid, ("", ""))[1]
        try:
            ray.get_actor(name, namespace=NAMESPACE).leave.remote()
        except Exception:  # noqa: S110  no such actor any more, or Ray unreachable: SIGKILL below
            pass
    alive = _wait_gone(procs, wait_s / 2)
    killed = []
    for p in alive:
        uuid = notes.get(p.pid, ("", ""))[0]
        holder = lease_holder(uuid) if uuid else None
        if holder is not None and holder.pid == p.pid:
            continue  # it started a task meanwhile: never kill a running task
        with contextlib.suppress(psutil.Error):
            p.kill()
            killed.append(p)
    still = _wait_gone(killed, wait_s / 2)
    return [p.pid for p in alive if p not in killed] + [p.pid for p in still]


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited (a zombie counts as exited); returns those left."""
    deadline = time.monotonic() + timeout
    left = [p for p in procs if _running(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = [p for p in left if _running(p)]
    return left


def _running(p: psutil.Process) -> bool:
    """Alive and not a zombie (a zombie has closed its device files: it is gone for the GPU)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class DeviceProbe:
    """This node's NVML, kept open by an executor: does its MIG device still exist (checked after
    taking the lease), and registering the executor on it."""

    def __init__(self) -> None:
        self.node = open_local_node()

    def exists(self, uuid: str) -> bool:
        import pynvml

        nvml = self.node.nvml
        try:
            nvml.read(nvml.lib.nvmlDeviceGetHandleByUUID, uuid)
        except pynvml.NVMLError:
            return False
        return True

    def register(self, uuid: str, pid: int) -> None:
        register_process(uuid, pid, self.node)


# -- the node's state -------------------------------------------------------------------------

_geometry_cache: dict[tuple[str, int], GpuGeometry] = {}


def _geometry(gpu: Gpu) -> GpuGeometry:
    key = (gpu.uuid, gpu.index)
    found = _geometry_cache.get(key)
    if found is None:
        found = _geometry_cache[key] = gpu.geometry()
    return found


def layout_stamp() -> int:
    """Changes whenever a migctl command takes the host lock on this node (its owner file is made
    and removed in the state directory): the cue that the node's layout may have changed."""
    try:
        return os.stat(state_root()).st_mtime_ns
    except OSError:
        return 0


def read_layout(node: Node) -> tuple[GpuView, ...]:
    """The node's GPUs, GPU instances and MIG devices as NVML has them now, without holders.

    The costly part of a view (hundreds of NVML queries on an 8-GPU node); the agent keeps it
    until the node changes (:func:`layout_stamp`, its own changes) or for a few seconds.
    """
    gpus = []
    for gpu in node.gpus:
        mode = gpu.mig_mode()
        if mode is None:
            gpus.append(GpuView(gpu.index, gpu.name, False, None))
            continue
        devices_by_gi: dict[int, list[DeviceView]] = {}
        for m in gpu.mig_devices() if mode.current else []:
            devices_by_gi.setdefault(m.gi_id, []).append(
                DeviceView(m.uuid, gpu.index, m.gi_id, m.ci_id, m.profile, m.memory_mib)
            )
        instances = tuple(
            InstanceView(gi.id, gi.profile_id, gi.profile, gi.placement, tuple(devices_by_gi.get(gi.id, ())))
            for gi in (gpu.gpu_instances() if mode.current else [])
        )
        gpus.append(GpuView(gpu.index, gpu.name, bool(mode.current), _geometry(gpu), instances))
    return tuple(gpus)


def node_view(
    node: Node, node_id: str, on_demand: set[tuple[int, int, int]], layout: tuple[GpuView, ...], taken_at: float
) -> NodeView:
    """``layout`` (:func:`read_layout`) with who holds each MIG device now: its lease, else a process
    NVML lists on it that is not one of its migctl.ray executors; and those executors.

    ``on_demand`` holds ``(gpu, gi_id, placement start)`` of the instances made on demand;
    ``taken_at`` is when the layout was known to be current (before it was read, or checked).
    """
    from migctl.ops import journal, leases
    from migctl.ops.busy import node_leases

    held = node_leases()
    bound = executors()
    gpus = []
    for g in layout:
        if not g.mig_enabled:
            gpus.append(g)
            continue
        procs = node.gpus[g.index].processes()
        instances = []
        for inst in g.instances:
            devices = []
            for d in inst.devices:
                mine = tuple(pid for pid, uuid in bound.items() if uuid == d.uuid)
                holder_pid: int | None = None
                words = ""
                info = held.get(d.uuid)
                if info is not None:
                    holder_pid = info.pid if info.pid is not None else -1
                    words = leases.describe_holder(info)
                else:
                    other = next(
                        (p for p in procs if p.gi_id == d.gi_id and p.ci_id == d.ci_id and p.pid not in mine), None
                    )
                    if other is not None:
                        holder_pid = other.pid
                        words = f"used by pid {other.pid} ({other.command})"
                devices.append(replace(d, holder_pid=holder_pid, holder=words, executor_pids=mine))
            made = (g.index, inst.gi_id, inst.placement.start) in on_demand
            instances.append(replace(inst, devices=tuple(devices), on_demand=made))
        gpus.append(replace(g, instances=tuple(instances)))
    return NodeView(
        node_id=node_id,
        address=address(),
        hostname=socket.gethostname(),
        simulated=node.is_simulator,
        sim_spec=sim_spec(),
        state_dir=str(state_root()),
        gpus=tuple(gpus),
        taken_at=taken_at,
        journals=tuple(sorted(j.gpu for j in journal.pending())),
    )


def sim_spec() -> str | None:
    """This node's simulator spec (``MIGCTL_SIM`` in the node's environment), if simulated."""
    return os.environ.get("MIGCTL_SIM") or None


def address() -> str:
    """This node's IP address as Ray knows it."""
    try:
        import ray

        return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
    except Exception:
        return "127.0.0.1"


# -- changing instances (planned, journaled, host-locked) -------------------------------------


def change_gpus(
    node: Node,
    changes: dict[int, tuple[tuple[int, ...], tuple[tuple[int, Placement], ...]]],
    *,
    what: str,
    wait_s: float = 30.0,
) -> dict[int, tuple[bool, str]]:
    """Destroy and create GPU instances on several GPUs, as one apply (each GPU its own transaction).

    ``changes`` maps a GPU to ``(GPU instances to destroy, (profile, placement) to create)``.
    Every other instance is kept exactly where it is (the target pins it). It goes through
    ``apply``: under the host lock, re-planned from the GPU's state at that moment (a busy
    instance is never destroyed: that GPU is refused instead), journaled, and rolled back if
    the driver fails part-way. Returns, per GPU, ``(done, why)``.
    """
    from migctl.ops.apply import apply
    from migctl.ops.busy import node_leases
    from migctl.ops.plan import NodePlan, plan_gpu, refusal_error

    leases = node_leases()
    plans = []
    for gpu_index, (destroy, create) in sorted(changes.items()):
        gpu = node.gpus[gpu_index]
        kept = [
            TargetInstance(gi.profile_id, gi.placement, tuple(sorted(ci.profile for ci in gi.compute_instances())))
            for gi in gpu.gpu_instances()
            if gi.id not in destroy
        ]
        target = Target(True, tuple(kept) + tuple(TargetInstance(pid, at, None) for pid, at in create))
        plans.append(plan_gpu(gpu, target, leases))
    node_plan = NodePlan(what, "migctl.ray", tuple(plans))
    if node_plan.refusals:
        # apply refuses the whole node when one GPU refuses: apply the others, refuse that one.
        refused = {g.gpu: str(refusal_error(NodePlan(what, "migctl.ray", (g,)))) for g in node_plan.refusals}
        rest = {k: v for k, v in changes.items() if k not in refused}
        others = change_gpus(node, rest, what=what, wait_s=wait_s) if rest else {}
        return {**others, **{k: (False, why) for k, why in refused.items()}}
    try:
        report = apply(node, node_plan, parallel=True, wait_s=wait_s)
    except MigctlError as exc:
        return {k: (False, str(exc)) for k in changes}
    out: dict[int, tuple[bool, str]] = {}
    for o in report.gpus:
        ok = o.result in ("applied", "unchanged")
        out[o.gpu] = (ok, "" if ok else f"{o.result}: {o.detail}")
    for k in changes:
        out.setdefault(k, (False, "not applied"))
    return out


def create_instances(node: Node, asks: list[tuple[int, int, Placement]], what: str) -> list[DeviceRef | str]:
    """Create instances at the placements asked, ``(gpu, profile_id, placement)`` each: one
    journaled, all-or-nothing :func:`~migctl.ops.create.create_at` for the whole node. If that is
    refused (a placement was taken meanwhile) or fails, each GPU is tried alone, so only the GPU
    concerned fails. Returns per ask its MIG device, or why it was not made."""
    from migctl.ops.create import create_at

    def once(chosen: list[int]) -> dict[int, DeviceRef | str]:
        wanted = [(node.gpus[asks[i][0]], asks[i][1], asks[i][2]) for i in chosen]
        try:
            report = create_at(node, wanted, what=what)
        except MigctlError as exc:
            return {i: str(exc) for i in chosen}
        found = {(c.gpu, c.placement): c for c in report.created}
        out: dict[int, DeviceRef | str] = {}
        for i in chosen:
            c = found[(asks[i][0], asks[i][2])]
            if c.uuid is None or c.compute_instance_id is None:
                out[i] = f"GPU {c.gpu}: GI {c.gpu_instance_id} was made without a compute instance"
                continue
            memory = _geometry(node.gpus[c.gpu]).by_id(c.profile_id).memory_mib
            out[i] = DeviceRef(c.uuid, c.gpu, c.gpu_instance_id, c.compute_instance_id, c.profile, memory)
        return out

    everything = list(range(len(asks)))
    result = once(everything)
    gpus = sorted({a[0] for a in asks})
    if len(gpus) > 1 and all(isinstance(r, str) for r in result.values()):
        result = {}
        for gpu in gpus:
            result.update(once([i for i in everything if asks[i][0] == gpu]))
    return [result[i] for i in everything]


def destroy_instances(node: Node, gpu: int, gi_ids: tuple[int, ...]) -> str:
    """``migctl destroy`` of idle GPU instances (busy ones refuse it all); why not, or ``""``."""
    from migctl.ops.destroy import destroy

    try:
        destroy(node, [node.gpus[gpu]], gi_ids=gi_ids)
    except MigctlError as exc:
        return str(exc)
    return ""


def device_at(node: Node, gpu_index: int, placement: Placement) -> DeviceRef | None:
    """The MIG device of the GPU instance at ``placement`` on GPU ``gpu_index`` (its first CI)."""
    gpu = node.gpus[gpu_index]
    gi = next((g for g in gpu.gpu_instances() if g.placement == placement), None)
    if gi is None:
        return None
    dev = next((m for m in gpu.mig_devices() if m.gi_id == gi.id), None)
    if dev is None:
        return None
    return DeviceRef(dev.uuid, gpu_index, dev.gi_id, dev.ci_id, dev.profile, dev.memory_mib)


def gi_at(node: Node, gpu_index: int, placement: Placement) -> int | None:
    gi = next((g for g in node.gpus[gpu_index].gpu_instances() if g.placement == placement), None)
    return None if gi is None else gi.id


# -- layouts from a mig-parted file (cluster plan / apply / assert) ----------------------------


def read_config(path: str, name: str | None = None) -> tuple[str, str]:
    """The text of a mig-parted config file (``-``: stdin) and its name, checked (and ``name``
    looked up) here, where the command runs, before any node sees it."""
    from migctl.config import ConfigError, get_config, load_text
    from migctl.ops.files import read_text, usage_error

    text, source = read_text(path)
    try:
        spec = load_text(text, source)
        if name is not None:
            get_config(spec, name)
    except ConfigError as exc:
        raise usage_error(exc) from None
    return text, source


def _node_plan(node: Node, text: str, source: str, name: str | None) -> NodePlan:
    from migctl.config import ConfigError, load_text
    from migctl.ops.files import usage_error
    from migctl.ops.plan import plan_node

    try:
        spec = load_text(text, source)
    except ConfigError as exc:
        raise usage_error(exc) from None
    return plan_node(node, spec, name, list(node.gpus), source=source)


def plan_config(node: Node, text: str, source: str, name: str | None) -> PlanReport:
    """``migctl plan`` on this node (``refused`` says whether some GPU refuses)."""
    from migctl.ops.plan import plan_report

    return plan_report(_node_plan(node, text, source, name))


def apply_config(node: Node, text: str, source: str, name: str | None, wait_s: float) -> ApplyReport:
    """``migctl apply`` on this node; raises the refusal (nothing changed) as ``apply`` does."""
    from migctl.ops.apply import apply

    return apply(node, _node_plan(node, text, source, name), wait_s=wait_s)


def busy_in_plan(node: Node, text: str, source: str, name: str | None) -> list[tuple[int, int]]:
    """``(gpu, gi_id)`` of the busy instances that make this node refuse the config."""
    np = _node_plan(node, text, source, name)
    return [(g.gpu, e.gi_id) for g in np.refusals if g.refusal is not None for e in g.refusal.busy]


def assert_config(node: Node, text: str, source: str, name: str | None) -> AssertReport:
    """``migctl assert`` on this node: each GPU's differences (none: it matches)."""
    from migctl.ops.check import check

    return check(_node_plan(node, text, source, name), node)


def status(node: Node) -> StatusReport:
    """What ``migctl status`` shows for this node."""
    from migctl.ops.busy import node_leases
    from migctl.ops.inspect import status as inspect_status

    return inspect_status(node, list(node.gpus), node_leases())


def close(node: Node) -> None:
    with contextlib.suppress(Exception):
        node.close()
