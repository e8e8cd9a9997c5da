"""``migctl ray up|down`` and ``migctl cluster status|plan|apply|assert`` (thin over migctl.ray).

Every result is a record of :mod:`migctl.records.cluster`; Ray, rich and the Ray front end are
imported only when one of these commands runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

from migctl.cli.app import WAIT_OPTION, commands, emit

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.records.cluster import (
        AgentUp,
        ClusterApplyReport,
        ClusterAssertReport,
        ClusterPlanReport,
        ClusterStatusReport,
        RayDownReport,
        RayNode,
        RayUpReport,
    )

app = commands()
ray_app = commands(help="Run migctl's agents and scheduler on a Ray cluster (docs/ray.md).", no_args_is_help=True)
cluster_app = commands(help="Every Ray node's MIG layout: status, plan, apply, assert.", no_args_is_help=True)
app.add_typer(ray_app, name="ray")
app.add_typer(cluster_app, name="cluster")

ADDRESS_OPTION = typer.Option(
    None,
    "--address",
    metavar="ADDRESS",
    help="The Ray cluster (host:port or auto; default: RAY_ADDRESS, else the local cluster).",
    show_default=False,
)
FILE_OPTION = typer.Option(
    ..., "-f", "--config-file", metavar="FILE", help="mig-parted v1 config file ('-' reads stdin).", show_default=False
)
NAME_OPTION = typer.Option(
    None, "-c", "--selected-config", metavar="NAME", help="Name of the config in the file.", show_default=False
)


def _address(address: str | None) -> str:
    return address or os.environ.get("RAY_ADDRESS") or "auto"


def _title(n: RayNode | AgentUp) -> str:
    sim = f"  sim {n.sim_spec}" if n.sim_spec else ""
    return f"node {n.node_id[:12]}  {n.hostname}  {n.address}{sim}"


# -- ray up | down -------------------------------------------------------------------------------


@ray_app.command("up")
def up(
    address: str | None = ADDRESS_OPTION,
    placement: str = typer.Option(
        "migctl",
        "--placement",
        metavar="POLICY",
        help="migctl (best fit, planner placement; the default) or first-fit.",
        show_default=False,
    ),
    reclaim_after: float = typer.Option(
        60.0,
        "--reclaim-after",
        metavar="SECONDS",
        help="Destroy instances made on demand once idle this long (default 60).",
        show_default=False,
    ),
) -> None:
    """Start migctl's agent on every Ray node (and later ones) and the cluster scheduler."""
    from migctl.ray import control

    emit(control.up(_address(address), placement=placement, reclaim_after_s=reclaim_after), render_up)


def render_up(console: Console, report: RayUpReport) -> None:
    for n in report.nodes:
        console.print(f"{_title(n)}: agent up, {n.gpus} GPU(s), {n.mig_devices} MIG device(s)")
    console.print(f"migctl scheduler up ({report.placement} placement); {len(report.nodes)} node(s)")


@ray_app.command("down")
def down(address: str | None = ADDRESS_OPTION) -> None:
    """Stop migctl's scheduler and agents (MIG instances stay as they are)."""
    from migctl.ray import control

    control.connect(_address(address))
    emit(control.down(), render_down)


def render_down(console: Console, report: RayDownReport) -> None:
    console.print(f"stopped {len(report.stopped)} migctl actor(s)")


# -- cluster status | plan | apply | assert -----------------------------------------------------------


@cluster_app.command("status")
def status(address: str | None = ADDRESS_OPTION) -> None:
    """Every Ray node's GPUs, instances and MIG devices, in one view."""
    from migctl.ray import cluster

    emit(cluster.status(_address(address)), render_status)


def render_status(console: Console, report: ClusterStatusReport) -> None:
    from migctl.cli.inspect_cmds import render_status as render_node

    for n in report.nodes:
        console.rule(_title(n.node), align="left")
        if n.status is None:
            console.print(f"unreachable: {n.error}")
            continue
        render_node(console, n.status)
        if n.on_demand:
            made = ", ".join(f"GPU {x.gpu} GI {x.gpu_instance_id}" for x in n.on_demand)
            console.print(f"made on demand by migctl.ray: {made}")
    console.print(f"{len(report.nodes)} node(s)")


def _summary(console: Console, command: str, config: str, oks: list[bool]) -> None:
    bad = oks.count(False)
    console.print(f"{command} {config!r}: {len(oks) - bad} node(s) ok, {bad} failed")


def render_plan(console: Console, report: ClusterPlanReport) -> None:
    for n in report.nodes:
        console.print(f"{_title(n.node)}: {n.result}" + (f": {n.detail}" if n.detail else ""))
        for g in n.report.gpus if n.report is not None else ():
            steps = [
                f"{verb} " + ", ".join(f"{i.profile} at {i.placement}" for i in items)
                for verb, items in (("destroy", g.destroy), ("create", g.create))
                if items
            ]
            console.print(f"    GPU {g.gpu}: " + ("; ".join(steps) or g.refused or g.note or "nothing to do"))
    _summary(console, "plan", report.config, [n.ok for n in report.nodes])


def render_apply(console: Console, report: ClusterApplyReport) -> None:
    for n in report.nodes:
        line = f"{_title(n.node)}: {n.result}"
        if n.result == "applied" and n.report is not None:
            created = sum(g.created for g in n.report.gpus)
            destroyed = sum(g.destroyed for g in n.report.gpus)
            line += f" (created {created}, destroyed {destroyed}) in {n.seconds:.2f} s"
        console.print(line + (f": {n.detail}" if n.detail else ""))
    _summary(console, "apply", report.config, [n.ok for n in report.nodes])


def render_assert(console: Console, report: ClusterAssertReport) -> None:
    for n in report.nodes:
        console.print(f"{_title(n.node)}: {n.result}" + (f": {n.detail}" if n.detail else ""))
    _summary(console, "assert", report.config, [n.ok for n in report.nodes])


def _exit(ok: bool, assert_differs: bool = False) -> None:
    """0 when every node succeeded; ``assert``: 10 when some node differs and all could be checked; else 1."""
    if not ok:
        raise typer.Exit(10 if assert_differs else 1)


@cluster_app.command("plan")
def plan(
    file: str = FILE_OPTION,
    name: str | None = NAME_OPTION,
    address: str | None = ADDRESS_OPTION,
) -> None:
    """What apply would do on each node, changing nothing."""
    from migctl.ray import _node_ops, cluster

    text, source = _node_ops.read_config(file, name)
    report = cluster.plan(text, source, name, _address(address))
    emit(report, render_plan)
    _exit(report.ok)


@cluster_app.command("apply")
def apply(
    file: str = FILE_OPTION,
    name: str | None = NAME_OPTION,
    address: str | None = ADDRESS_OPTION,
    wait: float = WAIT_OPTION,
) -> None:
    """Apply a layout on every node at once, each node as on one (plan, transaction, journal)."""
    from migctl.ray import _node_ops, cluster

    text, source = _node_ops.read_config(file, name)
    report = cluster.apply(text, source, name, _address(address), wait)
    emit(report, render_apply)
    _exit(report.ok)


@cluster_app.command("assert")
def assert_cmd(
    file: str = FILE_OPTION,
    name: str | None = NAME_OPTION,
    address: str | None = ADDRESS_OPTION,
) -> None:
    """Exit 0 if every node matches the layout, else 10 (1 if a node could not be checked)."""
    from migctl.ray import _node_ops, cluster

    text, source = _node_ops.read_config(file, name)
    report = cluster.check(text, source, name, _address(address))
    emit(report, render_assert)
    _exit(report.ok, all(n.result in ("matches", "differs", "skipped") for n in report.nodes))
