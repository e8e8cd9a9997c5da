"""One collection round for the live front ends (``top``, the exporter), as a typed record.

An :class:`Observer` lives as long as its front end: it keeps the utilization sampler (so each
round measures GPM over the time since the previous one) and what never changes (host name,
driver version). Each :meth:`Observer.collect` reads the status with utilization, every GPU's
sensors, migctl's leases and the last apply, and returns an
:class:`~migctl.records.observe.Observation`. It takes no lock, like ``status``.

>>> observer = Observer(node, node.gpus)                 # doctest: +SKIP
>>> observation = observer.collect()                     # doctest: +SKIP
>>> observation.status.gpus[0].gpu_instances[0].utilization   # doctest: +SKIP
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

from migctl.device import Gpu, Node
from migctl.device.system import driver_version
from migctl.device.telemetry import gpu_telemetry
from migctl.ops import history
from migctl.ops.inspect import status
from migctl.ops.leases import holder_records
from migctl.ops.utilization import UtilizationSampler
from migctl.records.inspect import DeviceMemory
from migctl.records.observe import GpuTelemetryRecord, Observation


def telemetry_record(gpu: Gpu) -> GpuTelemetryRecord:
    t = gpu_telemetry(gpu.nvml, gpu.handle)
    mem = t.memory
    return GpuTelemetryRecord(
        index=gpu.index,
        temperature_c=t.temperature_c,
        power_w=t.power_w,
        power_limit_w=t.power_limit_w,
        energy_mj=t.energy_mj,
        sm_clock_mhz=t.sm_clock_mhz,
        memory_clock_mhz=t.memory_clock_mhz,
        encoder_pct=t.encoder_pct,
        decoder_pct=t.decoder_pct,
        memory=None if mem is None else DeviceMemory(mem.total_mib, mem.used_mib, mem.free_mib, mem.reserved_mib),
    )


class Observer:
    """Collects :class:`Observation` rounds over one NVML session (one thread at a time)."""

    def __init__(self, node: Node, gpus: Sequence[Gpu] | None = None, *, hostname: str | None = None) -> None:
        self.node = node
        self.gpus = list(node.gpus if gpus is None else gpus)
        self.sampler = UtilizationSampler(node)
        self.hostname = hostname or socket.gethostname()
        self.driver_version = driver_version(node.nvml)

    def prime(self) -> None:
        """Start the first utilization window now (the next :meth:`collect` measures it)."""
        self.sampler.prime(self.gpus)

    def collect(self) -> Observation:
        taken = time.time()
        started = time.perf_counter()
        report = status(self.node, self.gpus, holder_records(), sampler=self.sampler)
        telemetry = tuple(telemetry_record(g) for g in self.gpus)
        return Observation(
            taken=taken,
            duration_s=round(time.perf_counter() - started, 6),
            hostname=self.hostname,
            driver_version=self.driver_version,
            status=report,
            telemetry=telemetry,
            last_apply=history.last_apply(),
        )

    def close(self) -> None:
        self.sampler.close()
