"""Placing target instances around the instances a GPU keeps: a memoised backtracking search.

Pinned shapes first, then larger placements, then profiles with fewer legal placements;
identical instances in increasing start order; pruned by free slices. Instance counts and
the engine pool depend only on the final set, so they are checked once per call. Candidate
placements are tried in the driver's own order of preference (fewest still-possible
placements blocked, lowest start on ties). Pure, no I/O.
"""

from __future__ import annotations

from collections import Counter

from migctl.core.geometry import Engines, GpuGeometry, Placement
from migctl.core.planner.wants import Kept, Shape, bits


class Fitter:
    """Places target shapes around kept instances; memoised per planning call."""

    def __init__(self, geometry: GpuGeometry) -> None:
        self.geometry = geometry
        self.profiles = {p.id: p for p in geometry.profiles}
        self.full = (1 << geometry.span) - 1
        # Every placement of every profile, as bit masks: what a create could block.
        self.all_bits = [bits(p) for prof in geometry.profiles for p in prof.placements]
        self.memo: dict[tuple[Kept, tuple[Shape, ...]], tuple[Placement, ...] | None] = {}

    def fit(self, kept: Kept, shapes: tuple[Shape, ...]) -> tuple[Placement, ...] | None:
        """Placements for ``shapes`` (in their order) next to ``kept``, or ``None`` if none exist.

        ``kept`` and ``shapes`` should be in a canonical order so the memo hits.
        """
        key = (kept, shapes)
        if key not in self.memo:
            self.memo[key] = self._fit(kept, shapes)
        return self.memo[key]

    def _fit(self, kept: Kept, shapes: tuple[Shape, ...]) -> tuple[Placement, ...] | None:
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
            kept_mask |= bits(o.placement)
        still_open = [b for b in self.all_bits if not b & kept_mask]

        def blocked(p: Placement) -> tuple[int, int]:
            # The driver's own preference (mig-hardware.md section 2): the placement that blocks
            # the fewest still-possible placements, lowest start on ties, so small instances
            # leave room for large ones later (a lone 1g goes to slot 6, not slot 0).
            b = bits(p)
            return (sum(1 for q in still_open if q & b), p.start)

        cands: list[list[tuple[Placement, int]]] = []
        for i in order:
            pid, start = shapes[i]
            legal = sorted(profiles[pid].placements, key=blocked)
            if start >= 0:
                legal = [p for p in legal if p.start == start]
            cands.append([(p, bits(p)) for p in legal])
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
            mask |= bits(o.placement)
        if not place(0, mask):
            return None
        result: list[Placement | None] = [None] * len(shapes)
        for k, i in enumerate(order):
            result[i] = chosen[k]
        return tuple(p for p in result if p is not None)
