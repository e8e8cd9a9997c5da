"""Starting a process on one MIG device: the code ``migctl run``, ``batch``, ``doctor`` and ``migctl.use`` share.

A process is bound to a MIG device by its environment, set before CUDA starts:
``CUDA_VISIBLE_DEVICES=MIG-<uuid>`` (CUDA then shows that one device as ``cuda:0``) and
``CUDA_DEVICE_ORDER=PCI_BUS_ID``, plus ``MIGCTL_DEVICE_UUID``, ``MIGCTL_GPU_INDEX``,
``MIGCTL_GPU_INSTANCE_ID``, ``MIGCTL_COMPUTE_INSTANCE_ID`` and ``MIGCTL_PROFILE`` for the
program's own use.

Exclusivity comes from a lease (:mod:`migctl.ops.leases`) whose descriptor is inherited by the
child, so the lease lives exactly as long as the child (and anything it starts that keeps the
descriptor), even if migctl itself is killed. Children are started with ``posix_spawn`` from
an argv list (never a shell), with a clean signal mask: launchers wait for signals with
``sigtimedwait`` and keep them blocked, and a child must not inherit that.

An instance is *busy* when its lease is held, or when NVML lists a process on it that holds no
lease (someone ran a CUDA program there by hand).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pynvml

from migctl.device import MigDeviceInfo, Node
from migctl.device.gpu import describe_process
from migctl.device.process import ProcessRegistry
from migctl.errors import InUseError, NotSupportedError, UsageError
from migctl.ops import leases

__all__ = [
    "CommandNotExecutableError",
    "CommandNotFoundError",
    "Launcher",
    "acquire",
    "child_env",
    "device_env",
    "inventory",
    "leases",
    "match_target",
    "spawn",
]

#: Signals a launcher forwards to its child (``run``) or turns into a graceful stop (``batch``).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
#: What Python ignores that a child should get back at their defaults (as subprocess does).
_RESTORE_DEFAULT = tuple(s for s in (signal.SIGPIPE, getattr(signal, "SIGXFSZ", None)) if s is not None)
_GONE = (pynvml.NVML_ERROR_NOT_FOUND, pynvml.NVML_ERROR_INVALID_ARGUMENT)
#: ``si_code`` of a signal the kernel sent itself: Ctrl-C on a terminal reaches the whole
#: foreground process group this way, so a child in ours already has it.
SI_KERNEL = 0x80


class CommandNotFoundError(UsageError):
    """The command to run does not exist (exit 127, as a shell) or cannot be executed (126)."""

    exit_code = 127
    kind = "command_not_found"


class CommandNotExecutableError(CommandNotFoundError):
    exit_code = 126
    kind = "command_not_executable"


# -- instances and targets ---------------------------------------------------------------------


def label(dev: MigDeviceInfo) -> str:
    """``GPU 0 GI 13 CI 0 (1g.12gb)``."""
    return f"GPU {dev.gpu_index} GI {dev.gi_id} CI {dev.ci_id} ({dev.profile})"


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


def match_target(target: str | None, devices: Sequence[MigDeviceInfo]) -> list[MigDeviceInfo]:
    """The MIG devices ``target`` names, best-first order kept.

    ``None``: all. ``MIG-<uuid>`` (or a unique prefix of one): that device. ``GPU:GI`` or
    ``GPU:GI:CI`` (``0:13``): the compute instances of that GPU instance. Anything else is a
    profile name (``1g.12gb``): every device of that profile. A target that names nothing is
    a :class:`UsageError` saying what exists.
    """
    if not devices:
        raise no_mig_devices()
    if target is None or not target.strip():
        return list(devices)
    text = target.strip()
    if text.upper().startswith("MIG-"):
        exact = [d for d in devices if d.uuid.lower() == text.lower()]
        found = exact or [d for d in devices if d.uuid.lower().startswith(text.lower())]
        if len(found) > 1:
            raise UsageError(f"--on {target}: the prefix matches {len(found)} MIG devices", hint="give more of it")
        if not found:
            raise UsageError(f"--on {target}: no MIG device has this UUID", hint="list them with: migctl devices")
        return found
    m = re.fullmatch(r"(\d+):(\d+)(?::(\d+))?", text)
    if m is not None:
        gpu, gi = int(m[1]), int(m[2])
        ci = None if m[3] is None else int(m[3])
        found = [d for d in devices if d.gpu_index == gpu and d.gi_id == gi and (ci is None or d.ci_id == ci)]
        if not found:
            here = ", ".join(short(d) for d in devices if d.gpu_index == gpu) or "none"
            raise UsageError(
                f"--on {target}: GPU {gpu} has no MIG device {text}",
                hint=f"GPU {gpu}'s MIG devices (GPU:GI[:CI]): {here}",
            )
        return found
    found = [d for d in devices if d.profile.lower() == text.lower()]
    if not found:
        profiles = sorted({d.profile for d in devices})
        raise UsageError(
            f"--on {target}: no MIG device matches (expected a MIG-<uuid>, GPU:GI such as 0:13, or a profile)",
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
    return {
        "CUDA_VISIBLE_DEVICES": dev.uuid,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "MIGCTL_DEVICE_UUID": dev.uuid,
        "MIGCTL_GPU_INDEX": str(dev.gpu_index),
        "MIGCTL_GPU_INSTANCE_ID": str(dev.gi_id),
        "MIGCTL_COMPUTE_INSTANCE_ID": str(dev.ci_id),
        "MIGCTL_PROFILE": dev.profile,
    }


# -- children -------------------------------------------------------------------------------------


def resolve_command(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """The executable ``argv[0]`` names, looked up in the child's ``PATH`` (as a shell would)."""
    if not argv:
        raise UsageError("no command given", hint="put it after --, e.g. migctl run -- python train.py")
    name = argv[0]
    if "/" in name:
        path = name
        if not os.path.exists(path):
            raise CommandNotFoundError(f"{name}: no such file")
    else:
        search = (env or os.environ).get("PATH", os.defpath)
        found = shutil.which(name, path=search)
        if found is None:
            if any(os.path.exists(os.path.join(d, name)) for d in search.split(os.pathsep) if d):
                raise CommandNotExecutableError(f"{name}: permission denied (not executable)")
            raise CommandNotFoundError(f"{name}: command not found")
        path = found
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise CommandNotExecutableError(f"{name}: permission denied (not executable)")
    return path


@dataclass
class Child:
    """A started process. ``pgid`` is set when it leads its own session (its process group)."""

    pid: int
    argv: list[str]
    started: float  # time.monotonic()
    started_at: float  # time.time()
    pgid: int | None = None
    returncode: int | None = None  # as subprocess: -N when killed by signal N

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 255
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def signal_group(self, sig: int) -> bool:
        """Signal the child's whole process group; ``False`` if none of it is left."""
        if self.pgid is None:
            self.signal(sig)
            return self.returncode is None
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:  # a member changed identity; still there
            return True
        return True


def exit_code(returncode: int) -> int:
    """A child's return code as a shell reports it: ``128+N`` when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode: int) -> str:
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by {name}"


def spawn(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    pass_fds: Iterable[int] = (),
    new_session: bool = False,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    executable: str | None = None,
) -> Child:
    """Start ``argv`` (no shell) with ``env``; ``pass_fds`` stay open in the child.

    ``new_session`` makes the child lead a session and process group (``batch``: so a timeout
    or Ctrl-C can end the job with everything it started). The child gets an empty signal
    mask and SIGPIPE/SIGXFSZ at their defaults whatever the launcher blocks.
    """
    exe = executable or resolve_command(argv, env)
    actions: list[tuple[Any, ...]] = []
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        if fd is not None:
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
    passed = list(pass_fds)
    for fd in passed:
        os.set_inheritable(fd, True)
    try:
        pid = os.posix_spawn(
            exe,
            list(argv),
            env,
            file_actions=actions or None,
            setsid=new_session,
            setsigmask=(),
            setsigdef=_RESTORE_DEFAULT,
        )
    except PermissionError:
        raise CommandNotExecutableError(f"{argv[0]}: permission denied") from None
    except FileNotFoundError:
        raise CommandNotFoundError(f"{argv[0]}: command not found") from None
    except OSError as exc:
        raise CommandNotExecutableError(f"{argv[0]}: cannot execute: {exc.strerror}") from None
    finally:
        for fd in passed:
            os.set_inheritable(fd, False)
    return Child(pid, list(argv), time.monotonic(), time.time(), pgid=pid if new_session else None)


# -- leasing ----------------------------------------------------------------------------------


class Launcher:
    """Leases MIG devices and starts processes on them, over one NVML session.

    The inventory is read once by the caller; per launch this touches only the chosen device:
    its lease file, one NVML process query, and (on the simulator) one registration.
    """

    def __init__(self, node: Node, *, background_registration: bool = False) -> None:
        self.node = node
        self.registry = ProcessRegistry(node.nvml, background=background_registration)
        self._sim_env = self.registry.child_env()

    def foreign(self, dev: MigDeviceInfo) -> dict[str, Any] | None:
        """A process NVML lists on ``dev`` (we hold its lease, so it is no child of ours).

        A device NVML no longer knows (destroyed since the inventory was read) comes back as
        ``{"gone": True, ...}``.
        """
        try:
            pids = self.registry.pids_on(dev.uuid)
        except pynvml.NVMLError as exc:
            text = "no longer exists" if exc.value in _GONE else f"cannot be queried: {exc}"
            return {"uuid": dev.uuid, "pid": None, "command": f"(the MIG device {text})", "gone": True}
        if not pids:
            return None
        p = describe_process(pids[0], None, dev.gi_id, dev.ci_id)
        return {"uuid": dev.uuid, "pid": p.pid, "command": p.command, "since": p.started, "source": "nvml"}

    def try_lease(
        self, dev: MigDeviceInfo, command: str, **info: Any
    ) -> tuple[leases.Lease | None, dict[str, Any] | None]:
        """Lease ``dev`` if it is free: ``(lease, None)``, else ``(None, who holds or uses it)``."""
        lease = leases.try_acquire(dev.uuid, command=command, **info)
        if lease is None:
            return None, leases.holder(dev.uuid) or {"uuid": dev.uuid, "pid": None, "command": "?"}
        other = self.foreign(dev)
        if other is not None:
            lease.release()
            return None, other
        return lease, None

    def start(
        self,
        dev: MigDeviceInfo,
        lease: leases.Lease,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        new_session: bool = False,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        executable: str | None = None,
        **info: Any,
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


def busy_error(busy: list[dict[str, Any]], what: str) -> InUseError:
    """All candidates are taken: name who holds them."""
    if len(busy) == 1:
        info = busy[0]
        return InUseError(
            f"MIG device {info.get('uuid')} is {leases.describe_holder(info)}",
            hint="wait for it with --wait [SECONDS], or pick another instance (migctl status shows who holds each)",
            holder=info,
        )
    shown = "; ".join(f"{b.get('uuid')} {leases.describe_holder(b)}" for b in busy[:3])
    more = f"; and {len(busy) - 3} more" if len(busy) > 3 else ""
    return InUseError(
        f"all {len(busy)} MIG devices {what} are busy: {shown}{more}",
        hint="wait for one with --wait [SECONDS], or pick another target (migctl status shows who holds each)",
        holders=busy,
    )


def spread_order(devices: Sequence[MigDeviceInfo], held: Iterable[str]) -> list[MigDeviceInfo]:
    """Candidates ordered to spread work over GPUs: fewest busy instances on the GPU first."""
    taken = set(held)
    load: dict[int, int] = {}
    for d in devices:
        load.setdefault(d.gpu_index, 0)
        if d.uuid in taken:
            load[d.gpu_index] += 1
    return sorted(devices, key=lambda d: (d.uuid in taken, load[d.gpu_index], d.gpu_index, d.index))


def acquire(
    launcher: Launcher,
    candidates: Sequence[MigDeviceInfo],
    *,
    command: str,
    wait: float | None = 0.0,
    what: str = "",
    on_wait: Any = None,
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
        busy: list[dict[str, Any]] = []
        for dev in spread_order(candidates, leases.holders()):
            lease, who = launcher.try_lease(dev, command)
            if lease is not None:
                return dev, lease
            assert who is not None
            busy.append({**who, "uuid": dev.uuid})
        if deadline is not None and time.monotonic() >= deadline:
            raise busy_error(busy, what)
        if not told and on_wait is not None:
            on_wait(busy)
            told = True
        time.sleep(poll_s if deadline is None else min(poll_s, max(0.0, deadline - time.monotonic())))
