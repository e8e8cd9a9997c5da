"""Benchmark: ``migctl batch`` against the ideal and against ``xargs -P``.

500 jobs of ``sleep 1`` over the 56 MIG devices of a simulated 8x H20 node (7x 1g.12gb per
GPU, made through migctl's Python API in a temporary ``MIGCTL_STATE_DIR``), measured three
ways in the same run:

* ``ideal``: jobs x seconds / devices (no launch cost at all, perfect packing);
* ``xargs``: ``xargs -P 56`` with ``CUDA_VISIBLE_DEVICES`` handed out round-robin, the shell
  one-liner people write (no leases, no exclusivity, no retries, no logs);
* ``migctl batch``: through the Python API (the scheduler alone), and through the CLI
  (``python -m migctl batch jobs.yaml``: interpreter start, node open and summary included).

Target: the CLI batch within 1.1x of the ideal. Run alone (``python benchmarks/bench_jobs.py
[--quick]``) or through ``benchmarks/run.py``, which calls :func:`main`. ``--quick``: 112 jobs
of 0.5 s, for CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import environ  # benchmarks/_common.py

SPEC = "h20x8"
PROFILE = "1g.12gb"
PER_GPU = 7
TARGET_RATIO = 1.1


def _sleep_argv(seconds: float) -> list[str]:
    exe = shutil.which("sleep") or "/bin/sleep"
    return [exe, f"{seconds:g}"]


def make_node(state: Path) -> list[str]:
    """Enable MIG on the 8 simulated H20s and create 7x 1g.12gb on each; returns the MIG UUIDs."""
    import migctl

    node = migctl.Node(sim=SPEC, state_dir=state)
    node.set_mig_mode(True, gpus=None)
    node.create(f"{PROFILE}:{PER_GPU}", gpus=None)
    status = node.status()
    node.close()
    return [ci.uuid for g in status.gpus for gi in g.gpu_instances for ci in gi.compute_instances]


def bench_xargs(uuids: list[str], jobs: int, seconds: float) -> float:
    """``xargs -P N`` running ``env CUDA_VISIBLE_DEVICES=<uuid> sleep S``, uuids round-robin."""
    lines = "".join(f"{uuids[i % len(uuids)]}\n" for i in range(jobs))
    sleep = _sleep_argv(seconds)
    argv = ["xargs", "-P", str(len(uuids)), "-I{}", "env", "CUDA_VISIBLE_DEVICES={}", *sleep]
    t0 = time.perf_counter()
    subprocess.run(argv, input=lines, text=True, check=True)
    return time.perf_counter() - t0


def bench_api(state: Path, jobs: int, seconds: float, logs: Path) -> tuple[float, list[float], int]:
    """The scheduler in this process: wall time, per-launch costs, failed jobs."""
    from migctl.config.jobs import job
    from migctl.device import open_node
    from migctl.ops import batch
    from migctl.ops.jobs import ready

    node = open_node(SPEC)
    try:
        argv = _sleep_argv(seconds)
        work = ready(node, [job(argv, name=f"job-{i}") for i in range(jobs)])
        scheduler = batch.Batch(node, work, logs_dir=logs)
        t0 = time.perf_counter()
        report = scheduler.run()
        wall = time.perf_counter() - t0
    finally:
        node.close()
    return wall, scheduler.launch_costs, len(report.failed)


def bench_cli(state: Path, jobs: int, seconds: float, logs: Path) -> tuple[float, dict[str, Any]]:
    """``python -m migctl batch jobs.yaml --json`` end to end."""
    jobs_file = state / "jobs.json"  # JSON is YAML: a 500-job file is written and read fastest so
    argv = _sleep_argv(seconds)
    jobs_file.write_text(json.dumps({"jobs": [{"name": f"job-{i}", "command": argv} for i in range(jobs)]}))
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state), "MIGCTL_SIM": SPEC}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "migctl", "batch", str(jobs_file), "--logs", str(logs), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"migctl batch failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return wall, json.loads(out.stdout)["summary"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="112 jobs of 0.5 s (CI speed)")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    jobs = args.jobs or (112 if args.quick else 500)
    seconds = args.seconds or (0.5 if args.quick else 1.0)

    with tempfile.TemporaryDirectory(prefix="migctl-bench-") as tmp:
        state = Path(tmp) / "state"
        with environ(MIGCTL_STATE_DIR=str(state), MIGCTL_SIM=SPEC, MIGCTL_SIM_LATENCY=None):
            uuids = make_node(state)
            n = len(uuids)
            ideal = jobs * seconds / n
            packed = math.ceil(jobs / n) * seconds  # whole waves: what any scheduler can at best do
            print(f"{jobs} jobs x {seconds:g} s on {n} MIG devices ({SPEC}, {PER_GPU}x {PROFILE} per GPU)")
            t_xargs = bench_xargs(uuids, jobs, seconds)
            t_api, costs, failed_api = bench_api(state, jobs, seconds, Path(tmp) / "logs-api")
            t_cli, summary = bench_cli(state, jobs, seconds, Path(tmp) / "logs-cli")

    rows = [
        ("ideal (jobs x s / devices)", ideal),
        (f"whole waves ({math.ceil(jobs / n)} x {seconds:g} s)", packed),
        (f"xargs -P {n}, round-robin CUDA_VISIBLE_DEVICES", t_xargs),
        ("migctl batch (Python API)", t_api),
        ("migctl batch (CLI, incl. start-up)", t_cli),
    ]
    print(f"\n{'method':<48} {'wall s':>8} {'vs ideal':>9} {'vs xargs':>9}")
    for name, wall in rows:
        print(f"{name:<48} {wall:8.2f} {wall / ideal:8.3f}x {wall / t_xargs:8.3f}x")
    ms = [1000 * c for c in costs]
    p95 = sorted(ms)[int(0.95 * (len(ms) - 1))] if ms else float("nan")
    print(
        f"\nper-job launch cost (lease, foreign-process check, log file, posix_spawn, lease record): "
        f"mean {statistics.fmean(ms):.2f} ms, median {statistics.median(ms):.2f} ms, p95 {p95:.2f} ms "
        f"over {len(ms)} launches (CLI run: mean {summary.get('launch_ms_mean')} ms)"
    )
    per_job_excess = (t_api - packed) / jobs * n
    print(f"wall time above whole waves, per job slot: {1000 * per_job_excess:.1f} ms (API)")
    within = t_cli / ideal <= TARGET_RATIO
    verdict = "within" if within else "NOT within"
    note = " (informational with --quick: start-up dominates a 1-s batch)" if args.quick else ""
    print(f"CLI batch is {verdict} {TARGET_RATIO}x of the ideal ({t_cli / ideal:.3f}x){note}")
    if failed_api or summary.get("failed"):
        print("some jobs failed", file=sys.stderr)
        return 1
    return 0 if within or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
