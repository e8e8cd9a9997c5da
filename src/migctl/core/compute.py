"""Where compute instances go inside one GPU instance: a small backtracking search.

A GPU instance has ``slices`` compute slices. Each compute-instance profile has legal
placements within them, an instance count, and a size in slices; compute instances never
overlap and their sizes never add up to more than the GPU instance has. migctl creates
compute instances at explicit placements (``...CreateComputeInstanceWithPlacement``), so a
request that fits is never refused because of the order it was made in.

Pure, no I/O: the operations layer builds :class:`CiProfile` values from what NVML reports.

>>> one = CiProfile(0, "1c.3g.48gb", slice_count=1, instance_count=3,
...                 placements=(Placement(0, 1), Placement(1, 1), Placement(2, 1)))
>>> compute_layout(3, [one], [], [one, one])
[Placement(start=0, size=1), Placement(start=1, size=1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from migctl.core.geometry import Occupant, Placement


@dataclass(frozen=True)
class CiProfile:
    """A compute-instance profile (a row of ``nvidia-smi mig -lcip``) as far as placing goes."""

    id: int
    name: str
    slice_count: int
    instance_count: int
    placements: tuple[Placement, ...]


def compute_layout(
    slices: int,
    profiles: Sequence[CiProfile],
    existing: Sequence[Occupant],
    wanted: Sequence[CiProfile],
) -> list[Placement] | None:
    """Placements for the ``wanted`` compute instances next to the ``existing`` ones, or ``None``.

    ``slices`` is the GPU instance's compute-slice count, ``profiles`` every compute-instance
    profile it offers (for the sizes and counts of the existing ones). The result lists one
    placement per entry of ``wanted``, in its order. Larger profiles are placed first, each at
    its first legal placement that leaves the rest a way to fit.
    """
    by_id = {p.id: p for p in profiles}
    for w in wanted:
        by_id.setdefault(w.id, w)
    order = sorted(range(len(wanted)), key=lambda i: -wanted[i].slice_count)
    result: dict[int, Placement] = {}

    def fits(pid: int, where: Placement, state: list[Occupant]) -> bool:
        if any(where.overlaps(o.placement) for o in state):
            return False
        if sum(1 for o in state if o.profile_id == pid) >= by_id[pid].instance_count:
            return False
        return sum(by_id[o.profile_id].slice_count for o in state) + by_id[pid].slice_count <= slices

    def search(k: int, state: list[Occupant]) -> bool:
        if k == len(order):
            return True
        prof = wanted[order[k]]
        for where in prof.placements:
            if fits(prof.id, where, state):
                result[order[k]] = where
                if search(k + 1, [*state, Occupant(prof.id, where)]):
                    return True
        return False

    return [result[i] for i in range(len(wanted))] if search(0, list(existing)) else None
