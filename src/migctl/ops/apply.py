"""Declarative layouts: plan, transactional apply, recover, assert and export.

How ``apply`` differs from mig-parted's: it plans every GPU first (a target that cannot fit,
or that would need a busy instance, is refused before anything changes); it changes only what
differs (instances already right stay, with their UUIDs and running jobs); it creates at
explicit placements (creation order never matters); GPUs are independent transactions applied
concurrently; and each GPU's plan is journaled, so a crash or ``kill -9`` mid-apply is finished
or rolled back by the next ``apply`` or ``migctl recover``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pynvml

from migctl.config import ConfigError, CurrentGpu, CurrentInstance, GpuFacts, MigConfigEntry, MigSpec, export_text
from migctl.config import resolve as resolve_entry
from migctl.config import select as select_config
from migctl.config.hooks import HookError, HooksSpec, mig_parted_env, run_hook
from migctl.core.geometry import GpuGeometry
from migctl.core.layout import Create, ExistingInstance, Plan, PlanRefusal, Recompute, Target
from migctl.core.planner import difference, plan
from migctl.device import Gpu, GpuInstance, Node
from migctl.errors import (
    InsufficientResourcesError,
    InUseError,
    MigctlError,
    MismatchError,
    ResetRequiredError,
    UsageError,
    from_nvml,
)
from migctl.ops import journal
from migctl.ops.lifecycle import _ci_layout, existing_instances
from migctl.ops.lock import host_lock

# -- planning ----------------------------------------------------------------------------


@dataclass
class GpuPlan:
    """What apply will do on one GPU."""

    gpu: int
    name: str
    target: Target | None  # None: no entry covers this GPU; it is left alone
    note: str | None = None  # why it is left alone, or other context
    mode_change: bool | None = None  # True: enable, False: disable, None: unchanged
    plan: Plan | None = None
    refusal: PlanRefusal | None = None
    busy: list[str] = field(default_factory=list)  # processes in the way, in words
    before: list[ExistingInstance] = field(default_factory=list)
    mig_before: bool = False
    geometry: GpuGeometry | None = None
    uncovered: bool = False  # MIG-capable, but no entry of the config covers it

    @property
    def changes(self) -> bool:
        return self.mode_change is not None or (self.plan is not None and not self.plan.is_noop)


@dataclass
class NodePlan:
    config: str
    source: str
    gpus: list[GpuPlan]

    @property
    def refusals(self) -> list[GpuPlan]:
        return [g for g in self.gpus if g.refusal is not None]


def gpu_facts(gpu: Gpu) -> GpuFacts:
    mode = gpu.mig_mode()
    return GpuFacts(gpu.index, gpu.pci_device_id, gpu.geometry() if mode is not None else None, gpu.name)


def _busy_words(gpu: Gpu, busy: Sequence[ExistingInstance]) -> list[str]:
    from migctl.ops import leases

    procs = gpu.processes()
    held = leases.holders()
    words = []
    for e in busy:
        who = [p.describe() for p in procs if p.gi_id == e.gi_id]
        gi = gpu.gpu_instance(e.gi_id)
        for ci in gi.compute_instances() if gi else []:
            h = held.get(ci.uuid)
            if h:
                who.append(f"pid {h.get('pid')} ({h.get('command', '?')}, migctl lease)")
        name = gpu.profile_by_id(e.profile_id).name
        words.append(f"GI {e.gi_id} ({name} at {e.placement}) is used by " + (", ".join(who) or "a process"))
    return words


def plan_gpu(gpu: Gpu, target: Target) -> GpuPlan:
    mode = gpu.mig_mode()
    out = GpuPlan(gpu.index, gpu.name, target)
    if mode is None:
        out.target, out.note = None, "not MIG-capable; left alone"
        return out
    out.mig_before = mode.current
    geometry = gpu.geometry()
    out.geometry = geometry
    current = existing_instances(gpu) if mode.current else []
    out.before = current
    if not target.mig_enabled:
        if mode.current or mode.pending:
            out.mode_change = False
        busy = [e for e in current if e.busy]
        if busy:
            out.busy = _busy_words(gpu, busy)
            out.refusal = PlanRefusal("disabling MIG needs every instance destroyed, and some are in use", tuple(busy))
        else:
            out.plan = Plan(destroy=tuple(current))
        return out
    if not mode.current or not mode.pending:
        out.mode_change = True
    result = plan(geometry, current, target.instances)
    if isinstance(result, PlanRefusal):
        out.refusal = result
        if result.busy:
            out.busy = _busy_words(gpu, result.busy)
    else:
        out.plan = result
    return out


def plan_node(
    node: Node,
    spec: MigSpec | MigConfigEntry,
    name: str | None,
    gpus: Sequence[Gpu],
    source: str = "<config>",
) -> NodePlan:
    """Resolve the config for each chosen GPU and plan it; nothing is changed."""
    facts = [gpu_facts(g) for g in gpus]
    plans: list[GpuPlan] = []
    if isinstance(spec, MigConfigEntry):  # an inline --layout: the same entry on every chosen GPU
        config = name or "--layout"
        for gpu, fact in zip(gpus, facts, strict=True):
            if fact.geometry is None:
                plans.append(GpuPlan(gpu.index, gpu.name, None, note="not MIG-capable; left alone"))
                continue
            plans.append(plan_gpu(gpu, resolve_entry(spec, fact)))
        return NodePlan(config, source, plans)
    selection = select_config(spec, name, facts)
    for gpu, fact in zip(gpus, facts, strict=True):
        target = selection.targets.get(gpu.index)
        if target is None:
            note = selection.skipped.get(gpu.index, "left alone")
            plans.append(GpuPlan(gpu.index, gpu.name, None, note=note, uncovered=fact.geometry is not None))
        else:
            plans.append(plan_gpu(gpu, target))
    return NodePlan(selection.config, source, plans)


def refuse(node_plan: NodePlan) -> MigctlError:
    """The error for a plan some GPU refused: nothing was (or will be) changed."""
    lines = []
    busy = False
    for g in node_plan.refusals:
        assert g.refusal is not None
        why = g.refusal.reason.rstrip(".")
        if g.busy:
            busy = True
            why += ": " + "; ".join(g.busy)
        lines.append(f"GPU {g.gpu}: {why}")
    cls = InUseError if busy else InsufficientResourcesError
    return cls(
        f"config {node_plan.config!r} cannot be applied: " + " | ".join(lines),
        hint="nothing was changed"
        + ("; stop those processes or choose a layout that keeps their instances" if busy else ""),
    )


# -- the journal -------------------------------------------------------------------------


def before_target(g: GpuPlan) -> Target:
    """The GPU's layout before apply, as a target pinned to the same placements."""
    return journal.pinned(g.mig_before, g.before)


def _journal(g: GpuPlan, config: str) -> Path:
    assert g.target is not None
    return journal.write(g.gpu, config, g.target, before_target(g))


# -- executing ---------------------------------------------------------------------------


@dataclass
class GpuOutcome:
    gpu: int
    result: str  # unchanged, applied, rolled_back, failed, skipped, pending
    detail: str = ""
    destroyed: int = 0
    created: int = 0
    kept: int = 0
    seconds: float = 0.0


def _ci_ids(gi: GpuInstance, names: Sequence[str]) -> list[Any]:
    profs = []
    for name in names:
        prof = gi.find_ci_profile(name)
        if prof is None:
            raise UsageError(
                f"compute-instance profile {name!r} does not exist in GI {gi.id} ({gi.profile})",
                hint="valid: " + ", ".join(p.name for p in gi.ci_profiles()),
            )
        profs.append(prof)
    return profs


def _make_compute(gi: GpuInstance, names: Sequence[str]) -> None:
    profs = _ci_ids(gi, names)
    where = _ci_layout(gi, profs)
    if where is None:
        raise InsufficientResourcesError(f"compute instances {', '.join(names)} do not fit in GI {gi.id}")
    for prof, place in zip(profs, where, strict=True):
        gi.create_compute_instance(prof.id, place)


def _destroy_gi(gpu: Gpu, gi_id: int) -> None:
    gi = gpu.gpu_instance(gi_id)
    if gi is None:
        return
    for ci in gi.compute_instances():
        ci.destroy()
    gi.destroy()


def _step(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """One step of an apply; a driver failure is raised as migctl's error naming the step."""
    try:
        return fn(*args)
    except pynvml.NVMLError as exc:
        raise from_nvml(exc, what) from None


def _recompute(gpu: Gpu, r: Recompute) -> None:
    gi = gpu.gpu_instance(r.instance.gi_id)
    if gi is None:
        raise MigctlError(f"GI {r.instance.gi_id} disappeared during apply")
    for ci in gi.compute_instances():
        ci.destroy()
    _make_compute(gi, r.compute)


def execute_plan(gpu: Gpu, p: Plan) -> None:
    """Destroy, recompute, create: in that order, each create at its explicit placement."""

    def name(profile_id: int) -> str:
        return gpu.profile_by_id(profile_id).name

    on = f"on GPU {gpu.index}"
    for e in p.destroy:
        _step(f"destroying GI {e.gi_id} ({name(e.profile_id)} at {e.placement}) {on}", _destroy_gi, gpu, e.gi_id)
    for r in p.recompute:
        e = r.instance
        what = f"replacing the compute instances of GI {e.gi_id} ({name(e.profile_id)} at {e.placement}) {on}"
        _step(what, _recompute, gpu, r)
    for c in p.create:
        what = f"creating {name(c.profile_id)} at {c.placement} {on}"
        gi = _step(what, gpu.create_gpu_instance, c.profile_id, c.placement)
        _step(f"creating compute instances {', '.join(c.compute)} in GI {gi.id} {on}", _make_compute, gi, c.compute)


def _set_mode(gpu: Gpu, enabled: bool) -> None:
    state = "enabling" if enabled else "disabling"
    status = _step(f"{state} MIG mode on GPU {gpu.index}", gpu.set_mig_mode, enabled)
    mode = gpu.mig_mode()
    if mode is not None and mode.current != enabled:
        why = "processes are using it" if status == pynvml.NVML_ERROR_IN_USE else "the driver needs a GPU reset"
        raise ResetRequiredError(
            f"MIG mode change on GPU {gpu.index} is pending: {why}",
            hint=f"stop the processes, then: migctl reset -i {gpu.index}; then apply again",
        )


def converge(gpu: Gpu, target: Target) -> Plan:
    """Take ``gpu`` to ``target`` from whatever it has now (used by apply, rollback and recover)."""
    g = plan_gpu(gpu, target)
    if g.refusal is not None:
        raise InsufficientResourcesError(f"GPU {gpu.index}: {g.refusal.reason}")
    if g.mode_change is False:
        assert g.plan is not None
        execute_plan(gpu, g.plan)
        _set_mode(gpu, False)
        return g.plan
    if g.mode_change is True:
        _set_mode(gpu, True)
        g = plan_gpu(gpu, target)
        if g.refusal is not None:
            raise InsufficientResourcesError(f"GPU {gpu.index}: {g.refusal.reason}")
    assert g.plan is not None
    execute_plan(gpu, g.plan)
    return g.plan


def _apply_gpu(gpu: Gpu, g: GpuPlan, config: str) -> GpuOutcome:
    started = time.perf_counter()
    if g.target is None:
        return GpuOutcome(g.gpu, "skipped", g.note or "left alone")
    if not g.changes:
        kept = len(g.plan.keep) if g.plan else 0
        return GpuOutcome(g.gpu, "unchanged", "already matches", kept=kept)
    journal = _journal(g, config)
    try:
        if g.mode_change is not None or g.plan is None:
            done = converge(gpu, g.target)
        else:
            execute_plan(gpu, g.plan)
            done = g.plan
    except (pynvml.NVMLError, MigctlError) as exc:
        err = exc if isinstance(exc, MigctlError) else from_nvml(exc, f"applying on GPU {g.gpu}")
        if isinstance(err, ResetRequiredError):
            # The driver stored the mode change; it waits for a GPU reset (Ampere with processes
            # on it). Keep it pending, as `migctl mode` does: rolling back would cancel it, and
            # the hint (stop them, reset, apply again) and exit 7 would describe a state that
            # no longer exists.
            journal.unlink(missing_ok=True)
            return GpuOutcome(g.gpu, "pending", str(err), seconds=time.perf_counter() - started)
        try:
            converge(gpu, before_target(g))
        except (pynvml.NVMLError, MigctlError) as again:
            return GpuOutcome(
                g.gpu,
                "failed",
                f"{err.message}; rolling back also failed ({again}); the journal is kept: run migctl recover",
                seconds=time.perf_counter() - started,
            )
        journal.unlink(missing_ok=True)
        return GpuOutcome(
            g.gpu,
            "rolled_back",
            f"{err}; GPU {g.gpu} was rolled back to its previous layout",
            seconds=time.perf_counter() - started,
        )
    journal.unlink(missing_ok=True)
    return GpuOutcome(
        g.gpu,
        "applied",
        "",
        destroyed=len(done.destroy),
        created=len(done.create),
        kept=len(done.keep),
        seconds=time.perf_counter() - started,
    )


@dataclass
class ApplyReport:
    config: str
    recovered: list[dict[str, Any]]
    outcomes: list[GpuOutcome]
    hooks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_hook_failed(self) -> bool:
        return any(h["point"] == "apply-exit" and h["exit_code"] != 0 for h in self.hooks)

    @property
    def ok(self) -> bool:
        """Every GPU applied (or left as it should be), and no apply-exit hook failed.

        As in mig-parted, a failing ``apply-exit`` hook fails an apply that otherwise succeeded.
        """
        done = all(o.result in ("applied", "unchanged", "skipped") for o in self.outcomes)
        return done and not self.exit_hook_failed


def _hook(hooks: HooksSpec | None, point: str, env: dict[str, str], log: list[dict[str, Any]]) -> None:
    if hooks is None:
        return
    try:
        results = run_hook(hooks, point, env)
    except HookError as exc:
        log += [{"point": point, "command": " ".join(r.argv), "exit_code": r.returncode} for r in exc.results]
        raise UsageError(f"hook {point} failed: {exc}", hint="nothing more was changed") from None
    log += [{"point": point, "command": " ".join(r.argv), "exit_code": r.returncode} for r in results]


def apply(
    node: Node,
    node_plan: NodePlan,
    *,
    hooks: HooksSpec | None = None,
    hook_env: dict[str, str] | None = None,
    parallel: bool = True,
    wait_s: float | None = None,
    on_progress: Callable[[GpuOutcome], None] | None = None,
) -> ApplyReport:
    """Apply a plan made by :func:`plan_node`: mode changes first, then each GPU as a transaction.

    Re-plans under the host lock (the node may have changed since planning), so the plan it
    executes is always made from the state it changes.
    """
    env = hook_env or mig_parted_env(node_plan.source, node_plan.config)
    log: list[dict[str, Any]] = []
    with host_lock(wait_s):
        recovered = recover_locked(node)
        fresh = [plan_gpu(node.gpus[g.gpu], g.target) if g.target is not None else g for g in node_plan.gpus]
        node_plan = NodePlan(node_plan.config, node_plan.source, fresh)
        if node_plan.refusals:
            raise refuse(node_plan)
        try:
            _hook(hooks, "apply-start", env, log)
            if any(g.mode_change is not None for g in node_plan.gpus):
                _hook(hooks, "pre-apply-mode", env, log)
            if any(g.plan is not None and not g.plan.is_noop for g in node_plan.gpus):
                _hook(hooks, "pre-apply-config", env, log)
            lock = threading.Lock()

            def one(g: GpuPlan) -> GpuOutcome:
                outcome = _apply_gpu(node.gpus[g.gpu], g, node_plan.config)
                if on_progress is not None:
                    with lock:
                        on_progress(outcome)
                return outcome

            if parallel and len(node_plan.gpus) > 1:
                with ThreadPoolExecutor(max_workers=len(node_plan.gpus)) as pool:
                    outcomes = list(pool.map(one, node_plan.gpus))
            else:
                outcomes = [one(g) for g in node_plan.gpus]
        finally:
            if hooks is not None:
                with contextlib.suppress(HookError):
                    results = run_hook(hooks, "apply-exit", env, check=False)
                    log += [
                        {"point": "apply-exit", "command": " ".join(r.argv), "exit_code": r.returncode} for r in results
                    ]
    return ApplyReport(node_plan.config, recovered, outcomes, log)


# -- recovery ----------------------------------------------------------------------------


def recover_locked(node: Node) -> list[dict[str, Any]]:
    """Finish (or, failing that, roll back) every apply a crash left in the journal."""
    done = []
    for entry in journal.pending():
        index = int(entry["gpu"])
        path = journal.journal_dir() / f"gpu-{index}.json"
        if index >= len(node.gpus):
            path.unlink(missing_ok=True)
            continue
        gpu = node.gpus[index]
        try:
            converge(gpu, journal.target_from(entry["target"]))
            result = "finished"
            detail = f"finished the interrupted apply of config {entry['config']!r}"
        except (pynvml.NVMLError, MigctlError) as exc:
            try:
                converge(gpu, journal.target_from(entry["before"]))
            except (pynvml.NVMLError, MigctlError) as again:
                done.append({"gpu": index, "result": "failed", "detail": f"{exc}; rollback failed too: {again}"})
                continue
            result = "rolled_back"
            detail = f"could not finish config {entry['config']!r} ({exc}); rolled back to the layout before it"
        path.unlink(missing_ok=True)
        done.append({"gpu": index, "result": result, "detail": detail})
    return done


def recover(node: Node, *, wait_s: float | None = None) -> list[dict[str, Any]]:
    """``migctl recover``: complete or undo an apply interrupted by a crash or ``kill -9``."""
    with host_lock(wait_s):
        return recover_locked(node)


# -- assert and export -------------------------------------------------------------------


def check(node_plan: NodePlan, node: Node) -> dict[int, list[str]]:
    """Per GPU, how it differs from its target (empty lists: it matches)."""
    out: dict[int, list[str]] = {}
    for g in node_plan.gpus:
        if g.target is None:
            # mig-parted's assert fails on a MIG-capable GPU that no entry covers.
            if g.uncovered:
                out[g.gpu] = [f"no entry of config {node_plan.config!r} covers this GPU"]
            continue
        gpu = node.gpus[g.gpu]
        mode = gpu.mig_mode()
        lines = []
        if mode is not None and mode.current != g.target.mig_enabled:
            lines.append(
                f"MIG is {'enabled' if mode.current else 'disabled'}, target wants it "
                f"{'enabled' if g.target.mig_enabled else 'disabled'}"
            )
        if mode is not None and mode.pending != mode.current:
            lines.append("a MIG mode change is pending (needs a GPU reset)")
        if g.target.mig_enabled and mode is not None and mode.current and g.geometry is not None:
            lines += difference(g.geometry, g.before, g.target.instances)
        out[g.gpu] = lines
    return out


def assert_node(node: Node, node_plan: NodePlan) -> dict[int, list[str]]:
    diffs = check(node_plan, node)
    bad = {k: v for k, v in diffs.items() if v}
    if bad:
        text = " | ".join(f"GPU {k}: " + "; ".join(v) for k, v in bad.items())
        raise MismatchError(f"the node does not match config {node_plan.config!r}: {text}", differences=bad)
    return diffs


def current_layout(gpus: Sequence[Gpu]) -> list[CurrentGpu]:
    out = []
    for gpu in gpus:
        mode = gpu.mig_mode()
        if mode is None:
            continue
        instances = tuple(
            CurrentInstance(gi.profile, gi.placement.start, tuple(sorted(ci.profile for ci in gi.compute_instances())))
            for gi in gpu.gpu_instances()
        )
        out.append(CurrentGpu(gpu.index, gpu.pci_device_id, mode.current, instances))
    return out


def export(gpus: Sequence[Gpu], fmt: str = "yaml", name: str = "current") -> str:
    """The node's layout as a mig-parted v1 config that ``apply`` reproduces exactly."""
    if fmt not in ("yaml", "json"):
        raise UsageError(f"-o {fmt!r}: expected yaml or json")
    return export_text(current_layout(gpus), name, fmt="json" if fmt == "json" else "yaml")


__all__ = [
    "ApplyReport",
    "ConfigError",
    "Create",
    "GpuOutcome",
    "GpuPlan",
    "NodePlan",
    "Recompute",
    "apply",
    "assert_node",
    "check",
    "export",
    "plan_node",
    "recover",
]
