"""What every command module shares: the run's state (global options, the node), the consoles,
``emit``, the common options, and the per-module typer app.

Every command's result is a typed record: with ``--json`` it is printed as JSON, otherwise a
renderer draws it. Errors are one line on stderr (or one JSON document on stdout with ``--json``),
with the exit code of their class (see :mod:`migctl.errors`); ``--debug`` adds the traceback.
rich is imported only when something is drawn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from migctl.records import dumps

if TYPE_CHECKING:
    from rich.console import Console

    from migctl.device import Gpu, Node

R = TypeVar("R")


def commands(**settings: Any) -> typer.Typer:
    """The typer app a command module registers its commands on (one per module; the lazy group
    of :mod:`migctl.cli.group` turns it into click commands when one of them runs)."""
    return typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False, **settings)


# -- the options several commands share ------------------------------------------------------------

GPUS_HELP = (
    "GPUs: an index, a list (0,2), a range (0-3), a GPU UUID or a PCI bus ID (00000000:18:00.0, 18:00.0); "
    "default: all GPUs"
)
GPUS_OPTION = typer.Option(None, "-i", "--id", metavar="GPUS", help=GPUS_HELP + ".", show_default=False)

#: The host lock's default wait: :data:`migctl.ops.lock.DEFAULT_WAIT_S` (not imported at start-up;
#: a test checks they agree).
DEFAULT_WAIT_S = 60.0
def _checked_wait(wait_s: float) -> float:
    """Refuse ``--wait nan``/``inf``/negative as the arguments are read, before any plan is printed."""
    from migctl.ops.lock import check_wait

    check_wait(wait_s)
    return wait_s


WAIT_OPTION = typer.Option(
    DEFAULT_WAIT_S,
    "--wait",
    metavar="SECONDS",
    callback=_checked_wait,
    help="How long to wait for another migctl that holds the host lock (default 60), then exit 9.",
    show_default=False,
)


# -- the run's state --------------------------------------------------------------------------------


@dataclass
class CliState:
    """The global options of this run and the node it opened (once, on first use)."""

    sim: str | None = None
    json: bool = False
    debug: bool = False
    argv: list[str] = field(default_factory=list)
    _node: Node | None = field(default=None, repr=False)

    def node(self) -> Node:
        if self._node is None:
            from migctl.device import open_node

            self._node = open_node(self.sim)
        return self._node

    def select(self, gpus: str | None) -> list[Gpu]:
        """The GPUs ``-i gpus`` names on this node (every GPU when ``None``)."""
        return self.node().select(gpus)

    def one_gpu(self, gpus: str | None, command: str) -> Gpu:
        """The one GPU a command about one GPU instance acts on (:func:`migctl.ops.gpus.one_gpu`)."""
        from migctl.ops.gpus import one_gpu

        return one_gpu(self.node(), gpus, command)

    def reset(self, argv: list[str], *, json: bool = False) -> None:
        """Forget everything a previous run in this process left (the CLI is run in-process by tests)."""
        if self._node is not None:
            self._node.close()
        self.sim, self.json, self.debug, self._node = None, json, False, None
        self.argv = argv

    def set_global(self, flag: str, value: object) -> None:
        """Apply a global option, wherever it was given (before or after the command)."""
        if flag == "--sim" and value:
            self.sim = str(value)
            os.environ["MIGCTL_SIM"] = self.sim  # children (run's jobs, hooks) see the same node
        elif flag == "--state-dir" and value:
            # Children (migctl run jobs, hooks) and every module see the same state directory.
            os.environ["MIGCTL_STATE_DIR"] = str(value)
        elif flag == "--json" and value:
            self.json = True
        elif flag == "--debug" and value:
            self.debug = True


STATE = CliState()


class _Consoles:
    """stdout and stderr consoles, made on first use (rich is imported only when output is drawn).

    Markup and emoji are off: nothing from the driver, a file, a process or a user is ever read
    as rich markup (a bus ID ``00000000:AB:00.0`` must not turn into an emoji), and control
    characters in data are shown escaped, never sent to the terminal
    (:func:`migctl.cli.render.safe_console`). Pipes and CI logs get a wide console, so tables
    read like nvidia-smi's instead of wrapping at 80.
    """

    def __init__(self) -> None:
        self._out: Console | None = None
        self._err: Console | None = None

    def _make(self, stderr: bool) -> Console:
        from migctl.cli.render import safe_console

        stream = sys.stderr if stderr else sys.stdout
        width = None if stream.isatty() else int(os.environ.get("COLUMNS", "160"))
        return safe_console(stderr=stderr, width=width)

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


def want_json() -> bool:
    """Whether this run prints JSON (``--json`` anywhere among migctl's own words)."""
    return STATE.json


def emit(data: R, render: Callable[[Console, R], None]) -> None:
    """Print a result: its JSON serialisation with ``--json``, else what ``render`` draws of it."""
    if want_json():
        sys.stdout.write(dumps(data) + "\n")
    else:
        render(consoles.out, data)


def warn(message: str) -> None:
    """A one-line warning on stderr (``migctl: warning: ...``), never on stdout."""
    sys.stderr.write(f"migctl: warning: {message}\n")
