"""``migctl completion bash|zsh|fish``: the shell completion script (typer's, for migctl).

Install it with ``eval "$(migctl completion bash)"`` in ``~/.bashrc`` (zsh: ``~/.zshrc``;
fish: ``migctl completion fish > ~/.config/fish/completions/migctl.fish``). The shell then
calls ``migctl`` with ``_MIGCTL_COMPLETE`` set, which click answers (docs/cli.md).
"""

from __future__ import annotations

import sys
from typing import Literal, cast

import typer
from rich.console import Console
from typer import _click as click

from migctl.cli.app import commands, emit
from migctl.errors import UsageError
from migctl.records.cli import CompletionScript

Shell = Literal["bash", "zsh", "fish"]

app = commands()

SHELLS = ("bash", "zsh", "fish")


@app.command()
def completion(
    ctx: typer.Context,
    shell: str = typer.Argument(..., metavar="bash|zsh|fish", help="Your shell.", show_default=False),
) -> None:
    """Print the shell completion script for bash, zsh or fish.

    \b
    bash:  eval "$(migctl completion bash)"          (in ~/.bashrc)
    zsh:   eval "$(migctl completion zsh)"           (in ~/.zshrc)
    fish:  migctl completion fish > ~/.config/fish/completions/migctl.fish
    """
    from typer._click.shell_completion import get_completion_class
    from typer._completion_classes import completion_init

    if shell not in SHELLS:
        raise UsageError(f"completion {shell!r}: expected one of {', '.join(SHELLS)}")
    completion_init()
    root: click.Command = ctx.find_root().command
    complete = get_completion_class(shell)
    assert complete is not None  # completion_init registered bash, zsh and fish
    script = complete(root, {}, "migctl", "_MIGCTL_COMPLETE").source()
    emit(CompletionScript(cast(Shell, shell), script), _print_script)


def _print_script(console: Console, record: CompletionScript) -> None:
    sys.stdout.write(record.script if record.script.endswith("\n") else record.script + "\n")
