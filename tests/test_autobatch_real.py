"""Issue 14, item 3, short form: ``migctl batch --auto`` run for real matches the trace simulator.

Eight jobs of the scheduler benchmark's MISO trace (seed 3: run times of 120 s to 1959 s, so
after scaling every job runs at least about a second and migctl's fixed cost per decision, a
few hundred ms on a busy machine, does not swamp the shortest ones) on a simulated 2x
A100-40GB with ``MIGCTL_SIM_LATENCY=realistic``, scaled to about 15 s. The full form, 20 jobs
on 8 GPUs for a minute, is ``./dev bench autobatch``. The prediction is the trace simulator
(virtual clock) running the same policy code on the same jobs; the real run's jobs sleep for
their run time on the profile they were given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_scheduler import miso_trace
from sched_real import as_batch, compare, scale_for


@pytest.mark.slow
def test_measured_jcts_agree_with_the_trace_simulators_prediction(state_dir: Path) -> None:
    trace = miso_trace(3, 60.0, n=8)
    batch = as_batch(trace, scale_for(trace, 2, 15.0))
    assert min(j.work for j in batch) >= 0.8  # no job so short that start-up costs decide the outcome
    c = compare(batch, 2)
    print(
        f"\naverage JCT: predicted {c.avg_predicted:.2f} s, measured {c.avg_measured:.2f} s, ratio {c.ratio:.3f}; "
        f"makespan ratio {c.makespan_ratio:.3f}; {c.same_profile}/{len(c.predicted)} jobs on the predicted profile"
    )
    assert set(c.measured) == set(c.predicted)
    assert abs(c.ratio - 1) <= 0.10, (c.avg_predicted, c.avg_measured)
    assert abs(c.makespan_ratio - 1) <= 0.10, c
