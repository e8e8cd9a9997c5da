"""The on-demand placement policy (core/ondemand.py): every answer is a legal create that touches
only idle instances, it finds room whenever room exists, and it keeps room that first-fit wastes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migctl.core.geometry import GiProfile, GpuGeometry, Occupant, Placement
from migctl.core.ondemand import (
    Creation,
    GpuRoom,
    Policy,
    Slot,
    SlotState,
    Want,
    drain_target,
    free_slices_total,
    is_plain,
    place,
    smallest_fitting,
    usable_free_slices,
    wanted_profile,
)
from migctl.device.simulated import model_geometry

GEOS = {key: model_geometry(key) for key in ("h20", "a30", "a100-40gb", "h100-80gb")}
STATES = ("idle", "running", "pinned")


@st.composite
def rooms(draw: st.DrawFn) -> tuple[GpuGeometry, list[GpuRoom]]:
    geo = GEOS[draw(st.sampled_from(sorted(GEOS)))]
    out = []
    for index in range(draw(st.integers(1, 3))):
        occupants: list[Occupant] = []
        slots = []
        for gi in range(draw(st.integers(0, 7))):
            prof = draw(st.sampled_from(geo.profiles))
            free = geo.free_placements(occupants, prof)
            if not free:
                continue
            at = draw(st.sampled_from(free))
            occupants.append(Occupant(prof.id, at))
            slots.append(Slot(gi, prof.id, at, draw(st.sampled_from(STATES)), draw(st.integers(0, 5))))
        out.append(GpuRoom(("node", index), geo, tuple(slots)))
    return geo, out


def by_name(name: str) -> Want:
    return lambda geo: geo.find(name)


def check_creation(room: GpuRoom, made: Creation, profile: GiProfile) -> None:
    """The create is legal next to what stays, and only idle instances go."""
    gone = set(made.destroy)
    assert all(s.state == "idle" for s in room.slots if s.gi_id in gone)
    assert room.geometry.why_not(list(room.occupants(frozenset(gone))), profile, made.placement) is None


@settings(max_examples=150, deadline=None)
@given(rooms(), st.data(), st.booleans())
def test_every_answer_is_a_legal_create_that_spares_busy_instances(
    world: tuple[GpuGeometry, list[GpuRoom]], data: st.DataObject, reshape: bool
) -> None:
    geo, all_rooms = world
    profile = data.draw(st.sampled_from(geo.profiles))
    for policy in ("migctl", "first-fit"):
        made = place(all_rooms, by_name(profile.name), policy, reshape=reshape)
        fits_free = any(geo.free_placements(list(r.occupants()), profile) for r in all_rooms)
        if made is None:
            assert not fits_free  # complete: room on some GPU is always found
            if reshape:  # even removing every idle instance would not make room
                for r in all_rooms:
                    idle = frozenset(s.gi_id for s in r.slots if s.state == "idle")
                    assert not geo.free_placements(list(r.occupants(idle)), profile)
            continue
        room = next(r for r in all_rooms if r.key == made.key)
        assert made.profile_id == profile.id
        check_creation(room, made, profile)
        if fits_free:
            assert made.destroy == ()  # nothing is destroyed while free slices suffice


@settings(max_examples=100, deadline=None)
@given(rooms(), st.data())
def test_a_drain_never_waits_on_a_pinned_instance(
    world: tuple[GpuGeometry, list[GpuRoom]], data: st.DataObject
) -> None:
    geo, all_rooms = world
    profile = data.draw(st.sampled_from(geo.profiles))
    drain = drain_target(all_rooms, by_name(profile.name))
    if drain is None:
        return
    room = next(r for r in all_rooms if r.key == drain.key)
    blockers = {s.gi_id: s for s in room.slots if s.gi_id in drain.blockers}
    assert all(s.state != "pinned" for s in blockers.values())
    assert all(s.gi_id in drain.blockers for s in room.slots if s.placement.overlaps(drain.placement))
    assert geo.can_place(list(room.occupants(frozenset(drain.blockers))), profile, drain.placement)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(GEOS)), st.integers(1, 200 * 1024))
def test_memory_requests_get_the_smallest_plain_profile_that_fits(key: str, memory_mib: int) -> None:
    geo = GEOS[key]
    chosen = smallest_fitting(geo, memory_mib)
    fitting = [p for p in geo.profiles if is_plain(p) and p.memory_mib >= memory_mib]
    if chosen is None:
        assert not fitting
        return
    assert chosen.memory_mib >= memory_mib and is_plain(chosen)
    assert chosen.memory_mib == min(p.memory_mib for p in fitting)
    assert wanted_profile(geo, None, memory_mib) == chosen


def test_migctl_keeps_the_room_first_fit_wastes() -> None:
    """A 1g.12gb then a 4g.48gb (which only starts at slice 0) on one H20."""
    geo = GEOS["h20"]
    results = {}
    for policy in ("migctl", "first-fit"):
        room = GpuRoom("gpu0", geo)
        small = place([room], by_name("1g.12gb"), policy)
        assert small is not None
        room = GpuRoom("gpu0", geo, (Slot(1, small.profile_id, small.placement, "running"),))
        results[policy] = (small.placement, place([room], by_name("4g.48gb"), policy))
    assert results["first-fit"][0] == Placement(0, 1) and results["first-fit"][1] is None
    assert results["migctl"][0] == Placement(6, 1)  # where nvidia-smi would put it
    made = results["migctl"][1]
    assert made is not None and made.placement == Placement(0, 4)


def test_best_fit_packs_small_instances_to_leave_a_whole_gpu() -> None:
    geo = GEOS["h20"]
    one = by_name("1g.12gb")
    used = GpuRoom(("n", 0), geo, (Slot(1, 19, Placement(6, 1), "running"),))
    empty = GpuRoom(("n", 1), geo)
    made = place([empty, used], one, "migctl")
    assert made is not None and made.key == ("n", 0)  # not the empty GPU, whatever the order
    assert place([empty, used], one, "first-fit") == Creation(("n", 1), 19, Placement(0, 1))


def test_reshape_takes_the_fewest_idle_instances_and_prefers_the_lower_ranked() -> None:
    geo = GEOS["h20"]
    slots = tuple(Slot(i, 19, Placement(i, 1), "idle" if i in (0, 1, 4, 5) else "running", rank=10 - i)
                  for i in range(7))
    room = GpuRoom(("n", 0), geo, slots)
    made = place([room], by_name("2g.24gb"), "migctl", reshape=True)
    assert made is not None and len(made.destroy) == 2
    assert set(made.destroy) == {4, 5}  # the pair ranked first (made on demand, idle longest)
    assert place([room], by_name("2g.24gb"), "migctl", reshape=False) is None
    assert free_slices_total([room]) == 1  # slice 7: a 1g.12gb cannot use it


@pytest.mark.parametrize("state", ["running", "pinned"])
def test_busy_instances_are_never_reshaped(state: SlotState) -> None:
    geo = GEOS["h20"]
    room = GpuRoom(("n", 0), geo, (Slot(0, 0, Placement(0, 8), state),))  # one 7g.96gb
    assert place([room], by_name("1g.12gb"), "migctl", reshape=True) is None
    drain = drain_target([room], by_name("1g.12gb"))
    assert (drain is None) == (state == "pinned")


def test_fragmentation_counts_only_slices_the_profile_could_use() -> None:
    geo = GEOS["h20"]
    ones = tuple(Slot(gi, 19, Placement(start, 1), "running") for gi, start in enumerate((1, 3, 5, 6)))
    room = GpuRoom(("n", 0), geo, ones)  # free: 0, 2, 4 and 7; no two of them adjacent
    assert place([room], by_name("2g.24gb"), "migctl") is None
    # 2g.24gb starts at 0, 2 or 4: free slices 0, 2 and 4 would hold one, were they adjacent.
    assert usable_free_slices([room], by_name("2g.24gb")) == (3, 2)
    assert usable_free_slices([room], by_name("1g.12gb")) == (3, 1)  # slice 7 is no use to a 1g.12gb


def test_a_small_instance_keeps_the_aligned_half_a_3g_needs_where_first_fit_strands_it() -> None:
    """GPU 0 has its lower half free (a 3g.48gb fits at 0); GPU 1 is scattered (no 3g fits). A 1g.12gb
    then a 3g.48gb: migctl puts the 1g where it costs no 3g placement and both fit; first-fit puts it
    on GPU 0 (the lowest GPU with room) and the 3g has nowhere to go."""
    geo = GEOS["h20"]
    three, one = geo.by_name("3g.48gb"), geo.by_name("1g.12gb")

    def rooms(extra: dict[int, list[tuple[int, Placement]]]) -> list[GpuRoom]:
        base = {0: [(three.id, Placement(4, 4))],
                1: [(one.id, Placement(0, 1)), (one.id, Placement(2, 1)), (one.id, Placement(5, 1))]}
        return [GpuRoom(("n", g), geo, tuple(Slot(i, pid, at, "running")
                                             for i, (pid, at) in enumerate(base[g] + extra.get(g, []))))
                for g in (0, 1)]

    cases: tuple[tuple[Policy, bool], ...] = (("migctl", True), ("first-fit", False))
    for policy, fits in cases:
        small = place(rooms({}), by_name("1g.12gb"), policy)
        assert small is not None
        gpu = small.key[1]  # type: ignore[index]
        assert gpu == (1 if policy == "migctl" else 0)
        after = rooms({gpu: [(small.profile_id, small.placement)]})
        assert (place(after, by_name("3g.48gb"), policy) is not None) == fits


@settings(max_examples=100, deadline=None)
@given(rooms(), st.data())
def test_migctl_never_costs_a_largest_profile_placement_that_another_gpu_would_keep(
    world: tuple[GpuGeometry, list[GpuRoom]], data: st.DataObject
) -> None:
    """If the chosen create makes a placement of the largest profile impossible, so would a create
    of that profile on every other GPU with room (by the planner's own placement there)."""
    geo, all_rooms = world
    profile = data.draw(st.sampled_from(geo.profiles))
    made = place(all_rooms, by_name(profile.name), "migctl")
    if made is None:
        return
    largest = max(geo.profiles, key=lambda p: p.placement_size)

    def keeps_largest(room: GpuRoom, at: Placement) -> bool:
        before = list(room.occupants())
        return len(geo.free_placements([*before, Occupant(profile.id, at)], largest)) == len(
            geo.free_placements(before, largest))

    chosen = next(r for r in all_rooms if r.key == made.key)
    if keeps_largest(chosen, made.placement):
        return
    for room in all_rooms:
        alone = place([room], by_name(profile.name), "migctl")  # the planner's placement on that GPU
        assert alone is None or not keeps_largest(room, alone.placement)


def placements_left(geo: GpuGeometry, gpus: list[list[Occupant]]) -> tuple[int, ...]:
    """Over every GPU, how many distinct starts each placement size still has free, largest size first
    (computed here from the geometry alone, not with the policy's own cost)."""
    sizes = sorted({p.placement_size for p in geo.profiles}, reverse=True)
    return tuple(
        sum(len({at.start for p in geo.profiles if p.placement_size == size for at in geo.free_placements(occ, p)})
            for occ in gpus)
        for size in sizes
    )


@settings(max_examples=300, deadline=None)
@given(rooms(), st.data())
def test_migctl_leaves_room_for_the_largest_profiles_at_least_as_well_as_first_fit(
    world: tuple[GpuGeometry, list[GpuRoom]], data: st.DataObject
) -> None:
    """Random free-slice states: after migctl's create the GPUs keep, size by size from the largest,
    at least as many free placements as after first-fit's; and no instance is touched."""
    geo, all_rooms = world
    profile = data.draw(st.sampled_from(geo.profiles))
    after: dict[Policy, tuple[int, ...]] = {}
    for policy in ("migctl", "first-fit"):
        made = place(all_rooms, by_name(profile.name), policy)
        if made is None:
            assert not any(geo.free_placements(list(r.occupants()), profile) for r in all_rooms)
            return
        assert made.destroy == ()
        gpus = [list(r.occupants()) + ([Occupant(made.profile_id, made.placement)] if r.key == made.key else [])
                for r in all_rooms]
        for r in all_rooms:
            if r.key == made.key:  # the new instance overlaps nothing that exists
                assert not any(s.placement.overlaps(made.placement) for s in r.slots)
        after[policy] = placements_left(geo, gpus)
    assert after["migctl"] >= after["first-fit"]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(GEOS)), st.integers(1, 3), st.data())
def test_a_stream_of_requests_never_touches_a_busy_instance(key: str, n_gpus: int, data: st.DataObject) -> None:
    """Requests arrive and work ends in random order; each answer (reshaping idle instances when
    needed) destroys only idle ones and creates where nothing else stays."""
    geo = GEOS[key]
    gpus: dict[int, list[Slot]] = {g: [] for g in range(n_gpus)}
    next_gi = 0
    for _ in range(data.draw(st.integers(1, 25))):
        if any(gpus.values()) and data.draw(st.booleans()):  # some work ends or starts on an instance
            g = data.draw(st.sampled_from([g for g, s in gpus.items() if s]))
            i = data.draw(st.integers(0, len(gpus[g]) - 1))
            old = gpus[g][i]
            gpus[g][i] = Slot(old.gi_id, old.profile_id, old.placement, data.draw(st.sampled_from(STATES)))
            continue
        profile = data.draw(st.sampled_from([p for p in geo.profiles if is_plain(p)]))
        rooms_now = [GpuRoom(("n", g), geo, tuple(s)) for g, s in gpus.items()]
        made = place(rooms_now, by_name(profile.name), "migctl", reshape=True)
        if made is None:
            continue
        g = made.key[1]  # type: ignore[index]
        busy = {s.gi_id for s in gpus[g] if s.state != "idle"}
        assert not busy & set(made.destroy)
        kept = [s for s in gpus[g] if s.gi_id not in made.destroy]
        assert not any(s.placement.overlaps(made.placement) for s in kept)
        gpus[g] = [*kept, Slot(next_gi, made.profile_id, made.placement, "running")]
        next_gi += 1
