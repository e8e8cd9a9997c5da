"""Apply time on a simulated 8-GPU H20 node with hardware-like latency.

Scenarios (NVIDIA's default config names): MIG disabled -> ``all-balanced`` (includes the
~2 s MIG mode change), ``all-balanced`` -> ``all-1g.12gb``, ``all-1g.12gb`` -> ``all-balanced``.
Each is measured from identical starting states (a fresh simulated node brought to the start
layout without latency) three ways, in the same run:

* **concurrent**: ``migctl.ops.apply.apply(..., parallel=True)``, migctl's default: one thread per GPU;
* **sequential**: ``parallel=False``, the same operations GPU after GPU (how mig-parted and
  shell scripts around nvidia-smi go);
* **single GPU**: apply to one GPU alone (the node's other GPUs untouched); the slowest of
  these is the floor a concurrent apply can reach.

Target: concurrent within 1.3x of the slowest single GPU's time in every scenario.
``--quick``: 4 GPUs, single-GPU time from GPU 0 only, one repetition (same latency).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import environ, print_table  # benchmarks/_common.py
from migctl import sim
from migctl.device import Node, Nvml
from migctl.device.simulated import simulated_platform
from migctl.ops.apply import apply
from migctl.ops.check import check
from migctl.ops.files import load_config_file
from migctl.ops.plan import plan_node

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "src" / "migctl" / "data" / "mig-parted-config-default.yaml"
SCENARIOS = ((None, "all-balanced"), ("all-balanced", "all-1g.12gb"), ("all-1g.12gb", "all-balanced"))
TARGET_RATIO = 1.3


def _node(spec: str, state: Path, latency: str) -> Node:
    lib, control = sim.open_both(spec, state, latency=latency)
    lib.nvmlInit()
    return Node(Nvml(lib, simulated_platform(lib, control)))


def measure(spec: str, start: str | None, target: str, latency: str, gpu: int | None, parallel: bool) -> float:
    """Seconds ``apply`` takes from a fresh node at ``start`` to ``target`` (on one GPU if ``gpu``)."""
    config = load_config_file(DEFAULT_FILE)
    with tempfile.TemporaryDirectory(prefix="migctl-bench-apply-") as tmp:
        state = Path(tmp)
        os.environ["MIGCTL_STATE_DIR"] = str(state)  # the host lock and journal live here
        sim.reset(spec, state)
        if start is not None:
            fast = _node(spec, state, "none")
            report = apply(fast, plan_node(fast, config, start, fast.gpus))
            assert report.ok, report
            fast.close()
        node = _node(spec, state, latency)
        gpus = node.gpus if gpu is None else [node.gpus[gpu]]
        plan = plan_node(node, config, target, gpus)
        began = time.perf_counter()
        report = apply(node, plan, parallel=parallel)
        seconds = time.perf_counter() - began
        assert report.ok, report
        matches = check(plan_node(node, config, target, gpus), node)
        assert matches.matches, matches
        node.close()
    return seconds


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    gpus = 4 if quick else 8
    spec = f"h20x{gpus}"
    latency = "realistic"
    reps = 1 if quick else 3
    singles = [0] if quick else list(range(gpus))
    rows = []
    met = True
    started = time.perf_counter()
    with environ(MIGCTL_STATE_DIR=None):  # measure() points it at each fresh node
        for start, target in SCENARIOS:
            # Interleaved, so that both see the same background load on a shared machine.
            runs: list[float] = []
            alone: list[float] = []
            for r in range(max(reps, len(singles))):
                if r < reps:
                    runs.append(measure(spec, start, target, latency, None, True))
                if r < len(singles):
                    alone.append(measure(spec, start, target, latency, singles[r], True))
            concurrent, single = statistics.median(runs), max(alone)
            sequential = measure(spec, start, target, latency, None, False)
            # The same concurrent apply with no simulated latency: the CPU work alone (mostly the
            # simulator's JSON state files, serialised by the GIL), a floor for the concurrent time.
            floor = measure(spec, start, target, "none", None, True)
            ratio = concurrent / single
            ok = ratio <= TARGET_RATIO
            met &= ok
            rows.append(
                (
                    f"{start or 'MIG disabled'} -> {target}",
                    f"{sequential:.3f}",
                    f"{concurrent:.3f}",
                    f"{single:.3f}",
                    f"{floor:.3f}",
                    f"{sequential / concurrent:.1f}x",
                    f"{ratio:.2f}",
                    "yes" if ok else "NO",
                )
            )
    header = (
        f"{spec}, latency {latency}",
        "sequential s",
        "concurrent s",
        f"slowest single GPU s (of {len(singles)})",
        "concurrent, no latency s (CPU floor)",
        "sequential / concurrent",
        "concurrent / single",
        f"<= {TARGET_RATIO}",
    )
    print_table(header, rows)
    print(f"\n(concurrent: median of {reps}; {os.cpu_count()} CPUs; {time.perf_counter() - started:.1f} s in all)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
