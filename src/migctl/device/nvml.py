"""The NVML boundary: the real ``pynvml`` module, or the simulator, behind one small wrapper.

No module outside :mod:`migctl.device` calls NVML. :class:`Nvml` adds the two policies every
call needs: queries that fail transiently (the seed's "if ``-lgip`` fails, run it a few more
times") are retried with a bounded backoff; calls that change the GPU are never retried
blindly, because a retry after an unseen success would create a second instance.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pynvml

from migctl.errors import DriverError, UsageError, from_nvml

TRANSIENT = frozenset({pynvml.NVML_ERROR_UNKNOWN, pynvml.NVML_ERROR_TIMEOUT, pynvml.NVML_ERROR_NOT_READY})
READ_ATTEMPTS = 4
BACKOFF_S = (0.05, 0.1, 0.2)

NO_DRIVER = (
    "no NVIDIA driver found (NVML could not be loaded); to try migctl without a GPU, "
    "run it on the simulator: migctl --sim h20x8 status"
)


class Nvml:
    """One NVML session: ``lib`` is ``pynvml`` or a :class:`migctl.sim.SimNvml`."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        self.is_simulator = bool(getattr(lib, "is_simulator", False))

    def read(self, fn: str, *args: Any) -> Any:
        """Call a query, retrying transient failures (at most 4 attempts, 0.35 s in all)."""
        func = getattr(self.lib, fn)
        for attempt in range(READ_ATTEMPTS):
            try:
                return func(*args)
            except pynvml.NVMLError as exc:
                if exc.value not in TRANSIENT or attempt == READ_ATTEMPTS - 1:
                    raise
                time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
        raise AssertionError("unreachable")

    def write(self, fn: str, *args: Any) -> Any:
        """Call something that changes the GPU: exactly once."""
        return getattr(self.lib, fn)(*args)

    def shutdown(self) -> None:
        if not self.is_simulator:
            try:
                self.lib.nvmlShutdown()
            except pynvml.NVMLError:
                pass


def open_nvml(sim: str | None = None, state_dir: str | None = None) -> Nvml:
    """The simulator if ``sim`` (or ``MIGCTL_SIM``) names one, else the real driver.

    Never falls back to the simulator: without a driver and without ``--sim`` this raises
    :class:`DriverError` saying how to try the simulator.
    """
    spec = sim if sim is not None else os.environ.get("MIGCTL_SIM") or None
    if spec:
        from migctl import sim as simulator

        try:
            return Nvml(simulator.open(spec, state_dir))
        except simulator.SimSpecError as exc:
            raise UsageError(str(exc)) from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        if exc.value in (
            pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
            pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
            pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        ):
            raise DriverError(NO_DRIVER, nvml_code=int(exc.value)) from None
        raise from_nvml(exc, "initialising NVML") from None
    except OSError:
        raise DriverError(NO_DRIVER) from None
    return Nvml(pynvml)
