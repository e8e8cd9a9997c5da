"""What the planner tests share: GPU geometries built by hand (from the reference tables,
independent of the catalog) or read from the catalog, and the checks every plan must pass."""

from __future__ import annotations

from collections.abc import Sequence

from migctl.core.geometry import Engines, GiProfile, GpuGeometry, Occupant, Placement
from migctl.core.layout import (
    ExistingInstance,
    Plan,
    TargetInstance,
    default_compute,
)

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


# Built by hand from docs/reference/gpu-profile-tables.md, independent of the catalog.
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
    """Every MIG-capable model of the simulator's catalog, as NVML reports it."""
    from migctl.device.simulated import model_geometry
    from migctl.sim.catalog import models

    return {key: model_geometry(key) for key, m in models().items() if m.mig_capable}


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


ENGINE_KINDS = ("dec", "enc", "jpeg", "ofa")


def allows(geo: GpuGeometry, occupants: Sequence[Occupant], pid: int, placement: Placement) -> bool:
    """Whether the hardware lets one more ``pid`` instance go at ``placement`` next to ``occupants``.

    Written independently of ``migctl.core``'s rules: a legal ``-lgipp`` placement, no memory
    slice taken twice, the profile's instance count, and every media-engine kind within the pool.
    """
    prof = next(p for p in geo.profiles if p.id == pid)
    if (placement.start, placement.size) not in {(p.start, p.size) for p in prof.placements}:
        return False
    taken = {s for o in occupants for s in range(o.placement.start, o.placement.start + o.placement.size)}
    if taken & set(range(placement.start, placement.start + placement.size)):
        return False
    if sum(1 for o in occupants if o.profile_id == pid) + 1 > prof.instance_count:
        return False
    if geo.engine_totals is not None:
        by_id = {p.id: p for p in geo.profiles}
        for kind in ENGINE_KINDS:
            used = sum(getattr(by_id[o.profile_id].engines, kind) for o in occupants) + getattr(prof.engines, kind)
            if used > getattr(geo.engine_totals, kind):
                return False
    return True


def free_spots(geo: GpuGeometry, occupants: Sequence[Occupant], prof: GiProfile) -> list[Placement]:
    return [p for p in prof.placements if allows(geo, occupants, prof.id, p)]


def valid(geo: GpuGeometry, kept: Sequence[Occupant], creates: Sequence[tuple[int, Placement]]) -> bool:
    """Whether creating ``creates`` one by one next to ``kept`` is allowed each time."""
    occupants = list(kept)
    for pid, placement in creates:
        if not allows(geo, occupants, pid, placement):
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
