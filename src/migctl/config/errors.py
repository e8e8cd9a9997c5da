"""The one error type of the config package: what is wrong, and where.

``str(err)`` is a single line, ``file:line: key: message``; parts that are unknown are left
out (``file: message`` for a file that cannot be read, ``--layout: 3g.48gb@9x: message`` for
the inline form, which has no lines).
"""

from __future__ import annotations

from collections.abc import Sequence

#: A position in a parsed document: mapping keys and list indices, outermost first.
Path = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    """``("mig-configs", "all-1g.10gb", 0, "mig-devices")`` -> ``mig-configs.all-1g.10gb[0].mig-devices``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class ConfigError(Exception):
    """A config (or hooks file, or ``--layout``) that migctl cannot use.

    ``source`` is the file name (``-`` or ``<stdin>`` for stdin, ``--layout`` for the inline
    form), ``line`` is 1-based (``None`` when unknown), ``key`` the dotted path of the offending
    key (``None`` when the problem is the whole document).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "<config>",
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.key = key
        self.message = " ".join(message.split())
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.key:
            return f"{where}: {self.key}: {self.message}"
        return f"{where}: {self.message}"
