"""The :class:`~migctl.device.platform.Platform` of a simulated node (``--sim SPEC``).

NVML is the simulator's facade (:class:`migctl.sim.SimNvml`); what happens outside NVML goes
through the simulator's control plane (:class:`migctl.sim.SimControl`). This is the only
device-layer module that knows the simulator exists, and it is chosen when the node is opened.
"""

from __future__ import annotations

import os
import tempfile
import time
from functools import cache

import pynvml

from migctl.core.geometry import GpuGeometry
from migctl.device.nvml import Nvml, NvmlLib
from migctl.device.platform import (
    CUDA_ERROR_NO_DEVICE,
    CUDA_ERROR_SYSTEM_NOT_READY,
    CUDA_ERROR_UNKNOWN,
    CudaCheck,
    FabricManager,
    Platform,
)
from migctl.device.system import remote_is_nvswitch
from migctl.errors import UsageError
from migctl.sim import SimControl, SimSpecError, open_both
from migctl.sim.control import DeviceGoneError, ProcessGoneError

REGISTERED_WAIT_S = 3.0
_SIM = " (simulated CUDA initialisation)"


class SimulatedRegistrar:
    """What CUDA does when a process creates its context: a record on the MIG device."""

    def __init__(self, control: SimControl) -> None:
        self._control = control

    def register(self, uuid: str, pid: int) -> bool:
        try:
            self._control.attach(pid, uuid=uuid)
        except (ProcessGoneError, DeviceGoneError):
            return False  # a child that finished at once, or a device destroyed meanwhile
        return True


class SimulatedFabricManager:
    def __init__(self, control: SimControl) -> None:
        self._control = control

    def start_hint(self, driver_version: str) -> str:
        return "migctl sim fabric-manager start"

    def state(self) -> FabricManager:
        fm = self._control.fabric_manager()
        return FabricManager(fm.active, fm.version, "simulated")


class SimulatedReset:
    def __init__(self, control: SimControl) -> None:
        self._control = control

    def reset(self, index: int, bus_id: str) -> None:
        self._control.reset_gpu(index)


class SimulatedCuda:
    """CUDA's start on a simulated node, as it would go on the hardware being simulated.

    * the GPU sits on an NVSwitch board and the fabric manager is inactive, or its version is
      not the driver's: error 802 "system not yet initialized" (cudaErrorSystemNotReady);
    * no MIG device has that UUID (destroyed, or a typo): error 100 "no CUDA-capable device";
    * the process never appears on the device in NVML: error 999 (the launcher did not
      register it, as CUDA would have).
    """

    def __init__(self, lib: NvmlLib, control: SimControl) -> None:
        self._lib = lib
        self._control = control

    def check(self, uuid: str) -> CudaCheck:
        lib, pid = self._lib, os.getpid()
        try:
            handle = lib.nvmlDeviceGetHandleByUUID(uuid)
        except pynvml.NVMLError:
            return CudaCheck(
                False, "no CUDA-capable device is detected (cudaErrorNoDevice)" + _SIM, CUDA_ERROR_NO_DEVICE
            )
        is_mig = lib.nvmlDeviceIsMigDeviceHandle(handle)
        if not int(getattr(is_mig, "value", is_mig)):  # pynvml returns the c_uint
            return CudaCheck(False, f"{uuid} is not a MIG device" + _SIM, CUDA_ERROR_NO_DEVICE)
        parent = lib.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
        if remote_is_nvswitch(lib, parent):
            fm = self._control.fabric_manager()
            if not fm.active or fm.version != str(lib.nvmlSystemGetDriverVersion()):
                text = "system not yet initialized (cudaErrorSystemNotReady)" + _SIM
                return CudaCheck(False, text, CUDA_ERROR_SYSTEM_NOT_READY)
        deadline = time.monotonic() + REGISTERED_WAIT_S
        while pid not in [int(p.pid) for p in lib.nvmlDeviceGetComputeRunningProcesses(handle)]:
            if time.monotonic() >= deadline:
                text = f"pid {pid} is not registered as a process on {uuid} (NVML does not list it)" + _SIM
                return CudaCheck(False, text, CUDA_ERROR_UNKNOWN)
            time.sleep(0.02)
        return CudaCheck(True, f"simulated CUDA sees exactly {uuid}; pid {pid} is registered on it")


def simulated_platform(lib: NvmlLib, control: SimControl) -> Platform:
    return Platform(
        description=f"simulator ({control.spec})",
        simulated=True,
        processes=SimulatedRegistrar(control),
        fabric_manager=SimulatedFabricManager(control),
        resetter=SimulatedReset(control),
        cuda=SimulatedCuda(lib, control),
        child_env=control.child_env(),
        driver_root=control.driver_root,
    )


def open_simulated(spec: str, state_dir: str | None = None) -> Nvml:
    """An NVML session on the simulated node ``spec`` (in ``state_dir`` or the default one)."""
    try:
        lib, control = open_both(spec, state_dir)
    except SimSpecError as exc:
        raise UsageError(str(exc)) from None
    lib.nvmlInit()
    return Nvml(lib, simulated_platform(lib, control))


@cache
def model_geometry(key: str) -> GpuGeometry:
    """A catalog model as migctl sees it on hardware: read through NVML from a simulated GPU.

    For tests, benchmarks and tools that need a model's geometry without a node of their own.
    """
    from migctl.device.gpu import Gpu

    with tempfile.TemporaryDirectory(prefix="migctl-geometry-") as tmp:
        nvml = open_simulated(key, tmp)
        return Gpu(nvml, 0).geometry()
