"""The typed device layer: the only code that talks to NVML (real ``pynvml`` or the simulator)."""

from __future__ import annotations

import re

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
        """GPUs named by ``-i``: ``0``, ``0,2``, ``0-3``, a ``GPU-`` UUID, or all when ``None``.

        A bad selection is a :class:`UsageError` naming the valid indices.
        """
        if spec is None or spec.strip() in ("", "all"):
            return list(self.gpus)
        chosen: list[Gpu] = []
        valid = f"valid GPU indices are 0-{len(self.gpus) - 1}" if self.gpus else "this node has no GPU"
        for part in spec.split(","):
            part = part.strip()
            if part.upper().startswith("GPU-"):
                match = [g for g in self.gpus if g.uuid.lower() == part.lower()]
                if not match:
                    raise UsageError(f"-i {spec}: no GPU has UUID {part}", hint="list them with: migctl devices")
                chosen.extend(match)
                continue
            m = re.fullmatch(r"([0-9]{1,6})(?:-([0-9]{1,6}))?", part, re.ASCII)
            if m is None:
                raise UsageError(
                    f"-i {spec}: {part!r} is not a GPU index, range or UUID",
                    hint="use e.g. -i 0, -i 0,2, -i 0-3 or -i GPU-<uuid>",
                )
            lo, hi = int(m[1]), int(m[2] or m[1])
            if lo > hi:
                raise UsageError(f"-i {spec}: {part!r} is a reversed range", hint=f"write it low-high: {hi}-{lo}")
            if hi >= len(self.gpus):
                raise UsageError(f"-i {spec}: GPU {hi} does not exist", hint=valid)
            chosen.extend(self.gpus[i] for i in range(lo, hi + 1))
        unique: dict[int, Gpu] = {}
        for g in chosen:
            unique.setdefault(g.index, g)
        return list(unique.values())

    def close(self) -> None:
        self.nvml.shutdown()


def open_node(sim: str | None = None, state_dir: str | None = None) -> Node:
    """The node's GPUs: the simulator when ``sim`` (or ``MIGCTL_SIM``) is set, else the driver."""
    return Node(open_nvml(sim, state_dir))
