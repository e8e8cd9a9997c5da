"""Records of what mig-parted users expect besides apply: ``checkpoint``, ``restore``, ``generate-config``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from migctl.core.geometry import Placement
from migctl.records.base import Record
from migctl.records.layouts import GpuOutcome, HookRun, RecoveredGpu

CHECKPOINT_VERSION = "migctl.checkpoint/v1"

# -- checkpoint --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointComputeInstance(Record):
    id: int
    profile: str
    profile_id: int
    placement: Placement
    """Compute slices within its GPU instance."""
    uuid: str
    """Its MIG UUID when checkpointed (for reference: a MIG device gets a new one when re-created)."""


@dataclass(frozen=True)
class CheckpointGpuInstance(Record):
    id: int
    profile: str
    profile_id: int
    placement: Placement
    compute_instances: tuple[CheckpointComputeInstance, ...]


@dataclass(frozen=True)
class CheckpointGpu(Record):
    index: int
    uuid: str
    """GPUs are matched by UUID when restored."""
    name: str
    pci_device_id: str
    """As mig-parted's ``device-filter`` writes it (``0x232910DE``)."""
    mig_enabled: bool
    gpu_instances: tuple[CheckpointGpuInstance, ...]


@dataclass(frozen=True)
class Checkpoint(Record):
    """A node's exact MIG state: the checkpoint file (``migctl checkpoint``) is this, as JSON."""

    version: Literal["migctl.checkpoint/v1"]
    gpus: tuple[CheckpointGpu, ...]


@dataclass(frozen=True)
class CheckpointReport(Record):
    """``checkpoint --json``: the checkpoint, and the file it was written to."""

    file: str | None
    """Where it was written (``null``: nowhere, it is only in this document)."""
    checkpoint: Checkpoint


# -- restore -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreReport(Record):
    """``restore``: each checkpointed GPU brought back through apply's planner and transaction."""

    source: str
    """The checkpoint file (``<stdin>``)."""
    ok: bool
    """Every GPU got its checkpointed state (and no ``apply-exit`` hook failed)."""
    mode_only: bool
    """Only MIG modes were restored (``--mode-only``)."""
    recovered: tuple[RecoveredGpu, ...]
    gpus: tuple[GpuOutcome, ...]
    hooks: tuple[HookRun, ...]
    compute_placement_differences: tuple[str, ...]
    """Compute instances re-created where apply's rule puts them rather than where the checkpoint had them."""
    interrupted: str | None = None
    """``SIGINT``/``SIGTERM`` when the restore was stopped (exit 130): as ``apply``'s, GPUs already
    restored keep their state, the GPU in progress was rolled back, the rest were not touched."""


# -- generate-config ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateConfigReport(Record):
    """``generate-config --json``: the mig-parted config built from the profiles the GPUs report."""

    file: str | None
    """Where it was written (``-f``), or ``null``."""
    configs: tuple[str, ...]
    """The config names, sorted (``all-disabled``, ``all-enabled``, ``all-balanced``, ``all-<profile>``)."""
    config: dict[str, Any]
    """The v1 config file, as ``-o json`` prints it."""
