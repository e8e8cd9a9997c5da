"""``batch --auto -i``: the same ``-i`` as every command (docs/cli.md), with its rule for a batch
that reshapes GPUs: without ``-i`` every MIG-capable GPU (the others skipped, as ``mode``
does), and a named GPU that is not MIG-capable is a one-line error that changes nothing.

The node is a simulated A100-40GB (MIG on) beside an L40S (not MIG-capable); each job writes the
GPU it was given, so the tests check where jobs really ran.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Sim, SimFactory, one_line_error

SPEC = "a100-40gb,l40s"


@pytest.fixture
def mixed(sim: SimFactory) -> Sim:
    return sim(SPEC, enable="0")


def jobs_file(tmp_path: Path, n: int = 2) -> Path:
    seen = tmp_path / "seen"
    seen.mkdir()
    report = 'echo "$MIGCTL_GPU_INDEX" > {}/{}'
    jobs = [
        {"name": f"j{i}", "command": ["sh", "-c", report.format(seen, f"j{i}")], "memory": "1GiB", "work": 0.1}
        for i in range(n)
    ]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"jobs": jobs}))
    return path


def ran_on(path: Path) -> set[int]:
    return {int(f.read_text()) for f in (path.parent / "seen").iterdir()}


def test_without_i_it_uses_every_mig_capable_gpu_and_skips_the_others(mixed: Sim, tmp_path: Path) -> None:
    path = jobs_file(tmp_path)
    data: dict[str, Any] = mixed.json("batch", "--auto", str(path), "--logs", str(tmp_path / "logs"))
    assert data["auto"]["gpus"] == [0]
    assert data["summary"]["succeeded"] == 2
    assert ran_on(path) == {0}


@pytest.mark.parametrize("form", ["index", "uuid", "bus_id", "short_bus_id", "list"])
def test_i_takes_every_form_the_other_commands_take(mixed: Sim, tmp_path: Path, form: str) -> None:
    gpu0 = mixed.gpu(0)
    spec = {
        "index": "0",
        "uuid": gpu0["uuid"].lower(),
        "bus_id": gpu0["bus_id"],
        "short_bus_id": gpu0["bus_id"].split(":", 1)[1],  # bus:device.function
        "list": "0,0",
    }[form]
    path = jobs_file(tmp_path)
    data = mixed.json("batch", "--auto", str(path), "-i", spec, "--logs", str(tmp_path / "logs"))
    assert data["auto"]["gpus"] == [0]
    assert ran_on(path) == {0}


@pytest.mark.parametrize("spec", ["1", "all", "0-1"])
def test_naming_a_gpu_that_is_not_mig_capable_fails_and_changes_nothing(
    mixed: Sim, tmp_path: Path, spec: str
) -> None:
    path = jobs_file(tmp_path)
    before = mixed.status()
    line = one_line_error(mixed("batch", "--auto", str(path), "-i", spec, "--logs", str(tmp_path / "logs")), 2)
    assert f"-i {spec}: GPU 1 (NVIDIA L40S) is not MIG-capable" in line
    assert mixed.status() == before
    assert not (tmp_path / "logs").exists() and ran_on(path) == set()
    r = mixed("--json", "batch", "--auto", str(path), "-i", spec)  # one JSON document, the error's
    assert r.code == 2 and r.err == ""
    error = r.json()
    assert (error["error"], error["exit_code"]) == ("usage", 2) and "not MIG-capable" in error["message"]
