"""Drawing primitives every command's view shares: the console, slice bars, one table style,
memory columns.

Nothing here interprets data as markup: the consoles are made with markup and emoji off, and
styled pieces are built as :class:`rich.text.Text`, so a bus ID such as ``00000000:AB:00.0``
or a hostile process name prints exactly as it is. Control characters in data (an escape
sequence in a process name) are shown escaped (``\\x1b``) instead of reaching the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from migctl.core.geometry import Placement

COLORS = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta"]
CELL = 7

#: One instance on a slice bar: (ID, or a mark such as ``+`` for one to be created; profile name; placement).
SliceItem = tuple[int | str, str, Placement]


#: C0 controls but newline and tab, DEL and the C1 controls: what a terminal would act on.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with each control character written as ``\\xNN``: shown, never obeyed."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


class _SafeConsole(Console):
    """A console that shows control characters in data instead of sending them to the terminal.

    Strings are escaped before layout (so widths are right); the rendered segments once more
    (text built as :class:`Text` by a view); rich's own control segments (a live view's cursor
    moves) are left alone.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(visible(text), **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            Segment(visible(text), style, None) if control is None else Segment(text, style, control)
            for text, style, control in buffer
        )


def safe_console(*, stderr: bool = False, width: int | None = None, **kwargs: Any) -> Console:
    """The console every command draws on: markup, emoji and highlighting off, data shown verbatim."""
    return _SafeConsole(
        stderr=stderr, highlight=False, soft_wrap=True, width=width, markup=False, emoji=False, **kwargs
    )


def gib(mib: int) -> str:
    """Memory column as nvidia-smi prints it: MiB / 1024 with %.2f (round half to even)."""
    return f"{mib / 1024:.2f}"


def dim(text: str) -> Text:
    return Text(text, style="dim")


def table(*columns: str, title: str | None = None, right: Sequence[str] = ()) -> Table:
    """The one table style of migctl's output; ``right`` names the right-aligned columns."""
    t = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        header_style="bold",
        show_edge=False,
    )
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left", no_wrap=True)
    return t


def slice_bar(span: int, instances: Sequence[SliceItem], *, label: str = "GI") -> Text:
    """One cell per memory slice; each instance spans its slices, free slices show as ``·``."""
    owner: dict[int, int] = {}
    for n, (_, _, p) in enumerate(instances):
        for s in range(p.start, p.end):
            owner[s] = n
    bar = Text("|")
    s = 0
    while s < span:
        if s in owner:
            n = owner[s]
            ident, profile, p = instances[n]
            width = p.size * CELL - 1
            text = f"{label}{ident} {profile}"
            if len(text) > width:
                text = f"{label}{ident}"[:width]
            bar.append(text.center(width), style=f"bold black on {COLORS[n % len(COLORS)]}")
            s += p.size
        else:
            bar.append("·".center(CELL - 1), style="dim")
            s += 1
        bar.append("|")
    return bar


def slice_ruler(span: int) -> Text:
    # Each number sits over its cell's content (CELL - 1 wide), not over the cell's separator.
    return Text(" " + "".join(str(s).center(CELL - 1) + " " for s in range(span)), style="dim")
