"""A simulated NVML with the shape of the ``pynvml`` module.

:class:`SimNvml` offers the ``nvml*`` functions migctl uses, with pynvml's names and
parameters, pynvml's own ctypes structs and constants, and pynvml's ``NVMLError`` subclasses.
Handles are genuine ``pynvml`` handle types (``c_nvmlDevice_t`` and friends) whose pointer
value encodes what they point at, so they fit in ``c_nvmlGpuInstance_t`` arrays and in the
``device``/``gpuInstance`` fields of info structs exactly as real ones do. Anything that is not
an NVML function (constants, structs, error classes) is looked up on ``pynvml`` itself.

Traps of the real library are kept, because code proven here must work there:
``nvmlDeviceIsMigDeviceHandle`` returns a ``c_uint``; ``...WithPlacement`` calls need the
placement passed with ``ctypes.byref`` (a bare struct is INVALID_ARGUMENT here, garbage on
hardware); possible-placement and instance arrays are caller-allocated.

Beyond NVML, a few ``sim*`` methods model what happens outside it (GPU reset, driver reload,
processes starting on a MIG device, the fabric manager).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psutil
import pynvml

from migctl.core.geometry import Placement
from migctl.sim import engine
from migctl.sim.catalog import ModelSpec
from migctl.sim.catalog import model as catalog_model
from migctl.sim.faults import REALISTIC_S, Faults
from migctl.sim.state import Store

F = TypeVar("F", bound=Callable[..., Any])

# Human text for codes pynvml would fetch from the library with nvmlErrorString (as nvidia-smi prints).
ERROR_STRINGS = {
    pynvml.NVML_ERROR_IN_USE: "In use by another client",
    pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES: "Insufficient Resources",
    pynvml.NVML_ERROR_NO_DATA: "No data",
    pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH: "Argument version mismatch",
    pynvml.NVML_ERROR_NOT_READY: "System is not ready",
    pynvml.NVML_ERROR_INVALID_STATE: "Invalid state",
    pynvml.NVML_ERROR_GPU_NOT_FOUND: "GPU not found",
    pynvml.NVML_ERROR_DEPRECATED: "Deprecated",
}
for _code, _text in ERROR_STRINGS.items():
    # pynvml caches nvmlErrorString results in this table; without a driver it would print
    # "NVML Error with code 23". Seeding it gives the simulator's errors the driver's words.
    pynvml.NVMLError._errcode_to_string.setdefault(_code, _text)

_KIND_GPU, _KIND_GI, _KIND_CI, _KIND_MIG = 1, 2, 3, 4
_BASE = 1 << 60
NVML_FAKE_CUDA_DRIVER_VERSION = 12080


def _encode(kind: int, gpu: int, gi: int = 0, ci: int = 0) -> int:
    return _BASE | (kind << 52) | (gpu << 40) | (gi << 20) | ci


def _decode(handle: Any) -> tuple[int, int, int, int]:
    try:
        value = ctypes.cast(handle, ctypes.c_void_p).value
    except (ctypes.ArgumentError, TypeError):
        raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT) from None
    if not value or value & _BASE == 0:
        raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    return (value >> 52) & 0xFF, (value >> 40) & 0xFFF, (value >> 20) & 0xFFFFF, value & 0xFFFFF


def _handle(ptr_type: Any, kind: int, gpu: int, gi: int = 0, ci: int = 0) -> Any:
    return ctypes.cast(ctypes.c_void_p(_encode(kind, gpu, gi, ci)), ptr_type)


def _target(ref: Any) -> Any:
    """What a ``byref(x)``/``pointer(x)`` argument points to (or ``x`` itself for arrays)."""
    if ref is None:
        return None
    obj = getattr(ref, "_obj", None)  # ctypes.byref() result
    if obj is not None:
        return obj
    if isinstance(ref, ctypes._Pointer):
        return ref.contents
    return ref


def _placement_arg(ref: Any, struct_type: Any) -> Placement:
    obj = getattr(ref, "_obj", None)
    if obj is None and isinstance(ref, ctypes._Pointer):
        obj = ref.contents
    if not isinstance(obj, struct_type):
        # The C API takes a pointer; pynvml forwards the argument unchanged, so a struct
        # passed by value reaches the driver as garbage. Refuse it loudly here.
        raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    return Placement(int(obj.start), int(obj.size))


def _nvml(fn: F) -> F:
    """Marks an NVML function: applies injected faults and realistic latency."""
    name = fn.__name__

    def wrapper(self: SimNvml, *args: Any, **kwargs: Any) -> Any:
        gpu = None
        if args:
            try:
                gpu = _decode(args[0])[1]
            except pynvml.NVMLError:
                gpu = args[0] if isinstance(args[0], int) and name == "nvmlDeviceGetHandleByIndex" else None
        code = self._faults.check(name, gpu)
        if code is not None:
            raise pynvml.NVMLError(code)
        return fn(self, *args, **kwargs)

    wrapper.__name__ = name
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    wrapper._is_nvml = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class SimNvml:
    """The simulated node's NVML. Create it with :func:`migctl.sim.open`."""

    is_simulator = True

    def __init__(self, store: Store, faults: Faults, latency_scale: float) -> None:
        self._store = store
        self._faults = faults
        self._latency = latency_scale
        self._models: dict[int, ModelSpec] = {}
        self._gpu_count: int | None = None
        self._lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        value = getattr(pynvml, name)  # constants, structs, error classes
        if callable(value) and name.startswith("nvml") and not isinstance(value, type):
            raise AttributeError(f"the MIG simulator does not offer {name}")
        return value

    @property
    def state_dir(self) -> str:
        return str(self._store.root)

    def _node(self) -> dict[str, Any]:
        return self._store.read("node")

    def _count(self) -> int:
        # A node's GPUs never change while it exists (a different spec needs sim reset).
        if self._gpu_count is None:
            self._gpu_count = len(self._node()["models"])
        return self._gpu_count

    def _model(self, index: int) -> ModelSpec:
        found = self._models.get(index)
        if found is None:
            found = catalog_model(self._node()["models"][index])
            self._models[index] = found
        return found

    def _gpu(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self._count():
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._store.read(f"gpu-{index}")

    def _sleep(self, what: str) -> None:
        if self._latency:
            time.sleep(REALISTIC_S.get(what, 0.0) * self._latency)

    def _expect(self, handle: Any, *kinds: int) -> tuple[int, int, int, int]:
        decoded = _decode(handle)
        if decoded[0] not in kinds or not 0 <= decoded[1] < self._count():
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return decoded

    def _gi_of(self, gpu: dict[str, Any], gi_id: int) -> dict[str, Any]:
        gi = engine.find_gi(gpu, gi_id)
        if gi is None:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gi

    def _ci_of(self, gi: dict[str, Any], ci_id: int) -> dict[str, Any]:
        ci = next((c for c in gi["cis"] if c["id"] == ci_id), None)
        if ci is None:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return ci

    def _dev(self, index: int) -> Any:
        return _handle(pynvml.c_nvmlDevice_t, _KIND_GPU, index)

    def _gi_handle(self, index: int, gi_id: int) -> Any:
        return _handle(pynvml.c_nvmlGpuInstance_t, _KIND_GI, index, gi_id)

    def _ci_handle(self, index: int, gi_id: int, ci_id: int) -> Any:
        return _handle(pynvml.c_nvmlComputeInstance_t, _KIND_CI, index, gi_id, ci_id)

    def _mig_handle(self, index: int, gi_id: int, ci_id: int) -> Any:
        return _handle(pynvml.c_nvmlDevice_t, _KIND_MIG, index, gi_id, ci_id)

    def _mig_target(self, handle: Any) -> tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]:
        _, index, gi_id, ci_id = self._expect(handle, _KIND_MIG)
        gpu = self._gpu(index)
        gi = self._gi_of(gpu, gi_id)
        return index, gpu, gi, self._ci_of(gi, ci_id)

    # -- init, system ---------------------------------------------------------------------

    @_nvml
    def nvmlInit(self) -> None:
        return None

    @_nvml
    def nvmlInitWithFlags(self, flags: int) -> None:
        return None

    @_nvml
    def nvmlShutdown(self) -> None:
        return None

    def nvmlErrorString(self, result: int) -> str:
        return ERROR_STRINGS.get(result) or str(pynvml.NVMLError(result))

    @_nvml
    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._node()["driver_version"])

    @_nvml
    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return NVML_FAKE_CUDA_DRIVER_VERSION

    # -- devices --------------------------------------------------------------------------

    @_nvml
    def nvmlDeviceGetCount(self) -> int:
        return self._count()

    @_nvml
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._gpu(int(index))
        return self._dev(int(index))

    @_nvml
    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> Any:
        text = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
        for index in range(self._count()):
            gpu = self._gpu(index)
            if gpu["uuid"] == text:
                return self._dev(index)
            for gi, ci in engine.mig_devices(gpu):
                if ci["uuid"] == text:
                    return self._mig_handle(index, gi["id"], ci["id"])
        raise engine.fail(pynvml.NVML_ERROR_NOT_FOUND)

    @_nvml
    def nvmlDeviceGetName(self, handle: Any) -> str:
        kind, index, _, _ = self._expect(handle, _KIND_GPU, _KIND_MIG)
        model = self._model(index)
        if kind == _KIND_MIG:
            _, _, gi, _ = self._mig_target(handle)
            return f"{model.name} MIG {engine.gi_profile(model, gi['profile']).name}"
        return model.name

    @_nvml
    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        kind, index, _, _ = self._expect(handle, _KIND_GPU, _KIND_MIG)
        if kind == _KIND_MIG:
            return str(self._mig_target(handle)[3]["uuid"])
        return str(self._gpu(index)["uuid"])

    @_nvml
    def nvmlDeviceGetIndex(self, handle: Any) -> int:
        kind, index, gi_id, ci_id = self._expect(handle, _KIND_GPU, _KIND_MIG)
        if kind == _KIND_GPU:
            return index
        pairs = engine.mig_devices(self._gpu(index))
        for i, (gi, ci) in enumerate(pairs):
            if gi["id"] == gi_id and ci["id"] == ci_id:
                return i
        raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    @_nvml
    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        _, index, _, _ = self._expect(handle, _KIND_GPU)
        gpu, model = self._gpu(index), self._model(index)
        info = pynvml.nvmlPciInfo_t()
        bus_id = gpu["bus_id"].encode()
        domain, bus, rest = gpu["bus_id"].split(":")
        info.busId = bus_id
        info.busIdLegacy = bus_id[-12:]
        info.domain = int(domain, 16)
        info.bus = int(bus, 16)
        info.device = int(rest.split(".")[0], 16)
        info.pciDeviceId = model.nvml_pci_device_id
        info.pciSubSystemId = 0x16A110DE
        return info

    @_nvml
    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> Any:
        kind, index, _, _ = self._expect(handle, _KIND_GPU, _KIND_MIG)
        gpu, model = self._gpu(index), self._model(index)
        if kind == _KIND_MIG:
            _, _, gi, ci = self._mig_target(handle)
            total_mib = engine.gi_profile(model, gi["profile"]).memory_mib
            used_mib = sum(p["mem_mib"] for p in engine.procs_on(gpu, gi["id"], ci["id"]))
        else:
            total_mib = model.memory_mib
            used_mib = sum(p["mem_mib"] for p in engine.live_procs(gpu))
        mib = 1024 * 1024
        reserved = min(total_mib, 12) * mib  # driver-reserved, as the seed's "12MiB / 12032MiB"
        mem = pynvml.c_nvmlMemory_v2_t() if version else pynvml.c_nvmlMemory_t()
        if version:
            mem.version = version
            mem.reserved = reserved
        mem.total = total_mib * mib
        mem.used = min(total_mib * mib, used_mib * mib + (0 if version else reserved))
        mem.free = mem.total - mem.used - (reserved if version else 0)
        return mem

    @_nvml
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        kind, index, gi_id, ci_id = self._expect(handle, _KIND_GPU, _KIND_MIG)
        gpu = self._gpu(index)
        procs = engine.procs_on(gpu, gi_id, ci_id) if kind == _KIND_MIG else engine.live_procs(gpu)
        return [
            pynvml.nvmlFriendlyObject(
                {
                    "pid": int(p["pid"]),
                    "usedGpuMemory": int(p["mem_mib"]) * 1024 * 1024,
                    "gpuInstanceId": engine.NO_ID if p.get("gi") is None else int(p["gi"]),
                    "computeInstanceId": engine.NO_ID if p.get("ci") is None else int(p["ci"]),
                }
            )
            for p in procs
        ]

    # -- MIG mode -------------------------------------------------------------------------

    @_nvml
    def nvmlDeviceGetMigMode(self, device: Any) -> list[int]:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        if not self._model(index).mig_capable:
            raise engine.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mig = self._gpu(index)["mig"]
        return [int(mig["current"]), int(mig["pending"])]

    @_nvml
    def nvmlDeviceSetMigMode(self, device: Any, mode: int) -> int:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        model = self._model(index)
        with self._store.edit(f"gpu-{index}") as gpu:
            engine.prune_dead(gpu)
            status = engine.set_mig_mode(model, gpu, int(mode))
            if gpu["mig"]["current"] == int(mode) and status == pynvml.NVML_SUCCESS:
                self._sleep("nvmlDeviceSetMigMode")
        return status

    # -- GPU-instance profiles ------------------------------------------------------------

    def _gi_info(self, model: ModelSpec, prof: Any, version: int) -> Any:
        info = pynvml.c_nvmlGpuInstanceProfileInfo_v2_t() if version == 2 else pynvml.c_nvmlGpuInstanceProfileInfo_t()
        info.id = prof.id
        info.isP2pSupported = int(prof.p2p)
        info.sliceCount = prof.slices
        info.instanceCount = prof.instances
        info.multiprocessorCount = prof.sm
        info.copyEngineCount = prof.ce
        info.decoderCount = prof.dec
        info.encoderCount = prof.enc
        info.jpegCount = prof.jpeg
        info.ofaCount = prof.ofa
        info.memorySizeMB = prof.memory_mib
        if version == 2:
            info.name = f"MIG {prof.name}".encode()
        return info

    def _mig_capable(self, index: int) -> ModelSpec:
        model = self._model(index)
        if not model.mig_capable:
            raise engine.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return model

    @_nvml
    def nvmlDeviceGetGpuInstanceProfileInfo(self, device: Any, profile: int, version: int = 2) -> Any:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        if version not in (1, 2):
            raise engine.fail(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        model = self._mig_capable(index)
        if not 0 <= int(profile) < pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        prof = model.gi_by_enum(int(profile))
        if prof is None:
            raise engine.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self._gi_info(model, prof, version)

    @_nvml
    def nvmlDeviceGetGpuInstanceProfileInfoById(self, device: Any, profileId: int) -> Any:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        model = self._mig_capable(index)
        return self._gi_info(model, engine.gi_profile(model, int(profileId)), 2)

    def _mig_enabled_gpu(self, index: int) -> tuple[ModelSpec, dict[str, Any]]:
        model = self._mig_capable(index)
        gpu = self._gpu(index)
        if gpu["mig"]["current"] != pynvml.NVML_DEVICE_MIG_ENABLE:
            raise engine.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return model, gpu

    @_nvml
    def nvmlDeviceGetGpuInstanceRemainingCapacity(self, device: Any, profileId: int) -> int:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        model, gpu = self._mig_enabled_gpu(index)
        return engine.remaining_gi_capacity(model, gpu, engine.gi_profile(model, int(profileId)))

    @_nvml
    def nvmlDeviceGetGpuInstancePossiblePlacements(
        self, device: Any, profileId: int, placementsRef: Any, countRef: Any
    ) -> int:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        model = self._mig_capable(index)
        prof = engine.gi_profile(model, int(profileId))
        return self._fill_placements(prof.placements, placementsRef, countRef)

    @staticmethod
    def _fill_placements(placements: Any, placementsRef: Any, countRef: Any) -> int:
        count = _target(countRef)
        if count is None:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        array = _target(placementsRef)
        if array is None:
            count.value = len(placements)
            return pynvml.NVML_SUCCESS
        if len(array) < len(placements) or count.value < len(placements):
            count.value = len(placements)
            raise engine.fail(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)
        for slot, p in zip(array, placements, strict=False):
            slot.start, slot.size = p.start, p.size
        count.value = len(placements)
        return pynvml.NVML_SUCCESS

    # -- GPU instances --------------------------------------------------------------------

    def _create_gi(self, device: Any, profileId: int, placement: Placement | None, what: str) -> Any:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        model = self._model(index)
        with self._store.edit(f"gpu-{index}") as gpu:
            gi = engine.create_gi(model, gpu, int(profileId), placement)
            self._sleep(what)
        return self._gi_handle(index, gi["id"])

    @_nvml
    def nvmlDeviceCreateGpuInstance(self, device: Any, profileId: int) -> Any:
        return self._create_gi(device, profileId, None, "nvmlDeviceCreateGpuInstance")

    @_nvml
    def nvmlDeviceCreateGpuInstanceWithPlacement(self, device: Any, profileId: int, placement: Any) -> Any:
        where = _placement_arg(placement, pynvml.c_nvmlGpuInstancePlacement_t)
        return self._create_gi(device, profileId, where, "nvmlDeviceCreateGpuInstanceWithPlacement")

    @_nvml
    def nvmlGpuInstanceDestroy(self, gpuInstance: Any) -> int:
        _, index, gi_id, _ = self._expect(gpuInstance, _KIND_GI)
        with self._store.edit(f"gpu-{index}") as gpu:
            engine.destroy_gi(gpu, gi_id)
            self._sleep("nvmlGpuInstanceDestroy")
        return pynvml.NVML_SUCCESS

    @_nvml
    def nvmlDeviceGetGpuInstances(self, device: Any, profileId: int, gpuInstancesRef: Any, countRef: Any) -> int:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        model, gpu = self._mig_enabled_gpu(index)
        engine.gi_profile(model, int(profileId))
        found = [gi for gi in gpu["gis"] if gi["profile"] == int(profileId)]
        count = _target(countRef)
        array = _target(gpuInstancesRef)
        if count is None or array is None:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if len(array) < len(found):
            count.value = len(found)
            raise engine.fail(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)
        for i, gi in enumerate(found):
            array[i] = self._gi_handle(index, gi["id"])
        count.value = len(found)
        return pynvml.NVML_SUCCESS

    @_nvml
    def nvmlDeviceGetGpuInstanceById(self, device: Any, gpuInstanceId: int) -> Any:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        _, gpu = self._mig_enabled_gpu(index)
        if engine.find_gi(gpu, int(gpuInstanceId)) is None:
            raise engine.fail(pynvml.NVML_ERROR_NOT_FOUND)
        return self._gi_handle(index, int(gpuInstanceId))

    @_nvml
    def nvmlGpuInstanceGetInfo(self, gpuInstance: Any) -> Any:
        _, index, gi_id, _ = self._expect(gpuInstance, _KIND_GI)
        gi = self._gi_of(self._gpu(index), gi_id)
        info = pynvml.c_nvmlGpuInstanceInfo_t()
        info.device = self._dev(index)
        info.id = gi["id"]
        info.profileId = gi["profile"]
        info.placement.start = gi["start"]
        info.placement.size = gi["size"]
        return info

    # -- compute instances ----------------------------------------------------------------

    @_nvml
    def nvmlGpuInstanceGetComputeInstanceProfileInfo(
        self, device: Any, profile: int, engProfile: int, version: int = 2
    ) -> Any:
        _, index, gi_id, _ = self._expect(device, _KIND_GI)
        if version not in (1, 2):
            raise engine.fail(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        if int(engProfile) != pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        model = self._model(index)
        gi = self._gi_of(self._gpu(index), gi_id)
        prof = engine.ci_profile(model, gi, int(profile))
        info = (
            pynvml.c_nvmlComputeInstanceProfileInfo_v2_t()
            if version == 2
            else pynvml.c_nvmlComputeInstanceProfileInfo_t()
        )
        info.id = prof.id
        info.sliceCount = prof.slices
        info.instanceCount = prof.instances
        info.multiprocessorCount = prof.sm
        info.sharedCopyEngineCount = prof.ce
        info.sharedDecoderCount = prof.dec
        info.sharedEncoderCount = prof.enc
        info.sharedJpegCount = prof.jpeg
        info.sharedOfaCount = prof.ofa
        if version == 2:
            info.name = f"MIG {prof.name}".encode()
        return info

    @_nvml
    def nvmlGpuInstanceGetComputeInstanceRemainingCapacity(self, gpuInstance: Any, profileId: int) -> int:
        _, index, gi_id, _ = self._expect(gpuInstance, _KIND_GI)
        model = self._model(index)
        gi = self._gi_of(self._gpu(index), gi_id)
        return engine.remaining_ci_capacity(model, gi, engine.ci_profile(model, gi, int(profileId)))

    @_nvml
    def nvmlGpuInstanceGetComputeInstancePossiblePlacements(
        self, gpuInstance: Any, profileId: int, placementsRef: Any, countRef: Any
    ) -> int:
        _, index, gi_id, _ = self._expect(gpuInstance, _KIND_GI)
        model = self._model(index)
        gi = self._gi_of(self._gpu(index), gi_id)
        prof = engine.ci_profile(model, gi, int(profileId))
        return self._fill_placements(prof.placements, placementsRef, countRef)

    def _create_ci(self, gpuInstance: Any, profileId: int, placement: Placement | None, what: str) -> Any:
        _, index, gi_id, _ = self._expect(gpuInstance, _KIND_GI)
        model = self._model(index)
        with self._store.edit(f"gpu-{index}") as gpu:
            gi = self._gi_of(gpu, gi_id)
            ci = engine.create_ci(model, gpu, gi, int(profileId), placement)
            self._sleep(what)
        return self._ci_handle(index, gi_id, ci["id"])

    @_nvml
    def nvmlGpuInstanceCreateComputeInstance(self, gpuInstance: Any, profileId: int) -> Any:
        return self._create_ci(gpuInstance, profileId, None, "nvmlGpuInstanceCreateComputeInstance")

    @_nvml
    def nvmlGpuInstanceCreateComputeInstanceWithPlacement(
        self, gpuInstance: Any, profileId: int, placement: Any
    ) -> Any:
        where = _placement_arg(placement, pynvml.c_nvmlComputeInstancePlacement_t)
        return self._create_ci(gpuInstance, profileId, where, "nvmlGpuInstanceCreateComputeInstanceWithPlacement")

    @_nvml
    def nvmlComputeInstanceDestroy(self, computeInstance: Any) -> int:
        _, index, gi_id, ci_id = self._expect(computeInstance, _KIND_CI)
        with self._store.edit(f"gpu-{index}") as gpu:
            engine.destroy_ci(gpu, self._gi_of(gpu, gi_id), ci_id)
            self._sleep("nvmlComputeInstanceDestroy")
        return pynvml.NVML_SUCCESS

    @_nvml
    def nvmlGpuInstanceGetComputeInstances(
        self, gpuInstance: Any, profileId: int, computeInstancesRef: Any, countRef: Any
    ) -> int:
        _, index, gi_id, _ = self._expect(gpuInstance, _KIND_GI)
        model = self._model(index)
        gi = self._gi_of(self._gpu(index), gi_id)
        engine.ci_profile(model, gi, int(profileId))
        found = [c for c in gi["cis"] if c["profile"] == int(profileId)]
        count = _target(countRef)
        array = _target(computeInstancesRef)
        if count is None or array is None:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if len(array) < len(found):
            count.value = len(found)
            raise engine.fail(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)
        for i, ci in enumerate(found):
            array[i] = self._ci_handle(index, gi_id, ci["id"])
        count.value = len(found)
        return pynvml.NVML_SUCCESS

    @_nvml
    def nvmlGpuInstanceGetComputeInstanceById(self, gpuInstance: Any, computeInstanceId: int) -> Any:
        _, index, gi_id, _ = self._expect(gpuInstance, _KIND_GI)
        gi = self._gi_of(self._gpu(index), gi_id)
        if not any(c["id"] == int(computeInstanceId) for c in gi["cis"]):
            raise engine.fail(pynvml.NVML_ERROR_NOT_FOUND)
        return self._ci_handle(index, gi_id, int(computeInstanceId))

    @_nvml
    def nvmlComputeInstanceGetInfo(self, computeInstance: Any) -> Any:
        _, index, gi_id, ci_id = self._expect(computeInstance, _KIND_CI)
        gi = self._gi_of(self._gpu(index), gi_id)
        ci = self._ci_of(gi, ci_id)
        info = pynvml.c_nvmlComputeInstanceInfo_t()
        info.device = self._mig_handle(index, gi_id, ci_id)
        info.gpuInstance = self._gi_handle(index, gi_id)
        info.id = ci["id"]
        info.profileId = ci["profile"]
        info.placement.start = ci["start"]
        info.placement.size = ci["size"]
        return info

    @_nvml
    def nvmlComputeInstanceGetInfo_v2(self, computeInstance: Any) -> Any:
        return self.nvmlComputeInstanceGetInfo.__wrapped__(self, computeInstance)  # type: ignore[attr-defined]

    # -- MIG devices ----------------------------------------------------------------------

    @_nvml
    def nvmlDeviceIsMigDeviceHandle(self, device: Any) -> Any:
        kind, _, _, _ = self._expect(device, _KIND_GPU, _KIND_MIG)
        return ctypes.c_uint(1 if kind == _KIND_MIG else 0)  # sic: pynvml returns the c_uint

    @_nvml
    def nvmlDeviceGetMaxMigDeviceCount(self, device: Any) -> int:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        model = self._model(index)
        if not model.mig_capable or self._gpu(index)["mig"]["current"] != pynvml.NVML_DEVICE_MIG_ENABLE:
            return 0
        return model.max_instances

    @_nvml
    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: Any, index: int) -> Any:
        _, gpu_index, _, _ = self._expect(device, _KIND_GPU)
        model, gpu = self._mig_enabled_gpu(gpu_index)
        if not 0 <= int(index) < model.max_instances:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        pairs = engine.mig_devices(gpu)
        if int(index) >= len(pairs):
            raise engine.fail(pynvml.NVML_ERROR_NOT_FOUND)
        gi, ci = pairs[int(index)]
        return self._mig_handle(gpu_index, gi["id"], ci["id"])

    @_nvml
    def nvmlDeviceGetGpuInstanceId(self, device: Any) -> int:
        kind, _, gi_id, _ = self._expect(device, _KIND_GPU, _KIND_MIG)
        if kind != _KIND_MIG:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._mig_target(device)
        return gi_id

    @_nvml
    def nvmlDeviceGetComputeInstanceId(self, device: Any) -> int:
        kind, _, _, ci_id = self._expect(device, _KIND_GPU, _KIND_MIG)
        if kind != _KIND_MIG:
            raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._mig_target(device)
        return ci_id

    @_nvml
    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, migDevice: Any) -> Any:
        index = self._mig_target(migDevice)[0]
        return self._dev(index)

    @_nvml
    def nvmlDeviceGetAttributes(self, device: Any) -> Any:
        index, _, gi, ci = self._mig_target(device)
        model = self._model(index)
        gi_prof = engine.gi_profile(model, gi["profile"])
        ci_prof = engine.ci_profile(model, gi, ci["profile"])
        attrs = pynvml.c_nvmlDeviceAttributes()
        attrs.multiprocessorCount = ci_prof.sm
        attrs.sharedCopyEngineCount = ci_prof.ce
        attrs.sharedDecoderCount = ci_prof.dec
        attrs.sharedEncoderCount = ci_prof.enc
        attrs.sharedJpegCount = ci_prof.jpeg
        attrs.sharedOfaCount = ci_prof.ofa
        attrs.gpuInstanceSliceCount = gi_prof.slices
        attrs.computeInstanceSliceCount = ci_prof.slices
        attrs.memorySizeMB = gi_prof.memory_mib
        return attrs

    # -- beyond NVML: what happens around the driver ---------------------------------------

    def simResetGpu(self, device: Any) -> None:
        """``nvidia-smi --gpu-reset``: refused (IN_USE) while processes use the GPU."""
        _, index, _, _ = self._expect(device, _KIND_GPU)
        code = self._faults.check("simResetGpu", index)
        if code is not None:
            raise pynvml.NVMLError(code)
        with self._store.edit(f"gpu-{index}") as gpu:
            engine.reset_gpu(gpu)
            self._sleep("simResetGpu")

    def simReloadDriver(self) -> None:
        """Unload and reload the kernel modules (a reboot, as far as MIG is concerned)."""
        for index in range(self._count()):
            if engine.live_procs(self._gpu(index)):
                raise engine.fail(pynvml.NVML_ERROR_IN_USE)
        for index in range(self._count()):
            with self._store.edit(f"gpu-{index}") as gpu:
                engine.reload_driver(self._model(index), gpu)

    def simAttachProcess(self, device: Any, pid: int, usedMemoryMiB: int = 0) -> None:
        """Record ``pid`` as a compute process on a MIG device (or a GPU with MIG disabled)."""
        kind, index, gi_id, ci_id = self._expect(device, _KIND_GPU, _KIND_MIG)
        try:
            proc = psutil.Process(int(pid))
            ctime, name = proc.create_time(), proc.name()
        except psutil.Error:
            raise engine.fail(pynvml.NVML_ERROR_NOT_FOUND) from None
        with self._store.edit(f"gpu-{index}") as gpu:
            if kind == _KIND_MIG:
                self._ci_of(self._gi_of(gpu, gi_id), ci_id)
                where: tuple[int | None, int | None] = (gi_id, ci_id)
            elif gpu["mig"]["current"] == pynvml.NVML_DEVICE_MIG_ENABLE:
                # CUDA sees no device on a MIG-enabled GPU except through its MIG devices.
                raise engine.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            else:
                where = (None, None)
            engine.prune_dead(gpu)
            gpu["procs"] = [p for p in gpu["procs"] if p["pid"] != int(pid)]
            gpu["procs"].append(
                {
                    "pid": int(pid),
                    "ctime": ctime,
                    "gi": where[0],
                    "ci": where[1],
                    "mem_mib": int(usedMemoryMiB),
                    "name": name,
                }
            )

    def simDetachProcess(self, pid: int) -> None:
        for index in range(self._count()):
            with self._store.edit(f"gpu-{index}") as gpu:
                gpu["procs"] = [p for p in gpu["procs"] if p["pid"] != int(pid)]

    def simFabricManager(self) -> dict[str, Any]:
        """The fabric manager service: ``{"active": bool, "version": str}``."""
        node = self._node()
        return {"active": bool(node["fabric_manager"]["active"]), "version": str(node["fabric_manager"]["version"])}

    def simSetFabricManager(self, active: bool) -> None:
        with self._store.edit("node") as node:
            node["fabric_manager"]["active"] = bool(active)

    def simNeedsFabricManager(self, device: Any) -> bool:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        return self._model(index).nvswitch

    def simModelKey(self, device: Any) -> str:
        _, index, _, _ = self._expect(device, _KIND_GPU)
        return self._model(index).key

    def simPid(self) -> int:
        return os.getpid()


def nvml_functions(obj: object) -> list[str]:
    """The NVML function names a simulator object offers (for the contract test)."""
    return sorted(n for n in dir(type(obj)) if getattr(getattr(type(obj), n), "_is_nvml", False))
