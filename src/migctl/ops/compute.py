"""Compute instances inside one GPU instance: naming their profiles and placing them.

Shared by ``create-ci`` and by ``apply`` (a layout's compute layout). The placement search
itself is pure (:func:`migctl.core.compute.compute_layout`); this module feeds it what NVML
says about the GPU instance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from migctl.core.compute import CiProfile, compute_layout
from migctl.core.geometry import Occupant, Placement
from migctl.device import CiProfileInfo, Gpu, GpuInstance
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


def _nvml_ci_profiles(gpu: Gpu, gi_profile_id: int) -> list[CiProfileInfo] | None:
    """The compute-instance profiles NVML reports for GPU instances of ``gi_profile_id``, read from
    one that exists on ``gpu`` (NVML offers them only per GPU instance); ``None`` if none exists."""
    for gi in gpu.gpu_instances():
        if gi.profile_id == gi_profile_id:
            return gi.ci_profiles()
    return None


def _slices_named(name: str, gi_name: str, gi_slices: int) -> int | None:
    """Compute slices of a compute-instance profile by its NVIDIA name: ``2c.4g.48gb`` 2; the
    full-size one carries the GPU-instance profile's own name."""
    m = re.fullmatch(r"([0-9]{1,2})c\..+", name, re.ASCII)
    if m is not None:
        return int(m[1])
    return gi_slices if name == gi_name else None


def compute_refusal(gpu: Gpu, gi_profile_id: int, names: Sequence[str]) -> str | None:
    """Why compute instances ``names`` cannot all be made in one GPU instance of ``gi_profile_id``
    (``None``: they fit), checked before anything changes.

    Against the compute-instance profiles and placements NVML reports when a GPU instance of
    that profile exists on the GPU; otherwise (NVML lists them only per GPU instance) against the
    compute slices the profile names carry, which is what decides whether they fit.
    """
    if not names:
        return None
    gi_prof = gpu.profile_by_id(gi_profile_id)
    slices = gi_prof.slice_count
    reported = _nvml_ci_profiles(gpu, gi_profile_id)
    if reported is not None:
        by_name = {p.name: p for p in reported}
        missing = [n for n in names if n not in by_name]
        if missing:
            offered = ", ".join(p.name for p in reported)
            return f"a {gi_prof.name} instance offers no compute-instance profile {missing[0]} (it offers {offered})"
        catalog = [ci_profile(p) for p in reported]
        wanted = [ci_profile(by_name[n]) for n in names]
    else:
        sizes = [_slices_named(n, gi_prof.name, slices) for n in names]
        if any(s is None for s in sizes):
            return None  # not a name migctl can size: the driver decides when it is created
        known = [s for s in sizes if s is not None]
        catalog = [  # every start allowed: only the slices decide here
            CiProfile(
                -size, f"{size}c", size, slices // size, tuple(Placement(i, size) for i in range(slices - size + 1))
            )
            for size in sorted(set(known))
            if 0 < size <= slices
        ]
        by_size = {p.slice_count: p for p in catalog}
        if any(s not in by_size for s in known):
            return f"a {gi_prof.name} instance has {slices} compute slice(s); {', '.join(names)} need more"
        wanted = [by_size[s] for s in known]
    if compute_layout(slices, catalog, [], wanted) is None:
        need = sum(p.slice_count for p in wanted)
        return (
            f"compute instances {', '.join(names)} do not fit in one {gi_prof.name} instance: they need {need} compute "
            f"slice(s) together and it has {slices}"
            if need > slices
            else f"compute instances {', '.join(names)} do not fit in one {gi_prof.name} instance at any placements"
        )
    return None
