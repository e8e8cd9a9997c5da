"""Running work on MIG devices: ``run``, ``batch``, ``doctor`` (over ops.run, ops.batch, ops.doctor).

The operations are imported when a command runs, not when the CLI starts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

import typer
from typer import _click as click  # typer's own click (typer vendors it)
from typer.core import TyperCommand

from migctl.cli import run_args
from migctl.cli.app import GPUS_HELP, GPUS_OPTION, STATE, commands, consoles, emit, want_json, warn
from migctl.errors import Interrupted, MigctlError, UsageError
from migctl.records import dumps

if TYPE_CHECKING:
    from migctl.ops.run import RunRequest

app = commands()

# -- run ---------------------------------------------------------------------------------------------


class _RecordSink:
    """Where ``run`` puts its record (or its error): stderr with ``--json``, ``--record FILE``.

    stdout belongs to the command that runs, so nothing of migctl's goes there.
    """

    def __init__(self, as_json: bool, record: Path | None) -> None:
        self.as_json = as_json
        self.path = record
        self.file: IO[str] | None = None

    @property
    def active(self) -> bool:
        return self.as_json or self.path is not None

    def open(self) -> None:
        """Open ``--record FILE`` now: a path that cannot be written fails before anything runs."""
        if self.path is not None and self.file is None:
            try:
                self.file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115  (closed in write)
            except OSError as exc:
                self.path = None
                raise UsageError(f"--record {exc.filename}: cannot write: {exc.strerror}") from None

    def write(self, document: str) -> None:
        if self.as_json:
            sys.stderr.write(document + "\n")
            sys.stderr.flush()
        if self.path is not None:
            try:
                self.open()
            except UsageError:
                return
            assert self.file is not None
            with self.file:
                self.file.write(document + "\n")

    def fail(self, exc: MigctlError) -> typer.Exit:
        self.write(json.dumps(exc.to_json(), indent=2))
        return typer.Exit(exc.exit_code)


def _sink_for(args: list[str]) -> _RecordSink:
    """The sink the words before the command ask for (read before click, for parse errors)."""
    own = run_args.options_part(args)
    record = next((own[i + 1] for i, a in enumerate(own[:-1]) if a == "--record"), None)
    record = record or next((a.split("=", 1)[1] for a in own if a.startswith("--record=")), None)
    return _RecordSink(want_json() or "--json" in own, Path(record) if record else None)


class _RunCommand(TyperCommand):
    """``run``'s grammar (see :mod:`migctl.cli.run_args`) on top of typer's options."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # main's error printer looks for --json in the command line: only migctl's own words count.
        STATE.argv = run_args.options_part(args)
        try:
            normalized = run_args.normalize(args)
        except MigctlError as exc:
            sink = _sink_for(args)
            if sink.active:
                raise sink.fail(exc) from None
            raise
        return super().parse_args(ctx, normalized)


def run_request(command: list[str] | None, on: str | None, queue: str | None, no_queue: bool) -> RunRequest:
    """The typed request ``run``'s options make (click has parsed them)."""
    from migctl.config.target import parse_target
    from migctl.ops.run import RunRequest

    return RunRequest(run_args.command_of(command), parse_target(on), run_args.queue_seconds(queue, no_queue))


@app.command(
    cls=_RunCommand,
    context_settings={"allow_interspersed_args": False},
    options_metavar="[--on TARGET] [--queue [SECONDS] | --no-queue] [-q] [--json] [--record FILE]",
)
def run(
    command: list[str] | None = typer.Argument(
        None,
        metavar="COMMAND",
        help="The command and its arguments, best after -- (every word after it is the command's).",
        show_default=False,
    ),
    on: str | None = typer.Option(
        None,
        "--on",
        "-o",
        metavar="TARGET",
        help="MIG-<uuid>, GPU:GI (0:13) or GPU:GI:CI, or a profile (1g.12gb); default: any free MIG device.",
    ),
    queue: str | None = typer.Option(
        None,
        "--queue",
        metavar="[SECONDS]",
        help="If every matching device is busy, queue until one is free (forever, or at most SECONDS). "
        "Old name: --wait (deprecated).",
        show_default=False,
    ),
    no_queue: bool = typer.Option(
        False, "--no-queue", help="Fail at once (exit 5) naming who holds it: the default. Old name: --no-wait."
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Do not say which device was chosen (stderr)."),
    json_out: bool = typer.Option(
        False, "--json", help="Write the run's record as JSON on stderr when it ends (stdout is the command's)."
    ),
    record: Path | None = typer.Option(
        None, "--record", metavar="FILE", help="Write the run's record (or migctl's error) to FILE as JSON."
    ),
) -> None:
    """Run COMMAND on one MIG device, leased for its whole life.

    The command runs as an argv list (no shell) with CUDA_VISIBLE_DEVICES=MIG-<uuid>,
    CUDA_DEVICE_ORDER=PCI_BUS_ID and MIGCTL_DEVICE_UUID, MIGCTL_GPU_INDEX,
    MIGCTL_GPU_INSTANCE_ID, MIGCTL_COMPUTE_INSTANCE_ID, MIGCTL_PROFILE; in it, cuda:0 is the
    MIG device. migctl exits with its exit code (128+N if signal N ends it) and forwards
    SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it. See docs/run.md.
    """
    from migctl.cli.run_views import run_notice
    from migctl.ops import run as run_ops

    sink = _RecordSink(json_out or want_json(), record)
    talk = not (quiet or sink.as_json)
    for old in run_args.deprecated(STATE.argv):
        if talk:
            warn(f"run {old} is now {run_args.RENAMED[old]} (--wait is the host lock's wait on other commands)")
    try:
        request = run_request(command, on, queue, no_queue)
        sink.open()
        report = run_ops.run(
            STATE.node(),
            request,
            on_event=(lambda event: consoles.err.print(f"migctl: {run_notice(event)}")) if talk else None,
        )
    except MigctlError as exc:
        if sink.active:
            raise sink.fail(exc) from None
        raise
    except KeyboardInterrupt:
        if sink.active:
            raise sink.fail(Interrupted("interrupted while waiting for a MIG device; nothing ran")) from None
        raise
    sink.write(dumps(report))
    raise typer.Exit(report.exit_code)


# -- batch -------------------------------------------------------------------------------------------


@app.command()
def batch(
    args: list[str] = typer.Argument(
        None, metavar="JOBS.yaml | -- COMMAND...", help="A jobs file, or with --each-instance the command."
    ),
    each_instance: bool = typer.Option(
        False, "--each-instance", help="Run COMMAND once on every MIG device (those --on selects)."
    ),
    on: str | None = typer.Option(
        None, "--on", metavar="TARGET", help="With --each-instance: only these devices.", show_default=False
    ),
    logs: Path | None = typer.Option(
        None, "--logs", metavar="DIR", help="Per-job logs (default ./migctl-logs/batch-<time>-<pid>/).",
        show_default=False,
    ),
    retries: int | None = typer.Option(
        None, "--retries", metavar="N", help="Default retries of a failed job (default 0).", show_default=False
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", metavar="SECONDS", help="Default time limit per attempt (default none).",
        show_default=False,
    ),
    grace: float = typer.Option(
        10.0,  # ops.batch.DEFAULT_GRACE_S, not imported at start-up (a test checks they agree)
        "--grace", metavar="SECONDS", help="SIGTERM-to-SIGKILL delay for stopped jobs (default 10).",
        show_default=False,
    ),
    max_parallel: int | None = typer.Option(
        None, "--max-parallel", metavar="N", help="At most this many jobs at once (default: one per device).",
        show_default=False,
    ),
    auto: bool = typer.Option(
        False, "--auto", help="migctl picks each job's profile and reshapes idle MIG slices (see docs/scheduler.md).",
        show_default=False,
    ),
    objective: str | None = typer.Option(
        None, "--objective", metavar="jct|makespan", help="With --auto: what to minimise (default jct: mean JCT).",
        show_default=False,
    ),
    gpus: str | None = typer.Option(
        None, "-i", "--id", metavar="GPUS",
        help="With --auto: the GPUs it may use and reshape. "
        + GPUS_HELP.replace("all GPUs", "every MIG-capable GPU") + ".",
        show_default=False,
    ),
) -> None:
    """Run many jobs in parallel, each on its own MIG device as soon as one is free.

    \b
    migctl batch JOBS.yaml [--logs DIR] [--json]
    migctl batch --auto JOBS.yaml [-i GPUS] [--objective jct|makespan]
    migctl batch --each-instance [--on TARGET] -- COMMAND [ARGS...]

    A failed attempt (non-zero exit, killed, OOM, timeout) frees its device at once and is
    retried as configured. Ctrl-C/SIGTERM stops launching, ends running jobs (SIGTERM to each
    job's process group, SIGKILL after --grace) and prints the summary. Exit 0 if every job
    succeeded, 1 if any failed, 130/143 if interrupted. See docs/run.md.
    """
    from migctl.cli.run_views import LiveBatch, render_batch
    from migctl.config.target import parse_target
    from migctl.ops import batch as batch_ops
    from migctl.ops import jobs as jobs_ops

    args = list(args or [])
    if retries is not None and retries < 0:
        raise UsageError(f"--retries {retries}: expected a number of retries >= 0")
    if max_parallel is not None and max_parallel < 1:
        raise UsageError(f"--max-parallel {max_parallel}: expected at least 1")
    if auto or objective is not None or gpus is not None:  # batch --auto: cli/autobatch_cmds.py
        from migctl.cli.autobatch_cmds import auto_batch

        auto_batch(
            args, auto=auto, objective=objective, gpus=gpus, each_instance=each_instance, on=on, logs=logs,
            retries=retries, timeout=timeout, grace=grace, max_parallel=max_parallel,
        )
        return
    node = STATE.node()
    if each_instance:
        if not args:
            raise UsageError(
                "batch --each-instance: no command given", hint="e.g. migctl batch --each-instance -- nvidia-smi -L"
            )
        jobs = jobs_ops.each_instance(node, args, parse_target(on), retries=retries or 0, timeout=timeout)
    else:
        if on is not None:
            raise UsageError("batch --on goes with --each-instance; in a jobs file give each job a target or profile")
        if len(args) != 1:
            raise UsageError(
                f"batch: expected one JOBS.yaml file, got {len(args)} arguments",
                hint="or run a command on every device with: migctl batch --each-instance -- COMMAND...",
            )
        jobs = jobs_ops.load_jobs(Path(args[0]), node, retries=retries, timeout=timeout)
    if sys.stdout.isatty() and not want_json():
        with LiveBatch(consoles.out) as view:
            report = batch_ops.run_batch(
                node, jobs, logs_dir=logs, grace_s=grace, max_parallel=max_parallel, on_progress=view.update
            )
    else:
        report = batch_ops.run_batch(node, jobs, logs_dir=logs, grace_s=grace, max_parallel=max_parallel)
    emit(report, render_batch)
    if report.summary.exit_code:
        raise typer.Exit(report.summary.exit_code)


# -- doctor ------------------------------------------------------------------------------------------


@app.command()
def doctor(
    gpus: str | None = GPUS_OPTION,
    smoke: bool = typer.Option(
        True, "--smoke/--no-smoke", help="Run the smoke test on every MIG device (default: on).", show_default=False
    ),
    smoke_timeout: float = typer.Option(
        60.0,  # ops.doctor.SMOKE_TIMEOUT_S, not imported at start-up (a test checks they agree)
        "--smoke-timeout", metavar="SECONDS", help="Time limit per smoke test (default 60).", show_default=False
    ),
) -> None:
    """Check that MIG and CUDA work here: driver, MIG modes, fabric manager, a smoke test per MIG device.

    Each check passes, warns or fails with the fix. Exit 1 if any check fails. See docs/run.md.
    """
    from migctl.cli.run_views import render_doctor
    from migctl.ops import doctor as doctor_ops

    report = doctor_ops.diagnose(STATE.node, gpus=gpus, smoke=smoke, smoke_timeout=smoke_timeout)
    emit(report, render_doctor)
    if not report.ok:
        raise typer.Exit(1)
