"""mig-parted's way of changing a layout, as a planner: the baseline ``bench_disruption`` compares with.

Not part of migctl (migctl never wipes a GPU to change one instance); it lives with the
benchmark that measures how much less migctl disrupts. ``tests/test_planner.py`` checks it
too, so the comparison rests on a baseline that does what it says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from migctl.core.geometry import GpuGeometry
from migctl.core.layout import ExistingInstance, Plan, PlanRefusal, TargetInstance
from migctl.core.planner.explain import busy_reason, explain_unfit
from migctl.core.planner.fit import Fitter
from migctl.core.planner.search import check_final, pair_creates
from migctl.core.planner.wants import resolve_wants, shapes_left


def wipe_plan(
    geometry: GpuGeometry,
    current: Sequence[ExistingInstance],
    target: Sequence[TargetInstance],
) -> Plan | PlanRefusal:
    """What NVIDIA mig-parted does, for comparing disruption.

    mig-parted compares counts of MIG device types (GPU-instance profile with its compute
    layout; it knows no placements): when they already equal the target's it changes
    nothing, otherwise it destroys every instance and creates the whole target afresh. Busy
    instances make that refuse (NVML would answer ``IN_USE``). Creates get placements
    from the same search as :func:`migctl.core.planner.plan`, so only disruption differs.
    """
    wants = resolve_wants(geometry, target)
    if isinstance(wants, PlanRefusal):
        return wants
    have = Counter((e.profile_id, tuple(sorted(e.compute))) for e in current)
    want: Counter[tuple[int, tuple[str, ...]]] = Counter()
    for w in wants:
        want[(w.profile.id, w.compute)] += w.count
    if have == want:
        return Plan(keep=tuple(sorted(current, key=lambda e: (e.gi_id, e.placement))))
    fitter = Fitter(geometry)
    shapes = shapes_left(wants, [w.count for w in wants])
    placements = fitter.fit((), shapes)
    if placements is None:
        return PlanRefusal(reason=explain_unfit(geometry, fitter, wants))
    busy = tuple(sorted((e for e in current if e.busy), key=lambda e: (e.gi_id, e.placement)))
    if busy:
        return PlanRefusal(reason=busy_reason(geometry, wants, busy), busy=busy)
    creates = pair_creates(wants, [w.count for w in wants], shapes, placements)
    check_final(geometry, (), creates)
    return Plan(destroy=tuple(sorted(current, key=lambda e: (e.gi_id, e.placement))), create=creates)
