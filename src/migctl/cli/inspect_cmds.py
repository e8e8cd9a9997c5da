"""Read-only commands: status, profiles, placements, ci-profiles, devices. They never wait for a lock."""

from __future__ import annotations

import typer

from migctl.cli import render
from migctl.cli.app import GPUS_OPTION, JSON_OPTION, STATE, app, emit
from migctl.errors import UsageError
from migctl.ops import inspect


@app.command()
def status(gpus: str | None = GPUS_OPTION, json_out: bool = JSON_OPTION) -> None:
    """GPUs, MIG mode, GPU instances as slice bars, MIG devices with UUIDs and who uses them."""
    from migctl.ops.leases import holders

    node = STATE.node()
    emit(inspect.status(node, node.select(gpus), holders()), render.render_status, json_out)


@app.command()
def profiles(gpus: str | None = GPUS_OPTION, json_out: bool = JSON_OPTION) -> None:
    """GPU-instance profiles with free/total instances (nvidia-smi mig -lgip)."""
    emit(inspect.profiles(STATE.node().select(gpus)), render.render_profiles, json_out)


@app.command()
def placements(
    profile: str | None = typer.Argument(None, help="A profile name (1g.12gb) or ID (19); all when omitted."),
    gpus: str | None = GPUS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Legal placements per profile and which are free now (nvidia-smi mig -lgipp)."""
    emit(inspect.placements(STATE.node().select(gpus), profile), render.render_placements, json_out)


@app.command("ci-profiles")
def ci_profiles(
    gpus: str = typer.Option(..., "-i", "--id", help="One GPU: index or UUID."),
    gi: int = typer.Option(..., "--gi", help="GPU-instance ID."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Compute-instance profiles of one GPU instance (nvidia-smi mig -lcip)."""
    chosen = STATE.node().select(gpus)
    if len(chosen) != 1:
        raise UsageError(f"-i {gpus}: ci-profiles takes exactly one GPU")
    emit(inspect.ci_profiles(chosen[0], gi), render.render_ci_profiles, json_out)


@app.command()
def devices(gpus: str | None = GPUS_OPTION, json_out: bool = JSON_OPTION) -> None:
    """GPUs and MIG devices with their UUIDs (nvidia-smi -L)."""
    emit(inspect.devices(STATE.node().select(gpus)), render.render_devices, json_out)
