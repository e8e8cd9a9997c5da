"""``migctl doctor``: can CUDA programs run on this node's MIG devices? Every check with its fix.

Checks, in order (each ``pass``, ``warn`` or ``fail``):

1. NVML loads; the driver version (and the CUDA version it supports).
2. Per GPU: MIG-capable; MIG mode current vs pending (a pending change waits for a GPU reset);
   MIG enabled without MIG devices (CUDA then sees no device there); GPU instances without a
   compute instance (unusable); a change a crash or ``kill -9`` left part-way (its journal is
   still there: the GPU may be in neither layout until ``migctl recover``).
3. On NVSwitch boards (HGX A100/H100/H20/H200/B200): ``nvidia-fabricmanager`` active, with the
   driver's version. Without it CUDA fails with error 802 "system not yet initialized".
4. A smoke test on every MIG device at once, started exactly as ``migctl run`` starts a
   program (lease, environment, registration): with PyTorch importable it allocates and
   multiplies on ``cuda:0``; otherwise it initialises CUDA through ``libcuda`` and checks the
   process sees exactly its one MIG device. On the simulator the child models CUDA's start
   instead: it fails with 802 while the fabric manager is down on an NVSwitch board, and checks
   that it is registered as a process on its MIG device.

The smoke child is this module run as ``python -m migctl.ops.doctor --smoke``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from migctl.device import Gpu, MigDeviceInfo, Node
from migctl.device import system as node_system
from migctl.device.process import CUDA_ERROR_SYSTEM_NOT_READY
from migctl.errors import MigctlError
from migctl.ops import child as children
from migctl.ops import launch, leases
from migctl.ops.child import Child, blocked
from migctl.records.doctor import Check, CheckName, DoctorReport, Verdict

SMOKE_TIMEOUT_S = 60.0
_FM_START = "sudo systemctl enable --now nvidia-fabricmanager"
_FM_START_SIM = "migctl sim fabric-manager start"
PASS: Verdict = "pass"  # noqa: S105  (a verdict, not a password)
WARN: Verdict = "warn"
FAIL: Verdict = "fail"


def _check(
    name: CheckName,
    status: Verdict,
    message: str,
    fix: str | None = None,
    *,
    gpu: int | None = None,
    dev: MigDeviceInfo | None = None,
    output: Sequence[str] = (),
) -> Check:
    if dev is not None:
        return Check(name, status, message, fix, dev.gpu_index, dev.gi_id, dev.uuid, tuple(output))
    return Check(name, status, message, fix, gpu)


def diagnose(
    open_node: Callable[[], Node],
    *,
    gpus: str | None = None,
    smoke: bool = True,
    smoke_timeout: float = SMOKE_TIMEOUT_S,
) -> DoctorReport:
    """Run every check, in order; never raises for what it finds (a bad ``gpus`` selection is a
    :class:`~migctl.errors.UsageError`). ``open_node`` is called once: NVML failing to load is
    the first check's failure."""
    checks: list[Check] = []
    try:
        node = open_node()
    except MigctlError as exc:
        checks.append(_check("nvml", FAIL, f"NVML cannot be loaded: {exc.message}", exc.hint or _NO_DRIVER_FIX))
        return _report(checks, simulated=False)
    simulated = node.is_simulator
    sim_note = " (simulated)" if simulated else ""
    checks.append(_check("nvml", PASS, f"NVML loaded{sim_note}"))
    version = node_system.driver_version(node.nvml)
    cuda = node_system.cuda_driver_version(node.nvml)
    checks.append(_check("driver", PASS, f"driver {version}" + (f", CUDA {cuda}" if cuda else "")))
    chosen = node.select(gpus)
    usable = _gpu_checks(chosen, checks)
    _interrupted_check(node, {g.index for g in chosen}, checks)
    fm_broken = _fabric_manager_check(node, chosen, version, checks)
    if smoke:
        devices = [d for d in launch.inventory(node) if d.gpu_index in usable]
        if not devices:
            checks.append(
                _check(
                    "smoke",
                    WARN,
                    "no MIG device to test",
                    "create MIG instances (migctl create PROFILE -i GPU) to run CUDA programs on them",
                )
            )
        else:
            checks.extend(_smoke(node, devices, smoke_timeout, fm_broken))
    return _report(checks, simulated=simulated)


_NO_DRIVER_FIX = (
    "install the NVIDIA driver and load it (lsmod | grep nvidia); to try migctl without a GPU, use the simulator: "
    "migctl --sim h20x8 doctor"
)


def _interrupted_check(node: Node, chosen: set[int], checks: list[Check]) -> None:
    """A GPU an interrupted change left part-way (``migctl recover`` resolves it)."""
    from migctl.ops.journal import left_behind

    for change in left_behind(len(node.gpus)):
        if change.gpu is not None and change.gpu not in chosen:
            continue
        where = f"GPU {change.gpu}: " if change.gpu is not None else ""
        if change.state == "in_progress":
            checks.append(_check("interrupted-change", WARN, where + change.detail, gpu=change.gpu))
        else:
            checks.append(_check("interrupted-change", FAIL, where + change.detail, change.fix, gpu=change.gpu))


def _report(checks: list[Check], *, simulated: bool) -> DoctorReport:
    summary = {s: sum(1 for c in checks if c.status == s) for s in (PASS, WARN, FAIL)}
    return DoctorReport(simulated, tuple(checks), summary, summary[FAIL] == 0)


def _gpu_checks(gpus: list[Gpu], checks: list[Check]) -> set[int]:
    """Per-GPU MIG checks; returns the GPUs whose MIG devices are worth a smoke test."""
    usable: set[int] = set()
    for gpu in gpus:
        where = gpu.index
        name = f"GPU {gpu.index} ({gpu.name})"
        mode = gpu.mig_mode()
        if mode is None:
            checks.append(_check("mig", PASS, f"{name}: not MIG-capable; CUDA uses the whole GPU", gpu=where))
            continue
        if mode.is_pending:
            want = "enabled" if mode.pending else "disabled"
            checks.append(
                _check(
                    "mig-pending",
                    WARN,
                    f"{name}: MIG is {'enabled' if mode.current else 'disabled'}, {want} is pending until a GPU reset",
                    f"stop the processes using GPU {gpu.index}, then: migctl reset -i {gpu.index} "
                    f"(or cancel it: migctl mode {'enable' if mode.current else 'disable'} -i {gpu.index})",
                    gpu=where,
                )
            )
        if not mode.current:
            if not mode.is_pending:
                checks.append(_check("mig", PASS, f"{name}: MIG disabled; CUDA uses the whole GPU", gpu=where))
            continue
        gis = gpu.gpu_instances()
        devices = gpu.mig_devices()
        if not devices:
            checks.append(
                _check(
                    "mig-instances",
                    FAIL,
                    f"{name}: MIG is enabled but there are no MIG devices: CUDA sees no device on this GPU",
                    f"create instances (migctl create 1g.12gb:2 -i {gpu.index}, or migctl apply) "
                    f"or disable MIG (migctl mode disable -i {gpu.index})",
                    gpu=where,
                )
            )
        else:
            checks.append(_check("mig", PASS, f"{name}: MIG enabled, {len(devices)} MIG device(s)", gpu=where))
            usable.add(gpu.index)
        for gi in gis:
            if not gi.compute_instances():
                checks.append(
                    _check(
                        "mig-instances",
                        WARN,
                        f"{name}: GPU instance {gi.id} ({gi.profile}) has no compute instance: not usable by CUDA",
                        f"migctl create-ci -i {gpu.index} --gi {gi.id}, "
                        f"or destroy it: migctl destroy -i {gpu.index} --gi {gi.id}",
                        gpu=where,
                    )
                )
    return usable


def _fabric_manager_check(node: Node, gpus: list[Gpu], driver: str, checks: list[Check]) -> bool:
    """Returns whether the fabric manager is known to be broken on an NVSwitch system."""
    needing = [g.index for g in gpus if node_system.needs_fabric_manager(g)]
    if not needing:
        checks.append(_check("fabric-manager", PASS, "no NVSwitch: the fabric manager is not needed"))
        return False
    fm = node_system.fabric_manager(node.nvml)
    start = _FM_START_SIM if node.is_simulator else _FM_START
    gpus_text = ", ".join(map(str, needing))
    if fm.active is None:
        checks.append(
            _check(
                "fabric-manager",
                WARN,
                f"GPUs {gpus_text} sit on NVSwitch; could not tell whether nvidia-fabricmanager runs",
                "check: systemctl status nvidia-fabricmanager",
            )
        )
        return False
    if not fm.active:
        checks.append(
            _check(
                "fabric-manager",
                FAIL,
                f"nvidia-fabricmanager is not running; GPUs {gpus_text} sit on NVSwitch, so CUDA fails with "
                "error 802 'system not yet initialized'",
                f"start it: {start}" + ("" if node.is_simulator else f" (its version must be the driver's, {driver})"),
            )
        )
        return True
    if fm.version is not None and fm.version != driver:
        checks.append(
            _check(
                "fabric-manager",
                FAIL,
                f"nvidia-fabricmanager {fm.version} does not match driver {driver}: CUDA fails with error 802",
                f"install nvidia-fabricmanager {driver} (the driver's exact version) and restart it",
            )
        )
        return True
    checks.append(_check("fabric-manager", PASS, f"nvidia-fabricmanager active, version {fm.version or '?'}"))
    return False


# -- the smoke test ---------------------------------------------------------------------------------


def _smoke(node: Node, devices: list[MigDeviceInfo], timeout: float, fm_broken: bool) -> list[Check]:
    launcher = launch.Launcher(node)
    argv = [sys.executable, "-m", "migctl.ops.doctor", "--smoke"]
    results: list[Check] = []
    running: list[tuple[MigDeviceInfo, Child, leases.Lease, Path]] = []
    with tempfile.TemporaryDirectory(prefix="migctl-doctor-") as tmp, blocked((signal.SIGCHLD,)):
        for dev in devices:
            found = launcher.try_lease(dev, "migctl doctor smoke test")
            if not isinstance(found, leases.Lease):
                who = leases.describe_holder(launch.as_busy(found).holder)
                results.append(
                    _check(
                        "smoke",
                        WARN,
                        f"{launch.label(dev)} {dev.uuid}: not tested, {who}",
                        "run migctl doctor again when it is free",
                        dev=dev,
                    )
                )
                continue
            lease = found
            out = Path(tmp) / f"{dev.uuid}.out"
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                child = launcher.start(dev, lease, argv, new_session=True, stdout=fd, stderr=fd)
            except MigctlError:
                lease.release()
                raise
            finally:
                os.close(fd)
            running.append((dev, child, lease, out))
        deadline = time.monotonic() + timeout
        pending = list(running)
        while pending:
            pending = [r for r in pending if r[1].poll() is None]
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                break
            signal.sigtimedwait({signal.SIGCHLD}, min(left, 0.5))
        for dev, child, lease, out in running:
            timed_out = child.poll() is None
            child.signal_group(signal.SIGKILL)  # the smoke test leaves nothing behind
            if timed_out:
                os.waitpid(child.pid, 0)
                child.returncode = -signal.SIGKILL
            text = out.read_text(errors="replace").strip().splitlines()
            if timed_out:
                detail = f"no answer within {timeout:g} s"
            else:
                detail = text[-1] if text else children.describe_exit(child.returncode or 0)
                detail = detail.removeprefix("FAIL: ").removeprefix("ok: ")
            lease.release()
            message = f"{launch.label(dev)} {dev.uuid}: {detail}"
            if child.returncode == 0:
                results.append(_check("smoke", PASS, message, dev=dev, output=text[-20:]))
            else:
                fix = _smoke_fix(detail, fm_broken, node)
                results.append(_check("smoke", FAIL, message, fix, dev=dev, output=text[-20:]))
    return results


def _smoke_fix(detail: str, fm_broken: bool, node: Node) -> str:
    if str(CUDA_ERROR_SYSTEM_NOT_READY) in detail or fm_broken:
        return "start the fabric manager: " + (_FM_START_SIM if node.is_simulator else _FM_START)
    return "run a program there by hand to see more: migctl run --on <uuid> -- nvidia-smi -L"


# -- inside the smoke child ----------------------------------------------------------------------


def smoke_main() -> int:
    """The child's side: print what it sees, start CUDA on its one device; exit 0 when all is well."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    uuid = os.environ.get("MIGCTL_DEVICE_UUID", "")
    print(f"CUDA_VISIBLE_DEVICES={visible}")
    print(f"MIGCTL_DEVICE_UUID={uuid}")
    sys.stdout.flush()
    if not uuid or visible != uuid or "," in visible or not visible.startswith("MIG-"):
        print(f"FAIL: the process sees CUDA_VISIBLE_DEVICES={visible!r}, expected exactly its MIG device {uuid!r}")
        return 1
    if os.environ.get("MIGCTL_SIM"):
        from migctl.device.process import simulated_cuda_init

        problem = simulated_cuda_init(uuid)
        if problem is not None:
            code, text = problem
            print(f"FAIL: CUDA error {code}: {text} (simulated CUDA initialisation)")
            return 1
        print(f"ok: simulated CUDA sees exactly {uuid}; pid {os.getpid()} is registered on it")
        return 0
    if importlib.util.find_spec("torch") is not None:
        return _smoke_torch(uuid)
    return _smoke_libcuda(uuid)


def _smoke_torch(uuid: str) -> int:
    import torch  # type: ignore[import-not-found, unused-ignore]

    try:
        count = torch.cuda.device_count()
        if count != 1:
            print(f"FAIL: torch sees {count} CUDA devices, expected exactly 1 ({uuid})")
            return 1
        a = torch.randn(1024, 1024, device="cuda:0")
        value = float((a @ a).sum().item())
        torch.cuda.synchronize()
        name = torch.cuda.get_device_name(0)
    except Exception as exc:
        print(f"FAIL: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        return 1
    print(f"ok: torch {torch.__version__} multiplied 1024x1024 on cuda:0 = {name} (sum {value:.3g})")
    return 0


def _smoke_libcuda(uuid: str) -> int:
    path = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        cuda = ctypes.CDLL(path)
    except OSError:
        print("FAIL: libcuda.so.1 not found: the NVIDIA driver's CUDA library is not installed")
        return 1
    rc = cuda.cuInit(0)
    if rc != 0:
        print(f"FAIL: CUDA error {rc}: {_cu_error(cuda, rc)} (cuInit)")
        return 1
    count = ctypes.c_int(0)
    rc = cuda.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value != 1:
        print(f"FAIL: CUDA sees {count.value} devices (error {rc}), expected exactly 1 ({uuid})")
        return 1
    raw = (ctypes.c_ubyte * 16)()
    getter = getattr(cuda, "cuDeviceGetUuid_v2", None)
    if getter is not None and getter(raw, 0) == 0:
        hexed = bytes(raw).hex()
        seen = f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"
        if seen.lower() != uuid.lower().removeprefix("mig-"):
            print(f"FAIL: CUDA device 0 is MIG-{seen}, expected {uuid}")
            return 1
    print(f"ok: CUDA initialised and sees exactly {uuid} (PyTorch not installed: no matmul)")
    return 0


def _cu_error(cuda: Any, rc: int) -> str:
    text = ctypes.c_char_p()
    try:
        if cuda.cuGetErrorString(rc, ctypes.byref(text)) == 0 and text.value:
            return text.value.decode()
    except AttributeError:
        pass
    return "unknown"


if __name__ == "__main__" and "--smoke" in sys.argv[1:]:
    sys.exit(smoke_main())
