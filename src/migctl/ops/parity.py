"""What mig-parted users expect besides apply: ``--mode-only``, ``checkpoint``, ``restore``, ``generate-config``.

* ``--mode-only`` (mig-parted ``apply --mode-only``): only the ``mig-enabled`` setting of each
  covered GPU is applied; instances are left as they are, except that disabling MIG needs them
  gone (never busy ones: that GPU is refused, as apply refuses).
* ``checkpoint``: the node's exact MIG state (mode, every GPU instance with its placement, every
  compute instance with its placement), :class:`~migctl.records.parity.Checkpoint`.
* ``restore``: brings each checkpointed GPU (found by UUID) back to that state through apply's
  own planner and transaction, so busy instances are never disturbed (a state that needs them
  gone is refused before anything changes) and what already matches is kept; the leases of what
  it destroys are held until it is gone, Ctrl-C/SIGTERM stop it at a safe point (``interrupted``),
  and any failure rolls that GPU back (docs/safety.md).
* ``generate-config``: the configs mig-parted's ``generate-config`` builds, from the profiles
  NVML reports (:mod:`migctl.config.generate`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from migctl.config.export import render
from migctl.config.generate import generate_spec
from migctl.config.hooks import HooksSpec
from migctl.core.layout import Target
from migctl.device import Gpu, Node
from migctl.errors import UsageError
from migctl.integrations.checkpoint import target
from migctl.ops import journal
from migctl.ops.apply import apply
from migctl.ops.busy import existing_instances, snapshot
from migctl.ops.files import write_file
from migctl.ops.hooks import mig_parted_env
from migctl.ops.plan import GpuPlan, NodePlan, plan_gpu
from migctl.records.parity import (
    Checkpoint,
    CheckpointComputeInstance,
    CheckpointGpu,
    CheckpointGpuInstance,
    CheckpointReport,
    GenerateConfigReport,
    RestoreReport,
)

# -- --mode-only -------------------------------------------------------------------------------------


def mode_only(node: Node, node_plan: NodePlan) -> NodePlan:
    """``node_plan`` reduced to MIG mode changes: enabling keeps the instances a GPU has."""
    gpus: list[GpuPlan] = []
    for g in node_plan.gpus:
        if g.target is None:
            gpus.append(g)
            continue
        gpu = node.gpus[g.gpu]
        if g.target.mig_enabled:
            mode = gpu.mig_mode()
            keep = existing_instances(gpu, snapshot(gpu)) if mode is not None and mode.current else []
            goal = journal.pinned(True, keep)
        else:
            goal = Target(mig_enabled=False)
        gpus.append(plan_gpu(gpu, goal))
    return NodePlan(node_plan.config, node_plan.source, tuple(gpus))


# -- checkpoint --------------------------------------------------------------------------------------


def gpu_state(gpu: Gpu) -> CheckpointGpu | None:
    """One GPU's exact state; ``None`` for a GPU that is not MIG-capable."""
    mode = gpu.mig_mode()
    if mode is None:
        return None
    gis = []
    for gi in gpu.gpu_instances():
        cis = tuple(
            CheckpointComputeInstance(ci.id, ci.profile, ci.profile_id, ci.placement, ci.uuid)
            for ci in gi.compute_instances()
        )
        gis.append(CheckpointGpuInstance(gi.id, gi.profile, gi.profile_id, gi.placement, cis))
    return CheckpointGpu(gpu.index, gpu.uuid, gpu.name, f"0x{gpu.pci_device_id:08X}", mode.current, tuple(gis))


def checkpoint(gpus: Sequence[Gpu]) -> Checkpoint:
    """``migctl checkpoint``: the exact MIG state of ``gpus`` (the MIG-capable ones)."""
    return Checkpoint("migctl.checkpoint/v1", tuple(s for s in (gpu_state(g) for g in gpus) if s is not None))


def write_checkpoint(gpus: Sequence[Gpu], file: str | os.PathLike[str] | None) -> CheckpointReport:
    """Take a checkpoint and, with ``file``, write it there (atomically, 0600)."""
    from migctl.integrations.checkpoint import to_text

    ck = checkpoint(gpus)
    if file is not None:
        write_file(file, to_text(ck), hint="no checkpoint was written")
    return CheckpointReport(None if file is None else os.fspath(file), ck)


# -- restore -----------------------------------------------------------------------------------------


def plan_restore(node: Node, ck: Checkpoint, source: str) -> NodePlan:
    """Plan each checkpointed GPU back to its state; a GPU missing from the node is an error."""
    by_uuid = {g.uuid.lower(): g for g in node.gpus}
    plans = []
    for state in ck.gpus:
        gpu = by_uuid.get(state.uuid.lower())
        if gpu is None:
            raise UsageError(
                f"{source}: GPU {state.uuid} (index {state.index}, {state.name}) is not on this node",
                hint="restore on the node the checkpoint was taken on; nothing was changed",
            )
        if gpu.mig_mode() is None:
            raise UsageError(f"{source}: GPU {gpu.index} ({gpu.name}) is not MIG-capable; nothing was changed")
        ids = {p.id for p in gpu.profiles()}
        for gi in state.gpu_instances:
            if gi.profile_id not in ids:
                raise UsageError(
                    f"{source}: GPU {gpu.index} has no GPU-instance profile {gi.profile_id} ({gi.profile}); "
                    "nothing was changed"
                )
        plans.append(plan_gpu(gpu, target(state)))
    return NodePlan("checkpoint", source, tuple(plans))


def compute_placement_differences(node: Node, ck: Checkpoint) -> tuple[str, ...]:
    """Compute instances whose placement differs from the checkpoint (apply places them itself)."""
    out = []
    by_uuid = {g.uuid.lower(): g for g in node.gpus}
    for state in ck.gpus:
        gpu = by_uuid.get(state.uuid.lower())
        if gpu is None or not state.mig_enabled:
            continue
        now = {gi.placement: gi for gi in gpu.gpu_instances()}
        for want in state.gpu_instances:
            gi = now.get(want.placement)
            if gi is None:
                continue
            have = sorted((ci.profile, ci.placement.start) for ci in gi.compute_instances())
            wanted = sorted((c.profile, c.placement.start) for c in want.compute_instances)
            if have != wanted:
                out.append(
                    f"GPU {gpu.index} GI at {want.placement}: compute instances at "
                    f"{', '.join(f'{p}@{s}' for p, s in have)} (checkpoint: "
                    f"{', '.join(f'{p}@{s}' for p, s in wanted)})"
                )
    return tuple(out)


def restore(
    node: Node,
    ck: Checkpoint,
    source: str,
    *,
    hooks: HooksSpec | None = None,
    hooks_file: str = "",
    only_mode: bool = False,
    wait_s: float | None = None,
    hook_env: Mapping[str, str] | None = None,
) -> RestoreReport:
    """``migctl restore``: every checkpointed GPU back to its state (``only_mode``: its MIG mode).

    Raises the refusal (nothing changed) when a busy instance is in the way, and
    :class:`~migctl.errors.UsageError` for a GPU the node lacks or a profile a GPU lacks.
    """
    node_plan = plan_restore(node, ck, source)
    if only_mode:
        node_plan = mode_only(node, node_plan)
    env = hook_env or mig_parted_env(source, "checkpoint", hooks_file=hooks_file, mode_only=only_mode)
    report = apply(node, node_plan, hooks=hooks, hook_env=env, wait_s=wait_s)
    notes = () if only_mode or not report.ok else compute_placement_differences(node, ck)
    return RestoreReport(
        source, report.ok, only_mode, report.recovered, report.gpus, report.hooks, notes, report.interrupted
    )


# -- generate-config ---------------------------------------------------------------------------------


def generate_config(
    gpus: Sequence[Gpu], file: str | os.PathLike[str] | None = None, fmt: str = "yaml"
) -> GenerateConfigReport:
    """``generate-config``: the v1 config for the MIG-capable GPUs among ``gpus`` (written to
    ``file`` as ``fmt``, ``yaml`` or ``json``, when given)."""
    capable = [(g.pci_device_id, g.geometry()) for g in gpus if g.mig_mode() is not None]
    capable = [(pci, geo) for pci, geo in capable if geo.profiles]
    if not capable:
        raise UsageError(
            "no MIG-capable GPU with MIG profiles found",
            hint="generate-config needs a MIG GPU (on drivers before R550 the profiles show only with MIG "
            "enabled: migctl mode enable)",
        )
    data = generate_spec(capable)
    if file is not None:
        write_file(file, render(data, "json" if fmt == "json" else "yaml"), 0o644, hint="nothing was written")
    return GenerateConfigReport(None if file is None else os.fspath(file), tuple(data["mig-configs"]), data)
