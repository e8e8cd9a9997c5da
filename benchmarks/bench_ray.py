"""Benchmark: MIG devices for Ray tasks (migctl.ray) against whole GPUs and a static layout.

A real local Ray cluster (``ray.cluster_utils.Cluster``) of 4 nodes x 8 simulated H20s, each
node with its own state directory and ``MIGCTL_SIM`` through its environment. 1,000 short
tasks (0.2 s of simulated work each) with a mixed demand (60% 1g.12gb, 25% 2g.24gb, 10%
3g.48gb, 5% 7g.96gb), all submitted at once, run four ways in the same run:

* ``whole GPUs``: Ray's plain ``num_gpus=1`` way, every task on a whole GPU whatever it needs
  (whole GPUs simulated by a custom resource, 8 per node, on the same nodes);
* ``static all-balanced``: mig-parted's ``all-balanced`` layout on every GPU, ``dynamic=False``
  (there is no 7g.96gb device in it: those requests time out, after 20 s);
* ``on demand, first-fit``: migctl.ray making instances as needed, placed first-fit;
* ``on demand, migctl``: the same with migctl's placement.

Measured: makespan and mean wait (task start minus submission); requests that waited while
enough memory slices were free in aggregate (fragmentation), live in the two on-demand runs
and, because that count is small and noisy when instances are reused, in a deterministic
replay of the placement policy alone on one trace per load (``replay_placement.py``); and
the MIG path's median cost per task over a plain Ray task (sequential tiny tasks, warm
processes). Worker processes are started before each timed run (Ray's for the whole GPUs; a
warm pool of blank executors for the MIG runs, bound to a device when one is granted: 32 per
node, 16 with ``--quick``). Each on-demand run starts from a scheduler that has learnt nothing.
The machine's load average is printed with every run: the absolute times on a shared machine
are inflated, the ratios are measured in the same run.

Targets: MIG overhead < 20 ms; on-demand makespan below the whole-GPU one; migctl placement
less fragmented than first-fit. ``--quick``: 2 nodes x 2 H20s, 150 tasks.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import replay_placement  # benchmarks/replay_placement.py
from _common import environ, print_table  # benchmarks/_common.py
from migctl.core.ondemand import Policy

MIX = (("1g.12gb", 0.60), ("2g.24gb", 0.25), ("3g.48gb", 0.10), ("7g.96gb", 0.05))
OVERHEAD_TARGET_MS = 20.0
LAYOUTS = """\
version: v1
mig-configs:
  empty:
    - devices: all
      mig-enabled: true
      mig-devices: {}
"""
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "src" / "migctl" / "data" / "mig-parted-config-default.yaml"


def work(seconds: float) -> tuple[float, float]:
    started = time.time()
    time.sleep(seconds)
    return started, time.time()


def noop() -> int:
    return 0


def demand(n: int, seed: int = 13) -> list[str]:
    out: list[str] = []
    for name, share in MIX:
        out += [name] * round(n * share)
    out = (out + [MIX[0][0]] * n)[:n]
    random.Random(seed).shuffle(out)
    return out


def start_cluster(base: Path, nodes: int, spec: str, gpus_per_node: int, latency: str) -> Any:
    from ray.cluster_utils import Cluster

    def args(i: int) -> dict[str, Any]:
        return {
            "num_cpus": 8,
            "resources": {"whole_gpu": gpus_per_node},
            "include_dashboard": False,
            "object_store_memory": 100 * 1024 * 1024,
            "env_vars": {"MIGCTL_SIM": spec, "MIGCTL_STATE_DIR": str(base / f"node{i}"),
                         "MIGCTL_SIM_LATENCY": latency},
        }

    cluster = Cluster(initialize_head=True, head_node_args=args(0))
    for i in range(1, nodes):
        cluster.add_node(**args(i))
    cluster.wait_for_nodes()
    return cluster


def timed(submit: list[tuple[float, Any]], profiles: list[str]) -> dict[str, Any]:
    """Wait for every ref; makespan, mean wait, done/failed (and, per profile, wait and last end)."""
    import ray

    from migctl.ray import MigUnavailableError

    waits, ends, failed = [], [], 0
    first = min(t for t, _ in submit)
    per: dict[str, list[tuple[float, float]]] = {}
    for (t, ref), profile in zip(submit, profiles, strict=True):
        try:
            started, ended = ray.get(ref)
        except MigUnavailableError:
            failed += 1
            continue
        waits.append(started - t)
        ends.append(ended)
        per.setdefault(profile, []).append((started - t, ended - first))
    parts = [f"{p}: mean wait {statistics.fmean(w for w, _ in v):.2f} s, last end {max(e for _, e in v):.2f} s"
             for p, v in sorted(per.items())]
    print("    " + "; ".join(parts), flush=True)
    return {
        "makespan": max(ends) - first if ends else float("nan"),
        "mean_wait": statistics.fmean(waits) if waits else float("nan"),
        "done": len(waits),
        "failed": failed,
    }


def run_whole(profiles: list[str], seconds: float, total_gpus: int) -> dict[str, Any]:
    import ray

    plain = ray.remote(work).options(num_cpus=0, resources={"whole_gpu": 1})
    ray.get([plain.remote(0.5) for _ in range(total_gpus)])  # warm: one worker per GPU
    submit = [(time.time(), plain.remote(seconds)) for _ in profiles]
    return timed(submit, profiles)


def run_mig(profiles: list[str], seconds: float, *, dynamic: bool, timeout: float | None) -> dict[str, Any]:
    import migctl.ray

    task = migctl.ray.remote(mig="1g.12gb", dynamic=dynamic, timeout=timeout)(work)
    by_profile = {p: task.options(mig=p) for p in set(profiles)}
    submit = [(time.time(), by_profile[p].remote(seconds)) for p in profiles]
    return timed(submit, profiles)


def apply(text: str, source: str, name: str) -> None:
    from migctl.ray import cluster

    for attempt in range(4):  # idle executors of the last run may take a moment to exit on a loaded machine
        report = cluster.apply(text, source, name)
        if report.ok:
            return
        time.sleep(2 + 2 * attempt)
    raise SystemExit(f"cluster apply {name} failed: " + "; ".join(f"{n.result} {n.detail}" for n in report.nodes))


def prestart(per_node: int) -> None:
    import ray

    from migctl.ray import control

    d = control.dispatcher(executor_idle_s=600.0, prestart=0)  # no refills while a run is measured
    ray.get(d.prestart.remote(per_node, control.alive_nodes()))


def scheduler_stats() -> dict[str, Any]:
    import ray

    from migctl.ray.scheduler import stats_summary
    from migctl.ray.types import NAMESPACE, SCHEDULER_NAME

    s = ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE)
    s.forget.remote()  # each run starts from what the scheduler knows at start-up
    return stats_summary(ray.get(s.get_stats.remote(True)))


def overhead(samples: int) -> tuple[float, float]:
    """Median seconds per sequential tiny task: plain Ray, and the MIG path (warm executor)."""
    import ray

    import migctl.ray

    plain = ray.remote(noop).options(num_cpus=0)
    mig = migctl.ray.remote(mig="1g.12gb")(noop)
    out = []
    for fn in (plain, mig):
        ray.get([fn.remote() for _ in range(3)])
        times = []
        for _ in range(samples):
            t = time.perf_counter()
            ray.get(fn.remote())
            times.append(time.perf_counter() - t)
        out.append(statistics.median(times))
    return out[0], out[1]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} CPUs"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 nodes x 2 H20s, 150 tasks")
    parser.add_argument("--latency", default="none",
                        help="the simulated GPUs' MIGCTL_SIM_LATENCY: none (default) or realistic (docs/simulator.md)")
    opts = parser.parse_args(argv)
    nodes, gpus, tasks, per_node = (2, 2, 150, 16) if opts.quick else (4, 8, 1000, 32)
    seconds = 0.2
    spec = f"h20x{gpus}"
    profiles = demand(tasks)
    print("placement replay (no Ray): ...", flush=True)
    replays = {lo: replay_placement.compare(n=400 if opts.quick else 1500, load=lo,
                                            seeds=(1, 2) if opts.quick else (1, 2, 3)) for lo in (0.8, 0.9)}
    import ray

    import migctl.ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
    loads: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="migctl-bench-ray-") as tmp, environ(
        MIGCTL_STATE_DIR=None, MIGCTL_SIM=None, RAY_ADDRESS=None
    ):
        base = Path(tmp)
        print(f"starting a Ray cluster of {nodes} nodes x {gpus} simulated H20s, MIGCTL_SIM_LATENCY={opts.latency} "
              f"({load()}) ...", flush=True)
        cluster = start_cluster(base, nodes, spec, gpus, opts.latency)
        try:
            ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
            big = 600.0  # no reclaim, no executor retirement inside a run
            migctl.ray.init(placement="migctl", reclaim_after_s=big, executor_idle_s=big, drain_after_s=1.0)
            balanced = DEFAULT_CONFIG.read_text()
            results: dict[str, dict[str, Any]] = {}
            for policy in ("migctl", "first-fit"):
                apply(LAYOUTS, "bench", "empty")
                migctl.ray.init(placement=policy, reclaim_after_s=big, executor_idle_s=big, drain_after_s=1.0)
                prestart(per_node)
                scheduler_stats()
                loads[policy] = load()
                print(f"on demand, {policy} placement: {tasks} tasks ({loads[policy]}) ...", flush=True)
                results[policy] = {**run_mig(profiles, seconds, dynamic=True, timeout=None), **scheduler_stats()}
                print("    scheduler:", {k: v for k, v in results[policy].items() if k not in ("done",)}, flush=True)
            plain_s, mig_s = overhead(100 if opts.quick else 200)
            apply(balanced, str(DEFAULT_CONFIG), "all-balanced")
            prestart(min(per_node, 4 * gpus))
            scheduler_stats()
            loads["static"] = load()
            print(f"static all-balanced: {tasks} tasks ({loads['static']}) ...", flush=True)
            results["static"] = {**run_mig(profiles, seconds, dynamic=False, timeout=20.0), **scheduler_stats()}
            apply(LAYOUTS, "bench", "empty")  # their executors exit: memory for Ray's own workers
            loads["whole"] = load()
            print(f"whole GPUs: {tasks} tasks ({loads['whole']}) ...", flush=True)
            results["whole"] = run_whole(profiles, seconds, nodes * gpus)
        finally:
            ray.shutdown()
            cluster.shutdown()
    return report(results, replays, loads, plain_s, mig_s, tasks, nodes, gpus, opts.latency)


def report(
    results: dict[str, dict[str, Any]],
    replays: dict[float, dict[Policy, list[replay_placement.Replay]]],
    loads: dict[str, str],
    plain_s: float,
    mig_s: float,
    tasks: int,
    nodes: int,
    gpus: int,
    latency: str,
) -> int:
    whole, static = results["whole"], results["static"]
    print(f"\n{tasks} tasks of 0.2 s, demand 60% 1g / 25% 2g / 10% 3g / 5% 7g, {nodes} nodes x {gpus} H20, "
          f"MIGCTL_SIM_LATENCY={latency}\n")
    rows = []
    for key, label in (("whole", "whole GPUs (num_gpus=1 style)"), ("static", "static all-balanced, dynamic=False"),
                       ("first-fit", "on demand, first-fit placement"), ("migctl", "on demand, migctl placement")):
        r = results[key]
        rows.append([label, f"{r['makespan']:.2f} s", f"{r['makespan'] / whole['makespan']:.2f}x",
                     f"{r['makespan'] / static['makespan']:.2f}x", f"{r['mean_wait']:.2f} s",
                     f"{r['mean_wait'] / whole['mean_wait']:.2f}x", f"{r['mean_wait'] / static['mean_wait']:.2f}x",
                     f"{r['done']}/{r['failed']}", loads[key]])
    print_table(["run", "makespan", "vs whole", "vs static", "mean wait", "vs whole", "vs static", "done/failed",
                 "machine"], rows)
    print("\ntarget: on-demand makespan below whole GPUs\n")
    live = [[label, results[k]["fragmented"], results[k]["made"], results[k]["reshaped"],
             ", ".join(f"{n} {s:.2f} s" for n, s in results[k]["change_s_mean"].items())]
            for k, label in (("first-fit", "first-fit"), ("migctl", "migctl"))]
    print_table(["placement (live runs)", "requests that waited with enough slices free in aggregate",
                 "instances made", "of which by reshaping idle ones", "node change, mean per phase"], live)
    print()
    replayed: list[list[object]] = []
    for lo, by_policy in replays.items():
        for policy, runs in by_policy.items():
            per: Counter[str] = Counter()
            for run in runs:
                per.update(run.fragmented)
            replayed.append([f"{lo:.0%}", policy, sum(run.requests for run in runs), sum(per.values()),
                             ", ".join(f"{p} {n}" for p, n in sorted(per.items())),
                             f"{statistics.fmean(run.mean_wait for run in runs):.3f}"])
    print_table(["replay load", "placement", "requests", "fragmented (waited with enough slices in aggregate)",
                 "by profile", "mean wait (x mean run)"], replayed)
    print("\ntarget: migctl fewer fragmented requests than first-fit\n")
    over_ms = (mig_s - plain_s) * 1000
    print_table(["path", "median per task", "overhead", "target"], [
        ["plain Ray task", f"{plain_s * 1000:.1f} ms", "", ""],
        ["MIG task (migctl.ray)", f"{mig_s * 1000:.1f} ms", f"{over_ms:.1f} ms", f"< {OVERHEAD_TARGET_MS:.0f} ms"],
    ])
    misses = []
    if over_ms >= OVERHEAD_TARGET_MS:
        misses.append(f"MIG overhead {over_ms:.1f} ms >= {OVERHEAD_TARGET_MS:.0f} ms")
    if results["migctl"]["makespan"] >= whole["makespan"]:
        misses.append("on-demand makespan not below whole GPUs")
    for lo, by_policy in replays.items():
        mine = sum(r.fragmented_total for r in by_policy["migctl"])
        theirs = sum(r.fragmented_total for r in by_policy["first-fit"])
        if mine >= theirs:
            misses.append(f"migctl placement not less fragmented than first-fit at load {lo:.0%} ({mine} vs {theirs})")
    print("\ntargets: " + ("all met" if not misses else "MISSED: " + "; ".join(misses)))
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
