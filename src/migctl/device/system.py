"""The node around the GPUs: driver version, NVSwitch, and the fabric manager.

On HGX boards (8 GPUs joined by NVSwitch: A100/H100/H20/H200/B200 SXM) CUDA does not start
unless ``nvidia-fabricmanager`` runs with the driver's exact version; it fails with error 802
"system not yet initialized". These helpers tell whether a GPU needs it and what state it is
in. On real hardware the service is asked through ``systemctl is-active`` and
``nv-fabricmanager --version``, each run as an argv list with a timeout (nvidia-smi's text is
never parsed); on the simulator through its ``simFabricManager``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynvml

from migctl.device.gpu import Gpu
from migctl.device.nvml import Nvml

FM_SERVICE = "nvidia-fabricmanager"
FM_TIMEOUT_S = 5.0


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def driver_version(nvml: Nvml) -> str:
    """``nvidia-smi`` "Driver Version", e.g. ``570.172.08``."""
    return _text(nvml.read("nvmlSystemGetDriverVersion"))


def cuda_driver_version(nvml: Nvml) -> str | None:
    """The CUDA version the driver supports (``12.8``), or ``None`` if NVML cannot say."""
    try:
        v = int(nvml.read("nvmlSystemGetCudaDriverVersion"))
    except pynvml.NVMLError:
        return None
    return f"{v // 1000}.{(v % 1000) // 10}"


def needs_fabric_manager(gpu: Gpu) -> bool:
    """Whether the GPU's NVLinks go to NVSwitches (so CUDA needs the fabric manager)."""
    if gpu.nvml.is_simulator:
        return bool(gpu.nvml.read("simNeedsFabricManager", gpu.handle))
    for link in range(int(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18))):
        try:
            kind = gpu.nvml.read("nvmlDeviceGetNvLinkRemoteDeviceType", gpu.handle, link)
        except pynvml.NVMLError:
            continue
        except AttributeError:  # an nvidia-ml-py without the call
            break
        if int(kind) == int(getattr(pynvml, "NVML_NVLINK_DEVICE_TYPE_SWITCH", 2)):
            return True
    # NVLink state can be unreadable with MIG enabled; the NVSwitch driver's devices still show.
    devices = Path("/proc/driver/nvidia-nvswitch/devices")
    return devices.is_dir() and any(devices.iterdir())


@dataclass(frozen=True)
class FabricManager:
    """The fabric manager service: ``active`` is ``None`` when it could not be determined."""

    active: bool | None
    version: str | None
    detail: str = ""


def fabric_manager(nvml: Nvml) -> FabricManager:
    if nvml.is_simulator:
        state = nvml.read("simFabricManager")
        return FabricManager(bool(state["active"]), str(state["version"]), "simulated")
    version, detail = _fm_version()
    return FabricManager(_service_active(), version, detail)


def _service_active() -> bool | None:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return None
    try:
        out = subprocess.run(
            [systemctl, "is-active", FM_SERVICE], capture_output=True, text=True, timeout=FM_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() == "active"


def _fm_version() -> tuple[str | None, str]:
    exe = shutil.which("nv-fabricmanager", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/usr/sbin"]))
    if exe is None:
        return None, "nv-fabricmanager is not installed"
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=FM_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nv-fabricmanager --version failed: {exc}"
    m = re.search(r"\d+\.\d+(?:\.\d+)?", out.stdout + out.stderr)
    return (m[0] if m else None), ""
