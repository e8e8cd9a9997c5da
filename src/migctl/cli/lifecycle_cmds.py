"""Mutating lifecycle commands: mode, reset, create, create-ci, destroy.

Thin over the operations (:mod:`migctl.ops.mode`, :mod:`~migctl.ops.create`,
:mod:`~migctl.ops.destroy`): parse the arguments, call, render the record; the exit-code rule
of ``mode`` (:func:`mode_exit_code`) lives here, not in the operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from migctl.cli.app import GPUS_OPTION, JSON_OPTION, STATE, app, emit
from migctl.core.layout import ProfileRequest
from migctl.errors import InUseError, NotSupportedError, ResetRequiredError, UsageError
from migctl.ops.lock import DEFAULT_WAIT_S
from migctl.records.lifecycle import CreateReport, DestroyReport, ModeOutcome, ModeReport, ResetReport

T = TypeVar("T")

WAIT_OPTION = typer.Option(
    DEFAULT_WAIT_S, "--wait", metavar="SECONDS", help="How long to wait for another migctl's lock (default 60)."
)


def _parsed(parse: Callable[[], T]) -> T:
    """Run a config-layer parser; its error is a usage error (exit 2) with the same message."""
    from migctl.config import ConfigError

    try:
        return parse()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _requests(items: list[str]) -> list[ProfileRequest]:
    from migctl.config import parse_profile_requests

    return _parsed(lambda: parse_profile_requests(items))


def mode_exit_code(outcomes: tuple[ModeOutcome, ...], *, explicit: bool = True) -> int:
    """The exit code for ``migctl mode``. GPUs that are not MIG-capable only fail the command
    when the user named them (``explicit``) or no GPU is MIG-capable; on a mixed node without
    ``-i`` they are reported and skipped, so automation sees success when every MIG GPU got its
    mode."""
    capable = [o for o in outcomes if o.result != "not_supported"]
    results = {o.result for o in (outcomes if explicit or not capable else capable)}
    if "interrupted" in results:
        return 130
    if "refused" in results:
        return InUseError.exit_code
    if "pending" in results:
        return ResetRequiredError.exit_code
    if "not_supported" in results:
        return NotSupportedError.exit_code
    return 0


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
    from migctl.ops.mode import set_mig_mode

    if action not in ("enable", "disable"):
        raise UsageError(f"mode {action!r}: expected enable or disable")
    node = STATE.node()
    report = set_mig_mode(node, node.select(gpus), action == "enable", destroy_instances=destroy_instances, wait_s=wait)
    emit(report, render_mode, json_out)
    code = mode_exit_code(report.gpus, explicit=gpus is not None)
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
    from migctl.ops.mode import reset as reset_gpus

    node = STATE.node()
    emit(reset_gpus(node, node.select(gpus), force=force, wait_s=wait), render_reset, json_out)


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
    from migctl.ops.create import create as create_instances

    node = STATE.node()
    report = create_instances(
        node,
        node.select(gpus),
        _requests(profiles),
        placement=placement,
        compute_instance=not no_compute_instance,
        wait_s=wait,
    )
    emit(report, render_created, json_out)


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
    from migctl.ops.create import create_ci as create_compute_instances

    node = STATE.node()
    chosen = node.select(gpus)
    if len(chosen) != 1:
        raise UsageError(f"-i {gpus}: create-ci takes exactly one GPU")
    report = create_compute_instances(node, chosen[0], gi, _requests(ci_profiles or []), wait_s=wait)
    emit(report, render_created, json_out)


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
    from migctl.ops.destroy import destroy as destroy_instances

    node = STATE.node()
    chosen = node.select(gpus if gpus is not None else (None if everything else "0"))
    if uuid and gpus is None and not (gi or ci or everything):
        chosen = []
    from migctl.config import parse_compute_instance

    pairs = _parsed(lambda: [parse_compute_instance(text) for text in ci])
    report = destroy_instances(node, chosen, gi_ids=gi, ci_ids=pairs, uuids=uuid, everything=everything, wait_s=wait)
    emit(report, render_destroyed, json_out)


# -- views ------------------------------------------------------------------------------------------


def render_mode(console: Console, report: ModeReport) -> None:
    for o in report.gpus:
        line = f"GPU {o.gpu} ({o.name}): {o.result}"
        if o.reason:
            line += f": {o.reason}"
        console.print(line)
        for p in o.processes:
            console.print(f"    pid {p.pid} {p.user} {p.command} ({p.used_memory_mib} MiB)")
        if o.instances:
            verb = "destroyed first" if o.result == "disabled" else "instances"
            console.print(f"    {verb}: " + ", ".join(f"GI {i.id} {i.profile} at {i.placement}" for i in o.instances))


def render_reset(console: Console, report: ResetReport) -> None:
    for o in report.gpus:
        state = "not MIG-capable" if o.mig is None else f"MIG {'enabled' if o.mig.current else 'disabled'}"
        console.print(f"GPU {o.gpu} reset: {state}")


def render_created(console: Console, report: CreateReport) -> None:
    for c in report.created:
        line = f"GPU {c.gpu}: GPU instance {c.gpu_instance_id} ({c.profile}) at {c.placement}"
        if c.compute_instance_id is not None:
            line += f", compute instance {c.compute_instance_id} ({c.compute_profile}), {c.uuid}"
        console.print(line)


def render_destroyed(console: Console, report: DestroyReport) -> None:
    if not report.destroyed:
        console.print("nothing to destroy")
    for d in report.destroyed:
        if d.compute_instance_id is None:
            console.print(f"GPU {d.gpu}: destroyed GPU instance {d.gpu_instance_id} ({d.profile})")
        else:
            console.print(
                f"GPU {d.gpu}: destroyed compute instance {d.compute_instance_id} "
                f"of GPU instance {d.gpu_instance_id} ({d.profile})"
            )
