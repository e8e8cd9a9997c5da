"""The node as the generators see it: GPUs and MIG devices, as NVML reports them.

Plain frozen records filled by :mod:`migctl.ops.integrations` (from the device layer) or by
tests. Nothing here reads anything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MigDeviceFacts:
    """One MIG device (a compute instance) with what NVML's ``nvmlDeviceGetAttributes`` says.

    ``profile`` is the MIG device's own profile name, as the driver names the MIG device
    (``nvmlDeviceGetName`` = ``"<GPU name> MIG <profile>"``): the GPU-instance profile's
    name (``3g.48gb``, ``1g.24gb+me``) for a full-size compute instance, else the
    compute-instance profile's (``1c.3g.48gb``). ``memory_mib`` is the GPU instance's memory
    (``memorySizeMB``); the engine counts are the compute instance's shared ones.
    """

    gpu_index: int
    gi_id: int
    ci_id: int
    profile: str
    gi_profile: str
    uuid: str
    memory_mib: int
    multiprocessors: int
    gi_slices: int
    ci_slices: int
    copy_engines: int = 0
    decoders: int = 0
    encoders: int = 0
    jpeg: int = 0
    ofa: int = 0

    @property
    def attributes(self) -> tuple[int, ...]:
        """What ``nvmlDeviceGetAttributes`` compares equal for two MIG devices of one type."""
        return (self.memory_mib, self.multiprocessors, self.gi_slices, self.ci_slices, self.copy_engines,
                self.decoders, self.encoders, self.jpeg, self.ofa)


@dataclass(frozen=True)
class GpuFacts:
    """One GPU: NVML index, device minor number (``/dev/nvidia<minor>``), name, UUID, MIG state,
    and its MIG devices in NVML's order (``nvmlDeviceGetMigDeviceHandleByIndex``)."""

    index: int
    minor: int
    name: str
    uuid: str
    mig_capable: bool
    mig_enabled: bool
    memory_mib: int = 0
    mig_devices: tuple[MigDeviceFacts, ...] = ()
