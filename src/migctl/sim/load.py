"""Simulated load: what the processes on a GPU make its counters show.

A process recorded on a MIG device (``migctl sim attach --util 70``) keeps that device's SMs
busy ``util`` percent of the time; several processes on one device add up to at most 100.
From that one number per device the simulator derives every activity counter, with fixed
ratios that look like a typical compute job (tensor-core work, moderate memory traffic):

==================  ==================================================
GRAPHICS_UTIL       the device's util (the graphics/compute engine is active)
SM_UTIL             0.95 x util (SMs busy; some idle cycles per launch)
SM_OCCUPANCY        0.50 x util (resident warps / maximum)
DRAM_BW_UTIL        0.40 x util
ANY_TENSOR_UTIL     0.60 x util
==================  ==================================================

A GPU instance's value is its compute instances' values weighted by their SMs; a whole GPU's
is its instances' values weighted by SMs, over the GPU's SMs. Without MIG, the GPU's util is
the sum over its processes (at most 100). Power and temperature follow the GPU's SM activity.
"""

from __future__ import annotations

from typing import Any

from migctl.sim import engine
from migctl.sim.catalog import ModelSpec

METRIC_RATIOS = {
    "graphics": 1.0,
    "sm": 0.95,
    "occupancy": 0.50,
    "dram": 0.40,
    "tensor": 0.60,
}


def _util_of(procs: list[dict[str, Any]]) -> float:
    return float(min(100, sum(int(p.get("util") or 0) for p in procs)))


def ci_util(gpu: dict[str, Any], gi_id: int, ci_id: int, live: list[dict[str, Any]] | None = None) -> float:
    """Percent of the time a compute instance's SMs are busy (``live``: the GPU's live processes, if known)."""
    procs = engine.live_procs(gpu) if live is None else live
    return _util_of([p for p in procs if p.get("gi") == gi_id and p.get("ci") == ci_id])


def gi_util(
    model: ModelSpec, gpu: dict[str, Any], gi: dict[str, Any], live: list[dict[str, Any]] | None = None
) -> float:
    """A GPU instance's activity: its compute instances' util weighted by their SMs."""
    procs = engine.live_procs(gpu) if live is None else live
    weighted = total = 0.0
    for ci in gi["cis"]:
        sm = engine.ci_profile(model, gi, ci["profile"]).sm
        weighted += ci_util(gpu, gi["id"], ci["id"], procs) * sm
        total += sm
    gi_sm = engine.gi_profile(model, gi["profile"]).sm
    return weighted / max(gi_sm, total, 1.0)


def gpu_util(model: ModelSpec, gpu: dict[str, Any]) -> float:
    """The whole GPU's SM activity (MIG: instances weighted by SMs; else the sum of processes)."""
    procs = engine.live_procs(gpu)  # once: checking a process's liveness reads /proc
    if not gpu["gis"]:
        return _util_of([p for p in procs if p.get("gi") is None])
    weighted = 0.0
    for gi in gpu["gis"]:
        weighted += gi_util(model, gpu, gi, procs) * engine.gi_profile(model, gi["profile"]).sm
    return weighted / max(model.sm, 1)


def metric(kind: str, util: float) -> float:
    """A GPM metric (percent) from an activity level."""
    return round(util * METRIC_RATIOS[kind], 3)
