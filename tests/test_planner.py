"""The planner: complete, least disruptive, never touches a busy instance, deterministic.

Completeness and minimality are checked against ``oracle``, an independent brute force that
enumerates every subset of existing instances to keep, every way to match them to target
instances, and every assignment of legal placements to the rest, judging each final state with
``allows``: the hardware's rules (mig-hardware.md §1.4, §1.7) written here from scratch, as sets
of occupied slices and per-kind engine sums. It reads the geometry's data (profiles, placements,
counts, engines) but never the planner's feasibility code (``GpuGeometry.why_not``,
``can_place``, ``free_placements``), so a bug there cannot be agreed with.
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

from migctl.core.geometry import GpuGeometry, Occupant
from migctl.core.layout import (
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
    CATALOG,
    GEOMETRIES,
    allows,
    check_plan,
    compute_of,
    final_state,
    free_spots,
    satisfies,
)

# --------------------------------------------------------------------------- the oracle


def fits(geo: GpuGeometry, kept: Sequence[Occupant], rest: Sequence[TargetInstance]) -> bool:
    """Whether some assignment of legal placements to ``rest`` (identical instances as
    combinations) passes :func:`valid` next to ``kept``.

    Every assignment is searched, depth first, one instance at a time, with the same test
    :func:`valid` applies (``allows`` for each instance created after the ones before it). A
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
            if allows(geo, occupants, pid, spots[k]) and search(
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
        free = free_spots(geo, occupants, prof)
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
