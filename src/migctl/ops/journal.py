"""The journal: what a GPU is being changed to, and what it was, until the change is done.

``apply`` and ``create`` write ``<state_dir>/journal/gpu-N.json`` (atomically, 0600) before
their first change to GPU N and remove it when the GPU is done or rolled back. A file that
is still there means the process died mid-change (a crash, ``kill -9``): the next ``apply``
or ``migctl recover`` finishes the change, or rolls the GPU back to ``before``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from migctl.core.geometry import Placement
from migctl.core.layout import ExistingInstance, Target, TargetInstance
from migctl.paths import state_dir
from migctl.sim.state import atomic_write_json, ensure_private_dir


def journal_dir() -> Path:
    return ensure_private_dir(state_dir() / "journal")


def target_json(t: Target) -> dict[str, Any]:
    return {
        "mig_enabled": t.mig_enabled,
        "instances": [
            {
                "profile_id": i.profile_id,
                "placement": None if i.placement is None else [i.placement.start, i.placement.size],
                "compute": None if i.compute is None else list(i.compute),
            }
            for i in t.instances
        ],
    }


def target_from(data: dict[str, Any]) -> Target:
    return Target(
        mig_enabled=bool(data["mig_enabled"]),
        instances=tuple(
            TargetInstance(
                int(i["profile_id"]),
                None if i["placement"] is None else Placement(*i["placement"]),
                None if i["compute"] is None else tuple(i["compute"]),
            )
            for i in data["instances"]
        ),
    )


def pinned(mig_enabled: bool, instances: Sequence[ExistingInstance]) -> Target:
    """A layout as a target pinned to its exact placements and compute instances."""
    return Target(
        mig_enabled=mig_enabled,
        instances=tuple(TargetInstance(e.profile_id, e.placement, tuple(sorted(e.compute))) for e in instances),
    )


def write(gpu: int, what: str, target: Target, before: Target) -> Path:
    """Record that GPU ``gpu`` is about to change from ``before`` to ``target`` (by ``what``)."""
    path = journal_dir() / f"gpu-{gpu}.json"
    atomic_write_json(
        path,
        {
            "gpu": gpu,
            "config": what,
            "pid": os.getpid(),
            "started": time.time(),
            "target": target_json(target),
            "before": target_json(before),
        },
    )
    return path


def pending() -> list[dict[str, Any]]:
    """Journals left by processes that died mid-change (unreadable ones are dropped)."""
    out = []
    directory = state_dir() / "journal"
    if not directory.exists():
        return []
    for p in sorted(directory.glob("gpu-*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            p.unlink(missing_ok=True)
    return out
