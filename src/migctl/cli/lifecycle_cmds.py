"""Mutating lifecycle commands: mode, reset, create, create-ci, destroy (thin over ops.lifecycle)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer
from rich.console import Console

from migctl.cli.app import GPUS_OPTION, JSON_OPTION, STATE, app, emit
from migctl.errors import UsageError
from migctl.ops import lifecycle
from migctl.ops.lock import DEFAULT_WAIT_S

WAIT_OPTION = typer.Option(
    DEFAULT_WAIT_S, "--wait", metavar="SECONDS", help="How long to wait for another migctl's lock (default 60)."
)


@app.command()
def mode(
    action: str = typer.Argument(..., help="enable or disable"),
    gpus: str | None = GPUS_OPTION,
    destroy_instances: bool = typer.Option(
        False, "--destroy-instances", help="When disabling, destroy the GPU's instances first (never busy ones)."
    ),
    wait: float = WAIT_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Enable or disable MIG mode (nvidia-smi -mig 1|0), explaining pending and refused GPUs."""
    if action not in ("enable", "disable"):
        raise UsageError(f"mode {action!r}: expected enable or disable")
    node = STATE.node()
    outcomes = lifecycle.set_mig_mode(
        node, node.select(gpus), action == "enable", destroy_instances=destroy_instances, wait_s=wait
    )

    def render(console: Console, data: dict[str, Any]) -> None:
        for o in data["gpus"]:
            line = f"GPU {o['gpu']} ({o['name']}): {o['result']}"
            if o["reason"]:
                line += f": {o['reason']}"
            console.print(line, markup=False)
            for p in o["processes"]:
                console.print(
                    f"    pid {p['pid']} {p['user']} {p['command']} ({p['used_memory_mib']} MiB)", markup=False
                )
            if o["instances"]:
                verb = "destroyed first" if o["result"] == "disabled" else "instances"
                console.print(
                    f"    {verb}: "
                    + ", ".join(f"GI {i['id']} {i['profile']} at {i['placement']}" for i in o["instances"]),
                    markup=False,
                )

    emit({"gpus": [asdict(o) for o in outcomes]}, render, json_out)
    code = lifecycle.mode_exit_code(outcomes, explicit=gpus is not None)
    if code:
        raise typer.Exit(code)


@app.command()
def reset(
    gpus: str = typer.Option(..., "-i", "--id", help="GPUs to reset."),
    force: bool = typer.Option(
        False, "--force", help="Reset even if nothing is pending (destroys the GPU's instances)."
    ),
    wait: float = WAIT_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Reset GPUs so a pending MIG mode takes effect (nvidia-smi --gpu-reset). Refuses GPUs in use."""
    node = STATE.node()
    outcomes = lifecycle.reset(node, node.select(gpus), force=force, wait_s=wait)

    def render(console: Console, data: dict[str, Any]) -> None:
        for o in data["gpus"]:
            mig = o["mig"]
            state = "not MIG-capable" if mig is None else f"MIG {'enabled' if mig['current'] else 'disabled'}"
            console.print(f"GPU {o['gpu']} reset: {state}")

    emit({"gpus": [asdict(o) for o in outcomes]}, render, json_out)


def _render_created(console: Console, data: dict[str, Any]) -> None:
    for c in data["created"]:
        p = c["placement"]
        line = f"GPU {c['gpu']}: GPU instance {c['gpu_instance_id']} ({c['profile']}) at {p['start']}:{p['size']}"
        if c["compute_instance_id"] is not None:
            line += f", compute instance {c['compute_instance_id']} ({c['compute_profile']}), {c['uuid']}"
        console.print(line, markup=False)


@app.command()
def create(
    profiles: list[str] = typer.Argument(..., help="PROFILE[:COUNT]... by name (1g.12gb) or ID (19)."),
    gpus: str | None = typer.Option("0", "-i", "--id", help="GPUs (default 0)."),
    placement: int | None = typer.Option(
        None, "--placement", metavar="START", help="Start slice for a single GPU instance."
    ),
    no_compute_instance: bool = typer.Option(
        False, "--no-compute-instance", help="Create GPU instances only (no default compute instance)."
    ),
    wait: float = WAIT_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Create GPU instances (each with its default compute instance), all or nothing."""
    node = STATE.node()
    made = lifecycle.create(
        node,
        node.select(gpus),
        lifecycle.parse_counted(profiles),
        placement=placement,
        compute_instance=not no_compute_instance,
        wait_s=wait,
    )
    emit({"created": [asdict(m) for m in made]}, _render_created, json_out)


@app.command("create-ci")
def create_ci(
    ci_profiles: list[str] = typer.Argument(
        None, help="CI_PROFILE[:COUNT]... (1c.3g.48gb or an ID); default CI if none."
    ),
    gpus: str = typer.Option(..., "-i", "--id", help="One GPU."),
    gi: int = typer.Option(..., "--gi", help="GPU-instance ID."),
    wait: float = WAIT_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Create compute instances inside one GPU instance, all or nothing."""
    node = STATE.node()
    chosen = node.select(gpus)
    if len(chosen) != 1:
        raise UsageError(f"-i {gpus}: create-ci takes exactly one GPU")
    made = lifecycle.create_ci(node, chosen[0], gi, lifecycle.parse_counted(ci_profiles or []), wait_s=wait)
    emit({"created": [asdict(m) for m in made]}, _render_created, json_out)


def _parse_ci(text: str) -> tuple[int, int]:
    try:
        gi, ci = text.split(":")
        return int(gi), int(ci)
    except ValueError:
        raise UsageError(f"--ci {text!r}: expected GI:CI, e.g. --ci 13:0") from None


@app.command()
def destroy(
    gpus: str | None = typer.Option(None, "-i", "--id", help="GPUs (default: all for --all, else 0)."),
    gi: list[int] = typer.Option([], "--gi", help="GPU-instance ID (with its compute instances)."),
    ci: list[str] = typer.Option([], "--ci", metavar="GI:CI", help="One compute instance."),
    uuid: list[str] = typer.Option([], "--uuid", help="A MIG device (its compute instance)."),
    everything: bool = typer.Option(False, "--all", help="Every instance on the chosen GPUs."),
    wait: float = WAIT_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Destroy compute then GPU instances; refuses (changing nothing) if any is in use."""
    node = STATE.node()
    chosen = node.select(gpus if gpus is not None else (None if everything else "0"))
    if uuid and gpus is None and not (gi or ci or everything):
        chosen = []
    done = lifecycle.destroy(
        node, chosen, gi_ids=gi, ci_ids=[_parse_ci(c) for c in ci], uuids=uuid, everything=everything, wait_s=wait
    )

    def render(console: Console, data: dict[str, Any]) -> None:
        if not data["destroyed"]:
            console.print("nothing to destroy")
        for d in data["destroyed"]:
            if d["compute_instance_id"] is None:
                console.print(f"GPU {d['gpu']}: destroyed GPU instance {d['gpu_instance_id']} ({d['profile']})")
            else:
                console.print(
                    f"GPU {d['gpu']}: destroyed compute instance {d['compute_instance_id']} "
                    f"of GPU instance {d['gpu_instance_id']} ({d['profile']})"
                )

    emit({"destroyed": [asdict(d) for d in done]}, render, json_out)
