"""The planner: complete, least disruptive, never touches a busy instance, deterministic.

Completeness and minimality are checked against ``oracle``, an independent brute force that
enumerates every subset of existing instances to keep, every way to match them to target
instances, and every assignment of legal placements to the rest, judging each final state
only with ``GpuGeometry.why_not``.
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migctl.core.geometry import Engines, GiProfile, GpuGeometry, Occupant, Placement
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

# --------------------------------------------------------------------------- geometries


def _profile(
    pid: int, name: str, count: int, starts: Sequence[int], size: int, dec: int = 0, jpeg: int = 0, ofa: int = 0
) -> GiProfile:
    return GiProfile(
        id=pid,
        name=name,
        slice_count=int(name[0]),
        instance_count=count,
        memory_mib=0,
        placements=tuple(Placement(s, size) for s in starts),
        engines=Engines(dec=dec, jpeg=jpeg, ofa=ofa),
    )


# Built by hand from shared/reference/gpu-profile-tables.md, independent of the catalog.
H100 = GpuGeometry(
    profiles=(
        _profile(19, "1g.10gb", 7, range(7), 1, dec=1, jpeg=1),
        _profile(20, "1g.10gb+me", 1, range(7), 1, dec=1, jpeg=1, ofa=1),
        _profile(15, "1g.20gb", 4, (0, 2, 4, 6), 2, dec=1, jpeg=1),
        _profile(14, "2g.20gb", 3, (0, 2, 4), 2, dec=2, jpeg=2),
        _profile(9, "3g.40gb", 2, (0, 4), 4, dec=3, jpeg=3),
        _profile(5, "4g.40gb", 1, (0,), 4, dec=4, jpeg=4),
        _profile(0, "7g.80gb", 1, (0,), 8, dec=7, jpeg=7, ofa=1),
    ),
    engine_totals=Engines(dec=7, jpeg=7, ofa=1),
)
A30 = GpuGeometry(
    profiles=(
        _profile(14, "1g.6gb", 4, range(4), 1, dec=1),
        _profile(21, "1g.6gb+me", 1, range(4), 1, dec=1, jpeg=1, ofa=1),
        _profile(5, "2g.12gb", 2, (0, 2), 2, dec=2),
        _profile(6, "2g.12gb+me", 1, (0, 2), 2, dec=2, jpeg=1, ofa=1),
        _profile(0, "4g.24gb", 1, (0,), 4, dec=4, jpeg=1, ofa=1),
    ),
    engine_totals=Engines(dec=4, jpeg=1, ofa=1),
)
A100_40 = GpuGeometry(
    profiles=(
        _profile(19, "1g.5gb", 7, range(7), 1),
        _profile(20, "1g.5gb+me", 1, range(7), 1, dec=1, jpeg=1, ofa=1),
        _profile(15, "1g.10gb", 4, (0, 2, 4, 6), 2, dec=1),
        _profile(14, "2g.10gb", 3, (0, 2, 4), 2, dec=1),
        _profile(9, "3g.20gb", 2, (0, 4), 4, dec=2),
        _profile(5, "4g.20gb", 1, (0,), 4, dec=2),
        _profile(0, "7g.40gb", 1, (0,), 8, dec=5, jpeg=1, ofa=1),
    ),
    engine_totals=Engines(dec=5, jpeg=1, ofa=1),
)


def _catalog() -> dict[str, GpuGeometry]:
    try:
        from migctl.sim.catalog import models

        return {key: m.geometry() for key, m in models().items() if m.mig_capable}
    except (ImportError, OSError):  # the catalog's data file is not there yet
        return {}


CATALOG = _catalog()
# With the engine pool unknown only slices and instance counts limit a layout (then the
# +me profiles' instance count of one is what stops a second one).
H100_NO_POOL = GpuGeometry(profiles=H100.profiles, engine_totals=None)
GEOMETRIES: dict[str, GpuGeometry] = {
    "hand-h100-80gb": H100,
    "hand-h100-no-pool": H100_NO_POOL,
    "hand-a30": A30,
    "hand-a100-40gb": A100_40,
}
GEOMETRIES.update(CATALOG)


# --------------------------------------------------------------------------- helpers


def compute_of(geo: GpuGeometry, t: TargetInstance) -> tuple[str, ...]:
    return default_compute(geo.by_id(t.profile_id).name) if t.compute is None else tuple(sorted(t.compute))


def final_state(p: Plan) -> list[tuple[int, Placement, tuple[str, ...]]]:
    """(profile, placement, compute) of every GPU instance once ``p`` has run."""
    state = [(e.profile_id, e.placement, tuple(sorted(e.compute))) for e in p.keep]
    state += [(r.instance.profile_id, r.instance.placement, tuple(sorted(r.compute))) for r in p.recompute]
    state += [(c.profile_id, c.placement, tuple(sorted(c.compute))) for c in p.create]
    return state


def valid(geo: GpuGeometry, kept: Sequence[Occupant], creates: Sequence[tuple[int, Placement]]) -> bool:
    """Whether creating ``creates`` one by one next to ``kept`` passes ``why_not`` each time."""
    occupants = list(kept)
    for pid, placement in creates:
        if geo.why_not(occupants, geo.by_id(pid), placement) is not None:
            return False
        occupants.append(Occupant(pid, placement))
    return True


def satisfies(
    geo: GpuGeometry, state: Sequence[tuple[int, Placement, tuple[str, ...]]], target: Sequence[TargetInstance]
) -> bool:
    """Whether the final state is exactly the target (pins and compute layouts included)."""
    rest = list(state)
    for t in sorted(target, key=lambda t: t.placement is None):
        want = (t.profile_id, compute_of(geo, t))
        hit = next(
            (s for s in rest if (s[0], s[2]) == want and (t.placement is None or s[1] == t.placement)),
            None,
        )
        if hit is None:
            return False
        rest.remove(hit)
    return not rest


def check_plan(
    geo: GpuGeometry, current: Sequence[ExistingInstance], target: Sequence[TargetInstance], p: Plan
) -> None:
    """Everything a returned plan must be, whatever the scenario."""
    touched = [*p.keep, *p.destroy, *(r.instance for r in p.recompute)]
    assert sorted(touched, key=id) == sorted(current, key=id), "every existing instance is decided once"
    assert not any(e.busy for e in p.destroy), "a busy instance is never destroyed"
    assert not any(r.instance.busy for r in p.recompute), "a busy instance is never recomputed"
    standing = [Occupant(e.profile_id, e.placement) for e in (*p.keep, *(r.instance for r in p.recompute))]
    assert valid(geo, standing, [(c.profile_id, c.placement) for c in p.create])
    assert satisfies(geo, final_state(p), target)
    order = [(-c.placement.size, c.placement.start) for c in p.create]
    assert order == sorted(order), "creates come larger placements first, then by start"


# --------------------------------------------------------------------------- the oracle


def fits(geo: GpuGeometry, kept: Sequence[Occupant], rest: Sequence[TargetInstance]) -> bool:
    """Whether some assignment of legal placements to ``rest`` (identical instances as
    combinations) passes :func:`valid` next to ``kept``.

    Every assignment is searched, depth first, one instance at a time, with the same test
    :func:`valid` applies (``why_not`` for each instance created after the ones before it). A
    branch ends at the first refusal: :func:`valid` fails an assignment at its first refused
    instance, so no assignment that starts that way can pass.
    """
    groups = list(Counter((t.profile_id, t.placement) for t in rest).items())

    def search(i: int, start: int, left: int, occupants: list[Occupant]) -> bool:
        """Place ``left`` more instances of group ``i`` at its spots from ``start`` on, then the rest."""
        if left == 0:
            if i + 1 == len(groups):
                return True
            return search(i + 1, 0, groups[i + 1][1], occupants)
        (pid, pin), _ = groups[i]
        profile = geo.by_id(pid)
        spots = [pin] if pin is not None else list(profile.placements)
        for k in range(start, len(spots) - left + 1):
            if geo.why_not(occupants, profile, spots[k]) is None and search(
                i, k + 1, left - 1, [*occupants, Occupant(pid, spots[k])]
            ):
                return True
        return False

    return not groups or search(0, 0, groups[0][1], list(kept))


def _matchings(
    geo: GpuGeometry, kept: Sequence[ExistingInstance], target: Sequence[TargetInstance]
) -> Iterator[tuple[int, list[TargetInstance]]]:
    """Each way to match every kept instance to its own target instance: (recomputes, rest)."""
    if not kept:
        yield 0, list(target)
        return
    e, others = kept[0], kept[1:]
    tried = set()
    for j, t in enumerate(target):
        if t in tried or t.profile_id != e.profile_id or t.placement not in (None, e.placement):
            continue
        tried.add(t)
        redo = compute_of(geo, t) != tuple(sorted(e.compute))
        if redo and e.busy:
            continue
        for more, rest in _matchings(geo, others, [*target[:j], *target[j + 1 :]]):
            yield more + redo, rest


def oracle(
    geo: GpuGeometry, current: Sequence[ExistingInstance], target: Sequence[TargetInstance]
) -> tuple[int, int] | None:
    """Fewest (destroyed, recomputed) over every valid way to reach ``target``; None if none."""
    if any(geo.find(t.profile_id) is None for t in target):
        return None
    for keep_count in range(len(current), -1, -1):
        best: int | None = None
        for kept in itertools.combinations(current, keep_count):
            if any(e.busy and e not in kept for e in current):
                continue
            occupants = [Occupant(e.profile_id, e.placement) for e in kept]
            for redo, rest in _matchings(geo, kept, target):
                if (best is None or redo < best) and fits(geo, occupants, rest):
                    best = redo
        if best is not None:
            return len(current) - keep_count, best
    return None


# --------------------------------------------------------------------------- exhaustive, empty GPU


def _multisets(geo: GpuGeometry, max_size: int) -> Iterator[tuple[int, ...]]:
    ids = [p.id for p in geo.profiles]
    for n in range(1, max_size + 1):
        yield from itertools.combinations_with_replacement(ids, n)


@pytest.mark.parametrize(
    ("key", "max_size"),
    [
        ("hand-h100-80gb", 7),
        ("hand-a30", 4),
        *[(k, 4 if k == "a30" else 7) for k in ("h100-80gb", "a30") if k in CATALOG],
    ],
)
def test_every_profile_multiset_on_an_empty_gpu(key: str, max_size: int) -> None:
    geo = GEOMETRIES[key]
    planned = refused = 0
    for ids in _multisets(geo, max_size):
        target = [TargetInstance(pid) for pid in ids]
        p = plan(geo, [], target)
        expect = fits(geo, [], target)
        assert isinstance(p, Plan) == expect, f"{ids}: planner says {p}, oracle says {expect}"
        if isinstance(p, Plan):
            check_plan(geo, [], target, p)
            assert len(p.create) == len(ids)
            planned += 1
        else:
            assert p.reason and not p.busy
            refused += 1
    assert planned and refused  # both outcomes were really exercised


# --------------------------------------------------------------------------- random scenarios

ALT = "alt"  # a compute layout that differs from the default


def _random_layout(draw: st.DrawFn, geo: GpuGeometry) -> list[Occupant]:
    """A legal layout built the way a user would: profiles created one by one where they fit."""
    weighted = [p for p in geo.profiles for _ in p.placements]  # small profiles more often: fuller GPUs
    occupants: list[Occupant] = []
    for prof, k in draw(st.lists(st.tuples(st.sampled_from(weighted), st.integers(0, 11)), max_size=12)):
        free = geo.free_placements(occupants, prof)
        if free:
            occupants.append(Occupant(prof.id, free[k % len(free)]))
    return occupants


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[GpuGeometry, list[ExistingInstance], list[TargetInstance]]:
    geo = GEOMETRIES[draw(st.sampled_from(sorted(GEOMETRIES)))]
    gi_ids = draw(st.permutations(range(1, 15)))
    current: list[ExistingInstance] = []
    for o in _random_layout(draw, geo):
        name = geo.by_id(o.profile_id).name
        compute = draw(st.sampled_from([default_compute(name), (f"1c.{name}", f"1c.{name}"), ()]))
        busy = draw(st.sampled_from([False, False, False, True]))
        current.append(ExistingInstance(gi_ids[len(current)], o.profile_id, o.placement, compute, busy))
    target: list[TargetInstance] = []
    mode = draw(st.sampled_from(["edit", "edit", "fresh", "fresh", "random"]))
    if mode == "edit":  # mostly what is there, so keeps and recomputes matter
        for e in current:
            how = draw(st.sampled_from(["same", "same", "unpinned", "compute", "drop"]))
            if how == "same":
                target.append(TargetInstance(e.profile_id, e.placement, e.compute))
            elif how == "unpinned":
                target.append(TargetInstance(e.profile_id, None, e.compute))
            elif how == "compute":
                target.append(TargetInstance(e.profile_id, None, (ALT,)))
    if mode == "fresh":  # another legal layout, sometimes pinned where it was built
        for o in _random_layout(draw, geo):
            pinned = draw(st.booleans())
            wanted = draw(st.sampled_from([None, None, (ALT,)]))
            target.append(TargetInstance(o.profile_id, o.placement if pinned else None, wanted))
    if mode in ("edit", "random"):
        weighted = [p for p in geo.profiles for _ in p.placements]
        extras = st.tuples(st.sampled_from(weighted), st.integers(-6, 11), st.sampled_from([None, (ALT,)]))
        for prof, pin, extra_compute in draw(st.lists(extras, max_size=2 if mode == "edit" else 6)):
            placement = prof.placements[pin % len(prof.placements)] if pin >= 0 else None
            target.append(TargetInstance(prof.id, placement, extra_compute))
    return geo, current, list(draw(st.permutations(target)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_scenarios_against_the_oracle(
    scenario: tuple[GpuGeometry, list[ExistingInstance], list[TargetInstance]],
) -> None:
    geo, current, target = scenario
    best = oracle(geo, current, target)
    p = plan(geo, current, target)
    if best is None:
        assert isinstance(p, PlanRefusal), f"planner found {p} but the oracle found nothing"
        busy = [e for e in current if e.busy]
        assert set(p.busy) <= set(busy)
        idle = [ExistingInstance(e.gi_id, e.profile_id, e.placement, e.compute) for e in current]
        if p.busy:
            # Those busy instances really are the obstacle: were they idle, a plan would exist.
            freed = [
                ExistingInstance(e.gi_id, e.profile_id, e.placement, e.compute, e.busy and e not in p.busy)
                for e in current
            ]
            assert oracle(geo, freed, target) is not None
            assert all(f"GI {e.gi_id}" in p.reason for e in p.busy)
        else:
            assert oracle(geo, idle, target) is None
        return
    assert isinstance(p, Plan), f"oracle found {best} but the planner refused: {p.reason}"
    check_plan(geo, current, target, p)
    assert (len(p.destroy), len(p.recompute)) == best
    assert (difference(geo, current, target) == []) == p.is_noop
    # The plan is a pure function of its inputs, whatever the order they come in.
    assert plan(geo, list(reversed(current)), list(reversed(target))) == p
    # Applying it leads to a GPU that needs nothing more.
    after = [
        *p.keep,
        *(
            ExistingInstance(r.instance.gi_id, r.instance.profile_id, r.instance.placement, r.compute)
            for r in p.recompute
        ),
    ]
    after += [ExistingInstance(100 + i, c.profile_id, c.placement, c.compute) for i, c in enumerate(p.create)]
    again = plan(geo, after, target)
    assert isinstance(again, Plan) and again.is_noop
    assert difference(geo, after, target) == []
    # mig-parted's wipe-and-recreate never disrupts less.
    w = wipe_plan(geo, current, target)
    if isinstance(w, Plan):
        # (mig-parted knows no placements: with equal counts it keeps instances a pin would move)
        assert len(w.destroy) >= len(p.destroy) or any(t.placement is not None for t in target)
        assert satisfies(geo, final_state(w), [TargetInstance(t.profile_id, None, t.compute) for t in target])


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
