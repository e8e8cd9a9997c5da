"""What mig-parted users expect besides apply: ``generate-config``, ``checkpoint``, ``restore``.

Thin over :mod:`migctl.ops.parity`. As ``export`` does, ``-o yaml|json`` (and a plain
``checkpoint``) print the file itself; ``--json`` prints migctl's record of the command
(:mod:`migctl.records.parity`). ``-f``, ``-c``, ``-k`` default to the environment (cli/env.py).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from migctl.cli import env
from migctl.cli.app import GPUS_OPTION, STATE, WAIT_OPTION, commands, emit, want_json
from migctl.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.records.parity import CheckpointReport, GenerateConfigReport, RestoreReport

app = commands()

FORMAT_OPTION = typer.Option(
    "yaml", "-o", "--output-format", metavar="yaml|json", help="The file's format (default yaml).", show_default=False
)


def render_generated(console: Console, report: GenerateConfigReport) -> None:
    console.print(f"wrote {len(report.configs)} configs to {report.file}")


@app.command("generate-config")
def generate_config(
    output: str | None = typer.Option(
        None, "-f", "--output-file", metavar="FILE", help="Write here instead of stdout.", show_default=False
    ),
    fmt: str = FORMAT_OPTION,
    gpus: str | None = GPUS_OPTION,
) -> None:
    """A mig-parted config from the profiles the GPUs report: all-disabled, all-enabled, all-<profile>, all-balanced."""
    from migctl.config.export import render
    from migctl.ops import parity

    if fmt not in ("yaml", "json"):
        raise UsageError(f"-o {fmt!r}: expected yaml or json")
    file = None if output in (None, "-") else output
    report = parity.generate_config(STATE.select(gpus), file, "json" if fmt == "json" else "yaml")
    if report.file is None and not want_json():
        sys.stdout.write(render(report.config, "json" if fmt == "json" else "yaml"))
        return
    emit(report, render_generated)


def render_checkpoint(console: Console, report: CheckpointReport) -> None:
    ck = report.checkpoint
    n = sum(len(g.gpu_instances) for g in ck.gpus)
    console.print(f"checkpoint of {len(ck.gpus)} GPU(s), {n} GPU instance(s) written to {report.file}")


@app.command("checkpoint")
def checkpoint_cmd(
    file: str | None = typer.Option(
        None,
        "-f",
        "--checkpoint-file",
        metavar="FILE",
        help="Write here ('-' or none: stdout; env MIGCTL_CHECKPOINT_FILE).",
        show_default=False,
    ),
    gpus: str | None = GPUS_OPTION,
) -> None:
    """Save the exact MIG state (mode, instances, placements, compute instances) as JSON."""
    from migctl.integrations.checkpoint import to_text
    from migctl.ops import parity

    file = env.from_env(file, env.CHECKPOINT_FILE)
    report = parity.write_checkpoint(STATE.select(gpus), None if file in (None, "-") else file)
    if report.file is None and not want_json():
        sys.stdout.write(to_text(report.checkpoint))
        return
    emit(report, render_checkpoint)


def render_restore(console: Console, report: RestoreReport) -> None:
    for r in report.recovered:
        console.print(f"recovered GPU {r.gpu}: {r.result}: {r.detail}")
    for o in report.gpus:
        console.print(f"GPU {o.gpu}: {o.result}" + (f": {o.detail}" if o.detail else ""))
    for h in report.hooks:
        if h.point == "apply-exit" and h.exit_code != 0:
            console.print(f"apply-exit hook failed (exit {h.exit_code}): {h.command}")
    for n in report.compute_placement_differences:
        console.print(f"note: {n}")


@app.command("restore")
def restore_cmd(
    file: str | None = typer.Option(
        None,
        "-f",
        "--checkpoint-file",
        metavar="FILE",
        help="Checkpoint to restore ('-': stdin; env MIGCTL_CHECKPOINT_FILE).",
        show_default=False,
    ),
    hooks_file: str | None = typer.Option(
        None, "-k", "--hooks-file", metavar="FILE", help="mig-parted hooks file (env MIGCTL_HOOKS_FILE).",
        show_default=False,
    ),
    mode_only: bool = typer.Option(False, "--mode-only", help="Only restore each GPU's MIG mode."),
    wait: float = WAIT_OPTION,
) -> None:
    """Bring checkpointed GPUs back to that exact state; refuses (changing nothing) if busy instances are in the way."""
    from migctl.cli.layout_cmds import apply_exit_code
    from migctl.integrations.checkpoint import CheckpointError, from_text
    from migctl.ops import parity
    from migctl.ops.files import load_hooks_file, read_text

    file = env.from_env(file, env.CHECKPOINT_FILE)
    if file is None:
        raise UsageError("say which checkpoint: -f FILE ('-' for stdin)")
    text, source = read_text(file)
    hooks_path = env.from_env(hooks_file, env.HOOKS_FILE)
    hooks = load_hooks_file(hooks_path) if hooks_path else None
    try:
        ck = from_text(text, source)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    report = parity.restore(
        STATE.node(), ck, source, hooks=hooks, hooks_file=hooks_path or "", only_mode=mode_only, wait_s=wait
    )
    emit(report, render_restore)
    if not report.ok:
        raise typer.Exit(apply_exit_code(report.gpus))
