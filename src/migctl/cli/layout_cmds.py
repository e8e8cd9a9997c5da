"""Declarative layout commands: plan, apply, assert, export, recover (thin over ops.apply)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from migctl.cli.app import GPUS_OPTION, JSON_OPTION, STATE, app, consoles, emit, want_json
from migctl.cli.lifecycle_cmds import WAIT_OPTION
from migctl.cli.render import slice_bar, slice_ruler
from migctl.config import ConfigError, load_path, parse_layout
from migctl.config.hooks import load_hooks_path, mig_parted_env
from migctl.core.geometry import GpuGeometry
from migctl.core.layout import ExistingInstance
from migctl.errors import UsageError
from migctl.ops import apply as ops
from migctl.ops import journal

FILE_OPTION = typer.Option(None, "-f", "--config-file", help="mig-parted v1 config file ('-' reads stdin).")
NAME_OPTION = typer.Option(None, "-c", "--selected-config", help="Name of the config in the file.")
LAYOUT_OPTION = typer.Option(
    None, "--layout", help="Inline layout instead of a file, e.g. '3g.48gb,2g.24gb,1g.12gb:2' (docs/config.md)."
)


def _node_plan(file: str | None, name: str | None, layout: str | None, gpus: str | None) -> ops.NodePlan:
    node = STATE.node()
    chosen = node.select(gpus)
    try:
        if layout is not None:
            if file is not None:
                raise UsageError("give either -f FILE -c NAME or --layout, not both")
            return ops.plan_node(node, parse_layout(layout), None, chosen, source="--layout")
        if file is None:
            raise UsageError("say which layout: -f FILE -c NAME, or --layout '1g.12gb:7'")
        spec = load_path(file)
        return ops.plan_node(node, spec, name, chosen, source=file)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _bars(span: int, items: list[tuple[int, str, Any]]) -> Any:
    return slice_bar(span, items)


def _gpu_json(g: ops.GpuPlan) -> dict[str, Any]:
    geo: GpuGeometry | None = g.geometry

    def name(pid: int) -> str:
        return geo.by_id(pid).name if geo is not None else str(pid)

    def inst(e: ExistingInstance) -> dict[str, Any]:
        return {
            "gi": e.gi_id,
            "profile": name(e.profile_id),
            "placement": {"start": e.placement.start, "size": e.placement.size},
            "compute": list(e.compute),
            "busy": e.busy,
        }

    data: dict[str, Any] = {
        "gpu": g.gpu,
        "name": g.name,
        "covered": g.target is not None,
        "note": g.note,
        "mode_change": None if g.mode_change is None else ("enable" if g.mode_change else "disable"),
        "span": geo.span if geo is not None else 0,
        "before": [inst(e) for e in g.before],
    }
    if g.refusal is not None:
        data["refused"] = g.refusal.reason
        data["busy"] = g.busy
    if g.plan is not None:
        p = g.plan
        data["keep"] = [inst(e) for e in p.keep]
        data["destroy"] = [inst(e) for e in p.destroy]
        data["recompute"] = [{**inst(r.instance), "new_compute": list(r.compute)} for r in p.recompute]
        data["create"] = [
            {
                "profile": name(c.profile_id),
                "placement": {"start": c.placement.start, "size": c.placement.size},
                "compute": list(c.compute),
            }
            for c in p.create
        ]
    return data


def _plan_lines(g: dict[str, Any]) -> list[str]:
    """One GPU's plan as lines (without its index, so identical GPUs can be shown once)."""
    from migctl.core.geometry import Placement

    if not g["covered"]:
        return [str(g["note"])]
    if "refused" in g:
        return [f"refused: {g['refused']}", *g.get("busy", [])]

    def at(e: dict[str, Any]) -> str:
        return f"{e['placement']['start']}:{e['placement']['size']}"

    lines = [f"{g['mode_change']} MIG mode"] if g["mode_change"] else []
    lines += [
        f"keep      GI {e['gi']} {e['profile']} at {at(e)}" + (" (busy)" if e["busy"] else "")
        for e in g.get("keep", [])
    ]
    lines += [f"destroy   GI {e['gi']} {e['profile']} at {at(e)}" for e in g.get("destroy", [])]
    lines += [
        f"recompute GI {e['gi']} {e['profile']}: {', '.join(e['compute'])} -> {', '.join(e['new_compute'])}"
        for e in g.get("recompute", [])
    ]
    lines += [
        f"create    {c['profile']} at {at(c)}"
        + (f" with {', '.join(c['compute'])}" if c["compute"] != [c["profile"]] else "")
        for c in g.get("create", [])
    ]
    changed = any(g.get(k) for k in ("destroy", "recompute", "create")) or g["mode_change"]
    if not changed:
        return ["no change", *lines]
    if g["span"]:

        def bar(items: list[tuple[Any, str, Placement]]) -> str:
            return str(_bars(g["span"], items))

        before = [
            (e["gi"], e["profile"], Placement(e["placement"]["start"], e["placement"]["size"])) for e in g["before"]
        ]
        after = [
            (e["gi"], e["profile"], Placement(e["placement"]["start"], e["placement"]["size"]))
            for e in g.get("keep", []) + g.get("recompute", [])
        ]
        after += [
            ("+", c["profile"], Placement(c["placement"]["start"], c["placement"]["size"])) for c in g.get("create", [])
        ]
        lines += [
            "       " + str(slice_ruler(g["span"])),
            "before " + bar(before),
            "after  " + bar(after),
        ]
    return lines


def _render_plan(console: Console, data: dict[str, Any]) -> None:
    console.print(f"plan for config {data['config']!r}:")
    groups: list[tuple[list[int], str, list[str]]] = []
    for g in data["gpus"]:
        lines = _plan_lines(g)
        if groups and groups[-1][1] == g["name"] and groups[-1][2] == lines:
            groups[-1][0].append(g["gpu"])
        else:
            groups.append(([g["gpu"]], g["name"], lines))
    for ids, name, lines in groups:
        label = f"GPU {ids[0]}" if len(ids) == 1 else f"GPUs {ids[0]}-{ids[-1]}"
        console.print(Text.assemble((label, "bold"), f" ({name}):"))
        for line in lines:
            console.print(f"    {line}", markup=False)


def _plan_data(np: ops.NodePlan) -> dict[str, Any]:
    return {
        "config": np.config,
        "source": np.source,
        "gpus": [_gpu_json(g) for g in np.gpus],
        "refused": bool(np.refusals),
    }


@app.command()
def plan(
    file: str | None = FILE_OPTION,
    name: str | None = NAME_OPTION,
    layout: str | None = LAYOUT_OPTION,
    gpus: str | None = GPUS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Show what apply would do, per GPU (keep / destroy / create at placement), changing nothing."""
    np = _node_plan(file, name, layout, gpus)
    emit(_plan_data(np), _render_plan, json_out)
    if np.refusals:
        raise ops.refuse(np)


@app.command("apply")
def apply_cmd(
    file: str | None = FILE_OPTION,
    name: str | None = NAME_OPTION,
    layout: str | None = LAYOUT_OPTION,
    gpus: str | None = GPUS_OPTION,
    hooks_file: str | None = typer.Option(None, "-k", "--hooks-file", help="mig-parted hooks file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show the plan (same as migctl plan)."),
    sequential: bool = typer.Option(False, "--sequential", help="Apply GPU after GPU instead of concurrently."),
    wait: float = WAIT_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Apply a layout: mode changes, then per GPU destroy/create, each GPU a transaction."""
    np = _node_plan(file, name, layout, gpus)
    if dry_run:
        emit(_plan_data(np), _render_plan, json_out)
        if np.refusals:
            raise ops.refuse(np)
        return
    hooks = None
    if hooks_file is not None:
        try:
            hooks = load_hooks_path(hooks_file)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    env = mig_parted_env(file or "--layout", np.config, hooks_file=hooks_file or "")
    if not want_json(json_out):
        console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
        interrupted = sorted({int(j["gpu"]) for j in journal.pending()})
        if interrupted:
            # apply first finishes (or rolls back) the interrupted apply, then plans again; this
            # plan was made from the half-applied state, so it may overstate what remains to do.
            console.print(
                f"an interrupted apply left GPU(s) {', '.join(map(str, interrupted))} half-changed: it is finished "
                "or rolled back first (as migctl recover does), then the plan below is made again",
                markup=False,
            )
        _render_plan(console, _plan_data(np))
    report = ops.apply(STATE.node(), np, hooks=hooks, hook_env=env, parallel=not sequential, wait_s=wait)
    data = {
        "config": report.config,
        "ok": report.ok,
        "recovered": report.recovered,
        "gpus": [asdict(o) for o in report.outcomes],
        "hooks": report.hooks,
    }

    def render(console: Console, d: dict[str, Any]) -> None:
        for r in d["recovered"]:
            console.print(f"recovered GPU {r['gpu']}: {r['result']}: {r['detail']}", markup=False)
        for o in d["gpus"]:
            if o["result"] == "applied":
                console.print(
                    f"GPU {o['gpu']}: applied (kept {o['kept']}, destroyed {o['destroyed']}, "
                    f"created {o['created']}) in {o['seconds']:.2f} s"
                )
            else:
                console.print(
                    f"GPU {o['gpu']}: {o['result']}" + (f": {o['detail']}" if o["detail"] else ""), markup=False
                )
        for h in d["hooks"]:
            if h["point"] == "apply-exit" and h["exit_code"] != 0:
                console.print(f"apply-exit hook failed (exit {h['exit_code']}): {h['command']}", markup=False)

    emit(data, render, json_out)
    if not report.ok:
        results = {o.result for o in report.outcomes}
        raise typer.Exit(7 if "pending" in results and results <= {"pending", "applied", "unchanged", "skipped"}
                         else 1)


@app.command("assert")
def assert_cmd(
    file: str | None = FILE_OPTION,
    name: str | None = NAME_OPTION,
    layout: str | None = LAYOUT_OPTION,
    gpus: str | None = GPUS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Exit 0 if the node matches the layout, else exit 10 with each GPU's differences."""
    np = _node_plan(file, name, layout, gpus)
    diffs = ops.check(np, STATE.node())
    data = {
        "config": np.config,
        "matches": not any(diffs.values()),
        "gpus": [{"gpu": k, "differences": v} for k, v in diffs.items()],
    }

    def render(console: Console, d: dict[str, Any]) -> None:
        for g in d["gpus"]:
            if g["differences"]:
                console.print(f"GPU {g['gpu']}: differs: " + "; ".join(g["differences"]), markup=False)
            else:
                console.print(f"GPU {g['gpu']}: matches")

    emit(data, render, json_out)
    if not data["matches"]:
        raise typer.Exit(10)


@app.command()
def export(
    gpus: str | None = GPUS_OPTION,
    output: str = typer.Option("yaml", "-o", "--output-format", help="yaml or json"),
    name: str = typer.Option("current", "--name", help="Name of the exported config."),
    portable: bool = typer.Option(
        False, "--portable", help="Leave out migctl's x-migctl keys (placements) so mig-parted can read the file."
    ),
) -> None:
    """Print the current layout as a mig-parted v1 config that apply reproduces exactly."""
    from migctl.config import export_spec, export_text

    chosen = STATE.node().select(gpus)
    if output not in ("yaml", "json"):
        raise UsageError(f"-o {output!r}: expected yaml or json")
    layout = ops.current_layout(chosen)
    text = export_text(layout, name, fmt="json" if output == "json" else "yaml", extensions=not portable)
    if portable:
        # mig-parted cannot say "a GPU instance with several compute instances": the portable
        # file asks for the default compute instance there, so say what is lost.
        for entry in export_spec(layout, name)["mig-configs"][name]:
            for pin in (entry.get("x-migctl") or {}).get("instances", []):
                if "compute" in pin:
                    consoles.err.print(
                        f"migctl: warning: --portable cannot express GPU {entry['devices'][0]}'s {pin['profile']} "
                        f"at slice {pin['placement']} with compute instances {', '.join(pin['compute'])}; "
                        f"the file asks for a {pin['profile']} with its default compute instance",
                        markup=False,
                    )
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
def recover(wait: float = WAIT_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Finish, or roll back, an apply interrupted by a crash or kill -9 (apply also does this first)."""
    done = ops.recover(STATE.node(), wait_s=wait)

    def render(console: Console, d: dict[str, Any]) -> None:
        if not d["recovered"]:
            console.print("nothing to recover")
        for r in d["recovered"]:
            console.print(f"GPU {r['gpu']}: {r['result']}: {r['detail']}", markup=False)

    emit({"recovered": done}, render, json_out)
    if any(r["result"] == "failed" for r in done):
        raise typer.Exit(1)
