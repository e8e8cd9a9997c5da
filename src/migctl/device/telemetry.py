"""What monitoring reads beside MIG: memory and BAR1 of a GPU or MIG device, temperature,
power, clocks and NVML's utilization rates, as typed snapshots.

Each value is ``None`` where NVML does not give it (``NOT_SUPPORTED`` on this GPU or in MIG
mode, ``FUNCTION_NOT_FOUND`` on an older driver, ``NO_PERMISSION``): a monitor shows "n/a",
never a made-up 0. Per-instance utilization is GPM's job (:mod:`migctl.device.gpm`).

>>> gpu = open_node(sim="h20x8").gpus[0]                    # doctest: +SKIP
>>> gpu_telemetry(gpu).temperature_c                        # doctest: +SKIP
30
>>> utilization_rates(gpu)                                  # doctest: +SKIP
UtilizationRates(gpu_pct=0.0, memory_pct=0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pynvml

from migctl.device.nvml import Handle, Nvml

T = TypeVar("T")
MIB = 1024 * 1024

#: NVML answers meaning "this GPU, driver or user cannot have that value".
UNAVAILABLE = frozenset(
    {
        pynvml.NVML_ERROR_NOT_SUPPORTED,
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        pynvml.NVML_ERROR_NO_PERMISSION,
        pynvml.NVML_ERROR_INVALID_ARGUMENT,
    }
)


@dataclass(frozen=True)
class MemoryInfo:
    """``nvmlDeviceGetMemoryInfo``: MiB. With the v2 call ``used`` excludes the driver's
    reserve (``reserved``), as nvitop and dcgm-exporter's ``FB_USED`` count it; with v1 (older
    drivers) ``reserved`` is ``None`` and counts as used."""

    total_mib: int
    used_mib: int
    free_mib: int
    reserved_mib: int | None


@dataclass(frozen=True)
class Bar1Info:
    """``nvmlDeviceGetBAR1MemoryInfo``: MiB."""

    total_mib: int
    used_mib: int


@dataclass(frozen=True)
class UtilizationRates:
    """``nvmlDeviceGetUtilizationRates``: percent of the last sample period the GPU was busy
    (``gpu``) and its memory controller was (``memory``). Whole GPUs outside MIG mode only."""

    gpu_pct: float
    memory_pct: float


@dataclass(frozen=True)
class Unavailable:
    """A value NVML does not give here, and why (shown instead of a number)."""

    reason: str


@dataclass(frozen=True)
class GpuTelemetry:
    """One GPU's sensors, as ``nvidia-smi -q`` shows them; ``None``: NVML does not say."""

    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    energy_mj: int | None
    """Total energy since the driver loaded (millijoules)."""
    sm_clock_mhz: int | None
    memory_clock_mhz: int | None
    encoder_pct: int | None
    decoder_pct: int | None
    memory: MemoryInfo | None


def _maybe(nvml: Nvml, fn: Callable[..., T], *args: Any) -> T | None:
    try:
        return nvml.read(fn, *args)
    except pynvml.NVMLError as exc:
        if exc.value in UNAVAILABLE:
            return None
        raise


def memory_info(nvml: Nvml, handle: Handle) -> MemoryInfo | None:
    """Memory of a GPU or MIG device handle (v2 where the driver has it, else v1)."""
    try:
        mem = nvml.read(nvml.lib.nvmlDeviceGetMemoryInfo, handle, pynvml.nvmlMemory_v2)
        reserved: int | None = int(mem.reserved) // MIB
    except pynvml.NVMLError as exc:
        if exc.value not in UNAVAILABLE | {pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH}:
            raise
        mem = _maybe(nvml, nvml.lib.nvmlDeviceGetMemoryInfo, handle)
        if mem is None:
            return None
        reserved = None
    return MemoryInfo(int(mem.total) // MIB, int(mem.used) // MIB, int(mem.free) // MIB, reserved)


def bar1_info(nvml: Nvml, handle: Handle) -> Bar1Info | None:
    """BAR1 of a GPU or MIG device handle (nvidia-smi "BAR1 Memory Usage")."""
    bar1 = _maybe(nvml, nvml.lib.nvmlDeviceGetBAR1MemoryInfo, handle)
    if bar1 is None:
        return None
    return Bar1Info(int(bar1.bar1Total) // MIB, int(bar1.bar1Used) // MIB)


def utilization_rates(nvml: Nvml, handle: Handle, *, mig_enabled: bool) -> UtilizationRates | Unavailable:
    """A whole GPU's utilization; in MIG mode NVML has none (per instance: GPM)."""
    try:
        rates = nvml.read(nvml.lib.nvmlDeviceGetUtilizationRates, handle)
    except pynvml.NVMLError as exc:
        if exc.value not in UNAVAILABLE:
            raise
        if mig_enabled:
            return Unavailable("NVML gives no utilization rate in MIG mode")
        return Unavailable(f"NVML gives no utilization rate on this GPU ({exc})")
    return UtilizationRates(float(rates.gpu), float(rates.memory))


def gpu_telemetry(nvml: Nvml, handle: Handle) -> GpuTelemetry:
    """Temperature, power, energy, clocks, codec utilization and memory of a physical GPU."""
    lib = nvml.lib
    power = _maybe(nvml, lib.nvmlDeviceGetPowerUsage, handle)
    limit = _maybe(nvml, lib.nvmlDeviceGetEnforcedPowerLimit, handle)
    enc = _maybe(nvml, lib.nvmlDeviceGetEncoderUtilization, handle)
    dec = _maybe(nvml, lib.nvmlDeviceGetDecoderUtilization, handle)
    temp = _maybe(nvml, lib.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
    energy = _maybe(nvml, lib.nvmlDeviceGetTotalEnergyConsumption, handle)
    sm_clock = _maybe(nvml, lib.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM)
    mem_clock = _maybe(nvml, lib.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM)
    return GpuTelemetry(
        temperature_c=None if temp is None else int(temp),
        power_w=None if power is None else int(power) / 1000,
        power_limit_w=None if limit is None else int(limit) / 1000,
        energy_mj=None if energy is None else int(energy),
        sm_clock_mhz=None if sm_clock is None else int(sm_clock),
        memory_clock_mhz=None if mem_clock is None else int(mem_clock),
        encoder_pct=None if enc is None else int(enc[0]),
        decoder_pct=None if dec is None else int(dec[0]),
        memory=memory_info(nvml, handle),
    )
