"""Fragmentation of on-demand placement, replayed deterministically: migctl's placement against first-fit.

The issue's measure is "requests that waited while enough free slices existed in aggregate".
In the live Ray runs (bench_ray.py) instances are kept and reused, so free slices are rare and
that count is small and noisy. Here the placement policy alone (``core.ondemand.place``, the
same function the scheduler calls) is replayed on one trace for both policies, the way a
create-per-request allocator runs (NVIDIA's DRA driver): every request gets a new GPU instance
of its profile, which is destroyed when its work ends, in whatever order that happens.

A request that cannot be placed waits (later requests may pass it); it counts as *fragmented*
if, while it waited, the GPUs had enough free memory slices that its profile could use in
aggregate, just not together on one GPU.

    python benchmarks/replay_placement.py            # 4 nodes x 8 H20, 3 traces of 1,500 requests
"""

from __future__ import annotations

import heapq
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from migctl.core.geometry import GiProfile, GpuGeometry
from migctl.core.ondemand import GpuRoom, Policy, Slot, place, usable_free_slices
from migctl.device.simulated import model_geometry

MIX = (("1g.12gb", 0.60), ("2g.24gb", 0.25), ("3g.48gb", 0.10), ("7g.96gb", 0.05))


@dataclass(frozen=True)
class Request:
    arrives: float
    profile: str
    seconds: float


@dataclass(frozen=True)
class Replay:
    requests: int
    fragmented: Counter[str]  # per profile: requests that waited while enough slices were free in aggregate
    waited: Counter[str]  # per profile: requests that waited at all
    mean_wait: float  # in units of the mean run time

    @property
    def fragmented_total(self) -> int:
        return sum(self.fragmented.values())


def trace(n: int, load: float, seed: int, geometry: GpuGeometry, gpus: int) -> list[Request]:
    """``n`` requests of the mix arriving as a Poisson process that offers ``load`` x the compute
    slices of ``gpus`` GPUs; run times are exponential with mean 1."""
    rnd = random.Random(seed)
    names = [m for m, _ in MIX]
    weights = [w for _, w in MIX]
    mean_slices = sum(geometry.by_name(m).slice_count * w for m, w in MIX)
    capacity = gpus * max(p.slice_count for p in geometry.profiles)
    rate = load * capacity / mean_slices
    t, out = 0.0, []
    for _ in range(n):
        t += rnd.expovariate(rate)
        out.append(Request(t, rnd.choices(names, weights)[0], rnd.expovariate(1.0)))
    return out


def replay(policy: Policy, requests: Sequence[Request], geometry: GpuGeometry, gpus: int) -> Replay:
    slots: list[dict[int, Slot]] = [{} for _ in range(gpus)]
    rooms = [GpuRoom(i, geometry) for i in range(gpus)]
    events: list[tuple[float, int, int, int]] = [(r.arrives, 1, i, -1) for i, r in enumerate(requests)]
    heapq.heapify(events)
    waiting: list[tuple[int, float]] = []
    fragmented: Counter[str] = Counter()
    waited: Counter[str] = Counter()
    flagged: set[int] = set()
    waits: list[float] = []
    next_gi = 0

    def try_place(i: int, since: float, now: float) -> bool:
        nonlocal next_gi
        profile = requests[i].profile

        def want(g: GpuGeometry) -> GiProfile | None:
            return g.find(profile)

        made = place(rooms, want, policy)
        if made is None:
            if i not in flagged:
                free, need = usable_free_slices(rooms, want)
                if need and free >= need:
                    flagged.add(i)
                    fragmented[profile] += 1
            return False
        gpu = next(k for k, room in enumerate(rooms) if room.key == made.key)
        next_gi += 1
        slots[gpu][next_gi] = Slot(next_gi, made.profile_id, made.placement, "running")
        rooms[gpu] = GpuRoom(gpu, geometry, tuple(slots[gpu].values()))
        waits.append(now - since)
        heapq.heappush(events, (now + requests[i].seconds, 0, gpu, next_gi))
        return True

    while events:
        now, kind, a, b = heapq.heappop(events)
        if kind == 1:  # an arrival: only it can be placed now (nothing was freed)
            if not try_place(a, now, now):
                waited[requests[a].profile] += 1
                waiting.append((a, now))
            continue
        del slots[a][b]  # a departure: its instance is destroyed; every waiting request tries, oldest first
        rooms[a] = GpuRoom(a, geometry, tuple(slots[a].values()))
        waiting = [(i, since) for i, since in waiting if not try_place(i, since, now)]
    return Replay(len(requests), fragmented, waited, sum(waits) / len(waits) if waits else 0.0)


def compare(
    n: int = 1500, load: float = 0.9, seeds: Sequence[int] = (1, 2, 3), model: str = "h20", gpus: int = 32
) -> dict[Policy, list[Replay]]:
    geometry = model_geometry(model)
    out: dict[Policy, list[Replay]] = {"migctl": [], "first-fit": []}
    for seed in seeds:
        requests = trace(n, load, seed, geometry, gpus)
        for policy in out:
            out[policy].append(replay(policy, requests, geometry, gpus))
    return out


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    n, seeds = (400, (1, 2)) if quick else (1500, (1, 2, 3))
    results = compare(n=n, seeds=seeds)
    for policy, runs in results.items():
        total = Counter[str]()
        for r in runs:
            total.update(r.fragmented)
        print(policy, sum(total.values()), dict(total))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
