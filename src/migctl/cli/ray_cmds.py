"""``migctl ray up|down`` and ``migctl cluster status|plan|apply|assert`` (thin over migctl.ray)."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import typer
from rich.console import Console

from migctl.cli.app import JSON_OPTION, app, emit

ray_app = typer.Typer(help="Run migctl's agents and scheduler on a Ray cluster (docs/ray.md).", no_args_is_help=True)
cluster_app = typer.Typer(help="Every Ray node's MIG layout: status, plan, apply, assert.", no_args_is_help=True)
app.add_typer(ray_app, name="ray")
app.add_typer(cluster_app, name="cluster")

ADDRESS_OPTION = typer.Option(
    None, "--address", help="The Ray cluster (host:port or auto; default: RAY_ADDRESS, else the local cluster)."
)
FILE_OPTION = typer.Option(..., "-f", "--config-file", help="mig-parted v1 config file ('-' reads stdin).")
NAME_OPTION = typer.Option(None, "-c", "--selected-config", help="Name of the config in the file.")


def _address(address: str | None) -> str:
    return address or os.environ.get("RAY_ADDRESS") or "auto"


def _node_title(h: Any) -> str:
    sim = f"  sim {h['sim_spec']}" if h.get("sim_spec") else ""
    return f"node {h['node_id'][:12]}  {h['hostname']}  {h['address']}{sim}"


@ray_app.command("up")
def up(
    address: str | None = ADDRESS_OPTION,
    placement: str = typer.Option("migctl", "--placement", help="migctl (best fit, planner placement) or first-fit."),
    reclaim_after: float = typer.Option(
        60.0, "--reclaim-after", metavar="SECONDS", help="Destroy instances made on demand once idle this long."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Start migctl's agent on every Ray node (and later ones) and the cluster scheduler."""
    from migctl.ray import control

    views = control.init(_address(address), placement=placement, reclaim_after_s=reclaim_after)
    data = {
        "nodes": [
            {
                "node_id": v.node_id,
                "hostname": v.hostname,
                "address": v.address,
                "sim_spec": v.sim_spec,
                "state_dir": v.state_dir,
                "gpus": len(v.gpus),
                "mig_devices": len(v.devices()),
            }
            for v in views
        ]
    }

    def render(console: Console, d: dict[str, Any]) -> None:
        for n in d["nodes"]:
            console.print(f"{_node_title(n)}: agent up, {n['gpus']} GPU(s), {n['mig_devices']} MIG device(s)",
                          markup=False)
        console.print(f"migctl scheduler up; {len(d['nodes'])} node(s)")

    emit(data, render, json_out)


@ray_app.command("down")
def down(address: str | None = ADDRESS_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Stop migctl's scheduler and agents (MIG instances stay as they are)."""
    from migctl.ray import control

    control.connect(_address(address))
    stopped = control.shutdown_actors()
    emit({"stopped": stopped}, lambda c, d: c.print(f"stopped {len(d['stopped'])} migctl actor(s)"), json_out)


@cluster_app.command("status")
def status(address: str | None = ADDRESS_OPTION, json_out: bool = JSON_OPTION) -> None:
    """Every Ray node's GPUs, instances and MIG devices, in one view."""
    from migctl.cli.render import render_status
    from migctl.ray import cluster

    nodes = cluster.status(_address(address))
    data = {
        "nodes": [
            {**asdict(n.node), "on_demand": [{"gpu": g, "gpu_instance_id": i} for g, i in n.on_demand], **n.status}
            for n in nodes
        ]
    }

    def render(console: Console, d: dict[str, Any]) -> None:
        for n in d["nodes"]:
            console.rule(_node_title(n), align="left")
            if "error" in n:
                console.print(f"unreachable: {n['error']}", markup=False)
                continue
            render_status(console, n)
            if n["on_demand"]:
                made = ", ".join(f"GPU {x['gpu']} GI {x['gpu_instance_id']}" for x in n["on_demand"])
                console.print(f"made on demand by migctl.ray: {made}", markup=False)
        console.print(f"{len(d['nodes'])} node(s)")

    emit(data, render, json_out)


def _report(report: Any, json_out: bool) -> None:
    data = {
        "command": report.command,
        "config": report.config,
        "ok": report.ok,
        "nodes": [
            {**asdict(n.node), "ok": n.ok, "result": n.result, "detail": n.detail, "seconds": round(n.seconds, 3),
             "report": n.data}
            for n in report.nodes
        ],
    }

    def render(console: Console, d: dict[str, Any]) -> None:
        for n in d["nodes"]:
            line = f"{_node_title(n)}: {n['result']}"
            if n["result"] == "applied":
                gpus = n["report"].get("gpus", [])
                created = sum(g.get("created", 0) for g in gpus)
                destroyed = sum(g.get("destroyed", 0) for g in gpus)
                line += f" (created {created}, destroyed {destroyed}) in {n['seconds']:.2f} s"
            if n["detail"]:
                line += f": {n['detail']}"
            console.print(line, markup=False)
            if d["command"] == "plan":
                for g in n["report"].get("gpus", []):
                    steps = [f"{k} " + ", ".join(g[k]) for k in ("destroy", "create") if g.get(k)]
                    what = "; ".join(steps) or g.get("refused") or g.get("note") or "nothing to do"
                    console.print(f"    GPU {g['gpu']}: {what}", markup=False)
        bad = sum(1 for n in d["nodes"] if not n["ok"])
        console.print(f"{d['command']} {d['config']!r}: {len(d['nodes']) - bad} node(s) ok, {bad} failed")

    emit(data, render, json_out)
    if not report.ok:
        raise typer.Exit(10 if report.command == "assert" and all(
            n.result in ("matches", "differs") for n in report.nodes) else 1)


@cluster_app.command("plan")
def plan(file: str = FILE_OPTION, name: str | None = NAME_OPTION, address: str | None = ADDRESS_OPTION,
         json_out: bool = JSON_OPTION) -> None:
    """What apply would do on each node, changing nothing."""
    from migctl.ray import _node_ops, cluster

    text, source = _node_ops.read_config(file, name)
    _report(cluster.plan(text, source, name, _address(address)), json_out)


@cluster_app.command("apply")
def apply(file: str = FILE_OPTION, name: str | None = NAME_OPTION, address: str | None = ADDRESS_OPTION,
          wait: float = typer.Option(60.0, "--wait", metavar="SECONDS", help="How long each node waits for its lock."),
          json_out: bool = JSON_OPTION) -> None:
    """Apply a layout on every node at once, each node as on one (plan, transaction, journal)."""
    from migctl.ray import _node_ops, cluster

    text, source = _node_ops.read_config(file, name)
    _report(cluster.apply(text, source, name, _address(address), wait), json_out)


@cluster_app.command("assert")
def assert_cmd(file: str = FILE_OPTION, name: str | None = NAME_OPTION, address: str | None = ADDRESS_OPTION,
               json_out: bool = JSON_OPTION) -> None:
    """Exit 0 if every node matches the layout, else 10 (1 if a node could not be checked)."""
    from migctl.ray import _node_ops, cluster

    text, source = _node_ops.read_config(file, name)
    _report(cluster.check(text, source, name, _address(address)), json_out)
