"""The node around the GPUs: driver version, NVSwitch, and the fabric manager.

On HGX boards (8 GPUs joined by NVSwitch: A100/H100/H20/H200/B200 SXM) CUDA does not start
unless ``nvidia-fabricmanager`` runs with the driver's exact version; it fails with error 802
"system not yet initialized". Whether a GPU sits on NVSwitch is NVML's answer
(``nvmlDeviceGetNvLinkRemoteDeviceType``), or the NVSwitch driver's device list under the
platform's driver root; the service's state is the platform's
(:class:`~migctl.device.platform.FabricManagerService`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pynvml

from migctl.device.nvml import Nvml, NvmlLib
from migctl.device.platform import FabricManager

if TYPE_CHECKING:
    from migctl.device.gpu import Gpu

__all__ = ["FabricManager", "cuda_driver_version", "driver_version", "fabric_manager", "needs_fabric_manager"]

NVSWITCH_DEVICES = "proc/driver/nvidia-nvswitch/devices"
NVLINK_MAX_LINKS = int(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18))
NVLINK_SWITCH = int(getattr(pynvml, "NVML_NVLINK_DEVICE_TYPE_SWITCH", 2))


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def driver_version(nvml: Nvml) -> str:
    """``nvidia-smi`` "Driver Version", e.g. ``570.172.08``."""
    return _text(nvml.read(nvml.lib.nvmlSystemGetDriverVersion))


def cuda_driver_version(nvml: Nvml) -> str | None:
    """The CUDA version the driver supports (``12.8``), or ``None`` if NVML cannot say."""
    try:
        v = int(nvml.read(nvml.lib.nvmlSystemGetCudaDriverVersion))
    except pynvml.NVMLError:
        return None
    return f"{v // 1000}.{(v % 1000) // 10}"


def remote_is_nvswitch(lib: NvmlLib, handle: Any) -> bool:
    """Whether any of the GPU's NVLinks goes to an NVSwitch (NVML's answer)."""
    for link in range(NVLINK_MAX_LINKS):
        try:
            kind = lib.nvmlDeviceGetNvLinkRemoteDeviceType(handle, link)
        except pynvml.NVMLError as exc:
            if exc.value in (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND):
                return False  # no NVLink at all (or a driver without the call)
            continue  # this link is not there or not up
        if int(kind) == NVLINK_SWITCH:
            return True
    return False


def needs_fabric_manager(gpu: Gpu) -> bool:
    """Whether the GPU's NVLinks go to NVSwitches (so CUDA needs the fabric manager)."""
    if remote_is_nvswitch(gpu.nvml.lib, gpu.handle):
        return True
    # NVLink state can be unreadable with MIG enabled; the NVSwitch driver's devices still show.
    devices = gpu.nvml.platform.driver_root / NVSWITCH_DEVICES
    return devices.is_dir() and any(devices.iterdir())


def fabric_manager(nvml: Nvml) -> FabricManager:
    """The fabric manager service's state, as the platform reads it."""
    return nvml.platform.fabric_manager.state()
