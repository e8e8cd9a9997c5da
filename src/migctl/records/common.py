"""Records shared by several commands: processes on a GPU, who holds a MIG device, differences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.records.base import Record


@dataclass(frozen=True)
class ProcessRecord(Record):
    """A compute process NVML lists, with what the OS says about it."""

    pid: int
    """Process ID (in the host's PID namespace)."""
    user: str
    """Owner, or ``?`` when the OS would not say."""
    command: str
    """Command line, or ``?``."""
    used_memory_mib: int | None
    """GPU memory it uses, when NVML reports it."""
    gpu_instance_id: int | None = None
    """The GPU instance it runs in (``null`` outside MIG)."""
    compute_instance_id: int | None = None
    """The compute instance it runs in (``null`` outside MIG)."""

    def describe(self) -> str:
        """``pid 4242 (alice: python train.py)``."""
        return f"pid {self.pid} ({self.user}: {self.command})"


@dataclass(frozen=True)
class InheritedFrom(Record):
    """The launcher that took a lease and has since exited, leaving its child holding it."""

    pid: int | None
    command: str
    since: float | None


@dataclass(frozen=True)
class Holder(Record):
    """Who holds a MIG device: a migctl lease, or a process NVML lists without one."""

    pid: int | None
    """The holding process (for a lease: the job, once started; else the launcher)."""
    command: str
    """Its command line."""
    since: float | None
    """When it took the device (epoch seconds)."""
    source: Literal["lease", "nvml"] = "lease"
    """``lease``: a migctl lease (run, batch, ``migctl.use``); ``nvml``: a process NVML lists on the device."""
    job: str | None = None
    """The batch job's name, for a lease taken by ``migctl batch``."""
    launcher: int | None = None
    """The pid of the migctl process that started the job."""
    inherited_from: InheritedFrom | None = None
    """Set when the recorded holder has exited and a process it started still holds the lease."""


@dataclass(frozen=True)
class GpuDifferences(Record):
    """How one GPU differs from its target (``assert``, and a ``mismatch`` error)."""

    gpu: int
    differences: tuple[str, ...]
    """One line each; empty when it matches."""


@dataclass(frozen=True)
class InterruptedChange(Record):
    """A GPU change (``apply``, ``create``, ``destroy``) whose journal is still there: a crash or
    ``kill -9`` stopped it part-way, so the GPU may be in neither layout until ``migctl recover``."""

    gpu: int | None
    """The GPU it was changing (``null`` only when the journal folder itself cannot be read)."""
    state: Literal["interrupted", "cancelled", "in_progress", "damaged", "unreadable"]
    """``interrupted``: its process died part-way (``recover`` finishes it or rolls it back);
    ``cancelled``: Ctrl-C/SIGTERM stopped it and its undo did not complete (``recover`` rolls it back);
    ``in_progress``: its process still runs and holds the host lock; ``damaged``: the journal cannot be
    read (``recover`` moves it aside and leaves the GPU alone); ``unreadable``: the journal folder
    cannot be read."""
    command: str | None
    """What was changing it, e.g. ``migctl apply all-1g.12gb``."""
    pid: int | None
    """The process that was changing it."""
    detail: str
    """What happened, in words."""
    fix: str
    """What to do (empty for a change in progress)."""


@dataclass(frozen=True)
class DestroyedInstance(Record):
    """A compute instance (``compute_instance_id`` set) or a GPU instance that was destroyed."""

    gpu: int
    gpu_instance_id: int
    compute_instance_id: int | None
    """``null`` for the GPU instance itself."""
    profile: str
    """Compute-instance profile for a compute instance, GPU-instance profile for a GPU instance."""
    uuid: str | None
    """The MIG device UUID a destroyed compute instance had."""
