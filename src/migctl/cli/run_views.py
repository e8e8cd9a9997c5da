"""How ``run``, ``batch`` and ``doctor`` draw their records: run's notices, the batch's live view
and summary table, the doctor's checks."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.text import Text

from migctl.cli.render import dim, table
from migctl.ops.leases import describe_holder
from migctl.records.batch import BatchProgress, BatchReport
from migctl.records.doctor import DoctorReport
from migctl.records.run import RunEvent, RunStarting, RunWaiting

# -- run ---------------------------------------------------------------------------------------------


def describe_wait(wait: float | None) -> str:
    """``as long as needed`` or ``up to 5 s``."""
    return "as long as needed" if wait is None else f"up to {wait:g} s"


def run_notice(event: RunEvent) -> str:
    """What ``migctl run`` says on stderr while it works (``-q`` silences it)."""
    if isinstance(event, RunWaiting):
        first = event.busy[0]
        return (
            f"waiting {describe_wait(event.wait_s)} for a free MIG device "
            f"({len(event.busy)} busy; {first.uuid} {describe_holder(first.holder)})"
        )
    assert isinstance(event, RunStarting)
    return f"running on {event.device.label()} {event.device.uuid}: {' '.join(event.command)}"


# -- batch -------------------------------------------------------------------------------------------

#: Running jobs the live view lists at most (the rest are counted).
LIVE_ROWS = 20


def batch_progress(p: BatchProgress) -> Group:
    head = Text(
        f"jobs {p.done}/{p.total} done ({p.succeeded} ok, {p.failed} failed), "
        f"{len(p.running)} running, {p.waiting} waiting   {p.elapsed_s:.1f} s"
        + ("   stopping..." if p.stopping else "")
    )
    rows = table("job", "instance", "MIG device", "attempt", "running", right=("instance", "attempt", "running"))
    for j in p.running[:LIVE_ROWS]:
        where = f"{j.device.gpu}:{j.device.gpu_instance_id}" + (
            f":{j.device.compute_instance_id}" if j.device.compute_instance_id else ""
        )
        rows.add_row(j.name, where, j.device.uuid, str(j.attempt), f"{j.running_s:.1f} s")
    parts: list[RenderableType] = [head, ProgressBar(total=max(1, p.total), completed=p.done, width=60), rows]
    if len(p.running) > LIVE_ROWS:
        parts.append(dim(f"... and {len(p.running) - LIVE_ROWS} more running"))
    return Group(*parts)


class LiveBatch:
    """The live view of a running batch on a terminal (gone when the batch ends)."""

    def __init__(self, console: Console) -> None:
        self._live = Live(Text(""), console=console, auto_refresh=False, transient=True)

    def update(self, progress: BatchProgress) -> None:
        self._live.update(batch_progress(progress), refresh=True)

    def __enter__(self) -> LiveBatch:
        self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.__exit__(kind, exc, tb)


def job_status(status: str, reason: str) -> str:
    """``failed: exit 3`` (a reason that only repeats the status is left out: no "not started: not started")."""
    return f"{status}: {reason}" if reason and reason != status and status != "succeeded" else status


def render_batch(console: Console, data: BatchReport) -> None:
    # GPU:GI and the MIG device in columns of their own: the UUIDs line up whatever the IDs' widths
    t = table(
        "job", "instance", "MIG device", "exit", "attempts", "duration", "status",
        right=("instance", "exit", "attempts", "duration"),
    )
    # one line per job even on a narrow terminal: the UUID is cut there (whole in --json)
    t.columns[2].overflow = "ellipsis"
    t.columns[0].no_wrap = t.columns[6].no_wrap = False
    for j in data.jobs:
        inst = j.instance
        t.add_row(
            j.name,
            "-" if inst is None else f"{inst.gpu}:{inst.gpu_instance_id}",
            "-" if inst is None else inst.uuid,
            "-" if j.exit_code is None else str(j.exit_code),
            str(j.attempts),
            f"{j.duration_s:.1f} s",
            job_status(j.status, j.reason),
        )
    console.print(t)
    s = data.summary
    line = (
        f"{s.jobs} jobs: {s.succeeded} succeeded, {s.failed} failed"
        + (f", {s.interrupted} interrupted" if s.interrupted else "")
        + (f", {s.not_started} not started" if s.not_started else "")
        + f" in {s.wall_s:.1f} s; logs in {s.logs}"
    )
    if s.stopped_by:
        line = f"stopped by {s.stopped_by}: " + line
    console.print(line)


# -- doctor ------------------------------------------------------------------------------------------

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def render_doctor(console: Console, data: DoctorReport) -> None:
    if data.simulated:
        console.print(dim("(simulated node)"))
    t = table("", "check", "result", "fix")
    t.columns[2].no_wrap = t.columns[3].no_wrap = False  # long messages and fixes wrap, whole
    for c in data.checks:
        t.add_row(Text(c.status.upper(), style=_STYLE[c.status]), c.check, c.message, c.fix or "")
    console.print(t)
    s = data.summary
    verdict = "all checks passed" if data.ok and not s["warn"] else ("no failures" if data.ok else "problems found")
    console.print(f"{verdict}: {s['pass']} passed, {s['warn']} warnings, {s['fail']} failed")
