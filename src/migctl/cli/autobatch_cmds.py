"""``migctl batch --auto``: its options checked, the runner started, its record drawn.

``batch`` (:mod:`migctl.cli.run_cmds`) hands over here when ``--auto``, ``--objective`` or ``-i``
is given; the operations are :mod:`migctl.ops.autojobs` and :mod:`migctl.ops.autobatch`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from migctl.cli.app import STATE, consoles, emit, want_json
from migctl.cli.render import table
from migctl.errors import UsageError
from migctl.records.autobatch import AutoBatchReport


def auto_batch(
    args: list[str],
    *,
    auto: bool,
    objective: str | None,
    gpus: str | None,
    each_instance: bool,
    on: str | None,
    logs: Path | None,
    retries: int | None,
    timeout: float | None,
    grace: float,
    max_parallel: int | None,
) -> None:
    from migctl.cli.run_views import LiveBatch
    from migctl.core.scheduler import OBJECTIVES, Objective
    from migctl.ops import autobatch, autojobs

    if not auto:
        given = "--objective" if objective is not None else "-i"
        raise UsageError(f"batch {given} goes with --auto", hint="e.g. migctl batch --auto jobs.yaml -i 0-3")
    if each_instance or on is not None or max_parallel is not None:
        given = "--each-instance" if each_instance else ("--on" if on is not None else "--max-parallel")
        raise UsageError(
            f"batch --auto chooses each job's device itself: {given} does not go with it",
            hint="give the GPUs it may use with -i, and each job's memory and work in the jobs file",
        )
    given = (objective or "jct").strip().lower()
    chosen: Objective | None = next((o for o in OBJECTIVES if o == given), None)
    if chosen is None:
        raise UsageError(f"--objective {objective}: expected one of {', '.join(OBJECTIVES)}")
    if len(args) != 1:
        raise UsageError(f"batch --auto: expected one JOBS.yaml file, got {len(args)} arguments")
    node = STATE.node()
    scope = autojobs.scope(node, gpus)
    jobs = autojobs.load_auto_jobs(Path(args[0]), node, scope, retries=retries, timeout=timeout)
    if sys.stdout.isatty() and not want_json():
        with LiveBatch(consoles.out) as view:
            report = autobatch.run_auto_batch(
                node, jobs, scope, objective=chosen, logs_dir=logs, grace_s=grace, on_progress=view.update
            )
    else:
        report = autobatch.run_auto_batch(node, jobs, scope, objective=chosen, logs_dir=logs, grace_s=grace)
    emit(report, render_auto_batch)
    if report.summary.exit_code:
        raise typer.Exit(report.summary.exit_code)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_auto_batch(console: Console, data: AutoBatchReport) -> None:
    t = table(
        "job",
        "profile",
        "GPU:GI",
        "start (s)",
        "end (s)",
        "planned end (s)",
        "exit",
        "status",
        right=("start (s)", "end (s)", "planned end (s)", "exit"),
    )
    t.columns[7].no_wrap = False
    for job, placed in zip(data.jobs, data.schedule, strict=True):
        where = "-" if placed.gpu is None else f"{placed.gpu}:{placed.gpu_instance_id}"
        status = job.status + (f": {job.reason}" if job.reason and job.status != "succeeded" else "")
        t.add_row(
            job.name,
            placed.profile or "-",
            where,
            _s(placed.start_s),
            _s(placed.end_s),
            _s(placed.predicted_end_s),
            "-" if job.exit_code is None else str(job.exit_code),
            status,
        )
    console.print(t)
    a, s = data.auto, data.summary
    if data.reshapes:
        r = table("at (s)", "GPU", "destroyed (idle)", "created", "took (s)", "result", right=("at (s)", "took (s)"))
        r.columns[2].no_wrap = r.columns[3].no_wrap = r.columns[5].no_wrap = False
        for x in data.reshapes:
            mode = ("MIG on (reset), " if x.reset else "MIG on, ") if x.enable_mig else ""
            made = mode + (" ".join(x.created) or "-")
            result = x.result + (f": {x.detail}" if x.result != "applied" and x.detail else "")
            r.add_row(f"{x.at_s:.1f}", str(x.gpu), " ".join(x.destroyed) or "-", made, f"{x.seconds:.2f}", result)
        console.print(r)
    console.print(
        f"{a.reshapes} reshape(s) on GPU(s) {', '.join(str(g) for g in a.gpus)}; "
        f"{a.decisions} decision(s) (objective {a.objective})"
    )
    line = (
        f"{s.jobs} jobs: {s.succeeded} succeeded, {s.failed} failed"
        + (f", {s.interrupted} interrupted" if s.interrupted else "")
        + (f", {s.not_started} not started" if s.not_started else "")
        + f" in {s.wall_s:.1f} s"
        + (
            f"; mean completion {a.avg_jct_s:.1f} s (planned {a.predicted_avg_jct_s:.1f} s)"
            if a.avg_jct_s is not None and a.predicted_avg_jct_s is not None
            else ""
        )
        + f"; logs in {s.logs}"
    )
    if s.stopped_by:
        line = f"stopped by {s.stopped_by}: " + line
    console.print(line)
