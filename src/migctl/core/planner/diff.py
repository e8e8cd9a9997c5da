"""How a GPU's instances differ from a target, one line per difference (``migctl assert``).

Existing instances are matched to target instances twice (a maximum bipartite matching):
first exactly (profile, placement and compute layout), then loosely (profile and placement),
so a compute-layout difference is reported as such rather than as missing plus unexpected.
Pure, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from migctl.core.geometry import GpuGeometry, Placement
from migctl.core.layout import ExistingInstance, TargetInstance, default_compute
from migctl.core.planner.explain import fmt_compute, profile_name
from migctl.core.planner.wants import Want, target_compute


def max_matching(n_left: int, n_right: int, edge: Callable[[int, int], bool]) -> dict[int, int]:
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
    wanted: list[Want] = []  # one per target instance (count 1)
    for t in target:
        prof = geometry.find(t.profile_id)
        if prof is None:
            lines.append(f"target profile ID {t.profile_id} is not offered by this GPU")
            continue
        wanted.append(Want(prof, t.placement, target_compute(prof, t), 1))
    have = sorted(current, key=lambda e: (e.gi_id, e.placement))
    exact = max_matching(
        len(have),
        len(wanted),
        lambda i, j: wanted[j].accepts(have[i]) and wanted[j].compute == tuple(sorted(have[i].compute)),
    )
    rest_have = [i for i in range(len(have)) if i not in exact]
    taken = set(exact.values())
    rest_want = [j for j in range(len(wanted)) if j not in taken]
    loose = max_matching(len(rest_have), len(rest_want), lambda a, b: wanted[rest_want[b]].accepts(have[rest_have[a]]))
    missing: Counter[tuple[str, Placement | None, tuple[str, ...]]] = Counter()
    loose_wants = {rest_want[b] for b in loose.values()}
    for j in rest_want:
        if j not in loose_wants:
            w = wanted[j]
            missing[(w.profile.name, w.pin, w.compute)] += 1
    for (name, pin, compute), n in missing.items():
        at = f" at {pin}" if pin is not None else ""
        with_ci = "" if compute == default_compute(name) else f" with {fmt_compute(compute)}"
        lines.append(f"missing {n}x {name}{at}{with_ci}")
    for a, i in enumerate(rest_have):
        e = have[i]
        label = f"{profile_name(geometry, e.profile_id)} at {e.placement} (GI {e.gi_id})"
        if a in loose:
            w = wanted[rest_want[loose[a]]]
            lines.append(
                f"compute layout differs on {label}: has {fmt_compute(tuple(sorted(e.compute)))}, "
                f"target wants {fmt_compute(w.compute)}"
            )
        else:
            lines.append(f"unexpected {label}")
    return lines
