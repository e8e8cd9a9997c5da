"""Why a target cannot be planned, in words a user can act on.

A target that does not fit even an empty GPU is explained (too many of a profile, pinned
instances that overlap, the media-engine pool, slices) with what would fit instead; a target
blocked only by busy instances names the fewest of them that are in the way. Pure, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import combinations, product

from migctl.core.geometry import Engines, GpuGeometry
from migctl.core.layout import ExistingInstance, PlanRefusal
from migctl.core.planner.fit import Fitter
from migctl.core.planner.search import search
from migctl.core.planner.wants import Want, shapes_left


def profile_name(geometry: GpuGeometry, profile_id: int) -> str:
    prof = geometry.find(profile_id)
    return prof.name if prof is not None else f"profile {profile_id}"


def describe(geometry: GpuGeometry, e: ExistingInstance) -> str:
    return f"GI {e.gi_id} ({profile_name(geometry, e.profile_id)} at {e.placement})"


def fmt_compute(compute: Sequence[str]) -> str:
    if not compute:
        return "no compute instances"
    counts = Counter(compute)
    return ", ".join(f"{n}x {c}" if n > 1 else c for c, n in sorted(counts.items()))


def fmt_wants(wants: Iterable[tuple[Want, int]]) -> str:
    parts = []
    for w, n in wants:
        if n:
            at = f" at {w.pin}" if w.pin is not None else ""
            parts.append(f"{n}x {w.profile.name}{at}")
    return ", ".join(parts) if parts else "nothing"


def engine_overuse(geometry: GpuGeometry, profile_ids: Iterable[int]) -> list[tuple[str, str]]:
    """Which media engines instances of ``profile_ids`` (one entry per instance) need more of than
    the GPU's shared pool has: ``(Engines field, words)`` such as ``("ofa", "2 OFA engines (the
    GPU has 1)")``; empty when they fit or the pool is unknown."""
    totals = geometry.engine_totals
    if totals is None:
        return []
    used = Engines()
    for pid in profile_ids:
        used = used + geometry.by_id(pid).engines
    labels = {"dec": "decoders", "enc": "encoders", "jpeg": "JPEG engines", "ofa": "OFA engines"}
    return [
        (kind, f"{getattr(used, kind)} {label} (the GPU has {getattr(totals, kind)})")
        for kind, label in labels.items()
        if getattr(used, kind) > getattr(totals, kind)
    ]


def explain_unfit(geometry: GpuGeometry, fitter: Fitter, wants: Sequence[Want]) -> str:
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
    over = engine_overuse(geometry, [w.profile.id for w in wants for _ in range(w.count)])
    if over:
        problems.append("its instances need " + ", ".join(text for _, text in over))
    need = sum(w.profile.placement_size * w.count for w in wants)
    if need > geometry.span:
        problems.append(f"it needs {need} memory slices and the GPU has {geometry.span}")
    if not problems:
        problems.append(
            f"its instances ({need} of {geometry.span} memory slices) cannot be arranged on "
            "their profiles' legal placements"
        )
    reason = f"The target ({fmt_wants((w, w.count) for w in wants)}) does not fit this GPU: "
    reason += "; ".join(problems) + "."

    def fits(counts: Sequence[int]) -> bool:
        return fitter.fit((), shapes_left(wants, counts)) is not None

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
            reason += f" The largest part of it that fits is {fmt_wants(zip(wants, sub, strict=True))}."
            break
    return reason


def busy_reason(geometry: GpuGeometry, wants: Sequence[Want], blockers: Sequence[ExistingInstance]) -> str:
    details = []
    for e in blockers:
        compatible = [w for w in wants if w.accepts(e)]
        have = tuple(sorted(e.compute))
        if not compatible:
            why = "is not part of the target"
        elif all(w.compute != have for w in compatible):
            why = f"has {fmt_compute(have)} but the target wants {fmt_compute(compatible[0].compute)}"
        else:
            why = "occupies slices the rest of the target needs"
        details.append(f"{describe(geometry, e)} {why}")
    noun = "instance" if len(blockers) == 1 else "instances"
    return (
        f"The target cannot be reached without destroying or reconfiguring busy GPU {noun}: "
        + "; ".join(details)
        + ". Processes are running there and migctl never disrupts a busy instance: stop them, "
        "or choose a target that keeps these instances as they are."
    )


def refuse(
    geometry: GpuGeometry,
    fitter: Fitter,
    wants: Sequence[Want],
    existing: Sequence[ExistingInstance],
    locked: frozenset[int],
) -> PlanRefusal:
    if locked and search(fitter, wants, existing, frozenset()) is not None:
        # Some busy instances are in the way: find the fewest (lowest GI IDs on ties).
        busy = sorted(locked, key=lambda i: (existing[i].gi_id, i))
        for size in range(1, len(busy) + 1):
            for freed in combinations(busy, size):
                if search(fitter, wants, existing, locked - set(freed)) is not None:
                    blockers = [existing[i] for i in freed]
                    return PlanRefusal(reason=busy_reason(geometry, wants, blockers), busy=tuple(blockers))
    return PlanRefusal(reason=explain_unfit(geometry, fitter, wants))
