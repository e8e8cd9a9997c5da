"""Leasing a MIG device and starting a process on it: what ``run``, ``batch``, ``doctor`` and
``migctl.use`` share.

A process is bound to a MIG device by its environment, set before CUDA starts:
``CUDA_VISIBLE_DEVICES=MIG-<uuid>`` (CUDA then shows that one device as ``cuda:0``) and
``CUDA_DEVICE_ORDER=PCI_BUS_ID``, plus ``MIGCTL_DEVICE_UUID``, ``MIGCTL_GPU_INDEX``,
``MIGCTL_GPU_INSTANCE_ID``, ``MIGCTL_COMPUTE_INSTANCE_ID`` and ``MIGCTL_PROFILE`` for the
program's own use.

Exclusivity comes from a lease (:mod:`migctl.ops.leases`) whose descriptor is inherited by the
child, so the lease lives exactly as long as the child (and anything it starts that keeps the
descriptor), even if migctl itself is killed. Children are started by :mod:`migctl.ops.child`.

An instance is *busy* when its lease is held, or when NVML lists a process on it that holds no
lease (someone ran a CUDA program there by hand): see :func:`foreign_user`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pynvml

from migctl.config.spec import parse_profile
from migctl.config.target import Address, AnyDevice, ProfileName, Target, UuidPrefix
from migctl.device import MigDeviceInfo, Node
from migctl.device.gpu import describe_process
from migctl.device.process import ProcessRegistry
from migctl.errors import InUseError, NotSupportedError, UsageError
from migctl.ops import busy, leases
from migctl.ops.child import Child, spawn
from migctl.records.common import Holder
from migctl.records.run import BusyDevice, DeviceRef

_GONE = (pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_ERROR_INVALID_ARGUMENT)

# -- instances and targets ---------------------------------------------------------------------


def device_ref(dev: MigDeviceInfo) -> DeviceRef:
    return DeviceRef(dev.uuid, dev.gpu_index, dev.gi_id, dev.ci_id, dev.profile)


def label(dev: MigDeviceInfo) -> str:
    """``GPU 0 GI 13 CI 0 (1g.12gb)``."""
    return device_ref(dev).label()


def short(dev: MigDeviceInfo) -> str:
    """``0:13`` (``0:13:1`` for a compute instance other than 0)."""
    return f"{dev.gpu_index}:{dev.gi_id}" + (f":{dev.ci_id}" if dev.ci_id else "")


def inventory(node: Node) -> list[MigDeviceInfo]:
    """Every MIG device of the node, GPU by GPU in NVML order (``nvidia-smi -L``)."""
    return [m for gpu in node.gpus for m in gpu.mig_devices()]


def no_mig_devices() -> NotSupportedError:
    return NotSupportedError(
        "this node has no MIG devices to run on",
        hint="enable MIG and create instances first, e.g. migctl mode enable -i 0 && migctl create 1g.12gb:2 -i 0",
    )


def match_target(target: Target, devices: Sequence[MigDeviceInfo]) -> list[MigDeviceInfo]:
    """The MIG devices ``target`` names, best-first order kept (see :mod:`migctl.config.target`).

    A target that names nothing is a :class:`UsageError` saying what exists; a node without
    MIG devices is a :class:`NotSupportedError`.
    """
    if not devices:
        raise no_mig_devices()
    text = target.text
    if isinstance(target, AnyDevice):
        return list(devices)
    if isinstance(target, UuidPrefix):
        exact = [d for d in devices if d.uuid.lower() == text.lower()]
        found = exact or [d for d in devices if d.uuid.lower().startswith(text.lower())]
        if len(found) > 1:
            raise UsageError(f"--on {text}: the prefix matches {len(found)} MIG devices", hint="give more of it")
        if not found:
            raise UsageError(f"--on {text}: no MIG device has this UUID", hint="list them with: migctl devices")
        return found
    if isinstance(target, Address):
        gpu, gi, ci = target.gpu, target.gpu_instance_id, target.compute_instance_id
        found = [d for d in devices if d.gpu_index == gpu and d.gi_id == gi and (ci is None or d.ci_id == ci)]
        if not found:
            here = ", ".join(short(d) for d in devices if d.gpu_index == gpu) or "none"
            raise UsageError(
                f"--on {text}: GPU {gpu} has no MIG device {text}",
                hint=f"GPU {gpu}'s MIG devices (GPU:GI[:CI]): {here}",
            )
        return found
    assert isinstance(target, ProfileName)
    found = [d for d in devices if d.profile.lower() == text.lower()]
    if not found:
        profiles = sorted({d.profile for d in devices})
        raise UsageError(
            f"--on {text}: no MIG device matches (expected a MIG-<uuid>, GPU:GI such as 0:13, or a profile)",
            hint="profiles of the MIG devices here: " + ", ".join(profiles),
        )
    return found


def child_env(
    dev: MigDeviceInfo, base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment that binds a process to ``dev`` (``base`` defaults to ours)."""
    env = dict(os.environ if base is None else base)
    if extra:
        env.update(extra)
    env.update(device_env(dev))
    return env


def device_env(dev: MigDeviceInfo) -> dict[str, str]:
    """The variables that bind a process to ``dev``."""
    return {
        "CUDA_VISIBLE_DEVICES": dev.uuid,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "MIGCTL_DEVICE_UUID": dev.uuid,
        "MIGCTL_GPU_INDEX": str(dev.gpu_index),
        "MIGCTL_GPU_INSTANCE_ID": str(dev.gi_id),
        "MIGCTL_COMPUTE_INSTANCE_ID": str(dev.ci_id),
        "MIGCTL_PROFILE": dev.profile,
    }


#: The variables migctl sets for each child; a jobs file may not set them.
DEVICE_ENV_NAMES = frozenset(device_env(MigDeviceInfo(0, 0, "MIG-x", 0, 0, "p", 0)))


@dataclass(frozen=True)
class Gone:
    """The MIG device NVML no longer knows (destroyed since the inventory was read)."""

    uuid: str
    why: str


def foreign_user(registry: ProcessRegistry, dev: MigDeviceInfo) -> Holder | Gone | None:
    """A process NVML lists on ``dev`` (called while we hold its lease: it is no child of ours)."""
    try:
        pids = registry.pids_on(dev.uuid)
    except pynvml.NVMLError as exc:
        text = "no longer exists" if exc.value in _GONE else f"cannot be queried: {exc}"
        return Gone(dev.uuid, f"the MIG device {text}")
    if not pids:
        return None
    return busy.process_holder(describe_process(pids[0], None, dev.gi_id, dev.ci_id))


class Launcher:
    """Leases MIG devices and starts processes on them, over one NVML session.

    The inventory is read once by the caller; per launch this touches only the chosen device:
    its lease file, one NVML process query, and (on the simulator) one registration.
    """

    def __init__(self, node: Node, *, background_registration: bool = False) -> None:
        self.node = node
        self.registry = ProcessRegistry(node.nvml, background=background_registration)
        self._sim_env = self.registry.child_env()

    def try_lease(self, dev: MigDeviceInfo, command: str, **info: object) -> leases.Lease | BusyDevice | Gone:
        """Lease ``dev`` if it is free; else who holds or uses it (or that it is gone)."""
        lease = leases.try_acquire(dev.uuid, command=command, **info)
        if lease is None:
            return BusyDevice(dev.uuid, leases.holder(dev.uuid) or Holder(pid=None, command="?", since=None))
        other = foreign_user(self.registry, dev)
        if other is None:
            return lease
        lease.release()
        return other if isinstance(other, Gone) else BusyDevice(dev.uuid, other)

    def start(
        self,
        dev: MigDeviceInfo,
        lease: leases.Lease,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        new_session: bool = False,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        executable: str | None = None,
        **info: object,
    ) -> Child:
        """Start ``argv`` on ``dev`` holding ``lease``; the lease record then names the child."""
        full_env = child_env(dev, env, {**self._sim_env, **(extra_env or {})})
        child = spawn(
            argv,
            full_env,
            pass_fds=(lease.fd,),
            new_session=new_session,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            executable=executable,
        )
        lease.describe(pid=child.pid, command=" ".join(argv), since=child.started_at, launcher=os.getpid(), **info)
        self.registry.register(dev.uuid, child.pid, alive=lambda: child.returncode is None)
        return child


def as_busy(found: BusyDevice | Gone) -> BusyDevice:
    """A gone device, reported among the busy ones (it cannot be used either)."""
    if isinstance(found, BusyDevice):
        return found
    return BusyDevice(found.uuid, Holder(pid=None, command=found.why, since=None, source="nvml"))


def busy_error(busy: Sequence[BusyDevice], what: str) -> InUseError:
    """All candidates are taken: name who holds them."""
    if len(busy) == 1:
        b = busy[0]
        return InUseError(
            f"MIG device {b.uuid} is {leases.describe_holder(b.holder)}",
            hint="wait for it with --queue [SECONDS], or pick another instance (migctl status shows who holds each)",
            holder=leases.holder_details(b.uuid, b.holder),
        )
    shown = "; ".join(f"{b.uuid} {leases.describe_holder(b.holder)}" for b in busy[:3])
    more = f"; and {len(busy) - 3} more" if len(busy) > 3 else ""
    return InUseError(
        f"all {len(busy)} MIG devices {what} are busy: {shown}{more}",
        hint="wait for one with --queue [SECONDS], or pick another target (migctl status shows who holds each)",
        holders=[leases.holder_details(b.uuid, b.holder) for b in busy],
    )


def size(dev: MigDeviceInfo) -> tuple[int, int]:
    """How big a MIG device is, for "the smallest that fits": its memory, then its compute slices
    (``1c.3g.48gb`` has 1, ``3g.48gb`` 3)."""
    parsed = parse_profile(dev.profile)
    slices = 0 if parsed is None else parsed[0] if parsed[0] is not None else parsed[1]
    return dev.memory_mib, slices


def spread_order(devices: Sequence[MigDeviceInfo], held: Iterable[str]) -> list[MigDeviceInfo]:
    """Candidates in the order to try them: free ones first, the smallest first (a job that could
    run anywhere must not take the one big instance a job asking for it needs), then spread over
    GPUs (fewest busy instances on the GPU first)."""
    taken = set(held)
    load: dict[int, int] = {}
    for d in devices:
        load.setdefault(d.gpu_index, 0)
        if d.uuid in taken:
            load[d.gpu_index] += 1
    return sorted(devices, key=lambda d: (d.uuid in taken, size(d), load[d.gpu_index], d.gpu_index, d.index))


def acquire(
    launcher: Launcher,
    candidates: Sequence[MigDeviceInfo],
    *,
    command: str,
    wait: float | None = 0.0,
    what: str = "",
    on_wait: Callable[[list[BusyDevice]], None] | None = None,
    poll_s: float = 0.1,
) -> tuple[MigDeviceInfo, leases.Lease]:
    """Lease one free device among ``candidates``.

    ``wait``: ``0`` fails at once with :class:`InUseError` naming the holders; ``None`` waits
    for as long as it takes; a number waits up to that many seconds. ``on_wait(busy)`` is called
    once when waiting starts (to say so).
    """
    deadline = None if wait is None else time.monotonic() + max(0.0, wait)
    told = False
    while True:
        busy: list[BusyDevice] = []
        for dev in spread_order(candidates, leases.holder_records()):
            found = launcher.try_lease(dev, command)
            if isinstance(found, leases.Lease):
                return dev, found
            busy.append(as_busy(found))
        if deadline is not None and time.monotonic() >= deadline:
            raise busy_error(busy, what)
        if not told and on_wait is not None:
            on_wait(busy)
            told = True
        time.sleep(poll_s if deadline is None else min(poll_s, max(0.0, deadline - time.monotonic())))


def describe_target(target: Target) -> str:
    """``on this node`` or ``matching '1g.12gb'`` (for "all N MIG devices ... are busy")."""
    return "on this node" if isinstance(target, AnyDevice) else f"matching {target.text!r}"
