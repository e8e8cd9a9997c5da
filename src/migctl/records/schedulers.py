"""Records of what migctl hands to schedulers: ``export --format slurm|k8s``, ``slurm task-prolog``,
``k8s clients``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.records.base import Record

# -- Slurm -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GresLine(Record):
    """One ``Name=gpu`` line of gres.conf: a MIG device, or a GPU with MIG disabled."""

    index: int
    """slurmd's GRES index of this device (what ``SLURM_STEP_GPUS`` lists)."""
    type: str
    """The Type string Slurm's ``AutoDetect=nvml`` builds (``nvidia_h20_3g.48gb``)."""
    files: tuple[str, ...]
    """``/dev/nvidia<minor>``, then the GPU instance's and compute instance's ``nvidia-cap`` devices."""
    uuid: str
    """The MIG device's UUID (the GPU's for a whole GPU)."""
    gpu: int
    gpu_instance: int | None
    """GPU-instance ID (``null`` for a whole GPU)."""
    compute_instance: int | None
    profile: str | None
    """The MIG device's profile (``null`` for a whole GPU)."""
    line: str
    """The gres.conf line."""


@dataclass(frozen=True)
class SlurmExportReport(Record):
    """``export --format slurm``: gres.conf for the current layout and the slurm.conf ``NodeName`` fragment."""

    format: Literal["slurm"]
    node_name: str
    gres_conf: str
    """gres.conf text, one line per device, in slurmd's index order."""
    slurm_conf: str
    """``NodeName=<node> Gres=gpu:<type>:<count>,...``."""
    gres: str
    """The ``Gres=`` value alone."""
    counts: dict[str, int]
    """Type -> how many devices of it."""
    records: tuple[GresLine, ...]
    notes: tuple[str, ...]
    """GPUs left out, and why."""
    mig_minors: str
    """The mig-minors table the capability minors were read from: the driver's (the simulated
    driver's on a simulated node) or ``--mig-minors`` (empty when no MIG device needed it)."""
    dev_root: str
    """The folder written for ``/dev`` in the paths: the driver's (``/dev``; the simulated
    driver's on a simulated node) or ``--dev-root``."""


@dataclass(frozen=True)
class TaskPrologReport(Record):
    """``slurm task-prolog``: the GRES a job was given, as MIG UUIDs."""

    source: Literal["SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"] | None
    """The variable the GRES indices came from (``null``: nothing to do, no GPU or UUIDs already)."""
    indices: tuple[int, ...]
    uuids: tuple[str, ...]
    line: str | None
    """The line a TaskProlog prints (``export CUDA_VISIBLE_DEVICES=MIG-...``), or ``null``."""


# -- Kubernetes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Advertised(Record):
    """What NVIDIA's device plugin advertises under one MIG strategy, or why it would refuse to start."""

    ok: bool
    resources: dict[str, int]
    """Extended resource -> count (``nvidia.com/mig-1g.12gb: 7``)."""
    error: str | None
    """Why the plugin would stop under this strategy."""
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class AdvertisedByStrategy(Record):
    mixed: Advertised
    single: Advertised


@dataclass(frozen=True)
class LabelsByStrategy(Record):
    mixed: dict[str, str]
    """The MIG labels GPU feature discovery sets under ``mixed``."""
    single: dict[str, str]


@dataclass(frozen=True)
class K8sExportReport(Record):
    """``export --format k8s``: the device plugin's extended resources and GFD's node labels."""

    format: Literal["k8s"]
    resources: AdvertisedByStrategy
    labels: LabelsByStrategy


@dataclass(frozen=True)
class K8sClientsReport(Record):
    """``k8s clients pause|resume``: the GPU clients' deploy labels set on this node."""

    action: Literal["pause", "resume"]
    node: str
    labels: dict[str, str]
    """The ``nvidia.com/gpu.deploy.*`` labels set."""
    waited: bool
    """Pause: the client pods were seen gone."""
    wait_note: str
    """Why the wait ended otherwise (kubectl's words), or empty."""


@dataclass(frozen=True)
class K8sHooksFileReport(Record):
    """``k8s hooks-file --json``: the mig-parted hooks file that pauses the GPU clients around an apply."""

    text: str
    """The file (YAML), as ``k8s hooks-file`` prints it."""
