"""Benchmark: ``migctl top``'s CPU per refresh on 8 GPUs x 7 instances, beside two baselines.

A simulated 8x H20 node with 7x 1g.12gb per GPU (56 GPU instances and MIG devices) and one
busy process per GPU. Measured in the same run, as CPU time (``time.process_time``) per
refresh, median of ``N`` refreshes:

* ``migctl top``: one refresh as the live view does it: a collection round (the status of
  every GPU and instance, GPM utilization since the last round, every GPU's sensors, leases,
  the last apply) and drawing the 80x24 screen to an ANSI terminal buffer;
* ``status``: the same node's ``migctl status`` data alone (no utilization, no sensors, no
  drawing), the least any view of it costs;
* ``nvitop``: nvitop's own data collection for one refresh of the same node (snapshots of
  every GPU and MIG device and their processes, no drawing), run unmodified through
  ``migctl sim exec`` (skipped when nvitop is not installed).

Target (issue 11): a refresh under 50 ms of CPU. ``--quick``: fewer refreshes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from _common import environ, print_table  # benchmarks/_common.py

SPEC = "h20x8"
TARGET_MS = 50.0
GAP_S = 0.11  # between refreshes, so every GPM window is a real one (> 100 ms)

NVITOP = r"""
import json, statistics, sys, time
from nvitop import Device, GpuProcess
n = int(sys.argv[1])
devices = Device.all()
leaves = {d: d.mig_devices() for d in devices}
samples = []
for _ in range(n):
    t = time.process_time()
    for d, migs in leaves.items():
        d.as_snapshot()
        for m in migs or [d]:
            m.as_snapshot()
            GpuProcess.take_snapshots(m.processes().values(), failsafe=True)
    samples.append(time.process_time() - t)
    time.sleep(0.11)
print(json.dumps({"median_ms": statistics.median(samples) * 1000}))
"""


def _median_cpu_ms(step: Callable[[], None], n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.process_time()
        step()
        samples.append(time.process_time() - started)
        time.sleep(GAP_S)
    return statistics.median(samples) * 1000


def _setup() -> list[subprocess.Popen[bytes]]:
    from migctl import Node, sim

    with Node(sim=SPEC) as node:
        node.apply("1g.12gb:7")
        status = node.status()
    control = sim.open_control(SPEC)
    sleepers = []
    for n, g in enumerate(status.gpus):
        proc = subprocess.Popen(["sleep", "600"])
        sleepers.append(proc)
        ci = g.gpu_instances[n % len(g.gpu_instances)].compute_instances[0]
        control.attach(proc.pid, uuid=ci.uuid, memory_mib=1024 * (n + 1), util=10 * (n + 2))
    return sleepers


def _nvitop(state: str, n: int) -> float | None:
    try:
        import nvitop  # noqa: F401
    except ImportError:
        return None
    env = {**os.environ, "MIGCTL_STATE_DIR": state, "MIGCTL_SIM": SPEC}
    argv = [sys.executable, "-m", "migctl", "sim", "exec", "--", sys.executable, "-c", NVITOP, str(n)]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=600)
    if p.returncode != 0:
        print(f"nvitop baseline failed: {p.stderr.strip()[-300:]}")
        return None
    return float(json.loads(p.stdout.strip().splitlines()[-1])["median_ms"])


def main(argv: list[str]) -> int:
    n = 8 if "--quick" in argv else 30
    state = tempfile.mkdtemp(prefix="migctl-bench-top-")
    sleepers: list[subprocess.Popen[bytes]] = []
    try:
        with environ(MIGCTL_STATE_DIR=state, MIGCTL_SIM=SPEC, MIGCTL_SIM_LATENCY=None, MIGCTL_SIM_FAULTS=None):
            from rich.console import Console, Group

            from migctl.device import open_node
            from migctl.ops.inspect import status
            from migctl.ops.leases import holder_records
            from migctl.ops.observe import Observer
            from migctl.top.screen import frame
            from migctl.top.view import History, ViewState

            sleepers = _setup()
            node = open_node(SPEC)
            observer = Observer(node)
            history, view = History(), ViewState()
            screen = Console(
                file=io.StringIO(), width=80, height=24, force_terminal=True, color_system="truecolor", markup=False
            )

            def refresh() -> None:
                obs = observer.collect()
                history.add(obs)
                screen.print(Group(*frame(obs, view, history, 80, 24)))

            observer.prime()
            time.sleep(GAP_S)
            refresh()  # warm: imports, caches, the first GPM window
            top_ms = _median_cpu_ms(refresh, n)
            def read_status() -> None:
                status(node, node.gpus, holder_records())

            status_ms = _median_cpu_ms(read_status, n)
            observer.close()
            node.close()
        nvitop_ms = _nvitop(state, n)
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
        shutil.rmtree(state, ignore_errors=True)
    ok = top_ms < TARGET_MS
    rows = [
        (
            "migctl top (collect + draw 80x24)",
            f"{top_ms:.1f}",
            "1.00x",
            f"< {TARGET_MS:.0f} ms",
            "ok" if ok else "MISSED",
        ),
        ("status data alone (baseline)", f"{status_ms:.1f}", f"{top_ms / status_ms:.2f}x", "", ""),
    ]
    if nvitop_ms is not None:
        rows.append(("nvitop data collection (baseline)", f"{nvitop_ms:.1f}", f"{top_ms / nvitop_ms:.2f}x", "", ""))
    print(f"CPU per refresh, median of {n}; 8 GPUs x 7 MIG devices, 8 busy processes (simulated H20 node)")
    print_table(("refresh", "CPU ms", "top / this", "target", ""), rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
