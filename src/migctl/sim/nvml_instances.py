"""Simulated NVML: MIG mode, GPU instances, compute instances and MIG devices.

Every rule is :mod:`migctl.sim.engine`'s; this module only speaks pynvml's language (its
structs, handle types, caller-allocated arrays and ``byref`` placements).
"""

from __future__ import annotations

import ctypes
from typing import Any

import pynvml

from migctl.sim import engine
from migctl.sim import handles as h
from migctl.sim.catalog import ModelSpec, Placement
from migctl.sim.nvml_base import SimBase, nvml


class InstanceCalls(SimBase):
    """``nvmlDevice*Mig*``, ``*GpuInstance*`` and ``*ComputeInstance*``."""

    # -- MIG mode -------------------------------------------------------------------------

    @nvml
    def nvmlDeviceGetMigMode(self, device: Any) -> list[int]:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        if not self._model(index).mig_capable:
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mig = self._gpu(index)["mig"]
        return [int(mig["current"]), int(mig["pending"])]

    @nvml
    def nvmlDeviceSetMigMode(self, device: Any, mode: int) -> int:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        model = self._model(index)
        with self._sim.store.edit(f"gpu-{index}") as gpu:
            engine.prune_dead(gpu)
            status = engine.set_mig_mode(model, gpu, int(mode))
            if gpu["mig"]["current"] == int(mode) and status == pynvml.NVML_SUCCESS:
                self._sim.sleep("nvmlDeviceSetMigMode")
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

    @nvml
    def nvmlDeviceGetGpuInstanceProfileInfo(self, device: Any, profile: int, version: int = 2) -> Any:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        if version not in (1, 2):
            raise h.fail(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        model = self._mig_capable(index)
        if not 0 <= int(profile) < pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        prof = model.gi_by_enum(int(profile))
        if prof is None:
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self._gi_info(model, prof, version)

    @nvml
    def nvmlDeviceGetGpuInstanceProfileInfoById(self, device: Any, profileId: int) -> Any:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        model = self._mig_capable(index)
        return self._gi_info(model, engine.gi_profile(model, int(profileId)), 2)

    @nvml
    def nvmlDeviceGetGpuInstanceRemainingCapacity(self, device: Any, profileId: int) -> int:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        model, gpu = self._mig_enabled_gpu(index)
        return engine.remaining_gi_capacity(model, gpu, engine.gi_profile(model, int(profileId)))

    @nvml
    def nvmlDeviceGetGpuInstancePossiblePlacements(
        self, device: Any, profileId: int, placementsRef: Any, countRef: Any
    ) -> int:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        model = self._mig_capable(index)
        prof = engine.gi_profile(model, int(profileId))
        return self._fill_placements(prof.placements, placementsRef, countRef)

    @staticmethod
    def _fill_placements(placements: Any, placementsRef: Any, countRef: Any) -> int:
        count = h.target(countRef)
        if count is None:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        array = h.target(placementsRef)
        if array is None:
            count.value = len(placements)
            return pynvml.NVML_SUCCESS
        if len(array) < len(placements) or count.value < len(placements):
            count.value = len(placements)
            raise h.fail(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)
        for slot, p in zip(array, placements, strict=False):
            slot.start, slot.size = p.start, p.size
        count.value = len(placements)
        return pynvml.NVML_SUCCESS

    # -- GPU instances --------------------------------------------------------------------

    def _create_gi(self, device: Any, profileId: int, placement: Placement | None, what: str) -> Any:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        model = self._model(index)
        with self._sim.store.edit(f"gpu-{index}") as gpu:
            gi = engine.create_gi(model, gpu, int(profileId), placement)
            self._sim.sleep(what)
        self._sim.files.instance_created(index, gi["id"])
        return h.gpu_instance(index, gi["id"])

    @nvml
    def nvmlDeviceCreateGpuInstance(self, device: Any, profileId: int) -> Any:
        return self._create_gi(device, profileId, None, "nvmlDeviceCreateGpuInstance")

    @nvml
    def nvmlDeviceCreateGpuInstanceWithPlacement(self, device: Any, profileId: int, placement: Any) -> Any:
        where = h.placement_arg(placement, pynvml.c_nvmlGpuInstancePlacement_t)
        return self._create_gi(device, profileId, where, "nvmlDeviceCreateGpuInstanceWithPlacement")

    @nvml
    def nvmlGpuInstanceDestroy(self, gpuInstance: Any) -> int:
        _, index, gi_id, _ = self._expect(gpuInstance, h.KIND_GI)
        with self._sim.store.edit(f"gpu-{index}") as gpu:
            engine.destroy_gi(gpu, gi_id)
            self._sim.sleep("nvmlGpuInstanceDestroy")
        return pynvml.NVML_SUCCESS

    @nvml
    def nvmlDeviceGetGpuInstances(self, device: Any, profileId: int, gpuInstancesRef: Any, countRef: Any) -> int:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        model, gpu = self._mig_enabled_gpu(index)
        engine.gi_profile(model, int(profileId))
        found = [gi for gi in gpu["gis"] if gi["profile"] == int(profileId)]
        return h.fill_array([h.gpu_instance(index, gi["id"]) for gi in found], gpuInstancesRef, countRef)

    @nvml
    def nvmlDeviceGetGpuInstanceById(self, device: Any, gpuInstanceId: int) -> Any:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        _, gpu = self._mig_enabled_gpu(index)
        if engine.find_gi(gpu, int(gpuInstanceId)) is None:
            raise h.fail(pynvml.NVML_ERROR_NOT_FOUND)
        return h.gpu_instance(index, int(gpuInstanceId))

    @nvml
    def nvmlGpuInstanceGetInfo(self, gpuInstance: Any) -> Any:
        _, index, gi_id, _ = self._expect(gpuInstance, h.KIND_GI)
        gi = self._gi_of(self._gpu(index), gi_id)
        info = pynvml.c_nvmlGpuInstanceInfo_t()
        info.device = h.device(index)
        info.id = gi["id"]
        info.profileId = gi["profile"]
        info.placement.start = gi["start"]
        info.placement.size = gi["size"]
        return info

    # -- compute instances ----------------------------------------------------------------

    @nvml
    def nvmlGpuInstanceGetComputeInstanceProfileInfo(
        self, device: Any, profile: int, engProfile: int, version: int = 2
    ) -> Any:
        _, index, gi_id, _ = self._expect(device, h.KIND_GI)
        if version not in (1, 2):
            raise h.fail(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        if int(engProfile) != pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
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

    @nvml
    def nvmlGpuInstanceGetComputeInstanceRemainingCapacity(self, gpuInstance: Any, profileId: int) -> int:
        _, index, gi_id, _ = self._expect(gpuInstance, h.KIND_GI)
        model = self._model(index)
        gi = self._gi_of(self._gpu(index), gi_id)
        return engine.remaining_ci_capacity(model, gi, engine.ci_profile(model, gi, int(profileId)))

    @nvml
    def nvmlGpuInstanceGetComputeInstancePossiblePlacements(
        self, gpuInstance: Any, profileId: int, placementsRef: Any, countRef: Any
    ) -> int:
        _, index, gi_id, _ = self._expect(gpuInstance, h.KIND_GI)
        model = self._model(index)
        gi = self._gi_of(self._gpu(index), gi_id)
        prof = engine.ci_profile(model, gi, int(profileId))
        return self._fill_placements(prof.placements, placementsRef, countRef)

    def _create_ci(self, gpuInstance: Any, profileId: int, placement: Placement | None, what: str) -> Any:
        _, index, gi_id, _ = self._expect(gpuInstance, h.KIND_GI)
        model = self._model(index)
        with self._sim.store.edit(f"gpu-{index}") as gpu:
            gi = self._gi_of(gpu, gi_id)
            ci = engine.create_ci(model, gpu, gi, int(profileId), placement)
            self._sim.sleep(what)
        self._sim.files.instance_created(index, gi_id, ci["id"])
        return h.compute_instance(index, gi_id, ci["id"])

    @nvml
    def nvmlGpuInstanceCreateComputeInstance(self, gpuInstance: Any, profileId: int) -> Any:
        return self._create_ci(gpuInstance, profileId, None, "nvmlGpuInstanceCreateComputeInstance")

    @nvml
    def nvmlGpuInstanceCreateComputeInstanceWithPlacement(
        self, gpuInstance: Any, profileId: int, placement: Any
    ) -> Any:
        where = h.placement_arg(placement, pynvml.c_nvmlComputeInstancePlacement_t)
        return self._create_ci(gpuInstance, profileId, where, "nvmlGpuInstanceCreateComputeInstanceWithPlacement")

    @nvml
    def nvmlComputeInstanceDestroy(self, computeInstance: Any) -> int:
        _, index, gi_id, ci_id = self._expect(computeInstance, h.KIND_CI)
        with self._sim.store.edit(f"gpu-{index}") as gpu:
            engine.destroy_ci(gpu, self._gi_of(gpu, gi_id), ci_id)
            self._sim.sleep("nvmlComputeInstanceDestroy")
        return pynvml.NVML_SUCCESS

    @nvml
    def nvmlGpuInstanceGetComputeInstances(
        self, gpuInstance: Any, profileId: int, computeInstancesRef: Any, countRef: Any
    ) -> int:
        _, index, gi_id, _ = self._expect(gpuInstance, h.KIND_GI)
        model = self._model(index)
        gi = self._gi_of(self._gpu(index), gi_id)
        engine.ci_profile(model, gi, int(profileId))
        found = [c for c in gi["cis"] if c["profile"] == int(profileId)]
        return h.fill_array([h.compute_instance(index, gi_id, c["id"]) for c in found], computeInstancesRef, countRef)

    @nvml
    def nvmlGpuInstanceGetComputeInstanceById(self, gpuInstance: Any, computeInstanceId: int) -> Any:
        _, index, gi_id, _ = self._expect(gpuInstance, h.KIND_GI)
        gi = self._gi_of(self._gpu(index), gi_id)
        if not any(c["id"] == int(computeInstanceId) for c in gi["cis"]):
            raise h.fail(pynvml.NVML_ERROR_NOT_FOUND)
        return h.compute_instance(index, gi_id, int(computeInstanceId))

    @nvml
    def nvmlComputeInstanceGetInfo(self, computeInstance: Any) -> Any:
        _, index, gi_id, ci_id = self._expect(computeInstance, h.KIND_CI)
        gi = self._gi_of(self._gpu(index), gi_id)
        ci = self._ci_of(gi, ci_id)
        info = pynvml.c_nvmlComputeInstanceInfo_t()
        info.device = h.mig_device(index, gi_id, ci_id)
        info.gpuInstance = h.gpu_instance(index, gi_id)
        info.id = ci["id"]
        info.profileId = ci["profile"]
        info.placement.start = ci["start"]
        info.placement.size = ci["size"]
        return info

    @nvml
    def nvmlComputeInstanceGetInfo_v2(self, computeInstance: Any) -> Any:
        return self.nvmlComputeInstanceGetInfo.__wrapped__(self, computeInstance)  # type: ignore[attr-defined]

    # -- MIG devices ----------------------------------------------------------------------

    @nvml
    def nvmlDeviceIsMigDeviceHandle(self, device: Any) -> Any:
        kind, _, _, _ = self._expect(device, h.KIND_GPU, h.KIND_MIG)
        return ctypes.c_uint(1 if kind == h.KIND_MIG else 0)  # sic: pynvml returns the c_uint

    @nvml
    def nvmlDeviceGetMaxMigDeviceCount(self, device: Any) -> int:
        _, index, _, _ = self._expect(device, h.KIND_GPU)
        model = self._model(index)
        if not model.mig_capable or self._gpu(index)["mig"]["current"] != pynvml.NVML_DEVICE_MIG_ENABLE:
            return 0
        return model.max_instances

    @nvml
    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: Any, index: int) -> Any:
        _, gpu_index, _, _ = self._expect(device, h.KIND_GPU)
        model, gpu = self._mig_enabled_gpu(gpu_index)
        if not 0 <= int(index) < model.max_instances:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        pairs = engine.mig_devices(gpu)
        if int(index) >= len(pairs):
            raise h.fail(pynvml.NVML_ERROR_NOT_FOUND)
        gi, ci = pairs[int(index)]
        return h.mig_device(gpu_index, gi["id"], ci["id"])

    @nvml
    def nvmlDeviceGetGpuInstanceId(self, device: Any) -> int:
        kind, _, gi_id, _ = self._expect(device, h.KIND_GPU, h.KIND_MIG)
        if kind != h.KIND_MIG:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._mig_target(device)
        return gi_id

    @nvml
    def nvmlDeviceGetComputeInstanceId(self, device: Any) -> int:
        kind, _, _, ci_id = self._expect(device, h.KIND_GPU, h.KIND_MIG)
        if kind != h.KIND_MIG:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._mig_target(device)
        return ci_id

    @nvml
    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, migDevice: Any) -> Any:
        index = self._mig_target(migDevice)[0]
        return h.device(index)

    @nvml
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
