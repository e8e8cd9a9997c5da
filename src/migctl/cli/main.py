"""Entry point: runs the typer app and turns every error into one line and an exit code."""

from __future__ import annotations

import json
import signal
import sys
import traceback

import pynvml
import typer

from migctl.cli import inspect_cmds, sim_cmds  # noqa: F401  (register commands)
from migctl.cli.app import STATE, app, consoles
from migctl.errors import MigctlError, UsageError, from_nvml

for _module in (
    "migctl.cli.lifecycle_cmds",
    "migctl.cli.layout_cmds",
    "migctl.cli.run_cmds",
    "migctl.cli.boot_cmds",
    "migctl.cli.parity_cmds",
    "migctl.cli.scheduler_cmds",
    "migctl.cli.ray_cmds",
):
    try:
        __import__(_module)
    except ModuleNotFoundError as _exc:  # a front end not built yet must not break the others
        if _exc.name != _module:
            raise


def _fail(exc: MigctlError, as_json: bool = False) -> int:
    if as_json or STATE.json or "--json" in STATE.argv:
        sys.stdout.write(json.dumps(exc.to_json(), indent=2) + "\n")
    else:
        consoles.err.print(f"migctl: error: {exc}", markup=False, highlight=False)
    if STATE.debug:
        traceback.print_exception(exc)
    return exc.exit_code


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(argv: list[str] | None = None) -> int:
    """Run migctl; returns (and, as a console script, exits with) the documented exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    STATE.reset(args)
    consoles.reset()
    cli = typer.main.get_command(app)
    # SIGTERM (systemd stop, kill) takes the same path as Ctrl-C, so a mutating command undoes
    # its partial work instead of dying half-way. run and batch block it and forward it.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        result = cli.main(args=args, prog_name="migctl", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        consoles.err.print("migctl: interrupted")
        code = 130
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        if "--json" in args:
            code = _fail(UsageError(exc.format_message()), as_json=True)
        else:
            exc.show()  # type: ignore[attr-defined]
            code = int(getattr(exc, "exit_code", 2))
    except MigctlError as exc:
        code = _fail(exc)
    except pynvml.NVMLError as exc:
        code = _fail(from_nvml(exc, "NVML call failed"))
    except KeyboardInterrupt:
        consoles.err.print("migctl: interrupted")
        code = 130
    except Exception as exc:
        if STATE.debug:
            raise
        code = _fail(
            MigctlError(f"internal error: {type(exc).__name__}: {exc}", hint="rerun with --debug and report it")
        )
    finally:
        STATE.reset([])
        signal.signal(signal.SIGTERM, previous)
    if argv is None:
        sys.exit(code)
    return code
