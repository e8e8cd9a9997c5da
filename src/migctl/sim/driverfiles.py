"""The driver's files on a simulated node, under a root of its own (``<state>/sim/root``).

What the kernel module shows outside NVML, as Slurm and container runtimes read it:

* ``proc/driver/nvidia-caps/mig-minors``: the minor number of every MIG capability, exactly as
  ``nv-caps.c`` numbers them. One counter runs over the driver's tables in order: the NVLink
  table (``fabric-mgmt`` 0), the MIG table (``config 1``, ``monitor 2``), then for each of 32
  GPUs and each of 15 GPU instances ``gpu<m>/gi<g>/access`` followed by its 8
  ``gpu<m>/gi<g>/ci<c>/access``. So ``gpu<m>/gi<g>/access`` is ``3 + 135*m + 9*g`` and its
  ``ci<c>`` is one more plus ``c``. The file lists every entry whether or not the instance
  exists (it is a static table). Only ``config``, ``monitor`` and the ``gpu*`` lines appear in
  this file (the NVLink one is in ``nvlink-minors``).
* ``dev/nvidiactl``, ``dev/nvidia<m>`` (``m``: the GPU's minor number) and
  ``dev/nvidia-caps/nvidia-cap<n>`` for ``config``, ``monitor`` and each GPU or compute
  instance created so far (``nvidia-smi`` has ``nvidia-modprobe`` make them as instances are
  created; they stay until the driver reloads). Plain empty files stand in for device nodes.
* ``proc/driver/nvidia-nvswitch/devices/<bus id>`` on NVSwitch (HGX) nodes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from migctl.sim.state import atomic_write_text, ensure_private_dir

MIG_CONFIG_MINOR, MIG_MONITOR_MINOR = 1, 2
GPUS_IN_TABLE, GIS_PER_GPU, CIS_PER_GI = 32, 15, 8
_FIRST_GPU_MINOR = 3
_PER_GI = 1 + CIS_PER_GI
_PER_GPU = GIS_PER_GPU * _PER_GI
MIG_MINORS = "proc/driver/nvidia-caps/mig-minors"
NVSWITCH_DEVICES = "proc/driver/nvidia-nvswitch/devices"
# The four NVSwitch chips of an HGX H100/H200/B200 board, as the nvswitch driver names them.
NVSWITCH_BUS_IDS = ("0000:05:00.0", "0000:06:00.0", "0000:07:00.0", "0000:08:00.0")


def gi_minor(gpu_minor: int, gi: int) -> int | None:
    """The minor of ``gpu<m>/gi<g>/access`` (``None`` beyond the driver's table)."""
    if not (0 <= gpu_minor < GPUS_IN_TABLE and 0 <= gi < GIS_PER_GPU):
        return None
    return _FIRST_GPU_MINOR + gpu_minor * _PER_GPU + gi * _PER_GI


def ci_minor(gpu_minor: int, gi: int, ci: int) -> int | None:
    """The minor of ``gpu<m>/gi<g>/ci<c>/access``."""
    base = gi_minor(gpu_minor, gi)
    if base is None or not 0 <= ci < CIS_PER_GI:
        return None
    return base + 1 + ci


def mig_minors_text() -> str:
    """``/proc/driver/nvidia-caps/mig-minors`` as the driver prints it."""
    lines = [f"config {MIG_CONFIG_MINOR}", f"monitor {MIG_MONITOR_MINOR}"]
    for m in range(GPUS_IN_TABLE):
        for g in range(GIS_PER_GPU):
            lines.append(f"gpu{m}/gi{g}/access {gi_minor(m, g)}")
            lines.extend(f"gpu{m}/gi{g}/ci{c}/access {ci_minor(m, g, c)}" for c in range(CIS_PER_GI))
    return "\n".join(lines) + "\n"


class DriverFiles:
    """The simulated driver's files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _touch(self, relative: str) -> None:
        path = self.root / relative
        if not path.exists():
            ensure_private_dir(path.parent)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    def create(self, gpu_minors: list[int], nvswitch: bool) -> None:
        """Lay out a freshly loaded driver's files (after removing any old ones)."""
        if self.root.is_dir() and not self.root.is_symlink():
            shutil.rmtree(self.root)
        elif self.root.exists() or self.root.is_symlink():
            self.root.unlink()
        ensure_private_dir(self.root)
        path = self.root / MIG_MINORS
        ensure_private_dir(path.parent)
        atomic_write_text(path, mig_minors_text())
        self.load_driver(gpu_minors, nvswitch)

    def load_driver(self, gpu_minors: list[int], nvswitch: bool) -> None:
        """The device nodes a loaded driver has: nvidiactl, one per GPU, MIG config and monitor."""
        caps = self.root / "dev" / "nvidia-caps"
        if caps.is_dir():
            shutil.rmtree(caps)  # a reload (reboot) clears /dev
        self._touch("dev/nvidiactl")
        for m in gpu_minors:
            self._touch(f"dev/nvidia{m}")
        self._touch(f"dev/nvidia-caps/nvidia-cap{MIG_CONFIG_MINOR}")
        self._touch(f"dev/nvidia-caps/nvidia-cap{MIG_MONITOR_MINOR}")
        if nvswitch:
            for bus in NVSWITCH_BUS_IDS:
                self._touch(f"{NVSWITCH_DEVICES}/{bus}")

    def instance_created(self, gpu_minor: int, gi: int, ci: int | None = None) -> None:
        """The capability device of a new GPU (or compute) instance, as nvidia-modprobe makes it."""
        minor = gi_minor(gpu_minor, gi) if ci is None else ci_minor(gpu_minor, gi, ci)
        if minor is not None:
            try:
                self._touch(f"dev/nvidia-caps/nvidia-cap{minor}")
            except OSError:
                pass  # the device node is a convenience for Slurm; NVML does not depend on it
