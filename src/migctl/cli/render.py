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
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
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


class _Table(Table):
    """rich's table in migctl's one style, drawn without rich's per-cell layout when it can be.

    rich measures and renders every cell through its generic machinery (about 60 µs a cell),
    which made ``status``'s MIG devices tables on an 8-GPU node a fifth of the command's time.
    A table of this style whose cells are all one-line strings and which fits the console is
    drawn here line by line, to exactly what rich draws (``tests/test_cli_output.py`` compares
    the two over generated tables); anything else (a wrapping column, a styled cell, a table
    wider than the console) is left to rich.
    """

    def _plain_rows(self, console: Console) -> list[list[str]] | None:
        """The header and every row as the strings rich would lay out, or ``None`` (rich draws)."""
        if (
            self.box is not box.SIMPLE_HEAD
            or self.show_edge
            or self.pad_edge
            or self.padding != (0, 1, 0, 1)
            or self.show_lines
            or self.show_footer
            or not self.show_header
            or self.expand
            or self.leading
            or self.width is not None
            or self.min_width is not None
            or self.caption
            or self.row_styles
            or self.style not in ("", "none")
            or self.border_style
            or len(self.columns) < 2
            or any(
                not c.no_wrap or c.justify not in ("left", "right") or c.style or c.header_style for c in self.columns
            )
        ):
            return None
        grid = [[c.header for c in self.columns], *zip(*(c.cells for c in self.columns), strict=True)]
        out: list[list[str]] = []
        for row in grid:
            texts = []
            for cell in row:
                if not isinstance(cell, str):
                    return None
                texts.append(console.render_str(cell, highlight=False))
            if any(t.spans or t.style or "\n" in t.plain or "\t" in t.plain for t in texts):
                return None
            out.append([t.plain for t in texts])
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = self._plain_rows(console)
        if rows is None:
            yield from super().__rich_console__(console, options)
            return
        widths = [max(cell_len(row[i]) for row in rows) for i in range(len(self.columns))]
        table_width = sum(widths) + 3 * (len(widths) - 1)
        if table_width > options.max_width or 0 in widths:  # an empty column: rich pads it its own way
            yield from super().__rich_console__(console, options)
            return
        if self.title:
            title = self.title
            if isinstance(title, str):
                title = console.render_str(
                    title, style=Style.pick_first(self.title_style, "table.title"), highlight=False
                )
            yield from console.render(
                title,
                options.update(width=table_width, highlight=self.highlight, height=None, justify=self.title_justify),
            )

        def cells(row: list[str]) -> list[str]:
            out = []
            for c, text, w in zip(self.columns, row, widths, strict=True):
                if c.justify == "right":
                    text = text.rstrip()  # as rich's right justification does
                    out.append(" " * (w - cell_len(text)) + text)
                else:
                    out.append(text + " " * (w - cell_len(text)))
            return out

        # What rich yields for this style: the header's cells and paddings in the header style,
        # the box's (blank) verticals between them, the head rule, then each row.
        lines = box.SIMPLE_HEAD
        header_style = console.get_style(self.header_style or "")
        pad = Segment(" ", header_style)
        for i, text in enumerate(cells(rows[0])):
            if i:
                yield from (pad, Segment(lines.head_vertical), pad)
            yield Segment(text, header_style)
        yield Segment.line()
        last = len(widths) - 1
        padded = [w + (i > 0) + (i < last) for i, w in enumerate(widths)]
        yield Segment(lines.get_row(padded, "head", edge=False))
        yield Segment.line()
        between = f" {lines.mid_vertical} "
        for row in rows[1:]:
            yield Segment(between.join(cells(row)))
            yield Segment.line()


def table(*columns: str, title: str | None = None, right: Sequence[str] = ()) -> Table:
    """The one table style of migctl's output; ``right`` names the right-aligned columns."""
    t = _Table(
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
