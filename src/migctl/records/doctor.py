"""Records of ``migctl doctor``: each check with its verdict and fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.records.base import Record

CheckName = Literal[
    "nvml", "driver", "mig", "mig-pending", "mig-instances", "fabric-manager", "smoke", "simulated", "pytorch"
]
Verdict = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Check(Record):
    """One check: ``pass``, ``warn`` or ``fail``, and how to fix what is wrong."""

    check: CheckName
    """What was checked (see docs/run.md for each)."""
    status: Verdict
    message: str
    """What was found, in words."""
    fix: str | None
    """The command or step that fixes it; ``null`` when nothing needs fixing."""
    gpu: int | None = None
    """The GPU it is about, for per-GPU checks and smoke tests."""
    gpu_instance_id: int | None = None
    """For a smoke test: the GPU instance of the MIG device tested."""
    uuid: str | None = None
    """For a smoke test: the MIG device tested."""
    output: tuple[str, ...] = ()
    """For a smoke test: the child's last lines of output (at most 20)."""


@dataclass(frozen=True)
class DoctorReport(Record):
    """``migctl doctor``."""

    simulated: bool
    """The node is the simulator."""
    checks: tuple[Check, ...]
    summary: dict[Verdict, int]
    """How many checks passed, warned and failed: ``{"pass": n, "warn": n, "fail": n}``."""
    ok: bool
    """No check failed (warnings allowed); ``migctl doctor`` exits 1 otherwise."""
