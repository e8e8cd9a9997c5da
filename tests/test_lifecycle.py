"""The MIG lifecycle (issue 3): mode, reset, create, create-ci, destroy, the host lock, retries.

Every refusal is checked three ways: the words the user reads, the documented exit code, and
that the GPU did not change (``status`` before and after, compared whole: instance IDs,
placements, MIG UUIDs, processes). Commands run in-process through the CLI's own entry point
(the ``migctl`` fixture); only what needs real processes runs them as subprocesses: the host
lock held by another process, concurrent creates, SIGTERM and ``kill -9`` mid-create. Processes
on instances are real ``sleep`` processes recorded with ``migctl sim attach``. State snapshots
are read through the Python API (the same record ``status --json`` prints).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pynvml
import pytest

import migctl
from conftest import Sim, running_on
from migctl.core.geometry import Placement
from migctl.device import open_node
from migctl.errors import EXIT_CODES
from migctl.records.inspect import MigModeState

REPO = Path(__file__).resolve().parents[1]
ME = psutil.Process().username()


def assert_names(text: str, proc: subprocess.Popen[bytes]) -> None:
    """The refusal names the process: pid, user and command."""
    assert f"pid {proc.pid}" in text
    assert ME in text
    assert "sleep 30" in text


def refused(r: Any, code: int, *phrases: str) -> None:
    assert r.code == code, f"expected exit {code}, got {r.code}\nstdout: {r.out}\nstderr: {r.err}"
    text = r.out + r.err
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in:\n{text}"
    assert "Traceback" not in text


# =========================================================================== mode


def test_mode_enable_reports_each_gpu(sim: Callable[..., Sim]) -> None:
    s = sim(enable=None)
    data = s.json("mode", "enable", "-i", "0,1")
    assert [(o["gpu"], o["requested"], o["result"]) for o in data["gpus"]] == [
        (0, "enabled", "enabled"),
        (1, "enabled", "enabled"),
    ]
    assert s.gpu(0)["mig"] == {"current": True, "pending": True}  # Hopper: no reset needed
    assert s.gpu(2)["mig"] == {"current": False, "pending": False}


def test_mode_enable_refused_on_hopper_while_a_process_uses_the_gpu(sim: Callable[..., Sim]) -> None:
    s = sim(enable=None)
    with running_on(s, gpu=0) as proc:
        before = s.status()
        r = s("mode", "enable", "-i", "0")
        refused(r, 5, "GPU 0 (NVIDIA H20): refused", "processes are using the GPU")
        assert_names(r.out, proc)
        assert "700 MiB" in r.out
        (o,) = s("mode", "enable", "-i", "0", "--json").json()["gpus"]
        assert o["result"] == "refused"
        assert o["processes"] == [
            {
                "pid": proc.pid,
                "user": ME,
                "command": "sleep 30",
                "used_memory_mib": 700,
                "gpu_instance_id": None,  # on the whole GPU, not on a MIG device
                "compute_instance_id": None,
            }
        ]
        assert s.status() == before
    s.ok("mode", "enable", "-i", "0")  # once it has gone


def test_mode_pending_on_ampere_until_reset_which_refuses_busy_gpus(sim: Callable[..., Sim]) -> None:
    s = sim("a100-40gb", enable=None)
    with running_on(s, gpu=0) as proc:
        r = s("mode", "enable", "--json")
        assert r.code == 7
        (o,) = r.json()["gpus"]
        assert o["result"] == "pending" and "migctl reset -i 0" in o["reason"]
        assert [p["pid"] for p in o["processes"]] == [proc.pid]
        assert s.gpu()["mig"] == {"current": False, "pending": True}
        r = s("create", "1g.5gb")
        refused(r, 7, "pending", "migctl reset -i 0")

        before = s.status()
        r = s("reset", "-i", "0")
        refused(r, 5, "refusing to reset GPUs in use", "nothing was reset")
        assert_names(r.err, proc)
        assert s.status() == before
    data = s.json("reset", "-i", "0")
    assert data["gpus"] == [{"gpu": 0, "mig": {"current": True, "pending": True}}]
    assert s.create("1g.5gb")[0]["profile"] == "1g.5gb"


def test_mode_disable_refuses_a_gpu_with_instances_and_lists_them(sim: Callable[..., Sim]) -> None:
    s = sim()
    made = s.create("1g.12gb:2")
    before = s.status()
    r = s("mode", "disable", "-i", "0")
    refused(r, 5, "refused", "2 GPU instance(s) exist", "--destroy-instances", "migctl destroy -i 0 --all")
    for c in made:
        assert f"GI {c['gpu_instance_id']} 1g.12gb at {c['placement']['start']}:1" in r.out
    assert s.status() == before


def test_mode_disable_destroy_instances_still_refuses_busy_ones(sim: Callable[..., Sim]) -> None:
    s = sim()
    busy, idle = s.create("1g.12gb:2")
    with running_on(s, uuid=busy["uuid"]) as proc:
        before = s.status()
        r = s("mode", "disable", "-i", "0", "--destroy-instances")
        refused(r, 5, "refused", f"GI {busy['gpu_instance_id']} (1g.12gb)")
        assert_names(r.out, proc)
        assert s.status() == before  # the idle instance was not destroyed either
    (o,) = s.json("mode", "disable", "-i", "0", "--destroy-instances")["gpus"]
    assert o["result"] == "disabled"
    assert sorted(i["id"] for i in o["instances"]) == sorted([busy["gpu_instance_id"], idle["gpu_instance_id"]])
    assert s.gpu()["mig"] == {"current": False, "pending": False}


def test_a_gpu_that_is_not_mig_capable_is_reported_not_a_crash(sim: Callable[..., Sim]) -> None:
    s = sim("l40s", enable=None)
    r = s("mode", "enable")
    refused(r, 3, "GPU 0 (NVIDIA L40S): not_supported", "not MIG-capable")
    assert s("mode", "enable", "--json").json()["gpus"][0]["result"] == "not_supported"
    refused(s("create", "1g.12gb"), 3, "GPU 0 (NVIDIA L40S) is not MIG-capable")
    gpu = s.gpu()
    assert gpu["mig_capable"] is False and gpu["mig"] is None


def test_mixed_node_enables_what_it_can_and_validates_every_gpu_before_creating(sim: Callable[..., Sim]) -> None:
    s = sim("h20x1,l40sx1", enable=None)
    r = s("mode", "enable", "--json")
    assert r.code == 0  # every MIG-capable GPU got its mode; the L40S is reported, not a failure
    assert [(o["name"], o["result"]) for o in r.json()["gpus"]] == [
        ("NVIDIA H20", "enabled"),
        ("NVIDIA L40S", "not_supported"),
    ]
    before = s.status()
    refused(s("create", "1g.12gb", "-i", "0-1"), 3, "GPU 1 (NVIDIA L40S) is not MIG-capable")
    assert s.status() == before  # nothing was created on GPU 0 either


# =========================================================================== create


@pytest.mark.parametrize(
    "argv",
    [["20,1g.12gb,1"], ["20", "1g.12gb", "1"], ["1g.12gb:2", "bogus"]],
    ids=["seed-cgi-list", "seed-cgi-words", "unknown-name"],
)
def test_create_unknown_profile_names_it_and_creates_nothing(sim: Callable[..., Sim], argv: list[str]) -> None:
    s = sim()
    s.create("2g.24gb")
    before = s.status()
    bad = "'1'" if "1" in argv[-1].split(",") else "'bogus'"
    r = s("create", *argv)
    refused(r, 2, f"{bad} is not a GPU-instance profile of GPU 0", "valid profiles:", "1g.12gb (ID 19)")
    refused(r, 2, "nothing was created")
    assert s.status() == before


def test_create_by_name_id_and_count_reports_each_instance(sim: Callable[..., Sim]) -> None:
    s = sim()
    r = s.ok("create", "19", "2g.24gb", "1g.12gb:1")
    # One line per instance: GPU, GI ID, profile, placement, CI ID, MIG UUID.
    pattern = r"GPU 0: GPU instance (\d+) \((\S+)\) at (\d+):(\d+), compute instance 0 \(\S+\), (MIG-[0-9a-f-]+)"
    rows = [re.fullmatch(pattern, line) for line in r.out.strip().splitlines()]
    assert len(rows) == 3 and all(rows), r.out
    assert sorted(m[2] for m in rows if m) == ["1g.12gb", "1g.12gb", "2g.24gb"]
    gis = {g["id"]: g for g in s.gpu()["gpu_instances"]}
    assert len(gis) == 3
    for m in rows:
        assert m is not None
        gi = gis[int(m[1])]
        assert (gi["profile"], gi["placement"]) == (m[2], {"start": int(m[3]), "size": int(m[4])})
        assert [ci["uuid"] for ci in gi["compute_instances"]] == [m[5]]

    # --no-compute-instance: a GPU instance without a compute instance, so no MIG UUID yet.
    (c,) = s.create("1g.24gb", "--no-compute-instance")
    assert (c["profile"], c["compute_instance_id"], c["uuid"]) == ("1g.24gb", None, None)
    gi = next(g for g in s.gpu()["gpu_instances"] if g["id"] == c["gpu_instance_id"])
    assert gi["compute_instances"] == []


def test_create_succeeds_in_every_order_where_default_placement_fails(state_dir: Path, sim: Callable[..., Sim]) -> None:
    """A100-40GB 1g.5gb 1g.5gb 2g.10gb 3g.20gb fits, yet nvidia-smi fails some orders."""
    s = sim("a100-40gb")
    orders = sorted(set(itertools.permutations(["1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"])))
    assert len(orders) == 12

    # What nvidia-smi mig -cgi does: one create after another, the driver picking placements.
    failing = []
    for order in orders:
        node = open_node("a100-40gb")
        gpu = node.gpus[0]
        geometry = gpu.geometry()
        try:
            for name in order:
                gpu.create_gpu_instance(geometry.by_name(name).id)
        except pynvml.NVMLError as exc:
            assert exc.value == pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES
            failing.append(order)
        for gi in gpu.gpu_instances():
            gi.destroy()
        node.close()
    assert failing, "the simulator should reproduce nvidia-smi's order-dependent failures"
    assert ("1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb") in failing

    # migctl: every order fits, with the same final layout.
    with migctl.Node(sim="a100-40gb") as api:
        for order in orders:
            made = api.create(*order).created
            assert sorted(m.profile for m in made) == sorted(order)
            spans = sorted((m.placement.start, m.placement.size) for m in made)
            assert all(a[0] + a[1] <= b[0] for a, b in itertools.pairwise(spans))
            api.destroy(everything=True)
    # And on the command line, in the order the seed would have typed it.
    assert len(s.create("1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb")) == 4


def test_create_leaves_room_as_the_driver_does(sim: Callable[..., Sim]) -> None:
    """One 3g.48gb goes to 4:4 (as nvidia-smi -cgi 9 does), so a 4g.48gb still fits at 0:4."""
    s = sim()
    (three,) = s.create("3g.48gb")
    assert three["placement"] == {"start": 4, "size": 4}
    (four,) = s.create("4g.48gb")
    assert four["placement"] == {"start": 0, "size": 4}


def test_create_that_cannot_fit_is_refused_before_anything_is_created(sim: Callable[..., Sim]) -> None:
    s = sim()
    (three,) = s.create("3g.48gb")
    before = s.status()
    r = s("create", "4g.48gb", "1g.12gb")
    refused(
        r,
        4,
        "4g.48gb, 1g.12gb",
        "fit",
        "free slices: 0,1,2,3",
        f"GI {three['gpu_instance_id']} (3g.48gb) holds 4:4",
        "what still fits alone: ",
        "nothing was created",
    )
    assert s.status() == before
    err = s("create", "7g.96gb", "--json").json()
    assert (err["error"], err["exit_code"]) == ("insufficient_resources", 4)
    assert s.status() == before


def test_create_refused_while_mig_is_disabled(sim: Callable[..., Sim]) -> None:
    s = sim(enable=None)
    refused(s("create", "1g.12gb", "-i", "3"), 3, "MIG is disabled on GPU 3", "migctl mode enable -i 3")


def test_create_at_a_chosen_placement(sim: Callable[..., Sim]) -> None:
    s = sim()
    (c,) = s.create("1g.12gb", "--placement", "3")
    assert c["placement"] == {"start": 3, "size": 1}
    before = s.status()
    refused(s("create", "1g.12gb", "--placement", "7"), 2, "1g.12gb cannot start at slice 7", "legal starts: 0,1,2")
    refused(s("create", "1g.12gb:2", "--placement", "1"), 2, "--placement takes exactly one GPU instance")
    refused(s("create", "2g.24gb", "--placement", "2"), 4, "nothing was created")
    assert s.status() == before


FAULTS = [
    ("create-gi@2=UNKNOWN", 8, "the 1 GPU instance(s) and 1 compute instance(s) this command had created"),
    ("create-ci@1=UNKNOWN", 8, "the 1 GPU instance(s) this command had created"),
    ("create-ci@3=TIMEOUT", 8, "the 3 GPU instance(s) and 2 compute instance(s) this command had created"),
    ("create-gi@1=INSUFFICIENT_RESOURCES", 4, "nothing had been created yet"),
]


@pytest.mark.parametrize(("fault", "code", "note"), FAULTS, ids=[f[0] for f in FAULTS])
def test_driver_failure_mid_create_leaves_the_gpu_exactly_as_before(
    sim: Callable[..., Sim], fault: str, code: int, note: str
) -> None:
    s = sim()
    s.create("2g.24gb")  # a pre-existing instance: its ID, placement and MIG UUID must survive
    before = s.status()
    r = s("create", "1g.12gb:3", "--json", env={"MIGCTL_SIM_FAULTS": fault})
    assert r.code == code, r
    err = r.json()
    assert err["exit_code"] == code and err["rolled_back"] is True
    assert err["nvml_error"] == "NVML_ERROR_" + fault.split("=")[1]
    assert note in err["hint"] and "nothing changed" in err["hint"]
    assert s.status() == before


def test_driver_failure_on_a_later_gpu_rolls_back_the_earlier_ones(sim: Callable[..., Sim]) -> None:
    s = sim(enable="0,1")
    before = s.status("0,1")
    r = s("create", "1g.12gb", "-i", "0,1", env={"MIGCTL_SIM_FAULTS": "create-gi:1=UNKNOWN"})
    refused(r, 8, "on GPU 1", "destroyed again", "nothing changed")
    assert s.status("0,1") == before


def test_rollback_that_fails_says_so(sim: Callable[..., Sim]) -> None:
    s = sim()
    r = s("create", "1g.12gb:3", "--json", env={"MIGCTL_SIM_FAULTS": "create-gi@2=UNKNOWN,destroy-gi=UNKNOWN"})
    assert r.code == 8
    err = r.json()
    assert err["rolled_back"] is False
    assert "rollback incomplete" in err["hint"] and "migctl status -i 0" in err["hint"]


def test_mutating_calls_are_never_retried(sim: Callable[..., Sim]) -> None:
    """UNKNOWN is transient for reads, but a create that failed once is not tried again."""
    s = sim()
    refused(s("create", "1g.12gb", env={"MIGCTL_SIM_FAULTS": "create-gi@1=UNKNOWN"}), 8, "Unknown Error")
    assert s.gpu()["gpu_instances"] == []  # a blind retry would have made one
    refused(s("create", "1g.12gb", env={"MIGCTL_SIM_FAULTS": "create-ci@1=TIMEOUT"}), 8, "Timeout")
    assert s.gpu()["gpu_instances"] == []


def test_transient_read_failures_are_retried(sim: Callable[..., Sim]) -> None:
    s = sim()
    assert s.json("status", env={"MIGCTL_SIM_FAULTS": "read@1=UNKNOWN"})["gpus"][0]["index"] == 0
    flaky = {"MIGCTL_SIM_FAULTS": "read@2=TIMEOUT,read@6=NOT_READY,read@9=UNKNOWN"}
    assert len(s.json("profiles", "-i", "0", env=flaky)["gpus"][0]["profiles"]) == 7
    assert len(s.json("create", "1g.12gb", env=flaky)["created"]) == 1
    assert len(s.gpu()["gpu_instances"]) == 1
    # A failure that does not go away is an error object, not a traceback.
    r = s("status", "--json", env={"MIGCTL_SIM_FAULTS": "read@1+=UNKNOWN"})
    assert r.code == 8 and r.json()["error"] == "driver" and "Traceback" not in r.err


# =========================================================================== create-ci


def test_create_ci_by_name_or_id_all_or_nothing(sim: Callable[..., Sim]) -> None:
    s = sim()
    (gi,) = s.create("3g.48gb", "--no-compute-instance")
    g = str(gi["gpu_instance_id"])
    made = s.json("create-ci", "-i", "0", "--gi", g, "1c.3g.48gb:2")["created"]
    made += s.json("create-ci", "-i", "0", "--gi", g, "0")["created"]  # CI profile ID 0 is 1c.3g.48gb
    assert [(c["compute_instance_id"], c["compute_profile"]) for c in made] == [
        (0, "1c.3g.48gb"),
        (1, "1c.3g.48gb"),
        (2, "1c.3g.48gb"),
    ]
    assert all(c["gpu_instance_id"] == gi["gpu_instance_id"] and c["uuid"].startswith("MIG-") for c in made)
    before = s.status()
    refused(s("create-ci", "-i", "0", "--gi", g, "1c.3g.48gb"), 4, "do not fit", "nothing was created")
    refused(
        s("create-ci", "-i", "0", "--gi", g, "1c.3g.48gb", "bogus"),
        2,
        "'bogus' is not a compute-instance profile",
        "2c.3g.48gb (ID 1)",
        "nothing was created",
    )
    refused(s("create-ci", "-i", "0", "--gi", "99"), 2, "GPU 0 has no GPU instance 99", f"its GPU instances: {g}")
    assert s.status() == before


def test_create_ci_default_and_rollback(sim: Callable[..., Sim]) -> None:
    s = sim()
    (gi,) = s.create("3g.48gb", "--no-compute-instance")
    g = str(gi["gpu_instance_id"])
    s.json("create-ci", "-i", "0", "--gi", g, "1c.3g.48gb")
    before = s.status()
    r = s("create-ci", "-i", "0", "--gi", g, "1c.3g.48gb:2", env={"MIGCTL_SIM_FAULTS": "create-ci@2=UNKNOWN"})
    refused(r, 8, "the 1 compute instance(s) this command had created were destroyed again")
    assert s.status() == before
    s.json("destroy", "-i", "0", "--ci", f"{g}:0")
    (c,) = s.json("create-ci", "-i", "0", "--gi", g)["created"]
    assert c["compute_profile"] == "3g.48gb"  # the default CI spans the GI


# =========================================================================== destroy


def test_destroy_refuses_any_instance_in_use_and_destroys_nothing(sim: Callable[..., Sim]) -> None:
    s = sim()
    busy, idle = s.create("1g.12gb:2")
    b, i = str(busy["gpu_instance_id"]), str(idle["gpu_instance_id"])
    with running_on(s, uuid=busy["uuid"]) as proc:
        before = s.status()
        gpu0 = ["-i", "0"]
        targets = (["--all"], [*gpu0, "--gi", i, "--gi", b], [*gpu0, "--ci", f"{b}:0"], ["--uuid", busy["uuid"]])
        for argv in targets:
            r = s("destroy", *argv)
            refused(r, 5, "refusing to destroy instances in use", "nothing was destroyed")
            assert_names(r.err, proc)
            assert s.status() == before, argv
        err = s("destroy", "--all", "--json").json()
        assert err["error"] == "in_use" and f"pid {proc.pid}" in err["message"]
        # The idle one can go while the other is busy.
        assert [d["gpu_instance_id"] for d in s.json("destroy", "-i", "0", "--gi", i)["destroyed"]] == [
            idle["gpu_instance_id"]
        ] * 2


def test_destroy_compute_instances_first_then_gpu_instances(sim: Callable[..., Sim]) -> None:
    s = sim()
    a, b = s.create("1g.12gb:2")
    (gi,) = s.create("3g.48gb", "--no-compute-instance")
    g = gi["gpu_instance_id"]
    cis = s.json("create-ci", "-i", "0", "--gi", str(g), "1c.3g.48gb:3")["created"]
    # One MIG device by UUID: only its compute instance goes.
    (d,) = s.json("destroy", "--uuid", cis[1]["uuid"])["destroyed"]
    assert (d["gpu_instance_id"], d["compute_instance_id"], d["uuid"]) == (g, 1, cis[1]["uuid"])
    # Everything: every CI before any GI.
    done = s.json("destroy", "-i", "0", "--all")["destroyed"]
    kinds = ["ci" if x["compute_instance_id"] is not None else "gi" for x in done]
    assert kinds == ["ci"] * 4 + ["gi"] * 3
    assert {x["gpu_instance_id"] for x in done} == {a["gpu_instance_id"], b["gpu_instance_id"], g}
    assert s.gpu()["gpu_instances"] == []


def test_destroy_bad_targets_are_usage_errors(sim: Callable[..., Sim]) -> None:
    s = sim()
    (c,) = s.create("1g.12gb")
    before = s.status()
    refused(s("destroy"), 2, "say what to destroy")
    gis = f"its GPU instances: {c['gpu_instance_id']}"
    refused(s("destroy", "-i", "0", "--gi", "99"), 2, "GPU 0 has no GPU instance 99", gis)
    refused(s("destroy", "--ci", "3"), 2, "expected GI:CI")
    refused(s("destroy", "--uuid", "MIG-00000000-0000-0000-0000-000000000000"), 2, "no MIG device has UUID")
    assert s.status() == before


def test_destroy_driver_failure_says_what_is_done_and_a_rerun_finishes(sim: Callable[..., Sim]) -> None:
    s = sim()
    s.create("1g.12gb:2")
    r = s("destroy", "--all", "--json", env={"MIGCTL_SIM_FAULTS": "destroy-gi@1=UNKNOWN"})
    assert r.code == 8
    err = r.json()
    assert "already destroyed" in err["hint"] and "run the same command again" in err["hint"]
    assert [d["compute_instance_id"] for d in err["destroyed"]] == [0, 0]
    s.ok("destroy", "--all")
    assert s.gpu()["gpu_instances"] == []


# =========================================================================== the host lock


HOLDER = """
import sys, time
from migctl.ops.lock import host_lock
with host_lock(what="holder: migctl apply big-layout.yaml"):
    print("locked", flush=True)
    time.sleep(30)
"""


@contextmanager
def lock_holder(state_dir: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_mutating_command_waits_then_names_the_holder(sim: Callable[..., Sim], state_dir: Path) -> None:
    s = sim()
    before = s.status()
    with lock_holder(state_dir) as holder:
        start = time.monotonic()
        r = s("create", "1g.12gb", "--wait", "1")
        assert time.monotonic() - start < 10
        refused(r, 9, f"pid {holder.pid} (holder: migctl apply big-layout.yaml) holds the lock", "waited 1 s")
        for argv in (
            ["destroy", "--all"],
            ["mode", "disable"],
            ["reset", "-i", "1"],
            ["create-ci", "-i", "0", "--gi", "1"],
        ):
            err = s(*argv, "--wait", "0.2", "--json")
            assert (err.code, err.json()["error"]) == (9, "locked"), argv
        # Read-only commands never wait for the lock.
        for argv in (["status"], ["devices"], ["profiles"]):
            s.ok(*argv, "--json")
        assert holder.poll() is None, "the holder must still hold the lock while status answered"
    assert s.status() == before
    s.ok("create", "1g.12gb", "--wait", "5")  # the kernel freed the lock when the holder died


def test_concurrent_creates_never_interleave(sim: Callable[..., Sim], state_dir: Path) -> None:
    s = sim()
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "COLUMNS": "200"}

    def start(*args: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "migctl", "--sim", "h20x8", *args, "--json"]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    # Two full-GPU requests at once: exactly one wins whole, the other changes nothing.
    procs = [start("create", "1g.12gb:7", "-i", "0") for _ in range(2)]
    results = [(p.wait(timeout=60), p.communicate()[0]) for p in procs]
    assert sorted(code for code, _ in results) == [0, 4]
    winner = next(json.loads(out) for code, out in results if code == 0)
    gis = s.gpu()["gpu_instances"]
    assert len(gis) == 7 and len({g["id"] for g in gis}) == 7
    assert sorted(g["id"] for g in gis) == sorted(c["gpu_instance_id"] for c in winner["created"])
    spans = sorted((g["placement"]["start"], g["placement"]["size"]) for g in gis)
    assert all(a[0] + a[1] <= b[0] for a, b in itertools.pairwise(spans))

    # Ten single requests at once: exactly seven fit, the rest are refused cleanly.
    s.ok("destroy", "--all")
    procs = [start("create", "1g.12gb", "-i", "0") for _ in range(10)]
    singles = [(p.wait(timeout=60), p.communicate()) for p in procs]
    codes = [code for code, _ in singles]
    assert codes.count(0) == 7 and codes.count(4) == 3, singles
    made = [json.loads(out)["created"][0]["uuid"] for code, (out, _) in singles if code == 0]
    assert all("Traceback" not in err for _, (_, err) in singles)
    status = s.gpu()
    assert sorted(ci["uuid"] for g in status["gpu_instances"] for ci in g["compute_instances"]) == sorted(made)
    placements = [Placement(g["placement"]["start"], g["placement"]["size"]) for g in status["gpu_instances"]]
    assert not any(p.overlaps(q) for p, q in itertools.combinations(placements, 2))


# =========================================================================== exit codes, --json, --debug


def test_exit_codes_are_one_per_class_and_documented() -> None:
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    doc = (REPO / "docs" / "lifecycle.md").read_text()
    for kind, code in EXIT_CODES.items():
        assert re.search(rf"^\|\s*{code}\s*\|\s*`{kind}`", doc, re.M), f"docs/lifecycle.md lacks exit {code} ({kind})"


def test_user_errors_have_no_traceback_unless_debug(sim: Callable[..., Sim]) -> None:
    s = sim()
    r = s("create", "bogus")
    assert r.code == 2 and r.err.startswith("migctl: error: 'bogus'") and "Traceback" not in r.err
    r = s("--debug", "create", "bogus")
    assert r.code == 2 and "Traceback (most recent call last)" in r.err and "UsageError" in r.err


JSON_ERRORS = [
    (["mode", "sideways"], 2, "usage"),
    (["create"], 2, "usage"),  # a missing argument, caught by the parser
    (["create", "1g.12gb", "--placement", "x"], 2, "usage"),
    (["create", "1g.12gb", "-i", "9"], 2, "usage"),
    (["create", "7g.96gb", "4g.48gb"], 4, "insufficient_resources"),
    (["create", "1g.12gb", "-i", "1"], 3, "not_supported"),
    (["create-ci", "-i", "0", "--gi", "99"], 2, "usage"),
    (["destroy", "-i", "0", "--gi", "99"], 2, "usage"),
    (["destroy", "--gi", "99"], 2, "usage"),  # GPU-instance IDs need -i on a node with several GPUs
    (["reset", "-i", "12"], 2, "usage"),
]


def test_json_errors_are_objects_with_the_exit_code(sim: Callable[..., Sim]) -> None:
    s = sim()
    for argv, code, kind in JSON_ERRORS:
        r = s(*argv, "--json")
        assert r.code == code, (argv, r)
        err = r.json()
        assert (err["error"], err["exit_code"]) == (kind, code), argv
        assert err["message"] and not r.err, argv


# =========================================================================== the Python API


def test_python_api_walkthrough(state_dir: Path) -> None:
    with migctl.Node(sim="h20x8", state_dir=state_dir) as node:
        (outcome,) = node.mode(True, gpus=0).gpus
        assert (outcome.gpu, outcome.result) == (0, "enabled")

        made = node.create("1g.12gb:2", migctl.ProfileRequest("2g.24gb"), gpus=0).created
        assert [m.profile for m in made] == ["2g.24gb", "1g.12gb", "1g.12gb"]
        assert all(m.uuid and m.uuid.startswith("MIG-") and m.compute_instance_id == 0 for m in made)

        (gi,) = node.create("3g.48gb", gpus=0, compute_instance=False).created
        cis = node.create_ci(0, gi.gpu_instance_id, "1c.3g.48gb:3").created
        assert [c.compute_instance_id for c in cis] == [0, 1, 2]

        gone = node.destroy(gpus=0, ci=[(gi.gpu_instance_id, 0), (gi.gpu_instance_id, 1)]).destroyed
        assert [(d.gpu_instance_id, d.compute_instance_id) for d in gone] == [
            (gi.gpu_instance_id, 0),
            (gi.gpu_instance_id, 1),
        ]

        (status,) = node.status(0).gpus
        assert len(status.gpu_instances) == 4

        done = node.destroy(gpus=0, everything=True).destroyed
        assert sum(d.compute_instance_id is None for d in done) == 4
        (off,) = node.set_mig_mode(False, gpus=0).gpus  # the older name of mode()
        assert off.result == "disabled"


def test_python_api_raises_typed_errors(
    state_dir: Path, sim: Callable[..., Sim], monkeypatch: pytest.MonkeyPatch
) -> None:
    with migctl.Node(sim="h20x8", state_dir=state_dir) as node:
        with pytest.raises(migctl.NotSupportedError, match="MIG is disabled on GPU 0"):
            node.create("1g.12gb")
        node.mode(True, gpus=0)
        with pytest.raises(migctl.UsageError, match="'1' is not a GPU-instance profile") as usage:
            node.create("20,1g.12gb,1")
        assert usage.value.exit_code == 2 and usage.value.nvml_code is None
        with pytest.raises(migctl.InsufficientResourcesError) as full:
            node.create("7g.96gb", "1g.12gb")
        assert full.value.exit_code == 4 and "nothing was created" in str(full.value)
        (made,) = node.create("1g.12gb").created
        assert made.uuid is not None
        with running_on(sim("h20x8", enable=None), uuid=made.uuid) as proc:
            with pytest.raises(migctl.InUseError, match=f"pid {proc.pid}") as busy:
                node.destroy(gpus=0, everything=True)
            assert busy.value.exit_code == 5
    monkeypatch.setenv("MIGCTL_SIM_FAULTS", "create-gi@1=UNKNOWN")
    with migctl.Node(sim="h20x8") as node:
        with pytest.raises(migctl.DriverError) as driver:
            node.create("1g.12gb")
        assert driver.value.nvml_code == pynvml.NVML_ERROR_UNKNOWN
        assert driver.value.to_json()["nvml_error"] == "NVML_ERROR_UNKNOWN"
        assert isinstance(driver.value, migctl.MigctlError) and driver.value.exit_code == 8


def test_python_api_lock_timeout(state_dir: Path) -> None:
    with migctl.Node(sim="h20x8", state_dir=state_dir) as node, lock_holder(state_dir) as holder:
        with pytest.raises(migctl.LockTimeoutError, match=f"pid {holder.pid}") as locked:
            node.mode(True, gpus=0, wait_s=0.2)
        assert locked.value.exit_code == 9
        assert node.status(0).gpus[0].mig == MigModeState(current=False, pending=False)  # reading never waits


# --------------------------------------------------------------------------- interrupted creates


def _start_slow_create(state_dir: Path, spec: str, *args: str) -> subprocess.Popen[str]:
    """``migctl create`` with each simulated GPU-instance create taking ~0.26 s."""
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM_LATENCY": "20"}
    return subprocess.Popen(
        [sys.executable, "-m", "migctl", "--sim", spec, "create", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_instances(sim: Sim, at_least: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(sim.status("0")["gpus"][0]["gpu_instances"]) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"never saw {at_least} instances")


def test_sigterm_mid_create_undoes_what_it_made(sim: Callable[..., Sim], state_dir: Path) -> None:
    h20 = sim("h20x1")
    h20.ok("mode", "enable", "-i", "0")
    before = h20.status("0")
    proc = _start_slow_create(state_dir, "h20x1", "1g.12gb:7")
    try:
        _wait_for_instances(h20, 2)
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_CODES["interrupted"] == 130
    assert "interrupted" in err and "destroyed again" in err
    assert h20.status("0") == before
    assert not list((state_dir / "journal").glob("*.json"))


def test_kill_9_mid_create_is_finished_by_recover(sim: Callable[..., Sim], state_dir: Path) -> None:
    h20 = sim("h20x1")
    h20.ok("mode", "enable", "-i", "0")
    proc = _start_slow_create(state_dir, "h20x1", "1g.12gb:7")
    try:
        _wait_for_instances(h20, 2)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    half = h20.status("0")["gpus"][0]["gpu_instances"]
    assert 2 <= len(half) < 7
    assert list((state_dir / "journal").glob("gpu-0.json"))
    out = h20.ok("recover").out
    assert "GPU 0: finished" in out and "migctl create 1g.12gb:7" in out
    done = h20.status("0")["gpus"][0]["gpu_instances"]
    assert len(done) == 7 and all(len(g["compute_instances"]) == 1 for g in done)
    survivors = {g["id"]: g["compute_instances"][0]["uuid"] for g in half if g["compute_instances"]}
    assert {g["id"]: g["compute_instances"][0]["uuid"] for g in done if g["id"] in survivors} == survivors


def test_reset_refuses_to_only_wipe_instances(sim: Callable[..., Sim]) -> None:
    h20 = sim("h20x1")
    h20.ok("create", "-i", "0", "1g.12gb:2")
    before = h20.status("0")
    r = h20("reset", "-i", "0")
    assert r.code == EXIT_CODES["in_use"]
    assert "no MIG mode change is pending" in r.err and "--force" in r.err and "1g.12gb" in r.err
    assert h20.status("0") == before
    h20.ok("reset", "-i", "0", "--force")
    assert h20.status("0")["gpus"][0]["gpu_instances"] == []


def test_mode_on_a_mixed_node_without_i_succeeds_and_reports_the_non_mig_gpu(sim: Callable[..., Sim]) -> None:
    mixed = sim("h20x1,l40sx1", enable=None)
    r = mixed("mode", "enable", "--json")
    assert r.code == 0
    assert [(o["gpu"], o["result"]) for o in r.json()["gpus"]] == [(0, "enabled"), (1, "not_supported")]
    named = mixed("mode", "enable", "-i", "1")
    assert named.code == EXIT_CODES["not_supported"]
