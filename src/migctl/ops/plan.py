"""Planning a layout on the node: which target each GPU gets, and the least disruptive way there.

``plan_node`` resolves a mig-parted config (or an inline ``--layout`` entry) for every chosen
GPU (:mod:`migctl.config.select`), reads each GPU's instances and who uses them
(:mod:`migctl.ops.busy`), and plans with :func:`migctl.core.planner.plan`. Nothing is
changed. A target that would need a busy instance, or that does not fit, is a *refusal*: the
plan says why, and ``apply`` of such a plan changes nothing at all.

:class:`NodePlan` is what ``apply`` executes; :func:`plan_report` is the record ``migctl
plan`` prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from migctl.config import ConfigError, GpuFacts, MigConfigEntry, MigSpec, Selection, applies_to
from migctl.config import resolve as resolve_entry
from migctl.config.select import select as select_config
from migctl.core.geometry import GpuGeometry
from migctl.core.layout import ExistingInstance, Plan, PlanRefusal, Target
from migctl.core.planner import plan
from migctl.device import Gpu, Node
from migctl.errors import InsufficientResourcesError, InUseError, MigctlError, UsageError
from migctl.ops.busy import GpuUse, existing_instances, node_leases, snapshot
from migctl.ops.files import usage_error
from migctl.records.common import Holder
from migctl.records.layouts import (
    GpuPlanRecord,
    PlannedCreate,
    PlannedInstance,
    PlanReport,
    RecomputedInstance,
)


@dataclass(frozen=True)
class GpuPlan:
    """What apply will do on one GPU."""

    gpu: int
    name: str
    target: Target | None
    """``None``: no entry covers this GPU; it is left alone (``note`` says why)."""
    note: str | None = None
    mode_change: bool | None = None
    """``True``: enable MIG first, ``False``: disable it last, ``None``: unchanged."""
    plan: Plan | None = None
    refusal: PlanRefusal | None = None
    busy: tuple[str, ...] = ()
    """With a refusal: the busy instances in the way and who uses them, in words."""
    before: tuple[ExistingInstance, ...] = ()
    mig_before: bool = False
    geometry: GpuGeometry | None = None
    uncovered: bool = False
    """MIG-capable, but no entry of the config covers it (``assert`` fails on it, as mig-parted's)."""

    @property
    def changes(self) -> bool:
        return self.mode_change is not None or (self.plan is not None and not self.plan.is_noop)


@dataclass(frozen=True)
class NodePlan:
    config: str
    source: str
    gpus: tuple[GpuPlan, ...]
    warnings: tuple[str, ...] = ()
    """What in the config matches no GPU although it was meant to (empty entries, filters that
    are not PCI IDs)."""
    uncovered: UsageError | None = None
    """Set when the config gives none of the chosen GPUs a target: almost certainly a config
    meant for other GPUs (``apply`` refuses it; ``plan`` reports it as its error)."""

    @property
    def refusals(self) -> list[GpuPlan]:
        return [g for g in self.gpus if g.refusal is not None]

    @property
    def error(self) -> MigctlError | None:
        """Why ``apply`` of this plan would change nothing: a refusal, or a config for other GPUs."""
        return refusal_error(self) if self.refusals else self.uncovered


def gpu_facts(gpu: Gpu) -> GpuFacts:
    mode = gpu.mig_mode()
    geometry = gpu.geometry() if mode is not None else None
    return GpuFacts(gpu.index, gpu.pci_device_id, geometry, gpu.name, gpu.pci_subsystem_id)


def _ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5``."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def uncovered_error(spec: MigSpec, config: str, facts: Sequence[GpuFacts], selection: Selection) -> UsageError | None:
    """The error for a config that gives none of the chosen GPUs a target (``None`` otherwise),
    naming the GPUs and the configs of the file that would cover them."""
    if selection.targets or not facts:
        return None
    models: dict[tuple[str, int], list[int]] = {}
    for f in facts:
        models.setdefault((f.name, f.pci_device_id), []).append(f.index)
    gpus = "; ".join(
        f"GPU{'s' if len(ids) > 1 else ''} {_ranges(ids)}: {name}, 0x{pci:08X}" for (name, pci), ids in models.items()
    )
    capable = [f for f in facts if f.geometry is not None]
    samples = list({f.pci_device_id: f for f in capable}.values())
    renumbered = [replace(s, index=i) for i, s in enumerate(samples)]
    fitting = [n for n in spec.names() if samples and n != config and all(applies_to(spec, n, renumbered).values())]
    if not capable:
        hint = "none of them is MIG-capable; nothing was changed"
    elif fitting:
        shown = ", ".join(fitting[:8]) + (f", ... ({len(fitting) - 8} more)" if len(fitting) > 8 else "")
        hint = f"configs in {spec.source} that cover them: {shown}; nothing was changed"
    else:
        hint = f"no config in {spec.source} covers them all; nothing was changed"
    return UsageError(f"config {config!r} covers none of the chosen GPUs ({gpus}): its entries are for other GPUs",
                      hint=hint)


def _busy_words(gpu: Gpu, use: GpuUse, busy: Sequence[ExistingInstance]) -> tuple[str, ...]:
    words = []
    for e in busy:
        gi = gpu.gpu_instance(e.gi_id)
        who = use.of_gpu_instance(gi).words() if gi is not None else []
        name = gpu.profile_by_id(e.profile_id).name
        words.append(f"GI {e.gi_id} ({name} at {e.placement}) is used by " + (", ".join(who) or "a process"))
    return tuple(words)


def plan_gpu(gpu: Gpu, target: Target, leases: Mapping[str, Holder] | None = None) -> GpuPlan:
    """Plan ``target`` on ``gpu`` from what it has now (``leases``: from :func:`node_leases`)."""
    mode = gpu.mig_mode()
    if mode is None:
        return GpuPlan(gpu.index, gpu.name, None, note="not MIG-capable; left alone")
    geometry = gpu.geometry()
    use = snapshot(gpu, leases) if mode.current else None
    current = tuple(existing_instances(gpu, use)) if use is not None else ()
    base = GpuPlan(gpu.index, gpu.name, target, before=current, mig_before=mode.current, geometry=geometry)
    if not target.mig_enabled:
        change = False if (mode.current or mode.pending) else None
        busy = [e for e in current if e.busy]
        if busy and use is not None:
            refusal = PlanRefusal("disabling MIG needs every instance destroyed, and some are in use", tuple(busy))
            return replace(base, mode_change=change, refusal=refusal, busy=_busy_words(gpu, use, busy))
        return replace(base, mode_change=change, plan=Plan(destroy=current))
    change = True if (not mode.current or not mode.pending) else None
    result = plan(geometry, current, target.instances)
    if isinstance(result, PlanRefusal):
        words = _busy_words(gpu, use, result.busy) if result.busy and use is not None else ()
        return replace(base, mode_change=change, refusal=result, busy=words)
    return replace(base, mode_change=change, plan=result)


def plan_node(
    node: Node,
    spec: MigSpec | MigConfigEntry,
    name: str | None,
    gpus: Sequence[Gpu],
    source: str = "<config>",
) -> NodePlan:
    """Resolve the config for each chosen GPU and plan it; nothing is changed.

    ``spec`` is a loaded file (``name`` chooses the config; ``None``: its only one) or one
    entry (an inline ``--layout``: the same entry on every chosen GPU). A config that names a
    profile a GPU lacks is a :class:`~migctl.errors.UsageError` naming file, line and key.
    """
    try:
        return _plan_node(node, spec, name, gpus, source)
    except ConfigError as exc:
        raise usage_error(exc) from None


def _plan_node(
    node: Node, spec: MigSpec | MigConfigEntry, name: str | None, gpus: Sequence[Gpu], source: str
) -> NodePlan:
    facts = [gpu_facts(g) for g in gpus]
    leases = node_leases()
    plans: list[GpuPlan] = []
    if isinstance(spec, MigConfigEntry):
        for gpu, fact in zip(gpus, facts, strict=True):
            if fact.geometry is None:
                plans.append(GpuPlan(gpu.index, gpu.name, None, note="not MIG-capable; left alone"))
                continue
            plans.append(plan_gpu(gpu, resolve_entry(spec, fact), leases))
        return NodePlan(name or "--layout", source, tuple(plans))
    selection = select_config(spec, name, facts)
    for gpu, fact in zip(gpus, facts, strict=True):
        target = selection.targets.get(gpu.index)
        if target is None:
            note = selection.skipped.get(gpu.index, "left alone")
            plans.append(GpuPlan(gpu.index, gpu.name, None, note=note, uncovered=fact.geometry is not None))
        else:
            plans.append(plan_gpu(gpu, target, leases))
    none = uncovered_error(spec, selection.config, facts, selection)
    return NodePlan(selection.config, source, tuple(plans), selection.warnings, none)


def refusal_error(node_plan: NodePlan) -> MigctlError:
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


# -- the record ------------------------------------------------------------------------------


def _gpu_record(g: GpuPlan) -> GpuPlanRecord:
    geo = g.geometry

    def name(pid: int) -> str:
        return geo.by_id(pid).name if geo is not None else str(pid)

    def inst(e: ExistingInstance) -> PlannedInstance:
        return PlannedInstance(e.gi_id, name(e.profile_id), e.placement, tuple(e.compute), e.busy)

    p = g.plan
    return GpuPlanRecord(
        gpu=g.gpu,
        name=g.name,
        covered=g.target is not None,
        note=g.note,
        mode_change=None if g.mode_change is None else ("enable" if g.mode_change else "disable"),
        span=geo.span if geo is not None else 0,
        before=tuple(inst(e) for e in g.before),
        refused=None if g.refusal is None else g.refusal.reason,
        busy=g.busy,
        keep=tuple(inst(e) for e in p.keep) if p else (),
        destroy=tuple(inst(e) for e in p.destroy) if p else (),
        recompute=tuple(
            RecomputedInstance(
                r.instance.gi_id,
                name(r.instance.profile_id),
                r.instance.placement,
                tuple(r.instance.compute),
                r.instance.busy,
                tuple(r.compute),
            )
            for r in (p.recompute if p else ())
        ),
        create=tuple(PlannedCreate(name(c.profile_id), c.placement, tuple(c.compute)) for c in (p.create if p else ())),
    )


def plan_report(node_plan: NodePlan) -> PlanReport:
    """``migctl plan``'s record: every GPU's plan, and the error ``apply`` would fail with (a GPU
    refused, or the config covers none of the GPUs)."""
    error = node_plan.error
    return PlanReport(
        config=node_plan.config,
        source=node_plan.source,
        gpus=tuple(_gpu_record(g) for g in node_plan.gpus),
        refused=bool(node_plan.refusals),
        error=error.record() if error is not None else None,
        warnings=node_plan.warnings,
    )
