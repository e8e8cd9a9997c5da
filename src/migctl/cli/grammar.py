"""Reading a command line before click does: which words are migctl's own.

Used for what must be known even when click refuses the line (``--json`` decides how a usage
error is printed) and by the fast path of :mod:`migctl.cli.main`. Pure; no third-party import.

migctl's own words are the global options and the command with its options: everything before
``--``, and for ``run`` and ``sim exec`` everything before the command they run
(:mod:`migctl.cli.run_args`; ``sim exec`` takes only the global options).
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.cli import registry


def command_index(args: Sequence[str]) -> int | None:
    """Where the command name is: the first word that is neither a global option nor its value."""
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            return None
        if word in registry.VALUED:
            i += 2
            continue
        if word.startswith("-"):
            i += 1
            continue
        return i
    return None


def _options_before_command(args: Sequence[str]) -> list[str]:
    """The global options (with their values) that come before a command ``sim exec`` runs."""
    i = 0
    while i < len(args) and args[i] != "--" and args[i].startswith("-") and args[i] != "-":
        i += 2 if args[i] in registry.VALUED else 1
    return list(args[:i])


def own_words(args: Sequence[str]) -> list[str]:
    """The words that are migctl's, not a command's that ``run``/``sim exec``/``batch`` start."""
    at = command_index(args)
    if at is not None and args[at] == "run":
        from migctl.cli import run_args

        return [*args[: at + 1], *run_args.options_part(args[at + 1 :])]
    if at is not None and args[at] == "sim":
        sub = command_index(args[at + 1 :])
        if sub is not None and args[at + 1 + sub] == "exec":
            end = at + 2 + sub
            return [*args[:end], *_options_before_command(args[end:])]
    words = list(args)
    return words[: words.index("--")] if "--" in words else words


def wants_json(args: Sequence[str]) -> bool:
    """Whether ``--json`` is among migctl's own words (so even a usage error is JSON)."""
    return "--json" in own_words(args)
