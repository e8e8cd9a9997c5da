"""Promise 1 under races, and Ctrl-C/SIGTERM at exact steps (issue 9, items 1 and 2).

A command is frozen at an exact step with the simulator-only hook ``MIGCTL_FAULT_STEP=N:STOP``
(it sends itself SIGSTOP just before its N-th GPU-changing step), another command races it,
then it is continued: no timing luck. Interrupts use ``N:TERM``/``N:INT`` the same way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import Cli, Sim
from migctl import Node

Layout = list[tuple[bool, list[tuple[str, int, tuple[tuple[str, int], ...]]]]]


def layout(spec: str) -> Layout:
    """Every GPU's MIG mode and instances by profile and placement (IDs and UUIDs left out)."""
    with Node(sim=spec) as node:
        out = []
        for g in node.status().gpus:
            gis = sorted(
                (gi.profile, gi.placement.start, tuple(sorted((c.profile, c.placement.start) for c in cis)))
                for gi in g.gpu_instances
                for cis in [gi.compute_instances]
            )
            out.append((bool(g.mig and g.mig.current), gis))
        return out


def uuids(spec: str, gpu: int = 0) -> list[str]:
    with Node(sim=spec) as node:
        return [ci.uuid for gi in node.status(gpu).gpus[0].gpu_instances for ci in gi.compute_instances]


def start(state_dir: Path, spec: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM": spec, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "migctl", *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def frozen(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """Wait until ``proc`` stopped itself at its step (MIGCTL_FAULT_STEP=N:STOP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before its step: {proc.communicate()}")
        if psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED:
            return
        time.sleep(0.01)
    raise AssertionError("never reached its step")


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


# --------------------------------------------------------------------------------------- item 1


def test_run_is_refused_a_device_an_apply_is_about_to_destroy(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("apply", "--layout", "1g.12gb:7")
    last = uuids("h20x1")[-1]
    # step 1 checks GI 7 and takes the leases of everything the plan destroys; freeze at step 2
    apply = start(state_dir, "h20x1", "apply", "--layout", "7g.96gb", env={"MIGCTL_FAULT_STEP": "2:STOP"})
    try:
        frozen(apply)
        r = s("run", "--on", last, "--no-queue", "--", "true")
        code, _, err = finish(apply)
    finally:
        apply.kill()
    assert r.code == 5, r.err
    assert "destroying it" in r.err and "migctl apply" in r.err  # who holds it, and why
    assert code == 0, err
    assert layout("h20x1") == [(True, [("7g.96gb", 0, (("7g.96gb", 0),))])]
    assert not list((state_dir / "leases").glob(f"{last}.lock"))  # the destroyed device's lease file is gone


def test_a_running_job_is_never_destroyed_by_an_apply_planned_before_it_started(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("apply", "--layout", "1g.12gb:7")
    last = uuids("h20x1")[-1]
    apply = start(state_dir, "h20x1", "apply", "--layout", "7g.96gb", env={"MIGCTL_FAULT_STEP": "2:STOP"})
    job = None
    try:
        frozen(apply)
        # the job cannot start on a doomed device (see above); one that was started by hand, as a
        # foreign CUDA process NVML lists, makes the apply stop before that instance and roll back
        job = subprocess.Popen(["sleep", "30"])
        s.ok("sim", "attach", "--pid", str(job.pid), "--uuid", last)
        before_continue = layout("h20x1")
        code, out, err = finish(apply)
    finally:
        apply.kill()
        if job is not None:
            job.kill()
            job.wait()
    assert code == 1, (out, err)
    assert "rolled_back" in out and "is in use" in out and f"pid {job.pid}" in out
    assert last in uuids("h20x1")  # its device is still there
    assert len(before_continue[0][1]) == 7 and layout("h20x1") == before_continue  # back as it was


def test_destroy_all_under_latency_is_all_or_nothing(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "1g.12gb:7")
    before = layout("h20x2")
    last = uuids("h20x2", 1)[-1]
    destroy = start(state_dir, "h20x2", "destroy", "--all", env={"MIGCTL_FAULT_STEP": "3:STOP"})
    job = subprocess.Popen(["sleep", "30"])
    try:
        frozen(destroy)
        refused = s("run", "--on", last, "--no-queue", "--", "true")
        s.ok("sim", "attach", "--pid", str(job.pid), "--uuid", last)  # a process the driver lists
        code, _, err = finish(destroy)
    finally:
        destroy.kill()
        job.kill()
        job.wait()
    assert refused.code == 5 and "migctl destroy (destroying it)" in refused.err
    assert code == 5, err
    assert "came into use" in err and "created again at the same placements" in err
    assert layout("h20x2") == before  # nothing destroyed in the end
    assert not list((state_dir / "journal").glob("gpu-*.json"))


# --------------------------------------------------------------------------------------- item 2


def _journals(state_dir: Path) -> list[Path]:
    return sorted((state_dir / "journal").glob("gpu-*.json"))


@pytest.mark.parametrize("sig", ["TERM", "INT"])
@pytest.mark.parametrize("step", [1, 9, 20, 37])
def test_interrupted_apply_ends_each_gpu_old_or_new_and_says_which(
    migctl: Cli, state_dir: Path, sig: str, step: int
) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "1g.12gb:7")
    old = layout("h20x2")[0]
    s.ok("apply", "-i", "1", "--layout", "3g.48gb,2g.24gb,1g.12gb:2")
    new = layout("h20x2")[1]
    s.ok("apply", "-i", "1", "--layout", "1g.12gb:7")
    r = s("apply", "--layout", "3g.48gb,2g.24gb,1g.12gb:2", "--json", env={"MIGCTL_FAULT_STEP": f"{step}:{sig}"})
    assert r.code == 130, (r.out, r.err)
    doc = r.json()
    assert doc["interrupted"] == f"SIG{sig}"
    ended = layout("h20x2")
    for g in doc["gpus"]:  # each GPU says which, and is exactly that
        assert g["result"] in ("applied", "rolled_back")
        assert ended[g["gpu"]] == (new if g["result"] == "applied" else old)
    assert any(g["result"] == "rolled_back" for g in doc["gpus"])
    assert not _journals(state_dir)


def test_interrupted_apply_prints_each_gpu_and_exits_130(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "1g.12gb:7")
    r = s("apply", "--layout", "7g.96gb", env={"MIGCTL_FAULT_STEP": "5:INT"})
    assert r.code == 130
    assert "GPU 0: rolled_back: interrupted by SIGINT" in r.out and "GPU 1: rolled_back: interrupted by SIGINT" in r.out
    assert r.err.strip() == "migctl: interrupted by SIGINT: each GPU ended as shown above"


def test_interrupted_apply_json_is_one_document(migctl: Cli) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "1g.12gb:7")
    r = s("apply", "--layout", "7g.96gb", "--json", env={"MIGCTL_FAULT_STEP": "5:TERM"})
    assert r.code == 130
    doc = r.json()
    assert doc["interrupted"] == "SIGTERM" and doc["ok"] is False
    assert {g["result"] for g in doc["gpus"]} == {"rolled_back"}
    assert {g["error"] for g in doc["gpus"]} == {"interrupted"}


def test_interrupted_create_undoes_every_gpu_and_names_each(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("mode", "enable")
    before = layout("h20x2")
    r = s("create", "-i", "0,1", "1g.12gb:3", env={"MIGCTL_FAULT_STEP": "8:INT"})
    assert r.code == 130, r.err
    assert "interrupted by SIGINT" in r.err
    assert "GPU 0: the 3 GPU instance(s) and 3 compute instance(s)" in r.err and "GPU 1: the 1 GPU instance(s)" in r.err
    assert layout("h20x2") == before
    assert not _journals(state_dir)
    assert s.ok("recover").out.strip() == "nothing to recover"


def test_recover_never_finishes_a_create_the_user_cancelled(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("mode", "enable")
    before = layout("h20x1")
    # Ctrl-C after 4 instances; undoing them fails at the driver: the create is left journaled
    r = s("create", "1g.12gb:7", env={"MIGCTL_FAULT_STEP": "9:INT", "MIGCTL_SIM_FAULTS": "destroy-gi=UNKNOWN"})
    assert r.code == 130 and "rollback incomplete" in r.err and "migctl recover" in r.err
    entry = json.loads(_journals(state_dir)[0].read_text())
    assert entry["cancelled"] is True
    assert "cancelled and not fully undone" in s.ok("status").out
    out = s.ok("recover").out
    assert "rolled_back" in out and "never finished" in out
    assert layout("h20x1") == before  # not 7 instances: the user had cancelled them
    assert not _journals(state_dir)


def test_interrupted_destroy_puts_back_what_it_destroyed(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "3g.48gb,2g.24gb,1g.12gb:2")
    before = layout("h20x2")
    r = s("destroy", "--all", env={"MIGCTL_FAULT_STEP": "6:TERM"})
    assert r.code == 130 and "interrupted by SIGTERM" in r.err and "created again" in r.err
    assert layout("h20x2") == before
    assert not _journals(state_dir)


def test_interrupted_mode_change_leaves_the_other_gpus_alone(migctl: Cli) -> None:
    s = Sim(migctl, "h20x3")
    r = s("mode", "enable", "--json", env={"MIGCTL_FAULT_STEP": "2:TERM"})
    assert r.code == 130
    doc = r.json()
    assert [g["result"] for g in doc["gpus"]] == ["enabled", "interrupted", "interrupted"]
    assert doc["interrupted"] == "SIGTERM"
    assert [g[0] for g in layout("h20x3")] == [True, False, False]


def test_sigterm_from_outside_mid_apply_rolls_back(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("apply", "--layout", "1g.12gb:7")
    before = layout("h20x1")
    apply = start(state_dir, "h20x1", "apply", "--layout", "7g.96gb", env={"MIGCTL_FAULT_STEP": "4:STOP"})
    try:
        frozen(apply)
        apply.send_signal(signal.SIGTERM)  # pending while stopped: handled at the next safe point
        code, out, err = finish(apply)
    finally:
        apply.kill()
    assert code == 130 and "interrupted by SIGTERM" in err and "rolled_back" in out
    assert layout("h20x1") == before



def test_the_api_raises_interrupted_with_the_report_so_a_script_stops(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from migctl.errors import Interrupted

    monkeypatch.setenv("MIGCTL_SIM", "h20x2")  # the step hooks are the simulator's only
    with Node(sim="h20x2") as node:
        node.apply("1g.12gb:7")
        before = layout("h20x2")
        monkeypatch.setenv("MIGCTL_FAULT_STEP", "3:INT")
        with pytest.raises(Interrupted) as caught:
            node.apply("7g.96gb")
    report = caught.value.report  # type: ignore[attr-defined]
    assert report.interrupted == "SIGINT" and {g.result for g in report.gpus} == {"rolled_back"}
    assert caught.value.exit_code == 130 and "GPU 0: rolled_back" in caught.value.message
    assert layout("h20x2") == before


def test_a_run_waiting_for_a_device_that_gets_destroyed_stops_waiting(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("apply", "--layout", "1g.12gb:7")
    last = uuids("h20x1")[-1]
    apply = start(state_dir, "h20x1", "apply", "--layout", "7g.96gb", env={"MIGCTL_FAULT_STEP": "2:STOP"})
    try:
        frozen(apply)
        job = start(state_dir, "h20x1", "run", "--on", last, "--queue", "60", "--", "true")
        assert job.stderr is not None
        said = job.stderr.readline()  # it waits: the apply holds the device to destroy it
        assert "waiting" in said, said
        code, _, err = finish(apply)
        _, job_err = job.communicate(timeout=30)
    finally:
        apply.kill()
    assert code == 0, err
    assert job.returncode == 2 and "destroyed since this command started" in job_err
