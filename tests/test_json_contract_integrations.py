"""The ``--json`` contract of the boot service, the scheduler exports and mig-parted's parity
commands, and the Python API that returns the same records.

Each test runs real commands (in-process, on a simulated node) and validates the one document
each prints against the JSON Schema generated from its record; the API tests check that
``migctl.Node`` returns the record the command prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import jsonschema
import pytest

from conftest import Cli, Result, Sim
from migctl import Node, UsageError
from migctl.records import to_data
from migctl.records.parity import Checkpoint
from migctl.records.schema import by_command, command_schema
from test_slurm import driver_minors


def validate(command: str, document: Any) -> None:
    jsonschema.validate(document, command_schema(by_command()[command].record), cls=jsonschema.Draft202012Validator)


def one_document(r: Result) -> Any:
    """The command printed exactly one JSON document on stdout (promise 5), and nothing else."""
    return json.loads(r.out)


def migctl_node(state_dir: Path, spec: str = "h20x2") -> Node:
    return Node(sim=spec, state_dir=state_dir)


def test_boot_commands_match_the_schema(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    units, boot = tmp_path / "units", tmp_path / "boot"
    units.mkdir()
    where = ("--boot-dir", str(boot), "--unit-dir", str(units))
    nothing = s.json("boot", "status", *where)
    validate("boot status", nothing)
    assert nothing["installed"] is False and nothing["selection"] is None and nothing["last_boot"] is None

    s.ok("apply", "--layout", "3g.48gb@0[1c,2c],1g.12gb@6", "-i", "0")
    exported = s.ok("export").out
    installed = one_document(s.ok("boot", "install", "-f", "-", "-c", "current", *where, "--json", input=exported))
    validate("boot install", installed)
    assert installed["enabled_by"] == "wants-link" and installed["selection"]["config_file"] == "<stdin>"
    assert installed["outcomes"] and all(o["result"] in ("applied", "unchanged") for o in installed["outcomes"])
    selected = s.json("boot", "select", "current", "--boot-dir", str(boot), "--no-apply")
    validate("boot select", selected)
    assert selected["applied"] is False and selected["unit"] is None and selected["outcomes"] == []

    s.ok("sim", "reload-driver")
    ran = s.json("boot", "apply", "--boot-dir", str(boot))
    validate("boot apply", ran)
    assert ran["ok"] is True and ran["exit_code"] == 0 and ran["error"] is None
    assert {(r["profile"], r["placement"]["start"]) for r in ran["table"]} == {("3g.48gb", 0), ("1g.12gb", 6)}
    st = s.json("boot", "status", *where)
    validate("boot status", st)
    assert st["last_boot"] == ran and st["matches_now"] is True and st["differences"] == []

    (boot / "layout.yaml").write_text("version: v1\nmig-configs: {boot: [{devices: all, mig-enabled: maybe}]}\n")
    failed = s("boot", "apply", "--boot-dir", str(boot), "--json")
    assert failed.code == 2
    doc = one_document(failed)  # the run's record (also saved for status), not an error document
    validate("boot apply", doc)
    assert doc["ok"] is False and doc["exit_code"] == 2 and "mig-enabled" in doc["error"]
    st = s("boot", "status", *where, "--json")
    assert st.code == 1
    validate("boot status", one_document(st))

    removed = s.json("boot", "uninstall", *where)
    validate("boot uninstall", removed)
    assert len(removed["removed"]) == 5


def test_export_slurm_and_k8s_match_the_schema(migctl: Cli, state_dir: Path, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "3g.48gb[1c,2c],1g.12gb:2", "-i", "0")
    slurm = s.json("export", "--format", "slurm", "--node-name", "gpu7")
    validate("export --format slurm", slurm)
    # the simulated driver's own table and /dev (docs/simulator.md)
    assert slurm["format"] == "slurm" and slurm["mig_minors"] == str(
        state_dir / "sim" / "root" / "proc" / "driver" / "nvidia-caps" / "mig-minors")
    assert slurm["dev_root"] == str(state_dir / "sim" / "root" / "dev")
    minors = tmp_path / "mig-minors"
    minors.write_text(driver_minors(2))
    copied = s.json("export", "--format", "slurm", "--node-name", "gpu7", "--mig-minors", str(minors))
    validate("export --format slurm", copied)
    assert copied["mig_minors"] == str(minors)
    assert [r["index"] for r in slurm["records"]] == list(range(5))  # 4 MIG devices and GPU 1 whole
    whole = [r for r in slurm["records"] if r["gpu_instance"] is None]
    assert len(whole) == 1 and whole[0]["profile"] is None and whole[0]["gpu"] == 1
    k8s = s.json("export", "--format", "k8s")
    validate("export --format k8s", k8s)
    # a 3g split into compute instances matches no device-plugin resource: mixed refuses, with the reason
    assert k8s["resources"]["mixed"]["ok"] is False and "1c.3g.48gb" in k8s["resources"]["mixed"]["error"]
    # the mig-parted format keeps main's record
    validate("export", s.json("export"))
    bad = s("export", "--format", "pbs", "--json")
    assert bad.code == 2
    validate("error", one_document(bad))


def test_task_prolog_hooks_file_and_clients_match_the_schema(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "3g.48gb,1g.12gb", "-i", "0")
    uuids = [r["uuid"] for r in s.json("export", "--format", "slurm")["records"]]
    env = {"SLURM_STEP_GPUS": "1", "CUDA_VISIBLE_DEVICES": "1"}
    given = s.json("slurm", "task-prolog", env=env)
    validate("slurm task-prolog", given)
    assert given["source"] == "SLURM_STEP_GPUS" and given["uuids"] == [uuids[1]]
    assert given["line"] == f"export CUDA_VISIBLE_DEVICES={uuids[1]}"
    clean = {k: v for k, v in os.environ.items() if k not in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS",
                                                               "CUDA_VISIBLE_DEVICES")}
    none = s.json("slurm", "task-prolog", env=clean)
    validate("slurm task-prolog", none)
    assert none["source"] is None and none["line"] is None

    hooks = migctl("k8s", "hooks-file", "--json")
    validate("k8s hooks-file", one_document(hooks))
    assert one_document(hooks)["text"] == migctl("k8s", "hooks-file").out

    log = tmp_path / "kubectl.log"
    stub = tmp_path / "kubectl"
    node = json.dumps({"kind": "Node", "metadata": {"name": "gpu7", "labels": {}}})
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\n[ \"$1\" = get ] && printf '%s' '{node}'\nexit 0\n")
    stub.chmod(0o755)
    for action in ("pause", "resume"):
        r = migctl("k8s", "clients", action, "--node", "gpu7", "--kubectl", str(stub), "--json")
        assert r.code == 0, r.err
        validate("k8s clients", one_document(r))
    bad = migctl("k8s", "clients", "stop", "--json")
    assert bad.code == 2 and "pause or resume" in one_document(bad)["message"]


def test_generate_config_checkpoint_restore_match_the_schema(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    generated = s.json("generate-config")
    validate("generate-config", generated)
    assert generated["file"] is None and generated["config"] == json.loads(s.ok("generate-config", "-o", "json").out)
    assert generated["configs"] == sorted(generated["config"]["mig-configs"])
    out = tmp_path / "generated.yaml"
    written = s.json("generate-config", "-f", str(out))
    validate("generate-config", written)
    assert written["file"] == str(out) and out.read_text() == s.ok("generate-config").out

    s.ok("apply", "--layout", "3g.48gb@4[1c,2c],1g.12gb@0", "-i", "0")
    ck = tmp_path / "ck.json"
    report = s.json("checkpoint", "-f", str(ck))
    validate("checkpoint", report)
    assert report["file"] == str(ck) and json.loads(ck.read_text()) == report["checkpoint"]
    assert json.loads(s.ok("checkpoint").out) == report["checkpoint"]  # without --json: the file itself
    validate("checkpoint", s.json("checkpoint"))

    s.ok("apply", "--layout", "1g.12gb:7")
    restored = s.json("restore", "-f", str(ck))
    validate("restore", restored)
    assert restored["ok"] is True and restored["source"] == str(ck) and restored["mode_only"] is False
    only_mode = s.json("restore", "-f", str(ck), "--mode-only")
    validate("restore", only_mode)
    assert only_mode["mode_only"] is True and {g["result"] for g in only_mode["gpus"]} == {"unchanged"}
    ck.write_text('{"version": "migctl.checkpoint/v1", "gpus": "none"}')
    bad = s("restore", "-f", str(ck), "--json")
    assert bad.code == 2
    validate("error", one_document(bad))


def test_apply_mode_only_and_skip_reset_match_the_schema(migctl: Cli) -> None:
    s = Sim(migctl, "a100-40gb")
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        s.ok("sim", "attach", "--pid", str(job.pid), "-i", "0")
        pending = s("apply", "--layout", "1g.5gb", "--mode-only", "--json")
        assert pending.code == 7
        validate("apply", one_document(pending))
        skipped = s("apply", "--layout", "1g.5gb", "--mode-only", "--skip-reset", "--json")
        assert skipped.code == 0
        validate("apply", one_document(skipped))
    finally:
        job.kill()
        job.wait()


# -- the Python API returns the records the commands print ------------------------------------------------


def test_node_checkpoint_restore_and_generate_config(migctl: Cli, state_dir: Path, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "3g.48gb@4[1c,2c],1g.12gb@0", "-i", "0")
    with migctl_node(state_dir) as node:
        saved = node.checkpoint(file=tmp_path / "ck.json")
        assert isinstance(saved.checkpoint, Checkpoint)
        assert to_data(saved.checkpoint) == s.json("checkpoint")["checkpoint"]
        assert to_data(node.generate_config()) == s.json("generate-config")
        node.apply("1g.12gb:7")
        back = node.restore(saved.checkpoint)
        assert back.ok and back.source == "<checkpoint>"
        assert to_data(node.checkpoint().checkpoint)["gpus"][0]["gpu_instances"] == [
            {**gi, "compute_instances": [{**ci, "uuid": ANY} for ci in gi["compute_instances"]]}
            for gi in to_data(saved.checkpoint)["gpus"][0]["gpu_instances"]
        ]
        again = node.restore(tmp_path / "ck.json")  # a file, as restore -f reads it
        assert again.ok and {g.result for g in again.gpus} == {"unchanged"}
        with pytest.raises(UsageError, match="yaml or json"):
            node.generate_config(fmt="toml")


def test_node_exports_for_slurm_and_kubernetes(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "1g.12gb:7")
    with migctl_node(state_dir) as node:
        slurm = node.export_slurm(node_name="gpu7")
        assert to_data(slurm) == s.json("export", "--format", "slurm", "--node-name", "gpu7")
        assert slurm.counts == {"nvidia_h20_1g.12gb": 14}
        assert to_data(node.export_k8s()) == s.json("export", "--format", "k8s")


def test_node_apply_skip_reset_counts_a_pending_mode_as_done(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "a100-40gb")
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        s.ok("sim", "attach", "--pid", str(job.pid), "-i", "0")
        with migctl_node(state_dir, "a100-40gb") as node:
            assert node.apply("1g.5gb", mode_only=True).ok is False
            report = node.apply("1g.5gb", mode_only=True, skip_reset=True)
            assert report.ok is True and report.gpus[0].result == "pending"
    finally:
        job.kill()
        job.wait()
