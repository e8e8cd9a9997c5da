"""Planner time for every config of NVIDIA's default mig-parted file.

For every model of the simulator's catalog, an 8-GPU node of that model starts from the
model's busiest named layout (the config that applies to it with the most instances, so the
search has the most existing instances to weigh); then, for every config that
``migctl.config.applies_to`` the model, ``ops.plan.plan_node`` plans the whole node (NVML
reads, name resolution, planning: what ``migctl plan`` does), and ``core.planner.plan`` alone
is timed on the same inputs (pure planning, summed over the 8 GPUs).

Per config: median and max over every targeted model x repetition. Target: every config's
median ``plan_node`` time under 50 ms. ``--quick``: 2 GPUs per node, one repetition.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _common import environ, print_table  # benchmarks/_common.py
from migctl import sim
from migctl.config import applies_to
from migctl.core.planner import plan
from migctl.device import Node, Nvml
from migctl.device.simulated import simulated_platform
from migctl.ops.apply import apply
from migctl.ops.files import load_config_file
from migctl.ops.plan import NodePlan, gpu_facts, plan_node
from migctl.sim.catalog import models

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "src" / "migctl" / "data" / "mig-parted-config-default.yaml"
TARGET_MS = 50.0


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    gpus = 2 if quick else 8
    reps = 1 if quick else 5
    spec = load_config_file(DEFAULT_FILE)
    node_ms: dict[str, list[float]] = defaultdict(list)
    pure_ms: dict[str, list[float]] = defaultdict(list)
    targeted: dict[str, list[str]] = defaultdict(list)
    started = time.perf_counter()
    with environ(MIGCTL_STATE_DIR=None):
        for key, m in models().items():
            if not m.mig_capable:
                continue
            with tempfile.TemporaryDirectory(prefix="migctl-bench-planner-") as tmp:
                os.environ["MIGCTL_STATE_DIR"] = tmp
                node_spec = f"{key}x{gpus}"
                sim.reset(node_spec, tmp)
                lib, control = sim.open_both(node_spec, tmp, latency="none")
                lib.nvmlInit()
                node = Node(Nvml(lib, simulated_platform(lib, control)))
                facts = [gpu_facts(node.gpus[0])]

                names = [n for n in spec.names() if applies_to(spec, n, facts)[0]]
                plans = {n: plan_node(node, spec, n, node.gpus) for n in names}

                def size(name: str, plans: dict[str, NodePlan] = plans) -> int:
                    t = plans[name].gpus[0].target
                    return len(t.instances) if t is not None and t.mig_enabled else -1

                busiest = max(names, key=size)
                report = apply(node, plans[busiest])
                assert report.ok, report
                for name in names:
                    targeted[name].append(key)
                    for _ in range(reps):
                        began = time.perf_counter()
                        np = plan_node(node, spec, name, node.gpus)
                        node_ms[name].append((time.perf_counter() - began) * 1000)
                        assert not np.refusals, (key, name, np.refusals)
                        began = time.perf_counter()
                        for g in np.gpus:
                            if g.target is not None and g.target.mig_enabled and g.geometry is not None:
                                plan(g.geometry, g.before, g.target.instances)
                        pure_ms[name].append((time.perf_counter() - began) * 1000)
                node.close()
    header = (
        "config",
        "models",
        f"plan_node median ms ({gpus} GPUs)",
        "plan_node max ms",
        "core.planner.plan median ms (sum over GPUs)",
        "core.planner.plan max ms",
        f"median < {TARGET_MS:g} ms",
    )
    met = True
    rows = []
    for name in spec.names():
        if name not in node_ms:
            continue
        med = statistics.median(node_ms[name])
        ok = med < TARGET_MS
        met &= ok
        rows.append(
            (
                f"`{name}`",
                ", ".join(targeted[name]),
                f"{med:.1f}",
                f"{max(node_ms[name]):.1f}",
                f"{statistics.median(pure_ms[name]):.2f}",
                f"{max(pure_ms[name]):.2f}",
                "yes" if ok else "NO",
            )
        )
    print_table(header, rows)
    every = [x for v in node_ms.values() for x in v]
    pure = [x for v in pure_ms.values() for x in v]
    print(
        f"\nall {len(node_ms)} configs ({len(every)} plans of {gpus}-GPU nodes): plan_node median "
        f"{statistics.median(every):.1f} ms, max {max(every):.1f} ms; core.planner.plan median "
        f"{statistics.median(pure):.2f} ms, max {max(pure):.2f} ms ({time.perf_counter() - started:.1f} s)"
    )
    untargeted = [n for n in spec.names() if n not in node_ms]
    if untargeted:
        print(f"configs no catalog model is targeted by (not timed): {', '.join(untargeted)}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
