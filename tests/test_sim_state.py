"""The simulated node's files: damaged state, crash leftovers, the driver's files, PCI identity.

* A damaged node file (truncated, garbled, of the wrong shape, replaced by a directory) is a
  one-line error naming the file, what is wrong and the fix (``migctl sim reset``), exit 8,
  never ``JSONDecodeError``/``KeyError``/``IsADirectoryError`` or "internal error"; the reset
  repairs it.
* A temporary file a ``kill -9`` left mid-write (``.gpu-N.json.XXXX``) is removed.
* ``/proc/driver/nvidia-caps/mig-minors`` and the device files are modelled under the node's
  own driver root with the real driver's numbering (``nv-caps.c``), and read back through the
  device layer.
* Each model reports a real PCI subsystem ID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pynvml
import pytest

from migctl import sim
from migctl.device import open_node
from migctl.device.driverfiles import parse_mig_minors
from migctl.sim import SimStateError

Damage = Callable[[Path], None]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    path.write_bytes(b"\x89\xfe\x00garbage\xff" * 5)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _wrong_shape_list(path: Path) -> None:
    path.write_text("[1, 2, 3]")


def _missing_key(path: Path) -> None:
    data = json.loads(path.read_text())
    data.pop("gis" if "gis" in data else "models")
    path.write_text(json.dumps(data))


def _wrong_type(path: Path) -> None:
    data = json.loads(path.read_text())
    if "mig" in data:
        data["mig"]["current"] = "yes"
    else:
        data["fabric_manager"] = 7
    path.write_text(json.dumps(data))


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "x").write_text("{}")


def _deep(path: Path) -> None:
    path.write_bytes(b"[" * 200_000)  # json.loads: RecursionError


DAMAGE: dict[str, tuple[Damage, str]] = {
    "truncated": (_truncate, "not valid JSON"),
    "garbled": (_garble, "not"),
    "empty": (_empty, "empty"),
    "a list": (_wrong_shape_list, "not an object"),
    "missing key": (_missing_key, "is missing"),
    "wrong type": (_wrong_type, "expected"),
    "a directory": (_directory, "is a directory"),
    "nested too deeply": (_deep, "nested too deeply"),
}


def _cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir)}
    env.pop("MIGCTL_SIM", None)
    return subprocess.run(
        [sys.executable, "-m", "migctl", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize("kind", sorted(DAMAGE))
@pytest.mark.parametrize("name", ["gpu-1.json", "node.json"])
def test_a_damaged_node_file_names_the_file_the_problem_and_the_fix(state_dir: Path, kind: str, name: str) -> None:
    sim.open("h20x2", state_dir=state_dir)
    path = state_dir / "sim" / name
    damage, what = DAMAGE[kind]
    damage(path)
    with pytest.raises(SimStateError) as exc:
        node = open_node(sim="h20x2", state_dir=str(state_dir))
        [g.mig_mode() for g in node.gpus]
    assert str(path) in exc.value.message and what in exc.value.message
    assert exc.value.hint is not None and "migctl --sim h20x2 sim reset" in exc.value.hint
    assert exc.value.exit_code == 8


@pytest.mark.parametrize("kind", ["truncated", "a directory", "missing key"])
def test_the_cli_says_it_in_one_line_and_sim_reset_repairs_it(state_dir: Path, kind: str) -> None:
    sim.open("h20x2", state_dir=state_dir)
    path = state_dir / "sim" / "gpu-0.json"
    DAMAGE[kind][0](path)
    broken = _cli(state_dir, "--sim", "h20x2", "status")
    assert broken.returncode == 8, broken.stderr
    lines = broken.stderr.strip().splitlines()
    assert lines[0].startswith("migctl: error: the simulated node's file") and str(path) in lines[0]
    assert "sim reset" in broken.stderr
    for bad in ("Traceback", "internal error", "JSONDecodeError", "KeyError", "IsADirectoryError"):
        assert bad not in broken.stderr
    as_json = _cli(state_dir, "--sim", "h20x2", "status", "--json")  # the same as one error document
    assert as_json.returncode == 8 and "Traceback" not in as_json.stderr, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["error"] == "driver" and str(path) in doc["message"] and "sim reset" in doc["hint"]
    assert _cli(state_dir, "--sim", "h20x2", "sim", "reset").returncode == 0
    fixed = _cli(state_dir, "--sim", "h20x2", "status", "--json")
    assert fixed.returncode == 0, fixed.stderr
    assert len(json.loads(fixed.stdout)["gpus"]) == 2


def test_a_damaged_node_json_needs_the_spec_to_reset(state_dir: Path) -> None:
    sim.open("h20x2", state_dir=state_dir)
    _garble(state_dir / "sim" / "node.json")
    with pytest.raises(sim.SimSpecError, match="migctl --sim SPEC sim reset"):
        sim.reset(None, state_dir=state_dir)
    assert sim.reset("h20x2", state_dir=state_dir) == "h20x2"
    assert sim.open(None, state_dir=state_dir).nvmlDeviceGetCount() == 2


def test_temporary_files_a_killed_writer_left_are_removed(state_dir: Path) -> None:
    nvml = sim.open("h20x2", state_dir=state_dir)
    root = state_dir / "sim"
    leftovers = [root / ".gpu-0.json.k9x2ab", root / ".gpu-0.json.zz1", root / ".node.json.q0"]
    for p in leftovers:
        p.write_text('{"half": ')  # what an interrupted write leaves
    other = root / ".gpu-1.json.keep"
    other.write_text("{")
    # the next change of gpu-0 (in a fresh process, as after a crash) sweeps its leftovers
    again = sim.open(None, state_dir=state_dir)
    again.nvmlDeviceSetMigMode(again.nvmlDeviceGetHandleByIndex(0), pynvml.NVML_DEVICE_MIG_ENABLE)
    assert not leftovers[0].exists() and not leftovers[1].exists()
    assert other.exists()  # GPU 1 was not changed yet
    sim.open_control(None, state_dir=state_dir).set_fabric_manager(False)
    assert not leftovers[2].exists()
    assert nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(0)) == [1, 1]
    sim.reset(None, state_dir=state_dir)
    assert not other.exists()


# -- the driver's files -----------------------------------------------------------------------------


def test_mig_minors_follows_the_drivers_numbering(state_dir: Path) -> None:
    """nv-caps.c: one counter over fabric-mgmt (0), config (1), monitor (2), then per GPU 15 GIs x (1 + 8 CIs)."""
    sim.open("h20x2", state_dir=state_dir)
    lines = (state_dir / "sim" / "root" / "proc/driver/nvidia-caps/mig-minors").read_text().splitlines()
    assert lines[:4] == ["config 1", "monitor 2", "gpu0/gi0/access 3", "gpu0/gi0/ci0/access 4"]
    assert lines[10:13] == ["gpu0/gi0/ci7/access 11", "gpu0/gi1/access 12", "gpu0/gi1/ci0/access 13"]
    assert "gpu1/gi0/access 138" in lines and lines[-1] == "gpu31/gi14/ci7/access 4322"
    assert len(lines) == 2 + 32 * 15 * 9


def test_the_device_layer_reads_minors_and_device_files_under_the_driver_root(state_dir: Path) -> None:
    node = open_node(sim="h20x2", state_dir=str(state_dir))
    gpu = node.gpus[1]
    assert gpu.minor_number == 1
    gpu.set_mig_mode(True)
    gi = gpu.create_gpu_instance(19)  # GI 13 at slot 6, as the driver places it
    ci = gi.create_compute_instance(0)
    minors = node.mig_minors()
    assert (minors.config, minors.monitor) == (1, 2)
    gi_minor, ci_minor = minors.gi(1, gi.id), minors.ci(1, gi.id, ci.id)
    assert (gi.id, gi_minor, ci_minor) == (13, 3 + 135 + 13 * 9, 3 + 135 + 13 * 9 + 1)
    for path in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia1", f"/dev/nvidia-caps/nvidia-cap{gi_minor}"):
        assert node.driver_path(path).exists(), path
    assert node.driver_path(f"/dev/nvidia-caps/nvidia-cap{ci_minor}").exists()
    assert str(node.driver_path("/dev/nvidia0")).startswith(str(state_dir))
    # a driver reload (reboot) clears /dev; the static table stays
    ci.destroy()
    gi.destroy()
    assert _cli(state_dir, "--sim", "h20x2", "sim", "reload-driver").returncode == 0
    assert not node.driver_path(f"/dev/nvidia-caps/nvidia-cap{gi_minor}").exists()
    assert node.driver_path("/dev/nvidia-caps/nvidia-cap1").exists()
    assert node.mig_minors().gi(1, 13) == gi_minor


def test_parse_mig_minors_as_the_driver_prints_it() -> None:
    text = "config 1\nmonitor 2\ngpu0/gi0/access 3\ngpu0/gi0/ci0/access 4\ngpu2/gi13/access 390\n"
    minors = parse_mig_minors(text)
    assert (minors.config, minors.monitor, minors.gi(0, 0), minors.ci(0, 0, 0), minors.gi(2, 13)) == (1, 2, 3, 4, 390)
    assert minors.gi(0, 1) is None
    with pytest.raises(Exception, match="unexpected line"):
        parse_mig_minors("config one\n")


# -- PCI identity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "device_id", "subsystem_id"),
    [
        ("h100-80gb", 0x233010DE, 0x16C010DE),  # mig-parted api/spec/v1/helpers_test.go
        ("a100-40gb", 0x20B010DE, 0x134F10DE),  # lspci on an AWS p4d.24xlarge: 10de:20b0 10de:134f
        ("h20", 0x232910DE, 0x198B10DE),  # open-gpu-kernel-modules g_nv_name_released.h
        ("a30", 0x20B710DE, 0x153210DE),
    ],
)
def test_each_model_reports_a_real_pci_subsystem_id(
    state_dir: Path, spec: str, device_id: int, subsystem_id: int
) -> None:
    nvml = sim.open(spec, state_dir=state_dir)
    pci = nvml.nvmlDeviceGetPciInfo(nvml.nvmlDeviceGetHandleByIndex(0))
    assert (pci.pciDeviceId, pci.pciSubSystemId) == (device_id, subsystem_id)
    gpu = open_node(sim=spec, state_dir=str(state_dir)).gpus[0]
    assert (gpu.pci_device_id, gpu.pci_subsystem_id) == (device_id, subsystem_id)
