"""``mode enable|disable`` and ``reset``: MIG mode per GPU, with every outcome explained.

``mode`` reports per GPU rather than failing the whole command: enabled/disabled, pending (the
driver stored it; a GPU reset makes it take effect), refused (with the processes or instances
in the way) or not_supported. Which outcomes fail the command is the front end's rule
(:func:`migctl.cli.lifecycle_cmds.mode_exit_code`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pynvml

from migctl.device import Gpu, Node
from migctl.errors import NVML_TEXT, Interrupted, InUseError, MigctlError, from_nvml
from migctl.ops import cancel
from migctl.ops.busy import Claim, node_leases, snapshot
from migctl.ops.destroy import destroy
from migctl.ops.inspect import process_record
from migctl.ops.lock import host_lock
from migctl.records.common import ProcessRecord
from migctl.records.inspect import MigModeState
from migctl.records.lifecycle import (
    InstanceSummary,
    ModeOutcome,
    ModeReport,
    ModeResult,
    ResetOutcome,
    ResetReport,
)


def _processes(gpu: Gpu) -> tuple[ProcessRecord, ...]:
    return tuple(process_record(p) for p in gpu.processes())


def _mode_one(node: Node, gpu: Gpu, enabled: bool, destroy_instances: bool) -> ModeOutcome:
    word: Literal["enabled", "disabled"] = "enabled" if enabled else "disabled"

    def outcome(
        result: ModeResult,
        reason: str | None = None,
        processes: tuple[ProcessRecord, ...] = (),
        instances: tuple[InstanceSummary, ...] = (),
    ) -> ModeOutcome:
        return ModeOutcome(gpu.index, gpu.name, word, result, reason, processes, instances)

    mode = gpu.mig_mode()
    if mode is None:
        return outcome("not_supported", "this GPU is not MIG-capable")
    if mode.current == enabled and mode.pending == enabled:
        return outcome(word, f"already {word}")
    instances: tuple[InstanceSummary, ...] = ()
    if not enabled and mode.current:
        gis = gpu.gpu_instances()
        if gis:
            instances = tuple(InstanceSummary(g.id, g.profile, g.placement) for g in gis)
            if not destroy_instances:
                reason = (
                    f"{len(gis)} GPU instance(s) exist; destroy them first "
                    f"(migctl destroy -i {gpu.index} --all) or pass --destroy-instances"
                )
                return outcome("refused", reason, instances=instances)
            try:
                destroy(node, [gpu], everything=True, wait_s=0)
            except Interrupted as exc:
                return outcome("interrupted", f"not changed: {exc.message}; {exc.hint}", (), instances)
            except MigctlError as exc:
                return outcome("refused", exc.message, _processes(gpu), instances)
    try:
        cancel.checkpoint(f"{'enable' if enabled else 'disable'} MIG mode on GPU {gpu.index}")
    except cancel.Cancelled as exc:
        return outcome("interrupted", f"not changed: interrupted by {exc}", (), instances)
    try:
        status = gpu.set_mig_mode(enabled)
    except pynvml.NVMLError as exc:
        if exc.value == pynvml.NVML_ERROR_IN_USE:
            procs = _processes(gpu)
            reason = (
                "processes are using the GPU; stop them and retry"
                if procs
                else "the driver reports the GPU in use (e.g. nvidia-persistenced, DCGM, monitoring agents)"
            )
            return outcome("refused", reason, procs, instances)
        if exc.value == pynvml.NVML_ERROR_NOT_SUPPORTED:
            return outcome(
                "not_supported", f"the driver refused: {NVML_TEXT[pynvml.NVML_ERROR_NOT_SUPPORTED]}", (), instances
            )
        raise from_nvml(exc, f"setting MIG mode on GPU {gpu.index}") from None
    now = gpu.mig_mode()
    if now is not None and now.current != enabled:
        procs = _processes(gpu)
        if status == pynvml.NVML_ERROR_IN_USE or procs:
            reason = f"processes are using the GPU; stop them, then run migctl reset -i {gpu.index}"
        else:
            reason = f"a GPU reset is needed: migctl reset -i {gpu.index}"
        return outcome("pending", reason, procs, instances)
    return outcome(word, None, (), instances)


def set_mig_mode(
    node: Node,
    gpus: Sequence[Gpu],
    enabled: bool,
    *,
    destroy_instances: bool = False,
    wait_s: float | None = None,
) -> ModeReport:
    """``nvidia-smi -i N -mig 1|0`` with the outcome explained per GPU (never a crash).

    Disabling a GPU that has instances is refused (listing them) unless ``destroy_instances``;
    instances in use are never destroyed (then that GPU is refused, naming the users).
    """
    with host_lock(wait_s), cancel.cancellable() as stop:
        out = []
        for gpu in gpus:
            if stop.requested:
                out.append(
                    ModeOutcome(gpu.index, gpu.name, "enabled" if enabled else "disabled", "interrupted",
                                f"not changed: interrupted by {stop.name}", (), ())
                )
                continue
            out.append(_mode_one(node, gpu, enabled, destroy_instances))
        return ModeReport(tuple(out), stop.name or None)


def reset(node: Node, gpus: Sequence[Gpu], *, force: bool = False, wait_s: float | None = None) -> ResetReport:
    """``nvidia-smi --gpu-reset``: makes a pending MIG mode take effect. Refused while the GPU is in
    use (a process on it, or a migctl lease on one of its MIG devices).

    A reset also destroys every GPU instance. Where no mode change is pending it would only do
    that, so it is refused (naming the instances) unless ``force``.
    """
    with host_lock(wait_s), cancel.cancellable(), Claim("migctl reset") as claim:
        leases = node_leases()
        uses = [(g, snapshot(g, leases).of_gpu(g.gpu_instances())) for g in gpus]
        named = [f"GPU {g.index}: " + ", ".join(use.words()) for g, use in uses if use.busy]
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
        # A reset destroys every instance: hold their leases and look for processes once more.
        for g in gpus:
            for gi in g.gpu_instances():
                who = claim.users(g, gi)
                if who:
                    raise InUseError(
                        f"refusing to reset GPU {g.index}: GI {gi.id} ({gi.profile}) came into use: {', '.join(who)}",
                        hint="stop those processes first; nothing was reset",
                    )
        out: list[ResetOutcome] = []
        for gpu in gpus:
            try:
                cancel.checkpoint(f"reset GPU {gpu.index}")
            except cancel.Cancelled as exc:
                done = ", ".join(str(o.gpu) for o in out) or "none"
                raise Interrupted(
                    f"interrupted by {exc} before resetting GPU {gpu.index}",
                    hint=f"GPUs reset: {done}; the others were not changed",
                ) from None
            mine = claim.held(gpu)
            try:
                gpu.reset()
            except pynvml.NVMLError as exc:
                raise from_nvml(exc, f"resetting GPU {gpu.index}") from None
            claim.destroyed(mine)
            mode = gpu.mig_mode()
            state = None if mode is None else MigModeState(current=mode.current, pending=mode.pending)
            out.append(ResetOutcome(gpu.index, state))
        return ResetReport(tuple(out))
