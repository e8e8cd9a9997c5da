"""Simulated NVML: what monitoring tools read beside MIG (temperature, power, clocks, utilization).

Answers as a data-center GPU does (``nvidia-smi -q``):

* Per-GPU telemetry (temperature, fan, power, clocks, P-state, ECC, persistence and compute
  mode) is read on the physical GPU's handle; on a MIG device handle it is NOT_SUPPORTED.
* Fans: the simulated boards are passively cooled (SXM modules, server PCIe cards), so
  ``nvmlDeviceGetFanSpeed`` is NOT_SUPPORTED and ``nvmlDeviceGetNumFans`` is 0.
* ``nvmlDeviceGetUtilizationRates`` is NOT_SUPPORTED while MIG is enabled and on MIG devices
  (NVML documents utilization only without MIG; per instance it is GPM's job). Encoder and
  decoder utilization: 0 on a GPU, NOT_SUPPORTED on a MIG device.
* Power, temperature and the SM clock follow the load (:mod:`migctl.sim.load`): idle power at
  no load up to the power limit at full load; 30 to 70 °C; the SM clock at its maximum while
  anything runs, 345 MHz idle. Persistence mode is on, ECC is on with no errors, P-state P0.
"""

from __future__ import annotations

import time
from typing import Any

import pynvml

from migctl.sim import engine, load
from migctl.sim import handles as h
from migctl.sim.nvml_base import SimBase, nvml

IDLE_SM_CLOCK_MHZ = 345
IDLE_TEMP_C, FULL_TEMP_C = 30, 70
SLOWDOWN_TEMP_C, SHUTDOWN_TEMP_C, MAX_OPERATING_TEMP_C = 87, 92, 85
SAMPLING_PERIOD_US = 167_000


class TelemetryQueries(SimBase):
    """Temperatures, power, clocks, utilization, ECC and modes."""

    def _activity(self, handle: Any) -> tuple[int, float]:
        """(GPU index, SM activity 0-100) for a physical GPU handle."""
        index = self._whole_gpu(handle)
        return index, load.gpu_util(self._model(index), self._gpu(index))

    # -- temperature and fans --------------------------------------------------------------

    @nvml
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        _, util = self._activity(handle)
        if int(sensor) != pynvml.NVML_TEMPERATURE_GPU:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return round(IDLE_TEMP_C + (FULL_TEMP_C - IDLE_TEMP_C) * util / 100)

    @nvml
    def nvmlDeviceGetTemperatureThreshold(self, handle: Any, threshold: int) -> int:
        self._activity(handle)
        values = {
            pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: SHUTDOWN_TEMP_C,
            pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: SLOWDOWN_TEMP_C,
            pynvml.NVML_TEMPERATURE_THRESHOLD_GPU_MAX: MAX_OPERATING_TEMP_C,
        }
        if int(threshold) not in values:
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return values[int(threshold)]

    @nvml
    def nvmlDeviceGetFanSpeed(self, handle: Any) -> int:
        self._activity(handle)
        raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)

    @nvml
    def nvmlDeviceGetNumFans(self, device: Any) -> int:
        self._activity(device)
        return 0

    # -- power -----------------------------------------------------------------------------

    @nvml
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        """Milliwatts: idle power plus the load's share of what is left to the power limit."""
        index, util = self._activity(handle)
        t = self._model(index).telemetry
        return round((t.idle_power_w + (t.power_limit_w - t.idle_power_w) * 0.9 * util / 100) * 1000)

    @nvml
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        """Millijoules since the node was opened, at the current power."""
        watts = self.nvmlDeviceGetPowerUsage.__wrapped__(self, handle) / 1000  # type: ignore[attr-defined]
        return int(watts * (time.time() - self._sim.started) * 1000)

    def _power_limit_mw(self, handle: Any) -> int:
        index, _ = self._activity(handle)
        return self._model(index).telemetry.power_limit_w * 1000

    @nvml
    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        return self._power_limit_mw(handle)

    @nvml
    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        return self._power_limit_mw(handle)

    @nvml
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._power_limit_mw(handle)

    @nvml
    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> list[int]:
        index, _ = self._activity(handle)
        t = self._model(index).telemetry
        return [t.min_power_limit_w * 1000, t.power_limit_w * 1000]

    @nvml
    def nvmlDeviceGetPowerState(self, handle: Any) -> int:
        self._activity(handle)
        return int(pynvml.NVML_PSTATE_0)

    @nvml
    def nvmlDeviceGetPerformanceState(self, handle: Any) -> int:
        self._activity(handle)
        return int(pynvml.NVML_PSTATE_0)

    # -- clocks ----------------------------------------------------------------------------

    def _max_clock(self, index: int, type: int) -> int:
        t = self._model(index).telemetry
        if int(type) in (pynvml.NVML_CLOCK_GRAPHICS, pynvml.NVML_CLOCK_SM):
            return t.max_sm_clock_mhz
        if int(type) == pynvml.NVML_CLOCK_MEM:
            return t.max_mem_clock_mhz
        if int(type) == pynvml.NVML_CLOCK_VIDEO:
            return round(t.max_sm_clock_mhz * 0.9)
        raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    @nvml
    def nvmlDeviceGetMaxClockInfo(self, handle: Any, type: int) -> int:
        index, _ = self._activity(handle)
        return self._max_clock(index, type)

    @nvml
    def nvmlDeviceGetClockInfo(self, handle: Any, type: int) -> int:
        index, util = self._activity(handle)
        top = self._max_clock(index, type)
        if int(type) == pynvml.NVML_CLOCK_MEM or util > 0:
            return top
        return min(top, IDLE_SM_CLOCK_MHZ)

    # -- utilization -----------------------------------------------------------------------

    @nvml
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        index, util = self._activity(handle)
        if self._model(index).mig_capable and self._gpu(index)["mig"]["current"] == pynvml.NVML_DEVICE_MIG_ENABLE:
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        rates = pynvml.c_nvmlUtilization_t()
        rates.gpu = round(util)
        rates.memory = round(load.metric("dram", util))
        return rates

    @nvml
    def nvmlDeviceGetProcessUtilization(self, handle: Any, timeStamp: int) -> list[Any]:
        """Per-process SM samples: without MIG only (NOT_SUPPORTED in MIG mode); NOT_FOUND if none."""
        index, _ = self._activity(handle)
        gpu = self._gpu(index)
        if self._model(index).mig_capable and gpu["mig"]["current"] == pynvml.NVML_DEVICE_MIG_ENABLE:
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        now_us = int(time.time() * 1_000_000)
        samples = []
        for proc in engine.live_procs(gpu):
            sample = pynvml.c_nvmlProcessUtilizationSample_t()
            util = min(100, int(proc.get("util") or 0))
            sample.pid, sample.timeStamp = int(proc["pid"]), now_us
            sample.smUtil, sample.memUtil = util, round(load.metric("dram", util))
            samples.append(sample)
        if not samples or now_us <= int(timeStamp):
            raise h.fail(pynvml.NVML_ERROR_NOT_FOUND)
        return samples

    @nvml
    def nvmlDeviceGetDriverModel(self, handle: Any) -> list[int]:
        """Windows only (WDDM/TCC): NOT_SUPPORTED on Linux."""
        self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)

    @nvml
    def nvmlDeviceGetDriverModel_v2(self, handle: Any) -> list[int]:
        return self.nvmlDeviceGetDriverModel.__wrapped__(self, handle)  # type: ignore[attr-defined]

    def _codec(self, handle: Any) -> list[int]:
        self._activity(handle)
        return [0, SAMPLING_PERIOD_US]

    @nvml
    def nvmlDeviceGetEncoderUtilization(self, handle: Any) -> list[int]:
        return self._codec(handle)

    @nvml
    def nvmlDeviceGetDecoderUtilization(self, handle: Any) -> list[int]:
        return self._codec(handle)

    # -- ECC and modes ---------------------------------------------------------------------

    @nvml
    def nvmlDeviceGetEccMode(self, handle: Any) -> list[int]:
        self._activity(handle)
        return [pynvml.NVML_FEATURE_ENABLED, pynvml.NVML_FEATURE_ENABLED]

    @nvml
    def nvmlDeviceGetTotalEccErrors(self, handle: Any, errorType: int, counterType: int) -> int:
        self._activity(handle)
        return 0

    @nvml
    def nvmlDeviceGetPersistenceMode(self, handle: Any) -> int:
        self._activity(handle)
        return int(pynvml.NVML_FEATURE_ENABLED)

    @nvml
    def nvmlDeviceGetComputeMode(self, handle: Any) -> int:
        self._activity(handle)
        return int(pynvml.NVML_COMPUTEMODE_DEFAULT)

    @nvml
    def nvmlDeviceGetDisplayMode(self, handle: Any) -> int:
        self._activity(handle)
        return int(pynvml.NVML_FEATURE_DISABLED)

    @nvml
    def nvmlDeviceGetDisplayActive(self, handle: Any) -> int:
        self._activity(handle)
        return int(pynvml.NVML_FEATURE_DISABLED)
