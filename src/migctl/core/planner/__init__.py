"""Plan the least disruptive way from the GPU instances a GPU has to the ones a target asks for.

Pure Python, no I/O. :func:`plan` is complete (if any valid final configuration exists it
returns a :class:`Plan`) and minimal (it destroys the fewest existing instances, then replaces
the compute instances of the fewest). Every create carries an explicit placement, because
migctl creates through ``nvmlDeviceCreateGpuInstanceWithPlacement``; so, unlike
``nvidia-smi mig -cgi``, the result never depends on creation order.

Algorithm (see ``docs/planner.md``):

1. Group the target into *wants*: identical target instances (profile, pinned placement,
   compute layout) with a count.
2. Depth-first search over the existing instances (busy ones first, then by GI ID), each one
   either kept as it is (it satisfies a want), kept with new compute instances (same profile
   and placement, different compute layout; never for a busy instance), or destroyed, in that
   order of preference; branch and bound on ``(destroyed, recomputed)``.
3. At every node, a memoised backtracking search places the wants not yet covered around the
   instances kept so far (pinned first, then larger placements, then profiles with fewer
   legal placements; identical instances in increasing start order; pruned by free slices).
   Keeping fewer instances never makes a layout infeasible (a kept instance could be
   re-created where it is), so a node whose kept set already leaves no room is cut off.

The first optimal leaf in that order wins, which makes ties deterministic: among plans that
destroy and recompute equally few, the one that keeps lower GI IDs (compared in ascending GI
order) wins, and creates go to the lowest legal start that still lets the rest fit.

Modules: :mod:`.wants` (the target, grouped), :mod:`.fit` (placing what is missing, step 3),
:mod:`.search` (the least disruptive solution, step 2, and the plan made of it),
:mod:`.explain` (why a target is refused, in words) and :mod:`.diff` (``migctl assert``'s
differences). ``from migctl.core.planner import plan, difference, fits`` is the whole public API.
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.core.geometry import GpuGeometry
from migctl.core.layout import ExistingInstance, Plan, PlanRefusal, TargetInstance
from migctl.core.planner.diff import difference
from migctl.core.planner.explain import refuse
from migctl.core.planner.fit import Fitter
from migctl.core.planner.search import search, to_plan
from migctl.core.planner.wants import resolve_wants, shapes_left

__all__ = ["difference", "fits", "plan"]


def fits(geometry: GpuGeometry, target: Sequence[TargetInstance]) -> bool:
    """Whether ``target`` fits an empty GPU of ``geometry``: :func:`plan` from nothing, without
    making the plan or explaining a refusal (so cheap enough to ask many times)."""
    wants = resolve_wants(geometry, target)
    if isinstance(wants, PlanRefusal):
        return False
    return Fitter(geometry).fit((), shapes_left(wants, [w.count for w in wants])) is not None


def plan(
    geometry: GpuGeometry,
    current: Sequence[ExistingInstance],
    target: Sequence[TargetInstance],
) -> Plan | PlanRefusal:
    """The least disruptive plan from ``current`` to ``target`` on a GPU of ``geometry``.

    Returns a :class:`Plan` whenever some valid final configuration exists: it destroys the
    fewest existing instances, then recomputes the fewest, never touches a busy one, and
    places every create explicitly (creates sorted larger placements first, then by start).
    Otherwise returns a :class:`PlanRefusal` saying why; its ``busy`` names the busy
    instances that would have to be disrupted when they are the only obstacle.
    """
    wants = resolve_wants(geometry, target)
    if isinstance(wants, PlanRefusal):
        return wants
    fitter = Fitter(geometry)
    existing = list(current)
    locked = frozenset(i for i, e in enumerate(existing) if e.busy)
    sol = search(fitter, wants, existing, locked)
    if sol is not None:
        return to_plan(geometry, wants, existing, sol)
    return refuse(geometry, fitter, wants, existing, locked)
