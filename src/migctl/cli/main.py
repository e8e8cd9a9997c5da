"""The console script's entry point: answers ``--version`` and ``--help`` at once, and hands every
command to :mod:`migctl.cli.dispatch` (which imports typer, and the command's module, only then).

``migctl --version`` and ``migctl --help`` therefore import nothing but this module, the registry
and the grammar: no typer, rich, pydantic or pynvml (a test checks which modules they import).
"""

from __future__ import annotations

import gc
import os
import sys

from migctl.cli import registry

#: The exit code of a command whose stdout was closed under it (``migctl plan --json | head``):
#: 128 + SIGPIPE, what a program killed by SIGPIPE reports. Nothing is printed.
CLOSED_PIPE = 141


def silence_stdout() -> None:
    """After a closed pipe: send what is still buffered for stdout nowhere, so that the
    interpreter's final flush cannot print a BrokenPipeError either."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests capture stdout in memory)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _fast(args: list[str]) -> int | None:
    """``migctl [GLOBAL OPTIONS] --version|--help``: answered without click; ``None`` otherwise."""
    if os.environ.get("_MIGCTL_COMPLETE"):
        return None  # the shell asks for completions: that is click's
    i = 0
    as_json = "--json" in args
    while i < len(args):
        word = args[i]
        if word in registry.VALUED:
            if i + 1 >= len(args):
                return None  # click says what is missing
            i += 2
        elif word.split("=", 1)[0] in registry.VALUED or word in ("--json", "--debug"):
            i += 1
        elif word == "--version":
            from migctl import __version__

            sys.stdout.write(f'{{\n  "version": "{__version__}"\n}}\n' if as_json else f"migctl {__version__}\n")
            return 0
        elif word == "--help":
            sys.stdout.write(registry.top_help())
            return 0
        else:
            return None
    return None


def run(argv: list[str] | None = None) -> int:
    """Run migctl; returns (and, as a console script, exits with) the documented exit code."""
    if argv is None:
        # A start-up allocates tens of thousands of objects (modules, classes, records) and
        # frees almost none: the default thresholds would collect garbage that is not there
        # a few dozen times (about 5% of a `status`). Collections still run, only rarer.
        gc.set_threshold(50_000, 20, 20)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _fast(args)
        if code is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        code = CLOSED_PIPE
    if code is None:
        from migctl.cli.dispatch import dispatch

        code = dispatch(args)
    if argv is None:
        sys.exit(code)
    return code
