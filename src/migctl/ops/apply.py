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

import pynvml

from migctl.config.hooks import HooksSpec
from migctl.device import Gpu, Node
from migctl.errors import MigctlError, ResetRequiredError, UsageError, from_nvml
from migctl.ops import history, journal
from migctl.ops.busy import node_leases
from migctl.ops.execute import converge, execute_plan
from migctl.ops.hooks import HookError, HookResult, mig_parted_env, run_hook
from migctl.ops.lock import host_lock
from migctl.ops.plan import GpuPlan, NodePlan, plan_gpu, refusal_error
from migctl.ops.recover import recover_locked
from migctl.records.layouts import ApplyReport, GpuOutcome, GpuResult, HookRun


def _apply_gpu(gpu: Gpu, g: GpuPlan, config: str) -> GpuOutcome:
    started = time.perf_counter()

    def outcome(result: GpuResult, detail: str = "", destroyed: int = 0, created: int = 0, kept: int = 0) -> GpuOutcome:
        return GpuOutcome(g.gpu, result, detail, destroyed, created, kept, time.perf_counter() - started)

    if g.target is None:
        return GpuOutcome(g.gpu, "skipped", g.note or "left alone", 0, 0, 0, 0.0)
    if not g.changes:
        kept = len(g.plan.keep) if g.plan else 0
        return GpuOutcome(g.gpu, "unchanged", "already matches", 0, 0, kept, 0.0)
    path = journal.write(g.gpu, config, g.target, journal.pinned(g.mig_before, g.before))
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
            path.unlink(missing_ok=True)
            return outcome("pending", str(err))
        try:
            converge(gpu, journal.pinned(g.mig_before, g.before))
        except (pynvml.NVMLError, MigctlError) as again:
            return outcome(
                "failed",
                f"{err.message}; rolling back also failed ({again}); the journal is kept: run migctl recover",
            )
        path.unlink(missing_ok=True)
        return outcome("rolled_back", f"{err}; GPU {g.gpu} was rolled back to its previous layout")
    path.unlink(missing_ok=True)
    return outcome("applied", "", len(done.destroy), len(done.create), len(done.keep))


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
    with host_lock(wait_s):
        recovered = recover_locked(node)
        leases = node_leases()
        fresh = tuple(
            plan_gpu(node.gpus[g.gpu], g.target, leases) if g.target is not None else g for g in node_plan.gpus
        )
        node_plan = replace(node_plan, gpus=fresh)
        if node_plan.refusals:
            raise refusal_error(node_plan)
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
                    log += _runs(run_hook(hooks, "apply-exit", env, check=False))
    fine = ("applied", "unchanged", "skipped", "pending") if skip_reset else ("applied", "unchanged", "skipped")
    done = all(o.result in fine for o in outcomes)
    exit_failed = any(h.point == "apply-exit" and h.exit_code != 0 for h in log)
    report = ApplyReport(
        node_plan.config, done and not exit_failed, tuple(recovered), tuple(outcomes), tuple(log), node_plan.warnings
    )
    history.record_apply(report)  # for the exporter's migctl_last_apply_* (best effort)
    return report
