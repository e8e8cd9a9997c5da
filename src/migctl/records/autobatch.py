"""Records of ``migctl batch --auto``: the batch's own records, plus where each job went and why,
and every reshape the runner made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.records.base import Record
from migctl.records.batch import BatchJob, BatchSummary

ReshapeResult = Literal["applied", "refused", "rolled_back", "failed"]
Objective = Literal["jct", "makespan"]


@dataclass(frozen=True)
class AutoJob(Record):
    """Where the scheduler put a job, what it needed, and when it ran (times in seconds since the batch started)."""

    name: str
    memory_mib: int
    """The GPU memory it needs: only profiles with at least that much were considered."""
    work_s: float
    """Its run time where its speed is 1.0 (the jobs file's ``work``, or from ``times``)."""
    model: str | None
    """The speed-table row its speeds (and memory, unless given) came from (``resnet:128``)."""
    gpu: int | None
    """The GPU of its last attempt; ``null`` when it never started."""
    gpu_instance_id: int | None
    profile: str | None
    """The GPU-instance profile chosen for it (last attempt)."""
    speed: float | None
    """Its relative speed there (run time = ``work_s / speed``)."""
    start_s: float | None
    """When its last attempt started."""
    end_s: float | None
    """When its last attempt ended: with every job queued at the start, its completion time (JCT)."""
    predicted_end_s: float | None
    """``start_s`` plus its predicted run time on ``profile``: what the scheduler planned with."""


@dataclass(frozen=True)
class Reshape(Record):
    """One GPU reconfigured for the jobs that waited (an apply of a planner plan on idle instances only)."""

    gpu: int
    at_s: float
    """When it began, in seconds since the batch started."""
    seconds: float
    """How long it took."""
    predicted_s: float
    """What the scheduler's cost model expected it to take."""
    enable_mig: bool
    """It switched MIG on first."""
    reset: bool
    """The mode change needed a GPU reset (Ampere), done while the GPU was idle."""
    destroyed: tuple[str, ...]
    """Idle GPU instances destroyed, as ``profile@start:size``."""
    created: tuple[str, ...]
    """GPU instances created, as ``profile@start:size``."""
    result: ReshapeResult
    """``applied``; ``refused`` (nothing changed: an instance in the way was busy by then, or the
    host lock was held); ``rolled_back`` (the driver failed part-way, the GPU is as before);
    ``failed`` (rollback failed too: the journal is kept for ``migctl recover``)."""
    detail: str


@dataclass(frozen=True)
class AutoSummary(Record):
    """What the scheduler did, and the batch's job completion times."""

    objective: Objective
    gpus: tuple[int, ...]
    """The GPUs it could reshape and run jobs on (``-i``; default every MIG-capable GPU)."""
    decisions: int
    """How many times the policy was asked (at the start, and at each job exit and reshape)."""
    reshapes: int
    """GPUs reconfigured (``applied``)."""
    avg_jct_s: float | None
    """Mean completion time of the succeeded jobs, from the batch's start."""
    makespan_s: float | None
    """When the last succeeded job ended."""
    predicted_avg_jct_s: float | None
    """Mean of the succeeded jobs' ``predicted_end_s``."""


@dataclass(frozen=True)
class AutoBatchReport(Record):
    """``migctl batch --auto``: ``jobs`` and ``summary`` as ``migctl batch`` prints them, plus the scheduler's part."""

    jobs: tuple[BatchJob, ...]
    summary: BatchSummary
    auto: AutoSummary
    schedule: tuple[AutoJob, ...]
    """Per job, in the jobs file's order."""
    reshapes: tuple[Reshape, ...]
    """In the order they were made."""

    @property
    def failed(self) -> tuple[BatchJob, ...]:
        """Jobs that did not succeed."""
        return tuple(j for j in self.jobs if j.status != "succeeded")
