"""``migctl doctor``: can CUDA programs run on this node's MIG devices? Every check with its fix.

Checks, in order (each ``pass``, ``warn`` or ``fail``):

1. NVML loads; the driver version (and the CUDA version it supports).
2. Per GPU: MIG-capable; MIG mode current vs pending (a pending change waits for a GPU reset);
   MIG enabled without MIG devices (CUDA then sees no device there); GPU instances without a
   compute instance (unusable).
3. On NVSwitch boards (HGX A100/H100/H20/H200/B200): ``nvidia-fabricmanager`` active, with the
   driver's version. Without it CUDA fails with error 802 "system not yet initialized".
4. A smoke test on every MIG device at once, started exactly as ``migctl run`` starts a
   program (lease, environment, registration): with PyTorch importable it allocates and
   multiplies on ``cuda:0``; otherwise it initialises CUDA through ``libcuda`` and checks the
   process sees exactly its one MIG device. On the simulator the child models CUDA's start
   instead: it fails with 802 while the fabric manager is down on an NVSwitch board, and checks
   that it is registered as a process on its MIG device.
5. On a simulated node, a warning that CUDA cannot be real here and what the smoke test would
   do on hardware; and the installed PyTorch, when there is one: a CPU-only build cannot use
   any GPU (:mod:`migctl.torchcheck`).

The smoke child is this module run as ``python -m migctl.ops.doctor --smoke``.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from migctl.device import Gpu, MigDeviceInfo, Node
from migctl.device import system as node_system
from migctl.device.nvml import open_nvml
from migctl.device.process import CUDA_ERROR_SYSTEM_NOT_READY
from migctl.errors import MigctlError
from migctl.ops import child as children
from migctl.ops import launch, leases
from migctl.ops.child import Child, blocked
from migctl.records.doctor import Check, CheckName, DoctorReport, Verdict
from migctl.torchcheck import INSTALL_CUDA_BUILD, torch_build

SMOKE_TIMEOUT_S = 60.0
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
    checks.extend(_cuda_checks(simulated))
    return _report(checks, simulated=simulated)


def _cuda_checks(simulated: bool) -> list[Check]:
    """What the smoke test could not show: that CUDA is not real on a simulated node, and
    whether the installed PyTorch can use a GPU at all."""
    build = torch_build()
    out = []
    if simulated:
        on_hardware = (
            "multiply 1024x1024 with PyTorch on cuda:0" if build is not None and not build.cpu_only
            else "check through libcuda that CUDA sees exactly that device"
        )
        out.append(
            _check(
                "simulated",
                WARN,
                "simulated node: CUDA cannot be real here, so no CUDA program (PyTorch included) can run on its "
                "MIG devices; the smoke tests modelled CUDA's start (fabric manager, the process on its MIG "
                f"device). On hardware, each smoke test would start CUDA on its MIG device and {on_hardware}",
                "run migctl doctor on the GPU server for a real test",
            )
        )
    if build is not None:
        if build.cpu_only:
            where = " (on hardware too)" if simulated else ""
            out.append(
                _check("pytorch", WARN, f"{build.describe()} cannot use any GPU{where}", INSTALL_CUDA_BUILD)
            )
        elif not simulated:
            out.append(_check("pytorch", PASS, f"{build.describe()}: the smoke tests used it"))
    return out


_NO_DRIVER_FIX = (
    "install the NVIDIA driver and load it (lsmod | grep nvidia); to try migctl without a GPU, use the simulator: "
    "migctl --sim h20x8 doctor"
)


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
    start = node.platform.fabric_manager.start_hint(driver)
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
                f"start it: {start}",
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
        return "start the fabric manager: " + node.platform.fabric_manager.start_hint(
            node_system.driver_version(node.nvml)
        )
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
    try:
        check = open_nvml().platform.cuda.check(uuid)  # the node migctl started this process on
    except MigctlError as exc:
        print(f"FAIL: {exc.message}")
        return 1
    if not check.ok:
        code = f"CUDA error {check.cuda_error}: " if check.cuda_error is not None else ""
        print(f"FAIL: {code}{check.message}")
        return 1
    print(f"ok: {check.message}")
    return 0


if __name__ == "__main__" and "--smoke" in sys.argv[1:]:
    sys.exit(smoke_main())
