"""How fast the CLI starts: start-to-exit time of a few commands beside ``python3 -c pass``.

Each command runs as a user runs it (the installed ``migctl`` console script, a fresh process)
``N`` times; the table shows the median, the baseline (the same interpreter doing nothing,
measured in the same run) and their ratio. Targets (issue 8): ``--version`` and ``--help``
under 150 ms; ``status`` on a simulated 8xH20 node holding 56 instances under 300 ms.
``--quick``: fewer repetitions.

The verdict is on the wall-clock median, which a busy machine inflates; the table also shows
the median CPU time (user + system) of each run and the load average, so a run on a shared
machine can still be read (a start-up is one thread: on an idle machine its wall time is
about its CPU time).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_table  # benchmarks/_common.py

TARGETS_MS = {"--version": 150.0, "--help": 150.0, "status (8xH20, 56 instances)": 300.0}


def _exe() -> list[str]:
    script = Path(sys.executable).with_name("migctl")
    return [str(script)] if script.exists() else [shutil.which("migctl") or "migctl"]


def _cpu_ms() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (used.ru_utime + used.ru_stime) * 1000


def _time(argv: list[str], env: dict[str, str], reps: int) -> tuple[float, float, int]:
    """Median wall and CPU milliseconds of ``reps`` runs, and the first non-zero exit code."""
    wall, cpu = [], []
    code = 0
    for _ in range(reps):
        cpu_before, started = _cpu_ms(), time.perf_counter()
        p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append(_cpu_ms() - cpu_before)
        code = code or p.returncode
    return statistics.median(wall), statistics.median(cpu), code


def main(argv: list[str]) -> int:
    reps = 5 if "--quick" in argv else 21
    state = tempfile.mkdtemp(prefix="migctl-bench-cli-")
    env = {**os.environ, "MIGCTL_STATE_DIR": state, "MIGCTL_SIM": "h20x8", "COLUMNS": "160"}
    env.pop("MIGCTL_SIM_LATENCY", None)
    env.pop("MIGCTL_SIM_FAULTS", None)
    migctl = _exe()
    setup = subprocess.run([*migctl, "apply", "--layout", "1g.12gb:7"], env=env, capture_output=True, check=False)
    if setup.returncode != 0:
        print(f"setup failed: {setup.stderr.decode().strip()}")
        return 1
    load = os.getloadavg()[0]
    baseline, baseline_cpu, _ = _time([sys.executable, "-c", "pass"], env, reps)
    rows = []
    missed = False
    for label, args in (
        ("--version", ["--version"]),
        ("--help", ["--help"]),
        ("status (8xH20, 56 instances)", ["status"]),
    ):
        median, cpu, code = _time([*migctl, *args], env, reps)
        target = TARGETS_MS[label]
        ok = code == 0 and median < target
        missed |= not ok
        verdict = "ok" if ok else (f"FAILED (exit {code})" if code else "MISSED")
        ratio = f"{median / baseline:.1f}x"
        rows.append(
            (label, f"{median:.0f} ms", f"{cpu:.0f} ms", f"{baseline:.0f} ms", ratio, f"< {target:.0f} ms", verdict)
        )
    print(
        f"median of {reps} runs each; baseline: {sys.executable} -c pass "
        f"(CPU {baseline_cpu:.0f} ms); load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    print_table(("command", "median", "CPU", "python3 -c pass", "ratio", "target", ""), rows)
    shutil.rmtree(state, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
