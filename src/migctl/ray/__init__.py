"""migctl on Ray: MIG devices for Ray tasks and actors across nodes, made on demand.

>>> import migctl.ray                                    # doctest: +SKIP
>>> migctl.ray.init()                                    # doctest: +SKIP   agents on every node, the scheduler
>>> @migctl.ray.remote(mig="1g.12gb")                    # doctest: +SKIP
... def work(x): ...
>>> ray.get([work.remote(i) for i in range(100)])        # doctest: +SKIP

See ``docs/ray.md``. Ray itself is imported only when a function here needs it.
"""

from __future__ import annotations

from migctl.ray.api import MigActorClass, MigRemoteFunction, remote
from migctl.ray.control import init, shutdown_actors
from migctl.ray.errors import MigRequestError, MigUnavailableError, MigWorkerDiedError, RayNotAvailableError
from migctl.ray.types import DeviceRef, Grant, MigRequest, NodeView, SchedulerConfig

__all__ = [
    "DeviceRef",
    "Grant",
    "MigActorClass",
    "MigRemoteFunction",
    "MigRequest",
    "MigRequestError",
    "MigUnavailableError",
    "MigWorkerDiedError",
    "NodeView",
    "RayNotAvailableError",
    "SchedulerConfig",
    "init",
    "remote",
    "shutdown_actors",
]
