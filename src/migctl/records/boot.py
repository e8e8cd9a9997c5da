"""Records of the boot service: ``boot install``, ``select``, ``apply``, ``status`` and ``uninstall``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.core.geometry import Placement
from migctl.records.base import Record
from migctl.records.common import GpuDifferences
from migctl.records.layouts import GpuOutcome, HookRun, RecoveredGpu


@dataclass(frozen=True)
class BootSelection(Record):
    """What ``boot install`` / ``boot select`` recorded (``<boot dir>/selection.json``)."""

    config_file: str
    """Where the config came from (``<stdin>`` for ``-f -``)."""
    config_name: str
    hooks_file: str | None
    """The mig-parted hooks file run around every boot apply (an absolute path), if any."""
    recorded_at: float
    """When it was recorded (epoch seconds)."""
    gpus: tuple[int, ...]
    """The GPUs the config covers; the others are left alone at boot."""


@dataclass(frozen=True)
class BootRecorded(Record):
    """``boot install`` and ``boot select``: the config applied now and its resulting layout recorded."""

    selection: BootSelection
    applied: bool
    """``false`` with ``--no-apply``: the node already matched the config and was only recorded."""
    outcomes: tuple[GpuOutcome, ...]
    """The apply's outcome per GPU (empty with ``--no-apply``)."""
    layout: str
    """The recorded layout (``layout.yaml``): a v1 config pinning every placement and compute instance,
    which the unit applies at every boot."""
    unit: str | None
    """The unit file written (``null`` for ``boot select``, which keeps the installed unit)."""
    enabled_by: Literal["systemctl", "wants-link"] | None
    """``systemctl``: ``systemctl enable`` was run; ``wants-link``: systemd does not manage the unit folder, so
    the ``multi-user.target.wants`` link was made as ``systemctl enable`` makes it."""
    notes: tuple[str, ...]


@dataclass(frozen=True)
class MigDeviceRow(Record):
    """One line of the boot log: GPU -> GPU instance -> compute instance -> MIG UUID."""

    gpu: int
    gpu_name: str
    gi: int
    """GPU-instance ID."""
    profile: str
    """GPU-instance profile."""
    placement: Placement
    """Memory slices of the GPU instance."""
    ci: int
    """Compute-instance ID."""
    ci_profile: str
    uuid: str
    """The MIG device's UUID (new at every boot)."""


@dataclass(frozen=True)
class BootRun(Record):
    """``boot apply`` (what the unit runs at boot); also stored as the last result ``boot status`` reports."""

    ok: bool
    """The recorded layout is in place on every covered GPU."""
    started: float
    """Epoch seconds."""
    seconds: float
    config_name: str | None
    """The recorded config's name (``null`` when nothing could be read)."""
    recovered: tuple[RecoveredGpu, ...]
    """Applies a crash interrupted, finished or rolled back first."""
    outcomes: tuple[GpuOutcome, ...]
    hooks: tuple[HookRun, ...]
    table: tuple[MigDeviceRow, ...]
    """The covered GPUs' MIG devices after the apply."""
    error: str | None
    """Why it failed (``null`` when ``ok``)."""
    exit_code: int
    """The exit status of ``boot apply`` (0 when ``ok``)."""


@dataclass(frozen=True)
class BootStatus(Record):
    """``boot status`` (exit 1 when the last boot apply failed)."""

    unit: str
    """The unit file's path."""
    installed: bool
    enabled: bool
    """Wanted by ``multi-user.target``."""
    boot_dir: str
    selection: BootSelection | None
    last_boot: BootRun | None
    """The last ``boot apply``'s result (``null``: none yet, or unreadable)."""
    matches_now: bool | None
    """Whether the node has the recorded layout now (``null``: no driver, or nothing recorded)."""
    differences: tuple[GpuDifferences, ...]
    """How each GPU differs from the recorded layout (empty when it matches)."""


@dataclass(frozen=True)
class BootUninstall(Record):
    """``boot uninstall``: the GPUs keep their layout; the unit and the recorded files go."""

    removed: tuple[str, ...]
    """The files removed (the unit, its wants link, the recorded selection)."""
