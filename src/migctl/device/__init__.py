"""The typed device layer: the only code that talks to NVML (real ``pynvml`` or the simulator)."""

from __future__ import annotations

from migctl.device.gpu import Gpu
from migctl.device.instances import ComputeInstance, GpuInstance
from migctl.device.nvml import Nvml, open_nvml
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
    "MigMode",
    "Node",
    "Nvml",
    "ProcessInfo",
    "open_node",
]


class Node:
    """The GPUs of one machine, through one NVML session."""

    def __init__(self, nvml: Nvml) -> None:
        self.nvml = nvml
        count = int(nvml.read("nvmlDeviceGetCount"))
        self.gpus = [Gpu(nvml, i) for i in range(count)]

    @property
    def is_simulator(self) -> bool:
        return self.nvml.is_simulator

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
