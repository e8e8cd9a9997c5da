"""Benchmark: ``migctl batch --auto`` run for real agrees with the trace simulator's prediction.

Issue 14, item 3: a 20-job version of the scheduler benchmark's MISO trace (seed 1, its models,
speeds, memory and run times; every job queued at the start, as a batch is) on a simulated
node of 8 A100-40GB with ``MIGCTL_SIM_LATENCY=realistic``, the work scaled so the predicted
batch lasts about a minute. The trace simulator (virtual clock, same policy code, same cost
model) predicts each job's completion time; ``migctl batch --auto`` then runs the jobs (each
sleeps for its run time on the profile it got) and reports when each ended. Target: the
measured average JCT within 10% of the prediction. Makespan and per-job profiles are shown
beside it. ``--quick``: 10 jobs on 4 GPUs, about 20 seconds.
"""

from __future__ import annotations

import sys
import time

from _common import print_table  # benchmarks/_common.py
from bench_scheduler import miso_trace
from sched_real import as_batch, compare, scale_for

TARGET = 0.10


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    jobs, gpus, seconds = (10, 4, 20.0) if quick else (20, 8, 60.0)
    trace = miso_trace(1, 60.0, n=jobs)
    factor = scale_for(trace, gpus, seconds)
    batch = as_batch(trace, factor)
    print(
        f"{jobs} jobs of the MISO trace (seed 1) queued at once on {gpus}x A100-40GB (simulated, "
        f"MIGCTL_SIM_LATENCY=realistic); work scaled by {factor:.5f} so the batch lasts about {seconds:g} s\n"
    )
    began = time.perf_counter()
    c = compare(batch, gpus)
    took = time.perf_counter() - began
    rows = []
    models = {j.name: j.model for j in batch}
    for name in sorted(c.predicted):
        p, m = c.predicted[name], c.measured[name]
        rows.append(
            (
                name,
                models[name],
                c.predicted_profile.get(name, "-"),
                c.measured_profile.get(name, "-"),
                f"{p:.2f}",
                f"{m:.2f}",
                f"{m / p:.3f}",
            )
        )
    print_table(
        ("job", "model:batch", "predicted profile", "profile", "predicted JCT (s)", "measured JCT (s)", "ratio"), rows
    )
    ok = abs(c.ratio - 1) <= TARGET
    print(
        f"\n  average JCT: predicted {c.avg_predicted:.2f} s, measured {c.avg_measured:.2f} s, "
        f"ratio {c.ratio:.3f} ({'met' if ok else 'MISSED'}, target within {TARGET:.0%})\n"
        f"  makespan: predicted {max(c.predicted.values()):.2f} s, measured {max(c.measured.values()):.2f} s, "
        f"ratio {c.makespan_ratio:.3f}\n"
        f"  same profile as predicted: {c.same_profile}/{len(c.predicted)} jobs; "
        f"reshapes: {c.reshapes} (predicted {c.predicted_reshapes}); the real run took {took:.1f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
