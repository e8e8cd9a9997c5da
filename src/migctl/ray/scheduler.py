"""The cluster scheduler: one detached async actor that hands out MIG devices across Ray nodes.

A request (:class:`MigRequest`) waits in one FIFO queue until it gets a :class:`Grant`:

1. an idle device of its profile on any node; else
2. (``dynamic``) a new instance, placed by :func:`migctl.core.ondemand.place` (best fit,
   planner placement, or ``first-fit`` for comparison) and made by that node's agent, first
   on free slices, then by reshaping idle instances (never a busy one); else
3. it waits. Later requests may pass it (backfill); once it has waited ``drain_after_s`` it
   may hold back one GPU's blocking instances for itself (a drain), so a large request is
   not starved by a stream of small ones. At its timeout it fails with
   :class:`MigUnavailableError` saying what was missing.

Claims end with :meth:`release` (tasks), or when an actor's lease is seen free. Every
``poll_s`` the scheduler joins new nodes (starting their agents), drops dead ones, refreshes
each node's view, reclaims instances made on demand that stayed idle ``reclaim_after_s``,
and retries what waits. It keeps no state that matters across a restart: claims are
re-learnt from leases, and the nodes' own state is the agents'.

Over 400 lines because it is one actor's event loop: queueing, placing, batching the makes
per node, claims and reclaiming all work on the same books between two awaits.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from migctl.core.ondemand import Creation, drain_target, place, wanted_profile
from migctl.ray.book import Books, Claim, Estimates, GpuKey, Stats, stats_summary
from migctl.ray.errors import MigRequestError, MigUnavailableError
from migctl.ray.types import Ask, ChangeResult, DeviceRef, Grant, MigRequest, NodeView, SchedulerConfig


@dataclass(eq=False)  # compared by identity: the queue is searched on every grant
class _Pending:
    request_id: str
    req: MigRequest
    enqueued: float  # time.monotonic()
    future: asyncio.Future[Grant]
    making: bool = False
    retry_at: float = 0.0
    fragmented: bool = False
    failures: list[str] = field(default_factory=list)

    def shape(self) -> tuple[Any, ...]:
        return (self.req.profile, self.req.memory_mib, self.req.dynamic)


class _Supply:
    """How soon each waiting shape gets a device without a new instance (one scheduling round).

    A request is worth a new instance only if the devices of its profile (the busy ones free
    up, the ones being made come up) would take longer to reach it than a new device takes to
    be made and get a worker: ``(requests ahead + 1) x seconds a task holds a device / devices``
    against :attr:`Estimates.new_device_s`. With no device, or nothing learnt yet about how long
    its tasks run, it always is. This is what keeps a burst of short tasks on the devices it has
    (making and starting a worker for a new one costs more than waiting a moment) and sizes a
    profile's devices to its queue.
    """

    def __init__(self, estimates: Estimates, devices: dict[tuple[Any, ...], int]) -> None:
        self.estimates = estimates
        self.devices = devices
        self.ahead: dict[tuple[Any, ...], int] = {}

    def worth_making(self, p: _Pending) -> bool:
        shape = p.shape()
        ahead = self.ahead.get(shape, 0)
        self.ahead[shape] = ahead + 1
        return self.estimates.worth_making(p.req.describe(), ahead, self.devices.get(shape, 0))

    def add(self, p: _Pending) -> None:
        """``p`` gets a new device: one more for the requests of its shape behind it."""
        self.devices[p.shape()] = self.devices.get(p.shape(), 0) + 1


class Scheduler:
    """The actor's class (started by :func:`migctl.ray.control.ensure_scheduler`)."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self.books = Books()
        self.agents: dict[str, Any] = {}
        self.pending: list[_Pending] = []
        self.stats = Stats()
        self._ids = itertools.count(1)
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._last_poll = 0.0
        self._reclaiming: set[GpuKey] = set()
        self._batch: dict[str, list[tuple[_Pending, Creation, frozenset[str]]]] = {}
        self._viewing: set[str] = set()

    # -- the API ---------------------------------------------------------------------------

    async def start(self, config: SchedulerConfig | None = None, wait_s: float = 60.0) -> list[NodeView]:
        """Configure, start an agent on every node, and return every node's view."""
        if config is not None:
            self.config = config
        self._ensure_loop()
        await self._poll(first_wait_s=wait_s, wait=True)
        return [self.books.views[k] for k in sorted(self.books.views)]

    async def acquire(self, req: MigRequest) -> Grant:
        """Wait for a device for ``req`` (see the module's docstring); raises with what was missing."""
        self._ensure_loop()
        if not self.books.views:
            await self._poll(first_wait_s=60.0, wait=True)
        if not self.books.offered(req):
            offered = ", ".join(self.books.all_profiles()) or "none (no MIG-capable GPU)"
            raise MigRequestError(
                f"no GPU in the Ray cluster offers {req.describe()}",
                hint=f"profiles the cluster's GPUs offer: {offered}",
            )
        loop = asyncio.get_running_loop()
        p = _Pending(f"r{next(self._ids)}", req, time.monotonic(), loop.create_future())
        self.pending.append(p)
        if len(self.pending) == 1:
            self._schedule()  # nothing waits: answer at once
        else:
            self._kick()
        try:
            return await p.future
        finally:
            if p in self.pending:
                self.pending.remove(p)
                self._drop_drains(p.request_id)

    def release(self, claim_id: str, outcome: str = "done", bind_s: float | None = None) -> None:
        """End a claim (a task finished, failed, or its worker died).

        ``bind_s``: how long the dispatcher took to get a worker process onto a device it had
        none on (part of what a new device costs, :class:`~migctl.ray.book.Estimates`).
        """
        claim = self.books.claims.pop(claim_id, None)
        if claim is None:
            return
        if claim.kind == "task" and outcome == "done":
            self.books.estimates.ran(claim.shape, time.time() - claim.since - (bind_s or 0.0))
        if bind_s is not None:
            self.books.estimates.bound(bind_s)
        self.books.by_uuid.pop(claim.uuid, None)
        self.books.idle_since[claim.uuid] = time.monotonic()
        if outcome == "busy":  # a lease held outside migctl.ray: leave the device until the next view
            self.books.busy_outside[claim.uuid] = time.monotonic() + max(2.0, 2 * self.config.poll_s)
        elif self._hand_on(claim.uuid):
            return  # the common case under load: no scheduling round needed
        self._kick()

    def _hand_on(self, uuid: str) -> bool:
        """Give a device just released to the oldest request that wants it (the fast path)."""
        found = self.books.locate(uuid)
        if found is None:
            return False
        view, gpu, inst, dev = found
        if self.books.device_state(dev) != "idle" or self.books.being_made(view.node_id, gpu.index, inst):
            return False
        for p in self.pending:
            if p.future.done() or p.making or not self.books.wants(p.req, gpu, inst):
                continue
            if self.books.drained(view.node_id, gpu.index, inst.gi_id, p.request_id):
                continue
            self._grant(p, view.node_id, dev.ref, made=False)
            return True
        return False

    def actor_bound(self, claim_id: str, pid: int) -> None:
        """An actor took its device's lease: from now on its claim lasts as long as the lease."""
        claim = self.books.claims.get(claim_id)
        if claim is not None:
            claim.bound_pid, claim.bound_at = pid, time.time()

    def views(self) -> list[NodeView]:
        return [self.books.views[k] for k in sorted(self.books.views)]

    def forget(self) -> None:
        """Forget what was learnt about task and make times (benchmarks compare runs from the same start)."""
        self.books.estimates = Estimates()

    def get_stats(self, reset: bool = False) -> Stats:
        out = self.stats
        if reset:
            self.stats = Stats()
        return out

    def claims(self) -> list[Claim]:
        return list(self.books.claims.values())

    def queue_length(self) -> int:
        return len(self.pending)

    # -- the loop ----------------------------------------------------------------------------

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._wake = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._run())

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(0.25, self.config.poll_s))
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                if time.monotonic() - self._last_poll >= self.config.poll_s:
                    await self._poll()
                self._expire()
                self._reclaim()
                self._schedule()
            except Exception as exc:
                self.stats.make_failures.append(f"scheduler round: {type(exc).__name__}: {exc}")

    async def _poll(self, first_wait_s: float = 10.0, wait: bool = False) -> None:
        """Join new nodes, drop dead ones, refresh every view, and end actor claims whose lease is free."""
        import ray

        from migctl.ray.control import start_agent

        self._last_poll = time.monotonic()
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}  # type: ignore[no-untyped-call]
        for node_id in list(self.agents):
            if node_id not in alive:
                self._drop_node(node_id)
        for node_id in alive - set(self.agents):
            self.agents[node_id] = start_agent(node_id)
        fetches = [
            asyncio.get_running_loop().create_task(self._fetch(node_id, agent, first_wait_s))
            for node_id, agent in self.agents.items()
            if node_id not in self._viewing
        ]
        if wait and fetches:  # the first views: the caller needs them
            await asyncio.wait(fetches)
        self._check_claims()

    async def _fetch(self, node_id: str, agent: Any, first_wait_s: float) -> None:
        """Refresh one node's view in the background (a busy agent must not hold up scheduling)."""
        self._viewing.add(node_id)
        try:
            wait = first_wait_s if node_id not in self.books.views else max(10.0, 10 * self.config.poll_s)
            self._update(await asyncio.wait_for(agent.view.remote(), timeout=wait))
        except Exception as exc:
            self.stats.make_failures.append(f"view of node {node_id[:8]}: {type(exc).__name__}: {exc}")
        finally:
            self._viewing.discard(node_id)

    def _check_claims(self) -> None:
        now = time.time()
        grace = self.config.actor_start_timeout_s
        for claim in list(self.books.claims.values()):
            view = self.books.views.get(claim.node_id)
            dev = next((d for d in view.devices() if d.uuid == claim.uuid), None) if view else None
            if dev is None and view is not None:
                self.release(claim.claim_id, "gone")
            elif claim.kind == "task":
                # A task's executor holds the lease while it runs; a claim nobody leased for the
                # whole grace period was abandoned (its dispatcher died): give the device back.
                seen_free = view is not None and dev is not None and dev.holder_pid is None
                if seen_free and view is not None and view.taken_at > claim.since + grace:
                    self.release(claim.claim_id, "abandoned")
            elif claim.bound_pid is not None and view is not None and view.taken_at > claim.bound_at:
                if dev is not None and dev.holder_pid != claim.bound_pid:
                    self.release(claim.claim_id, "actor ended")
            elif claim.bound_pid is None and now - claim.since > self.config.actor_start_timeout_s:
                self.release(claim.claim_id, "actor never started")

    def _update(self, view: NodeView) -> None:
        known = self.books.views.get(view.node_id)
        if known is not None and known.taken_at > view.taken_at:
            return  # read before a change whose own, newer view is already here
        self.books.update(view)
        now = time.monotonic()
        for dev in view.devices():
            self.books.idle_since.setdefault(dev.uuid, now)
        self._kick()

    def _drop_node(self, node_id: str) -> None:
        self.agents.pop(node_id, None)
        self.books.drop(node_id)
        for claim in [c for c in self.books.claims.values() if c.node_id == node_id]:
            self.release(claim.claim_id, "node died")
        for key in [k for k in self.books.drains if k[0] == node_id]:
            del self.books.drains[key]

    def _expire(self) -> None:
        now = time.monotonic()
        for p in list(self.pending):
            t = p.req.timeout_s
            if t is None or now - p.enqueued < t or p.future.done():
                continue
            self.pending.remove(p)
            self._drop_drains(p.request_id)
            self.stats.timed_out += 1
            why = self.books.explain(p.req, now - p.enqueued)
            if p.failures:
                why += f"; the last attempt to make one failed: {p.failures[-1]}"
            p.future.set_exception(
                MigUnavailableError(why, hint="raise timeout=, free or add GPUs, or allow dynamic=True")
            )

    def _drop_drains(self, request_id: str) -> None:
        for key in [k for k, (rid, _) in self.books.drains.items() if rid == request_id]:
            del self.books.drains[key]

    # -- placing -----------------------------------------------------------------------------

    def _schedule(self) -> None:
        """One round: first every waiting request that an idle device fits (oldest first); then,
        for those left, drains and new instances. Only instances still idle after the first
        part are reshaped, so nothing a waiting request could use is destroyed (no thrashing)."""
        now = time.monotonic()
        idle: dict[tuple[Any, ...], list[Any]] = {}  # shape -> idle devices it can use, found once per round
        left: list[_Pending] = []
        for p in list(self.pending):
            if p.future.done() or p.making or now < p.retry_at:
                continue
            shape = (p.req.profile, p.req.memory_mib)
            if shape not in idle:
                idle[shape] = self.books.idle_devices(p.req)
            candidates = idle[shape]
            chosen = next((c for c in candidates
                           if not self.books.drained(c[0].node_id, c[1].index, c[2].gi_id, p.request_id)), None)
            if chosen is not None:
                candidates.remove(chosen)
                self._grant(p, chosen[0].node_id, chosen[3].ref, made=False)
            elif p.req.dynamic:
                left.append(p)
        stuck: set[tuple[Any, ...]] = set()  # shapes no instance could be made for in this round
        drains_left = self._drain_budget()
        supply = self._supply(left)
        for p in left:
            if p.shape() in stuck or p.future.done():
                continue
            if self._try_drain(p):
                continue
            if not supply.worth_making(p):  # a device of its profile will be free before a new one is ready
                continue
            rooms = self.books.rooms(p.request_id)

            def want(geometry: Any, req: MigRequest = p.req) -> Any:
                return wanted_profile(geometry, req.profile, req.memory_mib)

            creation = place(rooms, want, self.config.placement, reshape=True)
            if creation is not None:
                self._make(p, creation)
                supply.add(p)
                continue
            if not p.fragmented and self.books.fragmented(p.req, rooms):
                p.fragmented = True
                self.stats.fragmented += 1
            if drains_left > 0 and now - p.enqueued >= self.config.drain_after_s:
                drain = drain_target(rooms, want)
                if drain is not None:
                    node_id, gpu = self.books.node_of_key(drain.key)
                    self.books.drains[(node_id, gpu)] = (p.request_id, drain)
                    drains_left -= 1
                    if self._try_drain(p):
                        supply.add(p)
                        continue
            stuck.add(p.shape())
        self._send_batches()

    def _supply(self, left: list[_Pending]) -> _Supply:
        """For each shape waiting in this round: its devices (busy ones will free), its makes in flight."""
        devices: dict[tuple[Any, ...], int] = {}
        for p in self.pending:
            shape = p.shape()
            devices.setdefault(shape, self.books.capacity(p.req))
            if p.making:
                devices[shape] += 1
        return _Supply(self.books.estimates, devices)

    def _drain_budget(self) -> int:
        gpus = sum(len(v.gpus) for v in self.books.views.values())
        limit = self.config.max_drains or max(1, gpus // 4)
        return max(0, limit - len(self.books.drains))

    def _try_drain(self, p: _Pending) -> bool:
        """If ``p`` holds a drained GPU whose blockers are all idle now, reshape it for ``p``."""
        for key, (rid, drain) in list(self.books.drains.items()):
            if rid != p.request_id:
                continue
            view = self.books.views.get(key[0])
            gpu = next((g for g in view.gpus if g.index == key[1]), None) if view else None
            if gpu is None:
                del self.books.drains[key]
                continue
            states = {i.gi_id: self.books.instance_state(i) for i in gpu.instances if i.gi_id in drain.blockers}
            if any(s == "pinned" for s in states.values()):
                del self.books.drains[key]  # someone else took it: give it up, find another later
                continue
            if all(s == "idle" for s in states.values()):
                del self.books.drains[key]
                present = tuple(gi for gi in drain.blockers if gi in states)
                self._make(p, Creation(key, drain.profile_id, drain.placement, present))
                return True
        return False

    def _grant(self, p: _Pending, node_id: str, dev: DeviceRef, *, made: bool) -> None:
        if dev.uuid in self.books.by_uuid:  # never two claims on one device
            p.failures.append(f"{dev.uuid} was claimed already")
            p.retry_at = time.monotonic() + 0.1
            return
        claim = Claim(f"c{next(self._ids)}", dev.uuid, node_id, p.req.kind, p.req.label, time.time(),
                      p.req.describe())
        self.books.claims[claim.claim_id] = claim
        self.books.by_uuid[dev.uuid] = claim.claim_id
        waited = time.monotonic() - p.enqueued
        self.stats.granted += 1
        self.stats.waits.append(waited)
        if p in self.pending:
            self.pending.remove(p)
        self._drop_drains(p.request_id)
        p.future.set_result(Grant(claim.claim_id, node_id, dev, waited, made))

    def _make(self, p: _Pending, creation: Creation) -> None:
        """Reserve ``creation`` for ``p`` now; the node is asked at the end of the round, with the
        other creations of that round on the same node, as one apply."""
        node_id, gpu = self.books.node_of_key(creation.key)
        if node_id not in self.agents:
            return
        from migctl.core.geometry import Occupant

        key: GpuKey = (node_id, gpu)
        view = self.books.views[node_id]
        gone = {d.uuid for g in view.gpus if g.index == gpu for i in g.instances if i.gi_id in creation.destroy
                for d in i.devices}
        claimed = gone & set(self.books.by_uuid)
        if claimed:  # never: the policy reshapes idle instances only (the agent would refuse it anyway)
            self.stats.make_failures.append(f"scheduler: asked to destroy claimed device(s) {sorted(claimed)}")
        self.books.making.setdefault(key, []).append(Occupant(creation.profile_id, creation.placement))
        self.books.retiring |= gone
        p.making = True
        self._batch.setdefault(node_id, []).append((p, creation, frozenset(gone)))

    def _send_batches(self) -> None:
        batches, self._batch = self._batch, {}
        for node_id, items in batches.items():
            asyncio.get_running_loop().create_task(self._make_on(node_id, items))

    async def _make_on(self, node_id: str, items: list[tuple[_Pending, Creation, frozenset[str]]]) -> None:
        from migctl.core.geometry import Occupant

        agent = self.agents[node_id]
        asks = [Ask(self.books.node_of_key(c.key)[1], c.profile_id, c.placement, c.destroy) for _, c, _ in items]
        labels = sorted({p.req.describe() for p, _, _ in items})
        what = f"migctl.ray: make {len(items)} instance(s) on demand ({', '.join(labels)})"
        started = time.monotonic()
        try:
            result: ChangeResult = await agent.make_many.remote(asks, what)
            self._update(result.view)
            self.books.estimates.made(time.monotonic() - started)
            self.stats.changes.append(result.phases)
            outcomes = [(m.device is not None, m.device, m.why) for m in result.made]
        except Exception as exc:
            outcomes = [(False, None, f"{type(exc).__name__}: {exc}")] * len(items)
        for (p, creation, gone), (ok, device, why) in zip(items, outcomes, strict=True):
            key = self.books.node_of_key(creation.key)
            reserved = self.books.making.get(key, [])
            spot = Occupant(creation.profile_id, creation.placement)
            if spot in reserved:
                reserved.remove(spot)
            self.books.retiring -= gone
            p.making = False
            if ok and device is not None:
                self.stats.made += 1
                self.stats.reshaped += bool(creation.destroy)
                if not p.future.done():
                    self._grant(p, node_id, device, made=True)
            else:
                p.failures.append(why)
                self.stats.make_failures.append(why)
                p.retry_at = time.monotonic() + 0.5
        self._kick()

    # -- reclaiming -----------------------------------------------------------------------

    def _reclaim(self) -> None:
        limit = self.config.reclaim_after_s
        now = time.monotonic()
        if limit < 0:
            return
        waiting = {wanted for p in self.pending for wanted in [p.req.profile]}
        for node_id, view in list(self.books.views.items()):
            agent = self.agents.get(node_id)
            for gpu in view.gpus:
                key = (node_id, gpu.index)
                if self.books.making.get(key) or key in self.books.drains or key in self._reclaiming or agent is None:
                    continue
                idle = [
                    i for i in gpu.instances
                    if i.on_demand and self.books.instance_state(i) == "idle"
                    and all(now - self.books.idle_since.get(d.uuid, now) >= limit for d in i.devices)
                    and i.profile not in waiting
                ]
                if idle:
                    self._destroy(agent, key, tuple(i.gi_id for i in idle))

    def _destroy(self, agent: Any, key: GpuKey, gi_ids: tuple[int, ...]) -> None:
        node_id, gpu = key
        view = self.books.views[node_id]
        gone = {d.uuid for g in view.gpus if g.index == gpu for i in g.instances if i.gi_id in gi_ids
                for d in i.devices}
        self.books.retiring |= gone
        self._reclaiming.add(key)

        async def run() -> None:
            try:
                result: ChangeResult = await agent.reclaim.remote(
                    gpu, gi_ids, "migctl.ray: reclaim idle instances made on demand"
                )
                self._update(result.view)
                if not result.made:
                    self.stats.reclaimed += len(gi_ids)
            except Exception as exc:
                self.stats.make_failures.append(f"reclaim on node {node_id[:8]}: {exc}")
            finally:
                self.books.retiring -= gone
                self._reclaiming.discard(key)
            self._kick()

        asyncio.get_running_loop().create_task(run())


__all__ = ["Scheduler", "Stats", "stats_summary"]
