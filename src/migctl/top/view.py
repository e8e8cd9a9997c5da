"""What ``migctl top`` shows and how keys change it: pure state, no terminal and no NVML.

:class:`ViewState` is the user's choices (sort, order, filter, view, scroll, interval);
:meth:`ViewState.press` applies one key. :class:`History` keeps each GPU's and GPU instance's
recent utilization for the sparklines. :func:`gpu_blocks` turns one observation into what is
drawn, sorted and filtered: GPUs, each with its MIG devices (or processes without MIG).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from migctl.records.common import ProcessRecord
from migctl.records.inspect import ComputeInstanceStatus, GpuInstanceStatus, GpuStatus, Utilization
from migctl.records.observe import GpuTelemetryRecord, Observation

SortKey = Literal["natural", "util", "memory", "processes", "profile"]
SORT_KEYS: tuple[SortKey, ...] = ("natural", "util", "memory", "processes", "profile")
View = Literal["devices", "processes"]
INTERVALS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
HISTORY = 64

# Keys as the terminal reader names them (single characters are themselves).
UP, DOWN, PGUP, PGDN, HOME, END, ESC, ENTER, BACKSPACE = (
    "up",
    "down",
    "pgup",
    "pgdn",
    "home",
    "end",
    "esc",
    "enter",
    "bs",
)


@dataclass
class ViewState:
    """The user's choices; :meth:`press` applies a key and says what to do next."""

    interval_s: float = 2.0
    sort: SortKey = "natural"
    reverse: bool = False
    filter: str = ""
    editing: str | None = None  # the filter being typed after '/', else None
    view: View = "devices"
    scroll: int = 0
    help: bool = False
    page: int = 20  # body height, set by the renderer

    def press(self, key: str) -> Literal["quit", "refresh", "redraw", "ignore"]:
        """Apply ``key``: ``quit``, ``refresh`` (collect now), ``redraw`` or ``ignore``."""
        if self.editing is not None:
            return self._edit(key)
        if key in ("q", "Q"):
            return "quit"
        if self.help:
            self.help = False
            return "redraw"
        action: Literal["refresh", "redraw", "ignore"] = "redraw"
        if key in ("h", "?"):
            self.help = True
        elif key in ("s", "."):
            self.sort = SORT_KEYS[(SORT_KEYS.index(self.sort) + 1) % len(SORT_KEYS)]
        elif key in ("S", ","):
            self.sort = SORT_KEYS[(SORT_KEYS.index(self.sort) - 1) % len(SORT_KEYS)]
        elif key == "r":
            self.reverse = not self.reverse
        elif key in ("/", "f"):
            self.editing = self.filter
        elif key == ESC:
            self.filter, self.scroll = "", 0
        elif key == "p":
            self.view = "processes" if self.view == "devices" else "devices"
            self.scroll = 0
        elif key == "+":
            self.interval_s = next((i for i in INTERVALS if i > self.interval_s), self.interval_s)
        elif key == "-":
            self.interval_s = next((i for i in reversed(INTERVALS) if i < self.interval_s), self.interval_s)
        elif key in (" ", "R"):
            action = "refresh"
        else:
            action = self._move(key)
        return action

    def _move(self, key: str) -> Literal["redraw", "ignore"]:
        step = {UP: -1, DOWN: 1, "k": -1, "j": 1, PGUP: -self.page, PGDN: self.page}.get(key)
        if step is not None:
            self.scroll = max(0, self.scroll + step)
        elif key == HOME:
            self.scroll = 0
        elif key == END:
            self.scroll = 1 << 30  # clamped to the last page when drawn
        else:
            return "ignore"
        return "redraw"

    def _edit(self, key: str) -> Literal["redraw", "ignore"]:
        text = self.editing or ""
        if key == ENTER:
            self.filter, self.editing, self.scroll = text.strip(), None, 0
        elif key == ESC:
            self.editing = None
        elif key == BACKSPACE:
            self.editing = text[:-1]
        elif len(key) == 1 and key.isprintable():
            self.editing = text + key
        else:
            return "ignore"
        return "redraw"


@dataclass
class History:
    """Recent ``gpu_pct`` per GPU (key ``GPU-uuid``) and GPU instance (``GPU-uuid/GI``); ``None``: not measured."""

    size: int = HISTORY
    series: dict[str, deque[float | None]] = field(default_factory=dict)

    def add(self, obs: Observation) -> None:
        seen = set()
        for g in obs.status.gpus:
            self._push(g.uuid, g.utilization)
            seen.add(g.uuid)
            for gi in g.gpu_instances:
                self._push(f"{g.uuid}/{gi.id}", gi.utilization)
                seen.add(f"{g.uuid}/{gi.id}")
        for key in [k for k in self.series if k not in seen]:
            del self.series[key]  # destroyed instances

    def _push(self, key: str, u: Utilization | None) -> None:
        q = self.series.setdefault(key, deque(maxlen=self.size))
        q.append(None if u is None else u.gpu_pct)

    def of(self, key: str) -> list[float | None]:
        return list(self.series.get(key, ()))


@dataclass(frozen=True)
class DeviceRow:
    """A MIG device (or a GPU instance without compute instances) under its GPU."""

    gpu: GpuStatus
    gi: GpuInstanceStatus
    ci: ComputeInstanceStatus | None


@dataclass(frozen=True)
class GpuBlock:
    gpu: GpuStatus
    telemetry: GpuTelemetryRecord | None
    devices: tuple[DeviceRow, ...]
    processes: tuple[ProcessRecord, ...]  # without MIG: the whole GPU's


def _util(u: Utilization | None) -> float:
    return -1.0 if u is None or u.gpu_pct is None else u.gpu_pct


def _device_key(sort: SortKey, d: DeviceRow) -> tuple[object, ...]:
    mem = d.ci.memory.used_mib if d.ci is not None and d.ci.memory is not None else -1
    procs = len(d.ci.processes) if d.ci is not None else 0
    if sort == "util":
        return (-_util(d.gi.utilization), d.gi.id)
    if sort == "memory":
        return (-mem, d.gi.id)
    if sort == "processes":
        return (-procs, d.gi.id)
    if sort == "profile":
        return (d.gi.profile, d.gi.id)
    return (d.gi.id, -1 if d.ci is None else d.ci.id)


def _gpu_key(sort: SortKey, b: GpuBlock) -> tuple[object, ...]:
    if sort == "util":
        return (-_util(b.gpu.utilization), b.gpu.index)
    if sort == "memory":
        return (-b.gpu.memory.used_mib, b.gpu.index)
    if sort == "processes":
        return (-len(b.gpu.processes), b.gpu.index)
    return (b.gpu.index,)


def device_text(d: DeviceRow) -> str:
    """What the filter matches a MIG device against."""
    parts = [f"gpu{d.gpu.index}", f"gi{d.gi.id}", d.gi.profile]
    if d.ci is not None:
        parts += [d.ci.uuid, d.ci.profile]
        if d.ci.holder is not None:
            parts += [d.ci.holder.command, d.ci.holder.job or "", "lease"]
        parts += [f"{p.pid} {p.user} {p.command}" for p in d.ci.processes]
    return " ".join(parts).lower()


def gpu_text(g: GpuStatus) -> str:
    return f"gpu{g.index} {g.name} {g.uuid} {g.bus_id}".lower()


def process_text(g: GpuStatus, p: ProcessRecord) -> str:
    return f"gpu{g.index} gi{p.gpu_instance_id} {p.pid} {p.user} {p.command}".lower()


def gpu_blocks(obs: Observation, state: ViewState) -> list[GpuBlock]:
    """The GPUs and their devices as drawn: filtered, then sorted by ``state``."""
    telemetry = {t.index: t for t in obs.telemetry}
    needle = state.filter.lower()
    out = []
    for g in obs.status.gpus:
        rows = [DeviceRow(g, gi, ci) for gi in g.gpu_instances for ci in gi.compute_instances]
        rows += [DeviceRow(g, gi, None) for gi in g.gpu_instances if not gi.compute_instances]
        procs = [p for p in g.processes if p.gpu_instance_id is None]
        if needle and needle not in gpu_text(g):
            rows = [r for r in rows if needle in device_text(r)]
            procs = [p for p in procs if needle in process_text(g, p)]
            if not rows and not procs:
                continue
        rows.sort(key=lambda r: _device_key(state.sort, r))
        if state.reverse:
            rows.reverse()
        out.append(GpuBlock(g, telemetry.get(g.index), tuple(rows), tuple(procs)))
    out.sort(key=lambda b: _gpu_key(state.sort, b))
    if state.reverse:
        out.reverse()
    return out


def _id(value: int | None) -> int:
    return -1 if value is None else value


def process_rows(obs: Observation, state: ViewState) -> list[tuple[GpuStatus, ProcessRecord, str]]:
    """Every process with its GPU and lease/job text, filtered and sorted (the processes view)."""
    needle = state.filter.lower()
    rows = []
    for g in obs.status.gpus:
        holders = {
            (gi.id, ci.id): ci.holder for gi in g.gpu_instances for ci in gi.compute_instances if ci.holder is not None
        }
        for p in g.processes:
            h = holders.get((_id(p.gpu_instance_id), _id(p.compute_instance_id)))
            job = "" if h is None else (h.job or "lease")
            if needle and needle not in process_text(g, p) + " " + job.lower():
                continue
            rows.append((g, p, job))

    def key(row: tuple[GpuStatus, ProcessRecord, str]) -> tuple[object, ...]:
        g, p, _ = row
        mem = p.used_memory_mib or 0
        if state.sort == "memory":
            return (-mem, p.pid)
        if state.sort == "processes":  # by user, then pid (the closest meaning for a process list)
            return (p.user, p.pid)
        if state.sort == "profile":
            return (g.index, _id(p.gpu_instance_id), p.pid)
        return (g.index, _id(p.gpu_instance_id), _id(p.compute_instance_id), p.pid)

    rows.sort(key=key)
    if state.reverse:
        rows.reverse()
    return rows


def scroll_window(total: int, state: ViewState, height: int) -> tuple[int, int]:
    """The visible ``[start, end)`` of ``total`` body lines; clamps ``state.scroll``."""
    state.page = max(1, height)
    state.scroll = max(0, min(state.scroll, max(0, total - height)))
    return state.scroll, min(total, state.scroll + height)


def totals(obs: Observation) -> tuple[int, int, int, int, int]:
    """(GPUs, GPU instances, MIG devices, processes, leases) on the node."""
    gpus: Sequence[GpuStatus] = obs.status.gpus
    gis = sum(len(g.gpu_instances) for g in gpus)
    devices = sum(len(gi.compute_instances) for g in gpus for gi in g.gpu_instances)
    procs = sum(len(g.processes) for g in gpus)
    leases = sum(1 for g in gpus for gi in g.gpu_instances for ci in gi.compute_instances if ci.holder is not None)
    return len(gpus), gis, devices, procs, leases
