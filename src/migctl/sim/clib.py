"""The simulator as a C library: what pynvml finds when it looks up a symbol of libnvidia-ml.

pynvml's functions call the C library through ``_nvmlGetFunctionPointer(name)``, which is
``getattr(pynvml.nvmlLib, name)``; monitoring tools (nvitop, gpustat) also look symbols up
themselves to pick ``_v2``/``_v3`` variants, and then call them with ctypes arguments. A
:class:`SimLibrary` stands in for ``nvmlLib``: each symbol it knows is a function taking the C
arguments (handles, ``byref`` out-parameters, string buffers, caller-allocated arrays) and
returning an ``nvmlReturn_t``, answered by the simulator's facade (:class:`SimNvml`). A symbol it
does not know is an ``AttributeError``, which pynvml turns into ``NVMLError_FunctionNotFound``,
exactly as for a driver that lacks it. The real library is never loaded.

Each entry of :data:`SYMBOLS` is ``symbol: (facade function, C arguments)``, one letter per
C argument: ``h`` an input passed on as it is (a handle, a reference the facade reads), ``i``
an integer input, ``o`` an output scalar (``byref``), ``s`` an output struct, ``H`` an output
handle, ``b`` an output string buffer followed by its length, ``p`` a count and a process array.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pynvml

from migctl.sim import handles as h

if TYPE_CHECKING:
    from migctl.sim.nvml import SimNvml

CFunction = Callable[..., Any]

SYMBOLS: dict[str, tuple[str, str]] = {
    # system
    "nvmlSystemGetDriverVersion": ("nvmlSystemGetDriverVersion", "b"),
    "nvmlSystemGetNVMLVersion": ("nvmlSystemGetNVMLVersion", "b"),
    "nvmlSystemGetCudaDriverVersion": ("nvmlSystemGetCudaDriverVersion", "o"),
    "nvmlSystemGetCudaDriverVersion_v2": ("nvmlSystemGetCudaDriverVersion_v2", "o"),
    # devices
    "nvmlDeviceGetCount": ("nvmlDeviceGetCount", "o"),
    "nvmlDeviceGetCount_v2": ("nvmlDeviceGetCount", "o"),
    "nvmlDeviceGetHandleByIndex": ("nvmlDeviceGetHandleByIndex", "iH"),
    "nvmlDeviceGetHandleByIndex_v2": ("nvmlDeviceGetHandleByIndex", "iH"),
    "nvmlDeviceGetHandleByUUID": ("nvmlDeviceGetHandleByUUID", "iH"),
    "nvmlDeviceGetHandleByPciBusId": ("nvmlDeviceGetHandleByPciBusId", "iH"),
    "nvmlDeviceGetHandleByPciBusId_v2": ("nvmlDeviceGetHandleByPciBusId", "iH"),
    "nvmlDeviceGetName": ("nvmlDeviceGetName", "hb"),
    "nvmlDeviceGetUUID": ("nvmlDeviceGetUUID", "hb"),
    "nvmlDeviceGetIndex": ("nvmlDeviceGetIndex", "ho"),
    "nvmlDeviceGetMinorNumber": ("nvmlDeviceGetMinorNumber", "ho"),
    "nvmlDeviceGetPciInfo": ("nvmlDeviceGetPciInfo", "hs"),
    "nvmlDeviceGetPciInfo_v2": ("nvmlDeviceGetPciInfo", "hs"),
    "nvmlDeviceGetPciInfo_v3": ("nvmlDeviceGetPciInfo", "hs"),
    "nvmlDeviceGetCudaComputeCapability": ("nvmlDeviceGetCudaComputeCapability", "hoo"),
    "nvmlDeviceGetMemoryInfo": ("nvmlDeviceGetMemoryInfo", "hs"),
    "nvmlDeviceGetMemoryInfo_v2": ("nvmlDeviceGetMemoryInfo", "hs"),
    "nvmlDeviceGetBAR1MemoryInfo": ("nvmlDeviceGetBAR1MemoryInfo", "hs"),
    "nvmlDeviceGetComputeRunningProcesses": ("nvmlDeviceGetComputeRunningProcesses", "hp"),
    "nvmlDeviceGetComputeRunningProcesses_v2": ("nvmlDeviceGetComputeRunningProcesses", "hp"),
    "nvmlDeviceGetComputeRunningProcesses_v3": ("nvmlDeviceGetComputeRunningProcesses", "hp"),
    "nvmlDeviceGetGraphicsRunningProcesses": ("nvmlDeviceGetGraphicsRunningProcesses", "hp"),
    "nvmlDeviceGetGraphicsRunningProcesses_v2": ("nvmlDeviceGetGraphicsRunningProcesses", "hp"),
    "nvmlDeviceGetGraphicsRunningProcesses_v3": ("nvmlDeviceGetGraphicsRunningProcesses", "hp"),
    "nvmlDeviceGetMPSComputeRunningProcesses": ("nvmlDeviceGetMPSComputeRunningProcesses", "hp"),
    "nvmlDeviceGetMPSComputeRunningProcesses_v2": ("nvmlDeviceGetMPSComputeRunningProcesses", "hp"),
    "nvmlDeviceGetMPSComputeRunningProcesses_v3": ("nvmlDeviceGetMPSComputeRunningProcesses", "hp"),
    "nvmlDeviceGetNvLinkState": ("nvmlDeviceGetNvLinkState", "hio"),
    "nvmlDeviceGetNvLinkRemoteDeviceType": ("nvmlDeviceGetNvLinkRemoteDeviceType", "hio"),
    # telemetry
    "nvmlDeviceGetTemperature": ("nvmlDeviceGetTemperature", "hio"),
    "nvmlDeviceGetTemperatureThreshold": ("nvmlDeviceGetTemperatureThreshold", "hio"),
    "nvmlDeviceGetFanSpeed": ("nvmlDeviceGetFanSpeed", "ho"),
    "nvmlDeviceGetNumFans": ("nvmlDeviceGetNumFans", "ho"),
    "nvmlDeviceGetPowerUsage": ("nvmlDeviceGetPowerUsage", "ho"),
    "nvmlDeviceGetTotalEnergyConsumption": ("nvmlDeviceGetTotalEnergyConsumption", "ho"),
    "nvmlDeviceGetPowerManagementLimit": ("nvmlDeviceGetPowerManagementLimit", "ho"),
    "nvmlDeviceGetPowerManagementDefaultLimit": ("nvmlDeviceGetPowerManagementDefaultLimit", "ho"),
    "nvmlDeviceGetEnforcedPowerLimit": ("nvmlDeviceGetEnforcedPowerLimit", "ho"),
    "nvmlDeviceGetPowerManagementLimitConstraints": ("nvmlDeviceGetPowerManagementLimitConstraints", "hoo"),
    "nvmlDeviceGetPowerState": ("nvmlDeviceGetPowerState", "ho"),
    "nvmlDeviceGetPerformanceState": ("nvmlDeviceGetPerformanceState", "ho"),
    "nvmlDeviceGetClockInfo": ("nvmlDeviceGetClockInfo", "hio"),
    "nvmlDeviceGetMaxClockInfo": ("nvmlDeviceGetMaxClockInfo", "hio"),
    "nvmlDeviceGetUtilizationRates": ("nvmlDeviceGetUtilizationRates", "hs"),
    "nvmlDeviceGetDriverModel": ("nvmlDeviceGetDriverModel", "hoo"),
    "nvmlDeviceGetDriverModel_v2": ("nvmlDeviceGetDriverModel", "hoo"),
    "nvmlDeviceGetEncoderUtilization": ("nvmlDeviceGetEncoderUtilization", "hoo"),
    "nvmlDeviceGetDecoderUtilization": ("nvmlDeviceGetDecoderUtilization", "hoo"),
    "nvmlDeviceGetEccMode": ("nvmlDeviceGetEccMode", "hoo"),
    "nvmlDeviceGetTotalEccErrors": ("nvmlDeviceGetTotalEccErrors", "hiio"),
    "nvmlDeviceGetPersistenceMode": ("nvmlDeviceGetPersistenceMode", "ho"),
    "nvmlDeviceGetComputeMode": ("nvmlDeviceGetComputeMode", "ho"),
    "nvmlDeviceGetDisplayMode": ("nvmlDeviceGetDisplayMode", "ho"),
    "nvmlDeviceGetDisplayActive": ("nvmlDeviceGetDisplayActive", "ho"),
    # MIG
    "nvmlDeviceGetMigMode": ("nvmlDeviceGetMigMode", "hoo"),
    "nvmlDeviceSetMigMode": ("nvmlDeviceSetMigMode", "hio"),
    "nvmlDeviceGetGpuInstanceRemainingCapacity": ("nvmlDeviceGetGpuInstanceRemainingCapacity", "hio"),
    "nvmlDeviceGetGpuInstancePossiblePlacements": ("nvmlDeviceGetGpuInstancePossiblePlacements", "hihh"),
    "nvmlDeviceGetGpuInstancePossiblePlacements_v2": ("nvmlDeviceGetGpuInstancePossiblePlacements", "hihh"),
    "nvmlDeviceGetGpuInstanceProfileInfoByIdV": ("nvmlDeviceGetGpuInstanceProfileInfoById", "his"),
    "nvmlDeviceCreateGpuInstance": ("nvmlDeviceCreateGpuInstance", "hiH"),
    "nvmlDeviceCreateGpuInstanceWithPlacement": ("nvmlDeviceCreateGpuInstanceWithPlacement", "hihH"),
    "nvmlGpuInstanceDestroy": ("nvmlGpuInstanceDestroy", "h"),
    "nvmlDeviceGetGpuInstances": ("nvmlDeviceGetGpuInstances", "hihh"),
    "nvmlDeviceGetGpuInstanceById": ("nvmlDeviceGetGpuInstanceById", "hiH"),
    "nvmlGpuInstanceGetInfo": ("nvmlGpuInstanceGetInfo", "hs"),
    "nvmlGpuInstanceGetComputeInstanceRemainingCapacity": (
        "nvmlGpuInstanceGetComputeInstanceRemainingCapacity",
        "hio",
    ),
    "nvmlGpuInstanceGetComputeInstancePossiblePlacements": (
        "nvmlGpuInstanceGetComputeInstancePossiblePlacements",
        "hihh",
    ),
    "nvmlGpuInstanceCreateComputeInstance": ("nvmlGpuInstanceCreateComputeInstance", "hiH"),
    "nvmlGpuInstanceCreateComputeInstanceWithPlacement": (
        "nvmlGpuInstanceCreateComputeInstanceWithPlacement",
        "hihH",
    ),
    "nvmlComputeInstanceDestroy": ("nvmlComputeInstanceDestroy", "h"),
    "nvmlGpuInstanceGetComputeInstances": ("nvmlGpuInstanceGetComputeInstances", "hihh"),
    "nvmlGpuInstanceGetComputeInstanceById": ("nvmlGpuInstanceGetComputeInstanceById", "hiH"),
    "nvmlComputeInstanceGetInfo": ("nvmlComputeInstanceGetInfo", "hs"),
    "nvmlComputeInstanceGetInfo_v2": ("nvmlComputeInstanceGetInfo", "hs"),
    "nvmlDeviceIsMigDeviceHandle": ("nvmlDeviceIsMigDeviceHandle", "ho"),
    "nvmlDeviceGetMaxMigDeviceCount": ("nvmlDeviceGetMaxMigDeviceCount", "ho"),
    "nvmlDeviceGetMigDeviceHandleByIndex": ("nvmlDeviceGetMigDeviceHandleByIndex", "hiH"),
    "nvmlDeviceGetGpuInstanceId": ("nvmlDeviceGetGpuInstanceId", "ho"),
    "nvmlDeviceGetComputeInstanceId": ("nvmlDeviceGetComputeInstanceId", "ho"),
    "nvmlDeviceGetDeviceHandleFromMigDeviceHandle": ("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", "hH"),
    "nvmlDeviceGetAttributes": ("nvmlDeviceGetAttributes", "hs"),
    "nvmlDeviceGetAttributes_v2": ("nvmlDeviceGetAttributes", "hs"),
    # GPM
    "nvmlGpmQueryDeviceSupport": ("nvmlGpmQueryDeviceSupport", "hs"),
    "nvmlGpmSampleAlloc": ("nvmlGpmSampleAlloc", "H"),
    "nvmlGpmSampleFree": ("nvmlGpmSampleFree", "h"),
    "nvmlGpmSampleGet": ("nvmlGpmSampleGet", "hh"),
    "nvmlGpmMigSampleGet": ("nvmlGpmMigSampleGet", "hih"),
    "nvmlGpmMetricsGet": ("nvmlGpmMetricsGet", "h"),
}


def _int(arg: Any) -> Any:
    """An input as the facade takes it: ``c_uint(3)`` -> 3, ``c_char_p(b"GPU-..")`` -> bytes."""
    return arg.value if isinstance(arg, ctypes._SimpleCData) else arg


def _copy(dst: Any, src: Any) -> None:
    """Copy a struct (or handle) the facade made into the caller's, field by field if they differ."""
    if ctypes.sizeof(dst) == ctypes.sizeof(src) and type(dst).__name__ == type(src).__name__:
        ctypes.memmove(ctypes.addressof(dst), ctypes.addressof(src), ctypes.sizeof(src))
        return
    for field in getattr(src, "_fields_", ()):
        name = field[0]
        if hasattr(dst, name):
            setattr(dst, name, getattr(src, name))


def _set(out: Any, value: Any) -> None:
    target = h.target(out)
    if isinstance(value, ctypes._SimpleCData):
        value = value.value
    target.value = value


def _fill_processes(procs: list[Any], countRef: Any, array: Any) -> int:
    count = h.target(countRef)
    if count is None:
        return pynvml.NVML_ERROR_INVALID_ARGUMENT
    capacity = int(count.value)
    count.value = len(procs)
    if not procs:
        return pynvml.NVML_SUCCESS
    if array is None or capacity < len(procs):
        return pynvml.NVML_ERROR_INSUFFICIENT_SIZE
    for slot, proc in zip(array, procs, strict=False):
        for name in ("pid", "usedGpuMemory", "gpuInstanceId", "computeInstanceId"):
            if hasattr(slot, name):
                setattr(slot, name, getattr(proc, name))
    return pynvml.NVML_SUCCESS


def c_function(nvml: SimNvml, facade: str, kinds: str) -> CFunction:
    """A C-style function over the facade's ``facade`` function (see the module's letters)."""
    fn = getattr(nvml, facade)

    def call(*args: Any) -> Any:
        ins: list[Any] = []
        outs: list[tuple[str, Any, Any]] = []
        it = iter(args)
        try:
            for kind in kinds:
                arg = next(it)
                if kind == "h":
                    ins.append(arg)
                elif kind == "i":
                    ins.append(_int(arg))
                elif kind == "b":
                    outs.append((kind, arg, _int(next(it))))
                elif kind == "p":
                    outs.append((kind, arg, next(it)))
                else:
                    outs.append((kind, arg, None))
        except StopIteration:
            return pynvml.NVML_ERROR_INVALID_ARGUMENT
        try:
            if kinds == "hs" and facade == "nvmlDeviceGetMemoryInfo" and h.target(args[1]) is not None:
                version = getattr(h.target(args[1]), "version", 0)
                result = fn(*ins, version) if version else fn(*ins)
            else:
                result = fn(*ins)
        except pynvml.NVMLError as exc:
            return int(exc.value)
        if not outs:
            return pynvml.NVML_SUCCESS
        values = list(result) if len(outs) > 1 else [result]
        for (kind, out, size), value in zip(outs, values, strict=True):
            if kind == "p":
                return _fill_processes(value, out, size)
            if kind == "b":
                data = value.encode() if isinstance(value, str) else bytes(value)
                if size is not None and len(data) + 1 > int(size):
                    return pynvml.NVML_ERROR_INSUFFICIENT_SIZE
                ctypes.memmove(out, data + b"\0", len(data) + 1)
            elif kind in ("s", "H"):
                _copy(h.target(out), value)
            else:
                _set(out, value)
        return pynvml.NVML_SUCCESS

    call.__name__ = facade
    return call


class SimLibrary:
    """Stands in for ``pynvml.nvmlLib`` (a ``CDLL``): a symbol is a C-style function, or missing."""

    def __init__(self, nvml: SimNvml) -> None:
        self._nvml = nvml

    def __getattr__(self, name: str) -> CFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        fn = self._special(name)
        if fn is None:
            entry = SYMBOLS.get(name)
            if entry is None:
                raise AttributeError(f"the MIG simulator has no symbol {name}")
            fn = c_function(self._nvml, *entry)
        setattr(self, name, fn)  # what CDLL does too: the next lookup is a plain attribute
        return fn

    def _special(self, name: str) -> CFunction | None:
        nvml = self._nvml
        if name in ("nvmlInit", "nvmlInit_v2", "nvmlInitWithFlags", "nvmlShutdown"):

            def lifecycle(*args: Any) -> int:
                return pynvml.NVML_SUCCESS

            return lifecycle
        if name == "nvmlErrorString":

            def error_string(result: Any) -> bytes:
                return nvml.nvmlErrorString(int(_int(result))).encode()

            return error_string
        if name == "nvmlDeviceGetTemperatureV":

            def temperature_v(handle: Any, ref: Any) -> int:
                request = h.target(ref)
                try:
                    request.temperature = nvml.nvmlDeviceGetTemperature(handle, int(_int(request.sensorType)))
                except pynvml.NVMLError as exc:
                    return int(exc.value)
                return pynvml.NVML_SUCCESS

            return temperature_v
        if name == "nvmlDeviceGetProcessUtilization":

            def process_utilization(handle: Any, samples: Any, countRef: Any, timeStamp: Any) -> int:
                try:
                    found = nvml.nvmlDeviceGetProcessUtilization(handle, int(_int(timeStamp)))
                except pynvml.NVMLError as exc:
                    return int(exc.value)
                count = h.target(countRef)
                capacity, count.value = int(count.value), len(found)
                if samples is None or capacity < len(found):
                    return pynvml.NVML_ERROR_INSUFFICIENT_SIZE
                for slot, sample in zip(samples, found, strict=False):
                    _copy(slot, sample)
                return pynvml.NVML_SUCCESS

            return process_utilization
        if name in ("nvmlDeviceGetGpuInstanceProfileInfo", "nvmlDeviceGetGpuInstanceProfileInfoV"):
            return _versioned(nvml.nvmlDeviceGetGpuInstanceProfileInfo, 1 if name.endswith("Info") else 2, 1)
        if name in (
            "nvmlGpuInstanceGetComputeInstanceProfileInfo",
            "nvmlGpuInstanceGetComputeInstanceProfileInfoV",
        ):
            return _versioned(nvml.nvmlGpuInstanceGetComputeInstanceProfileInfo, 1 if name.endswith("Info") else 2, 2)
        return None


def _versioned(fn: Callable[..., Any], version: int, ints: int) -> CFunction:
    """``(handle, int..., byref(info))`` for the v1 or v2 profile-info call."""

    def call(handle: Any, *args: Any) -> int:
        *numbers, out = args
        if len(numbers) != ints:
            return pynvml.NVML_ERROR_INVALID_ARGUMENT
        try:
            info = fn(handle, *(int(_int(n)) for n in numbers), version=version)
        except pynvml.NVMLError as exc:
            return int(exc.value)
        _copy(h.target(out), info)
        return pynvml.NVML_SUCCESS

    return call
