"""migctl.ray on a real three-node local Ray cluster, each node with its own simulated GPUs.

What a user relies on: a MIG task runs on a node that has its device, sees exactly that one
MIG device, holds its lease while it runs (and loses it the moment its worker is killed);
missing devices are made on demand and reclaimed; nothing is shared under load; and
``migctl cluster`` plans, applies and asserts every node, surviving a node that dies mid-apply.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ray

import migctl.ray
from migctl.ops import leases
from migctl.ray import MigRequestError, MigUnavailableError, MigWorkerDiedError

from .conftest import NODES, RayCluster, node_env, valid

# One Ray cluster per test run: under pytest-xdist (--dist loadgroup) these tests share one worker.
pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]

# The executors import the test's functions: ship them by value (the workers do not have tests/ on sys.path).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]


def probe(seconds: float = 0.0, pid_file: str | None = None) -> dict[str, Any]:
    """What a MIG task sees: its CUDA device, its node's state, who holds its device's lease."""
    uuid = os.environ["CUDA_VISIBLE_DEVICES"]
    if pid_file is not None:
        Path(pid_file).write_text(json.dumps({"pid": os.getpid(), "uuid": uuid,
                                              "state_dir": os.environ["MIGCTL_STATE_DIR"]}))
    started = time.time()
    holder = leases.holder(uuid)
    time.sleep(seconds)
    return {
        "uuid": uuid,
        "pid": os.getpid(),
        "lease_pid": None if holder is None else holder.pid,
        "state_dir": os.environ.get("MIGCTL_STATE_DIR"),
        "device_uuid": os.environ.get("MIGCTL_DEVICE_UUID"),
        "profile": os.environ.get("MIGCTL_PROFILE"),
        "start": started,
        "end": time.time(),
    }


task = migctl.ray.remote(mig="1g.12gb")(probe)


class _Holder:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def info(self) -> dict[str, Any]:
        return {**probe(), "tag": self.tag}


Holder = migctl.ray.remote(mig="1g.6gb", dynamic=False)(_Holder)  # a MIG actor class


def devices_of(status: dict[str, Any]) -> dict[str, str]:
    """MIG UUID -> profile, from ``migctl status --json``."""
    return {ci["uuid"]: ci["profile"] for g in status["gpus"] for gi in g["gpu_instances"]
            for ci in gi["compute_instances"]}


def wait_unleased(rc: RayCluster, name: str, within: float = 30) -> None:
    """Until no MIG device of node ``name`` has a lease holder (a test leaves the cluster as it found it)."""
    deadline = time.monotonic() + within
    while any(ci["holder"] for g in rc.node_status(name)["gpus"] for gi in g["gpu_instances"]
              for ci in gi["compute_instances"]):
        assert time.monotonic() < deadline, f"leases on {name} outlived their processes"
        time.sleep(0.1)


def node_named(rc: RayCluster, state_dir: str | None) -> str:
    return next(name for name, d in rc.state_dirs.items() if str(d) == state_dir)


def test_static_layout_runs_each_task_on_one_existing_device_of_its_profile(ray_cluster: RayCluster) -> None:
    rc = ray_cluster
    rc.apply("small")
    h20 = {**devices_of(rc.node_status("n0")), **devices_of(rc.node_status("n1"))}
    results = ray.get([task.options(dynamic=False).remote() for _ in range(8)])
    for r in results:
        assert r["uuid"] in h20 and h20[r["uuid"]] == "1g.12gb"  # a real device of that profile, on an H20 node
        assert r["device_uuid"] == r["uuid"] and r["profile"] == "1g.12gb"
        assert r["lease_pid"] == r["pid"]  # the task's own process holds the lease while it runs
    a30 = ray.get(task.options(mig="1g.6gb", dynamic=False).remote())
    assert node_named(rc, a30["state_dir"]) == "n2" and a30["uuid"] in devices_of(rc.node_status("n2"))


def test_a_request_nothing_can_meet_times_out_saying_what_is_missing(ray_cluster: RayCluster) -> None:
    ray_cluster.apply("small")
    started = time.monotonic()
    with pytest.raises(MigUnavailableError, match=r"2g\.24gb.*no 2g\.24gb MIG device exists.*dynamic=False"):
        ray.get(task.options(mig="2g.24gb", dynamic=False, timeout=1).remote())
    assert 1 <= time.monotonic() - started < 15
    with pytest.raises(MigRequestError, match=r"no GPU in the Ray cluster offers 9g\.9tb.*1g\.12gb"):
        ray.get(task.options(mig="9g.9tb").remote())
    with pytest.raises(MigRequestError, match="num_gpus"):
        migctl.ray.remote(mig="1g.12gb", num_gpus=1)(probe)


def test_missing_devices_are_made_on_demand_and_reclaimed_when_idle(ray_cluster: RayCluster, tmp_path: Path) -> None:
    rc = ray_cluster
    rc.apply("empty")
    pid_file = tmp_path / "pid.json"
    ref = task.options(mig="3g.48gb").remote(3.0, str(pid_file))
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.1)
    name = node_named(rc, json.loads(pid_file.read_text())["state_dir"])
    listed = valid("cluster status", rc.cli("cluster", "status", "--json").stdout)
    made = {(n["node"]["node_id"], x["gpu"]) for n in listed["nodes"] for x in n["on_demand"]}
    assert (rc.node_ids[name], 0) in made
    big = ray.get(ref)
    assert devices_of(rc.node_status(name)).get(big["uuid"]) == "3g.48gb"
    by_memory = ray.get(task.options(mig_memory="20GiB").remote())
    assert by_memory["profile"] in ("1g.24gb", "4g.24gb")  # the smallest with 20 GiB on an H20, on an A30
    deadline = time.monotonic() + 20  # reclaim_after_s=2 in the fixture, plus a poll or two
    while big["uuid"] in devices_of(rc.node_status(name)):
        assert time.monotonic() < deadline, "the idle on-demand instance was never reclaimed"
        time.sleep(1)


def test_no_device_is_shared_by_120_concurrent_tasks(ray_cluster: RayCluster) -> None:
    rc = ray_cluster
    rc.apply("small")
    results = ray.get([task.options(dynamic=False).remote(0.03) for _ in range(120)])
    by_uuid: dict[str, list[dict[str, Any]]] = {}
    by_pid: dict[int, set[str]] = {}
    for r in results:
        assert r["lease_pid"] == r["pid"]
        by_uuid.setdefault(r["uuid"], []).append(r)
        by_pid.setdefault(r["pid"], set()).add(r["uuid"])
    assert 1 < len(by_uuid) <= 6  # the six 1g.12gb devices of the two H20 nodes
    for uuid, runs in by_uuid.items():
        runs.sort(key=lambda r: r["start"])
        for a, b in itertools.pairwise(runs):
            assert a["end"] <= b["start"], f"two tasks overlapped on {uuid}"
    assert all(len(uuids) == 1 for uuids in by_pid.values()), "a worker process saw two MIG devices"


def test_kill_9_of_the_worker_releases_the_lease_within_seconds(
    ray_cluster: RayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray_cluster.apply("small")
    pid_file = tmp_path / "pid.json"
    ref = task.options(dynamic=False, max_retries=0).remote(120, str(pid_file))
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.1)
    seen = json.loads(pid_file.read_text())
    monkeypatch.setenv("MIGCTL_STATE_DIR", seen["state_dir"])
    held = leases.holder(seen["uuid"])
    assert held is not None and held.pid == seen["pid"]
    os.kill(seen["pid"], signal.SIGKILL)
    killed = time.monotonic()
    while leases.holder(seen["uuid"]) is not None:
        assert time.monotonic() - killed < 3, "the lease outlived its worker"
        time.sleep(0.05)
    with pytest.raises(MigWorkerDiedError, match="lease was released"):
        ray.get(ref, timeout=60)
    again = ray.get(task.options(dynamic=False).remote(), timeout=60)
    assert again["lease_pid"] == again["pid"]


def test_an_actor_holds_its_device_for_life(ray_cluster: RayCluster) -> None:
    rc = ray_cluster
    rc.apply("small")  # two 1g.6gb on the A30 node
    first, second = Holder.remote("a"), Holder.remote("b")
    a, b = ray.get([first.info.remote(), second.info.remote()])
    assert node_named(rc, a["state_dir"]) == node_named(rc, b["state_dir"]) == "n2"
    assert a["uuid"] != b["uuid"] and a["lease_pid"] == a["pid"] and b["lease_pid"] == b["pid"]
    assert ray.get(first.info.remote())["uuid"] == a["uuid"]  # the same device on every call
    with pytest.raises(MigUnavailableError, match=r"1g\.6gb"):
        Holder.options(timeout=1).remote("c")
    ray.kill(first)
    third = Holder.options(timeout=30).remote("d")
    assert ray.get(third.info.remote())["uuid"] == a["uuid"]
    ray.kill(second)
    ray.kill(third)
    wait_unleased(rc, "n2")  # ray.kill returns before the processes (and their leases) are gone


def test_cluster_apply_assert_and_status_cover_every_node(ray_cluster: RayCluster) -> None:
    rc = ray_cluster
    layouts = str(rc.layouts)
    rc.apply("empty")
    planned = rc.cli("cluster", "plan", "-f", layouts, "-c", "small", "--json")
    assert planned.returncode == 0, planned.stderr
    plans = valid("cluster plan", planned.stdout)  # one JSON document for the whole cluster
    creates = sorted(len(g["create"]) for n in plans["nodes"] for g in n["report"]["gpus"])
    assert creates == [2, 3, 3]  # 2x 1g.6gb on the A30, 3x 1g.12gb on each H20, nothing changed yet
    p = rc.cli("cluster", "apply", "-f", layouts, "-c", "small")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("node ") == 3 and "3 node(s) ok, 0 failed" in p.stdout
    matches = rc.cli("cluster", "assert", "-f", layouts, "-c", "small", "--json")
    assert matches.returncode == 0 and valid("cluster assert", matches.stdout)["ok"] is True
    differs = rc.cli("cluster", "assert", "-f", layouts, "-c", "empty")
    assert differs.returncode == 10 and "differs" in differs.stdout
    bad = rc.cli("cluster", "apply", "-f", layouts, "-c", "nosuch")
    assert bad.returncode == 2 and "no config named 'nosuch'" in bad.stderr and "Traceback" not in bad.stderr
    status = valid("cluster status", rc.cli("cluster", "status", "--json").stdout)
    specs = sorted(n["node"]["sim_spec"] for n in status["nodes"])
    assert specs == sorted(NODES.values())
    names = {n["node"]["sim_spec"]: {g["name"] for g in n["status"]["gpus"]} for n in status["nodes"]}
    assert names["a30x1"] == {"NVIDIA A30"} and names["h20x1"] == {"NVIDIA H20"}


def test_a_node_that_joins_gets_an_agent_and_one_that_dies_mid_apply_fails_alone(ray_cluster: RayCluster) -> None:
    rc = ray_cluster
    layouts = str(rc.layouts)
    rc.apply("empty")
    state = rc.base / "n3"
    # Slow GPU instance creation on this node (the simulator's latency x30) so the apply is caught mid-way.
    env = node_env(state, "h20x2", MIGCTL_SIM_LATENCY="30")
    node = rc.cluster.add_node(include_dashboard=False, object_store_memory=80 * 1024 * 1024, num_cpus=1, env_vars=env)
    scheduler = ray.get_actor("migctl-scheduler", namespace="migctl")
    deadline = time.monotonic() + 60
    while node.node_id not in {v.node_id for v in ray.get(scheduler.views.remote())}:
        assert time.monotonic() < deadline, "the scheduler never joined the new node"
        time.sleep(0.5)
    env_cli = {**os.environ, "RAY_ADDRESS": rc.address, "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "migctl", "cluster", "apply", "-f", layouts, "-c", "small"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_cli)
    journal = state / "journal"
    deadline = time.monotonic() + 90
    while not any(journal.glob("gpu-*.json")):
        assert proc.poll() is None, "apply ended before the slow node started changing"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rc.cluster.remove_node(node, allow_graceful=False)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert out.count(": applied") + out.count(": unchanged") == 3, out
    assert "unreachable" in out and "journal" in out and "3 node(s) ok, 1 failed" in out
    # The node comes back (same disks): the next apply finishes or rolls back what was cut short.
    node = rc.cluster.add_node(include_dashboard=False, object_store_memory=80 * 1024 * 1024, num_cpus=1,
                               env_vars=node_env(state, "h20x2"))
    again = rc.cli("cluster", "apply", "-f", layouts, "-c", "small")
    assert again.returncode == 0, again.stdout + again.stderr
    assert not any(journal.glob("gpu-*.json"))
    assert rc.cli("cluster", "assert", "-f", layouts, "-c", "small").returncode == 0
    rc.cluster.remove_node(node)


def test_on_demand_never_reshapes_a_device_someone_else_is_using(ray_cluster: RayCluster) -> None:
    """Outside migctl.ray, `migctl run` holds one 1g.12gb on each H20 node: no 7g.96gb can be made."""
    rc = ray_cluster
    rc.apply("small")
    scheduler = ray.get_actor("migctl-scheduler", namespace="migctl")
    h20 = {rc.node_ids["n0"], rc.node_ids["n1"]}

    def held_and_all() -> tuple[set[str], set[str]]:
        views = [v for v in ray.get(scheduler.views.remote()) if v.node_id in h20]
        devices = [d for v in views for d in v.devices()]
        return {d.uuid for d in devices if d.holder}, {d.uuid for d in devices}

    holders = []
    try:
        for name in ("n0", "n1"):
            env = {**os.environ, "MIGCTL_STATE_DIR": str(rc.state_dirs[name]), "MIGCTL_SIM": NODES[name]}
            holders.append(subprocess.Popen(
                [sys.executable, "-m", "migctl", "run", "-q", "--on", "1g.12gb", "--", "sleep", "60"], env=env,
                start_new_session=True))
        deadline = time.monotonic() + 30
        while len(held_and_all()[0]) < 2:  # the scheduler has seen both leases
            assert time.monotonic() < deadline, "migctl run never leased its device"
            time.sleep(0.2)
        held, before = held_and_all()
        with pytest.raises(MigUnavailableError, match=r"7g\.96gb.*without touching a busy one"):
            ray.get(task.options(mig="7g.96gb", timeout=3).remote())
        free = ray.get([task.options(dynamic=False, timeout=60).remote() for _ in range(4)], timeout=120)
        assert not held & {r["uuid"] for r in free}, "a task was given a device someone else holds"
        still = {uuid for n in ("n0", "n1") for uuid in devices_of(rc.node_status(n))}
        assert still == before, f"instances changed: before {sorted(before)}, after {sorted(still)}"
    finally:
        for p in holders:  # migctl run and its job (which holds the lease too)
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for name in ("n0", "n1"):
            wait_unleased(rc, name)


def test_ray_down_stops_the_actors_and_ray_up_brings_them_back_for_running_jobs(ray_cluster: RayCluster) -> None:
    """After ``migctl ray down`` (instances stay) and ``migctl ray up``, this job's MIG tasks run again."""
    rc = ray_cluster
    rc.apply("small")
    down = rc.cli("ray", "down", "--json")
    assert down.returncode == 0, down.stderr
    stopped = valid("ray down", down.stdout)["stopped"]
    assert "migctl-scheduler" in stopped and sum(name.startswith("migctl-agent-") for name in stopped) == 3
    assert len(devices_of(rc.node_status("n0"))) == 3  # its instances are still there
    up = rc.cli("ray", "up", "--reclaim-after", "2", "--json")
    assert up.returncode == 0, up.stderr
    nodes = valid("ray up", up.stdout)["nodes"]
    assert sorted(n["sim_spec"] for n in nodes) == sorted(NODES.values())
    assert {n["node_id"]: n["mig_devices"] for n in nodes}[rc.node_ids["n0"]] == 3
    migctl.ray.init(reclaim_after_s=2.0, drain_after_s=0.3, executor_idle_s=60.0)  # the fixture's settings
    again = ray.get(task.options(dynamic=False, timeout=60).remote(), timeout=120)
    assert again["lease_pid"] == again["pid"]
    assert again["uuid"] in devices_of(rc.node_status(node_named(rc, again["state_dir"])))


def _readme_ray_example() -> str:
    """The Python block of the README's Ray section, as a user would paste it."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text.split("\n## Ray", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_and_examples_ray_mig_run(ray_cluster: RayCluster, tmp_path: Path) -> None:
    """A new driver runs the README's snippet, then ``examples/ray_mig.py``, on this cluster."""
    rc = ray_cluster
    rc.apply("empty")
    env = {**os.environ, "RAY_ADDRESS": rc.address, "COLUMNS": "200"}
    env.pop("MIGCTL_STATE_DIR", None)
    env.pop("MIGCTL_SIM", None)
    script = tmp_path / "readme_ray.py"
    script.write_text(_readme_ray_example())
    try:
        p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=180,
                           check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        lines = p.stdout.splitlines()
        three = ast.literal_eval(lines[0])  # a list of three MIG UUIDs, as the snippet prints it
        assert len(three) == 3 and all(u.startswith("MIG-") for u in three)
        assert all(line.startswith("MIG-") for line in lines[1:3])
        example = Path(__file__).parents[2] / "examples" / "ray_mig.py"
        p = subprocess.run([sys.executable, str(example), "--tasks", "10"], capture_output=True, text=True, env=env,
                           timeout=180, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "10 tasks on" in p.stdout and "3 node(s)" in p.stdout, p.stdout
    finally:
        migctl.ray.init(reclaim_after_s=2.0, drain_after_s=0.3, executor_idle_s=60.0)  # the fixture's settings
