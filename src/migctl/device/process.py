"""Processes on MIG devices: registering the ones migctl starts, and who else is there.

On real hardware CUDA registers a process with the driver when it creates its context on the
MIG device, and NVML then lists it (``nvidia-smi`` "Processes"); migctl has nothing to do.
The simulator has no CUDA, so a launcher registers its child itself (``simAttachProcess`` on
the MIG handle) and the record lives exactly as long as the process: ``destroy``, ``apply`` and
``mode`` then see the instance in use, as they would on hardware.

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

import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml

from migctl.device.nvml import Nvml, open_nvml

#: What CUDA reports when the fabric manager of an NVSwitch system is down or mismatched.
CUDA_ERROR_SYSTEM_NOT_READY = 802
CUDA_ERROR_NO_DEVICE = 100


class ProcessRegistry:
    """Per-MIG-device process bookkeeping over one NVML session (handles are cached)."""

    def __init__(self, nvml: Nvml, *, background: bool = False) -> None:
        self.nvml = nvml
        self.background = background
        self._handles: dict[str, Any] = {}
        self._queue: queue.Queue[tuple[Any, int, Callable[[], bool] | None] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.errors: list[str] = []

    @property
    def simulated(self) -> bool:
        return self.nvml.is_simulator

    def handle(self, uuid: str) -> Any:
        found = self._handles.get(uuid)
        if found is None:
            found = self.nvml.read("nvmlDeviceGetHandleByUUID", uuid)
            self._handles[uuid] = found
        return found

    def register(self, uuid: str, pid: int, *, alive: Callable[[], bool] | None = None) -> bool:
        """Record ``pid`` as a compute process on MIG device ``uuid``, as CUDA would.

        On the simulator this is ``simAttachProcess``; on real hardware it does nothing (CUDA
        registers the process itself when it starts). Returns whether a record was made (or,
        in the background, queued). A process that is already gone is not an error (a child
        may finish at once); ``alive`` lets a background registration skip a child that the
        launcher has reaped meanwhile.
        """
        if not self.simulated:
            return False
        handle = self.handle(uuid)
        if self.background:
            self._start_worker()
            self._queue.put((handle, int(pid), alive))
            return True
        return self._attach(handle, int(pid))

    def _attach(self, handle: Any, pid: int) -> bool:
        # Bookkeeping, never a reason to abandon a started child: a process already gone
        # (NOT_FOUND) or a device destroyed meanwhile (INVALID_ARGUMENT) just is not recorded.
        try:
            self.nvml.write("simAttachProcess", handle, pid, 0)
        except pynvml.NVMLError as exc:
            if exc.value not in (pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_ERROR_INVALID_ARGUMENT):
                self.errors.append(f"registering pid {pid}: {exc}")
            return False
        return True

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
                handle, pid, alive = item
                if alive is None or alive():
                    self._attach(handle, pid)
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
        """Variables a child needs to open the same node (the simulator's spec and state directory).

        Empty on real hardware. On the simulator the node may have been opened with ``sim=``
        rather than ``MIGCTL_SIM``; a child (``migctl.use()`` in it, or the doctor's smoke test)
        must see the same simulated node.
        """
        if not self.simulated:
            return {}
        root = Path(str(self.nvml.lib.state_dir))  # <state_dir>/sim
        try:
            spec = str(json.loads((root / "node.json").read_text())["spec"])
        except (OSError, ValueError, KeyError):
            return {"MIGCTL_STATE_DIR": str(root.parent)}
        return {"MIGCTL_SIM": spec, "MIGCTL_STATE_DIR": str(root.parent)}

    def pids_on(self, uuid: str) -> list[int]:
        """Compute processes NVML reports on MIG device ``uuid`` now (one NVML call)."""
        try:
            procs = self.nvml.read("nvmlDeviceGetComputeRunningProcesses", self.handle(uuid))
        except pynvml.NVMLError as exc:
            if exc.value in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_NO_PERMISSION):
                return []
            raise
        return [int(p.pid) for p in procs]


def simulated_cuda_init(uuid: str, pid: int | None = None, *, wait_registered_s: float = 3.0) -> tuple[int, str] | None:
    """What CUDA would say when a process with ``CUDA_VISIBLE_DEVICES=<uuid>`` starts, on the simulator.

    Returns ``None`` when CUDA would come up with exactly that MIG device and the process is
    registered on it, else ``(cuda_error_code, text)``:

    * the GPU sits on an NVSwitch board and the fabric manager is inactive, or its version is
      not the driver's: ``802`` "system not yet initialized" (cudaErrorSystemNotReady), as
      CUDA on an HGX node says;
    * no MIG device has that UUID (destroyed, or a typo): ``100`` "no CUDA-capable device is
      detected";
    * the process never appears on the device in NVML: ``999`` (the launcher did not register it).

    Only meaningful on the simulator (``MIGCTL_SIM``); the state directory comes from the
    environment the child inherited.
    """
    pid = os.getpid() if pid is None else pid
    nvml = open_nvml()
    if not nvml.is_simulator:
        raise RuntimeError("simulated_cuda_init needs the simulator (MIGCTL_SIM)")
    try:
        handle = nvml.read("nvmlDeviceGetHandleByUUID", uuid)
    except pynvml.NVMLError:
        return CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected (cudaErrorNoDevice)"
    is_mig = nvml.read("nvmlDeviceIsMigDeviceHandle", handle)
    if not int(getattr(is_mig, "value", is_mig)):  # pynvml returns the c_uint
        return CUDA_ERROR_NO_DEVICE, f"{uuid} is not a MIG device"
    parent = nvml.read("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle)
    if nvml.read("simNeedsFabricManager", parent):
        fm = nvml.read("simFabricManager")
        driver = str(nvml.read("nvmlSystemGetDriverVersion"))
        if not fm["active"] or fm["version"] != driver:
            return CUDA_ERROR_SYSTEM_NOT_READY, "system not yet initialized (cudaErrorSystemNotReady)"
    registry = ProcessRegistry(nvml)
    deadline = time.monotonic() + wait_registered_s
    while pid not in registry.pids_on(uuid):
        if time.monotonic() >= deadline:
            return 999, f"pid {pid} is not registered as a process on {uuid} (NVML does not list it)"
        time.sleep(0.02)
    return None
