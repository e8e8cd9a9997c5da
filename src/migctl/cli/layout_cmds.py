"""Declarative layout commands: plan, apply, assert, export, recover.

Thin over the operations (:mod:`migctl.ops.plan`, :mod:`~migctl.ops.apply`,
:mod:`~migctl.ops.check`, :mod:`~migctl.ops.export`, :mod:`~migctl.ops.recover`): read the
files, call, render the record, and map outcomes to exit codes.

``plan --json`` (and ``apply --dry-run --json``) of a plan some GPU refuses prints one
document, the plan record, whose ``error`` is the refusal; the exit code is that error's.

``-f``, ``-c`` and ``-k`` default to the environment, as mig-parted's service names them
(:mod:`migctl.cli.env`). ``export --format slurm|k8s`` is drawn by :mod:`migctl.cli.scheduler_cmds`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

from migctl.cli import env
from migctl.cli.app import GPUS_OPTION, STATE, WAIT_OPTION, commands, consoles, emit, want_json
from migctl.cli.render import slice_bar, slice_ruler
from migctl.core.geometry import Placement
from migctl.errors import UsageError
from migctl.records.layouts import (
    ApplyReport,
    AssertReport,
    ExportReport,
    GpuOutcome,
    GpuPlanRecord,
    PlanReport,
    RecoverReport,
)

if TYPE_CHECKING:
    from migctl.ops.plan import NodePlan

app = commands()

FILE_OPTION = typer.Option(
    None,
    "-f",
    "--config-file",
    metavar="FILE",
    help="mig-parted v1 config file ('-' reads stdin). Default: $MIGCTL_CONFIG_FILE (or $MIG_PARTED_CONFIG_FILE), "
    "else /etc/migctl/config.yaml if it exists, else NVIDIA's default mig-parted file (shipped with migctl).",
    show_default=False,
)
NAME_OPTION = typer.Option(
    None,
    "-c",
    "--selected-config",
    metavar="NAME",
    help="Name of the config in the file (env MIGCTL_SELECTED_CONFIG).",
    show_default=False,
)
LAYOUT_OPTION = typer.Option(
    None,
    "--layout",
    metavar="LAYOUT",
    help="Inline layout instead of a file, e.g. '3g.48gb,2g.24gb,1g.12gb:2' (docs/config.md).",
    show_default=False,
)


def _node_plan(file: str | None, name: str | None, layout: str | None, gpus: str | None) -> NodePlan:
    from migctl.cli.lifecycle_cmds import parsed
    from migctl.config.inline import parse_layout
    from migctl.ops.files import load_config_file
    from migctl.ops.plan import plan_node

    node = STATE.node()
    chosen = STATE.select(gpus)
    if layout is None:  # mig-parted's variables name the config when -f/-c do not (cli/env.py)
        file, name = env.from_env(file, env.CONFIG_FILE), env.from_env(name, env.SELECTED_CONFIG)
    if layout is not None:
        if file is not None:
            raise UsageError("give either -f FILE -c NAME or --layout, not both")
        entry = parsed(lambda: parse_layout(layout))
        return plan_node(node, entry, None, chosen, source="--layout")
    if file is None:
        if not name:
            raise UsageError("say which layout: -c NAME (NVIDIA's default file, or $MIGCTL_CONFIG_FILE), "
                             "-f FILE -c NAME, or --layout '1g.12gb:7'")
        from migctl.ops.files import default_config_file

        file = default_config_file()
    return plan_node(node, load_config_file(file), name, chosen, source=file)


def _emit_plan(report: PlanReport) -> None:
    """Print the plan (one document with --json); a refusal fails the command with its exit code."""
    emit(report, render_plan)
    if report.error is not None:
        if not want_json():
            hint = f"; {report.error.hint}" if report.error.hint else ""
            consoles.err.print(f"migctl: error: {report.error.message}{hint}")
        raise typer.Exit(report.error.exit_code)


@app.command()
def plan(
    file: str | None = FILE_OPTION,
    name: str | None = NAME_OPTION,
    layout: str | None = LAYOUT_OPTION,
    gpus: str | None = GPUS_OPTION,
) -> None:
    """Show what apply would do, per GPU (keep / destroy / create at placement), changing nothing."""
    from migctl.ops.plan import plan_report

    _emit_plan(plan_report(_node_plan(file, name, layout, gpus)))


@app.command("apply")
def apply_cmd(
    file: str | None = FILE_OPTION,
    name: str | None = NAME_OPTION,
    layout: str | None = LAYOUT_OPTION,
    gpus: str | None = GPUS_OPTION,
    hooks_file: str | None = typer.Option(
        None, "-k", "--hooks-file", metavar="FILE", help="mig-parted hooks file.", show_default=False
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show the plan (same as migctl plan)."),
    sequential: bool = typer.Option(False, "--sequential", help="Apply GPU after GPU instead of concurrently."),
    mode_only: bool = typer.Option(False, "--mode-only", help="Only apply each GPU's MIG mode, not its instances."),
    skip_reset: bool = typer.Option(
        False, "--skip-reset", help="A mode change left pending until a GPU reset is success, not exit 7."
    ),
    wait: float = WAIT_OPTION,
) -> None:
    """Apply a layout: mode changes, then per GPU destroy/create, each GPU a transaction."""
    from migctl.ops import journal
    from migctl.ops.apply import apply
    from migctl.ops.files import load_hooks_file
    from migctl.ops.hooks import mig_parted_env
    from migctl.ops.plan import plan_report

    np = _node_plan(file, name, layout, gpus)
    if mode_only:
        from migctl.ops.parity import mode_only as reduce_to_mode

        np = reduce_to_mode(STATE.node(), np)
    if dry_run:
        _emit_plan(plan_report(np))
        return
    hooks_file = env.from_env(hooks_file, env.HOOKS_FILE)
    hooks = load_hooks_file(hooks_file) if hooks_file is not None else None
    hook_env = mig_parted_env(
        np.source, np.config, hooks_file=hooks_file or "", skip_reset=skip_reset, mode_only=mode_only
    )
    if not want_json():
        console = consoles.out
        interrupted = sorted({int(j["gpu"]) for j in journal.pending()})
        if interrupted:
            # apply first finishes (or rolls back) the interrupted apply, then plans again; this
            # plan was made from the half-applied state, so it may overstate what remains to do.
            console.print(
                f"an interrupted apply left GPU(s) {', '.join(map(str, interrupted))} half-changed: it is finished "
                "or rolled back first (as migctl recover does), then the plan below is made again"
            )
        render_plan(console, plan_report(np))
    report = apply(
        STATE.node(), np, hooks=hooks, hook_env=hook_env, parallel=not sequential, wait_s=wait, skip_reset=skip_reset
    )
    emit(report, render_apply)
    if not report.ok:
        raise typer.Exit(apply_exit_code(report.gpus))


def apply_exit_code(outcomes: tuple[GpuOutcome, ...]) -> int:
    """7 when the only thing missing is a mode change pending a GPU reset, else 1 (a failed apply)."""
    results = {o.result for o in outcomes}
    pending_only = "pending" in results and results <= {"pending", "applied", "unchanged", "skipped"}
    return 7 if pending_only else 1


@app.command("assert")
def assert_cmd(
    file: str | None = FILE_OPTION,
    name: str | None = NAME_OPTION,
    layout: str | None = LAYOUT_OPTION,
    gpus: str | None = GPUS_OPTION,
) -> None:
    """Exit 0 if the node matches the layout, else exit 10 with each GPU's differences."""
    from migctl.ops.check import check

    report = check(_node_plan(file, name, layout, gpus), STATE.node())
    emit(report, render_assert)
    if not report.matches:
        raise typer.Exit(10)


@app.command()
def export(
    gpus: str | None = GPUS_OPTION,
    output: str = typer.Option(
        "yaml", "-o", "--output-format", metavar="yaml|json", help="The file's format (default yaml).",
        show_default=False,
    ),
    name: str = typer.Option(
        "current", "--name", metavar="NAME", help="Name of the exported config (default current).", show_default=False
    ),
    portable: bool = typer.Option(
        False, "--portable", help="Leave out migctl's x-migctl keys (placements) so mig-parted can read the file."
    ),
    fmt: str = typer.Option(
        "mig-parted",
        "--format",
        metavar="mig-parted|slurm|k8s",
        help="mig-parted (v1 config, the default), slurm (gres.conf, NodeName) or k8s (resources, labels).",
        show_default=False,
    ),
    node_name: str | None = typer.Option(
        None, "--node-name", metavar="NAME", help="slurm: the NodeName (default: short hostname).", show_default=False
    ),
    mig_minors: str | None = typer.Option(
        None,
        "--mig-minors",
        metavar="FILE",
        help="slurm: a copy of a driver's mig-minors table to read (default: this node's driver).",
        show_default=False,
    ),
    dev_root: str | None = typer.Option(
        None,
        "--dev-root",
        metavar="DIR",
        help="slurm: folder to write for /dev in device paths (default: the driver's /dev).",
        show_default=False,
    ),
) -> None:
    """Print the current layout as a mig-parted v1 config that apply reproduces exactly (or for Slurm / Kubernetes).

    -o yaml|json prints the mig-parted file; --json prints migctl's record of the export
    (the layout, the file as data, and what --portable could not express). --format slurm
    prints gres.conf lines and the slurm.conf NodeName fragment, --format k8s the resources
    NVIDIA's device plugin advertises and the labels GPU feature discovery sets.
    """
    from migctl.config.export import render
    from migctl.ops.export import export as export_layout

    if fmt in ("slurm", "k8s"):
        from migctl.cli import scheduler_cmds

        if fmt == "slurm":
            scheduler_cmds.export_slurm(gpus, node_name, mig_minors, dev_root)
        else:
            scheduler_cmds.export_k8s(gpus)
        return
    if fmt != "mig-parted":
        raise UsageError(f"--format {fmt!r}: expected mig-parted, slurm or k8s")
    chosen = STATE.select(gpus)
    if output not in ("yaml", "json"):
        raise UsageError(f"-o {output!r}: expected yaml or json")
    report = export_layout(chosen, name, portable=portable)
    if want_json():
        emit(report, render_export)
        return
    for warning in report.warnings:
        consoles.err.print(f"migctl: warning: {warning}")
    text = render(report.config, "json" if output == "json" else "yaml")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
def recover(wait: float = WAIT_OPTION) -> None:
    """Finish, or roll back, an apply interrupted by a crash or kill -9 (apply also does this first)."""
    from migctl.ops.recover import recover as recover_node

    report = recover_node(STATE.node(), wait_s=wait)
    emit(report, render_recover)
    if any(r.result == "failed" for r in report.recovered):
        raise typer.Exit(1)


# -- views ------------------------------------------------------------------------------------------


def _plan_lines(g: GpuPlanRecord) -> list[str]:
    """One GPU's plan as lines (without its index, so identical GPUs can be shown once)."""
    if not g.covered:
        return [str(g.note)]
    if g.refused is not None:
        return [f"refused: {g.refused}", *g.busy]
    lines = [f"{g.mode_change} MIG mode"] if g.mode_change else []
    lines += [f"keep      GI {e.gi} {e.profile} at {e.placement}" + (" (busy)" if e.busy else "") for e in g.keep]
    lines += [f"destroy   GI {e.gi} {e.profile} at {e.placement}" for e in g.destroy]
    lines += [
        f"recompute GI {r.gi} {r.profile}: {', '.join(r.compute)} -> {', '.join(r.new_compute)}" for r in g.recompute
    ]
    for c in g.create:
        with_ci = "" if c.compute == (c.profile,) else f" with {', '.join(c.compute) or 'no compute instance'}"
        lines.append(f"create    {c.profile} at {c.placement}{with_ci}")
    if not (g.destroy or g.recompute or g.create or g.mode_change):
        return ["no change", *lines]
    if g.span:
        before: list[tuple[int | str, str, Placement]] = [(e.gi, e.profile, e.placement) for e in g.before]
        after: list[tuple[int | str, str, Placement]] = [(e.gi, e.profile, e.placement) for e in g.keep]
        after += [(r.gi, r.profile, r.placement) for r in g.recompute]
        after += [("+", c.profile, c.placement) for c in g.create]
        lines += [
            "       " + str(slice_ruler(g.span)),
            "before " + str(slice_bar(g.span, before)),
            "after  " + str(slice_bar(g.span, after)),
        ]
    return lines


def _warn(console: Console, warnings: tuple[str, ...]) -> None:
    for w in warnings:
        console.print(Text(f"warning: {w}"))


def render_plan(console: Console, report: PlanReport) -> None:
    console.print(f"plan for config {report.config!r}:")
    _warn(console, report.warnings)
    groups: list[tuple[list[int], str, list[str]]] = []
    for g in report.gpus:
        lines = _plan_lines(g)
        if groups and groups[-1][1] == g.name and groups[-1][2] == lines:
            groups[-1][0].append(g.gpu)
        else:
            groups.append(([g.gpu], g.name, lines))
    for ids, name, lines in groups:
        label = f"GPU {ids[0]}" if len(ids) == 1 else f"GPUs {ids[0]}-{ids[-1]}"
        console.print(Text.assemble((label, "bold"), f" ({name}):"))
        for line in lines:
            console.print(f"    {line}")


def render_apply(console: Console, report: ApplyReport) -> None:
    for r in report.recovered:
        console.print(f"recovered GPU {r.gpu}: {r.result}: {r.detail}")
    for o in report.gpus:
        if o.result == "applied":
            counts = f"kept {o.kept}, destroyed {o.destroyed}, created {o.created}"
            console.print(f"GPU {o.gpu}: applied ({counts}) in {o.seconds:.2f} s")
        else:
            console.print(f"GPU {o.gpu}: {o.result}" + (f": {o.detail}" if o.detail else ""))
    for h in report.hooks:
        if h.point == "apply-exit" and h.exit_code != 0:
            console.print(f"apply-exit hook failed (exit {h.exit_code}): {h.command}")


def render_assert(console: Console, report: AssertReport) -> None:
    _warn(console, report.warnings)
    for g in report.gpus:
        if g.differences:
            console.print(f"GPU {g.gpu}: differs: " + "; ".join(g.differences))
        else:
            console.print(f"GPU {g.gpu}: matches")


def render_export(console: Console, report: ExportReport) -> None:  # only --json reaches export's renderer
    console.print(report.name)


def render_recover(console: Console, report: RecoverReport) -> None:
    if not report.recovered:
        console.print("nothing to recover")
    for r in report.recovered:
        console.print(f"GPU {r.gpu}: {r.result}: {r.detail}")
