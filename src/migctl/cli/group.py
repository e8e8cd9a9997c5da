"""The root command: a click group that imports a command's module only when that command runs,
and gives every command the global options (before or after the command name).

The commands, their modules and their one-line help are in :mod:`migctl.cli.registry`; each
module registers its commands on its own typer app (``app = commands()``).
"""

from __future__ import annotations

import copy
import importlib
import json
from typing import Any

import typer
from typer import _click as click  # typer's own click (typer vendors it)
from typer.core import TyperGroup

from migctl import __version__
from migctl.cli import registry
from migctl.cli.app import STATE


def _print_version(value: bool) -> None:
    if value:
        if STATE.json:
            typer.echo(json.dumps({"version": __version__}, indent=2))
        else:
            typer.echo(f"migctl {__version__}")
        raise typer.Exit(0)


def _apply(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A global option given after the command name (its callback on that command)."""
    flag = max(param.opts, key=len)
    if flag == "--version":
        _print_version(bool(value))
    else:
        STATE.set_global(flag, value)
    return value


def _with_global_options(cmd: click.Command, template: list[click.Parameter]) -> click.Command:
    """``cmd`` (and, for a group, its subcommands) also taking the global options; a command that
    defines one of them itself (``run --json``) keeps its own."""
    own = {opt for p in cmd.params for opt in p.opts}
    for param in template:
        if set(param.opts) & own:
            continue
        mine = copy.copy(param)
        mine.expose_value = False
        mine.callback = _apply
        cmd.params.append(mine)
    for sub in getattr(cmd, "commands", {}).values():
        _with_global_options(sub, template)
    return cmd


class LazyGroup(TyperGroup):
    """``migctl``: lists commands from the registry, imports one only to run it (or its help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(registry.COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self.load(cmd_name)

    def load(self, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name`` with the global options (its module imported now), or ``None``."""
        loaded: dict[str, click.Command] = self.__dict__.setdefault("_loaded", {})
        if cmd_name not in loaded:
            entry = registry.COMMANDS.get(cmd_name)
            if entry is None:
                return None
            module = importlib.import_module(f"migctl.cli.{entry[0]}")
            group = typer.main.get_group(module.app)
            cmd = group.commands[cmd_name]
            cmd.short_help = entry[2]
            template = [p for p in self.params if p.name != "help"]
            loaded[cmd_name] = _with_global_options(cmd, template)
        return loaded[cmd_name]

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(registry.top_help())

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        from typer._click.shell_completion import CompletionItem

        names = [
            CompletionItem(name, help=help_text)
            for name, (_, _, help_text) in registry.COMMANDS.items()
            if name.startswith(incomplete)
        ]
        return names + click.Command.shell_complete(self, ctx, incomplete)


root = typer.Typer(
    cls=LazyGroup,
    name="migctl",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@root.callback()
def _global_options(
    sim: str | None = typer.Option(None, "--sim", metavar="SPEC", help=registry.GLOBAL_OPTIONS[0][2]),
    state_dir: str | None = typer.Option(None, "--state-dir", metavar="DIR", help=registry.GLOBAL_OPTIONS[1][2]),
    json_out: bool = typer.Option(False, "--json", help=registry.GLOBAL_OPTIONS[2][2]),
    debug: bool = typer.Option(False, "--debug", help=registry.GLOBAL_OPTIONS[3][2]),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help=registry.GLOBAL_OPTIONS[4][2]
    ),
) -> None:
    import os

    STATE.sim = os.environ.get("MIGCTL_SIM") or None
    for flag, value in (("--sim", sim), ("--state-dir", state_dir), ("--json", json_out), ("--debug", debug)):
        STATE.set_global(flag, value)


def command() -> LazyGroup:
    """The root click command (built once per process)."""
    global _built
    if _built is None:
        built = typer.main.get_command(root)
        assert isinstance(built, LazyGroup)
        _built = built
    return _built


def load(name: str) -> click.Command:
    """Command ``name`` as ``migctl name`` runs it (for tests and tools); KeyError if unknown."""
    cmd = command().load(name)
    if cmd is None:
        raise KeyError(name)
    return cmd


_built: LazyGroup | None = None
