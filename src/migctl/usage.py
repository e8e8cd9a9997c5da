"""Choosing a MIG device from inside a Python program: :func:`use` and :func:`devices`.

CUDA fixes the devices a process can see when it initialises, from ``CUDA_VISIBLE_DEVICES``;
with MIG, a process sees a MIG device only if that variable names it (``MIG-<uuid>``), and
enumerating devices and calling ``torch.cuda.set_device`` afterwards cannot switch to another
one (the seed's step 8, "not achieved"). So the choice has to be made first::

    import migctl
    dev = migctl.use("1g.12gb")        # lease a free 1g.12gb MIG device, set CUDA_VISIBLE_DEVICES
    import torch                       # only now: CUDA starts with that one device
    x = torch.randn(1000, 1000, device="cuda:0")   # cuda:0 *is* the MIG device

:func:`use` leases the device for the life of the process (a kernel lock: it is freed when the
process ends, however it ends), so two programs never share a MIG device by accident. As a
context manager it gives the lease back at the end of the block. Inside ``migctl run`` or
``migctl batch`` it returns the device the launcher chose (already leased for the process).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field, replace

import psutil

from migctl.config.target import Target, parse_target
from migctl.device import MigDeviceInfo, Node, open_node
from migctl.device.process import ProcessRegistry
from migctl.errors import UsageError
from migctl.ops import busy, launch, leases
from migctl.records import Record
from migctl.records.common import Holder

__all__ = ["DeviceLease", "MigDevice", "devices", "release", "use"]


@dataclass(frozen=True)
class MigDevice(Record):
    """A MIG device: what ``nvidia-smi -L`` shows, plus who holds it (a typed record).

    As returned by :func:`use` it is also a context manager that gives the lease back. It lives
    here rather than in :mod:`migctl.records` because of that behaviour.
    """

    uuid: str
    """The MIG device UUID (``CUDA_VISIBLE_DEVICES``)."""
    gpu: int
    gpu_instance_id: int
    compute_instance_id: int
    profile: str
    memory_mib: int
    index: int
    """The MIG device index on its GPU (``nvidia-smi -L`` "Device N")."""
    busy: bool = False
    """Leased, or used by a process NVML lists on it."""
    holder: Holder | None = field(default=None, compare=False)
    """Who: the migctl lease, else the process NVML lists (``source: nvml``)."""

    @property
    def env(self) -> dict[str, str]:
        """The variables that bind a process to this device (``CUDA_VISIBLE_DEVICES``...)."""
        return launch.device_env(self._info())

    def _info(self) -> MigDeviceInfo:
        return MigDeviceInfo(
            self.gpu,
            self.index,
            self.uuid,
            self.gpu_instance_id,
            self.compute_instance_id,
            self.profile,
            self.memory_mib,
        )

    @classmethod
    def _from(cls, m: MigDeviceInfo, holder: Holder | None = None) -> MigDevice:
        return cls(m.uuid, m.gpu_index, m.gi_id, m.ci_id, m.profile, m.memory_mib, m.index, holder is not None, holder)

    def __enter__(self) -> MigDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        if _current is not None and _current.device.uuid == self.uuid:
            release()


@dataclass
class _InUse:
    device: MigDevice
    lease: leases.Lease | None  # None when a launcher (migctl run/batch) holds it for us
    saved_env: dict[str, str | None]


_current: _InUse | None = None


def devices(*, sim: str | None = None) -> list[MigDevice]:
    """Every MIG device of this node with ``busy``/``holder`` (leased, or a process NVML lists).

    ``sim`` uses the simulator (default: ``MIGCTL_SIM``, else the driver).
    """
    node = open_node(sim)
    try:
        return list_devices(node)
    finally:
        node.close()


def list_devices(node: Node) -> list[MigDevice]:
    """:func:`devices` on an open node."""
    held = leases.holder_records()
    out = []
    for gpu in node.gpus:
        use = busy.snapshot(gpu, held)
        out += [MigDevice._from(m, use.holder(m.uuid, m.gi_id, m.ci_id)) for m in gpu.mig_devices()]
    return out


def cuda_initialised() -> str | None:
    """Why CUDA is already up in this process (so devices can no longer be chosen), or ``None``.

    Asks PyTorch only if the program imported it, then the CUDA driver itself, only if it is
    already loaded (``cuDeviceGetCount`` answers "not initialized" before ``cuInit``).
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_initialized():
                return "torch.cuda.is_initialized() is True"
        except Exception:  # noqa: S110  a half-imported or stub torch: fall through to the driver
            pass
    path = _loaded_libcuda()
    if path is not None:
        try:
            lib = ctypes.CDLL(path)
            count = ctypes.c_int(0)
            if lib.cuDeviceGetCount(ctypes.byref(count)) == 0:
                return f"the CUDA driver ({path}) is already initialised in this process"
        except (OSError, AttributeError):
            pass
    return None


def _loaded_libcuda() -> str | None:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                if "libcuda.so" in line:
                    return line.split()[-1]
    except OSError:
        pass
    return None


_CUDA_UP_HINT = (
    "call migctl.use() first thing, before anything touches CUDA (torch.cuda.*, .cuda(), .to('cuda'), "
    "creating a CUDA tensor), or choose the device outside the program: migctl run --on TARGET -- python script.py"
)


def use(target: str | None = None, *, wait: bool | float = False, sim: str | None = None) -> MigDevice:
    """Choose and lease a MIG device for this process, before CUDA starts.

    ``target``: a ``MIG-<uuid>``, ``GPU:GI`` (``"0:13"``), a profile (``"1g.12gb"``), or
    ``None`` for any free device. ``wait``: ``False`` (default) raises
    :class:`~migctl.errors.InUseError` naming the holder when every match is busy; ``True``
    waits until one is free; a number waits at most that many seconds. ``sim``: use the
    simulator.

    Sets ``CUDA_VISIBLE_DEVICES=MIG-<uuid>``, ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and the
    ``MIGCTL_*`` variables in ``os.environ``; after this, ``cuda:0`` is the MIG device. The
    lease lasts as long as the process (or the ``with`` block, used as a context manager).

    Raises :class:`~migctl.errors.UsageError` explaining why, if CUDA is already initialised
    in the process or ``CUDA_VISIBLE_DEVICES`` already fixes another device.
    """
    node = open_node(sim)
    try:
        return use_on(node, target, wait=wait)
    finally:
        node.close()


def use_on(node: Node, target: str | None = None, *, wait: bool | float = False) -> MigDevice:
    """:func:`use` on an open node (:meth:`migctl.Node.use`)."""
    if _current is not None:
        dev = _current.device
        if target is None or _matches(target, dev):
            return dev
        raise UsageError(
            f"migctl.use({target!r}): this process already uses MIG device {dev.uuid} "
            f"(GPU {dev.gpu} GI {dev.gpu_instance_id}, {dev.profile}); a CUDA process is bound to one device",
            hint="call migctl.release() first if CUDA has not started yet, or use another process for that device",
        )
    why = cuda_initialised()
    if why is not None:
        raise UsageError(
            f"migctl.use(): CUDA is already initialised in this process ({why}); CUDA fixed the visible "
            "devices when it started, so a MIG device can no longer be chosen (changing CUDA_VISIBLE_DEVICES "
            "or calling torch.cuda.set_device now cannot reach one)",
            hint=_CUDA_UP_HINT,
        )
    return _choose(node, target, wait_seconds(wait))


def wait_seconds(wait: bool | float) -> float | None:
    """``wait=`` of the Python API as the operations take it: ``False`` 0, ``True`` ``None`` (no limit)."""
    if wait is True:
        return None
    if wait is False:
        return 0.0
    seconds = float(wait)
    if not seconds >= 0:
        raise UsageError(f"wait={wait!r}: expected True, False or a number of seconds >= 0")
    return seconds


def _choose(node: Node, target: str | None, wait_s: float | None) -> MigDevice:
    global _current
    all_devices = launch.inventory(node)
    registry = ProcessRegistry(node.nvml)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    given = os.environ.get("MIGCTL_DEVICE_UUID")
    if visible is not None and given and visible == given:
        # Started by migctl run / batch: the launcher leased this device for us.
        info = next((m for m in all_devices if m.uuid == visible), None)
        if info is None:
            raise UsageError(f"migctl.use(): the device migctl chose for this process ({visible}) no longer exists")
        dev = MigDevice._from(info)
        if target is not None and not _matches(target, dev):
            raise UsageError(
                f"migctl.use({target!r}): this process was started on {visible} ({launch.label(info)}) by migctl "
                "run/batch, and CUDA can only use that device here",
                hint=f"drop the target, or launch it with --on {target}",
            )
        registry.register(dev.uuid, os.getpid())
        _current = _InUse(dev, None, {})
        return dev
    if visible is not None:
        fixed = visible.strip()
        if not (fixed.upper().startswith("MIG-") and "," not in fixed):
            raise UsageError(
                f"migctl.use(): CUDA_VISIBLE_DEVICES is already set to {visible!r}, which fixes the devices CUDA "
                "will show; migctl.use() would have to override someone's choice",
                hint="unset CUDA_VISIBLE_DEVICES (or do not export it) so migctl can pick a MIG device, "
                "or set it to one MIG-<uuid> to have migctl.use() lease exactly that one",
            )
        pinned = launch.match_target(parse_target(fixed), all_devices)
        if target is not None and not any(_matches(target, MigDevice._from(m)) for m in pinned):
            raise UsageError(
                f"migctl.use({target!r}): CUDA_VISIBLE_DEVICES={visible} fixes another MIG device",
                hint="unset CUDA_VISIBLE_DEVICES, or drop the target",
            )
        candidates = pinned
    else:
        candidates = launch.match_target(parse_target(target), all_devices)
    launcher = launch.Launcher(node)
    what = launch.describe_target(parse_target(target))
    info, lease = launch.acquire(launcher, candidates, command=_own_command(), wait=wait_s, what=what)
    dev = MigDevice._from(info)
    saved = {k: os.environ.get(k) for k in dev.env}
    os.environ.update(dev.env)
    registry.register(dev.uuid, os.getpid())
    _current = _InUse(dev, lease, saved)
    return dev


def release() -> None:
    """Give back the device :func:`use` leased and restore the environment it changed.

    Only meaningful before CUDA has started, or when the program is done with the device.
    """
    global _current
    if _current is None:
        return
    current, _current = _current, None
    if current.lease is not None:
        current.lease.release()
    for key, value in current.saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def current() -> MigDevice | None:
    """The device :func:`use` chose for this process, if any."""
    return None if _current is None else replace(_current.device)


def _matches(target: str | Target, dev: MigDevice) -> bool:
    parsed = parse_target(target) if isinstance(target, str) else target
    try:
        return any(m.uuid == dev.uuid for m in launch.match_target(parsed, [dev._info()]))
    except UsageError:
        return False


def _own_command() -> str:
    try:
        return " ".join(psutil.Process().cmdline()) or " ".join(sys.argv)
    except psutil.Error:
        return " ".join(sys.argv)


class DeviceLease:
    """A MIG device leased for programs this process starts (:meth:`migctl.Node.lease`).

    Unlike :func:`use` it changes nothing in this process: start a program with
    ``env={**os.environ, **lease.env}`` and ``pass_fds=(lease.fd,)`` to bind it to the device
    and let it keep the lease as long as it runs. :meth:`release` (or the end of the ``with``
    block) gives this process's hold back.
    """

    def __init__(self, device: MigDevice, lease: leases.Lease) -> None:
        self.device = device
        self._lease = lease

    @property
    def env(self) -> dict[str, str]:
        """``CUDA_VISIBLE_DEVICES`` and the ``MIGCTL_*`` variables of the device."""
        return self.device.env

    @property
    def fd(self) -> int:
        """The lease's descriptor (``-1`` once released): pass it to a child to share the lease."""
        return self._lease.fd

    @property
    def held(self) -> bool:
        return self._lease.held

    def release(self) -> None:
        self._lease.release()

    def __enter__(self) -> DeviceLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DeviceLease({self.device.uuid}, held={self.held})"


def lease_on(
    node: Node, target: str | None = None, *, wait: bool | float = False, command: str | None = None
) -> DeviceLease:
    """Lease a free MIG device ``target`` names, as ``migctl run --on TARGET`` does, without running anything."""
    parsed = parse_target(target)
    candidates = launch.match_target(parsed, launch.inventory(node))
    launcher = launch.Launcher(node)
    what = launch.describe_target(parsed)
    info, lease = launch.acquire(
        launcher, candidates, command=command or _own_command(), wait=wait_seconds(wait), what=what
    )
    return DeviceLease(MigDevice._from(info), lease)
