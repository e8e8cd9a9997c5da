"""``create`` and ``create-ci``: GPU and compute instances, all or nothing, in an order that always fits.

Each validates the whole request on every chosen GPU before changing anything (a count no GPU
could hold is refused before the host lock is even taken), creates at explicit placements (so
the order never matters, unlike ``nvidia-smi mig -cgi``), holds the host lock while it changes
the GPUs, and destroys what it made again if the driver fails part-way, Ctrl-C/SIGTERM
arrives (at the next safe point), or anything else goes wrong. A ``create`` is journaled, so a
``kill -9`` half-way is finished by ``migctl recover``; a create whose undo did not complete
is journaled as cancelled, so ``recover`` only ever rolls it back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pynvml

from migctl.core.geometry import GiProfile, GpuGeometry, Occupant, Placement
from migctl.core.layout import ExistingInstance, PlanRefusal, ProfileRequest, Target, TargetInstance
from migctl.core.planner import plan
from migctl.core.planner.explain import engine_overuse
from migctl.device import ComputeInstance, Gpu, GpuInstance, Node
from migctl.errors import (
    InsufficientResourcesError,
    Interrupted,
    MigctlError,
    NotSupportedError,
    ResetRequiredError,
    UsageError,
    from_nvml,
)
from migctl.ops import cancel, journal
from migctl.ops.busy import existing_instances
from migctl.ops.compute import place, resolve_ci_profile
from migctl.ops.lock import host_lock
from migctl.ops.undo import Undo
from migctl.records.lifecycle import CreatedInstance, CreateReport


def require_mig_enabled(gpu: Gpu) -> None:
    """Refuse a GPU that cannot hold instances now (not MIG-capable, MIG off or pending)."""
    mode = gpu.mig_mode()
    if mode is None:
        raise NotSupportedError(f"GPU {gpu.index} ({gpu.name}) is not MIG-capable")
    if not mode.current:
        if mode.pending:
            raise ResetRequiredError(
                f"MIG mode on GPU {gpu.index} is pending enable",
                hint=f"stop the processes using it, then: migctl reset -i {gpu.index}",
            )
        raise NotSupportedError(
            f"MIG is disabled on GPU {gpu.index}", hint=f"enable it first: migctl mode enable -i {gpu.index}"
        )


def resolve_profile(gpu: Gpu, geometry: GpuGeometry, key: str | int) -> GiProfile:
    found = geometry.find(key)
    if found is None:
        valid = ", ".join(f"{p.name} (ID {p.id})" for p in geometry.profiles)
        raise UsageError(
            f"{str(key)!r} is not a GPU-instance profile of GPU {gpu.index} ({gpu.name})",
            hint=f"valid profiles: {valid}; give names or IDs separated by spaces or commas, "
            "with :COUNT for several (1g.12gb:2); nothing was created",
        )
    return found


def explain_space(gpu: Gpu, geometry: GpuGeometry) -> str:
    """What is free, and which instances hold the rest."""
    gis = gpu.gpu_instances()
    occupants = [Occupant(g.profile_id, g.placement) for g in gis]
    free = geometry.free_slices(occupants)
    held = "; ".join(f"GI {g.id} ({g.profile}) holds {g.placement}" for g in gis) or "no instances"
    fits = [p.name for p in geometry.profiles if geometry.free_placements(occupants, p)]
    return (
        f"free slices: {','.join(map(str, free)) or 'none'}; {held}; "
        f"what still fits alone: {', '.join(fits) or 'nothing'}"
    )


def _why_not(gpu: Gpu, geometry: GpuGeometry, wanted: list[GiProfile], pin: Placement | None) -> str:
    """The specific reason a request does not fit, when there is one: an occupied start slice
    (naming the slices and the instances holding them), or the exhausted media-engine pool."""
    gis = gpu.gpu_instances()
    if pin is not None:
        prof = wanted[0]
        holders = [g for g in gis if g.placement.overlaps(pin)]
        if holders:
            taken = sorted({s for g in holders for s in range(g.placement.start, g.placement.end)} &
                           set(range(pin.start, pin.end)))
            slices = "slice" if len(taken) == 1 else "slices"
            who = ", ".join(f"GI {g.id} ({g.profile} at {g.placement})" for g in holders)
            return f": {prof.name} at {pin} needs {slices} {','.join(map(str, taken))}, held by {who}"
    over = engine_overuse(geometry, [g.profile_id for g in gis] + [p.id for p in wanted])
    if over:
        short = {k for k, _ in over}
        holders = [g for g in gis if any(getattr(geometry.by_id(g.profile_id).engines, k) for k in short)]
        names = ", ".join(f"GI {g.id} ({g.profile})" for g in holders)
        held = f"; {names} already hold{'s' if len(holders) == 1 else ''} some" if holders else ""
        need = ", ".join(text for _, text in over)
        return f": the GPU's shared media-engine pool is exhausted (the instances would need {need}{held})"
    return ""


def _alternatives(gpu: Gpu, geometry: GpuGeometry, wanted: list[GiProfile], pin: Placement | None) -> str:
    """What the user could ask for instead: free starts for a pinned profile, else what fits alone."""
    occupants = [Occupant(g.profile_id, g.placement) for g in gpu.gpu_instances()]
    if pin is not None:
        free = [str(p.start) for p in geometry.free_placements(occupants, wanted[0])]
        return f"{wanted[0].name} can start now at slice {', '.join(free)}" if free else (
            f"no start slice is free for {wanted[0].name} now")
    return explain_space(gpu, geometry)


def _what_would_fit(
    geometry: GpuGeometry, current: list[ExistingInstance], target: list[TargetInstance], wanted: list[GiProfile]
) -> str:
    """Which single instance to drop from the request so the rest fits (cheap: one plan per profile)."""
    if len(wanted) < 2:
        return ""
    fixed = target[: len(current)]
    for drop in dict.fromkeys(p.id for p in wanted):
        rest = list(target[len(current) :])
        rest.remove(next(t for t in rest if t.profile_id == drop))
        attempt = plan(geometry, current, fixed + rest)
        if not isinstance(attempt, PlanRefusal) and not attempt.destroy:
            return f"; without one {geometry.by_id(drop).name} the rest would fit"
    return ""


def plan_creates(
    gpu: Gpu, requests: Sequence[ProfileRequest], placement: int | None
) -> list[tuple[GiProfile, Placement]]:
    """Where each requested GPU instance will go: explicit placements found before any change."""
    require_mig_enabled(gpu)
    geometry = gpu.geometry()
    wanted: list[GiProfile] = []
    for r in requests:
        wanted.extend([resolve_profile(gpu, geometry, r.profile)] * r.count)
    if not wanted:
        raise UsageError("nothing to create: name at least one profile, e.g. migctl create 1g.12gb:2")
    pin: Placement | None = None
    if placement is not None:
        if len(wanted) != 1:
            raise UsageError("--placement takes exactly one GPU instance (one profile, no :COUNT)")
        pin = wanted[0].placement_at(placement)
        if pin is None:
            legal = ",".join(str(p.start) for p in wanted[0].placements)
            raise UsageError(f"{wanted[0].name} cannot start at slice {placement}", hint=f"legal starts: {legal}")
    current = existing_instances(gpu, None)  # create never destroys anything
    target = [TargetInstance(e.profile_id, e.placement, e.compute) for e in current]
    target += [TargetInstance(p.id, pin, None) for p in wanted]
    result = plan(geometry, current, target)
    if isinstance(result, PlanRefusal) or result.destroy or result.recompute:
        names = ", ".join(p.name for p in wanted)
        raise InsufficientResourcesError(
            f"GPU {gpu.index}: {names} {'does not' if len(wanted) == 1 else 'cannot all'} fit next to its "
            f"{len(current)} existing GPU instance(s)" + _why_not(gpu, geometry, wanted, pin),
            hint=_alternatives(gpu, geometry, wanted, pin)
            + _what_would_fit(geometry, current, target, wanted)
            + "; nothing was created",
        )
    by_id = {p.id: p for p in geometry.profiles}
    # The planner tries placements in the driver's own order (fewest still-possible placements
    # blocked), so these leave room for large profiles later, as nvidia-smi's would.
    return [(by_id[c.profile_id], c.placement) for c in result.create]


class _Failed(Exception):
    def __init__(self, exc: pynvml.NVMLError, action: str, gpu: Gpu) -> None:
        self.exc, self.action, self.gpu = exc, action, gpu


def check_counts(gpus: Sequence[Gpu], requests: Sequence[ProfileRequest]) -> None:
    """Refuse at once, before the host lock, a count that the GPU could never hold (exit 2)."""
    for r in requests:
        if isinstance(r.count, bool) or not isinstance(r.count, int) or r.count < 1:
            raise UsageError(f"{r.profile}: the count must be a whole number of at least 1, not {r.count!r}")
    for gpu in gpus:
        if gpu.mig_mode() is None:
            continue  # refused with the reason when planned
        geometry = gpu.geometry()
        asked: Counter[int] = Counter()
        for r in requests:
            found = geometry.find(r.profile)
            if found is not None:
                asked[found.id] += r.count
        for pid, n in asked.items():
            prof = geometry.by_id(pid)
            if n > prof.instance_count:
                raise UsageError(
                    f"GPU {gpu.index} ({gpu.name}) can hold at most {prof.instance_count} {prof.name} instance(s); "
                    f"{n} were asked for",
                    hint="nothing was created",
                )


def create(
    node: Node,
    gpus: Sequence[Gpu],
    requests: Sequence[ProfileRequest],
    *,
    placement: int | None = None,
    compute_instance: bool = True,
    wait_s: float | None = None,
) -> CreateReport:
    """``nvidia-smi mig -cgi LIST -C``, done right: all or nothing, in an order that always fits.

    >>> create(node, node.select("0"), [ProfileRequest("1g.12gb", 2)])     # doctest: +SKIP
    CreateReport(created=(CreatedInstance(gpu=0, gpu_instance_id=13, ...), ...))
    """
    check_counts(gpus, requests)
    what = "migctl create " + " ".join(str(r) for r in requests)
    with host_lock(wait_s), cancel.cancellable():
        plans = [(gpu, plan_creates(gpu, requests, placement)) for gpu in gpus]
        return _create_planned(plans, compute_instance, what)


def create_at(
    node: Node,
    wanted: Sequence[tuple[Gpu, int | str, Placement]],
    *,
    what: str = "migctl create",
    wait_s: float | None = None,
) -> CreateReport:
    """Create GPU instances at placements the caller chose, each with its default compute instance:
    on one or several GPUs, under one host lock, journaled, all or nothing.

    For a caller with its own placement policy (migctl.ray's on-demand instances, placed by
    :mod:`migctl.core.ondemand` with the planner's order of preference): ``wanted`` holds
    ``(gpu, profile, placement)``. Every placement is checked against the GPU as it is under
    the lock, next to what it has and to the others asked for; one that is taken or illegal is
    an :class:`~migctl.errors.InsufficientResourcesError` naming it, and nothing is created.
    An earlier create or apply that a crash cut short is finished or rolled back first (as
    ``apply`` does), so its journal is never overwritten. Existing instances are never touched.
    GPUs are changed concurrently, each in its own thread (a failure on one still undoes all);
    a stop request (Ctrl-C/SIGTERM, in the main thread) undoes it all as :func:`create` does.

    >>> create_at(node, [(node.gpus[0], "1g.12gb", Placement(6, 1))])     # doctest: +SKIP
    CreateReport(created=(CreatedInstance(gpu=0, gpu_instance_id=13, ...),))
    """
    from migctl.ops.recover import recover_locked

    if not wanted:
        return CreateReport(())
    with host_lock(wait_s, what), cancel.cancellable():
        recover_locked(node)
        by_gpu: dict[int, tuple[Gpu, list[tuple[GiProfile, Placement]]]] = {}
        for gpu, key, where in wanted:
            by_gpu.setdefault(gpu.index, (gpu, []))[1].append((_profile_of(gpu, key), where))
        plans = [(gpu, _check_placed(gpu, steps)) for gpu, steps in by_gpu.values()]
        return _create_planned(plans, True, what, parallel=True)


def _profile_of(gpu: Gpu, key: int | str) -> GiProfile:
    require_mig_enabled(gpu)
    return resolve_profile(gpu, gpu.geometry(), key)


def _check_placed(gpu: Gpu, steps: list[tuple[GiProfile, Placement]]) -> list[tuple[GiProfile, Placement]]:
    """Every placement free and legal next to the GPU's instances and the others asked for."""
    geometry = gpu.geometry()
    occupants = [Occupant(g.profile_id, g.placement) for g in gpu.gpu_instances()]
    for prof, where in steps:
        why = geometry.why_not(occupants, prof, where)
        if why is not None:
            raise InsufficientResourcesError(
                f"GPU {gpu.index}: {prof.name} at {where}: {why}",
                hint=explain_space(gpu, geometry) + "; nothing was created",
            )
        occupants.append(Occupant(prof.id, where))
    return steps


def _create_planned(
    plans: Sequence[tuple[Gpu, Sequence[tuple[GiProfile, Placement]]]],
    compute_instance: bool,
    what: str,
    *,
    parallel: bool = False,
) -> CreateReport:
    """Journal each GPU, create every instance, undo them all on any failure (host lock held).

    ``parallel``: each GPU in its own thread (the driver changes GPUs independently), the way
    ``apply`` runs its GPUs; a failure on any GPU still undoes what every GPU made. An undo that
    could not complete leaves its journals marked cancelled: ``recover`` only rolls them back.
    """
    undo = Undo(what)
    made: list[list[CreatedInstance]] = [[] for _ in plans]
    journals: list[tuple[Path, Gpu, Target, Target]] = []

    def one(k: int) -> None:
        gpu, steps = plans[k]
        for prof, where in steps:
            made[k].append(_create_one(gpu, prof, where, compute_instance, undo))

    try:
        for gpu, steps in plans:
            journals.append(_journal_create(gpu, steps, compute_instance, what))
        if parallel and len(plans) > 1:
            with ThreadPoolExecutor(max_workers=len(plans)) as pool:
                futures = [pool.submit(one, k) for k in range(len(plans))]
            for future in futures:  # every GPU has finished; the first failure, if any
                future.result()
        else:
            for k in range(len(plans)):
                one(k)
    except Exception as exc:  # the driver, a stop request, a full disk, anything: undo it all
        note, complete = undo.note([g.index for g, _ in plans])
        for path, gpu, target, before in journals:
            if complete:
                journal.remove(path)
            else:  # what is left is for recover to roll back, never to finish
                journal.mark_cancelled(path, gpu.index, what, target, before)
        raise _create_error(exc, note, complete) from None
    for path, *_ in journals:
        journal.remove(path)
    return CreateReport(tuple(c for per_gpu in made for c in per_gpu))


def _create_error(exc: Exception, note: str, complete: bool) -> MigctlError:
    tail = "" if complete else "; then run migctl recover (it rolls back what is left)"
    if isinstance(exc, cancel.Cancelled):
        return Interrupted(f"interrupted by {exc}: {note}{tail}", rolled_back=complete)
    if isinstance(exc, _Failed):
        return from_nvml(exc.exc, exc.action, hint=note + tail, rolled_back=complete)
    if isinstance(exc, MigctlError):
        hint = f"{exc.hint}; {note}" if exc.hint else note
        return type(exc)(exc.message, hint=hint + tail, nvml_code=exc.nvml_code, rolled_back=complete)
    return MigctlError(f"creating failed: {type(exc).__name__}: {exc}", hint=note + tail, rolled_back=complete)


def _create_one(gpu: Gpu, prof: GiProfile, where: Placement, compute_instance: bool, undo: Undo) -> CreatedInstance:
    cancel.checkpoint(f"create GI {prof.name} at {where} on GPU {gpu.index}")
    def made_gi() -> GpuInstance | None:
        return next((g for g in gpu.gpu_instances() if g.placement == where and g.profile_id == prof.id), None)

    try:
        gi = undo.create(partial(gpu.create_gpu_instance, prof.id, where), made_gi)
    except pynvml.NVMLError as exc:
        raise _Failed(exc, f"creating {prof.name} at {where} on GPU {gpu.index}", gpu) from None
    if not compute_instance:
        return CreatedInstance(gpu.index, gi.id, prof.name, prof.id, where, None, None, None)
    default = gi.default_ci_profile()
    cancel.checkpoint(f"create the compute instance in GI {gi.id} on GPU {gpu.index}")
    try:
        if default is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

        def made_ci() -> ComputeInstance | None:  # a fresh GI: any compute instance in it is the one made
            return next(iter(gi.compute_instances()), None)

        ci = undo.create(partial(gi.create_compute_instance, default.id), made_ci)
    except pynvml.NVMLError as exc:
        raise _Failed(exc, f"creating the compute instance in GI {gi.id} on GPU {gpu.index}", gpu) from None
    return CreatedInstance(gpu.index, gi.id, prof.name, prof.id, where, ci.id, ci.profile, ci.uuid)


def _journal_create(
    gpu: Gpu, steps: Sequence[tuple[GiProfile, Placement]], compute_instance: bool, what: str
) -> tuple[Path, Gpu, Target, Target]:
    """Journal the create, so a ``kill -9`` half-way is finished by ``migctl recover``."""
    before = journal.pinned(True, existing_instances(gpu, None))
    adds = tuple(TargetInstance(prof.id, where, None if compute_instance else ()) for prof, where in steps)
    target = Target(True, before.instances + adds)
    return journal.write(gpu.index, what, target, before), gpu, target, before


# -- compute instances --------------------------------------------------------------------


def create_ci(
    node: Node,
    gpu: Gpu,
    gi_id: int,
    requests: Sequence[ProfileRequest],
    *,
    wait_s: float | None = None,
) -> CreateReport:
    """``nvidia-smi mig -cci LIST -gi ID``: compute instances in one GPU instance, all or nothing.

    No ``requests``: the default compute instance (the one spanning the GPU instance).
    """
    check_counts([], requests)
    early = gpu.gpu_instance(gi_id) if gpu.mig_mode() is not None else None
    if early is not None:  # before the lock: a count no GPU instance could hold is refused at once
        slices = gpu.profile_by_id(early.profile_id).slice_count
        asked = sum(r.count for r in requests)
        if asked > slices:
            raise UsageError(
                f"GI {gi_id} on GPU {gpu.index} has {slices} compute slice(s): at most {slices} compute instance(s) "
                f"fit, {asked} were asked for",
                hint="nothing was created",
            )
    with host_lock(wait_s), cancel.cancellable():
        require_mig_enabled(gpu)
        gi = gpu.gpu_instance(gi_id)
        if gi is None:
            ids = ", ".join(str(g.id) for g in gpu.gpu_instances()) or "none"
            raise UsageError(f"GPU {gpu.index} has no GPU instance {gi_id}", hint=f"its GPU instances: {ids}")
        wanted = []
        if not requests:
            default = gi.default_ci_profile()
            if default is None:
                raise NotSupportedError(f"GI {gi_id} offers no default compute-instance profile")
            wanted = [default]
        for r in requests:
            wanted.extend([resolve_ci_profile(gi, r.profile)] * r.count)
        where = place(gi, wanted)
        if where is None:
            have = ", ".join(f"CI {c.id} ({c.profile})" for c in gi.compute_instances()) or "no compute instances"
            raise InsufficientResourcesError(
                f"GI {gi_id} on GPU {gpu.index}: {', '.join(p.name for p in wanted)} do not fit "
                f"in its {gpu.profile_by_id(gi.profile_id).slice_count} compute slices",
                hint=f"it has {have}; nothing was created",
            )
        undo = Undo(f"migctl create-ci -gi {gi_id}")
        made = []
        try:
            for prof, at in zip(wanted, where, strict=True):
                cancel.checkpoint(f"create CI {prof.name} at {at} in GI {gi_id} on GPU {gpu.index}")
                try:
                    ci = undo.create(partial(gi.create_compute_instance, prof.id, at), partial(_ci_at, gi, prof.id, at))
                except pynvml.NVMLError as exc:
                    raise _Failed(exc, f"creating {prof.name} in GI {gi_id} on GPU {gpu.index}", gpu) from None
                made.append(_created_ci(gpu, gi, ci))
        except Exception as exc:
            note, complete = undo.note([gpu.index])
            raise _create_error(exc, note, complete) from None
        return CreateReport(tuple(made))


def _ci_at(gi: GpuInstance, profile_id: int, at: Placement) -> ComputeInstance | None:
    """The compute instance at ``at`` (a create reported as failed may have made it)."""
    return next((c for c in gi.compute_instances() if c.placement == at and c.profile_id == profile_id), None)


def _created_ci(gpu: Gpu, gi: GpuInstance, ci: ComputeInstance) -> CreatedInstance:
    return CreatedInstance(gpu.index, gi.id, gi.profile, gi.profile_id, gi.placement, ci.id, ci.profile, ci.uuid)
