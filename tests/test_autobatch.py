"""``migctl batch --auto``: migctl picks each job's profile, reshapes idle slices, and runs the jobs.

The node is a simulated A100-40GB (MIG on, no instances unless a test makes some). Batches run
through the CLI in-process (real child processes) and through ``migctl.Node.auto_batch``; what
needs a real process (Ctrl-C, ``kill -9`` in the middle of a reshape) runs ``python -m migctl``.
Each job writes the device variables it was given, so the tests check where jobs really ran.

(A little over 400 lines: one command's behaviours, sharing the node fixture and job helpers.)
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Cli
from migctl.records.schema import by_command, command_schema

SPEC = "a100-40gbx2"


@pytest.fixture
def node(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two A100-40GB with MIG on and no instances; returns the folder the jobs report into."""
    import migctl

    monkeypatch.setenv("MIGCTL_SIM", SPEC)
    with migctl.Node(sim=SPEC) as api:
        api.set_mig_mode(True)
    out = state_dir.parent / "seen"
    out.mkdir()
    return out


def job(name: str, seen: Path, seconds: float, **keys: Any) -> dict[str, Any]:
    """A jobs-file entry that records its device variables, then sleeps."""
    script = f'echo "$MIGCTL_PROFILE $MIGCTL_GPU_INDEX $MIGCTL_GPU_INSTANCE_ID" > {seen}/{name}; sleep {seconds}'
    return {"name": name, "command": ["sh", "-c", script], **keys}


def jobs_file(path: Path, *jobs: dict[str, Any], defaults: dict[str, Any] | None = None) -> Path:
    path.write_text(json.dumps({**({"defaults": defaults} if defaults else {}), "jobs": list(jobs)}))
    return path


def run_auto(migctl: Cli, path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = migctl("batch", "--auto", str(path), "--logs", str(path.parent / "logs"), "--json", *args, env=env)
    assert r.code == 0, r.err + r.out
    data: dict[str, Any] = r.json()
    jsonschema.validate(data, command_schema(by_command()["batch --auto"].record), cls=jsonschema.Draft202012Validator)
    return data


def seen(where: Path, name: str) -> tuple[str, int, int]:
    profile, gpu, gi = (where / name).read_text().split()
    return profile, int(gpu), int(gi)


def schedule(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in data["schedule"]}


def test_each_job_runs_where_the_record_says_with_enough_memory(migctl: Cli, node: Path, tmp_path: Path) -> None:
    memory = {"small": 4096, "mid": 9000, "big": 15 * 1024, "huge": 30 * 1024}
    path = jobs_file(
        tmp_path / "jobs.json", *(job(n, node, 0.3, memory=f"{m}MiB", work=0.3) for n, m in memory.items())
    )
    data = run_auto(migctl, path)
    assert data["summary"]["succeeded"] == 4
    listed = migctl("--json", "profiles", "-i", "0").json()["gpus"][0]["profiles"]
    profiles = {p["name"]: p["memory_mib"] for p in listed}
    for name, s in schedule(data).items():
        assert seen(node, name) == (s["profile"], s["gpu"], s["gpu_instance_id"])  # what the job itself saw
        assert profiles[s["profile"]] >= memory[name]
        assert s["start_s"] <= s["end_s"] <= data["summary"]["wall_s"]
        assert s["predicted_end_s"] == pytest.approx(s["start_s"] + 0.3, abs=0.01)
    # Without speeds every profile is as fast: each job gets the smallest one its memory fits.
    assert [schedule(data)[n]["profile"] for n in memory] == ["1g.5gb", "2g.10gb", "3g.20gb", "7g.40gb"]
    jobs = {j["name"]: j for j in data["jobs"]}
    assert all(jobs[n]["instance"]["profile"] == schedule(data)[n]["profile"] for n in memory)


def test_a_lone_job_that_scales_gets_the_whole_gpu_and_a_crowd_shares_it(
    migctl: Cli, node: Path, tmp_path: Path
) -> None:
    scales = {"1g": 1, "2g": 2, "3g": 3, "4g": 4, "7g": 7}
    lone = jobs_file(tmp_path / "a.json", job("t", node, 0.2, memory="1GiB", work=1.4, speeds=scales))
    alone = run_auto(migctl, lone, "-i", "0")
    assert schedule(alone)["t"]["profile"] == "7g.40gb"
    assert seen(node, "t")[0] == "7g.40gb"
    # Seven jobs that run no faster on a bigger slice: seven 1g slices, all at once.
    crowd = jobs_file(tmp_path / "c.json", *(job(f"c{i}", node, 0.8, memory="4GiB", work=0.8) for i in range(7)))
    data = run_auto(migctl, crowd, "-i", "0")
    runs = schedule(data).values()
    assert {s["profile"] for s in runs} == {"1g.5gb"} and {s["gpu"] for s in runs} == {0}
    assert len({s["gpu_instance_id"] for s in runs}) == 7
    assert max(s["start_s"] for s in runs) < min(s["end_s"] for s in runs)  # side by side
    assert data["auto"]["gpus"] == [0]


def test_jct_serves_the_short_job_first_and_makespan_the_long_one(migctl: Cli, node: Path, tmp_path: Path) -> None:
    # Both need 30 GiB: only the whole GPU holds either, so they run one after the other.
    path = jobs_file(
        tmp_path / "jobs.json",
        job("long", node, 0.6, work=0.6),
        job("short", node, 0.2, work=0.2),
        defaults={"memory": "30GiB"},
    )
    for objective, first in (("jct", "short"), ("makespan", "long")):
        data = run_auto(migctl, path, "-i", "0", "--objective", objective)
        runs = schedule(data)
        second = "long" if first == "short" else "short"
        assert runs[first]["end_s"] <= runs[second]["start_s"] + 0.05, (objective, runs)
        assert data["auto"]["objective"] == objective


def test_a_busy_instance_is_never_touched_and_idle_ones_are_reshaped(
    migctl: Cli, node: Path, tmp_path: Path
) -> None:
    from migctl.ops import leases

    made = migctl("create", "-i", "0", "3g.20gb", "1g.5gb", "--json").json()["created"]
    busy = next(c for c in made if c["profile"] == "3g.20gb")
    idle = next(c for c in made if c["profile"] == "1g.5gb")
    held = leases.try_acquire(busy["uuid"], command="someone else's job")
    assert held is not None
    try:
        # Needs 9000 MiB: the idle 1g.5gb is too small and must make room for 2g.10gb instances.
        entries = [job(f"j{i}", node, 0.3, memory="9000MiB", work=0.3) for i in range(2)]
        path = jobs_file(tmp_path / "jobs.json", *entries)
        data = run_auto(migctl, path, "-i", "0")
    finally:
        held.release()
    assert data["summary"]["succeeded"] == 2
    gis = {g["id"]: g for g in migctl("status", "-i", "0", "--json").json()["gpus"][0]["gpu_instances"]}
    assert gis[busy["gpu_instance_id"]]["compute_instances"][0]["uuid"] == busy["uuid"]  # untouched
    where = f"@{busy['placement']['start']}:{busy['placement']['size']}"
    assert all(not d.endswith(where) for r in data["reshapes"] for d in r["destroyed"])
    assert idle["gpu_instance_id"] not in gis  # the idle one in the way was destroyed
    assert any(d.startswith("1g.5gb@") for r in data["reshapes"] for d in r["destroyed"])
    for s in schedule(data).values():
        assert s["gpu_instance_id"] != busy["gpu_instance_id"]
        assert s["profile"] == "2g.10gb"


def test_a_reshape_the_driver_fails_is_rolled_back_and_tried_again(
    migctl: Cli, node: Path, tmp_path: Path, state_dir: Path
) -> None:
    path = jobs_file(tmp_path / "jobs.json", job("a", node, 0.2, memory="4GiB", work=0.2))
    data = run_auto(migctl, path, "-i", "0", env={"MIGCTL_SIM_FAULTS": "create-gi@1=INSUFFICIENT_RESOURCES"})
    results = [r["result"] for r in data["reshapes"]]
    assert results == ["rolled_back", "applied"], data["reshapes"]
    assert "Insufficient Resources" in data["reshapes"][0]["detail"] or "insufficient" in data["reshapes"][0]["detail"]
    assert data["summary"]["succeeded"] == 1
    assert not list((state_dir / "journal").glob("*.json"))


def test_it_waits_for_an_instance_someone_else_holds(migctl: Cli, node: Path, tmp_path: Path) -> None:
    import threading

    from migctl.ops import leases

    (whole,) = migctl("create", "-i", "0", "7g.40gb", "--json").json()["created"]
    held = leases.try_acquire(whole["uuid"], command="someone else's job")
    assert held is not None
    threading.Timer(1.0, held.release).start()
    path = jobs_file(tmp_path / "jobs.json", job("a", node, 0.1, memory="30GiB", work=0.1))
    data = run_auto(migctl, path, "-i", "0")
    (s,) = data["schedule"]
    assert s["start_s"] >= 1.0 and s["gpu_instance_id"] == whole["gpu_instance_id"]  # reused once free
    assert data["reshapes"] == []


def test_a_reshape_that_keeps_failing_gives_the_jobs_up(
    migctl: Cli, node: Path, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from migctl.ops import autobatch

    monkeypatch.setattr(autobatch, "RECHECK_S", 0.05)  # try again soon, give up after three tries
    monkeypatch.setattr(autobatch, "MAX_IDLE_ROUNDS", 3)
    path = jobs_file(tmp_path / "jobs.json", job("a", node, 0.1, memory="1GiB", work=0.1))
    r = migctl(
        "batch", "--auto", str(path), "-i", "0", "--logs", str(tmp_path / "logs"), "--json",
        env={"MIGCTL_SIM_FAULTS": "create-gi=UNKNOWN"},
    )
    assert r.code == 1, r.err
    data = r.json()
    (j,) = data["jobs"]
    assert j["status"] == "failed" and j["attempts"] == 0
    assert j["reason"].startswith("could not be started in 3 tries: GPU 0:"), j["reason"]
    assert [x["result"] for x in data["reshapes"]] == ["rolled_back"] * 3
    assert migctl("status", "-i", "0", "--json").json()["gpus"][0]["gpu_instances"] == []
    assert not list((state_dir / "journal").glob("*.json"))


def test_mig_is_switched_on_for_the_batch_on_an_idle_gpu(migctl: Cli, node: Path, tmp_path: Path) -> None:
    migctl("mode", "disable", "-i", "1")
    # Planned at 20 s each (they end sooner): worth a mode change (about 5 s with the reset) rather than waiting.
    path = jobs_file(tmp_path / "jobs.json", *(job(f"j{i}", node, 0.5, memory="30GiB", work=20) for i in range(2)))
    data = run_auto(migctl, path)
    assert data["summary"]["succeeded"] == 2
    assert {s["gpu"] for s in data["schedule"]} == {0, 1}  # both GPUs, side by side
    (enabled,) = [r for r in data["reshapes"] if r["enable_mig"]]
    assert enabled["gpu"] == 1 and enabled["result"] == "applied"
    assert migctl("status", "-i", "1", "--json").json()["gpus"][0]["mig"]["current"] is True


def test_retries_timeouts_and_the_speed_table(migctl: Cli, node: Path, tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    flaky = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 4"
    path = jobs_file(
        tmp_path / "jobs.json",
        {"name": "flaky", "command": ["sh", "-c", flaky], "memory": "1GiB", "work": 0.1, "retries": 1},
        {"name": "slow", "command": ["sleep", "30"], "memory": "1GiB", "work": 0.1, "timeout": 0.5},
        job("bert", node, 0.1, model="bert", batch=4, work=0.1),
    )
    r = migctl("batch", "--auto", str(path), "--logs", str(tmp_path / "logs"), "--grace", "1", "--json")
    assert r.code == 1, r.err
    data = r.json()
    jobs = {j["name"]: j for j in data["jobs"]}
    assert jobs["flaky"]["status"] == "succeeded" and jobs["flaky"]["attempts"] == 2
    assert jobs["slow"]["status"] == "failed" and jobs["slow"]["reason"].startswith("timed out after 0.5 s")
    bert = schedule(data)["bert"]
    assert bert["model"] == "bert:4" and bert["memory_mib"] == 9984  # the speed table's row
    assert seen(node, "bert")[0] == bert["profile"]


def test_plain_batch_ignores_the_auto_keys(migctl: Cli, node: Path, tmp_path: Path) -> None:
    migctl("create", "-i", "0", "1g.5gb")
    path = jobs_file(tmp_path / "jobs.json", job("a", node, 0, memory="30GiB", work="1h", speeds={"7g": 1}))
    r = migctl("batch", str(path), "--logs", str(tmp_path / "logs"), "--json")
    assert r.code == 0, r.err
    assert seen(node, "a")[0] == "1g.5gb"


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        ({"command": ["true"], "work": 1}, ":1: jobs[0]:", "with --auto each job needs memory:"),
        ({"command": ["true"], "memory": "1GiB"}, ":1: jobs[0]:", "with --auto each job needs work:"),
        ({"command": ["true"], "model": "alexnet", "work": 1}, ":1: jobs[0].model:", "no workload named 'alexnet'"),
        ({"command": ["true"], "model": "bert", "batch": 3, "work": 1}, ":1: jobs[0].model:", "at batch sizes"),
        ({"command": ["true"], "memory": "1GiB", "work": 1, "profile": "1g.5gb"}, ":1: jobs[0].profile:", "remove"),
        ({"command": ["true"], "memory": "50GiB", "work": 1}, ":1: jobs[0].memory:", "largest instance here (7g.40gb)"),
        ({"command": ["true"], "memory": "1GiB", "work": 1, "speeds": {"9g": 1}}, ":1: jobs[0].memory:", "(9g)"),
        ({"command": ["no-such-program"], "memory": "1GiB", "work": 1}, ":1: jobs[0].command:", "no-such-program"),
    ],
)
def test_a_bad_auto_job_fails_before_anything_changes(
    migctl: Cli, node: Path, tmp_path: Path, entry: dict[str, Any], where: str, message: str
) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"jobs": [entry]}))
    before = migctl("status", "--json").json()
    r = migctl("batch", "--auto", str(path), "--logs", str(tmp_path / "logs"))
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"migctl: error: {path}{where}"), lines
    assert message in lines[0]
    assert migctl("status", "--json").json() == before
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--auto", "J", "--objective", "fast"), "--objective fast: expected one of jct, makespan"),
        (("J", "-i", "0"), "batch -i goes with --auto"),
        (("J", "--objective", "jct"), "batch --objective goes with --auto"),
        (("--auto", "--each-instance", "--", "true"), "--each-instance does not go with it"),
        (("--auto", "J", "--max-parallel", "2"), "--max-parallel does not go with it"),
        (("--auto", "J", "-i", "7"), "-i 7: GPU 7 does not exist"),
    ],
)
def test_bad_auto_options_are_one_line_errors(
    migctl: Cli, node: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    path = jobs_file(tmp_path / "jobs.json", job("a", node, 0, memory="1GiB", work=1))
    r = migctl("batch", *(str(path) if a == "J" else a for a in args))
    assert r.code == 2, r.err
    assert len(r.err.strip().splitlines()) == 1 and message in r.err, r.err


def test_the_python_api_returns_the_same_record(node: Path, tmp_path: Path) -> None:
    import migctl
    from migctl.config.autojobs import needs
    from migctl.config.jobs import job as make_job
    from migctl.errors import UsageError
    from migctl.records.autobatch import AutoBatchReport

    with migctl.Node(sim=SPEC) as api:
        report = api.auto_batch(
            [make_job(["sh", "-c", f"echo $MIGCTL_PROFILE > {node}/x"], name="x", auto=needs(memory="15GiB", work=1))],
            gpus=1,
            logs_dir=tmp_path / "logs",
        )
        assert isinstance(report, AutoBatchReport)
        assert report.schedule[0].gpu == 1 and report.schedule[0].profile == "3g.20gb"
        assert (node / "x").read_text().strip() == "3g.20gb"
        with pytest.raises(UsageError, match="job 'y': with --auto each job needs memory"):
            api.auto_batch([make_job(["true"], name="y")])
        with pytest.raises(UsageError, match="objective 'fast'"):
            api.auto_batch([], objective="fast")


def _python_migctl(state_dir: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM": SPEC, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "migctl", *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_sigint_stops_the_jobs_and_prints_the_summary(node: Path, tmp_path: Path, state_dir: Path) -> None:
    from migctl.ops import leases

    path = jobs_file(tmp_path / "jobs.json", *(job(f"j{i}", node, 30, memory="15GiB", work=30) for i in range(6)))
    p = _python_migctl(state_dir, "batch", "--auto", str(path), "--logs", str(tmp_path / "logs"), "--grace", "2")
    deadline = time.monotonic() + 20
    while len(list(node.iterdir())) < 4 and time.monotonic() < deadline:  # two 3g.20gb per GPU: four run
        time.sleep(0.05)
    assert len(list(node.iterdir())) == 4
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130, err
    assert "stopped by SIGINT" in out and "4 interrupted" in out and "2 not started" in out
    assert leases.holder_records() == {}
    assert len(list(node.iterdir())) == 4  # nothing started after Ctrl-C


def test_ctrl_c_during_a_reshape_lets_it_finish(node: Path, tmp_path: Path, state_dir: Path) -> None:
    """With slow NVML calls (latency x25: about 0.4 s per instance) Ctrl-C arrives mid-reshape."""
    path = jobs_file(tmp_path / "jobs.json", *(job(f"j{i}", node, 30, memory="4GiB", work=30) for i in range(7)))
    p = _python_migctl(
        state_dir, "batch", "--auto", str(path), "-i", "0", "--logs", str(tmp_path / "logs"), "--grace", "1",
        MIGCTL_SIM_LATENCY="25",
    )
    journal = state_dir / "journal" / "gpu-0.json"
    deadline = time.monotonic() + 20
    while not journal.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert journal.exists(), "the reshape never started"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert not journal.exists()
    gis = json.loads(
        subprocess.run(
            [sys.executable, "-m", "migctl", "status", "-i", "0", "--json"],
            env={**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM": SPEC},
            capture_output=True, text=True, check=True,
        ).stdout
    )["gpus"][0]["gpu_instances"]
    assert len(gis) == 7 and all(len(g["compute_instances"]) == 1 for g in gis)  # the whole plan, nothing half-made
    assert "7 not started" in out


def test_kill_9_during_a_reshape_is_finished_by_recover(node: Path, tmp_path: Path, state_dir: Path) -> None:
    path = jobs_file(tmp_path / "jobs.json", *(job(f"j{i}", node, 30, memory="4GiB", work=30) for i in range(7)))
    p = _python_migctl(state_dir, "batch", "--auto", str(path), "-i", "0", "--logs", str(tmp_path / "logs"),
                       MIGCTL_SIM_LATENCY="25")
    journal = state_dir / "journal" / "gpu-0.json"
    deadline = time.monotonic() + 20
    while not journal.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # a few instances in
    p.kill()
    p.communicate(timeout=10)
    assert journal.exists()
    r = subprocess.run(
        [sys.executable, "-m", "migctl", "recover", "--json"],
        env={**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM": SPEC},
        capture_output=True, text=True, check=False,
    )
    assert r.returncode == 0, r.stderr
    (recovered,) = json.loads(r.stdout)["recovered"]
    assert recovered["result"] == "finished"
    assert not journal.exists()


MEMORY = {"1GiB": 1024, "4GiB": 4096, "9000MiB": 9000, "15GiB": 15360, "30GiB": 30720}
SPEEDS: list[dict[str, float] | None] = [None, {"1g": 1, "7g": 7}, {"1g": 1, "2g": 1.2, "7g": 1.3}, {"3g.20gb": 1}]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(MEMORY)), st.sampled_from(range(len(SPEEDS))), st.sampled_from([0.05, 0.3])),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["jct", "makespan"]),
)
def test_any_batch_runs_every_job_alone_on_an_instance_with_its_memory(
    migctl: Cli, node: Path, tmp_path: Path, state_dir: Path, entries: list[tuple[str, int, float]], objective: str
) -> None:
    for f in node.iterdir():
        f.unlink()
    jobs = []
    for i, (memory, speeds, seconds) in enumerate(entries):
        keys: dict[str, Any] = {"memory": memory, "work": seconds}
        if SPEEDS[speeds] is not None:
            keys["speeds"] = SPEEDS[speeds]
        if speeds == 3 and MEMORY[memory] > 20096:
            keys["speeds"] = {"7g": 1}  # 3g.20gb alone cannot hold it
        jobs.append(job(f"j{i}", node, seconds, **keys))
    data = run_auto(migctl, jobs_file(tmp_path / "jobs.json", *jobs), "--objective", objective)
    assert data["summary"]["succeeded"] == len(entries)
    listed = migctl("--json", "profiles", "-i", "0").json()["gpus"][0]["profiles"]
    memory_of = {p["name"]: p["memory_mib"] for p in listed}
    by_instance: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for (memory, _, _), s in zip(entries, data["schedule"], strict=True):
        assert memory_of[s["profile"]] >= MEMORY[memory]
        assert seen(node, s["name"]) == (s["profile"], s["gpu"], s["gpu_instance_id"])
        by_instance.setdefault((s["gpu"], s["gpu_instance_id"]), []).append((s["start_s"], s["end_s"]))
    for spans in by_instance.values():  # one job at a time on an instance
        spans.sort()
        assert all(a[1] <= b[0] + 0.01 for a, b in itertools.pairwise(spans)), spans
    assert not list((state_dir / "journal").glob("*.json"))
