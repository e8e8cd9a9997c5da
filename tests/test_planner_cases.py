"""The planner on cases a reader can check by eye: kept, destroyed, recomputed and refused
instances, pins, refusals that say what would fit, and mig-parted's wipe baseline.

The exhaustive and random checks against an independent oracle are in test_planner.py."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from migctl.core.geometry import GpuGeometry, Placement
from migctl.core.layout import (
    Create,
    ExistingInstance,
    Plan,
    PlanRefusal,
    TargetInstance,
    default_compute,
)
from migctl.core.planner import difference, plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _wipe import wipe_plan  # mig-parted's wipe-and-recreate, the benchmarks' baseline
from planning import (  # tests/planning.py
    A30,
    A100_40,
    H100,
    H100_NO_POOL,
    check_plan,
)

# --------------------------------------------------------------------------- known cases


def gi(
    gi_id: int, geo: GpuGeometry, name: str, start: int, busy: bool = False, compute: tuple[str, ...] | None = None
) -> ExistingInstance:
    prof = geo.by_name(name)
    placement = prof.placement_at(start)
    assert placement is not None
    return ExistingInstance(gi_id, prof.id, placement, default_compute(prof.name) if compute is None else compute, busy)


def want(geo: GpuGeometry, *names: str) -> list[TargetInstance]:
    return [TargetInstance(geo.by_name(n).id) for n in names]


def test_a100_mixed_layout_plans_in_any_order() -> None:
    """nvidia-smi -cgi fails some orders of this (first fit blocks the 3g); placements never do."""
    names = ["1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"]
    plans = set()
    for order in itertools.permutations(names):
        p = plan(A100_40, [], want(A100_40, *order))
        assert isinstance(p, Plan), p
        check_plan(A100_40, [], want(A100_40, *order), p)
        plans.add(p)
    assert len(plans) == 1  # the same plan for every order
    (p,) = plans
    # 3g.20gb at 0:4 would leave 2g at 4:2 and a single 1g slot (6; slot 7 takes no 1g).
    assert [(A100_40.by_id(c.profile_id).name, str(c.placement)) for c in p.create] == [
        ("3g.20gb", "4:4"),
        ("2g.10gb", "0:2"),
        ("1g.5gb", "2:1"),
        ("1g.5gb", "3:1"),
    ]


def test_applying_the_layout_the_gpu_has_is_a_noop() -> None:
    current = [gi(1, H100, "3g.40gb", 0), gi(5, H100, "2g.20gb", 4), gi(13, H100, "1g.10gb", 6)]
    target = want(H100, "1g.10gb", "3g.40gb", "2g.20gb")
    p = plan(H100, current, target)
    assert isinstance(p, Plan) and p.is_noop
    assert p.keep == tuple(current)
    assert difference(H100, current, target) == []
    assert wipe_plan(H100, current, target) == p


def test_changing_one_instance_keeps_the_rest() -> None:
    # Two 3g instances; the target swaps one of them for two 2g. 2g can only start at 0, 2
    # or 4, so only the 3g at 0:4 can make room: the planner must destroy that one.
    current = [gi(1, H100, "3g.40gb", 0), gi(2, H100, "3g.40gb", 4)]
    p = plan(H100, current, want(H100, "3g.40gb", "2g.20gb", "2g.20gb"))
    assert isinstance(p, Plan)
    assert p.keep == (current[1],) and p.destroy == (current[0],)
    assert p.create == (
        Create(14, Placement(0, 2), ("2g.20gb",)),
        Create(14, Placement(2, 2), ("2g.20gb",)),
    )
    # mig-parted would have destroyed both.
    w = wipe_plan(H100, current, want(H100, "3g.40gb", "2g.20gb", "2g.20gb"))
    assert isinstance(w, Plan) and len(w.destroy) == 2


def test_seven_small_to_one_medium_destroys_only_what_is_under_it() -> None:
    current = [gi(7 + s, H100, "1g.10gb", s) for s in range(7)]
    p = plan(H100, current, want(H100, "2g.20gb", *["1g.10gb"] * 5))
    assert isinstance(p, Plan)
    assert len(p.keep) == 5 and len(p.destroy) == 2
    # Ties are broken by keeping lower GI IDs: GI 7..10 stay, the 2g goes at 4:2.
    assert [e.gi_id for e in p.destroy] == [11, 12]
    assert p.create == (Create(14, Placement(4, 2), ("2g.20gb",)),)


def test_compute_change_recomputes_instead_of_destroying() -> None:
    current = [gi(1, H100, "3g.40gb", 0), gi(2, H100, "3g.40gb", 4)]
    target = [TargetInstance(9), TargetInstance(9, compute=("1c.3g.40gb",) * 3)]
    p = plan(H100, current, target)
    assert isinstance(p, Plan)
    assert not p.destroy and not p.create
    assert p.keep == (current[0],)
    assert [(r.instance.gi_id, r.compute) for r in p.recompute] == [(2, ("1c.3g.40gb",) * 3)]
    assert difference(H100, current, target) == [
        "compute layout differs on 3g.40gb at 4:4 (GI 2): has 3g.40gb, target wants 3x 1c.3g.40gb"
    ]


def test_target_needing_a_busy_instances_slices_is_refused_naming_it() -> None:
    current = [gi(1, H100, "3g.40gb", 0, busy=True), gi(2, H100, "3g.40gb", 4)]
    target = want(H100, "4g.40gb", "3g.40gb")  # 4g.40gb can only go at 0:4
    p = plan(H100, current, target)
    assert isinstance(p, PlanRefusal)
    assert p.busy == (current[0],)
    assert "GI 1" in p.reason and "busy" in p.reason
    # Once idle, the same change destroys GI 1 only.
    idle = [gi(1, H100, "3g.40gb", 0), current[1]]
    q = plan(H100, idle, target)
    assert isinstance(q, Plan) and q.destroy == (idle[0],) and q.keep == (idle[1],)


def test_busy_instance_outside_the_target_is_refused() -> None:
    current = [gi(3, A30, "1g.6gb", 0, busy=True), gi(4, A30, "1g.6gb", 1)]
    p = plan(A30, current, want(A30, "2g.12gb", "2g.12gb"))
    assert isinstance(p, PlanRefusal) and p.busy == (current[0],)
    assert "GI 3" in p.reason
    assert "GI 4" not in p.reason  # GI 4 is idle: the planner would just destroy it


def test_busy_instance_that_fits_the_target_is_kept() -> None:
    current = [gi(3, A30, "1g.6gb", 0, busy=True), gi(4, A30, "1g.6gb", 1)]
    p = plan(A30, current, want(A30, "1g.6gb", "2g.12gb"))
    assert isinstance(p, Plan)
    assert p.keep == (current[0],) and p.destroy == (current[1],)
    assert p.create == (Create(5, Placement(2, 2), ("2g.12gb",)),)


def test_busy_instance_is_never_recomputed() -> None:
    current = [gi(1, H100, "7g.80gb", 0, busy=True)]
    p = plan(H100, current, [TargetInstance(0, compute=("1c.7g.80gb",) * 7)])
    assert isinstance(p, PlanRefusal) and p.busy == (current[0],)
    assert "compute" in p.reason or "7g.80gb" in p.reason


def test_exact_keeps_beat_recomputes() -> None:
    # Keeping GI 2 with new compute instances would be found first in GI order, but keeping
    # GI 1 and GI 3 as they are and destroying GI 2 disrupts one instance instead of two.
    current = [
        gi(1, A100_40, "1g.5gb", 0),
        gi(2, A100_40, "1g.5gb", 2, compute=("1c.1g.5gb", "1c.1g.5gb")),
        gi(3, A100_40, "1g.5gb", 1),
    ]
    target = [TargetInstance(19, Placement(0, 1)), TargetInstance(19)]
    p = plan(A100_40, current, target)
    assert isinstance(p, Plan)
    assert [e.gi_id for e in p.keep] == [1, 3] and [e.gi_id for e in p.destroy] == [2]
    assert not p.recompute and not p.create


def test_instance_count_limits_without_an_engine_pool() -> None:
    p = plan(H100_NO_POOL, [], want(H100_NO_POOL, "1g.10gb+me", "1g.10gb+me"))
    assert isinstance(p, PlanRefusal) and "at most 1" in p.reason
    p = plan(H100_NO_POOL, [gi(7, H100_NO_POOL, "1g.10gb+me", 0)], want(H100_NO_POOL, "1g.10gb+me", "1g.10gb+me"))
    assert isinstance(p, PlanRefusal) and not p.busy


def test_pinned_placement_is_honoured() -> None:
    target = [TargetInstance(9, Placement(4, 4)), TargetInstance(19)]
    p = plan(H100, [], target)
    assert isinstance(p, Plan)
    assert p.create == (Create(9, Placement(4, 4), ("3g.40gb",)), Create(19, Placement(0, 1), ("1g.10gb",)))


def test_refusal_says_what_does_not_fit_and_what_would() -> None:
    p = plan(H100, [], want(H100, "3g.40gb", "3g.40gb", "1g.10gb"))
    assert isinstance(p, PlanRefusal) and not p.busy
    assert "9 memory slices" in p.reason and "has 8" in p.reason
    assert "Removing one 3g.40gb or one 1g.10gb would make it fit" in p.reason

    p = plan(H100, [], want(H100, *["2g.20gb"] * 4))
    assert isinstance(p, PlanRefusal) and "at most 3" in p.reason

    p = plan(A30, [], want(A30, "1g.6gb+me", "2g.12gb+me"))  # one OFA engine on an A30
    assert isinstance(p, PlanRefusal) and "OFA" in p.reason

    p = plan(A100_40, [], want(A100_40, *["2g.10gb"] * 3, "1g.5gb", "1g.5gb"))  # slice 7 takes no 1g
    assert isinstance(p, PlanRefusal) and "legal placements" in p.reason

    p = plan(H100, [], [TargetInstance(42)])
    assert isinstance(p, PlanRefusal) and "42" in p.reason

    p = plan(H100, [], [TargetInstance(5, Placement(4, 4))])
    assert isinstance(p, PlanRefusal) and "4g.40gb cannot be placed at 4:4" in p.reason


def test_refusal_offers_the_largest_part_that_fits() -> None:
    p = plan(H100, [], want(H100, "7g.80gb", "7g.80gb", "4g.40gb", "4g.40gb"))
    assert isinstance(p, PlanRefusal)
    assert "The largest part of it that fits is 1x 7g.80gb" in p.reason


def test_difference_reads_like_a_diff() -> None:
    current = [gi(1, H100, "3g.40gb", 0), gi(2, H100, "3g.40gb", 4)]
    target = [TargetInstance(9, Placement(0, 4)), *want(H100, "1g.10gb", "1g.10gb")]
    assert difference(H100, current, target) == ["missing 2x 1g.10gb", "unexpected 3g.40gb at 4:4 (GI 2)"]
    assert difference(H100, current, want(H100, "3g.40gb", "3g.40gb")) == []


def test_wipe_plan_rebuilds_everything_unless_counts_match() -> None:
    current = [gi(7 + s, H100, "1g.10gb", s) for s in range(7)]
    same = wipe_plan(H100, current, want(H100, *["1g.10gb"] * 7))
    assert isinstance(same, Plan) and same.is_noop
    w = wipe_plan(H100, current, want(H100, *["1g.10gb"] * 6))
    assert isinstance(w, Plan) and len(w.destroy) == 7 and len(w.create) == 6
    p = plan(H100, current, want(H100, *["1g.10gb"] * 6))
    assert isinstance(p, Plan) and len(p.destroy) == 1
