"""``migctl boot ...``: the systemd service that brings the MIG layout back at every boot.

Thin over :mod:`migctl.ops.boot`: name the config (options, then the environment, cli/env.py),
read it, call, render the record of :mod:`migctl.records.boot`. ``boot status`` exits 1 when
the last boot apply failed; ``boot apply`` with the error's code (1 when a GPU failed).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from migctl.cli import env
from migctl.cli.app import STATE, WAIT_OPTION, commands, emit
from migctl.errors import MigctlError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.records.boot import BootRecorded, BootRun, BootStatus, BootUninstall
    from migctl.records.layouts import GpuOutcome

app = commands()
boot_app = commands(
    help="Re-apply the recorded MIG layout at every boot (a systemd oneshot; see docs/boot.md).",
    no_args_is_help=True,
)
app.add_typer(boot_app, name="boot")

BOOT_DIR_OPTION = typer.Option(
    None,
    "--boot-dir",
    metavar="DIR",
    help="Where the selection is kept (env MIGCTL_BOOT_DIR, default /etc/migctl/boot).",
    show_default=False,
)
UNIT_DIR_OPTION = typer.Option(
    None,
    "--unit-dir",
    metavar="DIR",
    help="Where the unit is written (env MIGCTL_SYSTEMD_DIR; default /etc/systemd/system).",
    show_default=False,
)
FILE_OPTION = typer.Option(
    None,
    "-f",
    "--config-file",
    metavar="FILE",
    help="mig-parted v1 config file, '-' for stdin (env MIGCTL_CONFIG_FILE).",
    show_default=False,
)
HOOKS_OPTION = typer.Option(
    None,
    "-k",
    "--hooks-file",
    metavar="FILE",
    help="mig-parted hooks file to run around each apply (env MIGCTL_HOOKS_FILE).",
    show_default=False,
)
NO_APPLY_OPTION = typer.Option(
    False, "--no-apply", help="Do not apply now: record the node's current layout, which must match the config."
)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def _config(file: str | None, directory: Path) -> tuple[str, str]:
    """The config's text and the name to report it by: ``-f`` or the environment, else what
    ``install`` recorded."""
    from migctl.ops import boot
    from migctl.ops.files import read_text

    file = env.from_env(file, env.CONFIG_FILE)
    if file is None:
        if boot.load_selection(directory) is not None:
            return boot.recorded_config(directory)
        raise UsageError("say which config file: -f FILE (or set MIGCTL_CONFIG_FILE)")
    return read_text(file)


def _outcome(o: GpuOutcome) -> str:
    return f"GPU {o.gpu}: {o.result}" + (f": {o.detail}" if o.detail else "")


def render_recorded(console: Console, rec: BootRecorded) -> None:
    sel = rec.selection
    how = "applied and recorded" if rec.applied else "recorded (the node already matched)"
    console.print(
        f"config {sel.config_name!r} from {sel.config_file}: {how} for GPU(s) {', '.join(map(str, sel.gpus))}"
    )
    for o in rec.outcomes:
        console.print("  " + _outcome(o))
    if rec.unit:
        console.print(f"unit {rec.unit} written and enabled ({rec.enabled_by})")
    for note in rec.notes:
        console.print(f"note: {note}")
    console.print("at every boot these exact instances (placements and compute instances) are re-created:")
    console.print(rec.layout.rstrip())


@boot_app.command("install")
def install(
    file: str | None = FILE_OPTION,
    name: str | None = typer.Option(
        None,
        "-c",
        "--selected-config",
        metavar="NAME",
        help="Config name (env MIGCTL_SELECTED_CONFIG).",
        show_default=False,
    ),
    hooks_file: str | None = HOOKS_OPTION,
    no_apply: bool = NO_APPLY_OPTION,
    timeout: int = typer.Option(
        480, "--timeout", metavar="SECONDS", help="TimeoutStartSec of the unit (default 480).", show_default=False
    ),
    boot_dir: str | None = BOOT_DIR_OPTION,
    unit_dir: str | None = UNIT_DIR_OPTION,
    wait: float = WAIT_OPTION,
) -> None:
    """Apply a config now, record it with its exact placements, and install the boot unit."""
    from migctl.ops import boot

    directory = boot.boot_dir(boot_dir)
    text, source = _config(file, directory)
    rec = boot.install(
        STATE.node(), text, source, env.from_env(name, env.SELECTED_CONFIG),
        hooks_file=env.from_env(hooks_file, env.HOOKS_FILE), apply_now=not no_apply, directory=directory,
        units=boot.unit_dir(unit_dir), timeout_s=timeout, wait_s=wait,
    )
    emit(rec, render_recorded)


@boot_app.command("select")
def select(
    name: str = typer.Argument(
        ..., metavar="NAME", help="The config to use from now on (and at every boot).", show_default=False
    ),
    file: str | None = typer.Option(
        None,
        "-f",
        "--config-file",
        metavar="FILE",
        help="A new config file ('-': stdin); default: the one recorded at install.",
        show_default=False,
    ),
    hooks_file: str | None = HOOKS_OPTION,
    no_apply: bool = NO_APPLY_OPTION,
    boot_dir: str | None = BOOT_DIR_OPTION,
    wait: float = WAIT_OPTION,
) -> None:
    """Switch to another config: apply it now and record it for the next boots."""
    from migctl.ops import boot
    from migctl.ops.files import read_text

    directory = boot.boot_dir(boot_dir)
    previous = boot.load_selection(directory)
    if previous is None:
        raise UsageError(f"the boot service is not installed (nothing in {directory})",
                         hint="migctl boot install -f FILE -c NAME")
    text, source = read_text(file) if file is not None else boot.recorded_config(directory)
    hooks = env.from_env(hooks_file, env.HOOKS_FILE) or previous.hooks_file
    rec = boot.record(STATE.node(), text, source, name, hooks_file=hooks, apply_now=not no_apply,
                      directory=directory, wait_s=wait)
    emit(rec, render_recorded)


def render_status(console: Console, st: BootStatus) -> None:
    state = "not installed" if not st.installed else ("installed, enabled" if st.enabled else "installed, NOT enabled")
    console.print(f"unit {st.unit}: {state}")
    sel = st.selection
    if sel:
        console.print(f"config {sel.config_name!r} (from {sel.config_file}), recorded {_when(sel.recorded_at)}, "
                      f"GPUs {', '.join(map(str, sel.gpus))}")
    last = st.last_boot
    if last is None:
        console.print("last boot apply: none yet")
    else:
        verdict = "succeeded" if last.ok else f"FAILED: {last.error}"
        console.print(f"last boot apply ({_when(last.started)}, {last.seconds} s): {verdict}")
    if st.matches_now is not None:
        console.print("the node matches the recorded layout now" if st.matches_now else
                      "the node differs from the recorded layout now: " + " | ".join(
                          f"GPU {d.gpu}: {'; '.join(d.differences)}" for d in st.differences))


@boot_app.command("status")
def status(boot_dir: str | None = BOOT_DIR_OPTION, unit_dir: str | None = UNIT_DIR_OPTION) -> None:
    """Is the unit installed and enabled, which config, and did the last boot apply succeed? (exit 1 if it failed)"""
    from migctl.ops import boot

    try:
        node = STATE.node()
    except MigctlError:
        node = None  # no driver (yet): report what is recorded, without comparing
    st = boot.status(node, boot.boot_dir(boot_dir), boot.unit_dir(unit_dir))
    emit(st, render_status)
    if st.last_boot is not None and not st.last_boot.ok:
        raise typer.Exit(1)


def render_uninstall(console: Console, done: BootUninstall) -> None:
    if not done.removed:
        console.print("the boot service was not installed; nothing removed")
    for p in done.removed:
        console.print(f"removed {p}")


@boot_app.command("uninstall")
def uninstall(boot_dir: str | None = BOOT_DIR_OPTION, unit_dir: str | None = UNIT_DIR_OPTION) -> None:
    """Disable and remove the unit and the recorded selection (the GPUs keep their current layout)."""
    from migctl.ops import boot

    emit(boot.uninstall(boot.boot_dir(boot_dir), boot.unit_dir(unit_dir)), render_uninstall)


def render_run(console: Console, run: BootRun) -> None:
    for r in run.recovered:
        console.print(f"recovered GPU {r.gpu}: {r.result}: {r.detail}")
    for o in run.outcomes:
        console.print(_outcome(o))
    for row in run.table:
        console.print(f"GPU {row.gpu} ({row.gpu_name}) GI {row.gi} {row.profile} at {row.placement} "
                      f"-> CI {row.ci} {row.ci_profile} -> {row.uuid}")
    if run.ok:
        console.print(f"boot apply of {run.config_name!r} succeeded in {run.seconds} s")
    else:
        console.print(f"boot apply FAILED: {run.error}")


@boot_app.command("apply")
def apply_cmd(boot_dir: str | None = BOOT_DIR_OPTION, wait: float = WAIT_OPTION) -> None:
    """What the unit runs at boot: apply the recorded layout, log GPU -> instance -> MIG UUID, record the result."""
    from migctl.ops import boot

    run = boot.boot_apply(STATE.node(), boot.boot_dir(boot_dir), wait_s=wait)
    emit(run, render_run)
    if not run.ok:
        raise typer.Exit(run.exit_code or 1)
