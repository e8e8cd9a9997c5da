"""What PyTorch can do on this node, in words: for ``migctl doctor`` and ``examples/train_on_mig.py``.

Two things make ``torch.cuda.is_available()`` false that have nothing to do with MIG, and a user
should be told which one it is rather than sent after the fabric manager:

* the node is **simulated**: its MIG devices exist only in migctl's simulator, so no CUDA
  program can really run on them (the simulator models CUDA's start for ``doctor``, nothing
  more). What would happen on the hardware being simulated is said instead;
* the installed PyTorch is a **CPU-only build** (``torch.version.cuda`` is ``None``, e.g.
  ``2.13.0+cpu``): it cannot use any GPU, MIG or not, on any node.

Importing PyTorch does not start CUDA, so asking is safe before ``migctl.use()``. PyTorch is
not a dependency of migctl: without it, :func:`torch_build` says ``None``.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

INSTALL_CUDA_BUILD = "install a CUDA build of PyTorch (https://pytorch.org/get-started/locally/)"


@dataclass(frozen=True)
class TorchBuild:
    """The installed PyTorch: its version and the CUDA version it was built for (``None``: CPU only)."""

    version: str
    cuda: str | None

    @property
    def cpu_only(self) -> bool:
        return self.cuda is None

    def describe(self) -> str:
        return f"PyTorch {self.version} (" + ("a CPU-only build" if self.cpu_only else f"CUDA {self.cuda}") + ")"


def torch_build(module: Any | None = None) -> TorchBuild | None:
    """The PyTorch ``module`` (default: the installed one, imported; that does not start CUDA),
    or ``None`` when none is installed or it cannot be imported."""
    if module is None:
        module = sys.modules.get("torch")
    if module is None:
        if importlib.util.find_spec("torch") is None:
            return None
        try:
            import torch  # type: ignore[import-not-found, unused-ignore]
        except Exception:
            return None
        module = torch
    version = getattr(module, "version", None)
    cuda = getattr(version, "cuda", None)
    return TorchBuild(str(getattr(module, "__version__", "?")), str(cuda) if cuda else None)


def on_simulator(build: TorchBuild | None, device: str) -> str:
    """Why CUDA cannot be real on a simulated node, and what would happen on the hardware it
    simulates (``device``: the MIG device chosen, e.g. ``MIG-...``)."""
    text = (
        f"This node is simulated: {device} exists only in migctl's simulator, so CUDA cannot be real here "
        "and no program can compute on it. On the hardware being simulated, CUDA would see exactly one "
        f"device, cuda:0 = {device}, and the computation would run there."
    )
    if build is not None and build.cpu_only:
        text += f" Also, {build.describe()} could not use it even there: {INSTALL_CUDA_BUILD}."
    return text


def without_cuda(build: TorchBuild | None, *, simulated: bool, device: str) -> tuple[str, bool]:
    """Why PyTorch sees no CUDA device, and whether that is a problem to fix (``True``) or only
    the nature of this node (``False``: a simulated node)."""
    if simulated:
        return on_simulator(build, device), False
    if build is not None and build.cpu_only:
        return f"{build.describe()} cannot use any GPU: {INSTALL_CUDA_BUILD}.", True
    return (
        "CUDA is not available to PyTorch. On HGX (NVSwitch) servers such as H20/H100/H200 8-GPU boards, "
        "check that nvidia-fabricmanager runs with the driver's version; `migctl doctor` checks all of this.",
        True,
    )
