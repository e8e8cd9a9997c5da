"""Records of the CLI's own commands (``completion``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migctl.records.base import Record


@dataclass(frozen=True)
class CompletionScript(Record):
    """``migctl completion SHELL``: the script that teaches the shell to complete migctl."""

    shell: Literal["bash", "zsh", "fish"]
    """The shell the script is for."""
    script: str
    """The script: source it (bash, zsh) or save it as a completions file (fish); see docs/cli.md."""
