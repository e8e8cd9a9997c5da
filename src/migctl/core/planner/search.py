"""The search for the least disruptive plan, and turning its solution into a :class:`Plan`.

Depth-first over the existing instances (busy ones first, then by GI ID), each one either
kept as it is, kept with new compute instances (never a busy one), or destroyed, in that
order of preference; branch and bound on ``(destroyed, recomputed)``; at every node
:class:`~migctl.core.planner.fit.Fitter` places what is still missing. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from migctl.core.geometry import GpuGeometry, Occupant, Placement
from migctl.core.layout import Create, ExistingInstance, Plan, Recompute
from migctl.core.planner.fit import Fitter
from migctl.core.planner.wants import Shape, Want, bits, kept_key, shapes_left

DESTROY = -1


@dataclass(frozen=True)
class Solution:
    cost: tuple[int, int]  # (destroyed, recomputed)
    order: tuple[int, ...]  # indices into existing, in search order
    decisions: tuple[tuple[int, bool], ...]  # per order position: (want index or -1, recompute)
    left: tuple[int, ...]  # per want: instances still to create
    shapes: tuple[Shape, ...]
    placements: tuple[Placement, ...]


def search(
    fitter: Fitter,
    wants: Sequence[Want],
    existing: Sequence[ExistingInstance],
    locked: frozenset[int],
) -> Solution | None:
    """The least disruptive solution; instances at indices in ``locked`` must stay as they are."""
    profiles = fitter.profiles
    n = len(existing)
    order = tuple(
        sorted(
            range(n),
            key=lambda i: (i not in locked, existing[i].gi_id, existing[i].placement, i),
        )
    )
    options: list[list[tuple[int, bool]]] = []
    unmatchable: list[bool] = []
    for i in order:
        e = existing[i]
        exact: list[tuple[int, bool]] = []
        redo: list[tuple[int, bool]] = []
        if e.profile_id in profiles:
            have = tuple(sorted(e.compute))
            for w_idx, w in enumerate(wants):
                if not w.accepts(e):
                    continue
                if w.compute == have:
                    exact.append((w_idx, False))
                elif i not in locked:
                    redo.append((w_idx, True))
        unmatchable.append(not (exact or redo))
        destroy = [] if i in locked else [(DESTROY, False)]
        options.append(exact + redo + destroy)
    must = [0] * (n + 1)  # lower bound on destroys among positions k.. (cannot match any want)
    for k in range(n - 1, -1, -1):
        must[k] = must[k + 1] + unmatchable[k]
    # Dropping a kept instance never hurts feasibility if it could be re-created where it is.
    monotone = all(e.placement in profiles[e.profile_id].placements for e in existing if e.profile_id in profiles)

    left = [w.count for w in wants]
    kept: list[Occupant] = []
    decisions: list[tuple[int, bool]] = []
    best: Solution | None = None

    def dfs(k: int, destroyed: int, recomputed: int) -> None:
        nonlocal best
        if best is not None and (destroyed + must[k], recomputed) >= best.cost:
            return
        if monotone or k == n:
            shapes = shapes_left(wants, left)
            placements = fitter.fit(kept_key(kept), shapes)
            if placements is None:
                return
            if k == n:
                best = Solution((destroyed, recomputed), order, tuple(decisions), tuple(left), shapes, placements)
                return
        e = existing[order[k]]
        for w_idx, redo in options[k]:
            if w_idx == DESTROY:
                decisions.append((w_idx, redo))
                dfs(k + 1, destroyed + 1, recomputed)
                decisions.pop()
                continue
            if left[w_idx] == 0:
                continue
            left[w_idx] -= 1
            kept.append(Occupant(e.profile_id, e.placement))
            decisions.append((w_idx, redo))
            dfs(k + 1, destroyed, recomputed + redo)
            decisions.pop()
            kept.pop()
            left[w_idx] += 1

    dfs(0, 0, 0)
    return best


def pair_creates(
    wants: Sequence[Want],
    left: Sequence[int],
    shapes: Sequence[Shape],
    placements: Sequence[Placement],
) -> tuple[Create, ...]:
    """Pair placed shapes with the compute layouts they were asked with; larger first."""
    computes: dict[Shape, list[tuple[str, ...]]] = {}
    for w, n in zip(wants, left, strict=True):
        computes.setdefault(w.shape, []).extend([w.compute] * n)
    spots: dict[Shape, list[Placement]] = {}
    for s, p in zip(shapes, placements, strict=True):
        spots.setdefault(s, []).append(p)
    creates = [
        Create(profile_id=s[0], placement=p, compute=c)
        for s, ps in spots.items()
        for p, c in zip(sorted(ps), sorted(computes[s]), strict=True)
    ]
    creates.sort(key=lambda c: (-c.placement.size, c.placement.start, c.profile_id))
    return tuple(creates)


def spread(
    geometry: GpuGeometry,
    standing: Sequence[ExistingInstance],
    shapes: Sequence[Shape],
    found: Sequence[Placement],
) -> tuple[Placement, ...]:
    """Re-place the unpinned creates so the final layout leaves the most room for later ones.

    Among every way to place them around ``standing``, choose the one after which the most
    placements of any profile are still free; ties go to the driver's own step-by-step choice
    (fewest still-possible placements blocked, then lowest start). So ``create 2g 1g 1g`` on an
    empty H100 leaves a 3g placement open, and one 3g goes to 4:4 as ``nvidia-smi mig -cgi 9``
    puts it. Only positions change: instance counts and the engine pool depend on the final
    set alone, so the result is as valid as ``found``. Bit masks keep this to microseconds.
    """
    profiles = {p.id: p for p in geometry.profiles}
    all_bits = [bits(p) for prof in geometry.profiles for p in prof.placements]
    mask0 = 0
    for e in standing:
        mask0 |= bits(e.placement)
    for (_, start), p in zip(shapes, found, strict=True):
        if start >= 0:
            mask0 |= bits(p)
    free_idx = [i for i, (_, start) in enumerate(shapes) if start < 0]
    order = sorted(free_idx, key=lambda i: (-profiles[shapes[i][0]].placement_size, shapes[i][0]))
    memo: dict[tuple[int, int], tuple[int, tuple[Placement, ...]] | None] = {}

    def best(k: int, mask: int) -> tuple[int, tuple[Placement, ...]] | None:
        key = (k, mask)
        if key in memo:
            return memo[key]
        if k == len(order):
            result: tuple[int, tuple[Placement, ...]] | None = (sum(1 for b in all_bits if not b & mask), ())
        else:
            result = None
            open_now = [b for b in all_bits if not b & mask]
            cands = [p for p in profiles[shapes[order[k]][0]].placements if not bits(p) & mask]
            cands.sort(key=lambda p: (sum(1 for b in open_now if b & bits(p)), p.start))
            for p in cands:
                rest = best(k + 1, mask | bits(p))
                if rest is not None and (result is None or rest[0] > result[0]):
                    result = (rest[0], (p, *rest[1]))
        memo[key] = result
        return result

    chosen = best(0, mask0)
    if chosen is None:  # cannot happen: ``found`` is one such placement
        return tuple(found)
    out = list(found)
    for i, p in zip(order, chosen[1], strict=True):
        out[i] = p
    return tuple(out)


def check_final(geometry: GpuGeometry, standing: Iterable[ExistingInstance], creates: Iterable[Create]) -> None:
    """Re-check the final state with the geometry's own rules (a planner bug must not reach NVML)."""
    occupants = [Occupant(e.profile_id, e.placement) for e in standing]
    for c in creates:
        why = geometry.why_not(occupants, geometry.by_id(c.profile_id), c.placement)
        if why is not None:
            raise RuntimeError(f"planner produced an invalid create ({c}): {why}")
        occupants.append(Occupant(c.profile_id, c.placement))


def to_plan(
    geometry: GpuGeometry,
    wants: Sequence[Want],
    existing: Sequence[ExistingInstance],
    sol: Solution,
) -> Plan:
    keep: list[ExistingInstance] = []
    destroy: list[ExistingInstance] = []
    recompute: list[Recompute] = []
    for i, (w_idx, redo) in zip(sol.order, sol.decisions, strict=True):
        e = existing[i]
        if w_idx == DESTROY:
            destroy.append(e)
        elif redo:
            recompute.append(Recompute(instance=e, compute=wants[w_idx].compute))
        else:
            keep.append(e)
    standing = [*keep, *(r.instance for r in recompute)]
    placements = spread(geometry, standing, sol.shapes, sol.placements)
    made = pair_creates(wants, sol.left, sol.shapes, placements)
    check_final(geometry, standing, made)

    def gi(e: ExistingInstance) -> tuple[int, Placement]:
        return (e.gi_id, e.placement)

    return Plan(
        keep=tuple(sorted(keep, key=gi)),
        destroy=tuple(sorted(destroy, key=gi)),
        recompute=tuple(sorted(recompute, key=lambda r: gi(r.instance))),
        create=made,
    )
