"""The seed's workflow (shared/seed/README.md, steps 1-11) on a simulated 8 x H20 node, via the CLI.

The engineer's notes partition GPU 0 of an 8-GPU H20 server with ``nvidia-smi``. Each step below
is the migctl command that replaces theirs, checked the way a script would check it (``--json``),
including the two places where their run went wrong: the misread ``-cgi 20,1g.12gb,1`` (step 4)
and choosing a MIG device for a CUDA program (steps 6 and 8).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import migctl
from migctl.records import to_data

SIM = ("--sim", "h20x8")
Cli = Callable[..., Any]  # the conftest fixture: runs migctl, returns code/out/err/.json()


@pytest.fixture
def h20(migctl: Cli) -> Cli:
    """``migctl --sim h20x8 ARGS...``: the seed's node, fresh for the test."""

    def run(*args: str, **kw: Any) -> Any:
        return migctl(*SIM, *args, **kw)

    return run


def ok(r: Any) -> Any:
    assert r.code == 0, f"exit {r.code}\nstdout: {r.out}\nstderr: {r.err}"
    return r


@contextmanager
def cuda_program(h20: Cli, mig_uuid: str) -> Iterator[subprocess.Popen[str]]:
    """A stand-in CUDA job started the right way: CUDA_VISIBLE_DEVICES=MIG-<uuid> set before it starts.

    The simulator cannot see the environment, so the process is recorded on that MIG device with
    ``migctl sim attach`` (what the driver does when the job opens its CUDA context).
    """
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": mig_uuid}
    job = "import os, time; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", job], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == mig_uuid  # what CUDA would see
    try:
        ok(h20("sim", "attach", "--pid", str(proc.pid), "--uuid", mig_uuid, "--memory", "1024"))
        yield proc
    finally:
        proc.kill()
        proc.wait()


def gpu0(h20: Cli) -> dict[str, Any]:
    status = ok(h20("status", "-i", "0", "--json")).json()
    assert len(status["gpus"]) == 1
    return dict(status["gpus"][0])


def snapshot() -> dict[str, Any]:
    """GPU 0 as ``status --json`` has it, read in-process (fast) to check that nothing changed."""
    with migctl.Node(sim="h20x8") as node:
        return dict(to_data(node.status(0))["gpus"][0])


def test_seed_workflow_end_to_end(h20: Cli) -> None:
    # Before: the node has 8 H20s, MIG off (nvidia-smi -L).
    node = ok(h20("status", "--json")).json()
    assert [g["name"] for g in node["gpus"]] == ["NVIDIA H20"] * 8
    assert node["gpus"][0]["mig"] == {"current": False, "pending": False}

    # Step 1: nvidia-smi -i 0 -mig 1  ->  migctl mode enable -i 0
    r = ok(h20("mode", "enable", "-i", "0"))
    assert "GPU 0 (NVIDIA H20): enabled" in r.out
    outcome = ok(h20("mode", "enable", "-i", "0", "--json")).json()["gpus"][0]
    assert outcome["result"] == "enabled" and outcome["reason"] == "already enabled"

    # Step 2: nvidia-smi -i 0 -q | grep -i mig  ->  status --json, no scraping.
    # Hopper needs no reset: Current and Pending are both Enabled at once.
    mig = [g["mig"] for g in ok(h20("status", "--json")).json()["gpus"]]
    assert mig == [{"current": True, "pending": True}] + [{"current": False, "pending": False}] * 7

    # Step 3: nvidia-smi mig -lgip  ->  migctl profiles (the seed's rows).
    table = ok(h20("profiles", "-i", "0")).out
    row = next(line.split() for line in table.splitlines() if "MIG 1g.12gb " in line)
    #        GPU  Name          ID    Free/Total  GiB     P2P   SM   DEC  ENC  CE
    assert row[:11] == ["0", "MIG", "1g.12gb", "19", "7/7", "11.75", "No", "8", "1", "0", "1"]
    profiles = {p["name"]: p for p in ok(h20("profiles", "-i", "0", "--json")).json()["gpus"][0]["profiles"]}
    assert profiles["1g.12gb"] | {"placements": None} == profiles["1g.12gb"] | {
        "id": 19,
        "instances_free": 7,
        "instances_total": 7,
        "memory_mib": 12032,
        "sm": 8,
        "dec": 1,
        "enc": 0,
        "placements": None,
    }
    assert (profiles["1g.12gb+me"]["id"], profiles["1g.12gb+me"]["instances_total"]) == (20, 1)

    # Step 4, as the engineer typed it: -cgi 20,1g.12gb,1 (read as "profile, name, count").
    # nvidia-smi made two instances, then failed on "1" with Invalid Argument, half-done.
    # migctl checks the whole list first: it names the bad entry, lists the valid ones, creates nothing.
    before = snapshot()
    for argv in (["20,1g.12gb,1"], ["20", "1g.12gb", "1"]):
        r = h20("create", "-i", "0", *argv)
        assert r.code == 2, r
        assert "'1' is not a GPU-instance profile of GPU 0 (NVIDIA H20)" in r.err
        assert "1g.12gb (ID 19)" in r.err and "1g.12gb+me (ID 20)" in r.err
        assert "nothing was created" in r.err
        assert "Traceback" not in r.err
        assert snapshot() == before
    err = h20("create", "-i", "0", "20,1g.12gb,1", "--json").json()
    assert err["error"] == "usage" and err["exit_code"] == 2 and "'1'" in err["message"]
    assert snapshot()["gpu_instances"] == []

    # Step 4, what was meant: two 1g.12gb instances, each with its default compute instance (-C).
    created = ok(h20("create", "-i", "0", "1g.12gb:2", "--json")).json()["created"]
    assert len(created) == 2
    for c in created:
        assert c["gpu"] == 0 and c["profile"] == "1g.12gb" and c["profile_id"] == 19
        assert c["placement"]["size"] == 1
        assert c["compute_instance_id"] == 0 and c["compute_profile"] == "1g.12gb"
        assert c["uuid"].startswith("MIG-")
    assert len({c["gpu_instance_id"] for c in created}) == 2

    # Step 5: nvidia-smi (MIG devices table)  ->  status / devices: GI, CI, MIG dev, memory.
    gis = gpu0(h20)["gpu_instances"]
    assert sorted(g["id"] for g in gis) == sorted(c["gpu_instance_id"] for c in created)
    assert all([ci["id"] for ci in g["compute_instances"]] == [0] for g in gis)
    devices = ok(h20("devices", "-i", "0", "--json")).json()["gpus"][0]["mig_devices"]
    assert [d["index"] for d in devices] == [0, 1]  # the "MIG dev" column
    assert all(d["memory_mib"] == 12032 and d["profile"] == "1g.12gb" for d in devices)
    text = ok(h20("status", "-i", "0")).out
    for c in created:
        assert c["uuid"] in text

    # Step 6: nvidia-smi -L  ->  migctl devices: the MIG UUIDs to put in CUDA_VISIBLE_DEVICES.
    listing = ok(h20("devices", "-i", "0")).out
    for d in devices:
        assert f"Device {d['index']:2d}: (UUID: {d['uuid']})" in listing
    uuids = [d["uuid"] for d in devices]
    assert sorted(uuids) == sorted(c["uuid"] for c in created)
    status_uuids = [ci["uuid"] for g in gpu0(h20)["gpu_instances"] for ci in g["compute_instances"]]
    assert sorted(status_uuids) == sorted(uuids)

    # Steps 6-8: two programs in parallel, one per instance. The seed's failure (step 8) was
    # choosing the device from inside PyTorch after CUDA had started; the fix is to choose it
    # before the process starts: CUDA_VISIBLE_DEVICES=MIG-<uuid>, one MIG device per process.
    with cuda_program(h20, uuids[0]) as job_a, cuda_program(h20, uuids[1]) as job_b:
        running = gpu0(h20)
        on = {
            ci["uuid"]: [p["pid"] for p in ci["processes"]]
            for g in running["gpu_instances"]
            for ci in g["compute_instances"]
        }
        assert on == {uuids[0]: [job_a.pid], uuids[1]: [job_b.pid]}

        # Step 9 while they run: nvidia-smi would fail half-way; migctl refuses, naming them.
        before = snapshot()
        r = h20("destroy", "-i", "0", "--all")
        assert r.code == 5, r
        assert f"pid {job_a.pid}" in r.err and f"pid {job_b.pid}" in r.err
        assert "nothing was destroyed" in r.err
        assert snapshot()["gpu_instances"] == before["gpu_instances"]

    # Step 9: nvidia-smi mig -dci && nvidia-smi mig -dgi  ->  migctl destroy --all (CIs first).
    done = ok(h20("destroy", "-i", "0", "--all", "--json")).json()["destroyed"]
    kinds = ["ci" if d["compute_instance_id"] is not None else "gi" for d in done]
    assert kinds == ["ci", "ci", "gi", "gi"]
    assert snapshot()["gpu_instances"] == []

    # Step 10: nvidia-smi mig -dci -ci 0,1,2 -gi 1 destroys chosen compute instances of one GI.
    # Here: a 3g.48gb with three 1c.3g.48gb compute instances, then CIs 0 and 1 of it go.
    gi = ok(h20("create", "-i", "0", "3g.48gb", "--no-compute-instance", "--json")).json()["created"][0]
    assert gi["compute_instance_id"] is None
    gi_id = gi["gpu_instance_id"]
    cis = ok(h20("create-ci", "-i", "0", "--gi", str(gi_id), "1c.3g.48gb:3", "--json")).json()["created"]
    assert [c["compute_instance_id"] for c in cis] == [0, 1, 2]
    assert all(c["compute_profile"] == "1c.3g.48gb" and c["uuid"].startswith("MIG-") for c in cis)
    done = ok(h20("destroy", "-i", "0", "--ci", f"{gi_id}:0", "--ci", f"{gi_id}:1", "--json")).json()["destroyed"]
    assert [(d["gpu_instance_id"], d["compute_instance_id"]) for d in done] == [(gi_id, 0), (gi_id, 1)]
    (left,) = gpu0(h20)["gpu_instances"]
    assert left["id"] == gi_id
    assert [(ci["id"], ci["uuid"]) for ci in left["compute_instances"]] == [(2, cis[2]["uuid"])]

    # Step 11: nvidia-smi -i 0 -mig 0  ->  migctl mode disable -i 0. The GI still exists, so
    # migctl refuses and lists it; --destroy-instances clears it first.
    r = h20("mode", "disable", "-i", "0")
    assert r.code == 5, r
    assert f"GI {gi_id} 3g.48gb" in r.out and "--destroy-instances" in r.out
    assert snapshot()["mig"]["current"] is True
    outcome = ok(h20("mode", "disable", "-i", "0", "--destroy-instances", "--json")).json()["gpus"][0]
    assert outcome["result"] == "disabled"
    final = gpu0(h20)
    assert (final["mig"], final["gpu_instances"]) == ({"current": False, "pending": False}, [])
