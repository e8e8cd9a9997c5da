"""Numbers on the command line are ASCII: ``--gi ٣`` is a usage error (exit 2).

click's number types convert with ``int()`` and ``float()``, which accept every Unicode decimal
digit (``int("٣") == 3``), underscores (``1_0``) and spaces. A GPU-instance ID or a count a user
did not type as ASCII digits is almost always a paste from somewhere else; migctl refuses it, as
it does for ``-i`` (:mod:`migctl.config.gpus`) and layout counts (:mod:`migctl.config`).

:func:`ascii_numbers` gives this rule to every number option and argument of a command (and
its subcommands) once, when :class:`migctl.cli.group.LazyGroup` loads it, so an option added
later gets it too. Each number type keeps its class (ranges, help, completion stay click's): it
gets a subclass that checks the text first.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from typer import _click as click  # typer's own click (typer vendors it)
from typer._click.types import FloatParamType, IntParamType, ParamType

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


class _AsciiNumber(ParamType):
    """Checks a number's text before the number type it is mixed into converts it."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            whole = _INT if isinstance(self, IntParamType) else _FLOAT
            if whole.fullmatch(value) is None:
                what = "a whole number" if whole is _INT else "a number"
                self.fail(f"{value!r} is not {what}: write it with the digits 0-9", param, ctx)
        return super().convert(value, param, ctx)


_SUBCLASSES: dict[type[ParamType], type[ParamType]] = {}


def _ascii(kind: ParamType) -> ParamType:
    cls = type(kind)
    if isinstance(kind, _AsciiNumber) or not isinstance(kind, (IntParamType, FloatParamType)):
        return kind
    sub = _SUBCLASSES.get(cls)
    if sub is None:
        sub = _SUBCLASSES[cls] = type(f"Ascii{cls.__name__}", (_AsciiNumber, cls), {})
    mine: ParamType = copy.copy(kind)
    mine.__class__ = sub
    return mine


def ascii_numbers(cmd: click.Command) -> click.Command:
    """``cmd`` (and, for a group, its subcommands) refusing numbers not written in ASCII digits."""
    for param in cmd.params:
        param.type = _ascii(param.type)
    for sub in getattr(cmd, "commands", {}).values():
        ascii_numbers(sub)
    return cmd
