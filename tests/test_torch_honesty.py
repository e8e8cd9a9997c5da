"""The PyTorch path is honest (issue 10, section 8): on a simulated node, and with a CPU-only
PyTorch build, ``examples/train_on_mig.py`` and ``doctor`` say why CUDA is not there and what
would happen on hardware, instead of sending the user after the fabric manager."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from conftest import SimFactory
from migctl.torchcheck import TorchBuild, torch_build, without_cuda

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_on_mig.py"
CPU = TorchBuild("2.13.0+cpu", None)
CUDA = TorchBuild("2.13.0", "12.6")


def test_the_reason_names_the_simulator_and_the_build() -> None:
    text, problem = without_cuda(CPU, simulated=True, device="MIG-x")
    assert not problem
    assert "This node is simulated" in text and "cuda:0 = MIG-x" in text and "CPU-only build" in text
    assert "fabricmanager" not in text
    text, problem = without_cuda(CUDA, simulated=True, device="MIG-x")
    assert not problem and "CPU-only" not in text
    text, problem = without_cuda(CPU, simulated=False, device="MIG-x")
    assert problem and "CPU-only build" in text and "install a CUDA build" in text and "fabricmanager" not in text
    text, problem = without_cuda(CUDA, simulated=False, device="MIG-x")
    assert problem and "nvidia-fabricmanager" in text
    text, problem = without_cuda(None, simulated=False, device="MIG-x")
    assert problem and "nvidia-fabricmanager" in text


def test_the_build_is_read_from_the_module() -> None:
    cpu = SimpleNamespace(__version__="2.13.0+cpu", version=SimpleNamespace(cuda=None))
    assert torch_build(cpu) == CPU
    gpu = SimpleNamespace(__version__="2.13.0", version=SimpleNamespace(cuda="12.6"))
    assert torch_build(gpu) == CUDA


def test_the_example_on_a_simulated_node_with_the_installed_pytorch(sim: SimFactory, state_dir: Path) -> None:
    """Whatever PyTorch this machine has (none, a CPU-only build, a CUDA build), the example says
    what is true on a simulated node, and never sends the user after the fabric manager."""
    try:
        import torch
    except ImportError:
        torch = None
    s = sim("h20x2", enable="0")
    s.ok("apply", "-f", str(EXAMPLE.parent / "layouts.yaml"), "-c", "balanced", "-i", "0")
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM": "h20x2", "PYTHONWARNINGS": "ignore"}
    p = subprocess.run([sys.executable, str(EXAMPLE), "--on", "0:2"], env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert "3g.48gb" in p.stdout  # 0:2 is the balanced layout's 3g.48gb instance, as the docstring says
    assert "fabricmanager" not in p.stdout + p.stderr
    if torch is None:
        assert "PyTorch is not installed" in p.stdout and "cuda:0 (= MIG-" in p.stdout
        assert "This node is simulated" in p.stdout and "CUDA cannot be real here" in p.stdout
    else:
        assert "This node is simulated" in p.stdout and "cuda:0 = MIG-" in p.stdout
        assert ("CPU-only build" in p.stdout) == (torch.version.cuda is None)


def test_doctor_on_a_simulated_node_says_cuda_cannot_be_real(sim: SimFactory) -> None:
    s = sim("h20", enable="0")
    s.ok("create", "1g.12gb")
    report = s.json("doctor")
    simulated = [c for c in report["checks"] if c["check"] == "simulated"]
    assert len(simulated) == 1 and simulated[0]["status"] == "warn"
    assert "CUDA cannot be real here" in simulated[0]["message"]
    assert report["ok"] is True  # a warning, not a failure
    build = torch_build()
    pytorch = [c for c in report["checks"] if c["check"] == "pytorch"]
    if build is not None and build.cpu_only:
        assert pytorch and pytorch[0]["status"] == "warn" and "CPU-only" in pytorch[0]["message"]
    elif build is None:
        assert not pytorch
    assert "all checks passed" not in s.ok("doctor").out


def test_the_example_names_a_gpu_instance_the_shipped_layout_makes(sim: SimFactory) -> None:
    """Its docstring's ``--on 0:2``: the balanced layout of examples/layouts.yaml on an H20's GPU 0."""
    assert "--on 0:2 " in EXAMPLE.read_text()
    s = sim("h20x8", enable=None)
    s.ok("apply", "-f", str(EXAMPLE.parent / "layouts.yaml"), "-c", "balanced", "-i", "0")
    gis = {gi["id"]: gi["profile"] for gi in s.gpu(0)["gpu_instances"]}
    assert gis.get(2) == "3g.48gb", gis
