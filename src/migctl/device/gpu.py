"""A physical GPU as a typed object over its NVML handle.

>>> from migctl.device import open_node
>>> node = open_node(sim="h20x8")                      # doctest: +SKIP
>>> gpu = node.gpus[0]                                 # doctest: +SKIP
>>> gpu.name, gpu.mig_mode()                           # doctest: +SKIP
('NVIDIA H20', MigMode(current=False, pending=False))
"""

from __future__ import annotations

import ctypes
from typing import Any

import psutil
import pynvml

from migctl.core.geometry import Engines, GiProfile, GpuGeometry, Placement
from migctl.device.instances import GpuInstance, _vanishing_ok
from migctl.device.nvml import Nvml
from migctl.device.types import CiProfileInfo, GiProfileInfo, MigDeviceInfo, MigMode, ProcessInfo
from migctl.errors import NotSupportedError

NO_ID = 0xFFFFFFFF


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def describe_process(pid: int, used_bytes: int | None, gi: int | None, ci: int | None) -> ProcessInfo:
    user, command, started = "?", "?", None
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            user = proc.username()
            cmd = proc.cmdline()
            command = " ".join(cmd) if cmd else proc.name()
            started = proc.create_time()
    except (psutil.Error, OSError):
        pass
    mib = None if used_bytes is None else int(used_bytes) // (1024 * 1024)
    return ProcessInfo(pid, mib, gi, ci, user, command, started)


class Gpu:
    """One GPU. Identity is read once; everything that changes is read on each call."""

    def __init__(self, nvml: Nvml, index: int) -> None:
        self.nvml = nvml
        self.index = index
        self.handle = nvml.read(nvml.lib.nvmlDeviceGetHandleByIndex, index)
        self.uuid = _text(nvml.read(nvml.lib.nvmlDeviceGetUUID, self.handle))
        self.name = _text(nvml.read(nvml.lib.nvmlDeviceGetName, self.handle))
        pci = nvml.read(nvml.lib.nvmlDeviceGetPciInfo, self.handle)
        self.pci_device_id = int(pci.pciDeviceId)
        #: ``(subsystem device << 16) | subsystem vendor``, e.g. ``0x16C010DE`` (mig-parted's
        #: ``device-filter`` second half).
        self.pci_subsystem_id = int(pci.pciSubSystemId)
        self.bus_id = _text(pci.busId)
        self._minor: int | None = None
        self._profiles: list[GiProfileInfo] | None = None
        self._ci_profile_cache: dict[int, list[CiProfileInfo]] = {}

    def __repr__(self) -> str:
        return f"Gpu({self.index}, {self.name!r}, {self.uuid})"

    # -- identity and health ---------------------------------------------------------------

    @property
    def minor_number(self) -> int:
        """The ``N`` of ``/dev/nvidiaN`` (and of ``gpuN`` in the driver's MIG capability table)."""
        if self._minor is None:
            self._minor = int(self.nvml.read(self.nvml.lib.nvmlDeviceGetMinorNumber, self.handle))
        return self._minor

    def memory_mib(self) -> tuple[int, int]:
        """(total, used) MiB, as in ``nvidia-smi --query-gpu=memory.total,memory.used``."""
        mem = self.nvml.read(self.nvml.lib.nvmlDeviceGetMemoryInfo, self.handle)
        return int(mem.total) // 2**20, int(mem.used) // 2**20

    def mig_mode(self) -> MigMode | None:
        """``nvidia-smi -i N -q`` "MIG Mode"; ``None`` when the GPU is not MIG-capable."""
        try:
            current, pending = self.nvml.read(self.nvml.lib.nvmlDeviceGetMigMode, self.handle)
        except pynvml.NVMLError as exc:
            if exc.value == pynvml.NVML_ERROR_NOT_SUPPORTED:
                return None
            raise
        return MigMode(bool(current), bool(pending))

    @property
    def mig_capable(self) -> bool:
        return self.mig_mode() is not None

    def processes(self) -> list[ProcessInfo]:
        """Compute processes on this GPU and its MIG devices (``nvidia-smi --query-compute-apps``)."""
        out = []
        for p in self.nvml.read(self.nvml.lib.nvmlDeviceGetComputeRunningProcesses, self.handle):
            gi = getattr(p, "gpuInstanceId", NO_ID)
            ci = getattr(p, "computeInstanceId", NO_ID)
            out.append(
                describe_process(
                    int(p.pid),
                    p.usedGpuMemory,
                    None if gi in (None, NO_ID) else int(gi),
                    None if ci in (None, NO_ID) else int(ci),
                )
            )
        return out

    # -- profiles and placements -------------------------------------------------------------

    def profiles(self) -> list[GiProfileInfo]:
        """``nvidia-smi mig -lgip``/``-lgipp``: read from NVML (never from any catalog).

        Enumerates ``NVML_GPU_INSTANCE_PROFILE_*`` until INVALID_ARGUMENT, skipping the ones
        the GPU lacks (NOT_SUPPORTED), as nvml.h prescribes. Empty when the GPU is not
        MIG-capable or the driver answers profile queries only with MIG enabled.
        """
        if self._profiles is not None:
            return self._profiles
        out: list[GiProfileInfo] = []
        for enum in range(pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT):
            try:
                info = self.nvml.read(self.nvml.lib.nvmlDeviceGetGpuInstanceProfileInfo, self.handle, enum)
            except pynvml.NVMLError as exc:
                if exc.value == pynvml.NVML_ERROR_INVALID_ARGUMENT:
                    break
                if exc.value == pynvml.NVML_ERROR_NOT_SUPPORTED:
                    continue
                raise
            if int(info.instanceCount) == 0:
                continue
            out.append(
                GiProfileInfo(
                    id=int(info.id),
                    nvml_enum=enum,
                    name=_text(info.name).removeprefix("MIG ").strip(),
                    slice_count=int(info.sliceCount),
                    instance_count=int(info.instanceCount),
                    memory_mib=int(info.memorySizeMB),
                    p2p=bool(info.isP2pSupported),
                    sm=int(info.multiprocessorCount),
                    ce=int(info.copyEngineCount),
                    dec=int(info.decoderCount),
                    enc=int(info.encoderCount),
                    jpeg=int(info.jpegCount),
                    ofa=int(info.ofaCount),
                    placements=self._possible_placements(int(info.id)),
                )
            )
        self._profiles = out
        return out

    def _possible_placements(self, profile_id: int) -> tuple[Placement, ...]:
        count = ctypes.c_uint(0)
        self.nvml.read(
            self.nvml.lib.nvmlDeviceGetGpuInstancePossiblePlacements, self.handle, profile_id, None, ctypes.byref(count)
        )
        array = (pynvml.c_nvmlGpuInstancePlacement_t * max(count.value, 1))()
        self.nvml.read(
            self.nvml.lib.nvmlDeviceGetGpuInstancePossiblePlacements,
            self.handle,
            profile_id,
            array,
            ctypes.byref(count),
        )
        return tuple(Placement(int(array[i].start), int(array[i].size)) for i in range(count.value))

    def profile_by_id(self, profile_id: int) -> GiProfileInfo:
        for p in self.profiles():
            if p.id == profile_id:
                return p
        raise NotSupportedError(f"GPU {self.index} ({self.name}) has no GPU-instance profile with ID {profile_id}")

    def geometry(self) -> GpuGeometry:
        """This GPU as the pure domain core sees it, built only from what NVML reported."""
        profiles = self.profiles()
        full = max(profiles, key=lambda p: (p.placements[0].size if p.placements else 0, p.slice_count), default=None)
        return GpuGeometry(
            profiles=tuple(
                GiProfile(
                    id=p.id,
                    name=p.name,
                    slice_count=p.slice_count,
                    instance_count=p.instance_count,
                    memory_mib=p.memory_mib,
                    placements=p.placements,
                    engines=Engines(p.dec, p.enc, p.jpeg, p.ofa),
                    sm=p.sm,
                    ce=p.ce,
                    p2p=p.p2p,
                )
                for p in profiles
            ),
            engine_totals=Engines(full.dec, full.enc, full.jpeg, full.ofa) if full else None,
        )

    def remaining_capacity(self, profile_id: int) -> int | None:
        """Free instances of a profile now (``-lgip`` "Free"); ``None`` while MIG is disabled."""
        try:
            return int(self.nvml.read(self.nvml.lib.nvmlDeviceGetGpuInstanceRemainingCapacity, self.handle, profile_id))
        except pynvml.NVMLError as exc:
            if exc.value == pynvml.NVML_ERROR_NOT_SUPPORTED:
                return None
            raise

    # -- instances -----------------------------------------------------------------------------

    def gpu_instances(self) -> list[GpuInstance]:
        """All GPU instances, by ascending ID (``nvidia-smi mig -lgi``). Empty with MIG disabled."""
        mode = self.mig_mode()
        if mode is None or not mode.current:
            return []
        out: list[GpuInstance] = []
        for prof in self.profiles():
            array = (pynvml.c_nvmlGpuInstance_t * max(prof.instance_count, 1))()
            count = ctypes.c_uint(0)
            self.nvml.read(self.nvml.lib.nvmlDeviceGetGpuInstances, self.handle, prof.id, array, ctypes.byref(count))
            for i in range(count.value):
                gi = _vanishing_ok(GpuInstance, self, array[i])
                if gi is not None:
                    out.append(gi)
        return sorted(out, key=lambda g: g.id)

    def gpu_instance(self, gi_id: int) -> GpuInstance | None:
        try:
            handle = self.nvml.read(self.nvml.lib.nvmlDeviceGetGpuInstanceById, self.handle, gi_id)
        except pynvml.NVMLError as exc:
            if exc.value in (pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_ERROR_INVALID_ARGUMENT):
                return None
            raise
        return GpuInstance(self, handle)

    def mig_devices(self) -> list[MigDeviceInfo]:
        """MIG devices in NVML index order (``nvidia-smi -L``)."""
        mode = self.mig_mode()
        if mode is None or not mode.current:
            return []
        out = []
        limit = int(self.nvml.read(self.nvml.lib.nvmlDeviceGetMaxMigDeviceCount, self.handle))
        for i in range(limit):
            try:
                mig = self.nvml.read(self.nvml.lib.nvmlDeviceGetMigDeviceHandleByIndex, self.handle, i)
            except pynvml.NVMLError as exc:
                if exc.value == pynvml.NVML_ERROR_NOT_FOUND:
                    continue
                raise
            gi_id = int(self.nvml.read(self.nvml.lib.nvmlDeviceGetGpuInstanceId, mig))
            ci_id = int(self.nvml.read(self.nvml.lib.nvmlDeviceGetComputeInstanceId, mig))
            name = _text(self.nvml.read(self.nvml.lib.nvmlDeviceGetName, mig))
            mem = self.nvml.read(self.nvml.lib.nvmlDeviceGetMemoryInfo, mig)
            out.append(
                MigDeviceInfo(
                    gpu_index=self.index,
                    index=i,
                    uuid=_text(self.nvml.read(self.nvml.lib.nvmlDeviceGetUUID, mig)),
                    gi_id=gi_id,
                    ci_id=ci_id,
                    profile=name.split(" MIG ", 1)[-1] if " MIG " in name else name,
                    memory_mib=int(mem.total) // 2**20,
                )
            )
        return out

    def create_gpu_instance(self, profile_id: int, placement: Placement | None = None) -> GpuInstance:
        """``nvidia-smi mig -cgi ID -i N``; with ``placement``, at exactly those slices."""
        if placement is None:
            handle = self.nvml.write(self.nvml.lib.nvmlDeviceCreateGpuInstance, self.handle, profile_id)
        else:
            where = pynvml.c_nvmlGpuInstancePlacement_t()
            where.start, where.size = placement.start, placement.size
            handle = self.nvml.write(
                self.nvml.lib.nvmlDeviceCreateGpuInstanceWithPlacement, self.handle, profile_id, ctypes.byref(where)
            )
        return GpuInstance(self, handle)

    # -- mode and reset --------------------------------------------------------------------------

    def set_mig_mode(self, enabled: bool) -> int:
        """``nvidia-smi -i N -mig 1|0``. Returns NVML's activation status (IN_USE: pending)."""
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if enabled else pynvml.NVML_DEVICE_MIG_DISABLE
        return int(self.nvml.write(self.nvml.lib.nvmlDeviceSetMigMode, self.handle, mode))

    def reset(self) -> None:
        """``nvidia-smi --gpu-reset -i <bus id>``, through the node's platform.

        Raises IN_USE (as NVMLError) or :class:`DriverError` when the reset is refused.
        """
        self.nvml.platform.resetter.reset(self.index, self.bus_id)
