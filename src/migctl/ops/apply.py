"""``apply``: a planned layout, each GPU an all-or-nothing transaction, concurrently.

How it differs from mig-parted's: it plans every GPU first (a target that cannot fit, or
that would need a busy instance, is refused before anything changes); it changes only what
differs (instances already right stay, with their UUIDs and running jobs); it creates at
explicit placements (creation order never matters); GPUs are independent transactions
applied concurrently; and each GPU's plan is journaled, so a crash or ``kill -9`` mid-apply
is finished or rolled back by the next ``apply`` or ``migctl recover``
(:mod:`migctl.ops.recover`). mig-parted's hooks run at its hook points
(:mod:`migctl.ops.hooks`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pynvml

from migctl.config.hooks import HooksSpec
from migctl.device import Gpu, Node
from migctl.errors import (
    Interrupted,
    InUseError,
    MigctlError,
    ResetRequiredError,
    StateError,
    UsageError,
    from_nvml,
)
from migctl.ops import cancel, history, journal
from migctl.ops.busy import Claim, describe_lease, node_leases
from migctl.ops.execute import converge, execute_plan
from migctl.ops.hooks import HookError, HookResult, mig_parted_env, run_hook
from migctl.ops.lock import host_lock
from migctl.ops.plan import GpuPlan, NodePlan, plan_gpu, refusal_error
from migctl.ops.recover import recover_locked
from migctl.records.layouts import ApplyReport, GpuOutcome, GpuResult, HookRun


def _apply_gpu(gpu: Gpu, g: GpuPlan, config: str, claim: Claim) -> GpuOutcome:
    started = time.perf_counter()

    def outcome(
        result: GpuResult,
        detail: str = "",
        destroyed: int = 0,
        created: int = 0,
        kept: int = 0,
        error: str | None = None,
    ) -> GpuOutcome:
        return GpuOutcome(g.gpu, result, detail, destroyed, created, kept, time.perf_counter() - started, error)

    if g.target is None:
        return GpuOutcome(g.gpu, "skipped", g.note or "left alone", 0, 0, 0, 0.0)
    if not g.changes:
        kept = len(g.plan.keep) if g.plan else 0
        return GpuOutcome(g.gpu, "unchanged", "already matches", 0, 0, kept, 0.0)
    before = journal.pinned(g.mig_before, g.before)
    try:
        path = journal.write(g.gpu, config, g.target, before)
    except MigctlError as exc:  # a full disk, a damaged folder: nothing was done to this GPU
        return outcome("rolled_back", f"not changed: {exc}", error=exc.kind)
    progress = cancel.Progress()
    try:
        if g.mode_change is not None or g.plan is None:
            done = converge(gpu, g.target, claim)
        else:
            execute_plan(gpu, g.plan, claim)
            done = g.plan
    except Exception as exc:  # a driver failure, a busy instance, a stop request: roll back on any
        claim.release()
        stopped = isinstance(exc, cancel.Cancelled)
        err = as_error(exc, f"applying on GPU {g.gpu}")
        if isinstance(err, ResetRequiredError):
            # The driver stored the mode change; it waits for a GPU reset (Ampere with processes
            # on it). Keep it pending, as `migctl mode` does: rolling back would cancel it, and
            # the hint (stop them, reset, apply again) and exit 7 would describe a state that
            # no longer exists.
            _forget(path)
            return outcome("pending", str(err), error=err.kind)
        if stopped and not progress.changed:
            _forget(path)
            detail = f"interrupted by {exc} before any change; left as it was"
            return outcome("rolled_back", detail, error="interrupted")
        why = f"interrupted by {exc}" if stopped else str(err)
        with cancel.shielded():
            try:
                converge(gpu, before, Claim(f"migctl apply {config}: rolling back"))
            except Exception as again:
                if stopped:
                    journal.mark_cancelled(path, g.gpu, config, g.target, before)
                return outcome(
                    "failed",
                    f"{why}; rolling back also failed ({as_error(again, 'rolling back')}); the journal is kept: "
                    "run migctl recover (it rolls the GPU back)" + ("" if stopped else " or finishes the apply"),
                    error=err.kind if not stopped else "interrupted",
                )
        _forget(path)
        return outcome(
            "rolled_back", f"{why}; GPU {g.gpu} was rolled back to its previous layout", error=err.kind
        )
    finally:
        claim.release()
    _forget(path)
    return outcome("applied", "", len(done.destroy), len(done.create), len(done.keep))


def _forget(path: Path) -> None:
    """The GPU is done or rolled back: drop its journal (one left behind is only ever a no-op for
    ``recover``, which converges on the layout the GPU has)."""
    with contextlib.suppress(MigctlError):
        journal.remove(path)


def _runs(results: list[HookResult]) -> list[HookRun]:
    return [HookRun(r.point, " ".join(r.argv), r.returncode) for r in results]


def _hook(hooks: HooksSpec | None, point: str, env: Mapping[str, str], log: list[HookRun]) -> None:
    if hooks is None:
        return
    try:
        results = run_hook(hooks, point, env)
    except HookError as exc:
        log += _runs(exc.results)
        raise UsageError(f"hook {point} failed: {exc}", hint="nothing more was changed") from None
    log += _runs(results)


def apply(
    node: Node,
    node_plan: NodePlan,
    *,
    hooks: HooksSpec | None = None,
    hook_env: Mapping[str, str] | None = None,
    parallel: bool = True,
    wait_s: float | None = None,
    on_progress: Callable[[GpuOutcome], None] | None = None,
    skip_reset: bool = False,
) -> ApplyReport:
    """Apply a plan made by :func:`migctl.ops.plan.plan_node`: mode changes first, then each GPU
    as a transaction. Raises the refusal (:class:`~migctl.errors.InUseError` or
    :class:`~migctl.errors.InsufficientResourcesError`) before any change when a GPU refuses, and
    :attr:`NodePlan.uncovered` (a :class:`~migctl.errors.UsageError`) when the config covers none
    of the GPUs.

    Re-plans under the host lock (the node may have changed since planning), so the plan it
    executes is always made from the state it changes. ``report.ok`` is false when a GPU did
    not get its layout or the ``apply-exit`` hook failed (as in mig-parted). With
    ``skip_reset`` (mig-parted's ``--skip-reset``) a MIG mode change the driver left pending
    until a GPU reset counts as done: that is what the caller asked for.
    """
    if node_plan.uncovered is not None:
        raise node_plan.uncovered
    env = hook_env or mig_parted_env(node_plan.source, node_plan.config)
    log: list[HookRun] = []
    with host_lock(wait_s), cancel.cancellable() as stop:
        recovered = recover_locked(node)
        damaged = [r for r in recovered if r.result == "damaged" and r.gpu in {g.gpu for g in node_plan.gpus}]
        if damaged:
            raise StateError(
                "; ".join(r.detail for r in damaged),
                hint="nothing was applied; run this apply again once you have looked (it plans from what the "
                "GPU has now)",
            )
        leases = node_leases()
        fresh = tuple(
            plan_gpu(node.gpus[g.gpu], g.target, leases) if g.target is not None else g for g in node_plan.gpus
        )
        node_plan = replace(node_plan, gpus=fresh)
        if node_plan.refusals:
            raise refusal_error(node_plan)
        claims = _claim_all(node, node_plan)
        try:
            _hook(hooks, "apply-start", env, log)
            if any(g.mode_change is not None for g in node_plan.gpus):
                _hook(hooks, "pre-apply-mode", env, log)
            if any(g.plan is not None and not g.plan.is_noop for g in node_plan.gpus):
                _hook(hooks, "pre-apply-config", env, log)
            lock = threading.Lock()

            def one(g: GpuPlan) -> GpuOutcome:
                try:
                    outcome = _apply_gpu(node.gpus[g.gpu], g, node_plan.config, claims[g.gpu])
                except Exception as exc:  # never lose the other GPUs' outcomes over one GPU's surprise
                    detail = f"{as_error(exc, f'applying on GPU {g.gpu}')}; run migctl recover, then check it"
                    outcome = GpuOutcome(g.gpu, "failed", detail, 0, 0, 0, 0.0, "error")
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
            for claim in claims.values():
                claim.release()
            if hooks is not None:
                with contextlib.suppress(HookError):
                    log += _runs(run_hook(hooks, "apply-exit", env, check=False))
        interrupted = stop.name or None
    fine = ("applied", "unchanged", "skipped", "pending") if skip_reset else ("applied", "unchanged", "skipped")
    done = all(o.result in fine for o in outcomes)
    exit_failed = any(h.point == "apply-exit" and h.exit_code != 0 for h in log)
    ok = done and not exit_failed and interrupted is None
    report = ApplyReport(
        node_plan.config, ok, tuple(recovered), tuple(outcomes), tuple(log), node_plan.warnings, interrupted
    )
    history.record_apply(report)  # for the exporter's migctl_last_apply_* (best effort)
    return report


def _claim_all(node: Node, node_plan: NodePlan) -> dict[int, Claim]:
    """Before any change: take the leases of every instance the plan destroys or recomputes.

    A job that leased one of them after the plan was made refuses the whole apply, changing
    nothing (as a refusal at planning would); from here on no new job can start on them.
    """
    claims = {g.gpu: Claim(f"migctl apply {node_plan.config}") for g in node_plan.gpus}
    blocked: list[str] = []
    for g in node_plan.gpus:
        if g.plan is None:
            continue
        gpu = node.gpus[g.gpu]
        doomed = {e.gi_id for e in g.plan.destroy} | {r.instance.gi_id for r in g.plan.recompute}
        for gi in gpu.gpu_instances():
            if gi.id in doomed:
                taken = claims[g.gpu].take(ci.uuid for ci in gi.compute_instances())
                blocked += [f"GI {gi.id} ({gi.profile}) on GPU {g.gpu}: {describe_lease(h)}" for _, h in taken]
    if blocked:
        for claim in claims.values():
            claim.release()
        raise InUseError(
            f"config {node_plan.config!r} cannot be applied: a job started on an instance it would change: "
            + "; ".join(blocked),
            hint="nothing was changed; stop those jobs or choose a layout that keeps their instances",
        )
    return claims


def as_error(exc: BaseException, action: str) -> MigctlError:
    """Any exception met while changing a GPU, as migctl's typed error (the rollback is the caller's)."""
    if isinstance(exc, MigctlError):
        return exc
    if isinstance(exc, pynvml.NVMLError):
        return from_nvml(exc, action)
    if isinstance(exc, cancel.Cancelled):
        return Interrupted(f"{action}: interrupted by {exc}")
    return MigctlError(f"{action}: {type(exc).__name__}: {exc}")
