"""GPU instances and compute instances as typed objects over their NVML handles."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import pynvml

from migctl.core.geometry import Placement
from migctl.device.types import CiProfileInfo, ComputeInstanceInfo, GpuInstanceInfo

if TYPE_CHECKING:
    from migctl.device.gpu import Gpu


def _vanishing_ok(cls: Any, owner: Any, handle: Any) -> Any:
    """Build ``cls(owner, handle)``, or ``None`` if the instance was destroyed since it was listed.

    Another process (an apply on the same node) may destroy an instance between the listing
    call and the info call; a read-only view must skip it rather than fail.
    """
    try:
        return cls(owner, handle)
    except pynvml.NVMLError as exc:
        if exc.value in (pynvml.NVML_ERROR_INVALID_ARGUMENT, pynvml.NVML_ERROR_NOT_FOUND):
            return None
        raise


def _name(raw: Any) -> str:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return text.removeprefix("MIG ").strip()


class ComputeInstance:
    """A compute instance; it is also a MIG device with its own ``MIG-<uuid>``.

    nvidia-smi: ``nvidia-smi mig -lci -i GPU -gi GI``.
    """

    def __init__(self, gpu_instance: GpuInstance, handle: Any) -> None:
        self.gpu_instance = gpu_instance
        self.handle = handle
        nvml = gpu_instance.gpu.nvml
        info = nvml.read(nvml.lib.nvmlComputeInstanceGetInfo, handle)
        self.id = int(info.id)
        self.profile_id = int(info.profileId)
        self.placement = Placement(int(info.placement.start), int(info.placement.size))
        #: The MIG device's own handle (memory, BAR1 and processes of this instance).
        self.device = info.device
        self.uuid = str(nvml.read(nvml.lib.nvmlDeviceGetUUID, info.device))
        self.profile = gpu_instance.ci_profile_name(self.profile_id)

    def info(self) -> ComputeInstanceInfo:
        return ComputeInstanceInfo(self.id, self.profile_id, self.profile, self.placement, self.uuid)

    def destroy(self) -> None:
        """``nvidia-smi mig -dci -ci CI -gi GI -i GPU``. IN_USE while a process runs on it."""
        self.gpu_instance.gpu.nvml.write(self.gpu_instance.gpu.nvml.lib.nvmlComputeInstanceDestroy, self.handle)


class GpuInstance:
    """A GPU instance: a placement of memory slices holding compute instances.

    nvidia-smi: ``nvidia-smi mig -lgi -i GPU``.
    """

    def __init__(self, gpu: Gpu, handle: Any) -> None:
        self.gpu = gpu
        self.handle = handle
        info = gpu.nvml.read(gpu.nvml.lib.nvmlGpuInstanceGetInfo, handle)
        self.id = int(info.id)
        self.profile_id = int(info.profileId)
        self.placement = Placement(int(info.placement.start), int(info.placement.size))

    @property
    def profile(self) -> str:
        return self.gpu.profile_by_id(self.profile_id).name

    def ci_profiles(self) -> list[CiProfileInfo]:
        """``nvidia-smi mig -lcip -gi GI``: the compute-instance profiles this GPU instance offers.

        They depend only on the GPU-instance profile, so they are read once per GPU and profile.
        """
        cached = self.gpu._ci_profile_cache.get(self.profile_id)
        if cached is not None:
            return cached
        nvml = self.gpu.nvml
        gi_slices = self.gpu.profile_by_id(self.profile_id).slice_count
        out = []
        for enum in range(pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT):
            try:
                info = nvml.read(
                    nvml.lib.nvmlGpuInstanceGetComputeInstanceProfileInfo,
                    self.handle,
                    enum,
                    pynvml.NVML_COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED,
                )
            except pynvml.NVMLError as exc:
                if exc.value in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_INVALID_ARGUMENT):
                    continue
                raise
            out.append(
                CiProfileInfo(
                    id=int(info.id),
                    name=_name(info.name),
                    slice_count=int(info.sliceCount),
                    instance_count=int(info.instanceCount),
                    sm=int(info.multiprocessorCount),
                    ce=int(info.sharedCopyEngineCount),
                    dec=int(info.sharedDecoderCount),
                    enc=int(info.sharedEncoderCount),
                    jpeg=int(info.sharedJpegCount),
                    ofa=int(info.sharedOfaCount),
                    is_default=int(info.sliceCount) == gi_slices,
                    placements=self._ci_placements(int(info.id)),
                )
            )
        self.gpu._ci_profile_cache[self.profile_id] = out
        return out

    def ci_remaining_capacity(self, ci_profile_id: int) -> int:
        """How many more compute instances of a profile fit now (``-lcip`` "Free")."""
        return int(
            self.gpu.nvml.read(
                self.gpu.nvml.lib.nvmlGpuInstanceGetComputeInstanceRemainingCapacity, self.handle, ci_profile_id
            )
        )

    def _ci_placements(self, ci_profile_id: int) -> tuple[Placement, ...]:
        nvml = self.gpu.nvml
        count = ctypes.c_uint(0)
        nvml.read(
            nvml.lib.nvmlGpuInstanceGetComputeInstancePossiblePlacements,
            self.handle,
            ci_profile_id,
            None,
            ctypes.byref(count),
        )
        array = (pynvml.c_nvmlComputeInstancePlacement_t * max(count.value, 1))()
        nvml.read(
            nvml.lib.nvmlGpuInstanceGetComputeInstancePossiblePlacements,
            self.handle,
            ci_profile_id,
            array,
            ctypes.byref(count),
        )
        return tuple(Placement(int(array[i].start), int(array[i].size)) for i in range(count.value))

    def ci_profile_name(self, ci_profile_id: int) -> str:
        for p in self.ci_profiles():
            if p.id == ci_profile_id:
                return p.name
        return f"ci-profile-{ci_profile_id}"

    def find_ci_profile(self, key: str | int) -> CiProfileInfo | None:
        """A compute-instance profile by ID or by name (``1c.3g.48gb``; ``MIG `` prefix tolerated)."""
        text = str(key).strip()
        for p in self.ci_profiles():
            if (text.isdigit() and p.id == int(text)) or p.name.lower() == text.removeprefix("MIG ").lower():
                return p
        return None

    def default_ci_profile(self) -> CiProfileInfo | None:
        return next((p for p in self.ci_profiles() if p.is_default), None)

    def compute_instances(self) -> list[ComputeInstance]:
        nvml = self.gpu.nvml
        out: list[ComputeInstance] = []
        for prof in self.ci_profiles():
            array = (pynvml.c_nvmlComputeInstance_t * max(prof.instance_count, 1))()
            count = ctypes.c_uint(0)
            nvml.read(nvml.lib.nvmlGpuInstanceGetComputeInstances, self.handle, prof.id, array, ctypes.byref(count))
            for i in range(count.value):
                ci = _vanishing_ok(ComputeInstance, self, array[i])
                if ci is not None:
                    out.append(ci)
        return sorted(out, key=lambda c: c.id)

    def create_compute_instance(self, ci_profile_id: int, placement: Placement | None = None) -> ComputeInstance:
        """``nvidia-smi mig -cci ID -gi GI``: the driver places it unless ``placement`` is given."""
        nvml = self.gpu.nvml
        if placement is None:
            handle = nvml.write(nvml.lib.nvmlGpuInstanceCreateComputeInstance, self.handle, ci_profile_id)
        else:
            where = pynvml.c_nvmlComputeInstancePlacement_t()
            where.start, where.size = placement.start, placement.size
            handle = nvml.write(
                nvml.lib.nvmlGpuInstanceCreateComputeInstanceWithPlacement,
                self.handle,
                ci_profile_id,
                ctypes.byref(where),
            )
        return ComputeInstance(self, handle)

    def destroy(self) -> None:
        """``nvidia-smi mig -dgi -gi GI -i GPU``. IN_USE while it has compute instances."""
        self.gpu.nvml.write(self.gpu.nvml.lib.nvmlGpuInstanceDestroy, self.handle)

    def info(self) -> GpuInstanceInfo:
        return GpuInstanceInfo(
            id=self.id,
            profile_id=self.profile_id,
            profile=self.profile,
            placement=self.placement,
            compute_instances=tuple(ci.info() for ci in self.compute_instances()),
        )
