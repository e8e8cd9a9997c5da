"""Running work on MIG devices: ``run``, ``batch``, ``doctor`` (thin over ops.run, ops.batch, ops.doctor)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from migctl.cli.app import GPUS_OPTION, JSON_OPTION, STATE, app, consoles, emit, want_json
from migctl.errors import UsageError
from migctl.ops import batch as batch_ops
from migctl.ops import doctor as doctor_ops
from migctl.ops import run as run_ops


@app.command(
    context_settings={
        "allow_interspersed_args": False,
        "ignore_unknown_options": True,
        "allow_extra_args": True,
    },
    options_metavar="[--on TARGET] [--wait [SECONDS] | --no-wait] [-q]",
)
def run(ctx: typer.Context) -> None:
    """Run COMMAND on one MIG device, leased for its whole life.

    \b
    migctl run [--on TARGET] [--wait [SECONDS] | --no-wait] [-q] -- COMMAND [ARGS...]

    \b
    --on TARGET      MIG-<uuid>, GPU:GI (0:13) or GPU:GI:CI, a profile (1g.12gb);
                     default: any free MIG device (spread over GPUs)
    --wait [SECONDS] if every matching device is busy, queue until one is free
                     (forever, or at most SECONDS)
    --no-wait        fail at once (exit 5) naming who holds it: the default
    -q, --quiet      do not say which device was chosen (stderr)

    The command runs as an argv list (no shell) with CUDA_VISIBLE_DEVICES=MIG-<uuid>,
    CUDA_DEVICE_ORDER=PCI_BUS_ID and MIGCTL_DEVICE_UUID, MIGCTL_GPU_INDEX,
    MIGCTL_GPU_INSTANCE_ID, MIGCTL_COMPUTE_INSTANCE_ID, MIGCTL_PROFILE; in it, cuda:0 is the
    MIG device. migctl exits with its exit code (128+N if signal N ends it) and forwards
    SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it. See docs/run.md.
    """
    opts, command = run_ops.parse_args(list(ctx.args))
    code = run_ops.run(STATE.node(), command, opts, say=lambda text: consoles.err.print(f"migctl: {text}"))
    raise typer.Exit(code)


@app.command()
def batch(
    args: list[str] = typer.Argument(
        None, metavar="JOBS.yaml | -- COMMAND...", help="A jobs file, or with --each-instance the command."
    ),
    each_instance: bool = typer.Option(
        False, "--each-instance", help="Run COMMAND once on every MIG device (those --on selects)."
    ),
    on: str | None = typer.Option(None, "--on", metavar="TARGET", help="With --each-instance: only these devices."),
    logs: Path | None = typer.Option(
        None, "--logs", metavar="DIR", help="Per-job logs (default ./migctl-logs/batch-<time>-<pid>/)."
    ),
    retries: int | None = typer.Option(None, "--retries", min=0, help="Default retries of a failed job (default 0)."),
    timeout: float | None = typer.Option(
        None, "--timeout", metavar="SECONDS", help="Default time limit per attempt (default none)."
    ),
    grace: float = typer.Option(
        batch_ops.DEFAULT_GRACE_S, "--grace", metavar="SECONDS", help="SIGTERM-to-SIGKILL delay for stopped jobs (10)."
    ),
    max_parallel: int | None = typer.Option(None, "--max-parallel", min=1, help="At most this many jobs at once."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Run many jobs in parallel, each on its own MIG device as soon as one is free.

    \b
    migctl batch JOBS.yaml [--logs DIR] [--json]
    migctl batch --each-instance [--on TARGET] -- COMMAND [ARGS...]

    A failed attempt (non-zero exit, killed, OOM, timeout) frees its device at once and is
    retried as configured. Ctrl-C/SIGTERM stops launching, ends running jobs (SIGTERM to each
    job's process group, SIGKILL after --grace) and prints the summary. Exit 0 if every job
    succeeded, 1 if any failed, 130/143 if interrupted. See docs/run.md.
    """
    args = list(args or [])
    node = STATE.node()
    if each_instance:
        if not args:
            raise UsageError(
                "batch --each-instance: no command given", hint="e.g. migctl batch --each-instance -- nvidia-smi -L"
            )
        jobs = batch_ops.each_instance_jobs(node, args, on, retries=retries or 0, timeout=timeout)
    else:
        if on is not None:
            raise UsageError("batch --on goes with --each-instance; in a jobs file give each job a target or profile")
        if len(args) != 1:
            raise UsageError(
                f"batch: expected one JOBS.yaml file, got {len(args)} arguments",
                hint="or run a command on every device with: migctl batch --each-instance -- COMMAND...",
            )
        jobs = batch_ops.load_jobs(Path(args[0]), node, retries=retries, timeout=timeout)
    live = sys.stdout.isatty() and not want_json(json_out)
    result = batch_ops.run_batch(
        node, jobs, logs_dir=logs, grace_s=grace, max_parallel=max_parallel, console=consoles.out if live else None
    )
    emit(result.to_json(), batch_ops.render_summary, json_out)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command()
def doctor(
    gpus: str | None = GPUS_OPTION,
    smoke: bool = typer.Option(True, "--smoke/--no-smoke", help="Run the smoke test on every MIG device (default)."),
    smoke_timeout: float = typer.Option(
        doctor_ops.SMOKE_TIMEOUT_S, "--smoke-timeout", metavar="SECONDS", help="Time limit per smoke test (60)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Check that MIG and CUDA work here: driver, MIG modes, fabric manager, a smoke test per MIG device.

    Each check passes, warns or fails with the fix. Exit 1 if any check fails. See docs/run.md.
    """
    report = doctor_ops.diagnose(lambda: STATE.node(), gpus=gpus, smoke=smoke, smoke_timeout=smoke_timeout)
    emit(report, doctor_ops.render, json_out)
    if not report["ok"]:
        raise typer.Exit(1)
