"""kill -9, SIGTERM/SIGINT and NVML faults at every step of ``apply`` and ``create``.

Each *transition* takes every GPU of a simulated node from one layout to another:

* ``mode-change``: MIG off to ``1g.12gb:7`` (enable, then 7 instances per GPU);
* ``destroy+create``: ``1g.12gb:7`` to ``3g.48gb,2g.24gb,1g.12gb:2`` (5 destroyed, 2 created);
* ``recompute``: ``3g.48gb,2g.24gb,1g.12gb:2`` to the same GPU instances with their compute
  instances split (``3g.48gb[1c,1c,1c]``, ``2g.24gb[1c,1c]``);
* ``create``: ``migctl create 2g.24gb 1g.12gb:3`` on every GPU;
* ``destroy``: ``migctl destroy --all`` of ``3g.48gb,2g.24gb,1g.12gb:2`` on every GPU.

Steps are found by index, not by timing: ``MIGCTL_STEP_LOG`` counts the command's GPU-changing
steps, then ``MIGCTL_FAULT_STEP=N:KILL|TERM|INT`` stops it just before step N, for every N.
NVML faults use the simulator's ``MIGCTL_SIM_FAULTS=any@N=GPU_IS_LOST`` for every N up to the
number of NVML calls the command makes (counted on a clean run). After each trial every GPU
must be exactly in its old or its new layout (after ``migctl recover`` for a kill), the command
must have said which, and nothing may be left over.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from stress.harness import NodeLayout, Ran, Scratch, Tally, cli, forked, leaked, steps

LAYOUT_7 = "1g.12gb:7"
MIXED = "3g.48gb,2g.24gb,1g.12gb:2"
SPLIT = "3g.48gb[1c,1c,1c],2g.24gb[1c,1c],1g.12gb:2"


@dataclass(frozen=True)
class Transition:
    name: str
    setup: tuple[tuple[str, ...], ...]
    command: tuple[str, ...]


def transitions(gpus: int) -> list[Transition]:
    every = f"0-{gpus - 1}"
    return [
        Transition("mode-change", (), ("apply", "--layout", LAYOUT_7)),
        Transition("destroy+create", (("apply", "--layout", LAYOUT_7),), ("apply", "--layout", MIXED)),
        Transition("recompute", (("apply", "--layout", MIXED),), ("apply", "--layout", SPLIT)),
        Transition("create", (("mode", "enable"),), ("create", "-i", every, "2g.24gb", "1g.12gb:3")),
        Transition("destroy", (("apply", "--layout", MIXED),), ("destroy", "-i", every, "--all")),
    ]


class Prepared:
    """A transition set up on a scratch node: its saved ``before`` state and both layouts."""

    def __init__(self, t: Transition, gpus: int) -> None:
        self.t = t
        self.scratch = Scratch(f"h20x{gpus}")
        env = self.scratch.env()
        cli(env, "status")  # creates the node
        for args in t.setup:
            ran = cli(env, *args)
            if ran.code != 0:
                raise RuntimeError(f"setting up {t.name}: migctl {' '.join(args)}: {ran.err}")
        self.scratch.save("before")
        self.old = self.scratch.layout()
        ran = cli(env, *t.command)
        if ran.code != 0:
            raise RuntimeError(f"{t.name}: migctl {' '.join(t.command)} failed on a clean run: {ran.err}")
        self.new = self.scratch.layout()
        self.steps = steps(self.scratch, "before", t.command)
        self.calls = _nvml_calls(self.scratch, t.command)

    def judge(self, tally: Tally, trial: str, ran: Ran, says: dict[int, NodeLayout | None]) -> None:
        """One trial's end state: each GPU old or new (and what the command said, where it said it)."""
        tally.tried += 1
        final = self.scratch.layout()
        journals = self.scratch.journals()
        exact = not journals
        for g, gpu in enumerate(final):
            if gpu not in (self.old[g], self.new[g]):
                exact = False
                tally.note(f"{trial}: GPU {g} ended in neither layout: {gpu}")
            said = says.get(g)
            if said is not None and gpu != said[g]:
                exact = False
                tally.note(f"{trial}: GPU {g} is not what the command reported")
        if journals:
            tally.note(f"{trial}: journals left: {[p.name for p in journals]}")
        if ran.code not in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 130, -9):
            exact = False
            tally.note(f"{trial}: exit {ran.code}: {ran.err[-300:]}")
        tally.exact += exact
        tally.leaked += leaked(final, self.old, self.new)

    def reported(self, ran: Ran) -> dict[int, NodeLayout | None]:
        """What the command said each GPU ended as (from its ``--json``): its new or old layout."""
        try:
            doc = json.loads(ran.out) if ran.out.strip() else None
        except ValueError:
            return {}
        if not isinstance(doc, dict):
            return {}
        if "gpus" in doc and "ok" in doc:  # apply's record
            out: dict[int, NodeLayout | None] = {}
            for g in doc["gpus"]:
                result = g.get("result")
                out[g["gpu"]] = self.new if result == "applied" else self.old if result == "rolled_back" else None
            return out
        if "created" in doc or ("destroyed" in doc and "error" not in doc):  # create/destroy succeeded
            return {g: self.new for g in range(len(self.old))}
        if doc.get("error") and doc.get("rolled_back") is not False:  # create refused or undone
            return {g: self.old for g in range(len(self.old))}
        return {}

    def close(self) -> None:
        self.scratch.close()


def _nvml_calls(scratch: Scratch, command: tuple[str, ...]) -> int:
    """How many NVML calls the command makes on a clean run (the simulator counts them)."""
    from migctl.sim import faults

    count = [0]
    real = faults.Faults.check

    def counting(self: faults.Faults, fn: str, gpu: int | None) -> int | None:
        count[0] += 1
        return real(self, fn, gpu)

    scratch.restore("before")
    faults.Faults.check = counting  # type: ignore[method-assign]
    try:
        cli(scratch.env(), *command)
    finally:
        faults.Faults.check = real  # type: ignore[method-assign]
    return count[0]


# -- the campaigns -------------------------------------------------------------------------------------

Trial = Callable[[Prepared, Tally, int], None]


def kill_trial(p: Prepared, tally: Tally, n: int) -> None:
    p.scratch.restore("before")
    env = p.scratch.env()
    ran = forked({**env, "MIGCTL_FAULT_STEP": f"{n}:KILL"}, *p.t.command)
    if ran.code != -9:
        tally.note(f"kill at step {n}: not killed (exit {ran.code})")
    recovered = cli(env, "recover")
    tally.texts(f"kill at step {n}", ran.out, ran.err, recovered.out, recovered.err)
    if recovered.code != 0:
        tally.note(f"kill at step {n}: recover exit {recovered.code}: {recovered.err[-200:]}")
    p.judge(tally, f"kill at step {n}", ran, {})


def signal_trial(sig: str) -> Trial:
    def trial(p: Prepared, tally: Tally, n: int) -> None:
        p.scratch.restore("before")
        ran = cli(p.scratch.env(MIGCTL_FAULT_STEP=f"{n}:{sig}"), *p.t.command, "--json")
        tally.texts(f"SIG{sig} at step {n}", ran.out, ran.err)
        if ran.code != 130:
            tally.note(f"SIG{sig} at step {n}: exit {ran.code}, not 130")
            tally.tried += 1
            return
        p.judge(tally, f"SIG{sig} at step {n}", ran, p.reported(ran))

    return trial


def fault_trial(p: Prepared, tally: Tally, n: int) -> None:
    p.scratch.restore("before")
    env = p.scratch.env()
    ran = cli({**env, "MIGCTL_SIM_FAULTS": f"any@{n}=GPU_IS_LOST"}, *p.t.command, "--json")
    says = p.reported(ran)
    recovered = cli(env, "recover")  # a GPU whose rollback failed too is left to recover
    tally.texts(f"fault at NVML call {n}", ran.out, ran.err, recovered.out, recovered.err)
    if recovered.code != 0:
        tally.note(f"fault at call {n}: recover exit {recovered.code}: {recovered.err[-200:]}")
    p.judge(tally, f"fault at NVML call {n}", ran, says)


CAMPAIGNS: dict[str, tuple[str, Trial, Callable[[Prepared], int]]] = {
    "kill": ("kill -9 at every step", kill_trial, lambda p: p.steps),
    "sigterm": ("SIGTERM at every step", signal_trial("TERM"), lambda p: p.steps),
    "sigint": ("SIGINT at every step", signal_trial("INT"), lambda p: p.steps),
    "faults": ("NVML fault at every call", fault_trial, lambda p: p.calls),
}


def indices(total: int, short: bool, cap: int) -> Iterator[int]:
    """Every index 1..total; the short form spreads at most ``cap`` of them evenly."""
    if not short or total <= cap:
        yield from range(1, total + 1)
        return
    stride = total / cap
    seen = set()
    for i in range(cap):
        n = 1 + int(i * stride)
        if n not in seen:
            seen.add(n)
            yield n
