"""Records of the layout commands: ``plan``, ``apply``, ``assert``, ``export``, ``recover``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from migctl.core.geometry import Placement
from migctl.records.base import Record
from migctl.records.common import GpuDifferences
from migctl.records.errors import ErrorReport

# -- plan ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedInstance(Record):
    """A GPU instance the GPU has now, as the plan sees it."""

    gi: int
    """GPU-instance ID."""
    profile: str
    placement: Placement
    compute: tuple[str, ...]
    """Profile names of its compute instances, sorted."""
    busy: bool
    """A process or a migctl lease uses it: it is never destroyed or reshaped."""


@dataclass(frozen=True)
class RecomputedInstance(Record):
    """A GPU instance kept where it is, with its compute instances replaced."""

    gi: int
    profile: str
    placement: Placement
    compute: tuple[str, ...]
    """What it has now."""
    busy: bool
    new_compute: tuple[str, ...]
    """What it will have."""


@dataclass(frozen=True)
class PlannedCreate(Record):
    """A GPU instance to create, at an explicit placement, with these compute instances."""

    profile: str
    placement: Placement
    compute: tuple[str, ...]


@dataclass(frozen=True)
class GpuPlanRecord(Record):
    """What ``apply`` would do on one GPU."""

    gpu: int
    name: str
    covered: bool
    """Whether the layout gives this GPU a target (``false``: left alone, ``note`` says why)."""
    note: str | None
    mode_change: Literal["enable", "disable"] | None
    """The MIG mode change first, if any."""
    span: int
    """Memory slices on the GPU (0 when not MIG-capable)."""
    before: tuple[PlannedInstance, ...]
    """Its GPU instances now."""
    refused: str | None
    """Why the target cannot be reached on this GPU (``null``: it can)."""
    busy: tuple[str, ...]
    """With a refusal: the busy instances in the way and who uses them, in words."""
    keep: tuple[PlannedInstance, ...]
    destroy: tuple[PlannedInstance, ...]
    recompute: tuple[RecomputedInstance, ...]
    create: tuple[PlannedCreate, ...]


@dataclass(frozen=True)
class PlanReport(Record):
    """``migctl plan`` (and ``apply --dry-run``): per GPU, what would change; nothing is changed."""

    config: str
    """The config's name (``--layout`` for an inline layout)."""
    source: str
    """The file it came from (``<stdin>``, ``--layout``)."""
    gpus: tuple[GpuPlanRecord, ...]
    refused: bool
    """Whether some GPU refused (then ``apply`` would change nothing at all)."""
    error: ErrorReport | None
    """With a refusal (or a config that covers none of the GPUs): the error ``apply`` would fail
    with (its ``exit_code`` is the command's)."""
    warnings: tuple[str, ...] = ()
    """What in the config matches no GPU although it was meant to (an empty entry, a
    ``device-filter`` that is not a PCI ID, such as a model name)."""


# -- apply and recover -------------------------------------------------------------------------------

GpuResult = Literal["unchanged", "applied", "rolled_back", "failed", "skipped", "pending"]


@dataclass(frozen=True)
class GpuOutcome(Record):
    """How one GPU's transaction ended."""

    gpu: int
    result: GpuResult
    """``applied``/``unchanged``/``skipped`` (no entry covers it): fine; ``pending``: a MIG mode change
    waits for a GPU reset; ``rolled_back``: it failed and is back as it was; ``failed``: the rollback
    failed too (run ``migctl recover``)."""
    detail: str
    destroyed: int
    created: int
    kept: int
    seconds: float


@dataclass(frozen=True)
class RecoveredGpu(Record):
    """An apply (or create) that a crash interrupted, finished or rolled back."""

    gpu: int
    result: Literal["finished", "rolled_back", "failed"]
    detail: str


@dataclass(frozen=True)
class HookRun(Record):
    """One mig-parted hook that ran."""

    point: str
    """``apply-start``, ``pre-apply-mode``, ``pre-apply-config`` or ``apply-exit``."""
    command: str
    exit_code: int | None
    """``null`` when it could not be started or timed out."""


@dataclass(frozen=True)
class ApplyReport(Record):
    """``migctl apply``."""

    config: str
    ok: bool
    """Every GPU applied (or left as it should be) and no ``apply-exit`` hook failed."""
    recovered: tuple[RecoveredGpu, ...]
    """Interrupted applies finished or rolled back first."""
    gpus: tuple[GpuOutcome, ...]
    hooks: tuple[HookRun, ...]
    warnings: tuple[str, ...] = ()
    """As in ``plan``: what in the config matches no GPU although it was meant to."""

    @property
    def exit_hook_failed(self) -> bool:
        return any(h.point == "apply-exit" and h.exit_code != 0 for h in self.hooks)


@dataclass(frozen=True)
class RecoverReport(Record):
    """``migctl recover``."""

    recovered: tuple[RecoveredGpu, ...]


# -- assert ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssertReport(Record):
    """``migctl assert`` (exit 10 when ``matches`` is false)."""

    config: str
    matches: bool
    gpus: tuple[GpuDifferences, ...]
    warnings: tuple[str, ...] = ()
    """As in ``plan``: what in the config matches no GPU although it was meant to."""


# -- export ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedInstance(Record):
    profile: str
    placement: Placement
    compute: tuple[str, ...]
    """Profile names of its compute instances, sorted."""


@dataclass(frozen=True)
class ExportedGpu(Record):
    index: int
    pci_device_id: str
    """As mig-parted's ``device-filter`` writes it (``0x233010DE``)."""
    mig_enabled: bool
    gpu_instances: tuple[ExportedInstance, ...]


@dataclass(frozen=True)
class ExportReport(Record):
    """``migctl export --json``: the layout, and the mig-parted file that reproduces it."""

    name: str
    """The config's name in the file (``--name``)."""
    portable: bool
    """Whether the file leaves out migctl's ``x-migctl`` keys (``--portable``)."""
    gpus: tuple[ExportedGpu, ...]
    """The MIG-capable GPUs' layouts."""
    config: dict[str, Any]
    """The mig-parted v1 config file, as ``-o json`` prints it."""
    warnings: tuple[str, ...]
    """What ``--portable`` could not express."""
