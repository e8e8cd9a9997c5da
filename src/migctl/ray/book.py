"""The scheduler's books: which MIG device is claimed by whom, and the cluster as the policy sees it.

No Ray and no I/O here: the scheduler actor feeds it node views and claims, and asks it for
a free device, for the :class:`~migctl.core.ondemand.GpuRoom` list the placement policy
works on, and for the words that explain why a request is still waiting.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from migctl.core.geometry import GiProfile, Occupant
from migctl.core.ondemand import (
    Drain,
    GpuRoom,
    Slot,
    SlotState,
    free_slices_total,
    usable_free_slices,
    wanted_profile,
)
from migctl.ray.types import DeviceView, GpuView, InstanceView, MigRequest, NodeView

GpuKey = tuple[str, int]  # (node id, GPU index)


@dataclass
class Claim:
    claim_id: str
    uuid: str
    node_id: str
    kind: str  # task | actor
    label: str
    since: float  # time.time()
    shape: str = ""  # what was asked for (MigRequest.describe()), for the estimates
    bound_pid: int | None = None  # an actor's process, once it took its lease
    bound_at: float = 0.0


#: What a new device costs before anything was measured: a make on its node plus starting a
#: worker process for it (Ray starts one in about a second on an idle machine).
DEFAULT_NEW_DEVICE_S = 1.0


@dataclass
class Estimates:
    """What the scheduler learns as it goes (moving averages): how long a task holds a device, per
    profile asked for, and what a new device costs until a task can run on it (the node's make,
    seen from the scheduler, plus the dispatcher binding a worker process to it)."""

    run_s: dict[str, float] = field(default_factory=dict)
    make_s: float = DEFAULT_NEW_DEVICE_S / 2
    bind_s: float = DEFAULT_NEW_DEVICE_S / 2
    weight: float = 0.2  # of each new measurement

    def _mix(self, old: float, new: float) -> float:
        return (1 - self.weight) * old + self.weight * max(0.0, new)

    def ran(self, shape: str, seconds: float) -> None:
        old = self.run_s.get(shape)
        self.run_s[shape] = max(0.0, seconds) if old is None else self._mix(old, seconds)

    def made(self, seconds: float) -> None:
        self.make_s = self._mix(self.make_s, seconds)

    def bound(self, seconds: float) -> None:
        self.bind_s = self._mix(self.bind_s, seconds)

    @property
    def new_device_s(self) -> float:
        return self.make_s + self.bind_s

    def worth_making(self, shape: str, ahead: int, devices: int) -> bool:
        """Whether a request with ``ahead`` others of ``shape`` before it, and ``devices`` devices
        of that shape (busy ones free up, ones being made come up), gets one sooner by a new device."""
        return self.wait(shape, ahead, devices) > self.new_device_s

    def wait(self, shape: str, ahead: int, devices: int) -> float:
        """Seconds until a device of ``shape`` reaches the request with ``ahead`` others before it
        (infinite with no device, or before any task has finished)."""
        run = self.run_s.get(shape)
        if run is None and self.run_s:  # nothing learnt for this one yet: what the others' tasks took
            run = sum(self.run_s.values()) / len(self.run_s)
        if devices <= 0 or run is None:
            return float("inf")
        return (ahead + 1) * run / devices


@dataclass
class Books:
    views: dict[str, NodeView] = field(default_factory=dict)
    claims: dict[str, Claim] = field(default_factory=dict)
    by_uuid: dict[str, str] = field(default_factory=dict)  # MIG UUID -> claim id
    retiring: set[str] = field(default_factory=set)  # MIG UUIDs being destroyed
    busy_outside: dict[str, float] = field(default_factory=dict)  # UUID -> until: an executor met a held lease
    making: dict[GpuKey, list[Occupant]] = field(default_factory=dict)  # placements being created
    drains: dict[GpuKey, tuple[str, Drain]] = field(default_factory=dict)  # GPU -> (request id, drain)
    idle_since: dict[str, float] = field(default_factory=dict)  # UUID -> time.monotonic()
    estimates: Estimates = field(default_factory=Estimates)
    _index: dict[str, tuple[NodeView, GpuView, InstanceView, DeviceView]] = field(default_factory=dict)

    # -- devices ---------------------------------------------------------------------------

    def devices(self) -> Iterator[tuple[NodeView, GpuView, InstanceView, DeviceView]]:
        for node_id in sorted(self.views):
            view = self.views[node_id]
            for gpu in view.gpus:
                for inst in gpu.instances:
                    for dev in inst.devices:
                        yield view, gpu, inst, dev

    def device_state(self, dev: DeviceView) -> SlotState:
        claim_id = self.by_uuid.get(dev.uuid)
        if claim_id is not None:
            return "pinned" if self.claims[claim_id].kind == "actor" else "running"
        if dev.uuid in self.retiring:
            return "pinned"
        if self.busy_outside.get(dev.uuid, 0.0) > time.monotonic():
            return "pinned"
        if dev.holder_pid is not None and dev.holder_pid not in dev.executor_pids:
            return "pinned"
        return "idle"

    def instance_state(self, inst: InstanceView) -> SlotState:
        if not inst.devices:
            return "pinned"  # no MIG device: not ours to use or to remove
        states = {self.device_state(d) for d in inst.devices}
        if "pinned" in states:
            return "pinned"
        return "running" if "running" in states else "idle"

    def drained(self, node_id: str, gpu: int, gi_id: int, request_id: str) -> bool:
        """Whether GPU instance ``gi_id`` is held back for a drain of another request."""
        held = self.drains.get((node_id, gpu))
        return held is not None and held[0] != request_id and gi_id in held[1].blockers

    def idle_devices(self, req: MigRequest) -> list[tuple[NodeView, GpuView, InstanceView, DeviceView]]:
        """Idle MIG devices of the profile ``req`` means on their GPU, in node/GPU/instance order."""
        out = []
        for view, gpu, inst, dev in self.devices():
            if gpu.geometry is None or not self.wants(req, gpu, inst):
                continue
            if self.device_state(dev) == "idle" and not self.being_made(view.node_id, gpu.index, inst):
                out.append((view, gpu, inst, dev))
        return out

    def capacity(self, req: MigRequest) -> int:
        """Devices of the profile ``req`` means that will serve waiting requests: idle ones and
        those running tasks (they free up); not actors', retiring or held outside migctl.ray."""
        return sum(
            1
            for view, gpu, inst, dev in self.devices()
            if self.wants(req, gpu, inst)
            and self.device_state(dev) != "pinned"
            and not self.being_made(view.node_id, gpu.index, inst)
        )

    def being_made(self, node_id: str, gpu: int, inst: InstanceView) -> bool:
        """Whether the instance is one a make in flight is creating (its requester gets it, no one else)."""
        return any(o.placement == inst.placement for o in self.making.get((node_id, gpu), ()))

    def wants(self, req: MigRequest, gpu: GpuView, inst: InstanceView) -> bool:
        if gpu.geometry is None:
            return False
        if req.profile is not None:  # the common case, without resolving the profile
            return inst.profile.lower() == req.profile.lower()
        want = wanted_profile(gpu.geometry, req.profile, req.memory_mib)
        return want is not None and want.id == inst.profile_id

    def locate(self, uuid: str) -> tuple[NodeView, GpuView, InstanceView, DeviceView] | None:
        """Where device ``uuid`` is, in the node views (an index rebuilt when a view changes)."""
        if not self._index:
            self._index = {entry[3].uuid: entry for entry in self.devices()}
        return self._index.get(uuid)

    def update(self, view: NodeView) -> None:
        """Take a node's newer view."""
        self.views[view.node_id] = view
        self._index = {}

    def drop(self, node_id: str) -> None:
        self.views.pop(node_id, None)
        self._index = {}

    # -- the policy's view ------------------------------------------------------------------

    def rooms(self, request_id: str) -> list[GpuRoom]:
        """Every MIG-enabled GPU as a room, with others' creations and drains reserved."""
        now = time.monotonic()
        out = []
        for node_id in sorted(self.views):
            for gpu in self.views[node_id].gpus:
                if gpu.geometry is None or not gpu.mig_enabled:
                    continue
                key: GpuKey = (node_id, gpu.index)
                slots = []
                for inst in gpu.instances:
                    state = self.instance_state(inst)
                    if state == "idle" and self.drained(node_id, gpu.index, inst.gi_id, request_id):
                        state = "running"  # held for another request: not ours to reshape
                    idle_for = min((now - self.idle_since.get(d.uuid, now) for d in inst.devices), default=0.0)
                    rank = (0 if inst.on_demand else 1000) - int(min(idle_for, 999))
                    slots.append(Slot(inst.gi_id, inst.profile_id, inst.placement, state, rank))
                reserved = list(self.making.get(key, ()))
                held = self.drains.get(key)
                if held is not None and held[0] != request_id:
                    reserved.append(Occupant(held[1].profile_id, held[1].placement))
                out.append(GpuRoom(key, gpu.geometry, tuple(slots), tuple(reserved)))
        return out

    def offered(self, req: MigRequest) -> list[GiProfile]:
        """The profiles the request resolves to on the GPUs of the cluster (empty: none offers it)."""
        found: dict[int, GiProfile] = {}
        for view in self.views.values():
            for gpu in view.gpus:
                if gpu.geometry is None:
                    continue
                p = wanted_profile(gpu.geometry, req.profile, req.memory_mib)
                if p is not None:
                    found.setdefault(p.id, p)
        return list(found.values())

    def all_profiles(self) -> list[str]:
        names: dict[str, None] = {}
        for view in self.views.values():
            for gpu in view.gpus:
                for p in gpu.geometry.profiles if gpu.geometry else ():
                    names.setdefault(p.name, None)
        return list(names)

    def fragmented(self, req: MigRequest, rooms: list[GpuRoom]) -> bool:
        """Enough usable memory slices are free in aggregate, yet no GPU has a free placement for it."""
        free, need = usable_free_slices(rooms, lambda geo: wanted_profile(geo, req.profile, req.memory_mib))
        return need > 0 and free >= need

    # -- words -------------------------------------------------------------------------------

    def explain(self, req: MigRequest, waited_s: float) -> str:
        """Why no device could be given: what exists, who holds it, and what kept one from being made."""
        want = req.describe()
        parts: list[str] = []
        states: Counter[str] = Counter()
        holders: list[str] = []
        for view, gpu, inst, dev in self.devices():
            if gpu.geometry is None:
                continue
            p = wanted_profile(gpu.geometry, req.profile, req.memory_mib)
            if p is None or p.id != inst.profile_id:
                continue
            claim_id = self.by_uuid.get(dev.uuid)
            if claim_id is not None:
                c = self.claims[claim_id]
                states[f"running {c.kind}s"] += 1
                if len(holders) < 3:
                    holders.append(f"{dev.uuid} on node {view.node_id[:8]} GPU {gpu.index}: {c.kind} {c.label}")
            elif dev.holder:
                states["held outside migctl.ray"] += 1
                if len(holders) < 3:
                    holders.append(f"{dev.uuid} on node {view.node_id[:8]} GPU {gpu.index}: {dev.holder}")
            else:
                states["idle but held back for a larger request"] += 1
        total = sum(states.values())
        if total:
            counts = ", ".join(f"{n} {what}" for what, n in states.items())
            parts.append(f"{total} {want} device(s) exist and none is free ({counts}: " + "; ".join(holders) + ")")
        else:
            parts.append(f"no {want} MIG device exists")
        if not req.dynamic:
            parts.append("dynamic=False, so none is made")
        else:
            rooms = self.rooms("")
            free = free_slices_total(rooms)
            mig_gpus = len(rooms)
            disabled = sum(1 for v in self.views.values() for g in v.gpus if g.geometry and not g.mig_enabled)
            line = f"no MIG-enabled GPU has room for one ({mig_gpus} GPU(s) across {len(self.views)} node(s)"
            line += f", {free} memory slice(s) free in all, scattered" if free else ", every memory slice in use"
            if disabled:
                line += f"; {disabled} GPU(s) have MIG disabled: enable it with migctl cluster apply"
            parts.append(line + ") and no idle instance can be reshaped without touching a busy one")
        return f"no MIG device for {want} within {waited_s:.1f} s: " + "; ".join(parts)

    def node_of_key(self, key: Hashable) -> tuple[str, int]:
        if not isinstance(key, tuple) or len(key) != 2:
            raise TypeError(f"not a (node, GPU) key: {key!r}")
        return str(key[0]), int(key[1])


@dataclass
class Stats:
    """What the scheduler did since the last reset (``Scheduler.get_stats``; the benchmark reads it)."""

    granted: int = 0
    made: int = 0
    reshaped: int = 0
    reclaimed: int = 0
    timed_out: int = 0
    fragmented: int = 0  # requests that waited while enough slices were free in aggregate
    waits: list[float] = field(default_factory=list)
    make_failures: list[str] = field(default_factory=list)
    changes: list[tuple[tuple[str, float], ...]] = field(default_factory=list)  # each node change's phases


def stats_summary(stats: Stats) -> dict[str, Any]:
    waits = sorted(stats.waits)
    phases: dict[str, list[float]] = {}
    for change in stats.changes:
        for name, seconds in change:
            phases.setdefault(name, []).append(seconds)
    return {
        **{k: v for k, v in vars(replace(stats)).items() if k not in ("waits", "make_failures", "changes")},
        "node_changes": len(stats.changes),
        "change_s_mean": {name: round(sum(v) / len(v), 3) for name, v in phases.items()},
        "mean_wait_s": sum(waits) / len(waits) if waits else 0.0,
        "max_wait_s": waits[-1] if waits else 0.0,
        "make_failures": stats.make_failures[-5:],
    }
