"""Records of the lifecycle commands: ``mode``, ``reset``, ``create``, ``create-ci``, ``destroy``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.core.geometry import Placement
from migctl.records.base import Record
from migctl.records.common import DestroyedInstance, ProcessRecord
from migctl.records.inspect import MigModeState

# -- mode ------------------------------------------------------------------------------------------

ModeResult = Literal["enabled", "disabled", "pending", "refused", "not_supported", "interrupted"]


@dataclass(frozen=True)
class InstanceSummary(Record):
    """A GPU instance a mode change concerns (one in the way, or one destroyed first)."""

    id: int
    """GPU-instance ID."""
    profile: str
    placement: Placement


@dataclass(frozen=True)
class ModeOutcome(Record):
    """What happened to one GPU's MIG mode."""

    gpu: int
    name: str
    requested: Literal["enabled", "disabled"]
    result: ModeResult
    """``enabled``/``disabled``: done (or already so); ``pending``: stored, takes effect after a GPU
    reset; ``refused``: nothing changed (see ``reason``); ``not_supported``: not MIG-capable;
    ``interrupted``: Ctrl-C/SIGTERM stopped the command before this GPU, which was not changed."""
    reason: str | None
    """Why, for anything but a plain success (``already enabled`` too)."""
    processes: tuple[ProcessRecord, ...]
    """The processes in the way (refused, pending)."""
    instances: tuple[InstanceSummary, ...]
    """Disabling: the GPU instances that were in the way, or that were destroyed first."""


@dataclass(frozen=True)
class ModeReport(Record):
    """``migctl mode enable|disable``."""

    gpus: tuple[ModeOutcome, ...]
    interrupted: str | None = None
    """``SIGINT``/``SIGTERM`` when the command was stopped (exit 130): GPUs already switched keep their
    new mode, the rest are ``interrupted`` and unchanged."""


# -- reset -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResetOutcome(Record):
    gpu: int
    mig: MigModeState | None
    """MIG mode after the reset; ``null`` when the GPU is not MIG-capable."""


@dataclass(frozen=True)
class ResetReport(Record):
    """``migctl reset``."""

    gpus: tuple[ResetOutcome, ...]


# -- create / create-ci ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedInstance(Record):
    """A GPU instance ``create`` made, or a compute instance ``create-ci`` made in one."""

    gpu: int
    gpu_instance_id: int
    profile: str
    """GPU-instance profile name."""
    profile_id: int
    """GPU-instance profile ID."""
    placement: Placement
    """The GPU instance's memory slices."""
    compute_instance_id: int | None
    """``null`` with ``--no-compute-instance``."""
    compute_profile: str | None
    """Compute-instance profile name (the full-size one has the GPU-instance profile's name)."""
    uuid: str | None
    """The MIG device UUID (for ``CUDA_VISIBLE_DEVICES``); ``null`` without a compute instance."""


@dataclass(frozen=True)
class CreateReport(Record):
    """``migctl create`` and ``migctl create-ci``: every instance made, in creation order."""

    created: tuple[CreatedInstance, ...]


# -- destroy -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DestroyReport(Record):
    """``migctl destroy``: compute instances first, then GPU instances, in the order destroyed."""

    destroyed: tuple[DestroyedInstance, ...]
