"""Records of ``migctl sim ...``: the simulated node's own controls (what happens outside NVML)."""

from __future__ import annotations

from dataclasses import dataclass

from migctl.records.base import Record


@dataclass(frozen=True)
class SimModel(Record):
    """A GPU model the simulator knows."""

    key: str
    """What ``--sim`` takes (``h20``, ``a100-40gb``...)."""
    name: str
    """The name NVML reports (``NVIDIA H20``)."""
    pci_device_id: str
    """PCI device and vendor ID as mig-parted's ``device-filter`` writes it (``0x232910DE``)."""
    arch: str
    mig_capable: bool
    max_instances: int
    """The most GPU instances it holds at once (7 on most parts, 4 on A30)."""
    profiles: tuple[str, ...]
    """Its GPU-instance profiles (empty when not MIG-capable)."""
    nvswitch: bool
    """An HGX board whose CUDA needs the fabric manager."""


@dataclass(frozen=True)
class SimModelsReport(Record):
    """``migctl sim models``."""

    models: tuple[SimModel, ...]


@dataclass(frozen=True)
class SimNodeReset(Record):
    """``migctl sim reset``: the node as it starts, MIG disabled, no instances."""

    spec: str
    reset: bool


@dataclass(frozen=True)
class SimGpuReset(Record):
    """``migctl sim reset-gpu INDEX``."""

    index: int
    reset: bool


@dataclass(frozen=True)
class SimDriverReloaded(Record):
    """``migctl sim reload-driver``."""

    reloaded: bool


@dataclass(frozen=True)
class SimFabricManager(Record):
    """``migctl sim fabric-manager``: the simulated service's state after the action."""

    active: bool
    version: str
    """Its version; CUDA on an NVSwitch board needs it equal to the driver's."""


@dataclass(frozen=True)
class SimAttached(Record):
    """``migctl sim attach``: a process recorded as using a GPU or MIG device."""

    pid: int
    attached: bool
    memory_mib: int
    util: int
    """The load it puts on the device's SMs, percent."""


@dataclass(frozen=True)
class SimLoad(Record):
    """``migctl sim load``: an attached process's new load."""

    pid: int
    memory_mib: int
    util: int
