"""The typer application, its global options, and how results and errors are printed.

Every command's result is a JSON-ready dict: with ``--json`` it is printed as JSON, otherwise a
renderer draws it. Errors are one line on stderr (or a JSON object on stdout with ``--json``),
with the exit code of their class (see :mod:`migctl.errors`); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console

from migctl.device import Node, open_node

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
    _node: Node | None = field(default=None, repr=False)

    def node(self) -> Node:
        if self._node is None:
            self._node = open_node(self.sim)
        return self._node


STATE = CliState()
# Pipes and CI logs get a wide console, so tables read like nvidia-smi's instead of wrapping at 80.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def want_json(flag: bool) -> bool:
    return flag or STATE.json


def emit(data: Any, render: Callable[[Console, Any], None], as_json: bool) -> None:
    """Print ``data`` as JSON or through ``render``."""
    if want_json(as_json):
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    else:
        render(out, data)


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
