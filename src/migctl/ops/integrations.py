"""Operations behind ``export --format slurm|k8s`` and ``slurm task-prolog``.

Thin I/O around the pure generators in :mod:`migctl.integrations`: read the node through the
device layer, hand typed facts over, return the records of :mod:`migctl.records.schedulers`.

The capability minors and the device paths come from the device layer too
(:meth:`Node.mig_minors`, :meth:`Node.driver_path`): the driver's
``/proc/driver/nvidia-caps/mig-minors`` and ``/dev`` on a GPU server, the simulated driver's
own files on a simulated node. ``--mig-minors FILE`` (another node's table, parsed by the same
parser) and ``--dev-root DIR`` override them.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from migctl.device import Gpu, MigMinors, Node
from migctl.device.driverfiles import MIG_MINORS, read_mig_minors_file
from migctl.errors import DriverError, UsageError
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
                gpu_index=gpu.index, gi_id=gi.id, ci_id=ci.id, profile=dev.profile, gi_profile=gi_prof.name,
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


def mig_minors(node: Node, override: str | None = None) -> tuple[MigMinors, str]:
    """The capability minors and where they were read: the node's driver table
    (:meth:`Node.mig_minors`), or the table in ``override`` (a :class:`UsageError` if it cannot
    be read or parsed)."""
    if override is None:
        return node.mig_minors(), str(node.driver_path("/" + MIG_MINORS))
    try:
        return read_mig_minors_file(Path(override)), override
    except DriverError as exc:
        raise UsageError(
            f"--mig-minors {override}: {exc.message}",
            hint="give a copy of the driver's /proc/driver/nvidia-caps/mig-minors, or leave --mig-minors out "
            "to read this node's",
        ) from None


def dev_root(node: Node, override: str | None = None) -> str:
    """Where the driver's ``/dev`` is: ``override``, else the node's (``/dev`` on a GPU server)."""
    return override or str(node.driver_path("/dev"))


def short_hostname() -> str:
    return socket.gethostname().split(".", 1)[0]


def _gres_layout(
    node: Node, gpus: Sequence[Gpu], minors_file: str | None, root: str | None
) -> tuple[slurm.GresLayout, str, str]:
    facts = node_facts(gpus)
    minors = MigMinors(None, None)  # none needed without a MIG device to look up
    where = ""
    if any(g.mig_enabled and g.mig_devices for g in facts):
        minors, where = mig_minors(node, minors_file)
    used_root = dev_root(node, root)
    try:
        return slurm.gres_layout(facts, minors, used_root, where or slurm.MIG_MINORS_PATH), where, used_root
    except slurm.SlurmError as exc:
        if minors_file is None:
            raise DriverError(str(exc)) from None  # the driver's own table lacks a live instance
        raise UsageError(str(exc)) from None


def slurm_export(
    node: Node,
    gpus: Sequence[Gpu],
    *,
    node_name: str | None = None,
    mig_minors: str | None = None,
    root: str | None = None,
) -> SlurmExportReport:
    """gres.conf lines and the slurm.conf ``NodeName`` fragment for the current layout of ``gpus``.

    ``mig_minors`` (a file) and ``root`` (for ``/dev``) override what the node's driver has.
    """
    layout, where, used_root = _gres_layout(node, gpus, mig_minors, root)
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
    node: Node,
    gpus: Sequence[Gpu],
    env: Mapping[str, str],
    *,
    mig_minors: str | None = None,
    root: str | None = None,
) -> TaskPrologReport:
    """The MIG UUIDs of the GRES a Slurm job was given (indices as migctl's gres.conf numbers them)."""
    if not any(env.get(v) for v in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES")):
        return TaskPrologReport(None, (), (), None)
    layout, _, _ = _gres_layout(node, gpus, mig_minors, root)
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
