"""The typed device layer: the only code that talks to NVML (real ``pynvml`` or the simulator)."""

from __future__ import annotations

from pathlib import Path

from migctl.device.driverfiles import MigMinors, driver_path, read_mig_minors
from migctl.device.gpu import Gpu
from migctl.device.instances import ComputeInstance, GpuInstance
from migctl.device.nvml import Nvml, NvmlLib, open_nvml
from migctl.device.platform import Platform
from migctl.device.types import (
    CiProfileInfo,
    ComputeInstanceInfo,
    GiProfileInfo,
    GpuInstanceInfo,
    MigDeviceInfo,
    MigMode,
    ProcessInfo,
)
from migctl.errors import UsageError

__all__ = [
    "CiProfileInfo",
    "ComputeInstance",
    "ComputeInstanceInfo",
    "GiProfileInfo",
    "Gpu",
    "GpuInstance",
    "GpuInstanceInfo",
    "MigDeviceInfo",
    "MigMinors",
    "MigMode",
    "Node",
    "Nvml",
    "NvmlLib",
    "Platform",
    "ProcessInfo",
    "open_node",
]


class Node:
    """The GPUs of one machine, through one NVML session."""

    def __init__(self, nvml: Nvml) -> None:
        self.nvml = nvml
        count = int(nvml.read(nvml.lib.nvmlDeviceGetCount))
        self.gpus = [Gpu(nvml, i) for i in range(count)]

    @property
    def platform(self) -> Platform:
        """What lies outside NVML on this node (processes, fabric manager, reset, driver files)."""
        return self.nvml.platform

    @property
    def is_simulator(self) -> bool:
        """For reports only (``status --json``'s ``simulated``); nothing in migctl branches on it."""
        return self.nvml.platform.simulated

    def mig_minors(self) -> MigMinors:
        """The driver's MIG capability minors (``/proc/driver/nvidia-caps/mig-minors``)."""
        return read_mig_minors(self.nvml.platform.driver_root)

    def driver_path(self, path: str) -> Path:
        """Where a driver file such as ``/dev/nvidia0`` is on this node."""
        return driver_path(self.nvml.platform.driver_root, path)

    def select(self, spec: str | None) -> list[Gpu]:
        """GPUs named by ``-i`` (:mod:`migctl.config.gpus`: index, list, range, UUID, PCI bus
        ID), or all when ``None``. A bad selection is a :class:`UsageError` naming the valid ones.
        """
        from migctl.config.errors import ConfigError
        from migctl.config.gpus import select_gpus

        try:
            return select_gpus(self.gpus, spec)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None

    def close(self) -> None:
        self.nvml.shutdown()


def open_node(sim: str | None = None, state_dir: str | None = None) -> Node:
    """The node's GPUs: the simulator when ``sim`` (or ``MIGCTL_SIM``) is set, else the driver."""
    return Node(open_nvml(sim, state_dir))
