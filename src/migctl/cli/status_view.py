"""``migctl status``'s MIG devices and processes tables (nvidia-smi's "MIG devices" and
"Processes" sections), and the short texts ``top`` shares with it: who holds a device and
how busy an instance is."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from migctl.cli.render import dim, table
from migctl.records.common import Holder
from migctl.records.inspect import GpuStatus, Utilization


def holder_text(h: Holder | None) -> str:
    """``job train-3 (pid 4242)``, ``lease pid 4242 (python train.py)``, or ``""``."""
    if h is None:
        return ""
    pid = "?" if h.pid is None else str(h.pid)
    if h.job:
        return f"job {h.job} (pid {pid})"
    return f"lease pid {pid} ({h.command})"


def util_text(u: Utilization | None) -> str:
    """``70%``, ``n/a`` (the reason is shown apart), or ``-`` when not measured."""
    if u is None:
        return "-"
    if u.source == "n/a" or u.gpu_pct is None:
        return "n/a"
    return f"{u.gpu_pct:.0f}%"


def _used(used: int | None, total: int | None) -> str:
    if used is None or total is None:
        return "n/a"
    return f"{used}/{total}"


#: Narrower consoles get the table without engine and UUID columns, and the UUIDs below it.
WIDE = 150


def render_mig_devices(console: Console, g: GpuStatus) -> None:
    """The MIG devices table, the reasons utilization is n/a, and the processes table."""
    rows = [(gi, ci) for gi in g.gpu_instances for ci in gi.compute_instances]
    if not rows:
        return
    wide = console.width >= WIDE
    measured = any(gi.utilization is not None for gi in g.gpu_instances)
    cols = ["GI", "CI", "profile"] + (["placement"] if wide else []) + ["SM"]
    cols += ["CE", "DEC", "ENC", "JPG", "OFA"] if wide else []
    cols += ["memory MiB", "BAR1 MiB"] + (["util"] if measured else [])
    cols += ["MIG device UUID"] if wide else []
    cols += ["lease/job"]
    right = ("GI", "CI", "SM", "CE", "DEC", "ENC", "JPG", "OFA", "memory MiB", "BAR1 MiB", "util")
    t = table(*cols, right=right)
    reasons: dict[str, None] = {}
    for gi, ci in rows:
        e, mem, bar1 = ci.engines, ci.memory, ci.bar1
        cells = [str(gi.id), str(ci.id), ci.profile] + ([str(gi.placement)] if wide else []) + [str(ci.sm)]
        cells += [str(v) for v in (e.ce, e.dec, e.enc, e.jpeg, e.ofa)] if wide else []
        cells += [
            _used(mem.used_mib, mem.total_mib) if mem else "n/a",
            _used(bar1.used_mib, bar1.total_mib) if bar1 else "n/a",
        ]
        if measured:
            cells.append(util_text(gi.utilization))
            if gi.utilization is not None and gi.utilization.reason:
                reasons[gi.utilization.reason] = None
        cells += [ci.uuid] if wide else []
        cells.append(holder_text(ci.holder) or "-")
        t.add_row(*cells)
    console.print(t)
    if not wide:
        for gi, ci in rows:
            console.print(f"  GI {gi.id} CI {ci.id}: {ci.uuid}")
    for reason in reasons:
        console.print(dim(f"  util n/a: {reason}"))
    procs = [p for p in g.processes if p.gpu_instance_id is not None]
    if procs:
        pt = table("GI", "CI", "PID", "user", "GPU memory MiB", "command", right=("GI", "CI", "PID", "GPU memory MiB"))
        for p in procs:
            mem_text = "n/a" if p.used_memory_mib is None else str(p.used_memory_mib)
            pt.add_row(str(p.gpu_instance_id), str(p.compute_instance_id), str(p.pid), p.user, mem_text, p.command)
        console.print(Text("  processes", style="bold"))
        console.print(pt)
