"""``migctl top``'s screen: one observation and the view state drawn as lines of a fixed size.

:func:`frame` returns exactly ``height`` lines (rich :class:`~rich.text.Text`, none wider than
``width``): two header lines, the body (scrolled), one footer line. Everything here is pure,
so the screens are checked as text at fixed sizes (``tests/test_top.py``). The layout at 80
columns, line by line, is in ``docs/observability.md``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.text import Text

from migctl.cli.status_view import holder_text, util_text
from migctl.records.inspect import GpuStatus, Utilization
from migctl.records.observe import Observation
from migctl.top.view import DeviceRow, GpuBlock, History, ViewState, gpu_blocks, process_rows, scroll_window, totals

EIGHTHS = " ▏▎▍▌▋▊▉"
SPARKS = "▁▂▃▄▅▆▇█"
BAR = 8
PROFILE = 10
COLORS = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta")

KEYS = (
    ("q", "quit"),
    ("h ?", "this help (any key closes it)"),
    ("s .  S ,", "next / previous sort: natural, util, memory, processes, profile"),
    ("r", "reverse the order"),
    ("/ f", "filter: type text (GPU, profile, UUID, user, command, job), Enter applies"),
    ("Esc", "clear the filter"),
    ("p", "switch between MIG devices and processes"),
    ("+ -", "refresh interval longer / shorter"),
    ("Space R", "refresh now"),
    ("Up Down j k", "scroll a line"),
    ("PgUp PgDn", "scroll a page"),
    ("Home End", "first / last page"),
)


def gib(mib: int) -> str:
    return f"{mib / 1024:.1f}"


def bar(used: int, total: int, width: int = BAR) -> str:
    """A memory bar in eighths of a cell: ``used/total`` of ``width`` cells."""
    if total <= 0:
        return " " * width
    eighths = round(min(1.0, max(0.0, used / total)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (EIGHTHS[part] if part else "")
    return text.ljust(width)


def spark(values: Sequence[float | None], width: int) -> str:
    """The last ``width`` utilizations: blank for 0 or unmeasured, ``▁`` up to 12.5%, ... ``█``."""
    out = []
    for v in list(values)[-width:]:
        if v is None or v <= 0:
            out.append(" ")
        else:
            out.append(SPARKS[min(7, max(0, -int(-v // 12.5) - 1))])
    return "".join(out).rjust(width)


def _level(u: Utilization | None) -> str:
    if u is None or u.gpu_pct is None:
        return "dim"
    return "green" if u.gpu_pct < 50 else "yellow" if u.gpu_pct < 80 else "red"


def _fit(text: Text, width: int) -> Text:
    text.truncate(width, overflow="ellipsis")
    return text


def slice_line(g: GpuStatus, width: int) -> Text:
    """``  |GI1 3g.40gb|  ·  |GI13|`` : one cell per memory slice, each GPU instance spanning its own."""
    span = max(1, g.slices)
    cell = max(3, min(7, (width - 3) // span))
    owner: dict[int, int] = {}
    for n, each in enumerate(g.gpu_instances):
        for s in range(each.placement.start, each.placement.start + each.placement.size):
            owner[s] = n
    line = Text("  |")
    s = 0
    while s < span:
        if s in owner:
            gi = g.gpu_instances[owner[s]]
            inner = gi.placement.size * cell - 1
            label = f"GI{gi.id} {gi.profile}"
            if len(label) > inner:
                label = f"GI{gi.id}" if len(f"GI{gi.id}") <= inner else ""
            line.append(label.center(inner), style=f"bold black on {COLORS[owner[s] % len(COLORS)]}")
            s += gi.placement.size
        else:
            line.append("·".center(cell - 1), style="dim")
            s += 1
        line.append("|")
    return line


def gpu_line(b: GpuBlock, width: int) -> Text:
    g = b.gpu
    if g.mig is None:
        mig = "no MIG"
    elif g.mig.current != g.mig.pending:
        mig = f"MIG {'on' if g.mig.current else 'off'}, {'on' if g.mig.pending else 'off'} after reset"
    else:
        mig = "MIG on" if g.mig.current else "MIG off"
    t = b.telemetry
    mem = t.memory if t is not None else None
    used, total = (mem.used_mib, mem.total_mib) if mem is not None else (g.memory.used_mib, g.memory.total_mib)
    line = Text.assemble((f"GPU {g.index}", "bold"), f"  {g.name}  {mig}  mem {gib(used)}/{gib(total)}G  util ")
    line.append(util_text(g.utilization), style=_level(g.utilization))
    if t is not None and t.temperature_c is not None:
        line.append(f"  {t.temperature_c}°C")
    if t is not None and t.power_w is not None:
        line.append(f"  {t.power_w:.0f} W")
    return _fit(line, width)


def spark_width(width: int) -> int:
    return max(6, min(30, 10 + (width - 80) // 3))


def device_line(d: DeviceRow, history: History, width: int) -> Text:
    gi, ci = d.gi, d.ci
    if ci is None:
        line = Text(f"  {gi.id:>2}/- {gi.profile:<{PROFILE}.{PROFILE}} ")
        line.append("no compute instance: nothing can run on it", style="dim")
        return _fit(line, width)
    line = Text(f"  {gi.id:>2}/{ci.id} {ci.profile:<{PROFILE}.{PROFILE}} ")
    mem = ci.memory
    if mem is None:
        line.append(f"{'':{BAR}} {'n/a':>10}")
    else:
        full = mem.used_mib / mem.total_mib if mem.total_mib else 0
        style = "green" if full < 0.5 else "yellow" if full < 0.8 else "red"
        line.append(bar(mem.used_mib, mem.total_mib), style=style)
        line.append(f" {gib(mem.used_mib) + '/' + gib(mem.total_mib) + 'G':>10}")
    line.append(f" {util_text(gi.utilization):>4}", style=_level(gi.utilization))
    line.append(" " + spark(history.of(f"{d.gpu.uuid}/{gi.id}"), spark_width(width)), style="cyan")
    who = [holder_text(ci.holder)] if ci.holder is not None else []
    who += [f"{p.pid} {p.user} {p.command}" for p in ci.processes]
    line.append(" " + ("; ".join(who) or "-"), style="bold" if ci.holder is not None else "")
    return _fit(line, width)


def device_lines(blocks: Sequence[GpuBlock], history: History, width: int) -> list[Text]:
    lines: list[Text] = []
    for b in blocks:
        lines.append(gpu_line(b, width))
        g = b.gpu
        if g.mig is not None and g.mig.current:
            lines.append(_fit(slice_line(g, width), width))
            if not g.gpu_instances:
                lines.append(Text("  no GPU instances", style="dim"))
            lines += [device_line(d, history, width) for d in b.devices]
            reasons = {u.reason for u in (d.gi.utilization for d in b.devices) if u is not None and u.reason}
            if g.utilization is not None and g.utilization.reason and not reasons:
                reasons.add(g.utilization.reason)
            for reason in sorted(reasons):
                lines.append(_fit(Text(f"  util n/a: {reason}", style="dim"), width))
        else:
            for p in b.processes:
                mem = "n/a" if p.used_memory_mib is None else f"{gib(p.used_memory_mib)}G"
                lines.append(_fit(Text(f"  pid {p.pid} {p.user} {mem} {p.command}"), width))
            if g.utilization is not None and g.utilization.reason:
                lines.append(_fit(Text(f"  util n/a: {g.utilization.reason}", style="dim"), width))
    return lines


def process_lines(obs: Observation, state: ViewState, width: int) -> list[Text]:
    head = Text(f"{'GPU':>3} {'GI/CI':>5} {'PID':>7} {'USER':<10} {'GPU-MEM':>8} {'JOB':<10} COMMAND", style="bold")
    lines = [_fit(head, width)]
    for g, p, job in process_rows(obs, state):
        where = "-" if p.gpu_instance_id is None else f"{p.gpu_instance_id}/{p.compute_instance_id}"
        mem = "n/a" if p.used_memory_mib is None else f"{p.used_memory_mib}M"
        lines.append(
            _fit(Text(f"{g.index:>3} {where:>5} {p.pid:>7} {p.user:<10.10} {mem:>8} {job:<10.10} {p.command}"), width)
        )
    if len(lines) == 1:
        lines.append(Text("  no processes", style="dim"))
    return lines


def header(obs: Observation | None, state: ViewState, width: int) -> list[Text]:
    order = " (reversed)" if state.reverse else ""
    if obs is None:
        return [Text("migctl top  collecting...", style="bold"), Text("")]
    clock = time.strftime("%H:%M:%S", time.localtime(obs.taken))
    shown = state.filter or "-"
    first = Text.assemble(
        ("migctl top", "bold"),
        f"  {obs.hostname}  {clock}  every {state.interval_s:g} s  sort: {state.sort}{order}  filter: {shown}",
    )
    n_gpus, gis, devices, procs, leases = totals(obs)
    second = Text(f"{n_gpus} GPUs  {gis} GPU instances  {devices} MIG devices  {procs} processes  {leases} leased")
    return [_fit(first, width), _fit(second, width)]


def footer(state: ViewState, width: int, start: int, end: int, total: int) -> Text:
    if state.editing is not None:
        return _fit(
            Text.assemble(("filter: ", "bold"), state.editing, ("_", "blink"), "   Enter apply  Esc cancel"), width
        )
    other = "devices" if state.view == "processes" else "processes"
    keys = f"q quit  s sort  r reverse  / filter  p {other}  +/- interval  h help"
    where = f"{start + 1}-{end}/{total}" if total > end - start else ""
    gap = max(1, width - len(keys) - len(where))
    return _fit(Text.assemble((keys, "reverse"), " " * gap, where), width)


def help_lines(width: int) -> list[Text]:
    lines = [Text("Keys", style="bold")]
    lines += [_fit(Text(f"  {k:<12} {what}"), width) for k, what in KEYS]
    return lines


def body(obs: Observation | None, state: ViewState, history: History, width: int) -> list[Text]:
    """Every body line (unscrolled)."""
    if state.help:
        return help_lines(width)
    if obs is None:
        return []
    if state.view == "processes":
        return process_lines(obs, state, width)
    lines = device_lines(gpu_blocks(obs, state), history, width)
    if not lines and state.filter:
        lines.append(Text(f"  nothing matches {state.filter!r} (Esc clears the filter)", style="dim"))
    return lines


def frame(obs: Observation | None, state: ViewState, history: History, width: int, height: int) -> list[Text]:
    """Exactly ``height`` lines of at most ``width`` cells: header, scrolled body, footer."""
    lines = body(obs, state, history, width)
    room = max(0, height - 3)
    start, end = scroll_window(len(lines), state, room)
    shown = lines[start:end]
    shown += [Text("")] * (room - len(shown))
    out = [*header(obs, state, width), *shown, footer(state, width, start, end, len(lines))]
    return out[:height]
