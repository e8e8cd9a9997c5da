"""The error document: what every command prints with ``--json`` when it fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from migctl.records.base import Record
from migctl.records.common import DestroyedInstance, GpuDifferences

ErrorKind = Literal[
    "error",
    "usage",
    "not_supported",
    "insufficient_resources",
    "in_use",
    "permission_denied",
    "reset_required",
    "driver",
    "locked",
    "mismatch",
    "state",
    "interrupted",
    "command_not_found",
    "command_not_executable",
]


@dataclass(frozen=True)
class ErrorReport(Record):
    """A failure (``MigctlError.to_json``). Keys that do not apply to an error are ``null``."""

    error: ErrorKind
    """The kind, one per exit code: ``usage`` (2), ``not_supported`` (3), ``insufficient_resources`` (4),
    ``in_use`` (5), ``permission_denied`` (6), ``reset_required`` (7), ``driver`` (8), ``locked`` (9),
    ``mismatch`` (10), ``state`` (11), ``interrupted`` (130), ``error`` (1); ``migctl run``:
    ``command_not_found`` (127), ``command_not_executable`` (126)."""
    message: str
    """What went wrong, one line."""
    exit_code: int
    """The process exit status (the kind's number)."""
    hint: str | None = None
    """What to do next."""
    nvml_error: str | None = None
    """The NVML code's name when the driver refused, e.g. ``NVML_ERROR_INSUFFICIENT_RESOURCES``."""
    rolled_back: bool | None = None
    """``create``/``create-ci``: whether what the command had made was destroyed again (``false``: the
    rollback was incomplete, see ``hint``)."""
    destroyed: tuple[DestroyedInstance, ...] | None = None
    """``destroy``: what was destroyed before the driver failed (running the command again finishes)."""
    differences: tuple[GpuDifferences, ...] | None = None
    """``mismatch``: how each differing GPU differs from the layout."""
    holder: dict[str, Any] | None = None
    """``in_use`` on one MIG device: who holds it, as its lease records it (``uuid``, ``pid``, ``command``,
    ``since``; ``source: nvml`` for a process NVML lists without a lease)."""
    holders: tuple[dict[str, Any], ...] | None = None
    """``in_use`` on several MIG devices: who holds each, as ``holder``."""
    output: str | None = None
    """``driver``: the end of what a failed external command (``nvidia-smi --gpu-reset``) printed."""
