"""What every part of the simulated NVML shares: the ``@nvml`` marker and handle lookups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pynvml

from migctl.sim import engine
from migctl.sim import handles as h
from migctl.sim.catalog import ModelSpec
from migctl.sim.node import SimNode

F = TypeVar("F", bound=Callable[..., Any])

# Human text for codes pynvml would fetch from the library with nvmlErrorString (as nvidia-smi prints).
ERROR_STRINGS = {
    pynvml.NVML_ERROR_IN_USE: "In use by another client",
    pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES: "Insufficient Resources",
    pynvml.NVML_ERROR_NO_DATA: "No data",
    pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH: "Argument version mismatch",
    pynvml.NVML_ERROR_NOT_READY: "System is not ready",
    pynvml.NVML_ERROR_INVALID_STATE: "Invalid state",
    pynvml.NVML_ERROR_GPU_NOT_FOUND: "GPU not found",
    pynvml.NVML_ERROR_DEPRECATED: "Deprecated",
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    pynvml.NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    pynvml.NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    pynvml.NVML_ERROR_NOT_FOUND: "Not Found",
    pynvml.NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    pynvml.NVML_ERROR_UNINITIALIZED: "Uninitialized",
    pynvml.NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    pynvml.NVML_ERROR_UNKNOWN: "Unknown Error",
    pynvml.NVML_ERROR_TIMEOUT: "Timeout",
}
for _code, _text in ERROR_STRINGS.items():
    # pynvml caches nvmlErrorString results in this table; without a driver it would print
    # "NVML Error with code 23". Seeding it gives the simulator's errors the driver's words.
    pynvml.NVMLError._errcode_to_string.setdefault(_code, _text)

MIB = 1024 * 1024


def nvml(fn: F) -> F:
    """Marks an NVML function of the facade: applies injected faults before it runs."""
    name = fn.__name__

    def wrapper(self: SimBase, *args: Any, **kwargs: Any) -> Any:
        gpu = None
        if args:
            try:
                gpu = h.decode(args[0])[1]
            except pynvml.NVMLError:
                gpu = args[0] if isinstance(args[0], int) and name == "nvmlDeviceGetHandleByIndex" else None
        self._sim.check_fault(name, gpu)
        return fn(self, *args, **kwargs)

    wrapper.__name__ = name
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    wrapper._is_nvml = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class SimBase:
    """Handle lookups shared by the parts of :class:`migctl.sim.nvml.SimNvml`."""

    def __init__(self, node: SimNode) -> None:
        self._sim = node

    def _model(self, index: int) -> ModelSpec:
        return self._sim.model(index)

    def _gpu(self, index: int) -> dict[str, Any]:
        return self._sim.gpu(index)

    def _expect(self, handle: Any, *kinds: int) -> tuple[int, int, int, int]:
        decoded = h.decode(handle)
        if decoded[0] not in kinds or not 0 <= decoded[1] < self._sim.count():
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return decoded

    def _gi_of(self, gpu: dict[str, Any], gi_id: int) -> dict[str, Any]:
        gi = engine.find_gi(gpu, gi_id)
        if gi is None:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gi

    def _ci_of(self, gi: dict[str, Any], ci_id: int) -> dict[str, Any]:
        ci = next((c for c in gi["cis"] if c["id"] == ci_id), None)
        if ci is None:
            raise h.fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return ci

    def _mig_target(self, handle: Any) -> tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]:
        _, index, gi_id, ci_id = self._expect(handle, h.KIND_MIG)
        gpu = self._gpu(index)
        gi = self._gi_of(gpu, gi_id)
        return index, gpu, gi, self._ci_of(gi, ci_id)

    def _whole_gpu(self, handle: Any) -> int:
        """The index of a physical GPU handle; NOT_SUPPORTED on a MIG device (GPU-wide data)."""
        kind, index, _, _ = self._expect(handle, h.KIND_GPU, h.KIND_MIG)
        if kind == h.KIND_MIG:
            self._mig_target(handle)
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return index

    def _mig_capable(self, index: int) -> ModelSpec:
        model = self._model(index)
        if not model.mig_capable:
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return model

    def _mig_enabled_gpu(self, index: int) -> tuple[ModelSpec, dict[str, Any]]:
        model = self._mig_capable(index)
        gpu = self._gpu(index)
        if gpu["mig"]["current"] != pynvml.NVML_DEVICE_MIG_ENABLE:
            raise h.fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return model, gpu
