"""Operations behind ``export --format slurm|k8s`` and ``slurm task-prolog``.

Thin I/O around the pure generators in :mod:`migctl.integrations`: read the node through the
device layer (and the driver's mig-minors file), hand typed facts over, return the records of
:mod:`migctl.records.schedulers`.

:func:`read_mig_minors` is the one place that finds the mig-minors file (``--mig-minors``,
``$MIGCTL_MIG_MINORS``, the driver's ``/proc/driver/nvidia-caps/mig-minors``); when the
simulator models that file and a ``/dev`` root of its own, this is where to switch to it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence

from migctl.device import Gpu
from migctl.errors import UsageError
from migctl.integrations import k8s, slurm
from migctl.integrations.facts import GpuFacts, MigDeviceFacts
from migctl.records.schedulers import (
    Advertised,
    AdvertisedByStrategy,
    GresLine,
    K8sExportReport,
    LabelsByStrategy,
    SlurmExportReport,
    TaskPrologReport,
)

MIG_MINORS_ENV = "MIGCTL_MIG_MINORS"
DEV_ROOT_ENV = "MIGCTL_DEV_ROOT"


def gpu_minor(gpu: Gpu) -> int:
    """The GPU's device minor (``/dev/nvidia<minor>``), from NVML."""
    return gpu.minor_number


def _mig_devices(gpu: Gpu) -> tuple[MigDeviceFacts, ...]:
    out = []
    gis = {gi.id: gi for gi in gpu.gpu_instances()}
    for dev in gpu.mig_devices():
        gi = gis.get(dev.gi_id)
        if gi is None:
            continue  # destroyed since it was listed
        ci = next((c for c in gi.compute_instances() if c.id == dev.ci_id), None)
        if ci is None:
            continue
        gi_prof = gpu.profile_by_id(gi.profile_id)
        ci_prof = next((p for p in gi.ci_profiles() if p.id == ci.profile_id), None)
        if ci_prof is None:
            continue
        out.append(
            MigDeviceFacts(
                gpu_index=gpu.index, gi_id=gi.id, ci_id=ci.id, profile=ci.profile, gi_profile=gi_prof.name,
                uuid=dev.uuid, memory_mib=gi_prof.memory_mib, multiprocessors=ci_prof.sm,
                gi_slices=gi_prof.slice_count, ci_slices=ci_prof.slice_count, copy_engines=ci_prof.ce,
                decoders=ci_prof.dec, encoders=ci_prof.enc, jpeg=ci_prof.jpeg, ofa=ci_prof.ofa,
            )
        )
    return tuple(out)


def node_facts(gpus: Sequence[Gpu]) -> list[GpuFacts]:
    """What the generators need to know about ``gpus``, read from NVML now."""
    out = []
    for gpu in gpus:
        mode = gpu.mig_mode()
        enabled = mode is not None and mode.current
        total, _ = gpu.memory_mib()
        out.append(
            GpuFacts(gpu.index, gpu_minor(gpu), gpu.name, gpu.uuid, mode is not None, enabled, total,
                     _mig_devices(gpu) if enabled else ())
        )
    return out


def read_mig_minors(path: str | None = None) -> tuple[str, str]:
    """The text of the mig-minors file and its path: ``path``, else ``$MIGCTL_MIG_MINORS``, else
    the driver's ``/proc/driver/nvidia-caps/mig-minors``."""
    where = path or os.environ.get(MIG_MINORS_ENV) or slurm.MIG_MINORS_PATH
    try:
        with open(where, encoding="utf-8") as f:
            return f.read(), where
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(
            f"cannot read the MIG minor numbers from {where}: {why}",
            hint="the NVIDIA driver (>= 450) provides it; on a test node pass --mig-minors FILE or set "
            f"{MIG_MINORS_ENV}",
        ) from None


def dev_root(option: str | None = None) -> str:
    """What stands for ``/dev`` in device paths: ``option``, ``$MIGCTL_DEV_ROOT``, or ``/dev``."""
    return option or os.environ.get(DEV_ROOT_ENV) or "/dev"


def short_hostname() -> str:
    return socket.gethostname().split(".", 1)[0]


def _gres_layout(gpus: Sequence[Gpu], minors_path: str | None, root: str | None) -> tuple[slurm.GresLayout, str, str]:
    facts = node_facts(gpus)
    text, where = "", ""
    if any(g.mig_enabled and g.mig_devices for g in facts):
        text, where = read_mig_minors(minors_path)
    try:
        minors = slurm.parse_mig_minors(text, where)
        return slurm.gres_layout(facts, minors, dev_root(root)), where, dev_root(root)
    except slurm.SlurmError as exc:
        raise UsageError(str(exc)) from None


def slurm_export(
    gpus: Sequence[Gpu], *, node_name: str | None = None, mig_minors: str | None = None, root: str | None = None
) -> SlurmExportReport:
    """gres.conf lines and the slurm.conf ``NodeName`` fragment for the node's current layout."""
    layout, where, used_root = _gres_layout(gpus, mig_minors, root)
    name = node_name or short_hostname()
    return SlurmExportReport(
        format="slurm",
        node_name=name,
        gres_conf=layout.gres_conf(),
        slurm_conf=layout.node_line(name),
        gres=layout.gres(),
        counts=layout.counts(),
        records=tuple(
            GresLine(i, r.type, r.files, r.uuid, r.gpu_index, r.gi_id, r.ci_id, r.profile, r.line)
            for i, r in enumerate(layout.records)
        ),
        notes=layout.notes,
        mig_minors=where,
        dev_root=used_root,
    )


def task_prolog(
    gpus: Sequence[Gpu], env: Mapping[str, str], *, mig_minors: str | None = None, root: str | None = None
) -> TaskPrologReport:
    """The MIG UUIDs of the GRES a Slurm job was given (indices as migctl's gres.conf numbers them)."""
    if not any(env.get(v) for v in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")):
        return TaskPrologReport(None, (), (), None)
    layout, _, _ = _gres_layout(gpus, mig_minors, root)
    try:
        job = slurm.job_devices(layout, env)
    except slurm.SlurmError as exc:
        raise UsageError(str(exc)) from None
    return TaskPrologReport(job.source, job.indices, job.uuids, job.export_line)


def _advertised(a: k8s.Advertised) -> Advertised:
    return Advertised(a.ok, dict(a.resources), a.error, a.warnings)


def k8s_export(gpus: Sequence[Gpu]) -> K8sExportReport:
    """The device plugin's extended resources and GFD's MIG labels, under ``mixed`` and ``single``."""
    facts = node_facts(gpus)
    return K8sExportReport(
        format="k8s",
        resources=AdvertisedByStrategy(_advertised(k8s.advertised(facts, "mixed")),
                                       _advertised(k8s.advertised(facts, "single"))),
        labels=LabelsByStrategy(k8s.node_labels(facts, "mixed"), k8s.node_labels(facts, "single")),
    )
