"""Slurm: gres.conf lines for the current MIG layout, and a job's GRES indices -> MIG UUIDs.

Formats as Slurm reads and writes them (SchedMD/slurm, ``src/plugins/gpu/nvml/gpu_nvml.c``,
``src/plugins/gres/common/gres_common.c``, ``src/plugins/gres/gpu/gres_gpu.c``):

* **Type strings** are the ones ``AutoDetect=nvml`` builds, so hand-written and detected
  configs agree. A whole GPU: its NVML name lowercased with spaces made ``_``
  (``nvidia_h100_80gb_hbm3``, ``nvidia_a100-sxm4-40gb``). A MIG device: the parent's such
  name cut at its first ``-``, then ``_`` and the MIG profile (``nvidia_a100_3g.20gb``,
  ``nvidia_h20_1c.3g.48gb``, ``nvidia_h100_80gb_hbm3_1g.10gb+me``).
* **A MIG device's files** are ``/dev/nvidia<GPU minor>`` and the two capability devices
  ``/dev/nvidia-caps/nvidia-cap<n>`` of its GPU instance and compute instance, whose minors
  the driver lists in ``/proc/driver/nvidia-caps/mig-minors``
  (``gpu<m>/gi<g>/access <n>`` and ``gpu<m>/gi<g>/ci<c>/access <n>``). The device layer reads
  and parses that table (:meth:`migctl.device.Node.mig_minors`); this module reads nothing.
* **GRES indices**: slurmd numbers a node's ``gpu`` records type by type, in the order the
  node's ``Gres=`` in slurm.conf lists the types, and within a type in gres.conf order
  (``_merge_config`` in ``src/common/gres.c``; checked against a real slurmd in the tests). A
  job step gets the indices it was allocated in ``SLURM_STEP_GPUS`` (``SLURM_JOB_GPUS`` in a
  batch script and the prolog), and ``CUDA_VISIBLE_DEVICES`` set to the same indices when
  gres.conf has no UUIDs. migctl writes ``Gres=`` with the types sorted and the records sorted
  by type, then by ``File`` in natural order (GPU, GPU instance, compute instance), so its list
  is slurmd's numbering, and maps an index back to the MIG UUID through that list. A
  hand-edited ``Gres=`` that lists the types in another order breaks that mapping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from migctl.integrations.facts import GpuFacts

MIG_MINORS_PATH = "/proc/driver/nvidia-caps/mig-minors"


class SlurmError(ValueError):
    """Input that cannot become a correct gres.conf (or index mapping); the message says why."""


class CapabilityMinors(Protocol):
    """The driver's MIG capability minors, as :class:`migctl.device.MigMinors` holds them (read
    and parsed by the device layer; this module only looks numbers up)."""

    def gi(self, gpu_minor: int, gi_id: int) -> int | None:
        """The minor of ``gpu<m>/gi<g>/access``."""
        ...

    def ci(self, gpu_minor: int, gi_id: int, ci_id: int) -> int | None:
        """The minor of ``gpu<m>/gi<g>/ci<c>/access``."""
        ...


def _underscorify(name: str) -> str:
    """Slurm's ``gpu_common_underscorify_tolower``: lowercase, spaces to ``_``."""
    return name.lower().replace(" ", "_")


def gpu_type(gpu_name: str) -> str:
    """The Type ``AutoDetect=nvml`` gives a whole GPU (MIG off): ``NVIDIA H20`` -> ``nvidia_h20``."""
    return _underscorify(gpu_name)


def mig_type(gpu_name: str, profile: str) -> str:
    """The Type ``AutoDetect=nvml`` gives a MIG device of ``profile`` on a ``gpu_name`` GPU.

    ``("NVIDIA A100-SXM4-40GB", "3g.20gb")`` -> ``nvidia_a100_3g.20gb``: the GPU's name
    lowercased with spaces made ``_`` and cut at its first ``-``, then ``_`` and the profile
    as the MIG device's NVML name ends (``<GPU name> MIG <profile>``).
    """
    device = _underscorify(f"{gpu_name} MIG {profile}")
    at = device.find("mig_")
    suffix = device[at + 3:]  # keeps the "_" after "mig"
    return _underscorify(gpu_name).split("-", 1)[0] + suffix


def natural_key(text: str) -> tuple[str | int, ...]:
    """Sort key of Slurm's ``strnatcmp`` for these paths: digit runs compare as numbers."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


@dataclass(frozen=True)
class GresRecord:
    """One ``Name=gpu`` line of gres.conf: a MIG device (``gi_id``/``ci_id`` set) or a whole GPU."""

    type: str
    files: tuple[str, ...]
    uuid: str
    gpu_index: int
    gi_id: int | None = None
    ci_id: int | None = None
    profile: str | None = None

    @property
    def line(self) -> str:
        if len(self.files) == 1:
            return f"Name=gpu Type={self.type} File={self.files[0]}"
        return f"Name=gpu Type={self.type} MultipleFiles={','.join(self.files)}"


@dataclass(frozen=True)
class GresLayout:
    """The node's gpu GRES: records in slurmd's index order (by type, then by files), and notes
    on GPUs left out."""

    records: tuple[GresRecord, ...]
    notes: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        """Type -> count, types sorted."""
        out: dict[str, int] = {}
        for r in self.records:
            out[r.type] = out.get(r.type, 0) + 1
        return dict(sorted(out.items()))

    def gres(self) -> str:
        """slurm.conf's ``Gres=`` value: ``gpu:<type>:<count>,...``."""
        return ",".join(f"gpu:{t}:{n}" for t, n in self.counts().items())

    def node_line(self, node_name: str) -> str:
        """The slurm.conf fragment for this node: ``NodeName=<node> Gres=gpu:<type>:<n>,...``."""
        return f"NodeName={node_name} Gres={self.gres()}"

    def gres_conf(self, node_name: str | None = None) -> str:
        """gres.conf text: one line per record, in index order (``NodeName=`` prefixed if given)."""
        prefix = f"NodeName={node_name} " if node_name else ""
        return "".join(f"{prefix}{r.line}\n" for r in self.records)


def gres_layout(
    gpus: Iterable[GpuFacts], minors: CapabilityMinors, dev_root: str = "/dev", source: str = MIG_MINORS_PATH
) -> GresLayout:
    """The gres records of ``gpus``: every MIG device of a MIG-enabled GPU, every MIG-disabled GPU.

    ``dev_root`` is where the driver's ``/dev`` is (``/dev`` on a GPU server; the simulated
    driver's own folder on a simulated node). A MIG-enabled GPU without MIG devices offers
    nothing and is left out with a note. A MIG device whose minors are not in ``minors`` (read
    from ``source``) is an error: the table is not this node's, or the driver is too old.
    """
    root = dev_root.rstrip("/") or ""
    records: list[GresRecord] = []
    notes: list[str] = []
    for gpu in gpus:
        gpu_file = f"{root}/nvidia{gpu.minor}"
        if not gpu.mig_enabled:
            records.append(GresRecord(gpu_type(gpu.name), (gpu_file,), gpu.uuid, gpu.index))
            continue
        if not gpu.mig_devices:
            notes.append(f"GPU {gpu.index} has MIG enabled and no MIG devices: it offers jobs nothing and is left out")
            continue
        for mig in gpu.mig_devices:
            gi = minors.gi(gpu.minor, mig.gi_id)
            ci = minors.ci(gpu.minor, mig.gi_id, mig.ci_id)
            if gi is None or ci is None:
                missing = f"gpu{gpu.minor}/gi{mig.gi_id}/access" if gi is None else \
                    f"gpu{gpu.minor}/gi{mig.gi_id}/ci{mig.ci_id}/access"
                raise SlurmError(f"{source} has no {missing} (GPU {gpu.index}, GI {mig.gi_id}, "
                                 f"CI {mig.ci_id}); is it this node's {MIG_MINORS_PATH}?")
            files = (gpu_file, f"{root}/nvidia-caps/nvidia-cap{gi}", f"{root}/nvidia-caps/nvidia-cap{ci}")
            records.append(GresRecord(mig_type(gpu.name, mig.profile), files, mig.uuid, gpu.index,
                                      mig.gi_id, mig.ci_id, mig.profile))
    records.sort(key=lambda r: (r.type, natural_key(",".join(r.files))))
    return GresLayout(tuple(records), tuple(notes))


IndexVar = Literal["SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"]
_INDEX_VARS: tuple[IndexVar, ...] = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")


@dataclass(frozen=True)
class JobDevices:
    """What a job was given: the GRES indices, the variable they came from, and their UUIDs."""

    source: IndexVar | None
    indices: tuple[int, ...]
    uuids: tuple[str, ...]

    @property
    def export_line(self) -> str | None:
        """The task-prolog line that sets ``CUDA_VISIBLE_DEVICES`` (``None``: leave it alone)."""
        if self.source is None:
            return None
        return f"export CUDA_VISIBLE_DEVICES={','.join(self.uuids)}"


def job_devices(layout: GresLayout, env: Mapping[str, str]) -> JobDevices:
    """Map the GRES indices Slurm gave a job (from its environment) to MIG (or GPU) UUIDs.

    The indices come from ``SLURM_STEP_GPUS``, else ``SLURM_JOB_GPUS``, else a numeric
    ``CUDA_VISIBLE_DEVICES``. A ``CUDA_VISIBLE_DEVICES`` that already holds UUIDs (gres.conf
    from ``AutoDetect=nvml``) is kept as it is. No variable: the job has no GPU, nothing to do.
    """
    cvd = env.get("CUDA_VISIBLE_DEVICES", "")
    if cvd and all(p.strip().upper().startswith(("MIG-", "GPU-")) for p in cvd.split(",")):
        return JobDevices(None, (), tuple(p.strip() for p in cvd.split(",")))
    for var in _INDEX_VARS:
        value = env.get(var)
        if value is None or not value.strip():
            continue
        parts = [p.strip() for p in value.split(",")]
        if not all(p.isdigit() for p in parts):
            raise SlurmError(f"{var}={value!r}: expected GRES indices like 0,3")
        indices = tuple(int(p) for p in parts)
        bad = [i for i in indices if i >= len(layout.records)]
        if bad:
            raise SlurmError(
                f"{var}={value}: index {bad[0]} is not in the node's gres.conf as migctl would write it now "
                f"({len(layout.records)} gpu records); the layout changed since gres.conf was written: run "
                "migctl export --format slurm, install it, and restart slurmd")
        return JobDevices(var, indices, tuple(layout.records[i].uuid for i in indices))
    return JobDevices(None, (), ())


def type_counts(records: Sequence[GresRecord]) -> dict[str, int]:
    """Type -> count of ``records`` (for tests and renderers)."""
    return GresLayout(tuple(records)).counts()
