"""``@migctl.ray.remote(mig=...)``: Ray tasks and actors that run on one MIG device each.

>>> @migctl.ray.remote(mig="1g.12gb")                     # doctest: +SKIP
... def train(lr): ...
>>> ray.get(train.remote(3e-4))                            # doctest: +SKIP
>>> train.options(mig_memory="40GiB").remote(1e-3)         # doctest: +SKIP   the smallest profile with 40 GiB
>>> @migctl.ray.remote(mig="3g.48gb", dynamic=False)      # doctest: +SKIP   only instances that exist
... class Server: ...

Options (for ``remote`` and ``.options``): ``mig`` (a profile name) or ``mig_memory``
(``"20GiB"``: the smallest plain profile with that much memory); ``dynamic`` (default
``True``: a node may make one on demand); ``timeout`` (seconds to wait for a device,
default: as long as it takes); ``max_retries`` (tasks: reruns after the worker dies, default
3 as in Ray); ``num_returns`` (tasks); ``name`` (the label in leases and messages). Actors
also take Ray's actor options (``num_cpus``, ``memory``, ``max_concurrency``, ``name``,
``namespace``, ``lifetime``, ``runtime_env``...). ``num_gpus``, ``accelerator_type``,
``scheduling_strategy`` and ``placement_group`` are refused: migctl chooses the node and
the device.

Creating a MIG actor waits (up to ``timeout``) until a device is granted, then returns the
handle; the actor's process holds the device's lease for its whole life.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, overload

from migctl.ray import _node_ops as node_ops
from migctl.ray import control
from migctl.ray.dispatch import NOSET
from migctl.ray.errors import MigRequestError, MigUnavailableError
from migctl.ray.types import NAMESPACE, SCHEDULER_NAME, Grant, MigRequest, parse_memory

_OURS = {"mig", "mig_memory", "dynamic", "timeout", "max_retries", "num_returns", "name"}
_REFUSED = {
    "num_gpus": "migctl gives the task one MIG device instead of whole GPUs",
    "accelerator_type": "migctl chooses the GPU",
    "scheduling_strategy": "migctl chooses the node where the MIG device is",
    "placement_group": "migctl chooses the node where the MIG device is",
    "placement_group_bundle_index": "migctl chooses the node where the MIG device is",
}
_ACTOR_OPTIONS = {
    "num_cpus", "memory", "resources", "max_concurrency", "namespace", "lifetime", "runtime_env",
    "max_restarts", "max_task_retries", "get_if_exists", "concurrency_groups", "label_selector",
}


def _request(options: dict[str, Any], kind: str, label: str) -> MigRequest:
    for key, why in _REFUSED.items():
        if key in options and options[key] not in (None, 0):
            raise MigRequestError(f"{key}= cannot be used with migctl.ray.remote: {why}",
                                  hint="ask for a MIG device with mig='1g.12gb' or mig_memory='20GiB'")
    allowed = _OURS | (_ACTOR_OPTIONS if kind == "actor" else set())
    unknown = sorted(set(options) - allowed - set(_REFUSED))
    if unknown:
        raise MigRequestError(
            f"unknown option(s) for a MIG {kind}: {', '.join(unknown)}",
            hint="accepted: " + ", ".join(sorted(allowed)),
        )
    mig, memory = options.get("mig"), options.get("mig_memory")
    if (mig is None) == (memory is None):
        raise MigRequestError(
            "say which MIG device: mig='1g.12gb' (a profile) or mig_memory='20GiB' (the smallest that fits), not both"
            if mig is not None else "a MIG task or actor needs mig='<profile>' or mig_memory='<size>'",
            hint="e.g. @migctl.ray.remote(mig='1g.12gb')",
        )
    memory_mib = None
    if memory is not None:
        try:
            memory_mib = parse_memory(memory)
        except ValueError as exc:
            raise MigRequestError(str(exc)) from None
    timeout = options.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise MigRequestError(f"timeout={timeout!r}: expected a number of seconds >= 0, or None to wait forever")
    return MigRequest(
        profile=None if mig is None else str(mig),
        memory_mib=memory_mib,
        dynamic=bool(options.get("dynamic", True)),
        timeout_s=None if timeout is None else float(timeout),
        kind="actor" if kind == "actor" else "task",
        label=str(options.get("name") or label),
    )


class MigRemoteFunction:
    """A function that runs as a Ray task on one MIG device; call ``.remote(...)``."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self._fn = fn
        self._options = dict(options)
        self._request = _request(self._options, "task", getattr(fn, "__qualname__", repr(fn)))
        retries = self._options.get("max_retries", 3)
        returns = self._options.get("num_returns", 1)
        if not isinstance(retries, int) or retries < 0:
            raise MigRequestError(f"max_retries={retries!r}: expected an integer >= 0")
        if not isinstance(returns, int) or returns < 1:
            raise MigRequestError(f"num_returns={returns!r}: expected an integer >= 1")
        self._retries, self._returns = retries, returns
        self._fn_ref: tuple[str, Any] | None = None
        functools.update_wrapper(self, fn)

    @property
    def request(self) -> MigRequest:
        return self._request

    def options(self, **options: Any) -> MigRemoteFunction:
        merged = {**self._options, **options}
        if "mig" in options and "mig_memory" not in options:
            merged.pop("mig_memory", None)
        if "mig_memory" in options and "mig" not in options:
            merged.pop("mig", None)
        return MigRemoteFunction(self._fn, merged)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        ray = _started()
        job = ray.get_runtime_context().get_job_id()
        if self._fn_ref is None or self._fn_ref[0] != job:
            self._fn_ref = (job, ray.put(self._fn))
        d = control.dispatcher()
        return d.run.options(num_returns=self._returns).remote(
            self._request, self._retries, [self._fn_ref[1]], args, kwargs
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"MIG task {self._request.label} cannot be called directly; use .remote()")


class MigActorClass:
    """A class whose actors each hold one MIG device for their life; call ``.remote(...)``."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = dict(options)
        self._request = _request(self._options, "actor", cls.__qualname__)

    @property
    def request(self) -> MigRequest:
        return self._request

    def options(self, **options: Any) -> MigActorClass:
        merged = {**self._options, **options}
        if "mig" in options and "mig_memory" not in options:
            merged.pop("mig_memory", None)
        if "mig_memory" in options and "mig" not in options:
            merged.pop("mig", None)
        return MigActorClass(self._cls, merged)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        ray = _started()
        from ray.exceptions import RayTaskError
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        scheduler = ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE)
        try:
            grant: Grant = ray.get(scheduler.acquire.remote(self._request))
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            raise (cause if isinstance(cause, Exception) else exc) from None
        ray_options = {k: v for k, v in self._options.items() if k in _ACTOR_OPTIONS}
        runtime_env = dict(ray_options.pop("runtime_env", None) or {})
        env_vars = dict(runtime_env.get("env_vars") or {})
        env_vars.update(node_ops.device_env(grant.device))
        env_vars[NOSET] = "1"
        runtime_env["env_vars"] = env_vars
        if "name" in self._options:
            ray_options["name"] = self._options["name"]
        try:
            return (
                ray.remote(_mig_actor_class(self._cls))
                .options(
                    **ray_options,
                    runtime_env=runtime_env,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(grant.node_id, soft=False),
                )
                .remote(grant, *args, **kwargs)
            )
        except BaseException:
            scheduler.release.remote(grant.claim_id, "failed")
            raise


_ACTOR_LEASE: Any = None
_checked: set[str] = set()  # jobs for which the scheduler was seen running


def _started() -> Any:
    """Ray, connected, with migctl's scheduler and agents running (``migctl.ray.init()`` if not)."""
    ray = control.ray_module()
    if not ray.is_initialized():
        control.init()
        return ray
    job = ray.get_runtime_context().get_job_id()
    if job not in _checked:
        try:
            ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE)
        except ValueError:
            control.init()
        _checked.add(job)
    return ray



def _bind_actor(grant: Grant) -> None:
    """In the actor's process, before the user's ``__init__``: lease the device, be seen on it."""
    global _ACTOR_LEASE
    ray = control.ray_module()
    scheduler = ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE)
    dev = grant.device
    if os.environ.get("CUDA_VISIBLE_DEVICES") != dev.uuid:  # runtime_env set it at process start
        os.environ.update(node_ops.device_env(dev))
    lease = node_ops.take_lease(dev.uuid, f"ray actor {grant.claim_id}")
    if lease is None:
        holder = node_ops.lease_holder(dev.uuid)
        scheduler.release.remote(grant.claim_id, "busy")
        raise MigUnavailableError(f"MIG device {dev.uuid} is {node_ops.describe_holder(holder)}")
    _ACTOR_LEASE = lease
    node_ops.register_process(dev.uuid, os.getpid())
    ray.get(scheduler.actor_bound.remote(grant.claim_id, os.getpid()))


_wrapped: dict[type, type] = {}


def _mig_actor_class(cls: type) -> type:
    found = _wrapped.get(cls)
    if found is not None:
        return found

    def __init__(self: Any, _migctl_grant: Grant, *args: Any, **kwargs: Any) -> None:
        _bind_actor(_migctl_grant)
        init: Callable[..., None] = cls.__init__  # type: ignore[misc]
        init(self, *args, **kwargs)

    wrapped = type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__,
                                         "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
    _wrapped[cls] = wrapped
    return wrapped


class MigDecorator:
    """What ``migctl.ray.remote(...)`` returns: applied to a class it makes a :class:`MigActorClass`,
    to a function a :class:`MigRemoteFunction` (typed, so a decorated function stays typed)."""

    def __init__(self, options: dict[str, Any]) -> None:
        _request(options, "actor", "check")  # bad options fail at decoration time
        self._options = dict(options)

    # A class is also callable: the class overload comes first, and mypy's overlap note is expected.
    @overload
    def __call__(self, obj: type) -> MigActorClass: ...  # type: ignore[overload-overlap]

    @overload
    def __call__(self, obj: Callable[..., Any]) -> MigRemoteFunction: ...

    def __call__(self, obj: object) -> MigActorClass | MigRemoteFunction:
        if inspect.isclass(obj):
            return MigActorClass(obj, self._options)
        if callable(obj):
            return MigRemoteFunction(obj, self._options)
        raise MigRequestError(f"migctl.ray.remote decorates a function or a class, not {type(obj).__name__}")


def remote(*args: Any, **options: Any) -> MigDecorator:
    """Decorator: ``@migctl.ray.remote(mig="1g.12gb")`` on a function (task) or a class (actor)."""
    if args and (len(args) != 1 or options or not callable(args[0])):
        raise MigRequestError("use @migctl.ray.remote(mig='<profile>') (keyword options only)")
    if args:
        raise MigRequestError(
            "a MIG task or actor needs mig='<profile>' or mig_memory='<size>'",
            hint="e.g. @migctl.ray.remote(mig='1g.12gb')",
        )
    return MigDecorator(options)


__all__ = ["MigActorClass", "MigDecorator", "MigRemoteFunction", "remote"]
