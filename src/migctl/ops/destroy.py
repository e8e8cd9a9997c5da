"""``destroy``: compute instances first, then GPU instances; refuses, destroying nothing, if any is in use.

Every target on every chosen GPU is resolved and checked for users (:mod:`migctl.ops.busy`)
before the first destroy; their leases are then held (a :class:`~migctl.ops.busy.Claim`) until
they are gone, so no job can start on them, and each one's processes are read again right
before it is destroyed. All or nothing: a failure part-way (the driver, a process that appeared,
Ctrl-C/SIGTERM) creates again what was destroyed, at the same placements. Each GPU's destroy is
journaled, so a ``kill -9`` part-way is finished by ``migctl recover``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import pynvml

from migctl.core.geometry import Placement
from migctl.core.layout import Target, TargetInstance
from migctl.device import ComputeInstance, Gpu, GpuInstance, Node
from migctl.errors import Interrupted, InUseError, MigctlError, NotSupportedError, UsageError, from_nvml
from migctl.ops import cancel, journal
from migctl.ops.busy import Claim, GpuUse, describe_lease, existing_instances, node_leases, snapshot
from migctl.ops.lock import host_lock
from migctl.records.common import DestroyedInstance
from migctl.records.lifecycle import DestroyReport


@dataclass
class _Doomed:
    """What a destroy will remove, and who is in the way."""

    cis: list[tuple[Gpu, GpuInstance, ComputeInstance]]
    gis: list[tuple[Gpu, GpuInstance]]
    users: list[str]


def _owner_gpus(node: Node, gpus: Sequence[Gpu], uuids: Sequence[str]) -> list[Gpu]:
    """The chosen GPUs plus those that own the MIG devices named by UUID."""
    targets = list(gpus)
    for u in uuids:
        owner = [g for g in node.gpus if any(m.uuid == u for m in g.mig_devices())]
        if not owner:
            raise UsageError(f"no MIG device has UUID {u}", hint="list them with: migctl devices")
        if owner[0] not in targets:
            targets.append(owner[0])
    return targets


def _collect(
    gpu: Gpu,
    use: GpuUse,
    doomed: _Doomed,
    gi_ids: Sequence[int],
    ci_pairs: Sequence[tuple[int, int]],
    everything: bool,
) -> None:
    gis = {g.id: g for g in gpu.gpu_instances()}
    for gi_id in list(gis) if everything else gi_ids:
        if gi_id not in gis:
            raise UsageError(
                f"GPU {gpu.index} has no GPU instance {gi_id}",
                hint=f"its GPU instances: {', '.join(map(str, gis)) or 'none'}",
            )
        gi = gis[gi_id]
        cis = gi.compute_instances()
        who = use.of_gpu_instance(gi, cis).words()
        doomed.users += [f"GI {gi.id} ({gi.profile}) on GPU {gpu.index}: {w}" for w in who]
        doomed.cis += [(gpu, gi, ci) for ci in cis]
        doomed.gis.append((gpu, gi))
    for gi_id, ci_id in ci_pairs:
        owner = gis.get(gi_id)
        ci = next((c for c in owner.compute_instances() if c.id == ci_id), None) if owner else None
        if owner is None or ci is None:
            raise UsageError(
                f"GPU {gpu.index} has no compute instance {gi_id}:{ci_id}", hint=f"see migctl status -i {gpu.index}"
            )
        if any(g.id == owner.id and c.id == ci.id for _, g, c in doomed.cis):
            continue
        who = use.of_compute_instance(owner.id, ci).words()
        doomed.users += [f"CI {owner.id}:{ci.id} on GPU {gpu.index}: {w}" for w in who]
        doomed.cis.append((gpu, owner, ci))


def destroy(
    node: Node,
    gpus: Sequence[Gpu],
    *,
    gi_ids: Sequence[int] = (),
    ci_ids: Sequence[tuple[int, int]] = (),
    uuids: Sequence[str] = (),
    everything: bool = False,
    wait_s: float | None = None,
) -> DestroyReport:
    """``nvidia-smi mig -dci`` then ``-dgi``: refuses (destroying nothing) if any target is in use.

    ``gi_ids`` and ``ci_ids`` (``(GI, CI)`` pairs) apply to each of ``gpus``; ``uuids`` name MIG
    devices on any GPU; ``everything`` takes every instance of ``gpus`` (skipping GPUs with MIG off).

    All or nothing: the leases of every target are taken before the first destroy (no job can
    start on them from then on), each one's processes are read again right before it goes, and
    if anything stops it part-way (a process that appeared, the driver, Ctrl-C/SIGTERM) what it
    had destroyed is created again at the same placements.
    """
    if not (gi_ids or ci_ids or uuids or everything):
        raise UsageError("say what to destroy: --gi ID, --ci GI:CI, --uuid MIG-... or --all")
    what = "migctl destroy"
    with host_lock(wait_s), cancel.cancellable(), Claim(what) as claim:
        leases = node_leases()
        doomed = _Doomed([], [], [])
        for gpu in _owner_gpus(node, gpus, uuids):
            mode = gpu.mig_mode()
            if mode is None or not mode.current:
                if everything:
                    continue
                raise NotSupportedError(f"MIG is not enabled on GPU {gpu.index}: it has no instances to destroy")
            chosen = gpu in gpus
            pairs = list(ci_ids) if chosen else []
            pairs += [(m.gi_id, m.ci_id) for m in gpu.mig_devices() if m.uuid in uuids]
            _collect(gpu, snapshot(gpu, leases), doomed, gi_ids if chosen else (), pairs, everything)
        if doomed.users:
            raise InUseError(
                "refusing to destroy instances in use: " + "; ".join(doomed.users),
                hint="stop those processes first; nothing was destroyed",
            )
        blocked = claim.take(ci.uuid for _, _, ci in doomed.cis)
        if blocked:
            raise InUseError(
                "refusing to destroy instances in use: a job started on "
                + "; ".join(f"{u}: {describe_lease(h)}" for u, h in blocked),
                hint="stop those processes first; nothing was destroyed",
            )
        journals: dict[Path, tuple[int, Target, Target]] = {}
        done: list[DestroyedInstance] = []
        gone: list[_Gone] = []
        try:
            _journal(doomed, what, journals)
            _destroy_all(doomed, claim, done, gone)
        except Exception as exc:  # all or nothing: put back what was destroyed
            note, complete = _undo(gone)
            for path, (index, target, before) in journals.items():
                if complete:
                    journal.remove(path)
                else:
                    journal.mark_cancelled(path, index, what, target, before)
            raise _error(exc, note, complete, done) from None
        for path in journals:
            journal.remove(path)
        return DestroyReport(tuple(done))


@dataclass(frozen=True)
class _Gone:
    """Something this destroy destroyed, as needed to create it again."""

    gpu: Gpu
    gi_id: int
    profile_id: int
    placement: Placement
    ci: bool
    """A compute instance (of GPU instance ``gi_id``) rather than a GPU instance."""


def _destroy_all(doomed: _Doomed, claim: Claim, done: list[DestroyedInstance], gone: list[_Gone]) -> None:
    for gpu, gi, ci in doomed.cis:
        cancel.checkpoint(f"destroy CI {gi.id}:{ci.id} on GPU {gpu.index}")
        who = claim.users(gpu, gi, [ci], only_ci=ci.id)  # its processes, right before it goes
        if who:
            raise InUseError(f"CI {gi.id}:{ci.id} on GPU {gpu.index} came into use: {', '.join(who)}")
        try:
            ci.destroy()
        except pynvml.NVMLError as exc:
            if _gone_after_all(partial(_has_ci, gi, ci.id)):
                _record_ci(gpu, gi, ci, claim, done, gone)  # it went: the undo must make it again
            raise from_nvml(exc, f"destroying CI {gi.id}:{ci.id} on GPU {gpu.index}") from None
        _record_ci(gpu, gi, ci, claim, done, gone)
    for gpu, gi in doomed.gis:
        cancel.checkpoint(f"destroy GI {gi.id} on GPU {gpu.index}")
        try:
            gi.destroy()
        except pynvml.NVMLError as exc:
            if _gone_after_all(partial(_has_gi, gpu, gi.id)):
                gone.append(_Gone(gpu, gi.id, gi.profile_id, gi.placement, False))
                done.append(DestroyedInstance(gpu.index, gi.id, None, gi.profile, None))
            raise from_nvml(exc, f"destroying GI {gi.id} on GPU {gpu.index}") from None
        gone.append(_Gone(gpu, gi.id, gi.profile_id, gi.placement, False))
        done.append(DestroyedInstance(gpu.index, gi.id, None, gi.profile, None))


def _record_ci(
    gpu: Gpu,
    gi: GpuInstance,
    ci: ComputeInstance,
    claim: Claim,
    done: list[DestroyedInstance],
    gone: list[_Gone],
) -> None:
    claim.destroyed([ci.uuid])
    gone.append(_Gone(gpu, gi.id, ci.profile_id, ci.placement, True))
    done.append(DestroyedInstance(gpu.index, gi.id, ci.id, ci.profile, ci.uuid))


def _has_ci(gi: GpuInstance, ci_id: int) -> bool:
    return any(c.id == ci_id for c in gi.compute_instances())


def _has_gi(gpu: Gpu, gi_id: int) -> bool:
    return gpu.gpu_instance(gi_id) is not None


def _gone_after_all(still_there: Callable[[], bool]) -> bool:
    """A destroy the driver reported as failed may have happened: is the instance gone? (``False``
    when the driver cannot even say.)"""
    try:
        return not still_there()
    except Exception:
        return False


def _undo(gone: list[_Gone]) -> tuple[str, bool]:
    """Create again, newest first, what was destroyed: GPU instances, then their compute instances."""
    if not gone:
        return "nothing was destroyed", True
    again: dict[tuple[int, int], GpuInstance] = {}
    problems = []
    with cancel.shielded():
        for g in reversed(gone):
            try:
                if not g.ci:
                    cancel.checkpoint(f"undo: create GI again at {g.placement} on GPU {g.gpu.index}")
                    again[(g.gpu.index, g.gi_id)] = _make_again(
                        partial(g.gpu.create_gpu_instance, g.profile_id, g.placement),
                        partial(_gi_at, g.gpu, g.profile_id, g.placement),
                    )
                    continue
                gi = again.get((g.gpu.index, g.gi_id)) or g.gpu.gpu_instance(g.gi_id)
                if gi is None:
                    raise MigctlError(f"GI {g.gi_id} is gone")
                cancel.checkpoint(f"undo: create CI again in GI {gi.id} on GPU {g.gpu.index}")
                _make_again(
                    partial(gi.create_compute_instance, g.profile_id, g.placement),
                    partial(_ci_at, gi, g.profile_id, g.placement),
                )
            except Exception as exc:
                kind = "CI" if g.ci else "GI"
                problems.append(f"could not create {kind} at {g.placement} on GPU {g.gpu.index} again: {exc}")
    if problems:
        gpus = ",".join(sorted({str(g.gpu.index) for g in gone}))
        return "undo incomplete: " + "; ".join(problems) + f"; inspect with migctl status -i {gpus}", False
    n = len(gone)
    return (
        f"the {n} instance(s) it had destroyed were created again at the same placements "
        "(with new IDs and MIG UUIDs); nothing else changed",
        True,
    )


M = TypeVar("M", GpuInstance, ComputeInstance)


def _make_again(make: Callable[[], M], find: Callable[[], M | None]) -> M:
    """Create an instance again; a create reported as failed that happened anyway counts as made."""
    try:
        return make()
    except Exception:
        try:
            found = find()
        except Exception:
            found = None
        if found is None:
            raise
        return found


def _gi_at(gpu: Gpu, profile_id: int, at: Placement) -> GpuInstance | None:
    return next((g for g in gpu.gpu_instances() if g.placement == at and g.profile_id == profile_id), None)


def _ci_at(gi: GpuInstance, profile_id: int, at: Placement) -> ComputeInstance | None:
    return next((c for c in gi.compute_instances() if c.placement == at and c.profile_id == profile_id), None)


def _error(exc: Exception, note: str, complete: bool, done: list[DestroyedInstance]) -> MigctlError:
    tail = "" if complete else "; then run migctl recover (it puts back what is left)"
    if isinstance(exc, cancel.Cancelled):
        return Interrupted(f"interrupted by {exc}: {note}{tail}", destroyed=tuple(done))
    if isinstance(exc, MigctlError):
        hint = f"{exc.hint}; {note}" if exc.hint else note
        return type(exc)(exc.message, hint=hint + tail, nvml_code=exc.nvml_code, destroyed=tuple(done))
    return MigctlError(f"destroying failed: {type(exc).__name__}: {exc}", hint=note + tail, destroyed=tuple(done))


def _journal(doomed: _Doomed, what: str, out: dict[Path, tuple[int, Target, Target]]) -> None:
    """Journal each GPU's destroy into ``out`` (as it goes, so a failure half-way removes the
    journals already written), so a ``kill -9`` part-way is finished by ``migctl recover``."""
    gis_gone = {(g.index, gi.id) for g, gi in doomed.gis}
    cis_gone = {(g.index, gi.id, ci.id) for g, gi, ci in doomed.cis}
    for gpu in dict.fromkeys([g for g, _, _ in doomed.cis] + [g for g, _ in doomed.gis]):
        now = existing_instances(gpu, None)
        before = journal.pinned(True, now)
        kept = []
        for e in now:
            if (gpu.index, e.gi_id) in gis_gone:
                continue
            gi = gpu.gpu_instance(e.gi_id)
            cis = gi.compute_instances() if gi else []
            left = [ci.profile for ci in cis if (gpu.index, e.gi_id, ci.id) not in cis_gone]
            kept.append(TargetInstance(e.profile_id, e.placement, tuple(sorted(left))))
        target = Target(True, tuple(kept))
        out[journal.write(gpu.index, what, target, before)] = (gpu.index, target, before)
