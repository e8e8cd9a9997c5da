"""What genuinely differs between a GPU server and a simulated node, behind small interfaces.

NVML itself is the same on both (:class:`migctl.device.nvml.NvmlLib`); the device layer never
asks which one it has. What lies outside NVML has a real and a simulated implementation,
bundled as a :class:`Platform` chosen once, when the node is opened (:func:`open_nvml`):

==================  ======================================  =====================================
interface           on a GPU server (:mod:`.real`)          simulated (:mod:`.simulated`)
==================  ======================================  =====================================
ProcessRegistrar    nothing to do: CUDA registers a          record the process on the MIG device
                    process when it creates its context      (the simulator's control plane)
FabricManagerSvc    ``systemctl is-active`` and              the simulated service
                    ``nv-fabricmanager --version``
GpuResetter         ``nvidia-smi --gpu-reset -i <bus>``       the simulated reset
                    (argv list, exit status only)
CudaProbe           PyTorch matmul, else ``libcuda``         CUDA's start modelled (error 802
                    ``cuInit`` (in the smoke child)          without the fabric manager, ...)
child_env           nothing                                  ``MIGCTL_SIM``, ``MIGCTL_STATE_DIR``
driver_root         ``/``                                    ``<state>/sim/root``
==================  ======================================  =====================================

``simulated`` and ``description`` are for reports only (``status --json``'s ``simulated``,
doctor's "(simulated)"); no decision in the device layer depends on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: What CUDA reports when the fabric manager of an NVSwitch system is down or mismatched.
CUDA_ERROR_SYSTEM_NOT_READY = 802
CUDA_ERROR_NO_DEVICE = 100
CUDA_ERROR_UNKNOWN = 999


@dataclass(frozen=True)
class FabricManager:
    """The fabric manager service: ``active`` is ``None`` when it could not be determined."""

    active: bool | None
    version: str | None
    detail: str = ""


@dataclass(frozen=True)
class CudaCheck:
    """What CUDA said when a process started on one MIG device (doctor's smoke test)."""

    ok: bool
    message: str
    cuda_error: int | None = None


class ProcessRegistrar(Protocol):
    def register(self, uuid: str, pid: int) -> bool:
        """Make ``pid`` a compute process of MIG device ``uuid`` as CUDA would; whether a record was made.

        A process or device that is already gone is not an error (returns ``False``).
        """
        ...


class FabricManagerService(Protocol):
    def start_hint(self, driver_version: str) -> str:
        """How to start it (with what its version must be)."""
        ...

    def state(self) -> FabricManager: ...


class GpuResetter(Protocol):
    def reset(self, index: int, bus_id: str) -> None:
        """``nvidia-smi --gpu-reset``; raises NVMLError IN_USE or DriverError when refused."""
        ...


class CudaProbe(Protocol):
    def check(self, uuid: str) -> CudaCheck:
        """Start CUDA in this process, which should see exactly MIG device ``uuid``."""
        ...


@dataclass(frozen=True)
class Platform:
    """Everything outside NVML that a node needs, for one kind of node."""

    description: str
    simulated: bool
    processes: ProcessRegistrar
    fabric_manager: FabricManagerService
    resetter: GpuResetter
    cuda: CudaProbe
    child_env: Mapping[str, str]
    driver_root: Path
