"""Carrying out one GPU's plan through NVML: destroy, recompute, create, and MIG mode changes.

Used by ``apply`` (the plan), its rollback and ``recover`` (both: converge on a journaled
target). A driver failure is raised as migctl's typed error naming the step; undoing is the
caller's job (:mod:`migctl.ops.apply` converges back to the layout before).

Every step that changes the GPU is preceded by a :func:`~migctl.ops.cancel.checkpoint` (where
Ctrl-C/SIGTERM stop the command), and every destroy by a busy check under a
:class:`~migctl.ops.busy.Claim`: the instance's leases are taken and its processes read again
right before it is destroyed, so a job that started after the plan was made is never destroyed
(:class:`~migctl.errors.InUseError`, and the caller rolls the GPU back).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import pynvml

from migctl.core.geometry import Placement
from migctl.core.layout import Plan, Recompute, Target
from migctl.device import Gpu, GpuInstance
from migctl.errors import InsufficientResourcesError, MigctlError, ResetRequiredError, from_nvml
from migctl.ops.busy import Claim
from migctl.ops.cancel import checkpoint
from migctl.ops.compute import place, resolve_ci_profile
from migctl.ops.plan import plan_gpu

T = TypeVar("T")


def _step(what: str, fn: Callable[..., T], *args: object) -> T:
    """One step of an apply; a driver failure is raised as migctl's error naming the step."""
    try:
        return fn(*args)
    except pynvml.NVMLError as exc:
        raise from_nvml(exc, what) from None


def make_compute(gi: GpuInstance, names: Sequence[str]) -> None:
    """Create compute instances ``names`` in ``gi``, each at an explicit placement."""
    lacks = "the layout names one this GPU instance lacks"
    profs = [resolve_ci_profile(gi, name, nothing_done=lacks) for name in names]
    where = place(gi, profs)
    if where is None:
        raise InsufficientResourcesError(f"compute instances {', '.join(names)} do not fit in GI {gi.id}")
    for prof, at in zip(profs, where, strict=True):
        checkpoint(f"create CI {prof.name} at {at} in GI {gi.id} on GPU {gi.gpu.index}")
        gi.create_compute_instance(prof.id, at)


def _destroy_cis(gpu: Gpu, gi: GpuInstance, claim: Claim) -> None:
    """Destroy ``gi``'s compute instances, once nobody uses them (checked right before)."""
    cis = gi.compute_instances()
    claim.check(gpu, gi, cis)
    for ci in cis:
        checkpoint(f"destroy CI {gi.id}:{ci.id} on GPU {gpu.index}")
        ci.destroy()
        claim.destroyed([ci.uuid])


def _destroy_gi(gpu: Gpu, gi_id: int, claim: Claim) -> None:
    gi = gpu.gpu_instance(gi_id)
    if gi is None:
        return
    checkpoint(f"check GI {gi_id} on GPU {gpu.index} before destroying it")
    _destroy_cis(gpu, gi, claim)
    checkpoint(f"destroy GI {gi_id} on GPU {gpu.index}")
    gi.destroy()


def _recompute(gpu: Gpu, r: Recompute, claim: Claim) -> None:
    gi = gpu.gpu_instance(r.instance.gi_id)
    if gi is None:
        raise MigctlError(f"GI {r.instance.gi_id} disappeared during apply")
    checkpoint(f"check GI {gi.id} on GPU {gpu.index} before replacing its compute instances")
    _destroy_cis(gpu, gi, claim)
    make_compute(gi, r.compute)


def _create_gi(gpu: Gpu, profile_id: int, placement: Placement) -> GpuInstance:
    checkpoint(f"create GI {gpu.profile_by_id(profile_id).name} at {placement} on GPU {gpu.index}")
    return gpu.create_gpu_instance(profile_id, placement)


def execute_plan(gpu: Gpu, p: Plan, claim: Claim) -> None:
    """Destroy, recompute, create: in that order, each create at its explicit placement.

    Each destroy first takes the instance's leases into ``claim`` and reads its processes
    again (:class:`~migctl.errors.InUseError` if someone uses it now)."""

    def name(profile_id: int) -> str:
        return gpu.profile_by_id(profile_id).name

    on = f"on GPU {gpu.index}"
    for e in p.destroy:
        what = f"destroying GI {e.gi_id} ({name(e.profile_id)} at {e.placement}) {on}"
        _step(what, _destroy_gi, gpu, e.gi_id, claim)
    for r in p.recompute:
        e = r.instance
        what = f"replacing the compute instances of GI {e.gi_id} ({name(e.profile_id)} at {e.placement}) {on}"
        _step(what, _recompute, gpu, r, claim)
    for c in p.create:
        what = f"creating {name(c.profile_id)} at {c.placement} {on}"
        gi = _step(what, _create_gi, gpu, c.profile_id, c.placement)
        _step(f"creating compute instances {', '.join(c.compute)} in GI {gi.id} {on}", make_compute, gi, c.compute)


def set_mode(gpu: Gpu, enabled: bool) -> None:
    """Change MIG mode; a change the driver leaves pending is a :class:`ResetRequiredError`."""
    state = "enabling" if enabled else "disabling"
    checkpoint(f"{state} MIG mode on GPU {gpu.index}")
    status = _step(f"{state} MIG mode on GPU {gpu.index}", gpu.set_mig_mode, enabled)
    mode = gpu.mig_mode()
    if mode is not None and mode.current != enabled:
        why = "processes are using it" if status == pynvml.NVML_ERROR_IN_USE else "the driver needs a GPU reset"
        raise ResetRequiredError(
            f"MIG mode change on GPU {gpu.index} is pending: {why}",
            hint=f"stop the processes, then: migctl reset -i {gpu.index}; then apply again",
        )


def converge(gpu: Gpu, target: Target, claim: Claim) -> Plan:
    """Take ``gpu`` to ``target`` from whatever it has now (used by apply, rollback and recover).

    Planned afresh from the GPU's state, so a busy instance is never destroyed on the way (and
    each destroy is checked again right before it, under ``claim``).
    """
    g = plan_gpu(gpu, target)
    if g.refusal is not None:
        raise InsufficientResourcesError(f"GPU {gpu.index}: {g.refusal.reason}")
    if g.mode_change is False:
        assert g.plan is not None
        execute_plan(gpu, g.plan, claim)
        set_mode(gpu, False)
        return g.plan
    if g.mode_change is True:
        set_mode(gpu, True)
        g = plan_gpu(gpu, target)
        if g.refusal is not None:
            raise InsufficientResourcesError(f"GPU {gpu.index}: {g.refusal.reason}")
    assert g.plan is not None
    execute_plan(gpu, g.plan, claim)
    return g.plan
