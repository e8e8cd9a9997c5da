"""The terminal side of ``migctl top``: keys from a terminal in cbreak mode, as names.

Keys arrive as bytes; escape sequences for arrows and paging are named (``up``, ``pgdn``...),
a lone ESC is ``esc``. cbreak mode keeps Ctrl-C a signal (so it quits like ``q``), and the
terminal's mode is restored however the view ends.
"""

from __future__ import annotations

import os
import re
import select
import termios
import tty
from types import TracebackType
from typing import Any

from migctl.top.view import BACKSPACE, DOWN, END, ENTER, ESC, HOME, PGDN, PGUP, UP

SEQUENCES = {
    "\x1b[A": UP,
    "\x1b[B": DOWN,
    "\x1bOA": UP,
    "\x1bOB": DOWN,
    "\x1b[5~": PGUP,
    "\x1b[6~": PGDN,
    "\x1b[H": HOME,
    "\x1b[F": END,
    "\x1bOH": HOME,
    "\x1bOF": END,
    "\x1b[1~": HOME,
    "\x1b[4~": END,
    "\x1b[7~": HOME,
    "\x1b[8~": END,
}
INCOMPLETE = re.compile(rb"\x1b(\[[0-9;]*|O)?$")
SINGLE = {"\r": ENTER, "\n": ENTER, "\x7f": BACKSPACE, "\x08": BACKSPACE, "\x1b": ESC}


def parse_keys(data: str) -> list[str]:
    """``"\\x1b[Aq"`` -> ``["up", "q"]``; unknown escape sequences are dropped."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        if data[i] == "\x1b" and i + 1 < len(data):
            for seq, name in SEQUENCES.items():
                if data.startswith(seq, i):
                    keys.append(name)
                    i += len(seq)
                    break
            else:
                if data[i + 1] in "[O":  # an unknown sequence: skip to its final byte
                    j = i + 2
                    while j < len(data) and not ("@" <= data[j] <= "~"):
                        j += 1
                    i = j + 1
                else:
                    keys.append(ESC)
                    i += 1
            continue
        keys.append(SINGLE.get(data[i], data[i]))
        i += 1
    return keys


class KeyReader:
    """``with KeyReader(fd) as keys: keys.read(timeout)`` -> the keys pressed (maybe none)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None

    def __enter__(self) -> KeyReader:
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read(self, timeout: float) -> list[str]:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return []
        data = os.read(self.fd, 1024)
        if not data:
            raise EOFError  # the terminal went away
        # An escape sequence may arrive in pieces (over ssh): wait briefly for the rest of it.
        while INCOMPLETE.search(data) and select.select([self.fd], [], [], 0.03)[0]:
            more = os.read(self.fd, 1024)
            if not more:
                break
            data += more
        return parse_keys(data.decode("utf-8", "replace"))
