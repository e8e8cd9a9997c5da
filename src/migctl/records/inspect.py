"""Records of the read-only commands: ``status``, ``profiles``, ``placements``, ``ci-profiles``, ``devices``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.core.geometry import Placement
from migctl.records.base import Record
from migctl.records.common import Holder, ProcessRecord

# -- status ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory(Record):
    total_mib: int
    used_mib: int


@dataclass(frozen=True)
class MigModeState(Record):
    """``nvidia-smi -q`` "MIG Mode": they differ while a change waits for a GPU reset."""

    current: bool
    pending: bool


@dataclass(frozen=True)
class DeviceMemory(Record):
    """``nvmlDeviceGetMemoryInfo`` on a MIG device: its GPU instance's memory, in MiB."""

    total_mib: int
    used_mib: int
    """Used by processes; the driver's reserve is not counted (as nvitop and dcgm-exporter's ``FB_USED`` count it)."""
    free_mib: int
    reserved_mib: int | None
    """Reserved by the driver; ``null`` on a driver without the v2 call (there it counts as used)."""


@dataclass(frozen=True)
class EngineCounts(Record):
    """Engines a MIG device has (its compute-instance profile's; ``nvidia-smi`` "Shared" columns)."""

    ce: int
    """Copy engines."""
    dec: int
    """Video decoders (NVDEC)."""
    enc: int
    """Video encoders (NVENC)."""
    jpeg: int
    """JPEG decoders (NVJPG)."""
    ofa: int
    """Optical-flow accelerators."""


@dataclass(frozen=True)
class Utilization(Record):
    """How busy a GPU or GPU instance was, where NVML can say (``status --util``, ``top``, the exporter)."""

    source: Literal["gpm", "nvml", "n/a"]
    """Where ``gpu_pct`` comes from. ``gpm``: GPU Performance Monitoring (Hopper and later; per GPU
    instance; two samples ``window_s`` apart); ``nvml``: ``nvmlDeviceGetUtilizationRates`` (a whole GPU
    outside MIG mode); ``n/a``: NVML gives none here, and ``reason`` says why (never reported as 0%)."""
    reason: str | None
    """Why there is no utilization (``source`` ``n/a``), else ``null``."""
    gpu_pct: float | None
    """Percent of the time the GPU or instance was busy: NVML's GPU utilization rate, else GPM GRAPHICS_UTIL."""
    memory_pct: float | None
    """NVML's memory utilization rate (memory controller busy; whole GPUs outside MIG mode)."""
    graphics_pct: float | None
    """GPM GRAPHICS_UTIL: the graphics/compute engine was active (``null`` without GPM)."""
    sm_pct: float | None
    """GPM SM_UTIL: SMs busy."""
    sm_occupancy_pct: float | None
    """GPM SM_OCCUPANCY: resident warps over the maximum."""
    dram_bw_pct: float | None
    """GPM DRAM_BW_UTIL: memory bandwidth in use."""
    tensor_pct: float | None
    """GPM ANY_TENSOR_UTIL: any tensor-core pipe active."""
    window_s: float | None
    """Seconds between the two GPM samples."""


@dataclass(frozen=True)
class ComputeInstanceStatus(Record):
    """A compute instance, which is also a MIG device (``MIG-<uuid>``)."""

    id: int
    """Compute-instance ID within its GPU instance."""
    profile_id: int
    """Compute-instance profile ID."""
    profile: str
    """Compute-instance profile name (``1c.3g.48gb``; the full-size one has the GPU instance's name)."""
    placement: Placement
    """Compute slices it occupies within its GPU instance."""
    uuid: str
    """The MIG device UUID (for ``CUDA_VISIBLE_DEVICES``)."""
    processes: tuple[ProcessRecord, ...]
    """Compute processes NVML lists on it."""
    holder: Holder | None
    """The migctl lease on it, if any."""
    memory: DeviceMemory | None
    """Its memory (``null`` when NVML does not say)."""
    bar1: Memory | None
    """Its BAR1 memory (``nvmlDeviceGetBAR1MemoryInfo``; ``null`` when NVML does not say)."""
    sm: int
    """Streaming multiprocessors (its compute-instance profile's)."""
    engines: EngineCounts


@dataclass(frozen=True)
class GpuInstanceStatus(Record):
    id: int
    """GPU-instance ID."""
    profile_id: int
    """GPU-instance profile ID (as ``nvidia-smi mig -lgip`` prints it)."""
    profile: str
    """Profile name, e.g. ``1g.12gb``."""
    placement: Placement
    """Memory slices it occupies."""
    compute_instances: tuple[ComputeInstanceStatus, ...]
    utilization: Utilization | None
    """Per-instance utilization (GPM); ``null`` unless measured (``status --util``)."""


@dataclass(frozen=True)
class GpuStatus(Record):
    index: int
    """NVML index (``nvidia-smi -i``)."""
    uuid: str
    name: str
    pci_device_id: str
    """PCI device and vendor ID as mig-parted's ``device-filter`` writes it (``0x233010DE``)."""
    bus_id: str
    memory: Memory
    mig_capable: bool
    mig: MigModeState | None
    """``null`` when the GPU is not MIG-capable."""
    slices: int
    """Memory slices (8 on most GPUs, 4 on A30); 0 when not MIG-capable."""
    gpu_instances: tuple[GpuInstanceStatus, ...]
    processes: tuple[ProcessRecord, ...]
    """Every compute process on the GPU and its MIG devices."""
    utilization: Utilization | None
    """The whole GPU's utilization; ``null`` unless measured (``status --util``)."""


@dataclass(frozen=True)
class StatusReport(Record):
    """``migctl status``."""

    simulated: bool
    """Whether this node is the simulator."""
    gpus: tuple[GpuStatus, ...]


# -- profiles and placements -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileRow(Record):
    """A row of ``nvidia-smi mig -lgip``."""

    id: int
    name: str
    instances_free: int
    """How many more fit now (0 while MIG is disabled)."""
    instances_total: int
    memory_mib: int
    p2p: bool
    sm: int
    dec: int
    enc: int
    ce: int
    jpeg: int
    ofa: int
    placements: tuple[Placement, ...]


@dataclass(frozen=True)
class GpuProfiles(Record):
    index: int
    name: str
    mig_capable: bool
    mig_enabled: bool
    profiles: tuple[ProfileRow, ...]


@dataclass(frozen=True)
class ProfilesReport(Record):
    """``migctl profiles``."""

    gpus: tuple[GpuProfiles, ...]


@dataclass(frozen=True)
class PlacementSlot(Record):
    start: int
    size: int
    free: bool
    """Whether an instance of this profile could be created here now."""


@dataclass(frozen=True)
class ProfilePlacements(Record):
    id: int
    name: str
    placements: tuple[PlacementSlot, ...]


@dataclass(frozen=True)
class GpuPlacements(Record):
    index: int
    name: str
    mig_capable: bool
    mig_enabled: bool
    profiles: tuple[ProfilePlacements, ...]


@dataclass(frozen=True)
class PlacementsReport(Record):
    """``migctl placements``."""

    gpus: tuple[GpuPlacements, ...]


@dataclass(frozen=True)
class CiProfileRow(Record):
    """A row of ``nvidia-smi mig -lcip``."""

    id: int
    name: str
    instances_free: int
    instances_total: int
    default: bool
    """The default compute instance (what ``create`` makes without a CI profile)."""
    sm: int
    dec: int
    enc: int
    ce: int
    jpeg: int
    ofa: int
    placements: tuple[Placement, ...]


@dataclass(frozen=True)
class CiProfilesReport(Record):
    """``migctl ci-profiles``."""

    index: int
    gpu_instance_id: int
    gpu_instance_profile: str
    profiles: tuple[CiProfileRow, ...]


# -- devices -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigDeviceRow(Record):
    """A MIG device as ``nvidia-smi -L`` lists it."""

    index: int
    uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    profile: str
    memory_mib: int


@dataclass(frozen=True)
class GpuDevices(Record):
    index: int
    name: str
    uuid: str
    mig_devices: tuple[MigDeviceRow, ...]


@dataclass(frozen=True)
class DevicesReport(Record):
    """``migctl devices``."""

    gpus: tuple[GpuDevices, ...]
