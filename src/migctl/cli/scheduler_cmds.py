"""Scheduler integrations: ``slurm task-prolog``, ``k8s hooks-file``, ``k8s clients``, and the views of
``export --format slurm|k8s`` (the ``export`` command itself lives in layout_cmds and hands those
formats over here).

Thin over :mod:`migctl.ops.integrations` and :mod:`migctl.ops.k8s_clients`; every result is a
record of :mod:`migctl.records.schedulers`. The plain (non ``--json``) output of the exports and
of the hooks file is the file text itself, written byte for byte.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer

from migctl.cli.app import GPUS_OPTION, STATE, commands, emit
from migctl.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.records.schedulers import (
        K8sClientsReport,
        K8sExportReport,
        K8sHooksFileReport,
        SlurmExportReport,
        TaskPrologReport,
    )

app = commands()
slurm_app = commands(
    help="Slurm: gres.conf for the current layout, MIG UUIDs for jobs (docs/slurm.md).", no_args_is_help=True
)
k8s_app = commands(help="Kubernetes without the GPU Operator (docs/kubernetes.md).", no_args_is_help=True)
app.add_typer(slurm_app, name="slurm")
app.add_typer(k8s_app, name="k8s")

MIG_MINORS_OPTION = typer.Option(
    None,
    "--mig-minors",
    metavar="FILE",
    help="Read the MIG capability minors from this copy of a driver's "
    "/proc/driver/nvidia-caps/mig-minors (default: this node's driver).",
    show_default=False,
)
DEV_ROOT_OPTION = typer.Option(
    None,
    "--dev-root",
    metavar="DIR",
    help="Folder to write for /dev in device paths (default: the driver's /dev).",
    show_default=False,
)


# -- export --format slurm | k8s ---------------------------------------------------------------


def render_slurm_export(console: Console, report: SlurmExportReport) -> None:
    lines = ["# gres.conf (migctl export --format slurm): one line per MIG device, in slurmd's index order"]
    lines += [r.line for r in report.records]
    lines += ["", "# slurm.conf: add to this node's NodeName line (and GresTypes=gpu)", report.slurm_conf]
    lines += [f"# note: {n}" for n in report.notes]
    sys.stdout.write("\n".join(lines) + "\n")


def export_slurm(gpus: str | None, node_name: str | None, mig_minors: str | None, dev_root: str | None) -> None:
    from migctl.ops import integrations

    report = integrations.slurm_export(
        STATE.node(), STATE.select(gpus), node_name=node_name, mig_minors=mig_minors, root=dev_root
    )
    emit(report, render_slurm_export)


def render_k8s_export(console: Console, report: K8sExportReport) -> None:
    out = ["# Extended resources NVIDIA's device plugin (v0.20) advertises for this layout"]
    for strategy, r in (("mixed", report.resources.mixed), ("single", report.resources.single)):
        out.append(f"# --mig-strategy={strategy}")
        if r.ok:
            out += [f"{k}: {v}" for k, v in r.resources.items()] or ["(none)"]
        else:
            out.append(f"# the plugin refuses to start: {r.error}")
        out += [f"# warning: {w}" for w in r.warnings]
    out.append("")
    out.append("# Node labels GPU feature discovery sets (MIG part)")
    for strategy, labels in (("mixed", report.labels.mixed), ("single", report.labels.single)):
        out.append(f"# --mig-strategy={strategy}")
        out += [f"{k}={v}" for k, v in labels.items()]
    sys.stdout.write("\n".join(out) + "\n")


def export_k8s(gpus: str | None) -> None:
    from migctl.ops import integrations

    emit(integrations.k8s_export(STATE.select(gpus)), render_k8s_export)


# -- slurm -----------------------------------------------------------------------------------


def render_task_prolog(console: Console, report: TaskPrologReport) -> None:
    if report.line:
        sys.stdout.write(f"{report.line}\n")


@slurm_app.command("task-prolog")
def task_prolog(
    mig_minors: str | None = MIG_MINORS_OPTION,
    dev_root: str | None = DEV_ROOT_OPTION,
    gpus: str | None = GPUS_OPTION,
) -> None:
    """Slurm TaskProlog: print 'export CUDA_VISIBLE_DEVICES=MIG-...' for the GRES the job was given.

    -i: the GPUs gres.conf was exported for (default: all, as export --format slurm).
    """
    from migctl.ops import integrations

    report = integrations.task_prolog(
        STATE.node(), STATE.select(gpus), os.environ, mig_minors=mig_minors, root=dev_root
    )
    emit(report, render_task_prolog)


# -- k8s -------------------------------------------------------------------------------------


def render_hooks_file(console: Console, report: K8sHooksFileReport) -> None:
    sys.stdout.write(report.text)


@k8s_app.command("hooks-file")
def hooks_file_cmd() -> None:
    """Print the hooks file that pauses the device plugin, GFD and dcgm-exporter around an apply."""
    from migctl.ops import k8s_clients

    emit(k8s_clients.hooks_file(), render_hooks_file)


def render_clients(console: Console, report: K8sClientsReport) -> None:
    console.print(f"{report.action} on node {report.node}: " + " ".join(f"{k}={v}" for k, v in report.labels.items()))
    if report.wait_note:
        console.print(f"note: {report.wait_note}")


@k8s_app.command("clients")
def clients_cmd(
    action: str = typer.Argument(..., metavar="pause|resume", help="pause or resume", show_default=False),
    node: str | None = typer.Option(
        None,
        "--node",
        metavar="NAME",
        help="This node's name (env NODE_NAME; default the hostname).",
        show_default=False,
    ),
    selector: str | None = typer.Option(
        None,
        "--selector",
        metavar="SELECTOR",
        help="Label selector of the GPU client pods (default: the device plugin's, GFD's and dcgm-exporter's).",
        show_default=False,
    ),
    timeout: float = typer.Option(
        300, "--timeout", metavar="SECONDS", help="How long pause waits for the pods to go (default 300).",
        show_default=False,
    ),
    kubectl: str | None = typer.Option(
        None, "--kubectl", metavar="PROGRAM", help="kubectl to run (default: on PATH).", show_default=False
    ),
) -> None:
    """Stop (pause) or start (resume) the node's GPU client pods via their nodeSelector labels, as mig-manager does."""
    from migctl.ops import k8s_clients

    if action not in ("pause", "resume"):
        raise UsageError(f"k8s clients {action!r}: expected pause or resume")
    report = k8s_clients.clients(
        "pause" if action == "pause" else "resume",
        node=node,
        selector=selector or k8s_clients.DEFAULT_SELECTOR,
        timeout=timeout,
        kubectl=kubectl,
    )
    emit(report, render_clients)
