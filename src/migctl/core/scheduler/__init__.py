"""MIG-aware job scheduling policy (pure: no I/O, no clock, no processes).

:func:`decide` is the one entry point a runner calls at each event (a job arrives or ends, a
reconfiguration finishes); docs/scheduler.md explains the policy. Workload tables (measured
speeds per profile and memory needs) are parsed by :mod:`.workloads`.
"""

from migctl.core.scheduler.model import (
    OBJECTIVES,
    Decision,
    GpuAction,
    GpuState,
    Job,
    Objective,
    ReconfigCost,
    Slot,
    Start,
    Tuning,
    Unplaceable,
    Waiting,
)
from migctl.core.scheduler.policy import decide, priority_order
from migctl.core.scheduler.workloads import Workload, WorkloadTableError, find_workload, parse_workloads

__all__ = [
    "OBJECTIVES",
    "Decision",
    "GpuAction",
    "GpuState",
    "Job",
    "Objective",
    "ReconfigCost",
    "Slot",
    "Start",
    "Tuning",
    "Unplaceable",
    "Waiting",
    "Workload",
    "WorkloadTableError",
    "decide",
    "find_workload",
    "parse_workloads",
    "priority_order",
]
