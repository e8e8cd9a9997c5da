"""A simulated NVML with the shape of the ``pynvml`` module.

:class:`SimNvml` offers ``nvml*`` functions with pynvml's names and parameters, pynvml's own
ctypes structs and constants, and pynvml's ``NVMLError`` subclasses. Handles are genuine
``pynvml`` handle types (``c_nvmlDevice_t`` and friends) whose pointer value encodes what they
point at (:mod:`migctl.sim.handles`). Anything that is not an NVML function (constants, structs,
error classes) is looked up on ``pynvml`` itself.

The functions live in one part per area: devices and memory (:mod:`.nvml_devices`), MIG
(:mod:`.nvml_instances`), telemetry (:mod:`.nvml_telemetry`), GPM (:mod:`.nvml_gpm`).

Like pynvml with a driver that lacks a symbol, a pynvml function the simulator does not model
raises ``NVMLError_FunctionNotFound`` when called (never ``AttributeError``), and the C-symbol
lookups tools make through ``_nvmlGetFunctionPointer`` are answered by the simulator's own
library (:mod:`migctl.sim.clib`), never by a real ``libnvidia-ml``.

Traps of the real library are kept, because code proven here must work there:
``nvmlDeviceIsMigDeviceHandle`` returns a ``c_uint``; ``...WithPlacement`` calls need the
placement passed with ``ctypes.byref`` (a bare struct is INVALID_ARGUMENT here, garbage on
hardware); possible-placement and instance arrays are caller-allocated.

What happens outside NVML (GPU reset, driver reload, processes, the fabric manager) is the
control plane's, :class:`migctl.sim.control.SimControl`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pynvml

from migctl.sim.node import SimNode
from migctl.sim.nvml_devices import DeviceQueries
from migctl.sim.nvml_gpm import GpmCalls
from migctl.sim.nvml_instances import InstanceCalls
from migctl.sim.nvml_telemetry import TelemetryQueries


def _not_modelled(name: str) -> Callable[..., Any]:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    missing.__name__ = name
    missing.__doc__ = f"{name} is not modelled by the MIG simulator: NVMLError_FunctionNotFound."
    return missing


class SimNvml(DeviceQueries, InstanceCalls, TelemetryQueries, GpmCalls):
    """The simulated node's NVML. Create it with :func:`migctl.sim.open`."""

    def __init__(self, node: SimNode) -> None:
        super().__init__(node)
        self._library: Any = None

    def __getattr__(self, name: str) -> Any:
        value = getattr(pynvml, name)  # constants, structs, error classes; AttributeError if none
        if callable(value) and name.startswith("nvml") and not isinstance(value, type):
            return _not_modelled(name)
        return value

    @property
    def state_dir(self) -> str:
        """The ``sim`` folder of the state directory this node lives in."""
        return self._sim.state_dir

    @property
    def library(self) -> Any:
        """The C-level library (symbol -> function) that answers ``_nvmlGetFunctionPointer``."""
        if self._library is None:
            from migctl.sim.clib import SimLibrary

            self._library = SimLibrary(self)
        return self._library

    def _nvmlGetFunctionPointer(self, name: str) -> Any:
        """pynvml's symbol lookup, answered by the simulator: FunctionNotFound when not modelled."""
        try:
            return getattr(self.library, name)
        except AttributeError:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND) from None


def nvml_functions(obj: object) -> list[str]:
    """The NVML function names a simulator object models (for the contract test)."""
    return sorted(n for n in dir(type(obj)) if getattr(getattr(type(obj), n), "_is_nvml", False))
