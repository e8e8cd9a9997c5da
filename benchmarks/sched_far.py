"""FAR's setting (arXiv 2507.13601): a batch of moldable tasks on one MIG GPU, minimising the
makespan including reconfiguration, and the exhaustive optimum it is compared with.

A *moldable* task can run on any profile it fits; its speed grows with the compute slices as
Amdahl's law says for its parallel fraction. The synthetic task sets here are our own (FAR's
are Rodinia kernels on an A30): run time on 1 compute slice uniform in [5, 30] s, parallel
fraction uniform in [0.3, 1.0], and one task in four needing more memory than a 1g instance
has.

:func:`optimum` searches every schedule in which tasks are started one after another in some
order, each on some profile and placement, as soon as those slices are free, with the
reconfiguration the simulator charges (destroy what is in the way, create, one call after
another on the GPU). With zero reconfiguration cost the best such schedule is a true optimum
(start any optimal schedule's tasks in start-time order with its placements: none starts
later). :func:`list_makespan` computes one such schedule directly; the tests check it against
the trace simulator running :class:`sched_policies.FixedList`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from migctl.core.geometry import GiProfile, GpuGeometry, Placement
from migctl.core.scheduler import ReconfigCost
from sched_policies import base_profiles
from tracesim import TraceJob


def far_tasks(seed: int, n: int, geometry: GpuGeometry) -> list[TraceJob]:
    """``n`` synthetic moldable tasks, all queued at time 0."""
    rng = random.Random(seed)
    smallest = min(base_profiles(geometry), key=lambda p: p.memory_mib)
    slices = sorted({p.slice_count for p in base_profiles(geometry)})
    tasks = []
    for i in range(n):
        t1 = rng.uniform(5.0, 30.0)
        f = rng.uniform(0.3, 1.0)
        speeds = tuple((f"{k}g", round(1.0 / ((1.0 - f) + f / k), 4)) for k in slices)
        memory = smallest.memory_mib + 1024 if rng.random() < 0.25 else smallest.memory_mib // 2
        tasks.append(TraceJob(f"t{i}", 0.0, round(t1, 3), memory, speeds, model=f"f={f:.2f}"))
    return tasks


@dataclass
class _Inst:
    profile_id: int
    placement: Placement
    ready: float
    busy_until: float


def _choices(task: TraceJob, profiles: Sequence[GiProfile]) -> list[tuple[int, Placement, float]]:
    job = task.as_job()
    out: list[tuple[int, Placement, float]] = []
    for p in profiles:
        d = job.duration_on(p)
        if d is not None:
            out.extend((p.id, q, d) for q in p.placements)
    return out


def list_makespan(
    geometry: GpuGeometry,
    tasks: Sequence[TraceJob],
    schedule: Sequence[tuple[str, int, Placement]],
    cost: ReconfigCost,
) -> float:
    """Makespan of starting ``schedule``'s (task, profile ID, placement) strictly in order."""
    by_name = {t.name: t for t in tasks}
    insts: list[_Inst] = []
    decided = lane = 0.0
    end = 0.0
    for name, pid, q in schedule:
        prof = geometry.by_id(pid)
        d = by_name[name].as_job().duration_on(prof)
        assert d is not None, (name, prof.name)
        decided, lane, finish = _place(insts, pid, q, d, decided, lane, cost)
        end = max(end, finish)
    return end


def _place(
    insts: list[_Inst], pid: int, q: Placement, d: float, decided: float, lane: float, cost: ReconfigCost
) -> tuple[float, float, float]:
    """Start one task after the previous ones; mutates ``insts``. Returns (decided, lane, finish)."""
    in_way = [i for i in insts if i.placement.overlaps(q)]
    decided = max([decided, *(i.busy_until for i in in_way)])
    same = [i for i in in_way if i.profile_id == pid and i.placement == q]
    if same:
        inst = same[0]
        start = max(decided, inst.ready)
    else:
        for i in in_way:
            insts.remove(i)
        ready = max(decided, lane) + len(in_way) * cost.destroy_s(1) + cost.create_s(1)
        lane = ready
        inst = _Inst(pid, q, ready, 0.0)
        insts.append(inst)
        start = ready
    inst.busy_until = start + d
    return decided, lane, inst.busy_until


def optimum(
    geometry: GpuGeometry, tasks: Sequence[TraceJob], cost: ReconfigCost
) -> tuple[float, list[tuple[str, int, Placement]], int]:
    """The best strict-order schedule: (makespan, schedule, nodes searched). Branch and bound."""
    profiles = base_profiles(geometry)
    span = max(1, geometry.span)
    choices = {t.name: _choices(t, profiles) for t in tasks}
    least_area = {n: min(d * q.size / span for _, q, d in cs) for n, cs in choices.items()}
    least_time = {n: min(d for _, _, d in cs) for n, cs in choices.items()}
    signature = {n: tuple(round(d, 9) for _, _, d in cs) for n, cs in choices.items()}
    best: list[float | list[tuple[str, int, Placement]]] = [float("inf"), []]
    nodes = 0
    names = [t.name for t in tasks]

    def dfs(
        insts: list[_Inst],
        decided: float,
        lane: float,
        end: float,
        area: float,
        left: list[str],
        path: list[tuple[str, int, Placement]],
    ) -> None:
        nonlocal nodes
        nodes += 1
        if not left:
            if end < best[0]:  # type: ignore[operator]
                best[0], best[1] = end, list(path)
            return
        bound = max(
            end,
            decided + max(least_time[n] for n in left),
            area + sum(least_area[n] for n in left),
        )
        if bound >= best[0]:  # type: ignore[operator]
            return
        seen: set[tuple[tuple[float, ...], int, Placement]] = set()
        for n in left:
            for pid, q, d in choices[n]:
                key = (signature[n], pid, q)  # identical tasks are interchangeable
                if key in seen:
                    continue
                seen.add(key)
                copy = [_Inst(i.profile_id, i.placement, i.ready, i.busy_until) for i in insts]
                dec, ln, finish = _place(copy, pid, q, d, decided, lane, cost)
                rest = [m for m in left if m != n]
                path.append((n, pid, q))
                dfs(copy, dec, ln, max(end, finish), area + d * q.size / span, rest, path)
                path.pop()

    dfs([], 0.0, 0.0, 0.0, 0.0, names, [])
    return float(best[0]), list(best[1]), nodes  # type: ignore[arg-type]
