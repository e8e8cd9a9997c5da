"""Typed records that travel between the driver, the scheduler, the node agents and executors.

Frozen dataclasses only (they are pickled by Ray); no Ray import here, so the CLI, the tests
and the pure policy can use them without starting anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from migctl.core.geometry import GpuGeometry, Placement

#: The Ray namespace of every migctl actor (agents, scheduler, dispatchers).
NAMESPACE = "migctl"
SCHEDULER_NAME = "migctl-scheduler"


def agent_name(node_id: str) -> str:
    return f"migctl-agent-{node_id}"


# -- what a node has ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceView:
    """A MIG device (one compute instance) and who, outside migctl.ray, is on it."""

    uuid: str
    gpu: int
    gi_id: int
    ci_id: int
    profile: str
    memory_mib: int
    holder_pid: int | None = None  # the lease holder, or a process NVML lists
    holder: str = ""  # in words, for messages ("leased by pid 12 (python x.py) since 14:02:11")
    executor_pids: tuple[int, ...] = ()  # migctl.ray executors bound to it (idle unless leased)

    @property
    def ref(self) -> DeviceRef:
        return DeviceRef(self.uuid, self.gpu, self.gi_id, self.ci_id, self.profile, self.memory_mib)


@dataclass(frozen=True)
class InstanceView:
    gi_id: int
    profile_id: int
    profile: str
    placement: Placement
    devices: tuple[DeviceView, ...] = ()
    on_demand: bool = False  # made by migctl.ray for a request (reclaimed when idle)


@dataclass(frozen=True)
class GpuView:
    index: int
    name: str
    mig_enabled: bool
    geometry: GpuGeometry | None
    instances: tuple[InstanceView, ...] = ()


@dataclass(frozen=True)
class NodeView:
    """One Ray node's MIG state, as its agent saw it at ``taken_at`` (``time.time()``)."""

    node_id: str
    address: str
    hostname: str
    simulated: bool
    sim_spec: str | None
    state_dir: str
    gpus: tuple[GpuView, ...]
    taken_at: float
    journals: tuple[int, ...] = ()  # GPUs an interrupted apply left half-changed

    def devices(self) -> list[DeviceView]:
        return [d for g in self.gpus for i in g.instances for d in i.devices]


@dataclass(frozen=True)
class DeviceRef:
    """Enough to bind a process to a MIG device and to name it in messages."""

    uuid: str
    gpu: int
    gi_id: int
    ci_id: int
    profile: str
    memory_mib: int

    def label(self) -> str:
        return f"GPU {self.gpu} GI {self.gi_id} CI {self.ci_id} ({self.profile})"


# -- changing a node (scheduler -> agent) ----------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """Make one GPU instance of ``profile_id`` at ``placement`` on GPU ``gpu``, destroying the idle
    GPU instances ``destroy`` first (a reshape; empty: a plain create on free slices)."""

    gpu: int
    profile_id: int
    placement: Placement
    destroy: tuple[int, ...] = ()


@dataclass(frozen=True)
class Made:
    """What became of one :class:`Ask`: its MIG device, or why not."""

    device: DeviceRef | None
    why: str = ""


@dataclass(frozen=True)
class ChangeResult:
    """A node agent's answer to a batch of asks (or a reclaim), with its node as it is after."""

    made: tuple[Made, ...]
    view: NodeView
    seconds: float
    phases: tuple[tuple[str, float], ...] = ()
    """Where the time went: ``queued`` (behind another change), ``retire`` (executors of destroyed
    devices stopped), ``create`` (create_at), ``reshape`` (apply of the GPUs with destroys)."""


# -- asking for a device --------------------------------------------------------------------

_MEMORY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(gib|gb|mib|mb|g|m)?\s*", re.IGNORECASE)


def parse_memory(text: str | int | float) -> int:
    """``"20GiB"`` -> MiB. Bare numbers are GiB. ``GB``/``MB`` are read as GiB/MiB (as NVIDIA's
    profile names use "gb"). Raises :class:`ValueError` with the accepted forms."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), "gib"
    else:
        m = _MEMORY.fullmatch(str(text))
        if m is None:
            raise ValueError(f"mig_memory={text!r}: expected a size such as '20GiB', '12gb' or '8192MiB'")
        value, unit = float(m[1]), (m[2] or "gib").lower()
    if value <= 0:
        raise ValueError(f"mig_memory={text!r}: must be more than zero")
    return int(value * 1024) if unit in ("gib", "gb", "g") else int(value)


@dataclass(frozen=True)
class MigRequest:
    """What a task or actor asks for: a profile by name, or the smallest one with enough memory."""

    profile: str | None = None
    memory_mib: int | None = None
    dynamic: bool = True  # may a node make (or reshape idle instances into) one?
    timeout_s: float | None = None  # None: wait as long as it takes
    kind: Literal["task", "actor"] = "task"
    label: str = ""  # the function or class, for messages and lease records

    def describe(self) -> str:
        if self.profile is not None:
            return self.profile
        return f"the smallest profile with {self.memory_mib} MiB" if self.memory_mib else "any MIG device"


@dataclass(frozen=True)
class Grant:
    """A MIG device claimed for one request until :meth:`Scheduler.release`."""

    claim_id: str
    node_id: str
    device: DeviceRef
    waited_s: float
    made: bool = False  # created (or reshaped) on demand for this request


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SchedulerConfig:
    """How the cluster scheduler places and reclaims MIG devices (``migctl.ray.init`` options)."""

    placement: Literal["migctl", "first-fit"] = "migctl"
    reclaim_after_s: float = 60.0  # destroy an instance made on demand after this long idle
    drain_after_s: float = 2.0  # a request waiting this long may hold a GPU for itself (no starvation)
    max_drains: int = 0  # GPUs held for waiting requests at once (0: one per four GPUs, at least one)
    poll_s: float = 1.0  # how often node views are refreshed and new nodes joined
    actor_start_timeout_s: float = 300.0  # a MIG actor must take its lease within this long
