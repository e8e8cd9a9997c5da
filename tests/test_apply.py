"""Declarative layouts (issue 4) through the CLI: plan, apply, assert, export, recover, hooks.

Commands run in-process through the CLI's own entry point (the ``migctl`` fixture) on a private
simulated node; processes on instances are real ``sleep`` processes recorded with ``migctl sim
attach``; a crash is a real ``kill -9`` of a real ``migctl apply`` process. Snapshots of the
node are read through the Python API (``migctl.Node(...).status()``, the record ``status
--json`` prints) where speed matters, and through ``status --json`` where the point is what a
user sees. NVIDIA's default config file is exercised in
``test_default_config_matrix.py``; these tests bring their own files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml
import pytest
import yaml

from conftest import Cli, Sim, running_on
from migctl.device import open_node

BALANCED = "3g.48gb,2g.24gb,1g.12gb:2"  # H20's all-balanced, inline
NO_MUTATION = "create-gi=UNKNOWN,destroy-gi=UNKNOWN,create-ci=UNKNOWN,destroy-ci=UNKNOWN,set-mig-mode=UNKNOWN"

MIXED_CONFIG = """\
version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false

  training:
    - device-filter: ["0x233010DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "3g.40gb": 2

    - device-filter: "0x232910DE"
      devices: all
      mig-enabled: true
      mig-devices:
        "3g.48gb": 1
        "1g.12gb": 4

  shared:
    - devices: all
      mig-enabled: true
      mig-devices:
        "4g.40gb": 1
"""


def shape(status: dict[str, Any]) -> list[Any]:
    """Per GPU: MIG mode and the placements of its GPU and compute instances (no IDs, no UUIDs)."""
    out = []
    for g in status["gpus"]:
        gis = sorted(
            (
                gi["profile"],
                gi["placement"]["start"],
                gi["placement"]["size"],
                tuple(
                    sorted(
                        (ci["profile"], ci["placement"]["start"], ci["placement"]["size"])
                        for ci in gi["compute_instances"]
                    )
                ),
            )
            for gi in g["gpu_instances"]
        )
        out.append((g["mig"]["current"], gis))
    return out


def identities(status: dict[str, Any], gpu: int) -> dict[tuple[str, int], tuple[int, tuple[str, ...]]]:
    """(profile, start) -> (GI ID, MIG UUIDs) on one GPU."""
    return {
        (gi["profile"], gi["placement"]["start"]): (gi["id"], tuple(ci["uuid"] for ci in gi["compute_instances"]))
        for gi in status["gpus"][gpu]["gpu_instances"]
    }


def uuid_of(status: dict[str, Any], gpu: int, profile: str) -> str:
    (uuid,) = [
        ci["uuid"]
        for gi in status["gpus"][gpu]["gpu_instances"]
        if gi["profile"] == profile
        for ci in gi["compute_instances"]
    ]
    return str(uuid)


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- config files --------------------------------------------------------------------------


def test_v1_file_selects_by_name_and_resolves_names_per_gpu_on_a_mixed_node(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h100-80gbx2,h20x2")
    cfg = write(tmp_path / "mixed.yaml", MIXED_CONFIG)
    out = s.ok("apply", "-f", cfg, "-c", "training").out
    assert "GPUs 0-1 (NVIDIA H100 80GB HBM3)" in out and "GPUs 2-3 (NVIDIA H20)" in out
    st = s.status()
    for i in (0, 1):
        assert sorted(gi["profile"] for gi in st["gpus"][i]["gpu_instances"]) == ["3g.40gb", "3g.40gb"]
    for i in (2, 3):
        assert sorted(gi["profile"] for gi in st["gpus"][i]["gpu_instances"]) == ["1g.12gb"] * 4 + ["3g.48gb"]
    s.ok("assert", "-f", cfg, "-c", "training")
    # The same file, read from stdin, selecting another config.
    r = s.ok("apply", "-f", "-", "-c", "all-disabled", input=MIXED_CONFIG)
    assert "disable MIG mode" in r.out
    assert [g["mig"]["current"] for g in s.status()["gpus"]] == [False] * 4


def test_a_profile_the_gpu_lacks_is_refused_naming_the_gpu_and_the_nearest_profile(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20,b200")
    cfg = write(
        tmp_path / "cfg.yaml",
        """\
        version: v1
        mig-configs:
          custom:
            - devices: all
              mig-enabled: true
              mig-devices:
                "1g.24gb": 2
        """,
    )
    before = s.status()
    r = s("apply", "-f", cfg, "-c", "custom")
    assert r.code == 2, r
    assert f"{cfg}:7: mig-configs.custom[0].mig-devices.1g.24gb:" in r.err
    assert "GPU 1 (NVIDIA B200, 0x290110DE) has no profile 1g.24gb; did you mean 1g.23gb?" in r.err
    assert s.status() == before  # not even the H20, which has 1g.24gb, was touched
    # mig-parted's other flavour of the same mistake: a profile of another board generation.
    r = s("plan", "-f", "-", "-c", "shared", "-i", "0", input=MIXED_CONFIG)
    assert r.code == 2 and "GPU 0 (NVIDIA H20, 0x232910DE) has no profile 4g.40gb; did you mean 4g.48gb?" in r.err


@pytest.mark.parametrize(
    ("body", "line", "key", "words"),
    [
        (
            "      mig-enabled: yes please\n      mig-devices: {}\n",
            5,
            "mig-configs.c[0].mig-enabled",
            "expected true or false",
        ),
        (
            "      mig-enabled: true\n      mig-devices:\n        1g.12gb: -1\n",
            7,
            "mig-configs.c[0].mig-devices.1g.12gb",
            ">= 0",
        ),
        (
            "      mig-enabled: false\n      mig-device: {}\n",
            6,
            "mig-configs.c[0].mig-device",
            "did you mean 'mig-devices'",
        ),
        (
            "      device-filter: 0x232910DE\n      mig-enabled: false\n",  # unquoted: a number
            5,
            "mig-configs.c[0].device-filter",
            "expected a PCI device ID like 0x233010DE",
        ),
    ],
    ids=["bool", "count", "unknown-key", "device-filter"],
)
def test_validation_errors_name_file_line_and_key(
    migctl: Cli, tmp_path: Path, body: str, line: int, key: str, words: str
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("version: v1\nmig-configs:\n  c:\n    - devices: all\n" + body)
    r = Sim(migctl, "h20")("apply", "-f", str(cfg), "-c", "c")
    assert r.code == 2, r
    assert r.err.startswith(f"migctl: error: {cfg}:{line}: {key}: "), r.err
    assert words in r.err


def test_x_migctl_placements_and_compute_instances(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20")
    cfg = write(
        tmp_path / "x.yaml",
        """\
        version: v1
        mig-configs:
          inference:
            - device-filter: "0x232910DE"
              devices: all
              mig-enabled: true
              mig-devices: {"3g.48gb": 1, "2g.24gb": 1, "1g.12gb": 2}
              x-migctl:
                instances:
                  - profile: 3g.48gb
                    placement: 4
                    compute: [1c.3g.48gb, 1c.3g.48gb, 1c.3g.48gb]
                  - profile: 2g.24gb
                    placement: 0
                  - profile: 1g.12gb
                    placement: 3
        """,
    )
    s.ok("apply", "-f", cfg, "-c", "inference")
    (mode, gis) = shape(s.status())[0]
    assert mode is True
    by_start = {g[1]: g for g in gis}
    assert sorted(by_start) == [0, 2, 3, 4]  # the unpinned 1g.12gb took the one slot left for it
    assert by_start[4][:3] == ("3g.48gb", 4, 4)
    assert [ci[0] for ci in by_start[4][3]] == ["1c.3g.48gb"] * 3
    assert by_start[0][:3] == ("2g.24gb", 0, 2) and [ci[0] for ci in by_start[0][3]] == ["2g.24gb"]
    assert by_start[3][:3] == ("1g.12gb", 3, 1) and by_start[2][:3] == ("1g.12gb", 2, 1)
    s.ok("assert", "-f", cfg, "-c", "inference")


def test_inline_layout_on_a_gpu_range(migctl: Cli) -> None:
    s = Sim(migctl, "h20x5")
    s.ok("apply", "--layout", BALANCED, "-i", "0-3")
    st = s.status()
    for i in range(4):
        assert sorted(gi["profile"] for gi in st["gpus"][i]["gpu_instances"]) == [
            "1g.12gb",
            "1g.12gb",
            "2g.24gb",
            "3g.48gb",
        ]
    assert st["gpus"][4]["mig"]["current"] is False and not st["gpus"][4]["gpu_instances"]
    s.ok("assert", "--layout", BALANCED, "-i", "0-3")
    r = s("assert", "--layout", BALANCED)  # GPU 4 still has MIG off
    assert r.code == 10 and "GPU 4: differs: MIG is disabled, target wants it enabled" in r.out


# -- planning ------------------------------------------------------------------------------


def test_plan_and_dry_run_show_the_plan_and_change_nothing(migctl: Cli) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", BALANCED)
    before = s.ok("status", "--json").out
    for cmd in (("plan",), ("apply", "--dry-run")):
        out = s.ok(*cmd, "--layout", "3g.48gb,1g.12gb:4").out
        assert "GPUs 0-1 (NVIDIA H20):" in out
        assert "keep      GI 2 3g.48gb at 4:4" in out
        assert "destroy   GI 3 2g.24gb at 0:2" in out
        assert "create    1g.12gb at 0:1" in out and "create    1g.12gb at 1:1" in out
        assert "before | GI3 2g.24gb |" in out and "after  | GI+  | GI+  |" in out
        assert s.ok("status", "--json").out == before
    data = s.ok("plan", "--layout", "3g.48gb,1g.12gb:4", "--json").json()
    g0 = data["gpus"][0]
    assert [(e["profile"], e["placement"]["start"]) for e in g0["destroy"]] == [("2g.24gb", 0)]
    assert sorted((c["profile"], c["placement"]["start"]) for c in g0["create"]) == [("1g.12gb", 0), ("1g.12gb", 1)]
    assert len(g0["keep"]) == 3
    assert s.ok("status", "--json").out == before


def test_changing_one_instance_keeps_the_others_with_their_ids_and_uuids(migctl: Cli) -> None:
    s = Sim(migctl, "h20")
    s.ok("apply", "--layout", BALANCED)
    before = identities(s.status(), 0)
    out = s.ok("apply", "--layout", "3g.48gb,1g.12gb:4").out
    assert "GPU 0: applied (kept 3, destroyed 1, created 2)" in out
    after = identities(s.status(), 0)
    kept = {k: v for k, v in before.items() if k[0] != "2g.24gb"}
    assert len(kept) == 3
    for key, ident in kept.items():
        assert after[key] == ident  # same GI ID and the same MIG UUIDs
    assert ("2g.24gb", 0) not in after


def test_a_busy_instance_survives_and_a_target_needing_it_is_refused(migctl: Cli) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", BALANCED)
    busy = uuid_of(s.status(), 0, "3g.48gb")
    with running_on(s, uuid=busy) as proc:
        r = s.ok("apply", "--layout", "3g.48gb,1g.12gb:4")
        assert "keep      GI 2 3g.48gb at 4:4 (busy)" in r.out
        st = s.status()
        assert uuid_of(st, 0, "3g.48gb") == busy
        assert sorted(gi["profile"] for gi in st["gpus"][0]["gpu_instances"]) == ["1g.12gb"] * 4 + ["3g.48gb"]
        for layout in ("7g.96gb", "1g.12gb:7", "3g.48gb@0"):
            r = s("apply", "--layout", layout)
            assert r.code == 5, (layout, r)
            assert f"pid {proc.pid}" in r.err and "GI 2 (3g.48gb at 4:4)" in r.err
            assert "nothing was changed" in r.err
            assert s.status() == st  # GPU 1, which had no process, was not changed either


def test_applying_the_layout_the_gpu_has_makes_no_mutating_nvml_call(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    cfg = write(
        tmp_path / "c.yaml",
        """\
        version: v1
        mig-configs:
          split:
            - devices: [0]
              mig-enabled: true
              mig-devices: {"3g.48gb": 1, "1c.2g.24gb": 1, "1g.12gb": 2}
              x-migctl:
                instances: [{profile: 3g.48gb, placement: 4, compute: [1c.3g.48gb, 2c.3g.48gb]}]
            - devices: [1]
              mig-enabled: false
        """,
    )
    cases: list[tuple[str, ...]] = [("-f", cfg, "-c", "split"), ("--layout", BALANCED), ("--layout", "")]
    for args in cases:
        s.ok("apply", *args)
        before = s.status()
        r = s.ok("apply", *args, env={"MIGCTL_SIM_FAULTS": NO_MUTATION})
        assert "unchanged: already matches" in r.out
        assert s.status() == before
    r = s("apply", "--layout", "1g.12gb", env={"MIGCTL_SIM_FAULTS": NO_MUTATION})
    assert r.code != 0  # the faults are real: a layout that does change something fails


# -- transactions and crashes ----------------------------------------------------------------


def test_a_fault_mid_apply_rolls_that_gpu_back_and_applies_the_others(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x3")
    s.ok("apply", "--layout", BALANCED)
    before = shape(s.status())
    r = s("apply", "--layout", "1g.12gb:7", env={"MIGCTL_SIM_FAULTS": "create-gi:1@2=UNKNOWN"})
    assert r.code == 1, r
    line = next(x for x in r.out.splitlines() if x.startswith("GPU 1:"))
    assert line.startswith("GPU 1: rolled_back: creating 1g.12gb at ")
    assert "Unknown Error (NVML_ERROR_UNKNOWN)" in line and "GPU 1 was rolled back to its previous layout" in line
    after = shape(s.status())
    assert after[1] == before[1]  # the same placements and compute instances as before
    for i in (0, 2):
        assert [g[0] for g in after[i][1]] == ["1g.12gb"] * 7
    assert not list((state_dir / "journal").glob("gpu-*.json"))


def test_a_mode_change_waiting_for_a_reset_is_left_pending_as_the_hint_says(migctl: Cli) -> None:
    s = Sim(migctl, "a100-40gbx2")  # Ampere: enabling MIG with a process on the GPU needs a reset
    proc = subprocess.Popen(["sleep", "30"])
    try:
        s.ok("sim", "attach", "--pid", str(proc.pid), "-i", "0")
        r = s("apply", "--layout", "3g.20gb,2g.10gb")
        assert r.code == 7, r
        assert "GPU 0: pending: MIG mode change on GPU 0 is pending: processes are using it" in r.out
        assert "rolled back" not in r.out
        assert "GPU 1: applied" in r.out
        assert s.status()["gpus"][0]["mig"] == {"current": False, "pending": True}
    finally:
        proc.kill()
        proc.wait()
    s.ok("reset", "-i", "0")  # what the hint says: stop the processes, reset, apply again
    assert "GPU 0: applied (kept 0, destroyed 0, created 2)" in s.ok("apply", "--layout", "3g.20gb,2g.10gb").out


def _wait_for(what: str, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def _gi_counts(spec: str, state_dir: Path) -> list[int]:
    node = open_node(sim=spec, state_dir=str(state_dir))
    try:
        return [len(g.gpu_instances()) for g in node.gpus]
    except pynvml.NVMLError:  # an instance listed a moment ago was destroyed before we read it
        return [-1]  # unknown: look again
    finally:
        node.close()


@pytest.mark.parametrize("then", ["recover", "apply", "recover-with-fault"])
def test_kill_9_mid_apply_is_finished_or_rolled_back(migctl: Cli, state_dir: Path, then: str) -> None:
    spec = "h20x2"
    s = Sim(migctl, spec)
    s.ok("apply", "--layout", BALANCED)
    before = shape(s.status())[0]
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM_LATENCY": "5"}
    # Scale 5: destroying a GI takes ~120 ms, creating one ~85 ms; the apply takes ~0.7 s.
    proc = subprocess.Popen(
        [sys.executable, "-m", "migctl", "--sim", spec, "apply", "--layout", "1g.12gb:7"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for("a journal", lambda: len(list((state_dir / "journal").glob("gpu-*.json"))) == 2)
        _wait_for("the first destroy", lambda: all(0 <= n < 4 for n in _gi_counts(spec, state_dir)))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    half = shape(s.status())
    assert all(g != before and len(g[1]) < 7 for g in half)  # really interrupted half-way, on both GPUs
    if then == "apply":
        r = s.ok("apply", "--layout", "1g.12gb:7")
        assert "recovered GPU 0: finished: finished the interrupted apply of config '--layout'" in r.out
        assert "recovered GPU 1: finished" in r.out
        assert "an interrupted apply left GPU(s) 0, 1 half-changed" in r.out
    elif then == "recover":
        r = s.ok("recover")
        assert "GPU 0: finished: finished the interrupted apply" in r.out
        assert "GPU 1: finished" in r.out
    else:  # finishing GPU 0 fails: it is rolled back to exactly what it had before
        r = s.ok("recover", env={"MIGCTL_SIM_FAULTS": "create-gi@1=UNKNOWN"})
        assert "GPU 0: rolled_back: could not finish config '--layout'" in r.out
        assert "rolled back to the layout before it" in r.out
        assert "GPU 1: finished" in r.out
    final = shape(s.status())
    seven = (True, [("1g.12gb", i, 1, (("1g.12gb", 0, 1),)) for i in range(7)])
    for i, g in enumerate(final):
        assert g in (seven, before), f"GPU {i} is half-applied: {g}"
    assert final[0] == (before if then == "recover-with-fault" else seven)
    assert final[1] == seven
    assert not list((state_dir / "journal").glob("gpu-*.json"))
    assert s.ok("recover").out.strip() == "nothing to recover"


# -- hooks ---------------------------------------------------------------------------------

HOOK_SCRIPT = (
    "import json, os, sys; "
    "open(sys.argv[1], 'a').write(json.dumps([sys.argv[2], "
    "{k: v for k, v in os.environ.items() if k.startswith('MIG_PARTED_')}]) + '\\n')"
)


def _hooks_file(tmp_path: Path, log: Path, fail_at: str | None = None) -> str:
    hooks: dict[str, Any] = {}
    for point in ("apply-start", "pre-apply-mode", "pre-apply-config", "apply-exit"):
        script = "raise SystemExit(3)" if point == fail_at else HOOK_SCRIPT
        hooks[point] = [{"workdir": str(tmp_path), "command": sys.executable, "args": ["-c", script, str(log), point]}]
    path = tmp_path / "hooks.yaml"
    path.write_text(yaml.safe_dump({"version": "v1", "hooks": hooks}))
    return str(path)


def _log(path: Path) -> list[tuple[str, dict[str, str]]]:
    if not path.exists():
        return []
    out: list[tuple[str, dict[str, str]]] = []
    for line in path.read_text().splitlines():
        point, env = json.loads(line)
        out.append((str(point), dict(env)))
    path.unlink()
    return out


def test_hooks_run_at_their_points_with_mig_parted_env(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    cfg = write(tmp_path / "mixed.yaml", MIXED_CONFIG)
    log = tmp_path / "hooks.log"
    hooks = _hooks_file(tmp_path, log)
    s.ok("apply", "-f", cfg, "-c", "training", "-k", hooks)
    ran = _log(log)
    assert [p for p, _ in ran] == ["apply-start", "pre-apply-mode", "pre-apply-config", "apply-exit"]
    for _, env in ran:
        assert env == {
            "MIG_PARTED_CONFIG_FILE": cfg,
            "MIG_PARTED_SELECTED_CONFIG": "training",
            "MIG_PARTED_HOOKS_FILE": hooks,
            "MIG_PARTED_SKIP_RESET": "false",
            "MIG_PARTED_MODE_CHANGE_ONLY": "false",
        }
    # Nothing to change: no pre-apply-mode, no pre-apply-config.
    s.ok("apply", "-f", cfg, "-c", "training", "-k", hooks)
    assert [p for p, _ in _log(log)] == ["apply-start", "apply-exit"]
    # Instances change, the mode does not.
    s.ok("apply", "--layout", BALANCED, "-k", hooks)
    assert [p for p, _ in _log(log)] == ["apply-start", "pre-apply-config", "apply-exit"]
    # apply-exit runs when the apply fails too.
    r = s("apply", "--layout", "1g.12gb:7", "-k", hooks, env={"MIGCTL_SIM_FAULTS": "create-gi@1=UNKNOWN"})
    assert r.code == 1
    assert [p for p, _ in _log(log)] == ["apply-start", "pre-apply-config", "apply-exit"]


def test_a_failing_apply_start_hook_stops_apply_before_any_change(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    log = tmp_path / "hooks.log"
    hooks = _hooks_file(tmp_path, log, fail_at="apply-start")
    before = s.status()
    r = s("apply", "--layout", BALANCED, "-k", hooks)
    assert r.code != 0
    assert "hook apply-start failed" in r.err and "exit code 3" in r.err
    assert s.status() == before
    assert [p for p, _ in _log(log)] == ["apply-exit"]  # apply-exit still runs; nothing in between


def test_a_failing_apply_exit_hook_fails_an_apply_that_otherwise_succeeded(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    log = tmp_path / "hooks.log"
    hooks = _hooks_file(tmp_path, log, fail_at="apply-exit")
    r = s("apply", "--layout", BALANCED, "-k", hooks)
    assert r.code == 1  # as in mig-parted: the apply itself worked, its exit hook did not
    assert "apply-exit hook failed (exit 3)" in r.out
    assert s.ok("assert", "--layout", BALANCED).out.count("matches") == 2  # the layout was applied


# -- assert and export ----------------------------------------------------------------------


def test_assert_exits_0_when_the_node_matches_and_10_with_each_gpus_difference(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h100-80gb,h20")
    cfg = write(tmp_path / "mixed.yaml", MIXED_CONFIG)
    r = s("assert", "-f", cfg, "-c", "training")
    assert r.code == 10
    assert "GPU 0: differs: MIG is disabled, target wants it enabled" in r.out
    s.ok("apply", "-f", cfg, "-c", "training")
    assert s.ok("assert", "-f", cfg, "-c", "training").out.splitlines() == ["GPU 0: matches", "GPU 1: matches"]
    s.ok("apply", "--layout", "3g.48gb,1g.12gb:3", "-i", "1")
    r = s("assert", "-f", cfg, "-c", "training", "--json")
    assert r.code == 10
    data = r.json()
    assert data["matches"] is False
    assert data["gpus"] == [{"gpu": 0, "differences": []}, {"gpu": 1, "differences": ["missing 1x 1g.12gb"]}]


def test_assert_fails_on_a_mig_gpu_no_entry_covers_as_mig_parted_does(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x2")
    only_gpu0 = write(
        tmp_path / "one.yaml",
        "version: v1\nmig-configs:\n  first:\n    - devices: [0]\n      mig-enabled: false\n",
    )
    r = s("assert", "-f", only_gpu0, "-c", "first")
    assert r.code == 10
    assert "GPU 0: matches" in r.out
    assert "GPU 1: differs: no entry of config 'first' covers this GPU" in r.out


def _without_ids(status: dict[str, Any]) -> Any:
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("uuid", "id")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    gpus = strip(status["gpus"])
    for g in gpus:
        g["gpu_instances"].sort(key=lambda gi: gi["placement"]["start"])
    return gpus


def test_export_round_trips_placements_and_compute_layout(migctl: Cli, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x3")
    s.ok("apply", "--layout", "3g.48gb@0[1c,1c,1c],2g.24gb@4,1g.12gb@6", "-i", "0")
    s.ok("apply", "--layout", "1g.24gb@6,2g.24gb@2[1c.2g.24gb],1g.12gb@1", "-i", "1")
    original = _without_ids(s.status())
    for fmt in ("yaml", "json"):
        text = s.ok("export", "-o", fmt).out
        if fmt == "json":
            json.loads(text)
        exported = tmp_path / f"current.{fmt}"
        exported.write_text(text)
        s.ok("sim", "reset")
        s.ok("apply", "-f", str(exported))
        assert _without_ids(s.status()) == original
        s.ok("assert", "-f", str(exported), "-c", "current")
    # --portable: what mig-parted can read, counted as mig-parted's export counts: GPU 0's three
    # 1c compute instances are "1c.3g.48gb: 3", which mig-parted builds as one 3g.48gb instance.
    r = s.ok("export", "--portable")
    assert "x-migctl" not in r.out and "1c.3g.48gb: 3" in r.out and "1c.2g.24gb: 1" in r.out
    assert r.err == ""  # nothing lost but the placements
    (tmp_path / "portable.yaml").write_text(r.out)
    s.ok("assert", "-f", str(tmp_path / "portable.yaml"))  # the same instances, wherever they are
