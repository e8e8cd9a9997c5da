"""The scheduler benchmark's trace simulator (``benchmarks/tracesim.py``): clock and accounting.

Expected numbers are worked out by hand from the job's work, its speed on the profile and
the reconfiguration cost, never taken from the simulator itself.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from migctl.core.geometry import Placement
from migctl.core.layout import ExistingInstance, Plan, TargetInstance
from migctl.core.planner import plan
from migctl.core.scheduler import ReconfigCost
from migctl.device.simulated import model_geometry
from migctl.sim.faults import REALISTIC_S
from sched_far import far_tasks, list_makespan, optimum
from sched_policies import FixedList, Migctl, MisoLike, Static, lower_bound
from tracesim import SimulationError, Simulator, TraceJob

A100 = model_geometry("a100-40gb")
A30 = model_geometry("a30")
FULL = A100.by_name("7g.40gb").id
COST = ReconfigCost(create_gi_s=0.5, create_ci_s=0.25, destroy_gi_s=1.0, destroy_ci_s=0.5)
SPEEDS = (("1g", 0.25), ("2g", 0.5), ("3g", 0.7), ("4g", 0.8), ("7g", 1.0))


def _job(name: str, arrival: float, work: float, memory: int = 0) -> TraceJob:
    return TraceJob(name, arrival, work, memory, SPEEDS)


def test_fifo_on_whole_gpus_waits_and_counts_from_arrival() -> None:
    trace = [_job("a", 10.0, 100.0), _job("b", 20.0, 50.0), _job("c", 30.0, 10.0)]
    result = Simulator([A100], trace, COST).run(Static((FULL,), "unpartitioned"))
    # One GPU: a runs 10..110, b 110..160, c 160..170. The initial layout is free and uncounted.
    assert result.completion == pytest.approx({"a": 110.0, "b": 160.0, "c": 170.0})
    assert result.jct == pytest.approx({"a": 100.0, "b": 140.0, "c": 140.0})
    assert result.first_start == pytest.approx({"a": 10.0, "b": 110.0, "c": 160.0})
    assert result.avg_jct == pytest.approx(380.0 / 3)
    assert result.makespan({"a": 10.0, "b": 20.0, "c": 30.0}) == pytest.approx(160.0)
    assert result.reconfigurations == 0


def test_static_layout_runs_jobs_side_by_side_at_their_slice_speed() -> None:
    layout = (A100.by_name("4g.20gb").id, A100.by_name("3g.20gb").id)
    trace = [_job("a", 0.0, 80.0), _job("b", 0.0, 70.0)]
    result = Simulator([A100], trace, COST).run(Static(layout))
    # Fastest idle instance first: a on 4g (speed 0.8) ends at 100, b on 3g (0.7) at 100.
    assert result.completion == pytest.approx({"a": 100.0, "b": 100.0})


def test_a_reshape_delays_the_start_by_its_reconfiguration_time() -> None:
    """migctl on an empty GPU: create one 7g (0.5 + 0.25 s), then the job runs 100 s."""
    result = Simulator([A100], [_job("a", 5.0, 100.0)], COST).run(Migctl("jct"))
    assert result.completion["a"] == pytest.approx(5.0 + 0.75 + 100.0)
    assert result.reconfigurations == 1 and result.creates == 1 and result.destroys == 0


def test_reshapes_on_one_gpu_run_one_after_another() -> None:
    sim = Simulator([A100], [], COST)
    g = A100.by_name("1g.5gb").id
    first = plan(A100, [], [TargetInstance(g, Placement(0, 1))])
    assert isinstance(first, Plan)
    assert sim.reshape(0, first) == pytest.approx(0.75)
    second = plan(A100, [ExistingInstance(1, g, Placement(0, 1), ("1g.5gb",))], [TargetInstance(g, Placement(1, 1))])
    assert isinstance(second, Plan) and len(second.destroy) == 1 and len(second.create) == 1
    # Queued behind the first: destroy (1.0 + 0.5) then create (0.75).
    assert sim.reshape(0, second) == pytest.approx(0.75 + 1.5 + 0.75)
    assert sim.reconfigurations == 2


def test_a_plan_that_destroys_a_busy_instance_is_refused() -> None:
    sim = Simulator([A100], [_job("a", 0.0, 100.0)], COST)
    sim.queue.append(sim.jobs["a"])
    setup = plan(A100, [], [TargetInstance(FULL)])
    assert isinstance(setup, Plan)
    sim.reshape(0, setup, count=False)
    inst = next(iter(sim.gpus[0].instances.values()))
    sim.start(sim.jobs["a"], 0, inst.gi_id)
    wipe = Plan(destroy=(ExistingInstance(inst.gi_id, FULL, inst.placement, inst.compute),))
    with pytest.raises(SimulationError, match="while a runs"):
        sim.reshape(0, wipe)


def test_a_job_is_refused_on_a_slice_without_its_memory() -> None:
    sim = Simulator([A100], [_job("big", 0.0, 10.0, memory=15000)], COST)
    sim.queue.append(sim.jobs["big"])
    small = plan(A100, [], [TargetInstance(A100.by_name("1g.5gb").id)])
    assert isinstance(small, Plan)
    sim.reshape(0, small, count=False)
    gi = next(iter(sim.gpus[0].instances))
    with pytest.raises(SimulationError, match=r"cannot run on 1g\.5gb"):
        sim.start(sim.jobs["big"], 0, gi)


def test_an_evicted_job_keeps_its_progress() -> None:
    sim = Simulator([A100], [_job("a", 0.0, 100.0)], COST)
    sim.queue.append(sim.jobs["a"])
    setup = plan(A100, [], [TargetInstance(FULL)])
    assert isinstance(setup, Plan)
    sim.reshape(0, setup, count=False)
    gi = next(iter(sim.gpus[0].instances))
    sim.start(sim.jobs["a"], 0, gi)
    sim.now = 30.0
    sim.evict("a")
    assert sim.remaining(sim.jobs["a"]) == pytest.approx(70.0)
    run = sim.start(sim.jobs["a"], 0, gi, not_before=60.0)
    assert run.expected_end == pytest.approx(130.0)
    assert sim.evictions == 1


def test_miso_like_moves_a_running_job_when_a_second_arrives() -> None:
    """a runs alone on 7g; b arrives and the GPU is split, a restarts after MISO's checkpoint."""
    trace = [_job("a", 0.0, 100.0), _job("b", 10.0, 35.0)]
    result = Simulator([A100], trace, COST).run(MisoLike(A100, overhead_s=30.0))
    assert result.evictions >= 1
    assert result.completion["a"] > 100.0  # it lost time to the checkpoint and a smaller slice


def test_lower_bound_is_each_job_on_its_fastest_profile() -> None:
    trace = [_job("a", 0.0, 100.0), _job("b", 50.0, 100.0, memory=30000)]
    avg, makespan = lower_bound(trace, A100)
    assert avg == pytest.approx(100.0) and makespan == pytest.approx(150.0)


def test_the_exhaustive_search_computes_schedules_as_the_simulator_runs_them() -> None:
    """``list_makespan`` (what the optimum is searched with) agrees with the event simulator."""
    cost = ReconfigCost.from_nvml(REALISTIC_S)
    rng = random.Random(7)
    for seed in range(6):
        tasks = far_tasks(seed, 4, A30)
        order = list(tasks)
        rng.shuffle(order)
        schedule = []
        for t in order:
            job = t.as_job()
            prof = rng.choice([p for p in A30.profiles if "+" not in p.name and job.fits(p)])
            schedule.append((t.name, prof.id, rng.choice(prof.placements)))
        expected = list_makespan(A30, tasks, schedule, cost)
        result = Simulator([A30], tasks, cost).run(FixedList(schedule))
        assert max(result.completion.values()) == pytest.approx(expected)


def test_the_optimum_is_no_worse_than_any_schedule_tried() -> None:
    cost = ReconfigCost.from_nvml(REALISTIC_S)
    tasks = far_tasks(3, 3, A30)
    best, schedule, _ = optimum(A30, tasks, cost)
    assert list_makespan(A30, tasks, schedule, cost) == pytest.approx(best)
    rng = random.Random(1)
    for _ in range(50):
        order = rng.sample(tasks, len(tasks))
        tried = []
        for t in order:
            prof = rng.choice([p for p in A30.profiles if "+" not in p.name and t.as_job().fits(p)])
            tried.append((t.name, prof.id, rng.choice(prof.placements)))
        assert list_makespan(A30, tasks, tried, cost) >= best - 1e-9
    migctl = Simulator([A30], tasks, cost).run(Migctl("makespan"))
    assert max(migctl.completion.values()) >= best - 1e-9
