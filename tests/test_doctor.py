"""``migctl doctor`` on simulated nodes: healthy, fabric manager down, MIG pending or without instances."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import Cli
from migctl.records.schema import by_command, command_schema


def validate(document: Any) -> None:
    jsonschema.validate(document, command_schema(by_command()["doctor"].record), cls=jsonschema.Draft202012Validator)


def by_check(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [c for c in report["checks"] if c["check"] == name]


@pytest.fixture
def h20(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A simulated 2x H20 (NVSwitch board): GPU 0 with two 1g.12gb, GPU 1 with MIG disabled."""
    import migctl

    monkeypatch.setenv("MIGCTL_SIM", "h20x2")
    api = migctl.Node(sim="h20x2")
    api.set_mig_mode(True, gpus="0")
    api.create("1g.12gb:2", gpus="0")
    st = api.status()
    api.close()
    return [ci.uuid for g in st.gpus for gi in g.gpu_instances for ci in gi.compute_instances]


def test_healthy_node_passes(migctl: Cli, h20: list[str]) -> None:
    r = migctl("doctor", "--json")
    assert r.code == 0, r.out + r.err
    report = r.json()
    validate(report)
    assert report["ok"] and report["summary"]["fail"] == 0
    # Everything passes; the warnings only say that CUDA cannot be real on a simulated node (and,
    # where the installed PyTorch is a CPU-only build, that it cannot use a GPU).
    warned = {c["check"] for c in report["checks"] if c["status"] != "pass"}
    assert "simulated" in warned and warned <= {"simulated", "pytorch"}
    assert by_check(report, "driver")[0]["message"].startswith("driver 570.")
    assert "active" in by_check(report, "fabric-manager")[0]["message"]
    smoke = by_check(report, "smoke")
    assert sorted(c["uuid"] for c in smoke) == sorted(h20)  # every MIG device, through migctl run's launch path
    for c in smoke:
        assert f"sees exactly {c['uuid']}" in c["message"] and "registered" in c["message"]
        assert c["output"][:2] == [f"CUDA_VISIBLE_DEVICES={c['uuid']}", f"MIGCTL_DEVICE_UUID={c['uuid']}"]
    human = migctl("doctor")
    assert human.code == 0 and "no failures" in human.out and "all checks passed" not in human.out


def test_fabric_manager_down_fails_with_the_fix_and_every_smoke_test_fails(
    migctl: Cli, h20: list[str]
) -> None:
    assert migctl("sim", "fabric-manager", "stop").code == 0
    r = migctl("doctor", "--json")
    assert r.code == 1
    report = r.json()
    validate(report)
    fm = by_check(report, "fabric-manager")[0]
    assert fm["status"] == "fail"
    assert "not running" in fm["message"] and "802" in fm["message"]
    assert fm["fix"] == "start it: migctl sim fabric-manager start"
    smoke = by_check(report, "smoke")
    assert sorted(c["uuid"] for c in smoke) == sorted(h20)
    for c in smoke:  # each failing instance is named, with CUDA's own error
        assert c["status"] == "fail"
        assert c["uuid"] in c["message"] and f"GI {c['gpu_instance_id']}" in c["message"]
        assert "CUDA error 802: system not yet initialized" in c["message"]
        assert "fabric-manager start" in c["fix"]
    human = migctl("doctor")
    assert human.code == 1 and "FAIL" in human.out and "problems found" in human.out
    assert migctl("sim", "fabric-manager", "start").code == 0
    assert migctl("doctor", "--no-smoke").code == 0


def test_mig_enabled_without_instances_fails(migctl: Cli, h20: list[str]) -> None:
    assert migctl("mode", "enable", "-i", "1").code == 0
    report = migctl("doctor", "--json").json()
    (check,) = [c for c in by_check(report, "mig-instances") if c["gpu"] == 1]
    assert check["status"] == "fail"
    assert "CUDA sees no device" in check["message"]
    assert "migctl create" in check["fix"] and "migctl mode disable -i 1" in check["fix"]
    assert not report["ok"]


def test_pending_mig_mode_warns_with_the_reset(migctl: Cli, state_dir: Path) -> None:
    # Ampere keeps an enable pending while a process uses the GPU (the seed's step 1).
    env = {"MIGCTL_SIM": "a100-40gb"}
    assert migctl("sim", "attach", "--pid", str(os.getpid()), "-i", "0", env=env).code == 0
    r = migctl("mode", "enable", "-i", "0", env=env)
    assert "pending" in r.out + r.err
    r = migctl("doctor", "--json", env=env)
    report = r.json()
    (pending,) = by_check(report, "mig-pending")
    assert pending["status"] == "warn"
    assert "enabled is pending until a GPU reset" in pending["message"]
    assert "migctl reset -i 0" in pending["fix"]
    assert by_check(report, "fabric-manager")[0]["status"] == "pass"  # a lone A100: no NVSwitch
    assert r.code == 0  # a warning is not a failure


def test_node_doctor_returns_typed_checks(h20: list[str]) -> None:
    import migctl
    from migctl.ops import leases
    from migctl.records.doctor import Check, DoctorReport

    lease = leases.try_acquire(h20[0], command="busy for the test")
    try:
        with migctl.Node(sim="h20x2") as api:
            report = api.doctor(gpus=0, smoke_timeout=30)
    finally:
        if lease is not None:
            lease.release()
    assert isinstance(report, DoctorReport) and all(isinstance(c, Check) for c in report.checks)
    assert report.ok and report.simulated
    assert [c.gpu for c in report.checks if c.check == "mig"] == [0]  # only the GPU asked for
    smoke = {c.uuid: c for c in report.checks if c.check == "smoke"}
    assert set(smoke) == set(h20)
    skipped, tested = smoke[h20[0]], smoke[h20[1]]
    assert skipped.status == "warn" and "not tested, leased by pid" in skipped.message  # never waits for a busy one
    assert skipped.fix == "run migctl doctor again when it is free"
    assert tested.status == "pass" and tested.output[0] == f"CUDA_VISIBLE_DEVICES={h20[1]}"
    notes = sum(1 for c in report.checks if c.check in ("simulated", "pytorch"))  # see test_healthy_node_passes
    assert report.summary == {"pass": len(report.checks) - 1 - notes, "warn": 1 + notes, "fail": 0}


def test_without_a_driver_nvml_fails_first(migctl: Cli, state_dir: Path) -> None:
    """No NVML at all: one failed check with the fix, not a traceback."""
    from migctl.errors import DriverError
    from migctl.ops import doctor

    def no_driver() -> Any:
        raise DriverError("NVML Shared Library Not Found", hint="install the driver")

    report = doctor.diagnose(no_driver)
    assert [(c.check, c.status, c.fix) for c in report.checks] == [("nvml", "fail", "install the driver")]
    assert not report.ok and report.summary == {"pass": 0, "warn": 0, "fail": 1}
