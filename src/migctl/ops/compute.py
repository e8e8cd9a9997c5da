"""Compute instances inside one GPU instance: naming their profiles and placing them.

Shared by ``create-ci`` and by ``apply`` (a layout's compute layout). The placement search
itself is pure (:func:`migctl.core.compute.compute_layout`); this module feeds it what NVML
says about the GPU instance.
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.core.compute import CiProfile, compute_layout
from migctl.core.geometry import Occupant, Placement
from migctl.device import CiProfileInfo, GpuInstance
from migctl.errors import UsageError


def ci_profile(p: CiProfileInfo) -> CiProfile:
    return CiProfile(p.id, p.name, p.slice_count, p.instance_count, p.placements)


def resolve_ci_profile(gi: GpuInstance, key: str | int, *, nothing_done: str = "nothing was created") -> CiProfileInfo:
    """The compute-instance profile ``key`` (name or ID) of ``gi``, or a :class:`UsageError` listing them."""
    prof = gi.find_ci_profile(key)
    if prof is None:
        valid = ", ".join(f"{p.name} (ID {p.id})" for p in gi.ci_profiles())
        raise UsageError(
            f"{str(key)!r} is not a compute-instance profile of GI {gi.id} ({gi.profile}) on GPU {gi.gpu.index}",
            hint=f"valid: {valid}; {nothing_done}",
        )
    return prof


def place(gi: GpuInstance, wanted: Sequence[CiProfileInfo]) -> list[Placement] | None:
    """Explicit placements for ``wanted`` next to ``gi``'s compute instances, or ``None``."""
    taken = [Occupant(ci.profile_id, ci.placement) for ci in gi.compute_instances()]
    slices = gi.gpu.profile_by_id(gi.profile_id).slice_count
    profiles = [ci_profile(p) for p in gi.ci_profiles()]
    return compute_layout(slices, profiles, taken, [ci_profile(p) for p in wanted])
