"""The scheduling policy (``migctl.core.scheduler``): safe, feasible, deterministic, and sensible.

Properties (hypothesis) run on the simulator catalog's geometries with random instances (some
busy), random queues and random objectives. Each decision is carried out on a model of the
GPU and the result is judged with ``GpuGeometry.why_not`` and the planner, independently of
the policy's own bookkeeping.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migctl.core.geometry import GpuGeometry, Occupant, Placement
from migctl.core.layout import ExistingInstance, Plan, TargetInstance, default_compute
from migctl.core.planner import plan
from migctl.core.scheduler import (
    Decision,
    GpuState,
    Job,
    ReconfigCost,
    Slot,
    Tuning,
    decide,
    find_workload,
    priority_order,
)
from migctl.data import workloads
from migctl.device.simulated import model_geometry

A100 = model_geometry("a100-40gb")
A30 = model_geometry("a30")
H100 = model_geometry("h100-80gb")
COST = ReconfigCost(
    create_gi_s=0.013, create_ci_s=0.004, destroy_gi_s=0.018, destroy_ci_s=0.006, mig_mode_s=2, reset_s=3
)


def _random_gpu(rng: random.Random, index: int, geometry: GpuGeometry, now: float) -> GpuState:
    """A GPU holding a random valid layout (placed by the planner), some instances busy."""
    shapes = [p for p in geometry.profiles]
    wanted = [TargetInstance(rng.choice(shapes).id) for _ in range(rng.randint(0, 5))]
    while wanted and not isinstance(plan(geometry, [], wanted), Plan):
        wanted.pop()
    result = plan(geometry, [], wanted)
    assert isinstance(result, Plan)
    slots = []
    for gi, c in enumerate(result.create, start=1):
        busy = rng.random() < 0.5
        free_at = None if not busy or rng.random() < 0.2 else now + rng.uniform(-5, 500)
        compute = c.compute if rng.random() < 0.9 else ()
        slots.append(Slot(gi, c.profile_id, c.placement, compute, busy, free_at))
    return GpuState(index, geometry, tuple(slots))


def _random_job(rng: random.Random, i: int) -> Job:
    speeds: tuple[tuple[str, float], ...] = ()
    kind = rng.random()
    if kind < 0.5:
        w = rng.choice(sorted(workloads().values(), key=lambda w: w.key))
        return Job(f"job{i}", w.memory_mib, rng.uniform(1, 1000), w.speeds(), rng.uniform(0, 50))
    if kind < 0.8:
        speeds = tuple((f"{k}g", round(k**0.7, 3)) for k in (1, 2, 3, 4, 7))
    memory = rng.choice([0, 4000, 9000, 15000, 30000, 60000, 200000])
    return Job(f"job{i}", memory, rng.uniform(1, 1000), speeds, rng.uniform(0, 50))


def _scenario(seed: int) -> tuple[list[GpuState], list[Job], float]:
    rng = random.Random(seed)
    now = rng.uniform(0, 100)
    geos = rng.choice([[A100], [A100, A100], [A30, H100], [H100, A100, A30]])
    gpus = [_random_gpu(rng, i, g, now) for i, g in enumerate(geos)]
    jobs = [_random_job(rng, i) for i in range(rng.randint(0, 9))]
    return gpus, jobs, now


def _existing(g: GpuState) -> list[ExistingInstance]:
    return [ExistingInstance(s.gi_id, s.profile_id, s.placement, tuple(sorted(s.compute)), s.busy) for s in g.instances]


def _carry_out(gpus: Sequence[GpuState], d: Decision) -> dict[int, list[tuple[int, Placement, tuple[str, ...]]]]:
    """Each GPU's instances after the decision's plans: (profile ID, placement, compute)."""
    after: dict[int, list[tuple[int, Placement, tuple[str, ...]]]] = {}
    for g in gpus:
        insts = {s.gi_id: (s.profile_id, s.placement, tuple(s.compute)) for s in g.instances}
        created: list[tuple[int, Placement, tuple[str, ...]]] = []
        for a in d.actions:
            if a.gpu != g.index:
                continue
            for e in a.plan.destroy:
                del insts[e.gi_id]
            for r in a.plan.recompute:
                pid, q, _ = insts[r.instance.gi_id]
                insts[r.instance.gi_id] = (pid, q, tuple(r.compute))
            created += [(c.profile_id, c.placement, tuple(c.compute)) for c in a.plan.create]
        after[g.index] = [*insts.values(), *created]
    return after


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**9), objective=st.sampled_from(["jct", "makespan"]))
def test_decisions_are_safe_feasible_and_respect_memory(seed: int, objective: str) -> None:
    gpus, jobs, now = _scenario(seed)
    d = decide(gpus, jobs, now=now, cost=COST, objective=objective)  # type: ignore[arg-type]
    by_gpu = {g.index: g for g in gpus}
    jobs_by_name = {j.name: j for j in jobs}

    # Every job is accounted for exactly once.
    named = [s.job for s in d.starts] + [w.job for w in d.waiting] + [u.job for u in d.unplaceable]
    assert sorted(named) == sorted(jobs_by_name)

    # Busy instances are never destroyed, recomputed, or given a job.
    for a in d.actions:
        for e in (*a.plan.destroy, *(r.instance for r in a.plan.recompute)):
            assert not e.busy
            assert not next(s for s in by_gpu[a.gpu].instances if s.gi_id == e.gi_id).busy
    for s in d.starts:
        for slot in by_gpu[s.gpu].instances:
            if slot.busy:
                assert slot.gi_id != s.gi_id
                assert not slot.placement.overlaps(s.placement)

    # Each plan is the planner's own plan from the GPU's instances to the final layout.
    after = _carry_out(gpus, d)
    for a in d.actions:
        g = by_gpu[a.gpu]
        target = [TargetInstance(pid, q, comp) for pid, q, comp in after[a.gpu]]
        again = plan(g.geometry, _existing(g), target)
        assert isinstance(again, Plan)
        assert again == a.plan

    # The final layouts are valid, and every start lands on its own instance of its profile.
    for index, insts in after.items():
        geometry = by_gpu[index].geometry
        placed: list[Occupant] = []
        for pid, q, _ in sorted(insts, key=lambda i: (-i[1].size, i[1].start)):
            assert geometry.why_not(placed, geometry.by_id(pid), q) is None
            placed.append(Occupant(pid, q))
    taken = [(s.gpu, s.placement) for s in d.starts]
    assert len(taken) == len(set(taken))
    for s in d.starts:
        match = [i for i in after[s.gpu] if i[1] == s.placement]
        assert len(match) == 1 and match[0][0] == s.profile_id
        prof = by_gpu[s.gpu].geometry.by_id(s.profile_id)
        assert match[0][2] == default_compute(prof.name)
        job = jobs_by_name[s.job]
        assert prof.memory_mib >= job.memory_mib and job.speed_on(prof) is not None
        assert s.ready_at >= now and s.expected_end >= s.ready_at
        if s.gi_id is not None:
            reused = next(x for x in by_gpu[s.gpu].instances if x.gi_id == s.gi_id)
            assert not reused.busy and reused.placement == s.placement

    # A job is unplaceable exactly when no GPU offers a profile it fits.
    for j in jobs:
        fits_somewhere = any(j.fits(p) for g in gpus for p in g.geometry.profiles)
        assert (j.name in {u.job for u in d.unplaceable}) == (not fits_somewhere)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**9), objective=st.sampled_from(["jct", "makespan"]))
def test_decisions_are_deterministic_and_order_independent(seed: int, objective: str) -> None:
    gpus, jobs, now = _scenario(seed)
    first = decide(gpus, jobs, now=now, cost=COST, objective=objective)  # type: ignore[arg-type]
    shuffled = random.Random(seed)
    jobs2, gpus2 = list(jobs), [GpuState(g.index, g.geometry, tuple(reversed(g.instances))) for g in gpus]
    shuffled.shuffle(jobs2)
    shuffled.shuffle(gpus2)
    again = decide(gpus2, jobs2, now=now, cost=COST, objective=objective)  # type: ignore[arg-type]
    assert again == first


# ----------------------------------------------------------------------------- behaviour


def _job(name: str, work: float, memory: int = 0, arrival: float = 0.0, table: str = "transformer:32") -> Job:
    return Job(name, memory, work, workloads()[table].speeds(), arrival)


def test_a_lone_job_gets_the_fastest_profile() -> None:
    d = decide([GpuState(0, A100)], [_job("a", 600)], now=0.0, cost=COST)
    (s,) = d.starts
    assert A100.by_id(s.profile_id).name == "7g.40gb"
    assert s.ready_at == pytest.approx(COST.create_s())
    assert s.expected_end == pytest.approx(s.ready_at + 600)


def test_a_crowd_packs_into_efficient_slices() -> None:
    """Fourteen mobilenet jobs (7g is only 1.2x faster than 1g) on two A100s: all start on 1g."""
    jobs = [_job(f"m{i}", 300, table="mobilenet:64") for i in range(14)]
    d = decide([GpuState(0, A100), GpuState(1, A100)], jobs, now=0.0, cost=COST)
    assert len(d.starts) == 14 and not d.waiting
    assert {A100.by_id(s.profile_id).slice_count for s in d.starts} == {1}


def test_jobs_without_speeds_take_the_smallest_profile_with_enough_memory() -> None:
    jobs = [Job("small", 4000, 100), Job("big", 15000, 100)]
    d = decide([GpuState(0, A100)], jobs, now=0.0, cost=COST)
    got = {s.job: A100.by_id(s.profile_id).name for s in d.starts}
    assert got["small"] == "1g.5gb"
    assert A100.by_name(got["big"]).memory_mib >= 15000
    assert A100.by_name(got["big"]).memory_mib == min(p.memory_mib for p in A100.profiles if p.memory_mib >= 15000)


def test_a_job_waits_for_a_busy_instance_rather_than_touching_it() -> None:
    busy = Slot(1, A100.by_name("7g.40gb").id, Placement(0, 8), ("7g.40gb",), busy=True, free_at=50.0)
    d = decide([GpuState(0, A100, (busy,))], [_job("a", 600)], now=10.0, cost=COST)
    assert not d.starts and not d.actions
    (w,) = d.waiting
    assert w.gpu == 0 and w.expected_start == 50.0


def test_an_idle_instance_of_the_right_shape_is_reused_without_reconfiguration() -> None:
    idle = Slot(3, A100.by_name("3g.20gb").id, Placement(4, 4), ("3g.20gb",))
    busy = Slot(1, A100.by_name("4g.20gb").id, Placement(0, 4), ("4g.20gb",), busy=True, free_at=None)
    d = decide([GpuState(0, A100, (busy, idle))], [_job("a", 600, memory=15000)], now=5.0, cost=COST)
    (s,) = d.starts
    assert s.gi_id == 3 and s.ready_at == 5.0 and not d.actions


def test_idle_slices_are_reshaped_for_a_bigger_job() -> None:
    idle = tuple(Slot(i, A100.by_name("1g.5gb").id, Placement(i, 1), ("1g.5gb",)) for i in range(4))
    d = decide([GpuState(0, A100, idle)], [_job("a", 600, memory=15000)], now=0.0, cost=COST)
    (s,) = d.starts
    assert A100.by_id(s.profile_id).memory_mib >= 15000
    (a,) = d.actions
    assert {e.gi_id for e in a.plan.destroy} == {i for i in range(4) if Placement(i, 1).overlaps(s.placement)}
    assert a.seconds == pytest.approx(COST.plan_s(a.plan))


@pytest.mark.parametrize(("geometry", "resets", "expected"), [(A100, True, 5.0), (H100, False, 2.0)])
def test_a_gpu_without_mig_is_switched_on_with_the_mode_change_cost(
    geometry: GpuGeometry, resets: bool, expected: float
) -> None:
    g = GpuState(0, geometry, mig_enabled=False, mode_change_resets=resets)
    d = decide([g], [Job("a", 0, 100)], now=0.0, cost=COST)
    (a,) = d.actions
    assert a.enable_mig
    assert a.seconds == pytest.approx(expected + COST.plan_s(a.plan))
    assert d.starts[0].ready_at == pytest.approx(a.seconds)
    busy = GpuState(0, geometry, mig_enabled=False, whole_busy=True, mode_change_resets=resets)
    d = decide([busy], [Job("a", 0, 100)], now=0.0, cost=COST)
    assert not d.starts and not d.actions and d.waiting[0].gpu is None


def test_jobs_no_gpu_can_run_are_reported_with_the_reason() -> None:
    d = decide([GpuState(0, A100)], [Job("huge", 50000, 10), Job("odd", 0, 10, (("5g", 1.0),))], now=0.0)
    reasons = {u.job: u.reason for u in d.unplaceable}
    assert "50000 MiB" in reasons["huge"] and "7g.40gb" in reasons["huge"]
    assert "5g" in reasons["odd"]
    assert not d.starts


def test_priority_is_shortest_first_for_jct_and_longest_first_for_makespan() -> None:
    jobs = [_job("long", 900), _job("short", 100), _job("mid", 500)]
    assert [j.name for j in priority_order(jobs, [GpuState(0, A100)], "jct")] == ["short", "mid", "long"]
    assert [j.name for j in priority_order(jobs, [GpuState(0, A100)], "makespan")] == ["long", "mid", "short"]


def test_expected_arrivals_make_a_job_leave_room() -> None:
    """Alone, a resnet job takes the whole GPU; with jobs expected every 10 s it takes less."""
    job = [_job("r", 600, table="resnet:128")]
    alone = decide([GpuState(0, A100)], job, now=0.0, cost=COST)
    busy = decide([GpuState(0, A100)], job, now=0.0, cost=COST, tuning=Tuning(arrival_rate=0.1))
    size = A100.by_id(alone.starts[0].profile_id).slice_count
    assert size == 7
    assert A100.by_id(busy.starts[0].profile_id).slice_count < size


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="objective"):
        decide([GpuState(0, A100)], [], now=0.0, objective="fastest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        decide([GpuState(0, A100)], [Job("a"), Job("a")], now=0.0)
    with pytest.raises(ValueError, match="unique"):
        decide([GpuState(0, A100), GpuState(0, A30)], [], now=0.0)


# ----------------------------------------------------------------------------- speeds and costs


def test_speed_lookup_by_name_suffix_slices_and_smaller_memory() -> None:
    job = Job("j", 0, 100, (("1g.5gb", 0.2), ("3g", 0.6), ("7g.40gb", 1.0)))
    assert job.speed_on(A100.by_name("1g.5gb")) == 0.2
    assert job.speed_on(A100.by_name("1g.5gb+me")) == 0.2  # same compute and memory
    assert job.speed_on(A100.by_name("1g.10gb")) == 0.2  # same compute, more memory
    assert job.speed_on(A100.by_name("3g.20gb")) == 0.6
    assert job.speed_on(A100.by_name("2g.10gb")) is None
    assert job.duration_on(A100.by_name("2g.10gb")) is None
    assert Job("any").speed_on(A100.by_name("2g.10gb")) == 1.0
    assert job.duration_on(A100.by_name("3g.20gb")) == pytest.approx(100 / 0.6)


def test_reconfiguration_cost_of_a_plan() -> None:
    current = [ExistingInstance(i + 1, A100.by_name("1g.5gb").id, Placement(i, 1), ("1g.5gb",)) for i in range(4)]
    result = plan(A100, current, [TargetInstance(A100.by_name("4g.20gb").id)])
    assert isinstance(result, Plan) and len(result.destroy) == 4 and len(result.create) == 1
    assert COST.plan_s(result) == pytest.approx(4 * (0.018 + 0.006) + 0.013 + 0.004)
    assert ReconfigCost.from_nvml({"nvmlDeviceSetMigMode": 2.0, "simResetGpu": 3.0}).mode_change_s(True) == 5.0


# ----------------------------------------------------------------------------- the speed table


def test_memory_needs_agree_with_the_measured_profiles() -> None:
    """A job's need fits every A100 profile it has a time on and exceeds every one it has not."""
    table = workloads()
    assert len(table) == 32
    for w in table.values():
        measured = dict(w.iteration_ms)
        for name in ("1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"):
            fits = A100.by_name(name).memory_mib >= w.memory_mib
            assert fits == (name in measured), (w.key, name)
        speeds = dict(w.speeds())
        assert speeds["7g.40gb"] == 1.0
        assert w.memory_source in ("footprint", "lowered")
        assert (w.memory_mib == w.footprint_mib) == (w.memory_source == "footprint")


def test_workload_lookup_names_what_exists() -> None:
    assert find_workload(workloads(), "ResNet", 128).key == "resnet:128"
    assert find_workload(workloads(), "bert").batch == 2
    with pytest.raises(KeyError, match="transformer"):
        find_workload(workloads(), "gpt")
    with pytest.raises(KeyError, match="16, 32, 64, 128"):
        find_workload(workloads(), "transformer", 48)
