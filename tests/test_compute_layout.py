"""Where compute instances go inside a GPU instance (``core.compute.compute_layout``).

Checked against a brute force written here: every assignment of legal placements to the
requested compute instances, judged by the rules NVIDIA documents for compute instances
(no overlap, per-profile instance counts, no more compute slices than the GPU instance has).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.core.compute import CiProfile, compute_layout
from migctl.core.geometry import Occupant, Placement


def _profile(pid: int, c: int, slices: int, count: int) -> CiProfile:
    """A ``{c}c`` profile in a GPU instance of ``slices`` compute slices, placed on multiples of ``c``."""
    starts = range(0, slices - c + 1, c) if c > 1 else range(slices)
    return CiProfile(pid, f"{c}c.{slices}g", c, count, tuple(Placement(s, c) for s in starts))


# A 7g GPU instance (H100/H20), as nvidia-smi mig -lcip lists it: 1c x7, 2c x3, 3c x2, 4c x1, 7c x1.
SEVEN = [_profile(0, 1, 7, 7), _profile(1, 2, 7, 3), _profile(2, 3, 7, 2), _profile(3, 4, 7, 1)]
SEVEN.append(CiProfile(4, "7g", 7, 1, (Placement(0, 7),)))
# A 3g GPU instance: 1c x3, 2c x1 (at 0), 3c x1.
THREE = [
    _profile(0, 1, 3, 3),
    CiProfile(1, "2c.3g", 2, 1, (Placement(0, 2),)),
    CiProfile(2, "3g", 3, 1, (Placement(0, 3),)),
]
SHAPES = {7: SEVEN, 3: THREE}


def valid(slices: int, profiles: Sequence[CiProfile], state: Sequence[Occupant]) -> bool:
    by_id = {p.id: p for p in profiles}
    for a, b in itertools.combinations(state, 2):
        (a0, a1), (b0, b1) = (a.placement.start, a.placement.size), (b.placement.start, b.placement.size)
        if a0 < b0 + b1 and b0 < a0 + a1:
            return False
    counts = Counter(o.profile_id for o in state)
    if any(n > by_id[pid].instance_count for pid, n in counts.items()):
        return False
    if any(o.placement not in by_id[o.profile_id].placements for o in state):
        return False
    return sum(by_id[o.profile_id].slice_count for o in state) <= slices


def brute_force(
    slices: int, profiles: Sequence[CiProfile], existing: Sequence[Occupant], wanted: Sequence[CiProfile]
) -> bool:
    for choice in itertools.product(*(w.placements for w in wanted)):
        if valid(slices, profiles, [*existing, *(Occupant(w.id, p) for w, p in zip(wanted, choice, strict=True))]):
            return True
    return False


@st.composite
def requests(draw: st.DrawFn) -> tuple[int, list[CiProfile], list[Occupant], list[CiProfile]]:
    slices = draw(st.sampled_from(sorted(SHAPES)))
    profiles = SHAPES[slices]
    existing: list[Occupant] = []
    for prof in draw(st.lists(st.sampled_from(profiles), max_size=3)):
        spot = draw(st.sampled_from(prof.placements))
        candidate = [*existing, Occupant(prof.id, spot)]
        if valid(slices, profiles, candidate):
            existing = candidate
    wanted = draw(st.lists(st.sampled_from(profiles), min_size=1, max_size=4))
    return slices, profiles, existing, wanted


@settings(max_examples=300, deadline=None)
@given(requests())
def test_a_request_is_placed_exactly_when_some_placement_fits(
    case: tuple[int, list[CiProfile], list[Occupant], list[CiProfile]],
) -> None:
    slices, profiles, existing, wanted = case
    found = compute_layout(slices, profiles, existing, wanted)
    assert (found is not None) == brute_force(slices, profiles, existing, wanted)
    if found is not None:
        assert len(found) == len(wanted)
        assert all(p in w.placements for w, p in zip(wanted, found, strict=True))
        assert valid(slices, profiles, [*existing, *(Occupant(w.id, p) for w, p in zip(wanted, found, strict=True))])


def test_three_1c_in_a_3g_and_what_no_longer_fits() -> None:
    one = THREE[0]
    assert compute_layout(3, THREE, [], [one, one, one]) == [Placement(0, 1), Placement(1, 1), Placement(2, 1)]
    assert compute_layout(3, THREE, [Occupant(one.id, Placement(1, 1))], [THREE[1]]) is None  # 2c needs 0:2
    assert compute_layout(3, THREE, [Occupant(one.id, Placement(2, 1))], [THREE[1]]) == [Placement(0, 2)]
    assert compute_layout(3, THREE, [], [one] * 4) is None
