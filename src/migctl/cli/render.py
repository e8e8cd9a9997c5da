"""Drawing primitives every command's view shares: slice bars, one table style, memory columns.

Nothing here interprets data as markup: the consoles are made with markup and emoji off, and
styled pieces are built as :class:`rich.text.Text`, so a bus ID such as ``00000000:AB:00.0``
or a hostile process name prints exactly as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from migctl.core.geometry import Placement

COLORS = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta"]
CELL = 7

#: One instance on a slice bar: (ID, or a mark such as ``+`` for one to be created; profile name; placement).
SliceItem = tuple[int | str, str, Placement]


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
