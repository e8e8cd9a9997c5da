"""A trace run for real by ``migctl batch --auto`` on a simulated node, beside the trace simulator's
prediction for the same trace (issue 14, item 3).

The trace's jobs are queued together at the start (a batch). Each becomes a jobs-file entry with
its memory, its speeds per profile and its work, and a command that sleeps for its run time on
the profile it was given: ``sh -c 'case "$MIGCTL_PROFILE" in 1g.5gb) exec sleep 41.2;; ...'``
(the job's own speed table, so it runs as long as the trace says it would there, and fails on a
profile it has no time for). The node is ``a100-40gbx<N>`` with MIG on and no instances, with
``MIGCTL_SIM_LATENCY=realistic``, as the trace simulator prices reshapes. The prediction is the
trace simulator running migctl's own policy (``sched_policies.Migctl``: the same ``decide``)
on the same jobs with the same cost model.

Used by ``bench_autobatch.py`` and ``tests/test_autobatch_real.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from migctl.core.geometry import GpuGeometry
from migctl.core.scheduler import Objective, ReconfigCost
from migctl.device.simulated import model_geometry
from migctl.sim.faults import REALISTIC_S
from sched_policies import Migctl
from tracesim import Result, Simulator, TraceJob

MODEL = "a100-40gb"


def as_batch(trace: Sequence[TraceJob], factor: float = 1.0) -> list[TraceJob]:
    """The trace's jobs all queued at 0, their work scaled by ``factor``."""
    return [replace(j, arrival=0.0, work=round(j.work * factor, 3)) for j in trace]


class _Recording(Migctl):
    """migctl's policy in the trace simulator, noting the profile each job starts on."""

    def __init__(self, objective: Objective) -> None:
        super().__init__(objective)
        self.profiles: dict[str, str] = {}

    def step(self, sim: Simulator) -> None:
        super().step(sim)
        for name, run in sim.running.items():
            self.profiles.setdefault(name, sim.gpus[run.gpu].instances[run.gi_id].profile.name)


@dataclass(frozen=True)
class Prediction:
    result: Result
    profiles: dict[str, str]


def predict(trace: Sequence[TraceJob], gpus: int, objective: Objective = "jct") -> Prediction:
    geometry = model_geometry(MODEL)
    policy = _Recording(objective)
    result = Simulator([geometry] * gpus, trace, ReconfigCost.from_nvml(REALISTIC_S)).run(policy)
    return Prediction(result, policy.profiles)


def scale_for(trace: Sequence[TraceJob], gpus: int, seconds: float) -> float:
    """The factor on every job's work that makes the predicted batch last about ``seconds``."""
    factor = 1.0
    for _ in range(3):  # reshapes do not scale: settle in a few steps
        span = max(predict(as_batch(trace, factor), gpus).result.completion.values())
        factor *= seconds / span
    return factor


def job_command(job: TraceJob, geometry: GpuGeometry) -> list[str]:
    """``sh -c`` that sleeps for the job's run time on ``$MIGCTL_PROFILE`` (exit 3 on a profile it cannot use)."""
    spec = job.as_job()
    cases = []
    for p in geometry.profiles:
        d = spec.duration_on(p)
        if d is not None:
            cases.append(f"{p.name}) exec sleep {d:.3f};;")
    script = f'case "$MIGCTL_PROFILE" in {" ".join(cases)} *) echo "no run time on $MIGCTL_PROFILE" >&2; exit 3;; esac'
    return ["sh", "-c", script]


def jobs_document(trace: Sequence[TraceJob]) -> dict[str, Any]:
    geometry = model_geometry(MODEL)
    return {
        "jobs": [
            {
                "name": j.name,
                "command": job_command(j, geometry),
                "memory": f"{j.memory_mib}MiB",
                "speeds": dict(j.speeds),
                "work": j.work,
            }
            for j in trace
        ]
    }


def run_for_real(
    trace: Sequence[TraceJob], gpus: int, objective: Objective = "jct", timeout: float = 600.0
) -> dict[str, Any]:
    """``migctl batch --auto`` on a fresh simulated ``a100-40gbx<gpus>`` (MIG on, no instances): its ``--json``."""
    with tempfile.TemporaryDirectory(prefix="migctl-autobatch-") as tmp:
        env = {**os.environ, "MIGCTL_STATE_DIR": f"{tmp}/state", "MIGCTL_SIM": f"{MODEL}x{gpus}"}
        env.pop("MIGCTL_SIM_FAULTS", None)
        env["MIGCTL_SIM_LATENCY"] = "none"  # setting up is not part of the run
        migctl = [sys.executable, "-m", "migctl"]
        subprocess.run([*migctl, "mode", "enable", "-i", f"0-{gpus - 1}"], env=env, check=True, capture_output=True)
        jobs = Path(tmp) / "jobs.json"
        jobs.write_text(json.dumps(jobs_document(trace)))
        env["MIGCTL_SIM_LATENCY"] = "realistic"
        p = subprocess.run(
            [*migctl, "batch", "--auto", str(jobs), "--objective", objective, "--logs", f"{tmp}/logs", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if p.returncode != 0:
            logs = "".join(f"\n{f.name}: {f.read_text()}" for f in sorted(Path(f"{tmp}/logs").glob("*.log")))
            raise RuntimeError(f"migctl batch --auto exited {p.returncode}: {p.stderr}{p.stdout[-2000:]}{logs[-2000:]}")
        report: dict[str, Any] = json.loads(p.stdout)
        return report


@dataclass(frozen=True)
class Comparison:
    """Predicted and measured completion times (seconds since the batch started) per job."""

    predicted: dict[str, float]
    measured: dict[str, float]
    predicted_profile: dict[str, str]
    measured_profile: dict[str, str]
    reshapes: int
    predicted_reshapes: int

    @property
    def avg_predicted(self) -> float:
        return statistics.fmean(self.predicted.values())

    @property
    def avg_measured(self) -> float:
        return statistics.fmean(self.measured.values())

    @property
    def ratio(self) -> float:
        """Measured over predicted average JCT."""
        return self.avg_measured / self.avg_predicted

    @property
    def makespan_ratio(self) -> float:
        return max(self.measured.values()) / max(self.predicted.values())

    @property
    def same_profile(self) -> int:
        return sum(1 for n, p in self.predicted_profile.items() if self.measured_profile.get(n) == p)


def compare(trace: Sequence[TraceJob], gpus: int, objective: Objective = "jct") -> Comparison:
    """Predict ``trace`` (a batch), run it for real, and put the two side by side."""
    prediction = predict(trace, gpus, objective)
    report = run_for_real(trace, gpus, objective)
    measured = {s["name"]: float(s["end_s"]) for s in report["schedule"]}
    profiles = {s["name"]: str(s["profile"]) for s in report["schedule"]}
    return Comparison(
        predicted=dict(prediction.result.completion),
        measured=measured,
        predicted_profile=prediction.profiles,
        measured_profile=profiles,
        reshapes=int(report["auto"]["reshapes"]),
        predicted_reshapes=prediction.result.reconfigurations,
    )
