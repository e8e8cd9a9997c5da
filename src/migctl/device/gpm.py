"""GPU Performance Monitoring (GPM): utilization per GPU instance, on Hopper and later.

NVML gives no utilization in MIG mode (``nvmlDeviceGetUtilizationRates`` is NOT_SUPPORTED);
GPM does, per GPU instance: ``nvmlGpmMigSampleGet(parent, gpuInstanceId, sample)`` takes a
sample of one instance's counters, and ``nvmlGpmMetricsGet`` turns two samples of the same
target, taken some time apart (more than 100 ms), into percentages over that window. Whether a
GPU has it is ``nvmlGpmQueryDeviceSupport``; on Ampere and older, and on drivers without GPM,
the answer is a reason, never 0%.

:class:`GpmSampler` keeps the previous sample of every target, so a monitor that refreshes
every second reads metrics over its own refresh window without ever sleeping:

>>> sampler = GpmSampler(node.nvml)                        # doctest: +SKIP
>>> sampler.take(gpu, gi_id=13)                            # doctest: +SKIP   first sample: no window yet
>>> time.sleep(0.2); sampler.take(gpu, gi_id=13)           # doctest: +SKIP
GpmMetrics(graphics_pct=70.0, sm_pct=66.5, sm_occupancy_pct=35.0, dram_bw_pct=28.0, tensor_pct=42.0, window_s=0.2)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pynvml

from migctl.device.nvml import Nvml
from migctl.device.telemetry import UNAVAILABLE, Unavailable

if TYPE_CHECKING:
    from migctl.device.gpu import Gpu

#: Samples closer than this are not a window NVML measures reliably (nvml.h: > 100 ms).
MIN_WINDOW_S = 0.1

NO_GPM = "no GPM on this GPU (per-instance utilization needs Hopper or later)"
OLD_DRIVER = "no GPM in this driver (per-instance utilization needs driver 520 or later)"
NO_COMPUTE_INSTANCE = "no compute instance, so nothing runs on it"

METRIC_IDS = (
    pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL,
    pynvml.NVML_GPM_METRIC_SM_UTIL,
    pynvml.NVML_GPM_METRIC_SM_OCCUPANCY,
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL,
    pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL,
)


@dataclass(frozen=True)
class GpmMetrics:
    """GPM's utilizations (percent) over ``window_s``; ``None`` for a metric NVML did not give."""

    graphics_pct: float | None
    """GRAPHICS_UTIL: the graphics/compute engine was active (dcgm's GR_ENGINE_ACTIVE)."""
    sm_pct: float | None
    """SM_UTIL: SMs busy (dcgm's SM_ACTIVE)."""
    sm_occupancy_pct: float | None
    """SM_OCCUPANCY: resident warps over the maximum (dcgm's SM_OCCUPANCY)."""
    dram_bw_pct: float | None
    """DRAM_BW_UTIL: memory bandwidth in use (dcgm's DRAM_ACTIVE)."""
    tensor_pct: float | None
    """ANY_TENSOR_UTIL: any tensor pipe active (dcgm's PIPE_TENSOR_ACTIVE)."""
    window_s: float


#: A target: (GPU index, GPU-instance ID), or (GPU index, None) for the whole GPU.
Target = tuple[int, int | None]


def gpm_support(gpu: Gpu) -> Unavailable | None:
    """``None`` when GPM works on this GPU, else why not (``nvmlGpmQueryDeviceSupport``)."""
    nvml = gpu.nvml
    try:
        support = nvml.read(nvml.lib.nvmlGpmQueryDeviceSupport, gpu.handle)
    except pynvml.NVMLError as exc:
        if exc.value == pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:
            return Unavailable(OLD_DRIVER)
        if exc.value in UNAVAILABLE:
            return Unavailable(NO_GPM)
        raise
    return None if int(support.isSupportedDevice) else Unavailable(NO_GPM)


@dataclass
class _Slot:
    samples: list[Any]
    taken: float | None = None  # when samples[current] was taken
    current: int = 0
    last: GpmMetrics | None = None


class GpmSampler:
    """Rolling GPM samples per target. Not thread-safe: one sampler per collecting thread."""

    def __init__(self, nvml: Nvml, *, min_window_s: float = MIN_WINDOW_S) -> None:
        self.nvml = nvml
        self.min_window_s = min_window_s
        self._slots: dict[Target, _Slot] = {}
        self._support: dict[int, Unavailable | None] = {}
        self._request: Any = None

    def support(self, gpu: Gpu) -> Unavailable | None:
        """:func:`gpm_support`, asked once per GPU."""
        if gpu.index not in self._support:
            self._support[gpu.index] = gpm_support(gpu)
        return self._support[gpu.index]

    def take(self, gpu: Gpu, gi_id: int | None = None) -> GpmMetrics | Unavailable | None:
        """Sample ``gpu`` (or its GPU instance ``gi_id``) now; return the metrics since the
        previous sample, the reason there are none, or ``None`` on the first sample (no window
        yet). Closer than ``min_window_s`` to the previous sample, the last metrics are
        returned without sampling again."""
        unsupported = self.support(gpu)
        if unsupported is not None:
            return unsupported
        target = (gpu.index, gi_id)
        slot = self._slots.get(target)
        now = time.monotonic()
        if slot is not None and slot.taken is not None and now - slot.taken < self.min_window_s:
            return slot.last
        try:
            if slot is None:
                slot = self._slots[target] = _Slot([self._alloc(), self._alloc()])
            nxt = 1 - slot.current
            if gi_id is None:
                self.nvml.read(self.nvml.lib.nvmlGpmSampleGet, gpu.handle, slot.samples[nxt])
            else:
                self.nvml.read(self.nvml.lib.nvmlGpmMigSampleGet, gpu.handle, gi_id, slot.samples[nxt])
        except pynvml.NVMLError as exc:
            self._drop(target)
            if exc.value == pynvml.NVML_ERROR_NOT_FOUND:
                return Unavailable("the GPU instance is gone" if gi_id is not None else "the GPU is gone")
            if exc.value in UNAVAILABLE:
                return Unavailable(f"GPM could not sample it ({exc})")
            raise
        previous = slot.taken
        slot.current, slot.taken = nxt, now
        if previous is None:
            return None
        slot.last = self._metrics(slot.samples[1 - nxt], slot.samples[nxt], now - previous)
        return slot.last

    def _alloc(self) -> Any:
        return self.nvml.read(self.nvml.lib.nvmlGpmSampleAlloc)

    def _metrics(self, first: Any, second: Any, window: float) -> GpmMetrics:
        if self._request is None:
            self._request = pynvml.c_nvmlGpmMetricsGet_t()
        request = self._request
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(METRIC_IDS)
        request.sample1, request.sample2 = first, second
        for i, metric_id in enumerate(METRIC_IDS):
            request.metrics[i].metricId = metric_id
        self.nvml.read(self.nvml.lib.nvmlGpmMetricsGet, request)
        values: list[float | None] = []
        for i in range(len(METRIC_IDS)):
            m = request.metrics[i]
            values.append(round(float(m.value), 3) if int(m.nvmlReturn) == pynvml.NVML_SUCCESS else None)
        graphics, sm, occupancy, dram, tensor = values
        return GpmMetrics(graphics, sm, occupancy, dram, tensor, round(window, 3))

    def _drop(self, target: Target) -> None:
        slot = self._slots.pop(target, None)
        if slot is not None:
            for sample in slot.samples:
                self._free(sample)

    def _free(self, sample: Any) -> None:
        try:
            self.nvml.lib.nvmlGpmSampleFree(sample)
        except pynvml.NVMLError:
            pass

    def retain(self, targets: set[Target]) -> None:
        """Free the samples of targets no longer watched (destroyed instances)."""
        for target in [t for t in self._slots if t not in targets]:
            self._drop(target)

    def close(self) -> None:
        """Free every sample buffer."""
        self.retain(set())
