"""Processes on MIG devices: registering the ones migctl starts, and who else is there.

On real hardware CUDA registers a process with the driver when it creates its context on the
MIG device, and NVML then lists it (``nvidia-smi`` "Processes"); migctl has nothing to do.
On a simulated node there is no CUDA, so the platform's registrar records the child on the MIG
device itself (:class:`~migctl.device.platform.ProcessRegistrar`), and the record lives
exactly as long as the process: ``destroy``, ``apply`` and ``mode`` then see the instance in
use, as they would on hardware. This module does not know which of the two it has.

>>> registry = ProcessRegistry(node.nvml)              # doctest: +SKIP
>>> registry.register("MIG-1b24da31-...", child_pid)   # doctest: +SKIP   (no-op on hardware)
>>> registry.pids_on("MIG-1b24da31-...")               # doctest: +SKIP
[4242]

A launcher that starts many children (``migctl batch``) registers them in the background
(``background=True``): a simulated registration is a durable write of the GPU's state (a few
ms), which must not delay the next launch. The record then appears a moment after the child
starts, as it does on hardware (CUDA registers a process when it creates its context).
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

import pynvml

from migctl.device.nvml import Nvml
from migctl.device.platform import CUDA_ERROR_NO_DEVICE, CUDA_ERROR_SYSTEM_NOT_READY

__all__ = ["CUDA_ERROR_NO_DEVICE", "CUDA_ERROR_SYSTEM_NOT_READY", "ProcessRegistry"]


class ProcessRegistry:
    """Per-MIG-device process bookkeeping over one NVML session (handles are cached)."""

    def __init__(self, nvml: Nvml, *, background: bool = False) -> None:
        self.nvml = nvml
        self.background = background
        self._handles: dict[str, Any] = {}
        self._queue: queue.Queue[tuple[str, int, Callable[[], bool] | None] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.errors: list[str] = []

    def handle(self, uuid: str) -> Any:
        found = self._handles.get(uuid)
        if found is None:
            found = self.nvml.read(self.nvml.lib.nvmlDeviceGetHandleByUUID, uuid)
            self._handles[uuid] = found
        return found

    def register(self, uuid: str, pid: int, *, alive: Callable[[], bool] | None = None) -> bool:
        """Make ``pid`` a compute process on MIG device ``uuid``, as CUDA would.

        The platform's registrar does it: a record on a simulated node, nothing on hardware
        (CUDA registers the process itself when it starts). Returns whether a record was made
        (or, in the background, queued). A process that is already gone is not an error (a
        child may finish at once); ``alive`` lets a background registration skip a child that
        the launcher has reaped meanwhile.
        """
        if self.background:
            self._start_worker()
            self._queue.put((uuid, int(pid), alive))
            return True
        return self._attach(uuid, int(pid))

    def _attach(self, uuid: str, pid: int) -> bool:
        # Bookkeeping, never a reason to abandon a started child.
        try:
            return self.nvml.platform.processes.register(uuid, pid)
        except pynvml.NVMLError as exc:
            self.errors.append(f"registering pid {pid}: {exc}")
            return False

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="migctl-registry", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        # Launchers collect their signals with sigtimedwait in the main thread; this thread
        # must never take one (a SIGCHLD taken here would be lost to them).
        signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                uuid, pid, alive = item
                if alive is None or alive():
                    self._attach(uuid, pid)
            except Exception as exc:  # a failed record must not end the registrations after it
                self.errors.append(f"registering pid {item[1] if item else '?'}: {exc}")
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every queued registration is done."""
        if self._worker is not None:
            self._queue.join()

    def close(self) -> None:
        """Finish the queued registrations and stop the background thread."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None

    def child_env(self) -> dict[str, str]:
        """Variables a child needs to open the same node (empty on hardware; the platform's)."""
        return dict(self.nvml.platform.child_env)

    def pids_on(self, uuid: str) -> list[int]:
        """Compute processes NVML reports on MIG device ``uuid`` now (one NVML call)."""
        try:
            procs = self.nvml.read(self.nvml.lib.nvmlDeviceGetComputeRunningProcesses, self.handle(uuid))
        except pynvml.NVMLError as exc:
            if exc.value in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_NO_PERMISSION):
                return []
            raise
        return [int(p.pid) for p in procs]
