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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations, product

from migctl.core.geometry import Engines, GiProfile, GpuGeometry, Occupant, Placement
from migctl.core.layout import (
    Create,
    ExistingInstance,
    Plan,
    PlanRefusal,
    Recompute,
    TargetInstance,
    default_compute,
)

__all__ = ["difference", "plan", "wipe_plan"]

# A target instance as far as placing it goes: (profile ID, pinned start or -1).
_Shape = tuple[int, int]
_Kept = tuple[Occupant, ...]
_DESTROY = -1


def _bits(p: Placement) -> int:
    return ((1 << p.size) - 1) << p.start


@dataclass(frozen=True)
class _Want:
    """``count`` identical target instances."""

    profile: GiProfile
    pin: Placement | None
    compute: tuple[str, ...]
    count: int

    @property
    def shape(self) -> _Shape:
        return (self.profile.id, self.pin.start if self.pin is not None else -1)

    def accepts(self, e: ExistingInstance) -> bool:
        """Whether ``e`` has this want's profile and placement (compute aside)."""
        return e.profile_id == self.profile.id and (self.pin is None or self.pin == e.placement)


def _target_compute(profile: GiProfile, t: TargetInstance) -> tuple[str, ...]:
    return default_compute(profile.name) if t.compute is None else tuple(sorted(t.compute))


def _resolve(geometry: GpuGeometry, target: Sequence[TargetInstance]) -> list[_Want] | PlanRefusal:
    """The target's wants, most constrained first; a refusal if it names what the GPU lacks."""
    groups: Counter[tuple[int, Placement | None, tuple[str, ...]]] = Counter()
    problems: list[str] = []
    for t in target:
        prof = geometry.find(t.profile_id)
        if prof is None:
            offered = ", ".join(f"{p.id} ({p.name})" for p in geometry.profiles)
            problems.append(f"this GPU has no GPU-instance profile ID {t.profile_id} (it offers {offered})")
            continue
        if t.placement is not None and t.placement not in prof.placements:
            legal = ", ".join(str(p) for p in prof.placements)
            problems.append(f"{prof.name} cannot be placed at {t.placement} (legal placements: {legal})")
            continue
        groups[(prof.id, t.placement, _target_compute(prof, t))] += 1
    if problems:
        unique = list(dict.fromkeys(problems))
        return PlanRefusal(reason="The target cannot be planned: " + "; ".join(unique) + ".")
    wants = [_Want(geometry.by_id(pid), pin, comp, n) for (pid, pin, comp), n in groups.items()]
    wants.sort(
        key=lambda w: (
            w.pin is None,
            -w.profile.placement_size,
            len(w.profile.placements),
            w.profile.id,
            w.pin.start if w.pin is not None else -1,
            w.compute,
        )
    )
    return wants


class _Fitter:
    """Places target shapes around kept instances; memoised per planning call."""

    def __init__(self, geometry: GpuGeometry) -> None:
        self.geometry = geometry
        self.profiles = {p.id: p for p in geometry.profiles}
        self.full = (1 << geometry.span) - 1
        # Every placement of every profile, as bit masks: what a create could block.
        self.all_bits = [_bits(p) for prof in geometry.profiles for p in prof.placements]
        self.memo: dict[tuple[_Kept, tuple[_Shape, ...]], tuple[Placement, ...] | None] = {}

    def fit(self, kept: _Kept, shapes: tuple[_Shape, ...]) -> tuple[Placement, ...] | None:
        """Placements for ``shapes`` (in their order) next to ``kept``, or ``None`` if none exist.

        ``kept`` and ``shapes`` should be in a canonical order so the memo hits.
        """
        key = (kept, shapes)
        if key not in self.memo:
            self.memo[key] = self._fit(kept, shapes)
        return self.memo[key]

    def _fit(self, kept: _Kept, shapes: tuple[_Shape, ...]) -> tuple[Placement, ...] | None:
        if not shapes:
            return ()
        profiles = self.profiles
        # Instance counts and the engine pool depend only on the final set: check them once.
        counts = Counter(pid for pid, _ in shapes)
        for pid, n in counts.items():
            n += sum(1 for o in kept if o.profile_id == pid)
            if n > profiles[pid].instance_count:
                return None
        totals = self.geometry.engine_totals
        if totals is not None:
            used = Engines()
            for o in kept:
                used = used + profiles[o.profile_id].engines
            for pid, _ in shapes:
                used = used + profiles[pid].engines
            if not used.within(totals):
                return None

        def order_key(i: int) -> tuple[bool, int, int, int, int]:
            pid, start = shapes[i]
            prof = profiles[pid]
            return (start < 0, -prof.placement_size, len(prof.placements), pid, start)

        order = sorted(range(len(shapes)), key=order_key)
        kept_mask = 0
        for o in kept:
            kept_mask |= _bits(o.placement)
        still_open = [b for b in self.all_bits if not b & kept_mask]

        def blocked(p: Placement) -> tuple[int, int]:
            # The driver's own preference (mig-hardware.md section 2): the placement that blocks
            # the fewest still-possible placements, lowest start on ties, so small instances
            # leave room for large ones later (a lone 1g goes to slot 6, not slot 0).
            b = _bits(p)
            return (sum(1 for q in still_open if q & b), p.start)

        cands: list[list[tuple[Placement, int]]] = []
        for i in order:
            pid, start = shapes[i]
            legal = sorted(profiles[pid].placements, key=blocked)
            if start >= 0:
                legal = [p for p in legal if p.start == start]
            cands.append([(p, _bits(p)) for p in legal])
        need = [0] * (len(order) + 1)
        for k in range(len(order) - 1, -1, -1):
            need[k] = need[k + 1] + profiles[shapes[order[k]][0]].placement_size
        # Identical unpinned shapes are interchangeable: place them in increasing start order.
        twin = [
            k > 0 and shapes[order[k]] == shapes[order[k - 1]] and shapes[order[k]][1] < 0 for k in range(len(order))
        ]
        full = self.full
        chosen: list[Placement] = []

        def place(k: int, mask: int) -> bool:
            if k == len(order):
                return True
            if need[k] > (full & ~mask).bit_count():
                return False
            for p, b in cands[k]:
                if mask & b or (twin[k] and p.start <= chosen[k - 1].start):
                    continue
                chosen.append(p)
                if place(k + 1, mask | b):
                    return True
                chosen.pop()
            return False

        mask = 0
        for o in kept:
            mask |= _bits(o.placement)
        if not place(0, mask):
            return None
        result: list[Placement | None] = [None] * len(shapes)
        for k, i in enumerate(order):
            result[i] = chosen[k]
        return tuple(p for p in result if p is not None)


@dataclass(frozen=True)
class _Solution:
    cost: tuple[int, int]  # (destroyed, recomputed)
    order: tuple[int, ...]  # indices into existing, in search order
    decisions: tuple[tuple[int, bool], ...]  # per order position: (want index or -1, recompute)
    left: tuple[int, ...]  # per want: instances still to create
    shapes: tuple[_Shape, ...]
    placements: tuple[Placement, ...]


def _shapes_left(wants: Sequence[_Want], left: Sequence[int]) -> tuple[_Shape, ...]:
    return tuple(sorted(w.shape for w, n in zip(wants, left, strict=True) for _ in range(n)))


def _kept_key(kept: Iterable[Occupant]) -> _Kept:
    return tuple(sorted(kept, key=lambda o: (o.placement, o.profile_id)))


def _search(
    fitter: _Fitter,
    wants: Sequence[_Want],
    existing: Sequence[ExistingInstance],
    locked: frozenset[int],
) -> _Solution | None:
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
        destroy = [] if i in locked else [(_DESTROY, False)]
        options.append(exact + redo + destroy)
    must = [0] * (n + 1)  # lower bound on destroys among positions k.. (cannot match any want)
    for k in range(n - 1, -1, -1):
        must[k] = must[k + 1] + unmatchable[k]
    # Dropping a kept instance never hurts feasibility if it could be re-created where it is.
    monotone = all(e.placement in profiles[e.profile_id].placements for e in existing if e.profile_id in profiles)

    left = [w.count for w in wants]
    kept: list[Occupant] = []
    decisions: list[tuple[int, bool]] = []
    best: _Solution | None = None

    def dfs(k: int, destroyed: int, recomputed: int) -> None:
        nonlocal best
        if best is not None and (destroyed + must[k], recomputed) >= best.cost:
            return
        if monotone or k == n:
            shapes = _shapes_left(wants, left)
            placements = fitter.fit(_kept_key(kept), shapes)
            if placements is None:
                return
            if k == n:
                best = _Solution((destroyed, recomputed), order, tuple(decisions), tuple(left), shapes, placements)
                return
        e = existing[order[k]]
        for w_idx, redo in options[k]:
            if w_idx == _DESTROY:
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


def _creates(
    wants: Sequence[_Want],
    left: Sequence[int],
    shapes: Sequence[_Shape],
    placements: Sequence[Placement],
) -> tuple[Create, ...]:
    """Pair placed shapes with the compute layouts they were asked with; larger first."""
    computes: dict[_Shape, list[tuple[str, ...]]] = {}
    for w, n in zip(wants, left, strict=True):
        computes.setdefault(w.shape, []).extend([w.compute] * n)
    spots: dict[_Shape, list[Placement]] = {}
    for s, p in zip(shapes, placements, strict=True):
        spots.setdefault(s, []).append(p)
    creates = [
        Create(profile_id=s[0], placement=p, compute=c)
        for s, ps in spots.items()
        for p, c in zip(sorted(ps), sorted(computes[s]), strict=True)
    ]
    creates.sort(key=lambda c: (-c.placement.size, c.placement.start, c.profile_id))
    return tuple(creates)


def _spread(
    geometry: GpuGeometry,
    standing: Sequence[ExistingInstance],
    shapes: Sequence[_Shape],
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
    all_bits = [_bits(p) for prof in geometry.profiles for p in prof.placements]
    mask0 = 0
    for e in standing:
        mask0 |= _bits(e.placement)
    for (_, start), p in zip(shapes, found, strict=True):
        if start >= 0:
            mask0 |= _bits(p)
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
            cands = [p for p in profiles[shapes[order[k]][0]].placements if not _bits(p) & mask]
            cands.sort(key=lambda p: (sum(1 for b in open_now if b & _bits(p)), p.start))
            for p in cands:
                rest = best(k + 1, mask | _bits(p))
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


def _check(geometry: GpuGeometry, standing: Iterable[ExistingInstance], creates: Iterable[Create]) -> None:
    """Re-check the final state with the geometry's own rules (a planner bug must not reach NVML)."""
    occupants = [Occupant(e.profile_id, e.placement) for e in standing]
    for c in creates:
        why = geometry.why_not(occupants, geometry.by_id(c.profile_id), c.placement)
        if why is not None:
            raise RuntimeError(f"planner produced an invalid create ({c}): {why}")
        occupants.append(Occupant(c.profile_id, c.placement))


def _to_plan(
    geometry: GpuGeometry,
    wants: Sequence[_Want],
    existing: Sequence[ExistingInstance],
    sol: _Solution,
) -> Plan:
    keep: list[ExistingInstance] = []
    destroy: list[ExistingInstance] = []
    recompute: list[Recompute] = []
    for i, (w_idx, redo) in zip(sol.order, sol.decisions, strict=True):
        e = existing[i]
        if w_idx == _DESTROY:
            destroy.append(e)
        elif redo:
            recompute.append(Recompute(instance=e, compute=wants[w_idx].compute))
        else:
            keep.append(e)
    standing = [*keep, *(r.instance for r in recompute)]
    placements = _spread(geometry, standing, sol.shapes, sol.placements)
    creates = _creates(wants, sol.left, sol.shapes, placements)
    _check(geometry, standing, creates)

    def gi(e: ExistingInstance) -> tuple[int, Placement]:
        return (e.gi_id, e.placement)

    return Plan(
        keep=tuple(sorted(keep, key=gi)),
        destroy=tuple(sorted(destroy, key=gi)),
        recompute=tuple(sorted(recompute, key=lambda r: gi(r.instance))),
        create=creates,
    )


# ----------------------------------------------------------------------------- words


def _name(geometry: GpuGeometry, profile_id: int) -> str:
    prof = geometry.find(profile_id)
    return prof.name if prof is not None else f"profile {profile_id}"


def _describe(geometry: GpuGeometry, e: ExistingInstance) -> str:
    return f"GI {e.gi_id} ({_name(geometry, e.profile_id)} at {e.placement})"


def _fmt_compute(compute: Sequence[str]) -> str:
    if not compute:
        return "no compute instances"
    counts = Counter(compute)
    return ", ".join(f"{n}x {c}" if n > 1 else c for c, n in sorted(counts.items()))


def _fmt_wants(wants: Iterable[tuple[_Want, int]]) -> str:
    parts = []
    for w, n in wants:
        if n:
            at = f" at {w.pin}" if w.pin is not None else ""
            parts.append(f"{n}x {w.profile.name}{at}")
    return ", ".join(parts) if parts else "nothing"


def _explain_unfit(geometry: GpuGeometry, fitter: _Fitter, wants: Sequence[_Want]) -> str:
    """Why the target does not fit even an empty GPU, and what would fit instead."""
    problems: list[str] = []
    per_profile: Counter[int] = Counter()
    for w in wants:
        per_profile[w.profile.id] += w.count
    for pid, n in per_profile.items():
        prof = geometry.by_id(pid)
        if n > prof.instance_count:
            problems.append(f"it asks for {n}x {prof.name} but at most {prof.instance_count} fit")
    pinned = [(w, w.pin) for w in wants if w.pin is not None for _ in range(w.count)]
    for (a, pa), (b, pb) in combinations(pinned, 2):
        if pa.overlaps(pb):
            problems.append(f"{a.profile.name} pinned at {pa} overlaps {b.profile.name} pinned at {pb}")
    totals = geometry.engine_totals
    if totals is not None:
        used = Engines()
        for w in wants:
            for _ in range(w.count):
                used = used + w.profile.engines
        if not used.within(totals):
            over = [
                f"{got} {label} (the GPU has {cap})"
                for label, got, cap in (
                    ("decoders", used.dec, totals.dec),
                    ("encoders", used.enc, totals.enc),
                    ("JPEG engines", used.jpeg, totals.jpeg),
                    ("OFA engines", used.ofa, totals.ofa),
                )
                if got > cap
            ]
            problems.append("its instances need " + ", ".join(over))
    need = sum(w.profile.placement_size * w.count for w in wants)
    if need > geometry.span:
        problems.append(f"it needs {need} memory slices and the GPU has {geometry.span}")
    if not problems:
        problems.append(
            f"its instances ({need} of {geometry.span} memory slices) cannot be arranged on "
            "their profiles' legal placements"
        )
    reason = f"The target ({_fmt_wants((w, w.count) for w in wants)}) does not fit this GPU: "
    reason += "; ".join(problems) + "."

    def fits(counts: Sequence[int]) -> bool:
        return fitter.fit((), _shapes_left(wants, counts)) is not None

    removable: list[str] = []
    for i, w in enumerate(wants):
        counts = [x.count for x in wants]
        counts[i] -= 1
        label = w.profile.name + (f" at {w.pin}" if w.pin is not None else "")
        if fits(counts) and label not in removable:
            removable.append(label)
    if removable:
        reason += " Removing one " + " or one ".join(removable) + " would make it fit."
        return reason
    ranges = [range(min(w.count, w.profile.instance_count), -1, -1) for w in wants]
    subsets = sorted(
        product(*ranges),
        key=lambda c: (
            -sum(n * w.profile.placement_size for n, w in zip(c, wants, strict=True)),
            -sum(c),
            [-n for n in c],
        ),
    )
    for sub in subsets:
        if sum(sub) and fits(sub):
            reason += f" The largest part of it that fits is {_fmt_wants(zip(wants, sub, strict=True))}."
            break
    return reason


def _busy_reason(geometry: GpuGeometry, wants: Sequence[_Want], blockers: Sequence[ExistingInstance]) -> str:
    details = []
    for e in blockers:
        compatible = [w for w in wants if w.accepts(e)]
        have = tuple(sorted(e.compute))
        if not compatible:
            why = "is not part of the target"
        elif all(w.compute != have for w in compatible):
            why = f"has {_fmt_compute(have)} but the target wants {_fmt_compute(compatible[0].compute)}"
        else:
            why = "occupies slices the rest of the target needs"
        details.append(f"{_describe(geometry, e)} {why}")
    noun = "instance" if len(blockers) == 1 else "instances"
    return (
        f"The target cannot be reached without destroying or reconfiguring busy GPU {noun}: "
        + "; ".join(details)
        + ". Processes are running there and migctl never disrupts a busy instance: stop them, "
        "or choose a target that keeps these instances as they are."
    )


def _refuse(
    geometry: GpuGeometry,
    fitter: _Fitter,
    wants: Sequence[_Want],
    existing: Sequence[ExistingInstance],
    locked: frozenset[int],
) -> PlanRefusal:
    if locked and _search(fitter, wants, existing, frozenset()) is not None:
        # Some busy instances are in the way: find the fewest (lowest GI IDs on ties).
        busy = sorted(locked, key=lambda i: (existing[i].gi_id, i))
        for size in range(1, len(busy) + 1):
            for freed in combinations(busy, size):
                if _search(fitter, wants, existing, locked - set(freed)) is not None:
                    blockers = [existing[i] for i in freed]
                    return PlanRefusal(reason=_busy_reason(geometry, wants, blockers), busy=tuple(blockers))
    return PlanRefusal(reason=_explain_unfit(geometry, fitter, wants))


# ----------------------------------------------------------------------------- API


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
    wants = _resolve(geometry, target)
    if isinstance(wants, PlanRefusal):
        return wants
    fitter = _Fitter(geometry)
    existing = list(current)
    locked = frozenset(i for i, e in enumerate(existing) if e.busy)
    sol = _search(fitter, wants, existing, locked)
    if sol is not None:
        return _to_plan(geometry, wants, existing, sol)
    return _refuse(geometry, fitter, wants, existing, locked)


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
    from the same search as :func:`plan`, so only disruption differs.
    """
    wants = _resolve(geometry, target)
    if isinstance(wants, PlanRefusal):
        return wants
    have = Counter((e.profile_id, tuple(sorted(e.compute))) for e in current)
    want: Counter[tuple[int, tuple[str, ...]]] = Counter()
    for w in wants:
        want[(w.profile.id, w.compute)] += w.count
    if have == want:
        return Plan(keep=tuple(sorted(current, key=lambda e: (e.gi_id, e.placement))))
    fitter = _Fitter(geometry)
    shapes = _shapes_left(wants, [w.count for w in wants])
    placements = fitter.fit((), shapes)
    if placements is None:
        return PlanRefusal(reason=_explain_unfit(geometry, fitter, wants))
    busy = tuple(sorted((e for e in current if e.busy), key=lambda e: (e.gi_id, e.placement)))
    if busy:
        return PlanRefusal(reason=_busy_reason(geometry, wants, busy), busy=busy)
    creates = _creates(wants, [w.count for w in wants], shapes, placements)
    _check(geometry, (), creates)
    return Plan(destroy=tuple(sorted(current, key=lambda e: (e.gi_id, e.placement))), create=creates)


def _max_matching(n_left: int, n_right: int, edge: Callable[[int, int], bool]) -> dict[int, int]:
    """Maximum bipartite matching (Kuhn), left index -> right index; deterministic."""
    match_right = [-1] * n_right

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(n_right):
            if j in seen or not edge(i, j):
                continue
            seen.add(j)
            if match_right[j] < 0 or augment(match_right[j], seen):
                match_right[j] = i
                return True
        return False

    for i in range(n_left):
        augment(i, set())
    return {i: j for j, i in enumerate(match_right) if i >= 0}


def difference(
    geometry: GpuGeometry,
    current: Sequence[ExistingInstance],
    target: Sequence[TargetInstance],
) -> list[str]:
    """How ``current`` differs from ``target``, one line per difference; empty if it satisfies it.

    Lines read like ``missing 2x 1g.12gb``, ``unexpected 3g.48gb at 4:4 (GI 2)`` and
    ``compute layout differs on 3g.48gb at 4:4 (GI 2): has ..., target wants ...``.
    """
    lines: list[str] = []
    wanted: list[_Want] = []  # one per target instance (count 1)
    for t in target:
        prof = geometry.find(t.profile_id)
        if prof is None:
            lines.append(f"target profile ID {t.profile_id} is not offered by this GPU")
            continue
        wanted.append(_Want(prof, t.placement, _target_compute(prof, t), 1))
    have = sorted(current, key=lambda e: (e.gi_id, e.placement))
    exact = _max_matching(
        len(have),
        len(wanted),
        lambda i, j: wanted[j].accepts(have[i]) and wanted[j].compute == tuple(sorted(have[i].compute)),
    )
    rest_have = [i for i in range(len(have)) if i not in exact]
    taken = set(exact.values())
    rest_want = [j for j in range(len(wanted)) if j not in taken]
    loose = _max_matching(len(rest_have), len(rest_want), lambda a, b: wanted[rest_want[b]].accepts(have[rest_have[a]]))
    missing: Counter[tuple[str, Placement | None, tuple[str, ...]]] = Counter()
    loose_wants = {rest_want[b] for b in loose.values()}
    for j in rest_want:
        if j not in loose_wants:
            w = wanted[j]
            missing[(w.profile.name, w.pin, w.compute)] += 1
    for (name, pin, compute), n in missing.items():
        at = f" at {pin}" if pin is not None else ""
        with_ci = "" if compute == default_compute(name) else f" with {_fmt_compute(compute)}"
        lines.append(f"missing {n}x {name}{at}{with_ci}")
    for a, i in enumerate(rest_have):
        e = have[i]
        label = f"{_name(geometry, e.profile_id)} at {e.placement} (GI {e.gi_id})"
        if a in loose:
            w = wanted[rest_want[loose[a]]]
            lines.append(
                f"compute layout differs on {label}: has {_fmt_compute(tuple(sorted(e.compute)))}, "
                f"target wants {_fmt_compute(w.compute)}"
            )
        else:
            lines.append(f"unexpected {label}")
    return lines
