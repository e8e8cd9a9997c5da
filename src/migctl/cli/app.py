"""The typer application, its global options, and how results and errors are printed.

Every command's result is a JSON-ready dict: with ``--json`` it is printed as JSON, otherwise a
renderer draws it. Errors are one line on stderr (or a JSON object on stdout with ``--json``),
with the exit code of their class (see :mod:`migctl.errors`); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import typer
from rich.console import Console

from migctl.device import Node, open_node
from migctl.records import dumps

R = TypeVar("R")

app = typer.Typer(
    name="migctl",
    help="Safe, repeatable NVIDIA MIG management: inspect, partition, apply layouts, run jobs.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

JSON_OPTION = typer.Option(False, "--json", help="Print a machine-readable result (see docs/json.md).")
GPUS_OPTION = typer.Option(None, "-i", "--id", help="GPUs: an index, a list (0,2), a range (0-3) or a GPU UUID.")


@dataclass
class CliState:
    sim: str | None = None
    json: bool = False
    debug: bool = False
    wait: float | None = None
    argv: list[str] = field(default_factory=list)
    _node: Node | None = field(default=None, repr=False)

    def node(self) -> Node:
        if self._node is None:
            self._node = open_node(self.sim)
        return self._node

    def reset(self, argv: list[str]) -> None:
        """Forget everything a previous run in this process left (the CLI is run in-process by tests)."""
        if self._node is not None:
            self._node.close()
        self.sim, self.json, self.debug, self.wait, self._node = None, "--json" in argv, False, None, None
        self.argv = argv


STATE = CliState()


class _Consoles:
    """stdout and stderr consoles, made on first use (rich is imported only when output is drawn).

    Markup and emoji are off: nothing from the driver, a file, a process or a user is ever read
    as rich markup (a bus ID ``00000000:AB:00.0`` must not turn into an emoji). Pipes and CI logs
    get a wide console, so tables read like nvidia-smi's instead of wrapping at 80.
    """

    def __init__(self) -> None:
        self._out: Console | None = None
        self._err: Console | None = None

    def _make(self, stderr: bool) -> Console:
        stream = sys.stderr if stderr else sys.stdout
        width = None if stream.isatty() else int(os.environ.get("COLUMNS", "160"))
        return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width, markup=False, emoji=False)

    @property
    def out(self) -> Console:
        if self._out is None:
            self._out = self._make(False)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            self._err = self._make(True)
        return self._err

    def reset(self) -> None:
        self._out = self._err = None


consoles = _Consoles()


def want_json(flag: bool) -> bool:
    return flag or STATE.json


def emit(data: R, render: Callable[[Console, R], None], as_json: bool) -> None:
    """Print a result: its JSON serialisation with ``--json``, else what ``render`` draws of it."""
    if want_json(as_json):
        sys.stdout.write(dumps(data) + "\n")
    else:
        render(consoles.out, data)


@app.callback()
def main(
    sim: str | None = typer.Option(
        None,
        "--sim",
        metavar="SPEC",
        help="Use the MIG simulator instead of the driver, e.g. h20x8 or h100-80gbx4,a30x2 (env MIGCTL_SIM).",
    ),
    state_dir: str | None = typer.Option(
        None, "--state-dir", help="Where locks, leases, journals and the simulated node live (env MIGCTL_STATE_DIR)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output for any command."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    STATE.sim = sim if sim is not None else (os.environ.get("MIGCTL_SIM") or None)
    STATE.json = json_out
    STATE.debug = debug
    if state_dir:
        # Children (migctl run jobs, hooks) and every module see the same state directory.
        os.environ["MIGCTL_STATE_DIR"] = state_dir
    if STATE.sim:
        os.environ["MIGCTL_SIM"] = STATE.sim
