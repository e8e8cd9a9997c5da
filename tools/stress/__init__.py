"""``./dev stress``: the reliability campaigns that keep migctl's safety promise true (issue 9).

    ./dev stress            the full campaigns (8 GPUs, every step, every NVML call)
    ./dev stress --short    a sample of each campaign (what ./dev test runs, under 30 s)
    ./dev stress --only kill,faults --gpus 4 --jobs 2 --json

Campaigns: ``kill`` (kill -9 at every step of apply and create), ``sigterm`` and ``sigint``
(at every step), ``faults`` (an NVML fault at every NVML call), ``races`` (run against
apply/destroy/create under latency), ``corruption`` (every state file damaged four ways, then
every command; the simulator's files separately), ``fuzz`` (hypothesis over command lines and
config files). Per campaign it prints: tried, ended exactly old-or-new, leaked instances, busy
instances destroyed, internal errors, tracebacks. Targets: 100% / 0 / 0 / 0 / 0; the exit
status is 0 only when every campaign meets them. See docs/safety.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from stress.harness import Tally, preload

ALL = ("kill", "sigterm", "sigint", "faults", "races", "corruption", "fuzz")
#: The short form: how many indices per transition each crash campaign samples.
SHORT_CAP = {"kill": 6, "sigterm": 4, "sigint": 3, "faults": 24}


def _crash_unit(unit: tuple[str, str, int, bool, int, int]) -> Tally:
    """One crash campaign over one transition, for the indices ``k*jobs + part`` (run in a worker)."""
    from stress.crash import CAMPAIGNS, Prepared, indices, transitions

    campaign, transition, gpus, short, part, jobs = unit
    t = next(t for t in transitions(gpus) if t.name == transition)
    title, trial, count = CAMPAIGNS[campaign]
    prepared = Prepared(t, gpus)
    tally = Tally(f"{title}: {transition} ({gpus} GPUs)")
    started = time.monotonic()
    try:
        chosen = list(indices(count(prepared), short, SHORT_CAP[campaign]))
        for n in chosen[part::jobs]:
            trial(prepared, tally, n)
    finally:
        prepared.close()
    tally.seconds = time.monotonic() - started
    return tally


def run_campaigns(
    only: Sequence[str], *, short: bool, gpus: int, jobs: int, seed: int
) -> list[Tally]:
    preload()
    results: list[Tally] = []
    crash = [c for c in ("kill", "sigterm", "sigint", "faults") if c in only]
    if crash:
        from stress.crash import transitions

        names = [t.name for t in transitions(gpus)]
        if short:
            names = ["destroy+create", "create", "destroy"]
        units = [(c, t, gpus, short, part, jobs) for c in crash for t in names for part in range(jobs)]
        if jobs > 1:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                parts = pool.map(_crash_unit, units)
        else:
            parts = [_crash_unit(u) for u in units]
        merged: dict[str, Tally] = {}
        for p in parts:
            merged.setdefault(p.name, Tally(p.name)).merge(p)
            merged[p.name].seconds += p.seconds
        results += merged.values()
    if "races" in only:
        from stress.races import RACES, race

        for i, r in enumerate(RACES):
            if short and r.name == "create":
                continue
            started = time.monotonic()
            tally = race(r, 1 if short else 20, seed + i)
            tally.seconds = time.monotonic() - started
            results.append(tally)
    if "corruption" in only:
        from stress.corrupt import corruption

        for simulator in (False, True):
            if short and simulator:
                continue
            started = time.monotonic()
            tally = corruption(short, simulator)
            tally.seconds = time.monotonic() - started
            results.append(tally)
    if "fuzz" in only:
        from stress.fuzz import fuzz

        started = time.monotonic()
        tallies = fuzz(20 if short else 400, seed)
        for t in tallies:
            t.seconds = (time.monotonic() - started) / len(tallies)
        results += tallies
    return results


def render(results: Sequence[Tally]) -> str:
    head = ("campaign", "tried", "exact", "leaked", "busy destroyed", "internal errors", "tracebacks", "s")
    rows = [
        (
            t.name,
            str(t.tried),
            f"{100 * t.exact / t.tried:.0f}%" if t.tried else "-",
            str(t.leaked),
            str(t.busy_destroyed),
            str(t.internal_errors),
            str(t.tracebacks),
            f"{t.seconds:.0f}",
        )
        for t in results
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in [head, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    for t in results:
        for p in t.problems:
            lines.append(f"  {t.name}: {p}")
    verdict = "all targets met" if all(t.ok for t in results) else "TARGETS MISSED"
    return "\n".join([*lines, f"targets: 100% exact, 0 leaked, 0 busy destroyed, 0 internal errors, 0 tracebacks: "
                                f"{verdict}"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev stress", description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="a sample of each campaign (CI)")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated campaigns: {','.join(ALL)}")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs per node (default 8; 2 with --short)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the crash campaigns")
    parser.add_argument("--seed", type=int, default=9, help="seed for races and fuzzing")
    parser.add_argument("--json", action="store_true", help="print the tallies as JSON")
    args = parser.parse_args(argv)
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(only) - set(ALL))
    if unknown:
        parser.error(f"unknown campaign(s): {', '.join(unknown)}")
    gpus = args.gpus or (2 if args.short else 8)
    os.environ.pop("MIGCTL_STATE_DIR", None)
    started = time.monotonic()
    results = run_campaigns(only, short=args.short, gpus=gpus, jobs=max(1, args.jobs), seed=args.seed)
    if args.json:
        print(json.dumps([{**asdict(t), "ok": t.ok} for t in results], indent=2))
    else:
        print(render(results))
        print(f"({time.monotonic() - started:.0f} s)")
    sys.stdout.flush()
    return 0 if all(t.ok for t in results) else 1
