"""What mig-parted users expect: generate-config, checkpoint/restore, --mode-only, --skip-reset,
``-f -`` and the environment variables that name the config.

generate-config is checked against NVIDIA's own default file (tests/data, from mig-parted's
deployments/systemd/config-default.yaml): for every simulated model, every config both files
name must give that GPU the same target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from migctl.config import load_text
from migctl.config.select import GpuFacts, select
from migctl.device import open_node
from migctl.ops.files import NVIDIA_DEFAULT_CONFIG, load_config_file

MODELS = ["a100-40gb", "a100-80gb", "a30", "h100-80gb", "h100-nvl", "h100-96gb", "h200", "h20", "b200", "gb200",
          "rtx-pro-6000"]


@pytest.mark.parametrize("model", MODELS)
def test_generate_config_matches_nvidias_default_file(model: str, migctl: Any, reference: Path,
                                                      state_dir: Path) -> None:
    r = migctl("--sim", model, "generate-config", "-o", "json")
    assert r.code == 0, r.err
    generated = load_text(r.out, "generated")
    default = load_config_file(NVIDIA_DEFAULT_CONFIG)
    node = open_node(model, str(state_dir))
    g = node.gpus[0]
    facts = [GpuFacts(0, g.pci_device_id, g.geometry(), g.name)]
    node.close()
    names = set(generated.names())
    assert {"all-disabled", "all-enabled", "all-balanced"} <= names
    profiles = {p.name for p in facts[0].geometry.profiles}  # type: ignore[union-attr]
    assert {n for n in names if n not in ("all-disabled", "all-enabled", "all-balanced")} == {
        "all-" + p.replace("+", ".") for p in profiles}
    compared = 0
    for name in sorted(names & set(default.names())):
        want = select(default, name, facts).targets.get(0)
        if want is None:
            continue  # NVIDIA's file does not cover this model under that name
        assert select(generated, name, facts).targets.get(0) == want, name
        compared += 1
    assert compared >= 8


def test_generate_config_on_a_mixed_node_filters_by_device(migctl: Any) -> None:
    r = migctl("--sim", "h100-80gb,a30", "generate-config", "-o", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)["mig-configs"]
    assert doc["all-balanced"] == [
        {"device-filter": ["0x20B710DE"], "devices": "all", "mig-enabled": True,
         "mig-devices": {"1g.6gb": 2, "2g.12gb": 1}},
        {"device-filter": ["0x233010DE"], "devices": "all", "mig-enabled": True,
         "mig-devices": {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}},
    ]
    assert doc["all-1g.10gb"] == [{"device-filter": ["0x233010DE"], "devices": "all", "mig-enabled": True,
                                   "mig-devices": {"1g.10gb": 7}}]


def _state(migctl: Any, sim: str = "h20x2") -> list[Any]:
    out = []
    for g in migctl("--sim", sim, "status", "--json").json()["gpus"]:
        out.append((g["index"], g["mig"]["current"], sorted(
            (gi["profile"], gi["placement"]["start"],
             sorted((ci["profile"], ci["placement"]["start"]) for ci in gi["compute_instances"]))
            for gi in g["gpu_instances"])))
    return out


def test_checkpoint_then_restore_gives_back_the_exact_state(migctl: Any, tmp_path: Path) -> None:
    assert migctl("--sim", "h20x2", "apply", "--layout", "3g.48gb@4[1c,2c],1g.12gb@0", "-i", "0").code == 0
    before = _state(migctl)
    ck = tmp_path / "ck.json"
    r = migctl("--sim", "h20x2", "checkpoint", "-f", str(ck))
    assert r.code == 0, r.err
    assert ck.stat().st_mode & 0o777 == 0o600
    data = json.loads(ck.read_text())
    gi = next(g for g in data["gpus"][0]["gpu_instances"] if g["profile"] == "3g.48gb")
    assert gi["placement"] == {"start": 4, "size": 4}
    assert sorted(c["profile"] for c in gi["compute_instances"]) == ["1c.3g.48gb", "2c.3g.48gb"]

    assert migctl("--sim", "h20x2", "apply", "--layout", "1g.12gb:7").code == 0
    assert _state(migctl) != before
    r = migctl("--sim", "h20x2", "restore", "-f", "-", input=ck.read_text())  # stdin
    assert r.code == 0, r.err
    assert _state(migctl) == before
    # and it is idempotent
    r = migctl("--sim", "h20x2", "restore", "-f", str(ck), "--json")
    assert r.code == 0 and {g["result"] for g in r.json()["gpus"]} == {"unchanged"}


def test_restore_refuses_to_disturb_a_busy_instance(migctl: Any, tmp_path: Path) -> None:
    assert migctl("--sim", "h20x2", "apply", "--layout", "3g.48gb", "-i", "0").code == 0
    ck = tmp_path / "ck.json"
    ck.write_text(migctl("--sim", "h20x2", "checkpoint").out)
    assert migctl("--sim", "h20x2", "apply", "--layout", "1g.12gb:2", "-i", "0").code == 0
    uuid = migctl("--sim", "h20x2", "devices", "--json").json()["gpus"][0]["mig_devices"][0]["uuid"]
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert migctl("--sim", "h20x2", "sim", "attach", "--pid", str(job.pid), "--uuid", uuid).code == 0
        busy = _state(migctl)
        r = migctl("--sim", "h20x2", "restore", "-f", str(ck))
        assert r.code == 5 and f"pid {job.pid}" in r.err and "nothing was changed" in r.err
        assert _state(migctl) == busy
    finally:
        job.kill()
        job.wait()


def test_bad_checkpoint_is_one_line_naming_the_key(migctl: Any, tmp_path: Path) -> None:
    ck = tmp_path / "ck.json"
    ck.write_text(json.dumps({"version": "migctl.checkpoint/v1", "gpus": [{"index": 0, "uuid": "GPU-x",
                  "pci_device_id": "0x232910DE", "mig_enabled": "yes"}]}))
    r = migctl("--sim", "h20x2", "restore", "-f", str(ck))
    assert r.code == 2 and "gpus[0].mig_enabled" in r.err and len(r.err.strip().splitlines()) == 1
    ck.write_text(json.dumps({"version": "migctl.checkpoint/v1", "gpus": [{"index": 0, "uuid": "GPU-nope",
                  "pci_device_id": "0x232910DE", "mig_enabled": False}]}))
    r = migctl("--sim", "h20x2", "restore", "-f", str(ck))
    assert r.code == 2 and "GPU-nope" in r.err and "not on this node" in r.err


def test_mode_only_changes_the_mode_and_no_instance(migctl: Any, reference: Path) -> None:
    cfg = str(NVIDIA_DEFAULT_CONFIG)
    r = migctl("--sim", "h20x2", "apply", "--mode-only", "-f", cfg, "-c", "all-1g.12gb", "--json")
    assert r.code == 0, r.err
    assert [(g[1], g[2]) for g in _state(migctl)] == [(True, []), (True, [])]
    # with instances present, enabling keeps them; the full apply then adds the rest
    assert migctl("--sim", "h20x2", "apply", "--layout", "3g.48gb", "-i", "0").code == 0
    kept = _state(migctl)
    assert migctl("--sim", "h20x2", "apply", "--mode-only", "-f", cfg, "-c", "all-1g.12gb").code == 0
    assert _state(migctl) == kept
    assert migctl("--sim", "h20x2", "apply", "--mode-only", "-f", cfg, "-c", "all-disabled").code == 0
    assert [g[1] for g in _state(migctl)] == [False, False]


def test_skip_reset_accepts_a_pending_mode_change(migctl: Any) -> None:
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert migctl("--sim", "a100-40gb", "sim", "attach", "--pid", str(job.pid), "-i", "0").code == 0
        r = migctl("--sim", "a100-40gb", "apply", "--layout", "1g.5gb")
        assert r.code == 7  # Ampere with a process on it: the mode change waits for a reset
        r = migctl("--sim", "a100-40gb", "apply", "--layout", "1g.5gb", "--mode-only", "--skip-reset", "--json")
        assert r.code == 0 and r.json()["ok"] is True and r.json()["gpus"][0]["result"] == "pending"
    finally:
        job.kill()
        job.wait()


@pytest.mark.parametrize("prefix", ["MIGCTL", "MIG_PARTED"])
def test_environment_names_the_config_file_and_selected_config(migctl: Any, reference: Path, prefix: str) -> None:
    env = {f"{prefix}_CONFIG_FILE": str(NVIDIA_DEFAULT_CONFIG),
           f"{prefix}_SELECTED_CONFIG": "all-balanced"}
    other = "MIG_PARTED" if prefix == "MIGCTL" else "MIGCTL"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(other)}
    r = migctl("--sim", "h20x2", "apply", "--json", env={**clean, **env})
    assert r.code == 0, r.err
    assert r.json()["config"] == "all-balanced"
    assert migctl("--sim", "h20x2", "assert", env=env).code == 0
    # an option beats the environment
    assert migctl("--sim", "h20x2", "assert", "-c", "all-1g.12gb", env=env).code == 10


def test_restore_of_a_mode_that_waits_for_a_reset_exits_7_as_apply_does(migctl: Any, tmp_path: Path) -> None:
    assert migctl("--sim", "a100-40gb", "mode", "enable").code == 0
    ck = tmp_path / "ck.json"
    assert migctl("--sim", "a100-40gb", "checkpoint", "-f", str(ck)).code == 0
    assert migctl("--sim", "a100-40gb", "mode", "disable").code == 0
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert migctl("--sim", "a100-40gb", "sim", "attach", "--pid", str(job.pid), "-i", "0").code == 0
        r = migctl("--sim", "a100-40gb", "restore", "-f", str(ck), "--json")
        assert r.code == 7 and r.json()["gpus"][0]["result"] == "pending" and r.json()["ok"] is False
    finally:
        job.kill()
        job.wait()
