"""What the monitoring front ends report about past changes: the last ``apply``.

``apply`` records how it ended in ``<state dir>/last-apply.json`` (atomically, 0600); the
exporter publishes it (``migctl_last_apply_*``). Recording is bookkeeping: a state directory
that cannot be written (a full disk) never turns a finished apply into a failure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from migctl.paths import state_dir
from migctl.records.layouts import ApplyReport
from migctl.records.observe import LastApply
from migctl.sim.state import atomic_write_json

FILE = "last-apply.json"


def _path() -> Path:
    return state_dir() / FILE


def record_apply(report: ApplyReport, finished: float | None = None) -> None:
    """Remember ``report`` as the last apply (best effort)."""
    data = {
        "finished": time.time() if finished is None else finished,
        "config": report.config,
        "ok": report.ok,
        "results": [[g.gpu, g.result] for g in report.gpus],
    }
    try:
        atomic_write_json(_path(), data)
    except OSError:
        pass


def last_apply() -> LastApply | None:
    """The last recorded apply, or ``None`` (never recorded, or the file is unreadable)."""
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
        return LastApply(
            finished=float(data["finished"]),
            config=str(data["config"]),
            ok=bool(data["ok"]),
            results=tuple((int(g), str(r)) for g, r in data["results"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
