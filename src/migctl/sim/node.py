"""One open simulated node: its files, injected faults and latency, shared by the NVML facade
(:class:`migctl.sim.nvml.SimNvml`) and the control plane (:class:`migctl.sim.control.SimControl`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pynvml

from migctl.sim.catalog import ModelSpec
from migctl.sim.catalog import model as catalog_model
from migctl.sim.driverfiles import DriverFiles
from migctl.sim.faults import REALISTIC_S, Faults
from migctl.sim.handles import fail
from migctl.sim.state import Store


class SimNode:
    """The state directory of a simulated node, read through a small per-process cache."""

    def __init__(self, store: Store, faults: Faults, latency_scale: float) -> None:
        self.store = store
        self.faults = faults
        self.latency = latency_scale
        self.files = DriverFiles(store.root / "root")
        self._models: dict[int, ModelSpec] = {}
        self._gpu_count: int | None = None
        self.lock = threading.Lock()
        self.started = time.time()

    @property
    def state_dir(self) -> str:
        """The ``sim`` folder inside the state directory."""
        return str(self.store.root)

    def node(self) -> dict[str, Any]:
        data: dict[str, Any] = self.store.read("node")
        return data

    def spec(self) -> str:
        return str(self.node()["spec"])

    def count(self) -> int:
        # A node's GPUs never change while it exists (a different spec needs sim reset).
        if self._gpu_count is None:
            self._gpu_count = len(self.node()["models"])
        return self._gpu_count

    def model(self, index: int) -> ModelSpec:
        found = self._models.get(index)
        if found is None:
            found = catalog_model(self.node()["models"][index])
            self._models[index] = found
        return found

    def gpu(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.count():
            raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        data: dict[str, Any] = self.store.read(f"gpu-{index}")
        return data

    def sleep(self, what: str) -> None:
        if self.latency:
            time.sleep(REALISTIC_S.get(what, 0.0) * self.latency)

    def check_fault(self, fn: str, gpu: int | None) -> None:
        code = self.faults.check(fn, gpu)
        if code is not None:
            raise pynvml.NVMLError(code)
