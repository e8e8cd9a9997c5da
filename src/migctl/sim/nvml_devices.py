"""Simulated NVML: the library, the system, and devices (identity, PCI, memory, processes)."""

from __future__ import annotations

from typing import Any

import pynvml

from migctl.sim import engine
from migctl.sim import handles as h
from migctl.sim.nvml_base import ERROR_STRINGS, MIB, SimBase, nvml

NVML_FAKE_CUDA_DRIVER_VERSION = 12080
RESERVED_MIB = 12  # driver-reserved per device, as the seed's "12MiB / 12032MiB"
BAR1_RESERVED_MIB = 2


class DeviceQueries(SimBase):
    """``nvmlInit``, ``nvmlSystem*`` and the per-device identity and memory queries."""

    # -- the library and the system --------------------------------------------------------

    @nvml
    def nvmlInit(self) -> None:
        return None

    @nvml
    def nvmlInitWithFlags(self, flags: int) -> None:
        return None

    @nvml
    def nvmlShutdown(self) -> None:
        return None

    def nvmlErrorString(self, result: int) -> str:
        return ERROR_STRINGS.get(result) or str(pynvml.NVMLError(result))

    @nvml
    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._sim.node()["driver_version"])

    @nvml
    def nvmlSystemGetNVMLVersion(self) -> str:
        return f"{NVML_FAKE_CUDA_DRIVER_VERSION // 1000}.{self.nvmlSystemGetDriverVersion.__wrapped__(self)}"  # type: ignore[attr-defined]

    @nvml
    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return NVML_FAKE_CUDA_DRIVER_VERSION

    @nvml
    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return NVML_FAKE_CUDA_DRIVER_VERSION

    # -- devices ---------------------------------------------------------------------------

    @nvml
    def nvmlDeviceGetCount(self) -> int:
        return self._sim.count()

    @nvml
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._gpu(int(index))
        return h.device(int(index))

    @nvml
    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> Any:
        text = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
        for index in range(self._sim.count()):
            gpu = self._gpu(index)
            if gpu["uuid"] == text:
                return h.device(index)
            for gi, ci in engine.mig_devices(gpu):
                if ci["uuid"] == text:
                    return h.mig_device(index, gi["id"], ci["id"])
        raise h.fail(pynvml.NVML_ERROR_NOT_FOUND)

    @nvml
    def nvmlDeviceGetHandleByPciBusId(self, pciBusId: str | bytes) -> Any:
        text = (pciBusId.decode() if isinstance(pciBusId, bytes) else str(pciBusId)).upper()
        for index in range(self._sim.count()):
            bus = self._gpu(index)["bus_id"].upper()
            if text in (bus, bus[4:]):
                return h.device(index)
        raise h.fail(pynvml.NVML_ERROR_NOT_FOUND)

    @nvml
    def nvmlDeviceGetName(self, handle: Any) -> str:
        kind, index, _, _ = self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        model = self._model(index)
        if kind == h.KIND_MIG:
            # The MIG device is named after its compute instance's profile: the GPU instance's
            # name for a full-size compute instance ("MIG 3g.48gb"), "1c.3g.48gb" for a smaller
            # one (MIG user guide, "MIG Device Names"; nvidia-smi -L "MIG 1c.3g.20gb Device 0").
            _, _, gi, ci = self._mig_target(handle)
            return f"{model.name} MIG {engine.ci_profile(model, gi, ci['profile']).name}"
        return model.name

    @nvml
    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        kind, index, _, _ = self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        if kind == h.KIND_MIG:
            return str(self._mig_target(handle)[3]["uuid"])
        return str(self._gpu(index)["uuid"])

    @nvml
    def nvmlDeviceGetIndex(self, handle: Any) -> int:
        kind, index, gi_id, ci_id = self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        if kind == h.KIND_GPU:
            return index
        for i, (gi, ci) in enumerate(engine.mig_devices(self._gpu(index))):
            if gi["id"] == gi_id and ci["id"] == ci_id:
                return i
        raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    @nvml
    def nvmlDeviceGetMinorNumber(self, handle: Any) -> int:
        """The ``N`` of ``/dev/nvidiaN``: the GPU's index on a simulated node."""
        return self._whole_gpu(handle)

    @nvml
    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any:
        index = self._whole_gpu(handle)
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
        info.pciSubSystemId = model.nvml_pci_subsystem_id
        return info

    @nvml
    def nvmlDeviceGetPciInfo_v3(self, handle: Any) -> Any:
        return self.nvmlDeviceGetPciInfo.__wrapped__(self, handle)  # type: ignore[attr-defined]

    @nvml
    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:
        _, index, _, _ = self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        return self._model(index).telemetry.compute_capability

    # -- memory ----------------------------------------------------------------------------

    def _memory_mib(self, handle: Any) -> tuple[int, int]:
        """(total, used by processes) MiB of a GPU, or of a MIG device's GPU instance."""
        kind, index, _, _ = self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        gpu, model = self._gpu(index), self._model(index)
        if kind == h.KIND_MIG:
            _, _, gi, _ = self._mig_target(handle)
            total = engine.gi_profile(model, gi["profile"]).memory_mib
            used = sum(p["mem_mib"] for p in engine.procs_on(gpu, gi["id"]))
        else:
            total = model.memory_mib
            used = sum(p["mem_mib"] for p in engine.live_procs(gpu))
        return total, min(total, used)

    @nvml
    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> Any:
        total_mib, used_mib = self._memory_mib(handle)
        reserved = min(total_mib, RESERVED_MIB) * MIB
        mem = pynvml.c_nvmlMemory_v2_t() if version else pynvml.c_nvmlMemory_t()
        if version:
            mem.version = version
            mem.reserved = reserved
        mem.total = total_mib * MIB
        mem.used = min(total_mib * MIB, used_mib * MIB + (0 if version else reserved))
        mem.free = mem.total - mem.used - (reserved if version else 0)
        return mem

    @nvml
    def nvmlDeviceGetBAR1MemoryInfo(self, handle: Any) -> Any:
        """BAR1 on a GPU, or a MIG device's share of it (its memory's fraction of the GPU's)."""
        kind, index, _, _ = self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        model = self._model(index)
        total_mib, used_mib = self._memory_mib(handle)
        bar1 = model.telemetry.bar1_mib
        if kind == h.KIND_MIG:
            bar1 = max(1, bar1 * total_mib // max(model.memory_mib, 1))
        info = pynvml.c_nvmlBAR1Memory_t()
        used = min(bar1, BAR1_RESERVED_MIB + min(used_mib, 256))
        info.bar1Total = bar1 * MIB
        info.bar1Used = used * MIB
        info.bar1Free = (bar1 - used) * MIB
        return info

    # -- processes -------------------------------------------------------------------------

    def _processes(self, handle: Any) -> list[Any]:
        kind, index, gi_id, ci_id = self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        gpu = self._gpu(index)
        if kind == h.KIND_MIG:
            self._mig_target(handle)
        procs = engine.procs_on(gpu, gi_id, ci_id) if kind == h.KIND_MIG else engine.live_procs(gpu)
        return [
            pynvml.nvmlFriendlyObject(
                {
                    "pid": int(p["pid"]),
                    "usedGpuMemory": int(p["mem_mib"]) * MIB,
                    "gpuInstanceId": engine.NO_ID if p.get("gi") is None else int(p["gi"]),
                    "computeInstanceId": engine.NO_ID if p.get("ci") is None else int(p["ci"]),
                }
            )
            for p in procs
        ]

    @nvml
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        return self._processes(handle)

    @nvml
    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: Any) -> list[Any]:
        return self._processes(handle)

    @nvml
    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: Any) -> list[Any]:
        return self._processes(handle)

    @nvml
    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[Any]:
        """No graphics contexts: simulated clients are compute processes."""
        self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        return []

    @nvml
    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, handle: Any) -> list[Any]:
        return self.nvmlDeviceGetGraphicsRunningProcesses.__wrapped__(self, handle)  # type: ignore[attr-defined]

    @nvml
    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, handle: Any) -> list[Any]:
        return self.nvmlDeviceGetGraphicsRunningProcesses.__wrapped__(self, handle)  # type: ignore[attr-defined]

    @nvml
    def nvmlDeviceGetMPSComputeRunningProcesses(self, handle: Any) -> list[Any]:
        self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        return []

    @nvml
    def nvmlDeviceGetMPSComputeRunningProcesses_v3(self, handle: Any) -> list[Any]:
        return self.nvmlDeviceGetMPSComputeRunningProcesses.__wrapped__(self, handle)  # type: ignore[attr-defined]

    # -- NVLink ----------------------------------------------------------------------------

    def _link(self, handle: Any, link: int) -> int:
        index = self._whole_gpu(handle)
        links = self._model(index).telemetry.nvlinks
        if links == 0:
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if not 0 <= int(link) < links:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index

    @nvml
    def nvmlDeviceGetNvLinkState(self, device: Any, link: int) -> int:
        self._link(device, link)
        return pynvml.NVML_FEATURE_ENABLED

    @nvml
    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle: Any, link: int) -> int:
        """NVSwitch on HGX boards (every link goes to a switch), a GPU on bridged boards."""
        index = self._link(handle, link)
        if self._model(index).nvswitch:
            return int(pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH)
        return int(pynvml.NVML_NVLINK_DEVICE_TYPE_GPU)
