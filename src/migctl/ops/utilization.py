"""Utilization of GPUs and GPU instances as typed records, from whichever source NVML has.

* A GPU instance: GPM (:mod:`migctl.device.gpm`), Hopper and later. Elsewhere ``n/a`` with the
  reason (an Ampere GPU, a driver without GPM, an instance without a compute instance); never 0%.
* A whole GPU outside MIG mode: ``nvmlDeviceGetUtilizationRates``.
* A whole GPU in MIG mode: GPM over the whole GPU, else ``n/a`` (NVML has no rate in MIG mode).

A :class:`UtilizationSampler` lives as long as its front end (``top``, the exporter) and keeps
the previous GPM sample of every target, so each refresh measures the window since the last
one; the first refresh has no window yet (``None``). :func:`measured_status` is ``status
--util``: it samples once, waits ``window_s`` and builds the status with the second sample.

>>> report = measured_status(node, node.gpus, holders={})         # doctest: +SKIP
>>> report.gpus[0].gpu_instances[0].utilization.gpu_pct            # doctest: +SKIP
70.0
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from migctl.device import Gpu, Node
from migctl.device.gpm import NO_COMPUTE_INSTANCE, GpmMetrics, GpmSampler, Target
from migctl.device.telemetry import Unavailable, UtilizationRates, utilization_rates
from migctl.ops.inspect import status
from migctl.records.common import Holder
from migctl.records.inspect import StatusReport, Utilization

#: ``status --util``: time between the two GPM samples (NVML wants more than 100 ms).
DEFAULT_WINDOW_S = 0.2

NO_MIG_RATE = "NVML has no utilization rate in MIG mode; "


def unavailable(reason: str) -> Utilization:
    return Utilization("n/a", reason, None, None, None, None, None, None, None, None)


def from_gpm(m: GpmMetrics, rates: UtilizationRates | None = None) -> Utilization:
    """GPM's metrics; with NVML's ``rates`` (a whole GPU outside MIG mode) the headline is NVML's."""
    return Utilization(
        "nvml" if rates else "gpm",
        None,
        rates.gpu_pct if rates else m.graphics_pct,
        rates.memory_pct if rates else None,
        m.graphics_pct,
        m.sm_pct,
        m.sm_occupancy_pct,
        m.dram_bw_pct,
        m.tensor_pct,
        m.window_s,
    )


def from_rates(r: UtilizationRates) -> Utilization:
    return Utilization("nvml", None, r.gpu_pct, r.memory_pct, None, None, None, None, None, None)


class UtilizationSampler:
    """Utilization per GPU and GPU instance over one NVML session (one thread at a time)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.gpm = GpmSampler(node.nvml)
        self._seen: set[Target] = set()

    def gpu(self, gpu: Gpu, *, mig_enabled: bool) -> Utilization | None:
        """The whole GPU: NVML's rate outside MIG mode, GPM in MIG mode (``None``: no window yet)."""
        self._seen.add((gpu.index, None))
        rates = None
        if not mig_enabled:
            found = utilization_rates(self.node.nvml, gpu.handle, mig_enabled=False)
            rates = found if isinstance(found, UtilizationRates) else None
        got = self.gpm.take(gpu, None)
        if isinstance(got, GpmMetrics):
            return from_gpm(got, rates)
        if rates is not None:
            return from_rates(rates)
        if isinstance(got, Unavailable):
            return unavailable((NO_MIG_RATE + got.reason) if mig_enabled else got.reason)
        return None

    def gpu_instance(self, gpu: Gpu, gi_id: int, *, has_compute_instance: bool) -> Utilization | None:
        """One GPU instance, by GPM (``None``: no window yet)."""
        if not has_compute_instance:
            return unavailable(NO_COMPUTE_INSTANCE)
        self._seen.add((gpu.index, gi_id))
        got = self.gpm.take(gpu, gi_id)
        if isinstance(got, Unavailable):
            return unavailable(got.reason)
        return None if got is None else from_gpm(got)

    def prime(self, gpus: Sequence[Gpu]) -> None:
        """Take a first sample of every GPU and GPU instance (the start of the next window)."""
        for gpu in gpus:
            mode = gpu.mig_mode()
            enabled = bool(mode and mode.current)
            self.gpu(gpu, mig_enabled=enabled)
            if enabled:
                for gi in gpu.gpu_instances():
                    self.gpu_instance(gpu, gi.id, has_compute_instance=bool(gi.compute_instances()))

    def end_round(self) -> None:
        """Free the samples of targets not asked about since the last round (destroyed instances)."""
        self.gpm.retain(self._seen)
        self._seen = set()

    def close(self) -> None:
        self.gpm.close()


def measured_status(
    node: Node,
    gpus: Sequence[Gpu],
    holders: Mapping[str, Holder] | None = None,
    *,
    window_s: float = DEFAULT_WINDOW_S,
) -> StatusReport:
    """``migctl status --util``: the status with utilization measured over ``window_s``."""
    sampler = UtilizationSampler(node)
    try:
        sampler.prime(gpus)
        time.sleep(window_s)
        return status(node, gpus, holders, sampler=sampler)
    finally:
        sampler.close()
