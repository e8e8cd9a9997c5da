"""The simulated node's control plane: what happens around the driver, outside NVML.

>>> from migctl import sim
>>> control = sim.open_control("h20x8", state_dir="/tmp/s")     # doctest: +SKIP
>>> control.attach(pid, uuid="MIG-...", memory_mib=2048, util=70)  # doctest: +SKIP
>>> control.reset_gpu(0)                                        # doctest: +SKIP

``nvidia-smi --gpu-reset`` (:meth:`reset_gpu`), a driver reload or reboot
(:meth:`reload_driver`), a CUDA process starting on a device (:meth:`attach`, with the load it
puts there) and the ``nvidia-fabricmanager`` service (:meth:`fabric_manager`). NVML itself is
:class:`migctl.sim.nvml.SimNvml`, which offers only ``nvml*`` functions.

Refusals the driver would make (a reset while processes run) raise pynvml's ``NVMLError``
(IN_USE); mistakes in the request (no such process, no such device) raise
:class:`migctl.errors.UsageError` subclasses naming what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil
import pynvml

from migctl.errors import UsageError
from migctl.sim import engine
from migctl.sim.node import SimNode

MAX_UTIL = 100


class ProcessGoneError(UsageError):
    """The process to attach does not exist (or has exited)."""


class DeviceGoneError(UsageError):
    """No GPU or MIG device has that UUID or index (destroyed, or a typo)."""


@dataclass(frozen=True)
class FabricManagerState:
    """The simulated ``nvidia-fabricmanager`` service."""

    active: bool
    version: str


@dataclass(frozen=True)
class Attached:
    """A process recorded as a compute process on a device."""

    pid: int
    gpu: int
    gpu_instance_id: int | None
    compute_instance_id: int | None
    memory_mib: int
    util: int


class SimControl:
    """Controls of one simulated node. Create it with :func:`migctl.sim.open_control`."""

    def __init__(self, node: SimNode) -> None:
        self._sim = node

    @property
    def spec(self) -> str:
        return self._sim.spec()

    @property
    def gpu_count(self) -> int:
        return self._sim.count()

    @property
    def state_dir(self) -> Path:
        """The state directory (the node lives in its ``sim`` folder)."""
        return Path(self._sim.state_dir).parent

    @property
    def driver_root(self) -> Path:
        """Where the simulated driver's files are (``/proc/driver/...``, ``/dev/...`` beneath)."""
        return self._sim.files.root

    def child_env(self) -> dict[str, str]:
        """What a child process needs to open this same node."""
        return {"MIGCTL_SIM": self.spec, "MIGCTL_STATE_DIR": str(self.state_dir)}

    def needs_fabric_manager(self, gpu: int) -> bool:
        return self._sim.model(gpu).nvswitch

    # -- reset and reload ------------------------------------------------------------------

    def reset_gpu(self, gpu: int) -> None:
        """``nvidia-smi --gpu-reset``: a pending mode takes effect, instances are lost.

        Raises ``NVMLError_InUse`` while processes use the GPU.
        """
        self._sim.gpu(gpu)
        self._sim.check_fault("simResetGpu", gpu)
        with self._sim.store.edit(f"gpu-{gpu}") as state:
            engine.reset_gpu(state)
            self._sim.sleep("simResetGpu")

    def reload_driver(self) -> None:
        """Unload and reload the kernel modules (a reboot, as far as MIG is concerned)."""
        count = self._sim.count()
        for index in range(count):
            if engine.live_procs(self._sim.gpu(index)):
                raise pynvml.NVMLError(pynvml.NVML_ERROR_IN_USE)
        for index in range(count):
            with self._sim.store.edit(f"gpu-{index}") as state:
                engine.reload_driver(self._sim.model(index), state)
        self._sim.files.load_driver(list(range(count)), any(self._sim.model(i).nvswitch for i in range(count)))

    # -- processes -------------------------------------------------------------------------

    def _locate(self, uuid: str | None, gpu: int | None) -> tuple[int, int | None, int | None]:
        if uuid:
            for index in range(self._sim.count()):
                state = self._sim.gpu(index)
                if state["uuid"].lower() == uuid.lower():
                    return index, None, None
                for gi, ci in engine.mig_devices(state):
                    if ci["uuid"].lower() == uuid.lower():
                        return index, int(gi["id"]), int(ci["id"])
            raise DeviceGoneError(f"no GPU or MIG device has UUID {uuid}", hint="list them with: migctl devices")
        if gpu is None:
            raise UsageError("say where the process runs: a MIG device UUID or a GPU index")
        if not 0 <= gpu < self._sim.count():
            raise DeviceGoneError(f"the simulated node has no GPU {gpu} (it has {self._sim.count()})")
        return gpu, None, None

    def attach(
        self, pid: int, *, uuid: str | None = None, gpu: int | None = None, memory_mib: int = 0, util: int = 0
    ) -> Attached:
        """Record ``pid`` as a compute process on a MIG device (``uuid``) or a GPU without MIG.

        The record lasts as long as the process (pid and start time), as a CUDA context does.
        ``util`` (0-100) is the load it puts on the device's SMs, ``memory_mib`` its memory.
        """
        if not 0 <= util <= MAX_UTIL:
            raise UsageError(f"util {util}: a process's load is 0..{MAX_UTIL} percent")
        if memory_mib < 0:
            raise UsageError(f"memory {memory_mib}: a process's memory cannot be negative")
        try:
            proc = psutil.Process(int(pid))
            ctime, name = proc.create_time(), proc.name()
            if proc.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(int(pid))
        except psutil.Error:
            raise ProcessGoneError(f"no running process has pid {pid}", hint="start the process first") from None
        if uuid is None and gpu is None:
            raise UsageError("sim attach needs -i GPU or --uuid MIG-...", hint="list MIG devices with: migctl devices")
        index, gi_id, ci_id = self._locate(uuid, gpu)
        with self._sim.store.edit(f"gpu-{index}") as state:
            if gi_id is None and state["mig"]["current"] == pynvml.NVML_DEVICE_MIG_ENABLE:
                raise UsageError(
                    f"GPU {index} has MIG enabled: CUDA sees only its MIG devices",
                    hint="attach to a MIG device: --uuid MIG-... (list them with: migctl devices)",
                )
            if gi_id is not None:
                gi = engine.find_gi(state, gi_id)
                if gi is None or not any(c["id"] == ci_id for c in gi["cis"]):
                    raise DeviceGoneError(f"MIG device {uuid} no longer exists")
            engine.prune_dead(state)
            state["procs"] = [p for p in state["procs"] if p["pid"] != int(pid)]
            state["procs"].append(
                {
                    "pid": int(pid),
                    "ctime": ctime,
                    "gi": gi_id,
                    "ci": ci_id,
                    "mem_mib": int(memory_mib),
                    "name": name,
                    "util": int(util),
                }
            )
        return Attached(int(pid), index, gi_id, ci_id, int(memory_mib), int(util))

    def set_load(self, pid: int, *, util: int | None = None, memory_mib: int | None = None) -> Attached:
        """Change the load (and memory) of an attached process."""
        if util is not None and not 0 <= util <= MAX_UTIL:
            raise UsageError(f"util {util}: a process's load is 0..{MAX_UTIL} percent")
        for index in range(self._sim.count()):
            if not any(p["pid"] == int(pid) for p in self._sim.gpu(index)["procs"]):
                continue
            with self._sim.store.edit(f"gpu-{index}") as state:
                for p in state["procs"]:
                    if p["pid"] == int(pid) and engine.process_alive(p):
                        if util is not None:
                            p["util"] = int(util)
                        if memory_mib is not None:
                            p["mem_mib"] = int(memory_mib)
                        return Attached(
                            int(pid), index, p.get("gi"), p.get("ci"), int(p["mem_mib"]), int(p.get("util") or 0)
                        )
        raise ProcessGoneError(f"pid {pid} is not attached to any simulated device", hint="attach it first")

    def detach(self, pid: int) -> None:
        """Forget ``pid`` everywhere (as if its CUDA context were destroyed)."""
        for index in range(self._sim.count()):
            if any(p["pid"] == int(pid) for p in self._sim.gpu(index)["procs"]):
                with self._sim.store.edit(f"gpu-{index}") as state:
                    state["procs"] = [p for p in state["procs"] if p["pid"] != int(pid)]

    # -- the fabric manager ----------------------------------------------------------------

    def fabric_manager(self) -> FabricManagerState:
        fm = self._sim.node()["fabric_manager"]
        return FabricManagerState(bool(fm["active"]), str(fm["version"]))

    def set_fabric_manager(self, active: bool) -> FabricManagerState:
        with self._sim.store.edit("node") as node:
            node["fabric_manager"]["active"] = bool(active)
        return self.fabric_manager()
