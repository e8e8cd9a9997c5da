"""The reliability campaigns (``./dev stress``, docs/safety.md) in their short form, and proof that
their judge notices a broken outcome (a campaign that could not fail would prove nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
from stress.crash import Prepared, transitions
from stress.harness import Ran, Tally, cli, leaked


def test_the_short_campaigns_meet_every_target() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tools"), os.environ.get("PYTHONPATH", "")])}
    env.pop("MIGCTL_STATE_DIR", None)
    p = subprocess.run(
        [sys.executable, "-m", "stress", "--short", "--json"], env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )
    results = json.loads(p.stdout)
    names = " ".join(r["name"] for r in results)
    for kind in ("kill -9", "SIGTERM", "SIGINT", "NVML fault", "race", "corruption", "fuzz: command", "fuzz: config"):
        assert kind in names, names
    for r in results:
        assert r["tried"] > 0, r["name"]
        assert r["ok"], f"{r['name']}: {r['problems']}"
    assert p.returncode == 0, p.stderr


def test_the_judge_catches_a_gpu_in_neither_layout() -> None:
    t = next(t for t in transitions(1) if t.name == "destroy+create")
    p = Prepared(t, 1)
    try:
        p.scratch.restore("before")
        assert cli(p.scratch.env(), "apply", "--layout", "7g.96gb").code == 0  # neither old nor new
        tally = Tally("self-check")
        p.judge(tally, "planted", Ran(0, "", ""), {})
        assert tally.tried == 1 and tally.exact == 0 and not tally.ok
        assert tally.leaked == 1 and "neither layout" in tally.problems[0]
        tally.texts("planted", "migctl: error: internal error: KeyError", "Traceback (most recent call last):")
        assert tally.internal_errors == 1 and tally.tracebacks == 1
    finally:
        p.close()


def test_leaked_counts_instances_of_neither_layout() -> None:
    old = ((True, (("1g.12gb", 0, (("1g.12gb", 0),)),)),)
    new = ((True, (("7g.96gb", 0, (("7g.96gb", 0),)),)),)
    half = ((True, (("1g.12gb", 0, (("1g.12gb", 0),)), ("2g.24gb", 2, ()))),)
    assert leaked(old, old, new) == 0 and leaked(new, old, new) == 0
    assert leaked(half, old, new) == 1  # a GPU instance without its compute instance
