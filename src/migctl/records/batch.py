"""Records of ``migctl batch``: each job's fate, the batch's summary, and the live progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.records.base import Record
from migctl.records.run import DeviceRef

JobStatus = Literal["succeeded", "failed", "interrupted", "not started"]


@dataclass(frozen=True)
class AttemptRecord(Record):
    """One attempt of a job."""

    instance: str
    """The MIG device UUID it ran on."""
    exit_code: int | None
    """Shell-style exit status (``128+N`` for signal N); ``null`` when it never started."""
    reason: str
    """Why it failed (``exit 4``, ``timed out after 600 s (...)``, ``killed by SIGKILL (...)``); empty on success."""
    duration_s: float


@dataclass(frozen=True)
class BatchJob(Record):
    """A job and how it ended."""

    name: str
    status: JobStatus
    exit_code: int | None
    """The last attempt's exit status; ``null`` when the job never ran."""
    reason: str
    """The last attempt's failure reason (``not started`` for a job Ctrl-C kept from starting)."""
    attempts: int
    duration_s: float
    """Seconds over all its attempts."""
    instance: DeviceRef | None
    """The MIG device of its last attempt."""
    log: str | None
    """Its log file (stdout and stderr of every attempt)."""
    command: tuple[str, ...]
    history: tuple[AttemptRecord, ...]


@dataclass(frozen=True)
class BatchSummary(Record):
    jobs: int
    succeeded: int
    failed: int
    interrupted: int
    not_started: int
    wall_s: float
    stopped_by: str | None
    """The signal that stopped the batch (``SIGINT``...), if one did."""
    logs: str
    """The folder of the job logs."""
    exit_code: int
    """What ``migctl batch`` exits with: 0 all succeeded, 1 some failed, 128+N stopped by signal N."""
    launch_ms_mean: float | None
    """Mean cost of starting an attempt (lease, log, spawn, lease record), in ms."""

    @staticmethod
    def exit_status(failed: int, stopped_by: int | None) -> int:
        """The batch's exit status, as documented for ``migctl batch``."""
        if stopped_by is not None:
            return 128 + stopped_by
        return 1 if failed else 0


@dataclass(frozen=True)
class BatchReport(Record):
    """``migctl batch``."""

    jobs: tuple[BatchJob, ...]
    summary: BatchSummary

    @property
    def failed(self) -> tuple[BatchJob, ...]:
        """Jobs that did not succeed."""
        return tuple(j for j in self.jobs if j.status != "succeeded")


# -- while it runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningJob(Record):
    name: str
    device: DeviceRef
    attempt: int
    running_s: float


@dataclass(frozen=True)
class BatchProgress(Record):
    """A snapshot of a running batch (what the live view draws, a few times a second)."""

    total: int
    succeeded: int
    failed: int
    interrupted: int
    waiting: int
    running: tuple[RunningJob, ...]
    elapsed_s: float
    stopping: bool

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.interrupted
