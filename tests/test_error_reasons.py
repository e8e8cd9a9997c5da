"""Errors give the real reason (issue 10, section 5): the exhausted media-engine pool, the
instance holding an occupied start slice, a pid that does not exist, each user named once."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil

from conftest import MIGCTL, Cli, SimFactory


def test_an_exhausted_media_engine_pool_is_named(sim: SimFactory) -> None:
    s = sim("a30")
    r = s("create", "2g.12gb+me", "1g.6gb+me")
    assert r.code == 4
    assert "the GPU's shared media-engine pool is exhausted" in r.err
    assert "2 OFA engines (the GPU has 1)" in r.err
    assert s.gpu(0)["gpu_instances"] == []  # nothing was created
    s.ok("create", "1g.6gb+me")
    again = s("create", "2g.12gb+me")
    assert again.code == 4
    assert "media-engine pool is exhausted" in again.err and "(1g.6gb+me) already holds some" in again.err


def test_an_occupied_start_slice_names_the_slice_and_the_instance(sim: SimFactory) -> None:
    s = sim("a30")
    made = s.create("1g.6gb")[0]
    start = made["placement"]["start"]
    r = s("create", "1g.6gb", "--placement", str(start))
    assert r.code == 4
    holder = f"GI {made['gpu_instance_id']} (1g.6gb at {start}:1)"
    assert f"1g.6gb at {start}:1 needs slice {start}, held by {holder}" in r.err
    assert "still fits" not in r.err  # the free starts instead, which do not include the taken one
    free = [str(i) for i in range(4) if i != start]
    assert f"1g.6gb can start now at slice {', '.join(free)}" in r.err


def test_sim_attach_of_a_pid_that_does_not_exist_says_so(sim: SimFactory) -> None:
    s = sim("a30", enable=None)
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid = gone.pid if not psutil.pid_exists(gone.pid) else 2**22 + 1
    for where in ((), ("-i", "0")):
        r = s("sim", "attach", "--pid", str(pid), *where)
        assert r.code == 2
        assert f"no running process has pid {pid}" in r.err


def test_a_process_holding_the_lease_is_named_once(migctl: Cli, state_dir: Path, sim: SimFactory) -> None:
    s = sim("h20")
    uuid = s.create("1g.12gb")[0]["uuid"]
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM": "h20"}
    run = subprocess.Popen([*MIGCTL, "run", "--on", uuid, "--", "sleep", "30"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            ci = s.gpu(0)["gpu_instances"][0]["compute_instances"][0]
            if ci["holder"] is not None and ci["processes"]:
                break
            assert time.monotonic() < deadline, "the job never showed up on its device"
            time.sleep(0.1)
        pid = ci["holder"]["pid"]
        assert [p["pid"] for p in ci["processes"]] == [pid]  # the job holds the lease and runs there
        refused = s("destroy", "--all")
        assert refused.code == 5
        assert refused.err.count(f"pid {pid} ") == 1, refused.err
        assert f"pid {pid} (" in refused.err and "migctl lease)" in refused.err
        row = next(line for line in s.ok("status").out.splitlines() if uuid in line)
        assert row.count(f"pid {pid}") == 1  # the MIG device's row names its lease holder once
    finally:
        run.terminate()
        run.wait(timeout=20)
