"""Running a command: the root group, then every way it can end turned into one exit code.

* A :class:`~migctl.errors.MigctlError` (and an NVML error) is one line on stderr, or with
  ``--json`` one JSON document on stdout, with its class's exit code.
* A click usage error (unknown option, missing value) is the same: exit 2, one line, or the
  ``usage`` error document with ``--json``.
* Ctrl-C and SIGTERM end in exit 130 after the command undid its partial work.
* stdout closed by its reader (``migctl plan --json | head``) ends quietly with exit 141, as a
  program killed by SIGPIPE: no traceback, no message.
* Anything else is a bug: "internal error" with the hint to rerun with ``--debug``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import traceback

import typer
from typer import _click as click

from migctl.cli import grammar
from migctl.cli.app import STATE, consoles
from migctl.cli.main import CLOSED_PIPE, silence_stdout
from migctl.errors import MigctlError, UsageError, from_nvml


def fail(exc: MigctlError) -> int:
    """Report ``exc`` (one line on stderr, or its JSON document on stdout); its exit code."""
    if STATE.json:
        sys.stdout.write(json.dumps(exc.to_json(), indent=2) + "\n")
    else:
        consoles.err.print(f"migctl: error: {exc}", markup=False, highlight=False)
    if STATE.debug:
        traceback.print_exception(exc)
    return exc.exit_code


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def usage_error(exc: click.ClickException) -> UsageError:
    """click's complaint as migctl's one-line usage error, naming the command and its help:
    ``status: No such option: --bogus; see: migctl status --help``."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "migctl"
    words = path.split()[1:]
    return UsageError(f"{' '.join(words)}: {message}" if words else message, hint=f"see: {path} --help")


def _closed_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` was raised because stdout's reader went away."""
    cause = exc.__context__
    return isinstance(cause, OSError) and cause.errno == errno.EPIPE


def _unwrap_streams() -> None:
    """Undo click's ``PacifyFlushWrapper`` around stdout/stderr (it outlives the run in-process)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        wrapped = getattr(stream, "wrapped", None)
        if type(stream).__name__ == "PacifyFlushWrapper" and wrapped is not None:
            setattr(sys, name, wrapped)


def dispatch(args: list[str]) -> int:
    """Run ``migctl ARGS...``; return its exit code."""
    from migctl.cli.group import command

    STATE.reset(args, json=grammar.wants_json(args))
    consoles.reset()
    cli = command()
    if os.environ.get("_MIGCTL_COMPLETE"):
        from typer._completion_classes import completion_init  # what typer.main does when it adds completion

        completion_init()
    # SIGTERM (systemd stop, kill) takes the same path as Ctrl-C, so a mutating command undoes
    # its partial work instead of dying half-way. run and batch block it and forward it.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = _invoke(cli, args)
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
            code = CLOSED_PIPE
    finally:
        STATE.reset([])
        signal.signal(signal.SIGTERM, previous)
    return code


def _invoke(cli: click.Command, args: list[str]) -> int:
    try:
        result = cli.main(args=args, prog_name="migctl", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except BrokenPipeError:
        silence_stdout()
        return CLOSED_PIPE
    except SystemExit as exc:
        # click (in typer) and rich turn a closed stdout into SystemExit(1) themselves
        if _closed_pipe(exc):
            _unwrap_streams()
            silence_stdout()
            return CLOSED_PIPE
        raise
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        consoles.err.print("migctl: interrupted")
        return 130
    except click.exceptions.NoArgsIsHelpError:
        if STATE.json:
            return fail(UsageError("no command given", hint="see: migctl --help"))
        from migctl.cli.registry import top_help

        sys.stderr.write(top_help())
        return 2
    except click.ClickException as exc:
        return fail(usage_error(exc))
    except MigctlError as exc:
        return fail(exc)
    except Exception as exc:
        nvml = sys.modules.get("pynvml")  # only a command that imported pynvml can raise its errors
        if nvml is not None and isinstance(exc, nvml.NVMLError):
            return fail(from_nvml(exc, "NVML call failed"))
        if STATE.debug:
            raise
        return fail(
            MigctlError(f"internal error: {type(exc).__name__}: {exc}", hint="rerun with --debug and report it")
        )
