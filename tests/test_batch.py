"""``migctl batch``: jobs in parallel on MIG devices, retries, timeouts, Ctrl-C, bad jobs files.

The node is a simulated 2x H20 with four MIG devices (GPU 0: three 1g.12gb, GPU 1: one 2g.24gb),
made through the Python API; batches run through the CLI (in-process, with real child
processes), and through ``migctl.Node.batch``. Ctrl-C and the live view need a real process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest

from conftest import Cli
from migctl.records.schema import by_command, command_schema

SPEC = "h20x2"


@pytest.fixture
def node(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import migctl

    monkeypatch.setenv("MIGCTL_SIM", SPEC)
    api = migctl.Node(sim=SPEC)
    api.set_mig_mode(True, gpus=None)
    api.create("1g.12gb:3", gpus="0")
    api.create("2g.24gb", gpus="1")
    st = api.status()
    api.close()
    return [ci.uuid for g in st.gpus for gi in g.gpu_instances for ci in gi.compute_instances]


def validate(document: Any) -> None:
    jsonschema.validate(document, command_schema(by_command()["batch"].record), cls=jsonschema.Draft202012Validator)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def gone(pid: int, within: float = 5.0) -> bool:
    """``pid`` has exited (or does within ``within`` s: a SIGKILLed process dies when next scheduled)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def test_jobs_run_in_parallel_one_per_device(migctl: Cli, node: list[str], tmp_path: Path) -> None:
    jobs = write(
        tmp_path / "jobs.yaml",
        "jobs:\n"
        + "".join(
            f"  - name: j{i}\n    command: [sh, -c, 'echo $CUDA_VISIBLE_DEVICES; sleep 1']\n    env: {{N: {i}}}\n"
            for i in range(4)
        ),
    )
    logs = tmp_path / "logs"
    t0 = time.monotonic()
    r = migctl("batch", str(jobs), "--logs", str(logs), "--json")
    elapsed = time.monotonic() - t0
    assert r.code == 0, r.err
    data = r.json()
    validate(data)
    assert data["summary"]["succeeded"] == 4 and data["summary"]["exit_code"] == 0
    assert data["summary"]["wall_s"] < 1.8  # four 1-s jobs on four devices: about one job's time
    assert elapsed < 4
    used = [j["instance"]["uuid"] for j in data["jobs"]]
    assert sorted(used) == sorted(node)  # each on its own device
    for j in data["jobs"]:
        assert j["exit_code"] == 0 and j["attempts"] == 1 and j["duration_s"] >= 0.9
        log = Path(j["log"]).read_text()
        assert log.startswith(f"### migctl batch: {j['name']} attempt 1 on {j['instance']['uuid']}")
        assert j["instance"]["uuid"] in log.splitlines()[1]  # the job's own output, bound to its device


def test_crashing_job_is_retried_and_failures_set_the_exit_code(
    migctl: Cli, node: list[str], tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    jobs = write(
        tmp_path / "jobs.yaml",
        f"""
defaults:
  retries: 2
jobs:
  - name: flaky           # fails once, then succeeds
    command: [sh, -c, 'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; [ "$n" -ge 1 ]']
  - name: broken
    command: [sh, -c, 'exit 4']
    retries: 1
  - name: oom-like
    command: [sh, -c, 'kill -KILL $$']
    retries: 0
  - name: fine
    command: ["true"]
""",
    )
    r = migctl("batch", str(jobs), "--logs", str(tmp_path / "logs"), "--json")
    assert r.code == 1, r.err
    validate(r.json())
    jobs_out = {j["name"]: j for j in r.json()["jobs"]}
    assert (jobs_out["flaky"]["status"], jobs_out["flaky"]["attempts"]) == ("succeeded", 2)
    assert jobs_out["flaky"]["history"][0]["exit_code"] == 1
    assert (jobs_out["broken"]["status"], jobs_out["broken"]["attempts"], jobs_out["broken"]["exit_code"]) == (
        "failed",
        2,
        4,
    )
    assert jobs_out["oom-like"]["exit_code"] == 137 and "SIGKILL" in jobs_out["oom-like"]["reason"]
    assert jobs_out["fine"]["status"] == "succeeded"
    # the human summary: job, instance (GPU:GI), its MIG device, exit code, attempts, duration
    r = migctl(
        "batch", str(write(tmp_path / "one.yaml", "jobs: [{command: [sh, -c, 'exit 3']}]")), "--logs", str(tmp_path)
    )
    assert r.code == 1
    header = r.out.splitlines()[0].split()
    assert header[:6] == ["job", "instance", "MIG", "device", "exit", "attempts"]
    assert "job-1" in r.out and "exit 3" in r.out and "1 failed" in r.out


def test_timeout_kills_the_whole_process_group(migctl: Cli, node: list[str], tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    jobs = write(
        tmp_path / "jobs.yaml",
        f"""
jobs:
  - name: slow
    command: [sh, -c, 'sleep 30 & echo $! > {pidfile}; wait']
    timeout: 0.5
""",
    )
    t0 = time.monotonic()
    r = migctl("batch", str(jobs), "--logs", str(tmp_path / "logs"), "--grace", "1", "--json")
    assert r.code == 1
    assert time.monotonic() - t0 < 6
    job = r.json()["jobs"][0]
    assert job["status"] == "failed" and job["reason"].startswith("timed out after 0.5 s")
    grandchild = int(pidfile.read_text())
    assert gone(grandchild)  # the job's own child died with it: the device is free


def test_each_instance_runs_once_per_device(migctl: Cli, node: list[str], tmp_path: Path) -> None:
    out = tmp_path / "seen"
    r = migctl(
        "batch", "--each-instance", "--logs", str(tmp_path / "logs"), "--json",
        "--", "sh", "-c", f'echo "$MIGCTL_DEVICE_UUID $CUDA_VISIBLE_DEVICES" >> {out}',
    )  # fmt: skip
    assert r.code == 0, r.err
    lines = out.read_text().split("\n")[:-1]
    assert sorted(line.split()[0] for line in lines) == sorted(node)
    assert all(a == b for a, b in (line.split() for line in lines))
    assert {j["name"] for j in r.json()["jobs"]} == {"gpu0-gi11", "gpu0-gi12", "gpu0-gi13", "gpu1-gi5"}
    r = migctl("batch", "--each-instance", "--on", "1g.12gb", "--logs", str(tmp_path / "l2"), "--json", "--", "true")
    assert r.code == 0 and len(r.json()["jobs"]) == 3


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("jobs:\n  - name: a\n    command: python train.py\n", ":3: jobs[0].command:", "argv list"),
        ("jobs:\n  - command: [x]\n  - command: [true]\n    retrys: 2\n", ":4: jobs[1].retrys:", "unknown key"),
        ("jobs:\n  - command: [true]\n    profile: 9g.99gb\n", ":3: jobs[0].profile:", "no MIG device matches"),
        ("jobs:\n  - command: [true]\n    timeout: -1\n", ":3: jobs[0].timeout:", "greater than 0"),
        ("jobs:\n  - name: x\n    env: {A: 1}\n", ":2: jobs[0].command:", "required"),
        ("jobs:\n  - command: [no-such-program-xyz]\n", ":2: jobs[0].command:", "command not found"),
        (
            "jobs:\n  - command: [true]\n    env: {CUDA_VISIBLE_DEVICES: '0'}\n",
            ":3: jobs[0].env.CUDA_VISIBLE_DEVICES:",
            "set by migctl",
        ),
        ("jobs: [\n", ":2:", "invalid YAML"),
    ],
)
def test_bad_jobs_file_is_one_line_with_file_and_line(
    migctl: Cli, node: list[str], tmp_path: Path, text: str, where: str, message: str
) -> None:
    path = write(tmp_path / "jobs.yaml", text)
    r = migctl("batch", str(path))
    assert r.code == 2, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"migctl: error: {path}{where}"), lines[0]
    assert message in lines[0]
    assert not (tmp_path / "migctl-logs").exists()


def test_sigint_stops_launching_ends_jobs_and_prints_the_summary(
    node: list[str], tmp_path: Path, state_dir: Path
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    jobs = write(
        tmp_path / "jobs.yaml",
        "jobs:\n" + "".join(f"  - command: [sh, -c, 'echo $$ > {pids}/{i}; exec sleep 30']\n" for i in range(6)),
    )
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir)}
    p = subprocess.Popen(
        [sys.executable, "-m", "migctl", "batch", str(jobs), "--logs", str(tmp_path / "logs"), "--grace", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while len(list(pids.iterdir())) < 4 and time.monotonic() < deadline:  # four devices: four jobs run
        time.sleep(0.05)
    started = [int(f.read_text()) for f in pids.iterdir()]
    assert len(started) == 4
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=15)
    assert p.returncode == 130, err
    assert "stopped by SIGINT" in out
    assert "4 interrupted" in out and "2 not started" in out
    assert all(gone(pid) for pid in started)
    assert len(list(pids.iterdir())) == 4  # nothing launched after Ctrl-C
    from migctl.ops import leases

    assert leases.holder_records() == {}


def test_bad_jobs_file_shapes(migctl: Cli, node: list[str], tmp_path: Path) -> None:
    cases = {
        "": "the file is empty; it needs a 'jobs:' list",
        "# only a comment\n": "the file is empty; it needs a 'jobs:' list",
        "jobs: []\n": "jobs: must not be empty",
        "jobs:\n  - command: [x]\n    command: [y]\n": "jobs[0].command: duplicate key (first at line 2)",
        "jobs:\n  - {name: a, command: [true]}\n  - {name: a, command: [true]}\n": "duplicate job name (also jobs[0])",
        "jobs:\n  - {command: [true], target: '0:11', profile: 1g.12gb}\n": "give target or profile, not both",
        "defaults: {env: {MIGCTL_PROFILE: x}}\njobs: [{command: [true]}]\n": (
            "defaults.env.MIGCTL_PROFILE: set by migctl"
        ),
    }
    for text, message in cases.items():
        path = tmp_path / "jobs.yaml"
        path.write_text(text)
        r = migctl("batch", str(path), "--logs", str(tmp_path / "logs"))
        assert r.code == 2, (text, r.err)
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"migctl: error: {path}"), r.err
        assert message in lines[0], (text, lines[0])
    r = migctl("batch", str(tmp_path / "missing.yaml"))
    assert r.code == 2 and "cannot read the jobs file" in r.err
    assert not (tmp_path / "logs").exists()  # nothing ran


def test_a_yaml_alias_bomb_is_refused_not_expanded(migctl: Cli, node: list[str], tmp_path: Path) -> None:
    """Nine levels of nine aliases expand to 9**9 (387 million) nodes: the walker's budget stops it."""
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\njobs: [{command: [true]}]\n")
    r = migctl("batch", str(path), "--logs", str(tmp_path / "logs"))
    assert r.code == 2
    assert "document too large (aliases expand to over" in r.err and str(path) in r.err
    assert len(r.err.strip().splitlines()) == 1
    recursive = tmp_path / "loop.yaml"
    recursive.write_text("jobs: &j [{command: [true], env: *j}]\n")
    r = migctl("batch", str(recursive), "--logs", str(tmp_path / "logs"))
    assert r.code == 2 and "recursive alias" in r.err
    assert not (tmp_path / "logs").exists()


def test_each_instance_refuses_a_typo_before_anything_runs(migctl: Cli, node: list[str], tmp_path: Path) -> None:
    r = migctl("batch", "--each-instance", "--logs", str(tmp_path / "logs"), "--", "no-such-program-xyz")
    assert r.code == 127 and "command not found" in r.err
    r = migctl("batch", "--each-instance", "--on", "9g.99gb", "--logs", str(tmp_path / "logs"), "--", "true")
    assert r.code == 2 and "no MIG device matches" in r.err
    r = migctl("batch", "--each-instance")
    assert r.code == 2 and "no command given" in r.err
    assert not (tmp_path / "logs").exists()


def test_node_batch_takes_typed_jobs_and_returns_the_report(node: list[str], tmp_path: Path) -> None:
    import migctl
    from migctl.config.jobs import job
    from migctl.errors import UsageError
    from migctl.records.batch import BatchProgress, BatchReport

    seen: list[BatchProgress] = []
    out = tmp_path / "out"
    out.mkdir()
    with migctl.Node(sim=SPEC) as api:
        report = api.batch(
            [
                job(["sh", "-c", f'echo "$CUDA_VISIBLE_DEVICES" > {out}/a; sleep 0.3'], name="a", on="2g.24gb"),
                job(["sh", "-c", "exit 2"], name="b", on="1g.12gb", retries=1),
                ["sh", "-c", f'echo "$CUDA_VISIBLE_DEVICES" > {out}/c'],  # a plain argv: any device
            ],
            logs_dir=tmp_path / "logs",
            on_progress=seen.append,
        )
        assert isinstance(report, BatchReport)
        jobs = {j.name: j for j in report.jobs}
        assert set(jobs) == {"a", "b", "job-3"}
        assert jobs["a"].status == "succeeded" and jobs["a"].instance is not None
        assert jobs["a"].instance.profile == "2g.24gb" and (out / "a").read_text().strip() == jobs["a"].instance.uuid
        assert (jobs["b"].status, jobs["b"].attempts, jobs["b"].exit_code) == ("failed", 2, 2)
        assert (out / "c").read_text().strip() in node
        assert report.summary.exit_code == 1 and [j.name for j in report.failed] == ["b"]
        assert seen and seen[0].total == 3 and seen[-1].done <= 3  # the live view's feed
        with pytest.raises(UsageError, match=r"job 'x': .*no MIG device matches"):
            api.batch([job(["true"], name="x", on="9g.99gb")], logs_dir=tmp_path / "never")
        with pytest.raises(UsageError, match="not a string"):
            api.batch(["sh", "-c", "true"], logs_dir=tmp_path / "never")  # a command, not a list of jobs
        with pytest.raises(UsageError, match="duplicate job name 'x'"):
            api.batch([job(["true"], name="x"), job(["true"], name="x")], logs_dir=tmp_path / "never")
        jobs_file = tmp_path / "jobs.yaml"
        jobs_file.write_text("jobs:\n  - {name: f, command: [true], profile: 1g.12gb}\n")
        from_file = api.batch(jobs_file, logs_dir=tmp_path / "logs2")
        assert [(j.name, j.status) for j in from_file.jobs] == [("f", "succeeded")]
    assert not (tmp_path / "never").exists()


def test_live_view_on_a_terminal(node: list[str], tmp_path: Path, state_dir: Path) -> None:
    """On a TTY the batch draws its progress while it runs, then the summary."""
    import pty

    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("jobs:\n" + "".join("  - command: [sleep, '0.6']\n" for _ in range(3)))
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.environ.update(MIGCTL_STATE_DIR=str(state_dir), COLUMNS="160")
            argv = [sys.executable, "-m", "migctl", "batch", str(jobs), "--logs", str(tmp_path / "l")]
            os.execv(sys.executable, argv)  # noqa: S606
        finally:
            os._exit(127)
    chunks = []
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    screen = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert "running, 0 waiting" in screen and "done (" in screen  # the live view's head line
    assert "3 jobs: 3 succeeded, 0 failed" in screen  # then the summary
