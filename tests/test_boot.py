"""The boot service: a unit systemd accepts, and the exact layout back after a driver reload.

Unit-file expectations are the issue's words (oneshot, DefaultDependencies=no, After= the
persistence daemon and fabric manager, Before= nvidia-gpu-reset.target and the GPU clients, a
TimeoutStartSec, WantedBy=multi-user.target). ``systemd-analyze verify`` is the real program;
it checks a unit offline (no running systemd needed) and, note, prints problems but still exits
0 for most of them, so a clean unit is exit 0 **and** no output.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from migctl.ops.files import NVIDIA_DEFAULT_CONFIG

SIM = ("--sim", "h20x2")


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return subprocess.run([exe, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60,
                          check=False)


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def _dirs(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    units, boot = tmp_path / "units", tmp_path / "boot"
    units.mkdir()
    return units, boot, ["--boot-dir", str(boot), "--unit-dir", str(units)]


def _layout(migctl: Any) -> list[Any]:
    """Every GPU's MIG mode and instances: (GI profile, placement, sorted compute profiles)."""
    out = []
    for g in migctl(*SIM, "status", "--json").json()["gpus"]:
        gis = sorted((gi["profile"], gi["placement"]["start"], gi["placement"]["size"],
                      tuple(sorted(ci["profile"] for ci in gi["compute_instances"]))) for gi in g["gpu_instances"])
        out.append((g["index"], g["mig"]["current"], gis))
    return out


def test_unit_passes_systemd_analyze_verify(migctl: Any, tmp_path: Path) -> None:
    units, boot, where = _dirs(tmp_path)
    assert migctl(*SIM, "apply", "--layout", "3g.48gb,1g.12gb").code == 0
    exported = migctl(*SIM, "export").out
    r = migctl(*SIM, "boot", "install", "-f", "-", "-c", "current", *where, input=exported)  # stdin
    assert r.code == 0, r.err
    assert (boot / "config.yaml").read_text() == exported
    unit = units / "migctl-boot.service"
    v = _verify(unit)
    assert v.returncode == 0 and v.stdout + v.stderr == "", v.stdout + v.stderr
    u = _unit(unit)
    assert u["Unit"]["DefaultDependencies"] == "no"
    assert set(u["Unit"]["After"].split()) >= {"nvidia-persistenced.service", "nvidia-fabricmanager.service"}
    assert set(u["Unit"]["Before"].split()) >= {"nvidia-gpu-reset.target", "kubelet.service", "slurmd.service",
                                                 "nvidia-dcgm.service", "dcgm-exporter.service",
                                                 "migctl-exporter.service"}
    assert u["Service"]["Type"] == "oneshot" and int(u["Service"]["TimeoutStartSec"]) > 0
    assert u["Install"]["WantedBy"] == "multi-user.target"
    # enabled as systemctl enable does it (this is not systemd's own unit directory)
    link = units / "multi-user.target.wants" / "migctl-boot.service"
    assert link.is_symlink() and link.resolve() == unit.resolve()
    assert (boot / "selection.json").stat().st_mode & 0o777 == 0o600
    assert boot.stat().st_mode & 0o777 == 0o700


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key and a missing program are reported."""
    bad = tmp_path / "migctl-boot.service"
    bad.write_text("[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshott\nExecStart=/nonexistent/migctl\n")
    v = _verify(bad)
    assert v.returncode != 0 or v.stdout + v.stderr != ""


def test_driver_reload_then_boot_apply_brings_back_the_exact_layout(migctl: Any, tmp_path: Path) -> None:
    _units, boot, where = _dirs(tmp_path)
    # a layout the planner would not choose on empty GPUs: 1g at slice 6, a 3g split 1c+2c
    assert migctl(*SIM, "apply", "--layout", "3g.48gb@0[1c,2c],1g.12gb@6,2g.24gb@4").code == 0
    plain = tmp_path / "plain.yaml"
    plain.write_text("version: v1\nmig-configs:\n  mine:\n  - devices: all\n    mig-enabled: true\n"
                     "    mig-devices: {3g.48gb: 1, 2g.24gb: 1, 1g.12gb: 1}\n"
                     "    x-migctl: {instances: [{profile: 3g.48gb, compute: [1c.3g.48gb, 2c.3g.48gb]}]}\n")
    before = _layout(migctl)
    # the node already has the config's counts: record what is there, placements and all
    r = migctl(*SIM, "boot", "install", "-f", str(plain), "-c", "mine", "--no-apply", *where)
    assert r.code == 0, r.err

    assert migctl(*SIM, "sim", "reload-driver").code == 0
    assert all(not mig for _, mig, _ in _layout(migctl))  # Hopper: MIG mode and instances are gone
    # control: planning the plain config on the empty GPUs would put the 1g elsewhere
    plan = migctl(*SIM, "plan", "-f", str(plain), "-c", "mine", "--json").json()
    assert {c["placement"]["start"] for c in plan["gpus"][0]["create"] if c["profile"] == "1g.12gb"} != {6}

    r = migctl(*SIM, "boot", "apply", "--boot-dir", str(boot))
    assert r.code == 0, r.err
    assert _layout(migctl) == before
    uuids = {d["uuid"] for g in migctl(*SIM, "devices", "--json").json()["gpus"] for d in g["mig_devices"]}
    assert len(uuids) == 8 and all(u in r.out for u in uuids)  # the GPU -> instance -> MIG UUID log

    st = migctl(*SIM, "boot", "status", *where, "--json")
    assert st.code == 0
    doc = st.json()
    assert doc["installed"] and doc["enabled"] and doc["last_boot"]["ok"] and doc["matches_now"]
    assert doc["selection"]["config_name"] == "mine"


def test_failed_boot_apply_is_reported_by_status(migctl: Any, tmp_path: Path) -> None:
    _units, boot, where = _dirs(tmp_path)
    assert migctl(*SIM, "apply", "--layout", "1g.12gb:2").code == 0
    (tmp_path / "c.yaml").write_text(migctl(*SIM, "export").out)
    assert migctl(*SIM, "boot", "install", "-f", str(tmp_path / "c.yaml"), "-c", "current", *where).code == 0
    (boot / "layout.yaml").write_text("version: v1\nmig-configs: {boot: [{devices: all, mig-enabled: maybe}]}\n")
    r = migctl(*SIM, "boot", "apply", "--boot-dir", str(boot))
    assert r.code == 2 and "mig-enabled" in r.out + r.err and "Traceback" not in r.err
    st = migctl(*SIM, "boot", "status", *where, "--json")
    assert st.code == 1 and st.json()["last_boot"]["ok"] is False
    assert "mig-enabled" in st.json()["last_boot"]["error"]


def test_install_with_a_bad_config_records_nothing(migctl: Any, tmp_path: Path) -> None:
    units, boot, where = _dirs(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1\nmig-configs:\n  x:\n  - devices: all\n    mig-enabled: true\n"
                   "    mig-devices: {1g.99gb: 1}\n")
    r = migctl(*SIM, "boot", "install", "-f", str(bad), "-c", "x", *where)
    assert r.code == 2 and "1g.99gb" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (units / "migctl-boot.service").exists() and not boot.exists()


def test_select_switches_config_and_uninstall_removes_everything(migctl: Any, tmp_path: Path, reference: Path) -> None:
    units, boot, where = _dirs(tmp_path)
    cfg = str(NVIDIA_DEFAULT_CONFIG)
    r = migctl(*SIM, "boot", "install", "-f", cfg, "-c", "all-1g.12gb", *where, "--json")
    assert r.code == 0, r.err
    assert migctl(*SIM, "assert", "-f", cfg, "-c", "all-1g.12gb").code == 0
    r = migctl(*SIM, "boot", "select", "all-balanced", "--boot-dir", str(boot), "--json")
    assert r.code == 0, r.err and r.json()["selection"]["config_name"] == "all-balanced"
    assert migctl(*SIM, "assert", "-f", cfg, "-c", "all-balanced").code == 0
    assert migctl(*SIM, "sim", "reload-driver").code == 0
    assert migctl(*SIM, "boot", "apply", "--boot-dir", str(boot)).code == 0
    assert migctl(*SIM, "assert", "-f", cfg, "-c", "all-balanced").code == 0
    r = migctl(*SIM, "boot", "uninstall", *where, "--json")
    assert r.code == 0 and len(r.json()["removed"]) == 5
    assert not list(units.rglob("migctl-boot.service")) and not boot.exists()
    assert migctl(*SIM, "boot", "status", *where, "--json").json()["installed"] is False
