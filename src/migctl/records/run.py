"""Records of ``migctl run`` (and what ``batch`` and ``migctl.use`` share with it): the device a
job ran on, who holds a busy one, and what became of the job."""

from __future__ import annotations

from dataclasses import dataclass

from migctl.records.base import Record
from migctl.records.common import Holder


@dataclass(frozen=True)
class DeviceRef(Record):
    """A MIG device a job ran on (``nvidia-smi -L``'s line for it)."""

    uuid: str
    """The MIG device UUID, as ``CUDA_VISIBLE_DEVICES`` names it."""
    gpu: int
    """NVML index of its GPU."""
    gpu_instance_id: int
    compute_instance_id: int
    profile: str
    """MIG device profile, e.g. ``1g.12gb``."""

    def label(self) -> str:
        """``GPU 0 GI 13 CI 0 (1g.12gb)``."""
        return f"GPU {self.gpu} GI {self.gpu_instance_id} CI {self.compute_instance_id} ({self.profile})"


@dataclass(frozen=True)
class BusyDevice(Record):
    """A MIG device that could not be leased, and who is on it."""

    uuid: str
    holder: Holder


@dataclass(frozen=True)
class RunWaiting(Record):
    """Every matching device is busy and the run waits for one (said once)."""

    wait_s: float | None
    """How long it will wait at most; ``null``: as long as needed."""
    busy: tuple[BusyDevice, ...]


@dataclass(frozen=True)
class RunStarting(Record):
    """A device is leased and the command is about to start on it."""

    device: DeviceRef
    command: tuple[str, ...]


#: What :func:`migctl.ops.run.run` tells its caller while it works.
RunEvent = RunWaiting | RunStarting


@dataclass(frozen=True)
class RunReport(Record):
    """``migctl run``: where the command ran and how it ended.

    Written on stderr with ``--json`` and to ``--record FILE``: stdout is the command's own.
    """

    command: tuple[str, ...]
    """The argv that ran (no shell)."""
    device: DeviceRef
    """The MIG device it ran on (leased for its whole life)."""
    pid: int
    """The command's process ID."""
    exit_code: int
    """Its exit status as a shell reports it (``128+N`` when signal N ended it); migctl exits with it."""
    signal: str | None
    """The signal that ended it (``SIGKILL``...), ``null`` when it exited."""
    forwarded: tuple[str, ...]
    """Signals migctl received and passed on to it, in order."""
    started: float
    """When it started (epoch seconds)."""
    waited_s: float
    """Seconds spent waiting for a free device (0 when one was free at once)."""
    duration_s: float
    """Seconds from its start to its end."""
