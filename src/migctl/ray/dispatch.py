"""Running MIG tasks: one dispatcher per Ray job, and one executor process per MIG device.

``f.remote()`` on a MIG function goes to the job's dispatcher (an async actor owned by the
driver, so it and its executors end with the job and run with the job's ``runtime_env``).
For each call it waits for a :class:`Grant` from the cluster scheduler, runs the function
on the executor bound to that MIG device, and releases the claim when it ends (returns,
raises, or its worker dies), retrying on another device after a worker death as Ray does
(``max_retries``).

An executor is a Ray actor process pinned to the device's node and bound to exactly one MIG
device for its whole life, before any user code runs in it: ``CUDA_VISIBLE_DEVICES`` names
that device, Ray is told not to set it (``RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES``), and
each executor has its own ``runtime_env`` token, so Ray never hands it a task of another
device or reuses a process that ran anything else. One worker process never sees two MIG
devices. For each task it takes the device's migctl lease (an ``flock`` the kernel drops
when the process dies, even by ``kill -9``) and gives it back when the task ends. Executors
idle for ``executor_idle_s`` are stopped; ``prestart`` keeps blank ones ready per node.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migctl.ray import _node_ops as node_ops
from migctl.ray.errors import DeviceBusyError, MigWorkerDiedError
from migctl.ray.types import NAMESPACE, SCHEDULER_NAME, DeviceRef, Grant, MigRequest

NOSET = "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"


class Executor:
    """The executor actor's class: a process bound to one MIG device."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.device: DeviceRef | None = None
        self.probe: node_ops.DeviceProbe | None = None

    def ready(self) -> int:
        return os.getpid()

    def leave(self) -> None:
        """Exit now (the node agent asks before it destroys this executor's MIG device)."""
        import ray

        ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    def bind(self, device: DeviceRef, job: str) -> int:
        if self.device is not None:
            if self.device.uuid == device.uuid:
                return os.getpid()
            raise RuntimeError(f"executor {os.getpid()} is bound to {self.device.uuid}, not {device.uuid}")
        probe = node_ops.DeviceProbe()
        if not probe.exists(device.uuid):  # destroyed since it was granted: stay blank
            raise DeviceBusyError(f"MIG device {device.uuid} no longer exists")
        os.environ.update(node_ops.device_env(device))
        os.environ[NOSET] = "1"
        node_ops.mark_executor(device.uuid, os.getpid(), job, self.name)
        self.probe, self.device = probe, device
        probe.register(device.uuid, os.getpid())
        return os.getpid()

    def run(self, meta: tuple[str, str], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        uuid, label = meta
        if self.device is None or self.device.uuid != uuid:
            raise RuntimeError(f"executor {os.getpid()} is not bound to {uuid}")
        os.environ["CUDA_VISIBLE_DEVICES"] = uuid  # whatever a previous task did to it
        lease = node_ops.take_lease(uuid, f"ray task {label}")
        if lease is None:
            raise DeviceBusyError(f"MIG device {uuid} is {node_ops.describe_holder(node_ops.lease_holder(uuid))}")
        if self.probe is not None and not self.probe.exists(uuid):  # destroyed since it was granted
            lease.release()
            raise DeviceBusyError(f"MIG device {uuid} no longer exists")
        try:
            return fn(*args, **kwargs)
        finally:
            lease.release()


@dataclass
class _Bound:
    handle: Any
    node_id: str
    last_used: float
    running: int = 0


class Dispatcher:
    """The dispatcher actor's class (one per job; see :func:`migctl.ray.control.dispatcher`)."""

    def __init__(self, job: str, executor_idle_s: float = 30.0, prestart: int = 0) -> None:
        import ray

        self.job = job
        self.executor_idle_s = executor_idle_s
        self.prestart_per_node = prestart
        self.scheduler = ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE)
        self.bound: dict[str, _Bound] = {}
        self.blank: dict[str, list[Any]] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def configure(self, executor_idle_s: float, prestart: int) -> None:
        self.executor_idle_s = executor_idle_s
        self.prestart_per_node = prestart

    async def prestart(self, per_node: int, node_ids: list[str]) -> int:
        """Start ``per_node`` blank executors on each node and wait until they are up."""
        self._ensure_reaper()
        made = []
        for node_id in node_ids:
            pool = self.blank.setdefault(node_id, [])
            while len(pool) < per_node:
                h = self._new_executor(node_id)
                pool.append(h)
                made.append(h.ready.remote())
        await asyncio.gather(*made)
        return len(made)

    async def run(
        self, req: MigRequest, max_retries: int, fn: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run ``fn[0](*args, **kwargs)`` on a MIG device for ``req`` (the ``f.remote()`` of a MIG task)."""
        from ray.exceptions import RayActorError, RayTaskError

        self._ensure_reaper()
        deaths: list[str] = []
        lost = 0
        while True:
            try:
                grant: Grant = await self.scheduler.acquire.remote(req)
            except RayTaskError as exc:
                raise _cause(exc) from None
            except RayActorError:
                # The scheduler was stopped (migctl ray down) or lost with its node: find (or start)
                # the one running now; its books are rebuilt from the agents' views.
                lost += 1
                if lost > 3:
                    raise
                from migctl.ray.control import scheduler

                await asyncio.sleep(0.5 * lost)
                self.scheduler = scheduler()
                continue
            outcome = "done"
            bound: _Bound | None = None
            bind_s: float | None = None
            try:
                if grant.device.uuid not in self.bound:
                    started = time.monotonic()
                    bound = await self._executor(grant)
                    bind_s = time.monotonic() - started
                else:
                    bound = await self._executor(grant)
                bound.running += 1
                return await bound.handle.run.remote((grant.device.uuid, req.label), fn[0], *args, **kwargs)
            except RayTaskError as exc:
                if isinstance(exc.cause, DeviceBusyError):
                    outcome = "busy"
                    continue
                outcome = "failed"
                raise
            except RayActorError as exc:
                outcome = "worker died"
                self.bound.pop(grant.device.uuid, None)
                if _left_on_request(exc):
                    # The node agent stopped this idle executor (its device was to be destroyed,
                    # and the agent held the device's lease, so nothing could start on it) just
                    # before this task reached it: the task never ran there.
                    continue
                where = f"{grant.device.label()} {grant.device.uuid} on node {grant.node_id[:8]}"
                deaths.append(f"the worker running {req.label} on {where} died ({_first_line(exc)})")
                if len(deaths) > max_retries:
                    raise MigWorkerDiedError(
                        "; ".join(deaths) + "; its migctl lease was released with it",
                        hint=f"max_retries={max_retries}: raise it to retry on another device",
                    ) from None
            finally:
                if bound is not None:
                    bound.running -= 1
                    bound.last_used = time.monotonic()
                self.scheduler.release.remote(grant.claim_id, outcome, bind_s)

    async def _executor(self, grant: Grant) -> _Bound:
        found = self.bound.get(grant.device.uuid)
        if found is not None:
            return found
        from ray.exceptions import RayTaskError

        pool = self.blank.setdefault(grant.node_id, [])
        handle = pool.pop() if pool else self._new_executor(grant.node_id)
        if self.prestart_per_node and len(pool) < self.prestart_per_node:
            pool.append(self._new_executor(grant.node_id))
        try:
            await handle.bind.remote(grant.device, self.job)
        except RayTaskError as exc:
            if isinstance(exc.cause, DeviceBusyError):
                pool.append(handle)  # still blank: bound to nothing
            raise
        found = self.bound[grant.device.uuid] = _Bound(handle, grant.node_id, time.monotonic())
        return found

    def _new_executor(self, node_id: str) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        name = f"migctl-exec-{uuidlib.uuid4().hex}"
        # One runtime_env for every executor of the job, and no other process of the job has it:
        # Ray never gives an executor a worker that ran anything else (and a shared environment
        # starts faster than one per executor).
        return (
            ray.remote(Executor)
            .options(
                name=name,
                namespace=NAMESPACE,
                num_cpus=0,
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                runtime_env={"env_vars": {"MIGCTL_RAY_EXECUTOR": self.job, NOSET: "1"}},
            )
            .remote(name)
        )

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        import ray

        while True:
            await asyncio.sleep(max(0.5, min(5.0, self.executor_idle_s / 2)))
            now = time.monotonic()
            for uuid, b in list(self.bound.items()):
                if b.running == 0 and now - b.last_used >= self.executor_idle_s:
                    del self.bound[uuid]
                    ray.kill(b.handle)

    def executors(self) -> dict[str, int]:
        """Bound executors: MIG UUID -> tasks running on it now."""
        return {uuid: b.running for uuid, b in self.bound.items()}


def _left_on_request(exc: BaseException) -> bool:
    """Whether an executor was stopped on purpose (``leave()``, or the agent's ``ray.kill`` while
    it held the device's lease) rather than died by a crash or a kill -9."""
    text = str(exc)
    return "INTENDED_USER_EXIT" in text or "exit_actor" in text or "killed by `ray.kill`" in text


def _cause(exc: Any) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
