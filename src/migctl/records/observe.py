"""Records of the monitoring front ends: what ``top`` and the exporter collect each round, the
last ``apply``'s outcome as the state directory keeps it, and ``exporter --json``'s start-up
document."""

from __future__ import annotations

from dataclasses import dataclass

from migctl.records.base import Record
from migctl.records.inspect import DeviceMemory, StatusReport


@dataclass(frozen=True)
class LastApply(Record):
    """The last ``apply`` that ran to its end (``<state dir>/last-apply.json``)."""

    finished: float
    """When it ended (epoch seconds)."""
    config: str
    """The layout or mig-parted config name it applied."""
    ok: bool
    """Whether every GPU got its layout (and the ``apply-exit`` hook succeeded)."""
    results: tuple[tuple[int, str], ...]
    """``(gpu, result)`` per GPU: ``applied``, ``unchanged``, ``skipped``, ``pending``, ``rolled_back``, ``failed``."""


@dataclass(frozen=True)
class GpuTelemetryRecord(Record):
    """One GPU's sensors (``null``: NVML does not give that value on this GPU)."""

    index: int
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    energy_mj: int | None
    """Total energy since the driver loaded (millijoules)."""
    sm_clock_mhz: int | None
    memory_clock_mhz: int | None
    encoder_pct: int | None
    decoder_pct: int | None
    memory: DeviceMemory | None
    """Framebuffer with the driver's reserve apart (dcgm-exporter's FB_USED/FB_FREE/FB_RESERVED)."""


@dataclass(frozen=True)
class Observation(Record):
    """One collection round: the status with utilization, the GPUs' sensors, migctl's state."""

    taken: float
    """When the round started (epoch seconds)."""
    duration_s: float
    """How long the round took."""
    hostname: str
    driver_version: str
    status: StatusReport
    telemetry: tuple[GpuTelemetryRecord, ...]
    last_apply: LastApply | None


@dataclass(frozen=True)
class ExporterStarted(Record):
    """``migctl exporter --json``: printed once the exporter listens (then it serves until stopped)."""

    url: str
    """Where Prometheus scrapes it, e.g. ``http://127.0.0.1:9400/metrics``."""
    host: str
    port: int
    """The bound port (the one the OS chose for ``--listen HOST:0``)."""
    interval_s: float
    """How often the background collector reads NVML."""
    max_age_s: float
    """A cache older than this is not served (its GPU series are dropped until NVML answers again)."""
