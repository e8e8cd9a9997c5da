"""The :class:`~migctl.device.platform.Platform` of a real GPU server.

Every outside program runs as an argv list with a timeout; only its exit status is used,
except ``nv-fabricmanager --version``, whose version number is read (nvidia-smi's text is
never parsed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from migctl.device.platform import CudaCheck, FabricManager, Platform
from migctl.errors import DriverError

FM_SERVICE = "nvidia-fabricmanager"
FM_TIMEOUT_S = 5.0
RESET_TIMEOUT_S = 300.0


class CudaRegistersItself:
    """On hardware CUDA registers a process with the driver when it creates its context."""

    def register(self, uuid: str, pid: int) -> bool:
        return False


class SystemdFabricManager:
    def start_hint(self, driver_version: str) -> str:
        return f"sudo systemctl enable --now {FM_SERVICE} (its version must be the driver's, {driver_version})"

    def state(self) -> FabricManager:
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


class NvidiaSmiReset:
    """``nvidia-smi --gpu-reset -i <bus id>``; its exit status decides."""

    def reset(self, index: int, bus_id: str) -> None:
        exe = shutil.which("nvidia-smi")
        if exe is None:
            raise DriverError("nvidia-smi not found; it is needed for a GPU reset (part of the NVIDIA driver)")
        try:
            result = subprocess.run(
                [exe, "--gpu-reset", "-i", bus_id], capture_output=True, text=True, timeout=RESET_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise DriverError(f"GPU {index} reset did not finish within {RESET_TIMEOUT_S:g} s") from None
        if result.returncode != 0:
            raise DriverError(
                f"GPU {index} reset failed (nvidia-smi exit {result.returncode})",
                hint="stop every process using the GPU (including nvidia-persistenced, DCGM, monitoring agents) "
                "and on NVSwitch systems make sure nvidia-fabricmanager is running, then retry",
                output=(result.stderr or result.stdout).strip()[-500:],
            )


class RealCuda:
    """PyTorch's matmul on ``cuda:0`` when a CUDA build of PyTorch is installed, else ``cuInit``
    through libcuda (a CPU-only PyTorch says nothing about the GPU; doctor reports it apart)."""

    def check(self, uuid: str) -> CudaCheck:
        from migctl.torchcheck import torch_build

        build = torch_build()
        if build is not None and not build.cpu_only:
            return _torch(uuid)
        return _libcuda(uuid)


def _torch(uuid: str) -> CudaCheck:
    import torch  # type: ignore[import-not-found, unused-ignore]

    try:
        count = torch.cuda.device_count()
        if count != 1:
            return CudaCheck(False, f"torch sees {count} CUDA devices, expected exactly 1 ({uuid})")
        a = torch.randn(1024, 1024, device="cuda:0")
        value = float((a @ a).sum().item())
        torch.cuda.synchronize()
        name = torch.cuda.get_device_name(0)
    except Exception as exc:
        return CudaCheck(False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    return CudaCheck(True, f"torch {torch.__version__} multiplied 1024x1024 on cuda:0 = {name} (sum {value:.3g})")


def _libcuda(uuid: str) -> CudaCheck:
    path = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        cuda = ctypes.CDLL(path)
    except OSError:
        return CudaCheck(False, "libcuda.so.1 not found: the NVIDIA driver's CUDA library is not installed")
    rc = cuda.cuInit(0)
    if rc != 0:
        return CudaCheck(False, f"{_cu_error(cuda, rc)} (cuInit)", rc)
    count = ctypes.c_int(0)
    rc = cuda.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value != 1:
        return CudaCheck(False, f"CUDA sees {count.value} devices (error {rc}), expected exactly 1 ({uuid})")
    raw = (ctypes.c_ubyte * 16)()
    getter = getattr(cuda, "cuDeviceGetUuid_v2", None)
    if getter is not None and getter(raw, 0) == 0:
        hexed = bytes(raw).hex()
        seen = f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"
        if seen.lower() != uuid.lower().removeprefix("mig-"):
            return CudaCheck(False, f"CUDA device 0 is MIG-{seen}, expected {uuid}")
    return CudaCheck(True, f"CUDA initialised and sees exactly {uuid} (PyTorch not installed: no matmul)")


def _cu_error(cuda: Any, rc: int) -> str:
    text = ctypes.c_char_p()
    try:
        if cuda.cuGetErrorString(rc, ctypes.byref(text)) == 0 and text.value:
            return str(text.value.decode())
    except AttributeError:
        pass
    return "unknown"


def hardware_platform() -> Platform:
    return Platform(
        description="NVIDIA driver",
        simulated=False,
        processes=CudaRegistersItself(),
        fabric_manager=SystemdFabricManager(),
        resetter=NvidiaSmiReset(),
        cuda=RealCuda(),
        child_env={},
        driver_root=Path("/"),
    )
