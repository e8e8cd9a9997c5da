"""Simulated NVML: GPU Performance Monitoring (GPM), per GPU and per GPU instance.

As on hardware: supported on Hopper and later (``nvmlGpmQueryDeviceSupport`` says so; every
other GPM call is NOT_SUPPORTED on Ampere and Ada). A sample is taken with
``nvmlGpmSampleGet(gpu, sample)`` or, for one GPU instance, ``nvmlGpmMigSampleGet(gpu,
gpuInstanceId, sample)`` on the parent GPU's handle; ``nvmlGpmMetricsGet`` turns two samples of
the same target, the second taken later, into metrics. The simulator's counters are the load of
:mod:`migctl.sim.load`: a metric is the mean of the two samples' activity (exact while the load
does not change between them). Metrics it does not model come back with ``nvmlReturn``
NOT_SUPPORTED, as the driver marks a metric it cannot give.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pynvml

from migctl.sim import handles as h
from migctl.sim import load
from migctl.sim.nvml_base import SimBase, nvml

#: GPM metric -> (load kind, short name, long name)
METRICS: dict[int, tuple[str, bytes, bytes]] = {
    pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL: ("graphics", b"gr_util", b"graphics utilization"),
    pynvml.NVML_GPM_METRIC_SM_UTIL: ("sm", b"sm_util", b"SM utilization"),
    pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: ("occupancy", b"sm_occupancy", b"SM occupancy"),
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: ("dram", b"dram_bw_util", b"DRAM bandwidth utilization"),
    pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: ("tensor", b"any_tensor_util", b"any tensor utilization"),
}
_UNIT = b"%"
_ids = itertools.count(1)


class GpmCalls(SimBase):
    """``nvmlGpm*``: support query, sample buffers, samples and metrics."""

    _samples: dict[int, dict[str, Any]]

    def _gpm_samples(self) -> dict[int, dict[str, Any]]:
        samples = getattr(self, "_samples", None)
        if samples is None:
            samples = self._samples = {}
        return samples

    def _gpm_gpu(self, device: Any) -> int:
        index = self._whole_gpu(device)
        if not self._model(index).gpm_supported:
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return index

    def _sample(self, gpmSample: Any) -> dict[str, Any]:
        kind, _, high, low = h.decode(gpmSample)
        found = self._gpm_samples().get((high << 20) | low) if kind == h.KIND_SAMPLE else None
        if found is None:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return found

    @nvml
    def nvmlGpmQueryDeviceSupport(self, device: Any) -> Any:
        index = self._whole_gpu(device)
        support = pynvml.c_nvmlGpmSupport_t()
        support.version = pynvml.NVML_GPM_SUPPORT_VERSION
        support.isSupportedDevice = int(self._model(index).gpm_supported)
        return support

    @nvml
    def nvmlGpmSampleAlloc(self) -> Any:
        sample_id = next(_ids)
        self._gpm_samples()[sample_id] = {"taken": None}
        return h.make(pynvml.c_nvmlGpmSample_t, h.KIND_SAMPLE, 0, sample_id >> 20, sample_id & 0xFFFFF)

    @nvml
    def nvmlGpmSampleFree(self, gpmSample: Any) -> None:
        kind, _, high, low = h.decode(gpmSample)
        if kind != h.KIND_SAMPLE or self._gpm_samples().pop((high << 20) | low, None) is None:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def _take(self, gpmSample: Any, index: int, gi_id: int | None) -> Any:
        sample = self._sample(gpmSample)
        model, gpu = self._model(index), self._gpu(index)
        if gi_id is None:
            util = load.gpu_util(model, gpu)
        else:
            _, gpu = self._mig_enabled_gpu(index)
            gi = next((g for g in gpu["gis"] if g["id"] == int(gi_id)), None)
            if gi is None:
                raise h.fail(pynvml.NVML_ERROR_NOT_FOUND)
            util = load.gi_util(model, gpu, gi)
        sample.update(taken=time.monotonic(), target=(index, gi_id), util=util)
        return gpmSample

    @nvml
    def nvmlGpmSampleGet(self, device: Any, gpmSample: Any) -> Any:
        return self._take(gpmSample, self._gpm_gpu(device), None)

    @nvml
    def nvmlGpmMigSampleGet(self, device: Any, gpuInstanceId: int, gpmSample: Any) -> Any:
        return self._take(gpmSample, self._gpm_gpu(device), int(gpuInstanceId))

    @nvml
    def nvmlGpmMetricsGet(self, metricsGet: Any) -> Any:
        request = h.target(metricsGet)
        if not isinstance(request, pynvml.c_nvmlGpmMetricsGet_t):
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if request.version != pynvml.NVML_GPM_METRICS_GET_VERSION:
            raise h.fail(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        if not 0 < request.numMetrics <= len(request.metrics):
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        first, second = self._sample(request.sample1), self._sample(request.sample2)
        if first["taken"] is None or second["taken"] is None or first["target"] != second["target"]:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if second["taken"] <= first["taken"]:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        util = (first["util"] + second["util"]) / 2
        for i in range(request.numMetrics):
            metric = request.metrics[i]
            known = METRICS.get(int(metric.metricId))
            if known is None:
                metric.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
                metric.value = 0.0
                continue
            kind, short, long = known
            metric.nvmlReturn = pynvml.NVML_SUCCESS
            metric.value = load.metric(kind, util)
            metric.metricInfo.shortName = short
            metric.metricInfo.longName = long
            metric.metricInfo.unit = _UNIT
        return metricsGet
