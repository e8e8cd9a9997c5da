"""The NVML boundary: exactly the NVML calls migctl makes, typed, and one session over them.

:class:`NvmlLib` lists every NVML function migctl calls, with pynvml's names and parameters.
Two things implement it: the ``pynvml`` module (the real driver) and the simulator's facade
(:class:`migctl.sim.SimNvml`); ``tests/test_contract.py`` checks both. No module outside
:mod:`migctl.device` calls NVML.

:class:`Nvml` is one session: the library plus the :class:`~migctl.device.platform.Platform`
(what lies outside NVML), chosen together when the node is opened. It adds the two policies
every call needs: queries that fail transiently (the seed's "if ``-lgip`` fails, run it a few
more times") are retried with a bounded backoff; calls that change the GPU are never retried,
because a retry after an unseen success would create a second instance.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import pynvml

from migctl.device.platform import Platform
from migctl.errors import DriverError, from_nvml

TRANSIENT = frozenset({pynvml.NVML_ERROR_UNKNOWN, pynvml.NVML_ERROR_TIMEOUT, pynvml.NVML_ERROR_NOT_READY})
READ_ATTEMPTS = 4
BACKOFF_S = (0.05, 0.1, 0.2)

NO_DRIVER = (
    "no NVIDIA driver found (NVML could not be loaded); to try migctl without a GPU, "
    "run it on the simulator: migctl --sim h20x8 status"
)

P = ParamSpec("P")
T = TypeVar("T")
Handle = Any  # a pynvml handle: c_nvmlDevice_t, c_nvmlGpuInstance_t or c_nvmlComputeInstance_t
Struct = Any  # a pynvml ctypes struct (nvmlPciInfo_t, c_nvmlMemory_t, ...)


class NvmlLib(Protocol):
    """The NVML calls migctl makes (pynvml's names and parameters); pynvml and the simulator."""

    # -- library and system
    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str: ...
    def nvmlSystemGetCudaDriverVersion(self) -> int: ...

    # -- devices
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle: ...
    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> Handle: ...
    def nvmlDeviceGetUUID(self, handle: Handle) -> str: ...
    def nvmlDeviceGetName(self, handle: Handle) -> str: ...
    def nvmlDeviceGetPciInfo(self, handle: Handle) -> Struct: ...
    def nvmlDeviceGetMinorNumber(self, handle: Handle) -> int: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Handle, version: Any = None) -> Struct: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Handle) -> list[Any]: ...
    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle: Handle, link: int) -> int: ...

    # -- MIG mode and GPU-instance profiles
    def nvmlDeviceGetMigMode(self, device: Handle) -> list[int]: ...
    def nvmlDeviceSetMigMode(self, device: Handle, mode: int) -> int: ...
    def nvmlDeviceGetGpuInstanceProfileInfo(self, device: Handle, profile: int, version: int = 2) -> Struct: ...
    def nvmlDeviceGetGpuInstancePossiblePlacements(
        self, device: Handle, profileId: int, placementsRef: Any, countRef: Any
    ) -> int: ...
    def nvmlDeviceGetGpuInstanceRemainingCapacity(self, device: Handle, profileId: int) -> int: ...

    # -- GPU instances
    def nvmlDeviceGetGpuInstances(self, device: Handle, profileId: int, gpuInstancesRef: Any, countRef: Any) -> int: ...
    def nvmlDeviceGetGpuInstanceById(self, device: Handle, gpuInstanceId: int) -> Handle: ...
    def nvmlDeviceCreateGpuInstance(self, device: Handle, profileId: int) -> Handle: ...
    def nvmlDeviceCreateGpuInstanceWithPlacement(self, device: Handle, profileId: int, placement: Any) -> Handle: ...
    def nvmlGpuInstanceGetInfo(self, gpuInstance: Handle) -> Struct: ...
    def nvmlGpuInstanceDestroy(self, gpuInstance: Handle) -> int: ...

    # -- compute instances
    def nvmlGpuInstanceGetComputeInstanceProfileInfo(
        self, device: Handle, profile: int, engProfile: int, version: int = 2
    ) -> Struct: ...
    def nvmlGpuInstanceGetComputeInstanceRemainingCapacity(self, gpuInstance: Handle, profileId: int) -> int: ...
    def nvmlGpuInstanceGetComputeInstancePossiblePlacements(
        self, gpuInstance: Handle, profileId: int, placementsRef: Any, countRef: Any
    ) -> int: ...
    def nvmlGpuInstanceGetComputeInstances(
        self, gpuInstance: Handle, profileId: int, computeInstancesRef: Any, countRef: Any
    ) -> int: ...
    def nvmlGpuInstanceCreateComputeInstance(self, gpuInstance: Handle, profileId: int) -> Handle: ...
    def nvmlGpuInstanceCreateComputeInstanceWithPlacement(
        self, gpuInstance: Handle, profileId: int, placement: Any
    ) -> Handle: ...
    def nvmlComputeInstanceGetInfo(self, computeInstance: Handle) -> Struct: ...
    def nvmlComputeInstanceDestroy(self, computeInstance: Handle) -> int: ...

    # -- MIG devices
    def nvmlDeviceGetMaxMigDeviceCount(self, device: Handle) -> int: ...
    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: Handle, index: int) -> Handle: ...
    def nvmlDeviceIsMigDeviceHandle(self, device: Handle) -> Any: ...  # a c_uint (pynvml's quirk)
    def nvmlDeviceGetGpuInstanceId(self, device: Handle) -> int: ...
    def nvmlDeviceGetComputeInstanceId(self, device: Handle) -> int: ...
    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, migDevice: Handle) -> Handle: ...

    # -- monitoring (device/telemetry.py, device/gpm.py)
    def nvmlDeviceGetBAR1MemoryInfo(self, handle: Handle) -> Struct: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Handle) -> Struct: ...
    def nvmlDeviceGetTemperature(self, handle: Handle, sensor: int) -> int: ...
    def nvmlDeviceGetPowerUsage(self, handle: Handle) -> int: ...
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Handle) -> int: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Handle) -> int: ...
    def nvmlDeviceGetClockInfo(self, handle: Handle, type: int) -> int: ...
    def nvmlDeviceGetEncoderUtilization(self, handle: Handle) -> list[int]: ...
    def nvmlDeviceGetDecoderUtilization(self, handle: Handle) -> list[int]: ...
    def nvmlGpmQueryDeviceSupport(self, device: Handle) -> Struct: ...
    def nvmlGpmSampleAlloc(self) -> Handle: ...
    def nvmlGpmSampleFree(self, gpmSample: Handle) -> None: ...
    def nvmlGpmSampleGet(self, device: Handle, gpmSample: Handle) -> Handle: ...
    def nvmlGpmMigSampleGet(self, device: Handle, gpuInstanceId: int, gpmSample: Handle) -> Handle: ...
    def nvmlGpmMetricsGet(self, metricsGet: Struct) -> Struct: ...


class Nvml:
    """One NVML session: ``lib`` (pynvml or the simulator) and the node's ``platform``."""

    def __init__(self, lib: NvmlLib, platform: Platform) -> None:
        self.lib = lib
        self.platform = platform

    def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call a query, retrying transient failures (at most 4 attempts, 0.35 s in all)."""
        for attempt in range(READ_ATTEMPTS):
            try:
                return fn(*args, **kwargs)
            except pynvml.NVMLError as exc:
                if exc.value not in TRANSIENT or attempt == READ_ATTEMPTS - 1:
                    raise
                time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
        raise AssertionError("unreachable")

    def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call something that changes the GPU: exactly once."""
        return fn(*args, **kwargs)

    def shutdown(self) -> None:
        try:
            self.lib.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def open_nvml(sim: str | None = None, state_dir: str | None = None) -> Nvml:
    """The simulator if ``sim`` (or ``MIGCTL_SIM``) names one, else the real driver.

    Never falls back to the simulator: without a driver and without ``--sim`` this raises
    :class:`DriverError` saying how to try the simulator.
    """
    spec = sim if sim is not None else os.environ.get("MIGCTL_SIM") or None
    if spec:
        from migctl.device.simulated import open_simulated

        return open_simulated(spec, state_dir)
    lib: NvmlLib = pynvml
    try:
        lib.nvmlInit()
    except pynvml.NVMLError as exc:
        if exc.value in (
            pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
            pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
            pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        ):
            raise DriverError(NO_DRIVER, nvml_code=int(exc.value)) from None
        raise from_nvml(exc, "initialising NVML") from None
    except OSError:
        raise DriverError(NO_DRIVER) from None
    from migctl.device.real import hardware_platform

    return Nvml(lib, hardware_platform())
