"""``migctl top``'s loop: collect, draw, read keys, until ``q``.

The screen is rich's alternate screen (``Live(screen=True)``), redrawn when data arrives or a
key changes the view; between refreshes the loop sleeps in ``select`` on the keyboard, so an
idle ``top`` costs nothing but its refreshes. Collection is an
:class:`~migctl.ops.observe.Observer` round (NVML reads, GPM since the last round).
"""

from __future__ import annotations

import sys
import time

from rich.console import Console, Group

from migctl.ops.observe import Observer
from migctl.records.observe import Observation
from migctl.top.screen import body, frame
from migctl.top.terminal import KeyReader
from migctl.top.view import History, ViewState

#: The first utilization window: short, so numbers appear at once.
FIRST_WINDOW_S = 0.15
#: How soon a resized terminal is redrawn (the loop wakes this often while idle).
RESIZE_CHECK_S = 0.25


def once(observer: Observer, console: Console, state: ViewState) -> None:
    """``top --once``: one measured screen, every line (no scrolling), printed like ``nvitop -1``."""
    observer.prime()
    time.sleep(FIRST_WINDOW_S)
    obs = observer.collect()
    history = History()
    history.add(obs)
    width = console.width
    lines = frame(obs, state, history, width, 2 + 1)[:2]  # the header
    lines += body(obs, state, history, width)
    for line in lines:
        console.print(line, soft_wrap=True, crop=True, overflow="crop")


def run(observer: Observer, console: Console, state: ViewState) -> None:
    """The live view on ``console`` (a terminal), until ``q``, Ctrl-C or the terminal closes."""
    from rich.live import Live

    history = History()
    obs: Observation | None = None
    observer.prime()
    due = time.monotonic() + FIRST_WINDOW_S
    with (
        KeyReader(sys.stdin.fileno()) as keys,
        Live(console=console, screen=True, auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as live,
    ):
        dirty = True
        size = console.size
        while True:
            now = time.monotonic()
            if now >= due:
                obs = observer.collect()
                history.add(obs)
                due = now + state.interval_s
                dirty = True
            if dirty:
                size = console.size
                live.update(Group(*frame(obs, state, history, size.width, size.height)), refresh=True)
                dirty = False
            try:
                pressed = keys.read(min(RESIZE_CHECK_S, max(0.0, due - time.monotonic())))
            except EOFError:
                return
            for key in pressed:
                action = state.press(key)
                if action == "quit":
                    return
                if action == "refresh":
                    due = time.monotonic()
                dirty = dirty or action != "ignore"
            if not pressed and console.size != size:
                dirty = True  # the terminal was resized
