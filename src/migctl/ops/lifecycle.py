"""MIG lifecycle operations: mode, reset, create and destroy, all-or-nothing and explained.

Each function validates the whole request before changing anything, holds the host lock
while it changes the GPU, and undoes its own partial work if the driver fails part-way.
These are the Python API behind the CLI (``migctl mode/reset/create/create-ci/destroy``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pynvml

from migctl.core.geometry import GiProfile, GpuGeometry, Occupant, Placement
from migctl.core.layout import ExistingInstance, PlanRefusal, Target, TargetInstance
from migctl.core.planner import plan
from migctl.device import Gpu, GpuInstance, Node, ProcessInfo
from migctl.errors import (
    InsufficientResourcesError,
    Interrupted,
    InUseError,
    MigctlError,
    NotSupportedError,
    ResetRequiredError,
    UsageError,
    from_nvml,
)
from migctl.ops import journal, leases
from migctl.ops.lock import host_lock

# -- helpers -----------------------------------------------------------------------------


def parse_counted(items: Sequence[str], what: str = "profile") -> list[tuple[str, int]]:
    """``["1g.12gb:2", "19"]`` -> ``[("1g.12gb", 2), ("19", 1)]``; commas also separate."""
    out: list[tuple[str, int]] = []
    for raw in items:
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r"(.+?)(?::(\d+))?", item)
            assert m is not None
            count = int(m[2]) if m[2] is not None else 1
            if count < 1:
                raise UsageError(f"{item!r}: the count after ':' must be at least 1")
            out.append((m[1].strip(), count))
    return out


def _profile_list(geometry: GpuGeometry) -> str:
    return ", ".join(f"{p.name} (ID {p.id})" for p in geometry.profiles)


def resolve_profile(gpu: Gpu, geometry: GpuGeometry, key: str) -> GiProfile:
    found = geometry.find(key)
    if found is None:
        raise UsageError(
            f"{key!r} is not a GPU-instance profile of GPU {gpu.index} ({gpu.name})",
            hint=f"valid profiles: {_profile_list(geometry)}; give names or IDs separated by spaces or commas, "
            "with :COUNT for several (1g.12gb:2); nothing was created",
        )
    return found


def require_mig_enabled(gpu: Gpu) -> None:
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


def existing_instances(gpu: Gpu, busy_all: bool = False) -> list[ExistingInstance]:
    procs = gpu.processes()
    held = leases.holders()
    out = []
    for gi in gpu.gpu_instances():
        cis = gi.compute_instances()
        busy = busy_all or any(p.gi_id == gi.id for p in procs) or any(ci.uuid in held for ci in cis)
        out.append(
            ExistingInstance(
                gi_id=gi.id,
                profile_id=gi.profile_id,
                placement=gi.placement,
                compute=tuple(sorted(ci.profile for ci in cis)),
                busy=busy,
            )
        )
    return out


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


@dataclass
class CreatedInstance:
    gpu: int
    gpu_instance_id: int
    profile: str
    profile_id: int
    placement: dict[str, int]
    compute_instance_id: int | None = None
    compute_profile: str | None = None
    uuid: str | None = None


class _Undo:
    """What this command created, so a failure can put the GPU back as it was."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Any]] = []

    def created_gi(self, gi: GpuInstance) -> None:
        self.steps.append(("gi", gi))

    def created_ci(self, ci: Any) -> None:
        self.steps.append(("ci", ci))

    def made(self) -> str:
        """What would be undone, in words ("2 GPU instance(s) and 2 compute instance(s)")."""
        gis = sum(1 for kind, _ in self.steps if kind == "gi")
        return _undo_made(gis, len(self.steps) - gis)

    def rollback(self) -> list[str]:
        problems = []
        for kind, obj in reversed(self.steps):
            try:
                obj.destroy()
            except pynvml.NVMLError as exc:
                problems.append(f"could not destroy {kind} {getattr(obj, 'id', '?')}: {exc}")
        self.steps.clear()
        return problems


def _undo_made(gis: int, cis: int) -> str:
    """``"2 GPU instance(s) and 1 compute instance(s)"``; empty when both are zero."""
    parts = [f"{n} {what} instance(s)" for n, what in ((gis, "GPU"), (cis, "compute")) if n]
    return " and ".join(parts)


def _undo_note(undo: _Undo, gpu: Gpu) -> tuple[str, bool]:
    """Roll back, and say what happened; the flag is whether the rollback was complete."""
    made = undo.made()
    problems = undo.rollback()
    if problems:
        return "rollback incomplete: " + "; ".join(problems) + f"; inspect with migctl status -i {gpu.index}", False
    if not made:
        return "nothing had been created yet; nothing changed", True
    return f"the {made} this command had created were destroyed again; nothing changed", True


def _rolled_back(exc: pynvml.NVMLError, action: str, undo: _Undo, gpu: Gpu) -> MigctlError:
    note, complete = _undo_note(undo, gpu)
    return from_nvml(exc, action, hint=note, rolled_back=complete)


# -- create ------------------------------------------------------------------------------


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


def plan_creates(gpu: Gpu, requests: list[tuple[str, int]], placement: int | None) -> list[tuple[GiProfile, Placement]]:
    """Where each requested GPU instance will go: explicit placements found before any change."""
    require_mig_enabled(gpu)
    geometry = gpu.geometry()
    wanted: list[GiProfile] = []
    for key, count in requests:
        wanted.extend([resolve_profile(gpu, geometry, key)] * count)
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
    current = existing_instances(gpu, busy_all=True)  # create never destroys anything
    target = [TargetInstance(e.profile_id, e.placement, e.compute) for e in current]
    target += [TargetInstance(p.id, pin, None) for p in wanted]
    result = plan(geometry, current, target)
    if isinstance(result, PlanRefusal) or result.destroy or result.recompute:
        names = ", ".join(p.name for p in wanted)
        raise InsufficientResourcesError(
            f"GPU {gpu.index}: {names} {'does not' if len(wanted) == 1 else 'cannot all'} fit next to its "
            f"{len(current)} existing GPU instance(s)",
            hint=explain_space(gpu, geometry)
            + _what_would_fit(geometry, current, target, wanted)
            + "; nothing was created",
        )
    by_id = {p.id: p for p in geometry.profiles}
    # The planner tries placements in the driver's own order (fewest still-possible placements
    # blocked), so these leave room for large profiles later, as nvidia-smi's would.
    return [(by_id[c.profile_id], c.placement) for c in result.create]


def create(
    node: Node,
    gpus: Sequence[Gpu],
    requests: list[tuple[str, int]],
    *,
    placement: int | None = None,
    compute_instance: bool = True,
    wait_s: float | None = None,
) -> list[CreatedInstance]:
    """``nvidia-smi mig -cgi LIST -C``, done right: all or nothing, in an order that always fits.

    >>> create(node, node.select("0"), [("1g.12gb", 2)])              # doctest: +SKIP
    [CreatedInstance(gpu=0, gpu_instance_id=13, ...), CreatedInstance(gpu=0, gpu_instance_id=11, ...)]
    """
    with host_lock(wait_s):
        plans = [(gpu, plan_creates(gpu, requests, placement)) for gpu in gpus]
        what = "migctl create " + " ".join(f"{key}:{count}" for key, count in requests)
        journals = [_journal_create(gpu, steps, compute_instance, what) for gpu, steps in plans]
        undo = _Undo()
        made: list[CreatedInstance] = []
        keep_journals = False
        try:
            for gpu, steps in plans:
                for prof, where in steps:
                    made.append(_create_one(gpu, prof, where, compute_instance, undo))
        except _Failed as failed:
            err = _rolled_back(failed.exc, failed.action, undo, failed.gpu)
            keep_journals = not err.details.get("rolled_back", False)
            raise err from None
        except (KeyboardInterrupt, SystemExit):
            note, complete = _undo_note(undo, plans[0][0])
            keep_journals = not complete
            raise Interrupted("interrupted: " + note + ("" if complete else "; then run migctl recover")) from None
        finally:
            if not keep_journals:
                for path in journals:
                    path.unlink(missing_ok=True)
        return made


class _Failed(Exception):
    def __init__(self, exc: pynvml.NVMLError, action: str, gpu: Gpu) -> None:
        self.exc, self.action, self.gpu = exc, action, gpu


def _create_one(gpu: Gpu, prof: GiProfile, where: Placement, compute_instance: bool, undo: _Undo) -> CreatedInstance:
    try:
        gi = gpu.create_gpu_instance(prof.id, where)
    except pynvml.NVMLError as exc:
        raise _Failed(exc, f"creating {prof.name} at {where} on GPU {gpu.index}", gpu) from None
    undo.created_gi(gi)
    item = CreatedInstance(gpu.index, gi.id, prof.name, prof.id, {"start": where.start, "size": where.size})
    if compute_instance:
        default = gi.default_ci_profile()
        try:
            if default is None:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            ci = gi.create_compute_instance(default.id)
        except pynvml.NVMLError as exc:
            raise _Failed(exc, f"creating the compute instance in GI {gi.id} on GPU {gpu.index}", gpu) from None
        undo.created_ci(ci)
        item.compute_instance_id, item.compute_profile, item.uuid = ci.id, ci.profile, ci.uuid
    return item


def _journal_create(gpu: Gpu, steps: list[tuple[GiProfile, Placement]], compute_instance: bool, what: str) -> Path:
    """Journal the create, so a ``kill -9`` half-way is finished by ``migctl recover``."""
    current = existing_instances(gpu, busy_all=True)
    before = journal.pinned(True, current)
    adds = tuple(TargetInstance(prof.id, where, None if compute_instance else ()) for prof, where in steps)
    return journal.write(gpu.index, what, Target(True, before.instances + adds), before)


# -- compute instances --------------------------------------------------------------------


def _ci_layout(gi: GpuInstance, wanted: list[Any]) -> list[Placement] | None:
    """Explicit placements for ``wanted`` CI profiles next to the existing CIs, or ``None``."""
    taken = [(ci.profile_id, ci.placement) for ci in gi.compute_instances()]
    slices = gi.gpu.profile_by_id(gi.profile_id).slice_count
    by_id = {p.id: p for p in gi.ci_profiles()}
    order = sorted(range(len(wanted)), key=lambda i: -wanted[i].slice_count)
    result: dict[int, Placement] = {}

    def fits(pid: int, where: Placement, state: list[tuple[int, Placement]]) -> bool:
        if any(where.overlaps(p) for _, p in state):
            return False
        if sum(1 for q, _ in state if q == pid) >= by_id[pid].instance_count:
            return False
        return sum(by_id[q].slice_count for q, _ in state) + by_id[pid].slice_count <= slices

    def search(k: int, state: list[tuple[int, Placement]]) -> bool:
        if k == len(order):
            return True
        prof = wanted[order[k]]
        for where in prof.placements:
            if fits(prof.id, where, state):
                result[order[k]] = where
                if search(k + 1, [*state, (prof.id, where)]):
                    return True
        return False

    return [result[i] for i in range(len(wanted))] if search(0, taken) else None


def create_ci(
    node: Node, gpu: Gpu, gi_id: int, requests: list[tuple[str, int]], *, wait_s: float | None = None
) -> list[CreatedInstance]:
    """``nvidia-smi mig -cci LIST -gi ID``: compute instances in one GPU instance, all or nothing."""
    with host_lock(wait_s):
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
        for key, count in requests:
            prof = gi.find_ci_profile(key)
            if prof is None:
                valid = ", ".join(f"{p.name} (ID {p.id})" for p in gi.ci_profiles())
                raise UsageError(
                    f"{key!r} is not a compute-instance profile of GI {gi_id} ({gi.profile}) on GPU {gpu.index}",
                    hint=f"valid: {valid}; nothing was created",
                )
            wanted.extend([prof] * count)
        where = _ci_layout(gi, wanted)
        if where is None:
            have = ", ".join(f"CI {c.id} ({c.profile})" for c in gi.compute_instances()) or "no compute instances"
            raise InsufficientResourcesError(
                f"GI {gi_id} on GPU {gpu.index}: {', '.join(p.name for p in wanted)} do not fit "
                f"in its {gpu.profile_by_id(gi.profile_id).slice_count} compute slices",
                hint=f"it has {have}; nothing was created",
            )
        undo = _Undo()
        made = []
        for prof, place in zip(wanted, where, strict=True):
            try:
                ci = gi.create_compute_instance(prof.id, place)
            except pynvml.NVMLError as exc:
                raise _rolled_back(exc, f"creating {prof.name} in GI {gi_id} on GPU {gpu.index}", undo, gpu) from None
            undo.created_ci(ci)
            made.append(
                CreatedInstance(
                    gpu.index,
                    gi.id,
                    gi.profile,
                    gi.profile_id,
                    {"start": gi.placement.start, "size": gi.placement.size},
                    ci.id,
                    ci.profile,
                    ci.uuid,
                )
            )
        return made


# -- destroy -----------------------------------------------------------------------------


@dataclass
class Destroyed:
    gpu: int
    gpu_instance_id: int
    compute_instance_id: int | None
    profile: str
    uuid: str | None = None


def _users(procs: list[ProcessInfo], held: dict[str, dict[str, Any]], gi: GpuInstance, ci: Any | None) -> list[str]:
    who = [p.describe() for p in procs if p.gi_id == gi.id and (ci is None or p.ci_id == ci.id)]
    cis = gi.compute_instances() if ci is None else [ci]
    for c in cis:
        h = held.get(c.uuid)
        if h:
            who.append(f"pid {h.get('pid')} ({h.get('command', '?')}, leased through migctl run)")
    return who


def destroy(
    node: Node,
    gpus: Sequence[Gpu],
    *,
    gi_ids: Sequence[int] = (),
    ci_ids: Sequence[tuple[int, int]] = (),
    uuids: Sequence[str] = (),
    everything: bool = False,
    wait_s: float | None = None,
) -> list[Destroyed]:
    """``nvidia-smi mig -dci`` then ``-dgi``: refuses (destroying nothing) if any target is in use."""
    if not (gi_ids or ci_ids or uuids or everything):
        raise UsageError("say what to destroy: --gi ID, --ci GI:CI, --uuid MIG-... or --all")
    with host_lock(wait_s):
        held = leases.holders()
        cis_to_go: list[tuple[Gpu, GpuInstance, Any]] = []
        gis_to_go: list[tuple[Gpu, GpuInstance]] = []
        users: list[str] = []
        targets = list(gpus)
        if uuids:
            for u in uuids:
                owner = [g for g in node.gpus if any(m.uuid == u for m in g.mig_devices())]
                if not owner:
                    raise UsageError(f"no MIG device has UUID {u}", hint="list them with: migctl devices")
                if owner[0] not in targets:
                    targets.append(owner[0])
        for gpu in targets:
            mode = gpu.mig_mode()
            if mode is None or not mode.current:
                if everything:
                    continue
                raise NotSupportedError(f"MIG is not enabled on GPU {gpu.index}: it has no instances to destroy")
            gis = {g.id: g for g in gpu.gpu_instances()}
            procs = gpu.processes()
            chosen_gis = list(gis) if everything else [i for i in gi_ids if gpu in gpus]
            for gi_id in chosen_gis:
                if gi_id not in gis:
                    raise UsageError(
                        f"GPU {gpu.index} has no GPU instance {gi_id}",
                        hint=f"its GPU instances: {', '.join(map(str, gis)) or 'none'}",
                    )
                gi = gis[gi_id]
                users += [f"GI {gi.id} ({gi.profile}) on GPU {gpu.index}: {w}" for w in _users(procs, held, gi, None)]
                cis_to_go += [(gpu, gi, ci) for ci in gi.compute_instances()]
                gis_to_go.append((gpu, gi))
            pairs = [(a, b) for a, b in ci_ids] if gpu in gpus else []
            pairs += [(m.gi_id, m.ci_id) for m in gpu.mig_devices() if m.uuid in uuids]
            for gi_id, ci_id in pairs:
                owner_gi = gis.get(gi_id)
                ci = next((c for c in owner_gi.compute_instances() if c.id == ci_id), None) if owner_gi else None
                if owner_gi is None or ci is None:
                    raise UsageError(
                        f"GPU {gpu.index} has no compute instance {gi_id}:{ci_id}",
                        hint=f"see migctl status -i {gpu.index}",
                    )
                if any(g.id == owner_gi.id and c.id == ci.id for _, g, c in cis_to_go):
                    continue
                users += [
                    f"CI {owner_gi.id}:{ci.id} on GPU {gpu.index}: {w}" for w in _users(procs, held, owner_gi, ci)
                ]
                cis_to_go.append((gpu, owner_gi, ci))
        if users:
            raise InUseError(
                "refusing to destroy instances in use: " + "; ".join(users),
                hint="stop those processes first; nothing was destroyed",
            )
        done: list[Destroyed] = []
        for gpu, gi, ci in cis_to_go:
            try:
                ci.destroy()
            except pynvml.NVMLError as exc:
                raise _partial(exc, f"destroying CI {gi.id}:{ci.id} on GPU {gpu.index}", done) from None
            done.append(Destroyed(gpu.index, gi.id, ci.id, ci.profile, ci.uuid))
        for gpu, gi in gis_to_go:
            try:
                gi.destroy()
            except pynvml.NVMLError as exc:
                raise _partial(exc, f"destroying GI {gi.id} on GPU {gpu.index}", done) from None
            done.append(Destroyed(gpu.index, gi.id, None, gi.profile))
        return done


def _partial(exc: pynvml.NVMLError, action: str, done: list[Destroyed]) -> MigctlError:
    what = ", ".join(
        f"GPU {d.gpu} GI {d.gpu_instance_id}"
        + (f" CI {d.compute_instance_id}" if d.compute_instance_id is not None else "")
        for d in done
    )
    return from_nvml(
        exc,
        action,
        hint=(f"already destroyed: {what}; " if done else "nothing was destroyed; ")
        + "run the same command again to finish",
        destroyed=[asdict(d) for d in done],
    )


# -- mode and reset ------------------------------------------------------------------------


@dataclass
class ModeOutcome:
    gpu: int
    name: str
    requested: str  # "enabled" / "disabled"
    result: str  # enabled, disabled, pending, refused, not_supported
    reason: str | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)
    instances: list[dict[str, Any]] = field(default_factory=list)


def _proc_json(procs: list[ProcessInfo]) -> list[dict[str, Any]]:
    return [{"pid": p.pid, "user": p.user, "command": p.command, "used_memory_mib": p.used_memory_mib} for p in procs]


def set_mig_mode(
    node: Node,
    gpus: Sequence[Gpu],
    enabled: bool,
    *,
    destroy_instances: bool = False,
    wait_s: float | None = None,
) -> list[ModeOutcome]:
    """``nvidia-smi -i N -mig 1|0`` with the outcome explained per GPU (never a crash).

    Disabling a GPU that has instances is refused (listing them) unless ``destroy_instances``;
    instances with processes are never destroyed.
    """
    word = "enabled" if enabled else "disabled"
    outcomes = []
    with host_lock(wait_s):
        for gpu in gpus:
            out = ModeOutcome(gpu.index, gpu.name, word, word)
            outcomes.append(out)
            mode = gpu.mig_mode()
            if mode is None:
                out.result, out.reason = "not_supported", "this GPU is not MIG-capable"
                continue
            if mode.current == enabled and mode.pending == enabled:
                out.reason = f"already {word}"
                continue
            if not enabled and mode.current:
                gis = gpu.gpu_instances()
                if gis:
                    out.instances = [{"id": g.id, "profile": g.profile, "placement": str(g.placement)} for g in gis]
                    if not destroy_instances:
                        out.result = "refused"
                        out.reason = (
                            f"{len(gis)} GPU instance(s) exist; destroy them first "
                            f"(migctl destroy -i {gpu.index} --all) or pass --destroy-instances"
                        )
                        continue
                    try:
                        destroy(node, [gpu], everything=True, wait_s=0)
                    except MigctlError as exc:
                        out.result, out.reason = "refused", exc.message
                        out.processes = _proc_json(gpu.processes())
                        continue
            try:
                status = gpu.set_mig_mode(enabled)
            except pynvml.NVMLError as exc:
                if exc.value == pynvml.NVML_ERROR_IN_USE:
                    out.result = "refused"
                    out.processes = _proc_json(gpu.processes())
                    out.reason = (
                        "processes are using the GPU; stop them and retry"
                        if out.processes
                        else "the driver reports the GPU in use (e.g. nvidia-persistenced, DCGM, monitoring agents)"
                    )
                    continue
                if exc.value == pynvml.NVML_ERROR_NOT_SUPPORTED:
                    out.result, out.reason = "not_supported", "the driver refused: Not Supported"
                    continue
                raise from_nvml(exc, f"setting MIG mode on GPU {gpu.index}") from None
            now = gpu.mig_mode()
            if now is not None and now.current != enabled:
                out.result = "pending"
                out.processes = _proc_json(gpu.processes())
                if status == pynvml.NVML_ERROR_IN_USE or out.processes:
                    out.reason = f"processes are using the GPU; stop them, then run migctl reset -i {gpu.index}"
                else:
                    out.reason = f"a GPU reset is needed: migctl reset -i {gpu.index}"
    return outcomes


def mode_exit_code(outcomes: list[ModeOutcome], *, explicit: bool = True) -> int:
    """The exit code for ``migctl mode``. GPUs that are not MIG-capable only fail the command
    when the user named them (``explicit``) or no GPU is MIG-capable; on a mixed node without
    ``-i`` they are reported and skipped, so automation sees success when every MIG GPU got its
    mode."""
    capable = [o for o in outcomes if o.result != "not_supported"]
    results = {o.result for o in (outcomes if explicit or not capable else capable)}
    if "refused" in results:
        return InUseError.exit_code
    if "pending" in results:
        return ResetRequiredError.exit_code
    if "not_supported" in results:
        return NotSupportedError.exit_code
    return 0


@dataclass
class ResetOutcome:
    gpu: int
    mig: dict[str, bool] | None


def reset(
    node: Node, gpus: Sequence[Gpu], *, force: bool = False, wait_s: float | None = None
) -> list[ResetOutcome]:
    """``nvidia-smi --gpu-reset``: makes a pending MIG mode take effect. Refused with processes.

    A reset also destroys every GPU instance. Where no mode change is pending it would only do
    that, so it is refused (naming the instances) unless ``force``.
    """
    with host_lock(wait_s):
        busy = [(g, g.processes()) for g in gpus]
        named = [f"GPU {g.index}: " + ", ".join(p.describe() for p in procs) for g, procs in busy if procs]
        if named:
            raise InUseError(
                "refusing to reset GPUs in use: " + "; ".join(named),
                hint="stop those processes first; nothing was reset",
            )
        if not force:
            wiped = []
            for g in gpus:
                mode = g.mig_mode()
                gis = g.gpu_instances()
                if gis and mode is not None and not mode.is_pending:
                    wiped.append(f"GPU {g.index} ({', '.join(f'GI {gi.id} {gi.profile}' for gi in gis)})")
            if wiped:
                raise InUseError(
                    "a reset would only destroy instances (no MIG mode change is pending): " + "; ".join(wiped),
                    hint="destroy them with migctl destroy --all, or pass --force; nothing was reset",
                )
        out = []
        for gpu in gpus:
            try:
                gpu.reset()
            except pynvml.NVMLError as exc:
                raise from_nvml(exc, f"resetting GPU {gpu.index}") from None
            mode = gpu.mig_mode()
            out.append(
                ResetOutcome(gpu.index, None if mode is None else {"current": mode.current, "pending": mode.pending})
            )
        return out
