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

from migctl.cli.app import GPUS_HELP, GPUS_OPTION, STATE, WAIT_OPTION, commands, emit
from migctl.core.layout import ProfileRequest
from migctl.errors import InUseError, NotSupportedError, ResetRequiredError, UsageError
from migctl.records.lifecycle import CreateReport, DestroyReport, ModeOutcome, ModeReport, ResetReport

T = TypeVar("T")

app = commands()


def parsed(parse: Callable[[], T]) -> T:
    """Run a config-layer parser; its error is a usage error (exit 2) with the same message."""
    from migctl.config.errors import ConfigError

    try:
        return parse()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _requests(items: list[str]) -> list[ProfileRequest]:
    from migctl.config.requests import parse_profile_requests

    return parsed(lambda: parse_profile_requests(items))


def mode_exit_code(outcomes: tuple[ModeOutcome, ...], *, explicit: bool = True) -> int:
    """The exit code for ``migctl mode``. GPUs that are not MIG-capable only fail the command
    when the user named them (``explicit``) or no GPU is MIG-capable; on a mixed node without
    ``-i`` they are reported and skipped, so automation sees success when every MIG GPU got its
    mode."""
    capable = [o for o in outcomes if o.result != "not_supported"]
    results = {o.result for o in (outcomes if explicit or not capable else capable)}
    if "refused" in results:
        return InUseError.exit_code
    if "pending" in results:
        return ResetRequiredError.exit_code
    if "not_supported" in results:
        return NotSupportedError.exit_code
    return 0


@app.command()
def mode(
    action: str = typer.Argument(..., metavar="enable|disable", help="enable or disable", show_default=False),
    gpus: str | None = GPUS_OPTION,
    destroy_instances: bool = typer.Option(
        False, "--destroy-instances", help="When disabling, destroy the GPU's instances first (never busy ones)."
    ),
    wait: float = WAIT_OPTION,
) -> None:
    """Enable or disable MIG mode (nvidia-smi -mig 1|0), explaining pending and refused GPUs.

    Without -i: every GPU; GPUs that are not MIG-capable are reported and skipped.
    """
    from migctl.ops.mode import set_mig_mode

    if action not in ("enable", "disable"):
        raise UsageError(f"mode {action!r}: expected enable or disable")
    node = STATE.node()
    report = set_mig_mode(
        node, STATE.select(gpus), action == "enable", destroy_instances=destroy_instances, wait_s=wait
    )
    emit(report, render_mode)
    code = mode_exit_code(report.gpus, explicit=gpus is not None)
    if code:
        raise typer.Exit(code)


@app.command()
def reset(
    gpus: str | None = typer.Option(
        None,
        "-i",
        "--id",
        metavar="GPUS",
        help="GPUs to reset (required: a reset destroys every instance on them; -i all for every GPU).",
        show_default=False,
    ),
    force: bool = typer.Option(
        False, "--force", help="Reset even if nothing is pending (destroys the GPU's instances)."
    ),
    wait: float = WAIT_OPTION,
) -> None:
    """Reset GPUs so a pending MIG mode takes effect (nvidia-smi -r). Refuses GPUs in use.

    -i is required here: a reset destroys every GPU instance, so all GPUs must be asked for
    (-i all). Without --force, a GPU with no MIG mode change pending is refused (exit 5).
    """
    from migctl.ops.mode import reset as reset_gpus

    if gpus is None:
        raise UsageError(
            "reset: say which GPUs with -i (a reset destroys every GPU instance on them)",
            hint="e.g. migctl reset -i 0, or -i all for every GPU",
        )
    emit(reset_gpus(STATE.node(), STATE.select(gpus), force=force, wait_s=wait), render_reset)


@app.command()
def create(
    profiles: list[str] = typer.Argument(
        ..., metavar="PROFILE[:COUNT]...", help="By name (1g.12gb) or ID (19); commas work too (19,19,14).",
        show_default=False,
    ),
    gpus: str | None = typer.Option(
        None, "-i", "--id", metavar="GPUS", help=GPUS_HELP.replace("all GPUs", "every GPU with MIG enabled") + ".",
        show_default=False,
    ),
    placement: int | None = typer.Option(
        None, "--placement", metavar="START", help="Start slice for a single GPU instance.", show_default=False
    ),
    no_compute_instance: bool = typer.Option(
        False, "--no-compute-instance", help="Create GPU instances only (no default compute instance)."
    ),
    wait: float = WAIT_OPTION,
) -> None:
    """Create GPU instances (each with its default compute instance), all or nothing.

    Without -i: on every GPU with MIG enabled (nvidia-smi mig -cgi without -i acts on all GPUs).
    """
    from migctl.ops.create import create as create_instances
    from migctl.ops.gpus import for_create

    report = create_instances(
        STATE.node(),
        for_create(STATE.node(), gpus),
        _requests(profiles),
        placement=placement,
        compute_instance=not no_compute_instance,
        wait_s=wait,
    )
    emit(report, render_created)


@app.command("create-ci")
def create_ci(
    ci_profiles: list[str] = typer.Argument(
        None, metavar="[CI_PROFILE[:COUNT]]...", help="1c.3g.48gb or an ID; the default CI if none.",
        show_default=False,
    ),
    gpus: str | None = typer.Option(
        None, "-i", "--id", metavar="GPU", help="One GPU (may be left out on a one-GPU node).", show_default=False
    ),
    gi: int = typer.Option(..., "--gi", metavar="ID", help="GPU-instance ID.", show_default=False),
    wait: float = WAIT_OPTION,
) -> None:
    """Create compute instances inside one GPU instance, all or nothing."""
    from migctl.ops.create import create_ci as create_compute_instances

    gpu = STATE.one_gpu(gpus, "create-ci")
    report = create_compute_instances(STATE.node(), gpu, gi, _requests(ci_profiles or []), wait_s=wait)
    emit(report, render_created)


@app.command()
def destroy(
    gpus: str | None = typer.Option(
        None, "-i", "--id", metavar="GPUS",
        help=GPUS_HELP + " (with --gi/--ci: required on a node with several GPUs).", show_default=False,
    ),
    gi: list[str] = typer.Option(
        [], "--gi", metavar="ID[,ID...]", help="GPU instances (with their compute instances): --gi 9,10.",
        show_default=False,
    ),
    ci: list[str] = typer.Option(
        [], "--ci", metavar="GI:CI[,GI:CI...]", help="Compute instances: --ci 2:0,3:0.", show_default=False
    ),
    uuid: list[str] = typer.Option(
        [], "--uuid", metavar="MIG-UUID[,...]", help="MIG devices (their compute instances), on any GPU.",
        show_default=False,
    ),
    everything: bool = typer.Option(False, "--all", help="Every instance on the chosen GPUs."),
    wait: float = WAIT_OPTION,
) -> None:
    """Destroy compute then GPU instances; refuses (changing nothing) if any is in use.

    --gi and --ci name instances by their IDs on one GPU (the same IDs repeat on every GPU), so
    they need -i on a node with several GPUs; --all without -i empties every GPU; --uuid needs no -i.
    """
    from migctl.config.gpus import parse_ids, split_list
    from migctl.config.requests import parse_compute_instance
    from migctl.ops.destroy import destroy as destroy_instances
    from migctl.ops.gpus import for_instance_ids

    gi_ids = parsed(lambda: parse_ids(gi, option="--gi"))
    pairs = parsed(lambda: [parse_compute_instance(text) for text in split_list(ci)])
    uuids = split_list(uuid)
    if gi_ids or pairs:
        chosen = for_instance_ids(STATE.node(), gpus, "destroy")
    elif uuids and gpus is None and not everything:
        chosen = []  # MIG devices by UUID, on whichever GPU
    else:
        chosen = STATE.select(gpus)
    report = destroy_instances(
        STATE.node(), chosen, gi_ids=gi_ids, ci_ids=pairs, uuids=uuids, everything=everything, wait_s=wait
    )
    emit(report, render_destroyed)


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
