"""Plain, immutable records the device layer returns (snapshots of what NVML reported)."""

from __future__ import annotations

from dataclasses import dataclass, field

from migctl.core.geometry import Placement


@dataclass(frozen=True)
class MigMode:
    """``nvidia-smi -i N -q`` "MIG Mode: Current / Pending"."""

    current: bool
    pending: bool

    @property
    def is_pending(self) -> bool:
        return self.current != self.pending


@dataclass(frozen=True)
class GiProfileInfo:
    """A row of ``nvidia-smi mig -lgip`` plus its ``-lgipp`` placements."""

    id: int
    nvml_enum: int
    name: str  # without the "MIG " prefix
    slice_count: int
    instance_count: int
    memory_mib: int
    p2p: bool
    sm: int
    ce: int
    dec: int
    enc: int
    jpeg: int
    ofa: int
    placements: tuple[Placement, ...]


@dataclass(frozen=True)
class CiProfileInfo:
    """A row of ``nvidia-smi mig -lcip`` (free counts: :meth:`GpuInstance.ci_remaining_capacity`)."""

    id: int
    name: str
    slice_count: int
    instance_count: int
    sm: int
    ce: int
    dec: int
    enc: int
    jpeg: int
    ofa: int
    is_default: bool
    placements: tuple[Placement, ...]


@dataclass(frozen=True)
class ProcessInfo:
    """A compute process NVML reports, with what the OS says about it."""

    pid: int
    used_memory_mib: int | None
    gi_id: int | None
    ci_id: int | None
    user: str = "?"
    command: str = "?"
    started: float | None = None

    def describe(self) -> str:
        return f"pid {self.pid} ({self.user}: {self.command})"


@dataclass(frozen=True)
class ComputeInstanceInfo:
    id: int
    profile_id: int
    profile: str  # "1c.3g.48gb", or the GI profile's name for the full-size one
    placement: Placement
    uuid: str


@dataclass(frozen=True)
class GpuInstanceInfo:
    id: int
    profile_id: int
    profile: str
    placement: Placement
    compute_instances: tuple[ComputeInstanceInfo, ...] = field(default=())


@dataclass(frozen=True)
class MigDeviceInfo:
    """A MIG device (one compute instance), as ``nvidia-smi -L`` lists it."""

    gpu_index: int
    index: int
    uuid: str
    gi_id: int
    ci_id: int
    profile: str
    memory_mib: int
