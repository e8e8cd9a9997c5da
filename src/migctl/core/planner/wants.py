"""What a target asks for, grouped: *wants* (identical target instances with a count).

Shared by the search, its explanations and the diff. Pure, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from migctl.core.geometry import GiProfile, GpuGeometry, Occupant, Placement
from migctl.core.layout import ExistingInstance, PlanRefusal, TargetInstance, default_compute

#: A target instance as far as placing it goes: (profile ID, pinned start or -1).
Shape = tuple[int, int]
#: Instances kept on the GPU, in a canonical order (a memo key).
Kept = tuple[Occupant, ...]


def bits(p: Placement) -> int:
    """The slices of ``p`` as a bit mask."""
    return ((1 << p.size) - 1) << p.start


@dataclass(frozen=True)
class Want:
    """``count`` identical target instances."""

    profile: GiProfile
    pin: Placement | None
    compute: tuple[str, ...]
    count: int

    @property
    def shape(self) -> Shape:
        return (self.profile.id, self.pin.start if self.pin is not None else -1)

    def accepts(self, e: ExistingInstance) -> bool:
        """Whether ``e`` has this want's profile and placement (compute aside)."""
        return e.profile_id == self.profile.id and (self.pin is None or self.pin == e.placement)


def target_compute(profile: GiProfile, t: TargetInstance) -> tuple[str, ...]:
    """The compute layout ``t`` asks for, sorted (``None`` means the default one)."""
    return default_compute(profile.name) if t.compute is None else tuple(sorted(t.compute))


def resolve_wants(geometry: GpuGeometry, target: Sequence[TargetInstance]) -> list[Want] | PlanRefusal:
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
        groups[(prof.id, t.placement, target_compute(prof, t))] += 1
    if problems:
        unique = list(dict.fromkeys(problems))
        return PlanRefusal(reason="The target cannot be planned: " + "; ".join(unique) + ".")
    wants = [Want(geometry.by_id(pid), pin, comp, n) for (pid, pin, comp), n in groups.items()]
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


def shapes_left(wants: Sequence[Want], left: Sequence[int]) -> tuple[Shape, ...]:
    """The shapes still to create (``left[i]`` of ``wants[i]``), sorted."""
    return tuple(sorted(w.shape for w, n in zip(wants, left, strict=True) for _ in range(n)))


def kept_key(kept: Iterable[Occupant]) -> Kept:
    return tuple(sorted(kept, key=lambda o: (o.placement, o.profile_id)))
