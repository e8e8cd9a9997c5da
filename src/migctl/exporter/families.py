"""An :class:`~migctl.records.observe.Observation` as Prometheus metric families.

Two kinds of series:

* **dcgm-exporter's**, with its names, units and labels, so dashboards built for it work
  unchanged: ``gpu``, ``UUID`` (always the physical GPU's), ``pci_bus_id``,
  ``device="nvidia<i>"``, ``modelName``, and on a GPU instance's series ``GPU_I_PROFILE`` and
  ``GPU_I_ID``; then ``Hostname`` (``hostname`` as newer dcgm-exporter writes it, by option) and
  the label field ``DCGM_FI_DRIVER_VERSION``. Memory is MiB, ``DCGM_FI_PROF_*`` are ratios 0-1,
  utilizations percent, power watts, energy millijoules. A value NVML does not give is left
  out (no series), never written as 0. dcgm-exporter's counters without a ``_total`` suffix
  (``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``) are typed gauge: prometheus_client appends
  ``_total`` to counters, and dashboards match the name, not the type.
* **migctl's own** (``migctl_*``): the layout (each GPU instance with profile and placement,
  free slices, MIG mode current and pending, a layout-change counter), who holds each MIG
  device, running batch jobs, the last apply, and why utilization is n/a where it is.

The list of every series is in ``docs/observability.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.core import Metric

from migctl.records.inspect import GpuInstanceStatus, GpuStatus, Utilization
from migctl.records.observe import GpuTelemetryRecord, Observation

GPU_LABELS = ("gpu", "UUID", "pci_bus_id", "device", "modelName")
INSTANCE_LABELS = ("GPU_I_PROFILE", "GPU_I_ID")
DRIVER_LABEL = "DCGM_FI_DRIVER_VERSION"


@dataclass(frozen=True)
class Field:
    """A dcgm-exporter field migctl fills: its name and help text."""

    name: str
    help: str


FB_FREE = Field("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).")
FB_USED = Field("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).")
FB_RESERVED = Field("DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).")
GPU_UTIL = Field("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %); whole GPUs outside MIG mode.")
MEM_COPY_UTIL = Field("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %); whole GPUs outside MIG mode.")
ENC_UTIL = Field("DCGM_FI_DEV_ENC_UTIL", "Encoder utilization (in %).")
DEC_UTIL = Field("DCGM_FI_DEV_DEC_UTIL", "Decoder utilization (in %).")
GPU_TEMP = Field("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).")
POWER_USAGE = Field("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).")
ENERGY = Field("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since the driver loaded (in mJ).")
SM_CLOCK = Field("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).")
MEM_CLOCK = Field("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).")
GR_ENGINE_ACTIVE = Field("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "Ratio of time the graphics engine is active (GPM).")
SM_ACTIVE = Field("DCGM_FI_PROF_SM_ACTIVE", "Ratio of cycles an SM has at least one warp assigned (GPM).")
SM_OCCUPANCY = Field("DCGM_FI_PROF_SM_OCCUPANCY", "Ratio of warps resident on an SM to the maximum (GPM).")
DRAM_ACTIVE = Field("DCGM_FI_PROF_DRAM_ACTIVE", "Ratio of cycles the memory interface is busy (GPM).")
TENSOR_ACTIVE = Field("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "Ratio of cycles a tensor pipe is active (GPM).")

#: Every dcgm-exporter field migctl can emit, in the order the families are written.
DCGM_FIELDS = (
    FB_FREE, FB_USED, FB_RESERVED, GPU_UTIL, MEM_COPY_UTIL, ENC_UTIL, DEC_UTIL, GPU_TEMP, POWER_USAGE,
    ENERGY, SM_CLOCK, MEM_CLOCK, GR_ENGINE_ACTIVE, SM_ACTIVE, SM_OCCUPANCY, DRAM_ACTIVE, TENSOR_ACTIVE,
)  # fmt: skip


def _ratio(pct: float | None) -> float | None:
    return None if pct is None else round(pct / 100, 6)


def _prof(u: Utilization | None) -> list[tuple[Field, float | None]]:
    if u is None:
        return []
    return [
        (GR_ENGINE_ACTIVE, _ratio(u.graphics_pct)),
        (SM_ACTIVE, _ratio(u.sm_pct)),
        (SM_OCCUPANCY, _ratio(u.sm_occupancy_pct)),
        (DRAM_ACTIVE, _ratio(u.dram_bw_pct)),
        (TENSOR_ACTIVE, _ratio(u.tensor_pct)),
    ]


class Builder:
    """Collects samples per family, then gives the families (one per name, first-seen order).

    A family's series may carry different labels (a GPU's and a GPU instance's
    ``DCGM_FI_DEV_FB_USED``), as dcgm-exporter's do; so samples are added with their own labels.
    """

    def __init__(self, hostname_label: str) -> None:
        self.hostname_label = hostname_label
        self._families: dict[str, Metric] = {}

    def _family(self, name: str, help: str, kind: str) -> Metric:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = Metric(name, help, kind)
        return family

    def gauge(self, name: str, help: str, labels: Mapping[str, str], value: float | None) -> None:
        if value is not None:
            self._family(name, help, "gauge").add_sample(name, dict(labels), float(value))

    def counter(self, name: str, help: str, labels: Mapping[str, str], value: float) -> None:
        self._family(name, help, "counter").add_sample(name + "_total", dict(labels), float(value))

    def families(self) -> list[Metric]:
        return list(self._families.values())


def gpu_labels(g: GpuStatus, hostname_label: str, hostname: str) -> dict[str, str]:
    """dcgm-exporter's labels of a GPU (and, with the instance's, of its GPU instances)."""
    return {
        "gpu": str(g.index),
        "UUID": g.uuid,
        "pci_bus_id": g.bus_id,
        "device": f"nvidia{g.index}",
        "modelName": g.name,
        hostname_label: hostname,
    }


def instance_labels(base: Mapping[str, str], gi: GpuInstanceStatus, hostname_label: str) -> dict[str, str]:
    out = {k: v for k, v in base.items() if k != hostname_label}
    out.update({"GPU_I_PROFILE": gi.profile, "GPU_I_ID": str(gi.id), hostname_label: base[hostname_label]})
    return out


def _dcgm_gpu(b: Builder, labels: Mapping[str, str], g: GpuStatus, t: GpuTelemetryRecord | None) -> None:
    u = g.utilization
    values: list[tuple[Field, float | None]] = []
    if t is not None:
        mem = t.memory
        values += [
            (FB_FREE, None if mem is None else mem.free_mib),
            (FB_USED, None if mem is None else mem.used_mib),
            (FB_RESERVED, None if mem is None else mem.reserved_mib),
            (ENC_UTIL, t.encoder_pct),
            (DEC_UTIL, t.decoder_pct),
            (GPU_TEMP, t.temperature_c),
            (POWER_USAGE, t.power_w),
            (ENERGY, t.energy_mj),
            (SM_CLOCK, t.sm_clock_mhz),
            (MEM_CLOCK, t.memory_clock_mhz),
        ]
    if u is not None and u.source == "nvml":
        values += [(GPU_UTIL, u.gpu_pct), (MEM_COPY_UTIL, u.memory_pct)]
    values += _prof(u)
    for field, value in values:
        b.gauge(field.name, field.help, labels, value)


def _dcgm_instance(b: Builder, labels: Mapping[str, str], gi: GpuInstanceStatus) -> None:
    # Memory is the GPU instance's: every MIG device in it reports the same.
    mem = next((ci.memory for ci in gi.compute_instances if ci.memory is not None), None)
    values: list[tuple[Field, float | None]] = []
    if mem is not None:
        values += [(FB_FREE, mem.free_mib), (FB_USED, mem.used_mib), (FB_RESERVED, mem.reserved_mib)]
    values += _prof(gi.utilization)
    for field, value in values:
        b.gauge(field.name, field.help, labels, value)


def _utilization_info(b: Builder, labels: Mapping[str, str], u: Utilization | None) -> None:
    if u is None:
        return
    b.gauge(
        "migctl_utilization_info",
        "Where utilization comes from (gpm, nvml) or why there is none (source n/a, reason).",
        {**labels, "source": u.source, "reason": u.reason or ""},
        1,
    )


def build(
    obs: Observation,
    *,
    hostname_label: str = "Hostname",
    layout_changes: Mapping[int, int] | None = None,
) -> list[Metric]:
    """Every family of one observation. ``layout_changes``: per GPU index, how many times its
    layout changed since the exporter started (``migctl_layout_changes_total``)."""
    b = Builder(hostname_label)
    host = obs.hostname
    telemetry = {t.index: t for t in obs.telemetry}
    changes = layout_changes or {}
    for g in obs.status.gpus:
        base = gpu_labels(g, hostname_label, host)
        dcgm = {**base, DRIVER_LABEL: obs.driver_version}
        _dcgm_gpu(b, dcgm, g, telemetry.get(g.index))
        _utilization_info(b, base, g.utilization)
        _migctl_gpu(b, base, g, changes.get(g.index, 0))
        for gi in g.gpu_instances:
            labels = instance_labels(base, gi, hostname_label)
            _dcgm_instance(b, {**labels, DRIVER_LABEL: obs.driver_version}, gi)
            _utilization_info(b, labels, gi.utilization)
            _migctl_instance(b, labels, gi)
    _migctl_node(b, obs)
    return b.families()


def _migctl_gpu(b: Builder, labels: Mapping[str, str], g: GpuStatus, changes: int) -> None:
    if g.mig is not None:
        b.gauge("migctl_mig_mode_current", "MIG mode now: 1 enabled, 0 disabled.", labels, int(g.mig.current))
        b.gauge(
            "migctl_mig_mode_pending",
            "MIG mode after the next GPU reset: 1 enabled, 0 disabled (differs from current while a change waits).",
            labels,
            int(g.mig.pending),
        )
    if g.mig is not None and g.mig.current:
        used = sum(gi.placement.size for gi in g.gpu_instances)
        b.gauge("migctl_gpu_slices", "Memory slices of the GPU (8, or 4 on A30).", labels, g.slices)
        b.gauge("migctl_gpu_slices_free", "Memory slices no GPU instance occupies.", labels, max(0, g.slices - used))
        b.gauge("migctl_gpu_instances", "GPU instances on the GPU.", labels, len(g.gpu_instances))
    b.counter(
        "migctl_layout_changes",
        "Times this exporter saw the GPU's layout (MIG mode, GPU and compute instances) change.",
        labels,
        changes,
    )


def _migctl_instance(b: Builder, labels: Mapping[str, str], gi: GpuInstanceStatus) -> None:
    b.gauge(
        "migctl_gpu_instance_info",
        "A GPU instance: its profile and placement (memory slices start, size).",
        {
            **labels,
            "profile_id": str(gi.profile_id),
            "placement_start": str(gi.placement.start),
            "placement_size": str(gi.placement.size),
        },
        1,
    )
    b.gauge(
        "migctl_gpu_instance_compute_instances",
        "Compute instances (MIG devices) in the GPU instance; 0: CUDA cannot use it.",
        labels,
        len(gi.compute_instances),
    )
    for ci in gi.compute_instances:
        device = {**labels, "GPU_CI_ID": str(ci.id), "mig_uuid": ci.uuid}
        h = ci.holder
        b.gauge(
            "migctl_mig_device_leased",
            "1 while a migctl lease (run, batch, migctl.use) holds the MIG device; the holder in labels.",
            {
                **device,
                "holder_pid": "" if h is None or h.pid is None else str(h.pid),
                "holder_command": "" if h is None else h.command,
                "job": "" if h is None or h.job is None else h.job,
            },
            0 if h is None else 1,
        )
        b.gauge(
            "migctl_mig_device_processes", "Compute processes NVML lists on the MIG device.", device, len(ci.processes)
        )


def _migctl_node(b: Builder, obs: Observation) -> None:
    host = {b.hostname_label: obs.hostname}
    jobs = [
        (g, gi, ci)
        for g in obs.status.gpus
        for gi in g.gpu_instances
        for ci in gi.compute_instances
        if ci.holder is not None and ci.holder.job
    ]
    b.gauge("migctl_batch_jobs_running", "Batch jobs (migctl batch) running now.", host, len(jobs))
    for g, gi, ci in jobs:
        assert ci.holder is not None
        b.gauge(
            "migctl_batch_job_running",
            "A running batch job and the MIG device it holds.",
            {
                **host,
                "job": ci.holder.job or "",
                "gpu": str(g.index),
                "GPU_I_ID": str(gi.id),
                "GPU_CI_ID": str(ci.id),
                "mig_uuid": ci.uuid,
                "pid": "" if ci.holder.pid is None else str(ci.holder.pid),
            },
            1,
        )
    last = obs.last_apply
    if last is not None:
        labels = {**host, "config": last.config}
        b.gauge(
            "migctl_last_apply_timestamp_seconds", "When the last apply ended (epoch seconds).", labels, last.finished
        )
        b.gauge(
            "migctl_last_apply_success",
            "1 if every GPU got its layout in the last apply, else 0.",
            labels,
            int(last.ok),
        )
        counts: dict[str, int] = {}
        for _, result in last.results:
            counts[result] = counts.get(result, 0) + 1
        for result, n in sorted(counts.items()):
            b.gauge("migctl_last_apply_gpus", "GPUs per result of the last apply.", {**labels, "result": result}, n)


def layout_key(g: GpuStatus) -> tuple[object, ...]:
    """What counts as a GPU's layout for ``migctl_layout_changes_total``."""
    return (
        None if g.mig is None else g.mig.current,
        tuple(
            (
                gi.id,
                gi.profile_id,
                gi.placement.start,
                gi.placement.size,
                tuple((ci.id, ci.uuid) for ci in gi.compute_instances),
            )
            for gi in g.gpu_instances
        ),
    )


def count_layout_changes(previous: dict[str, tuple[object, ...]], counts: dict[int, int], obs: Observation) -> None:
    """Update ``counts`` (per GPU index) from ``previous`` layouts (per GPU UUID), in place."""
    for g in obs.status.gpus:
        key = layout_key(g)
        before = previous.get(g.uuid)
        if before is not None and before != key:
            counts[g.index] = counts.get(g.index, 0) + 1
        counts.setdefault(g.index, 0)
        previous[g.uuid] = key


def families_of(items: Iterable[Metric]) -> list[str]:
    """Family names, as Prometheus exposes them (a counter with ``_total``)."""
    return [m.name + "_total" if m.type == "counter" else m.name for m in items]
