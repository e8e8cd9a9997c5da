"""Layouts: what a GPU has now, what it should have, and the plan between them.

Pure data. A *target* names profiles by ID (names are resolved per GPU before planning, so
mixed nodes work); compute instances are named as NVIDIA names compute-instance profiles
(``1c.3g.48gb``; the full-size, default one has the GPU-instance profile's own name).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from migctl.core.geometry import Placement


@dataclass(frozen=True)
class ProfileRequest:
    """``count`` instances of ``profile`` (a profile name such as ``1g.12gb``, or its ID as a number
    or digits): what ``create`` and ``create-ci`` are asked for. The short form ``1g.12gb:2`` is
    parsed by :func:`migctl.config.parse_profile_requests`."""

    profile: str | int
    count: int = 1

    def __str__(self) -> str:
        return f"{self.profile}:{self.count}"


def default_compute(gi_profile_name: str) -> tuple[str, ...]:
    """The compute layout ``nvidia-smi mig -cgi ... -C`` gives: one CI spanning the GI."""
    return (gi_profile_name,)


@dataclass(frozen=True)
class ExistingInstance:
    """A GPU instance on the GPU now.

    ``compute`` holds the names of its compute instances' profiles, sorted; ``busy`` is true
    when a process runs on any of them (such an instance must never be destroyed).
    """

    gi_id: int
    profile_id: int
    placement: Placement
    compute: tuple[str, ...] = ()
    busy: bool = False


@dataclass(frozen=True)
class TargetInstance:
    """One GPU instance a layout asks for.

    ``placement`` pins it to a start slice (``None``: the planner chooses). ``compute`` lists
    the compute-instance profiles to create in it (``None``: the default compute instance;
    ``()``: none at all).
    """

    profile_id: int
    placement: Placement | None = None
    compute: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Target:
    """The whole target for one GPU: MIG on or off, and the GPU instances it should hold."""

    mig_enabled: bool = True
    instances: tuple[TargetInstance, ...] = ()


@dataclass(frozen=True)
class Create:
    """Create a GPU instance of ``profile_id`` at ``placement``, then ``compute`` in it."""

    profile_id: int
    placement: Placement
    compute: tuple[str, ...]


@dataclass(frozen=True)
class Recompute:
    """Keep GPU instance ``instance`` where it is, but replace its compute instances."""

    instance: ExistingInstance
    compute: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """What to do on one GPU. Destroy first, then recompute, then create, in list order."""

    keep: tuple[ExistingInstance, ...] = ()
    destroy: tuple[ExistingInstance, ...] = ()
    recompute: tuple[Recompute, ...] = ()
    create: tuple[Create, ...] = ()

    @property
    def is_noop(self) -> bool:
        return not (self.destroy or self.recompute or self.create)


@dataclass(frozen=True)
class PlanRefusal:
    """Why a target cannot be planned on a GPU, in words for the user."""

    reason: str
    busy: tuple[ExistingInstance, ...] = field(default=())
