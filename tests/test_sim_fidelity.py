"""The MIG simulator behaves like the hardware (``docs/reference/mig-hardware.md``).

Each test drives the pynvml-shaped simulator (``migctl.sim.open``) or the device layer
(``migctl.device.open_node``) the way a real NVML client would, and checks one rule of the
hardware. Expected values are the reference's: §1.4 ``-lgipp``, §1.5 GI ID <-> placement, §1.6
compute instances, §1.7 ``+me``, §2 the observed default placements O1-O13, §3 error codes, §4 MIG
mode semantics, §6 and Appendix A MIG device UUIDs and ordering, nvml-python.md for the pynvml
traps. Real processes (``sleep``) stand in for CUDA clients.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pynvml
import pytest

from conftest import Cli
from migctl import sim
from migctl.core.geometry import Placement
from migctl.device import open_node

ENABLE, DISABLE = pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_DISABLE
MIG_UUID = re.compile(r"^MIG-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# §1.5: GI ID (RM swizzId) <-> memory span. 8-slot parts (span 8):
GI_ID_8 = {(0, 8): 0, (0, 4): 1, (4, 4): 2, (0, 2): 3, (2, 2): 4, (4, 2): 5, (6, 2): 6}
GI_ID_8.update({(k, 1): 7 + k for k in range(8)})
# A30 (span 4): 0 -> 0:4; 1 -> 0:2; 2 -> 2:2; 3-6 -> (id - 3):1
GI_ID_A30 = {(0, 4): 0, (0, 2): 1, (2, 2): 2, **{(k, 1): 3 + k for k in range(4)}}
# RTX PRO 6000 (12-unit grid): GI3..6 at 0:3..9:3, GI1 at 0:6 (and, by the same tree, GI2 at 6:6)
GI_ID_RTX = {(0, 12): 0, (0, 6): 1, (6, 6): 2, **{(3 * k, 3): 3 + k for k in range(4)}}

# §1.4 -lgipp of the 8-slot parts (A100-40, H100 80GB, H100 NVL; assumed for the others):
# profile ID -> (starts, size); with §1.2 instance counts.
LGIPP_8 = {
    19: ((0, 1, 2, 3, 4, 5, 6), 1),
    20: ((0, 1, 2, 3, 4, 5, 6), 1),
    15: ((0, 2, 4, 6), 2),
    14: ((0, 2, 4), 2),
    9: ((0, 4), 4),
    5: ((0,), 4),
    0: ((0,), 8),
}
INSTANCES_H100 = {19: 7, 20: 1, 15: 4, 14: 3, 9: 2, 5: 1, 0: 1}
LGIPP_A30 = {14: ((0, 1, 2, 3), 1), 21: ((0, 1, 2, 3), 1), 5: ((0, 2), 2), 6: ((0, 2), 2), 0: ((0,), 4)}
LGIPP_RTX = {14: ((0, 3, 6, 9), 3), 5: ((0, 6), 6), 0: ((0,), 12)}


# -- helpers ----------------------------------------------------------------------------------


def gi_placement(start: int, size: int) -> Any:
    p = pynvml.c_nvmlGpuInstancePlacement_t()
    p.start, p.size = start, size
    return p


def create_at(nvml: Any, dev: Any, profile_id: int, start: int, size: int) -> Any:
    return nvml.nvmlDeviceCreateGpuInstanceWithPlacement(dev, profile_id, ctypes.byref(gi_placement(start, size)))


def gi_where(nvml: Any, gi: Any) -> tuple[int, tuple[int, int]]:
    info = nvml.nvmlGpuInstanceGetInfo(gi)
    return int(info.id), (int(info.placement.start), int(info.placement.size))


def ci_where(nvml: Any, ci: Any) -> tuple[int, tuple[int, int]]:
    info = nvml.nvmlComputeInstanceGetInfo(ci)
    return int(info.id), (int(info.placement.start), int(info.placement.size))


def all_gis(nvml: Any, dev: Any, profile_ids: Any) -> list[tuple[int, int, tuple[int, int]]]:
    """(GI ID, profile ID, (start, size)) of every GPU instance, read through NVML."""
    out = []
    for pid in profile_ids:
        array = (pynvml.c_nvmlGpuInstance_t * 8)()
        count = ctypes.c_uint(0)
        nvml.nvmlDeviceGetGpuInstances(dev, pid, array, ctypes.byref(count))
        for i in range(count.value):
            gi_id, where = gi_where(nvml, array[i])
            out.append((gi_id, pid, where))
    return sorted(out)


def open_enabled(spec: str, state_dir: Path, index: int = 0, **kw: Any) -> tuple[Any, Any]:
    nvml = sim.open(spec, state_dir=state_dir, **kw)
    dev = nvml.nvmlDeviceGetHandleByIndex(index)
    assert nvml.nvmlDeviceSetMigMode(dev, ENABLE) == pynvml.NVML_SUCCESS
    return nvml, dev


def attach(state_dir: Path, nvml: Any, handle: Any, pid: int, memory_mib: int) -> None:
    """What CUDA does when ``pid`` creates a context on ``handle``'s device (the control plane)."""
    sim.open_control(None, state_dir=state_dir).attach(pid, uuid=nvml.nvmlDeviceGetUUID(handle), memory_mib=memory_mib)


def cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir)}
    env.pop("MIGCTL_SIM", None)
    return subprocess.run(
        [sys.executable, "-m", "migctl", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture
def spawn() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start real long-running processes (CUDA clients stand-ins); all are killed afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        argv = ["sleep", "120"] if shutil.which("sleep") else [sys.executable, "-c", "import time; time.sleep(120)"]
        p = subprocess.Popen(argv)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def stop(p: subprocess.Popen[bytes]) -> None:
    p.kill()
    p.wait()


# -- 1. resources: memory slices, instance counts, +me, unknown profiles, MIG disabled ----------


def test_instances_occupy_memory_slices_start_to_start_plus_size(state_dir: Path) -> None:
    nvml, dev = open_enabled("h100-80gb", state_dir)
    create_at(nvml, dev, 9, 0, 4)  # 3g.40gb holds slices 0-3
    for profile_id, start, size in [(14, 2, 2), (19, 3, 1), (19, 0, 1), (15, 2, 2), (5, 0, 4), (0, 0, 8)]:
        with pytest.raises(pynvml.NVMLError_InsufficientResources):
            create_at(nvml, dev, profile_id, start, size)
    # the slices right after the instance are free: [start, start+size) is half-open
    assert gi_where(nvml, create_at(nvml, dev, 14, 4, 2)) == (5, (4, 2))
    assert gi_where(nvml, create_at(nvml, dev, 19, 6, 1)) == (13, (6, 1))
    assert len(all_gis(nvml, dev, LGIPP_8)) == 3


@pytest.mark.parametrize("profile_id", sorted(INSTANCES_H100))
def test_a_full_instance_count_is_insufficient_resources(state_dir: Path, profile_id: int) -> None:
    nvml, dev = open_enabled("h100-80gb", state_dir)
    starts, size = LGIPP_8[profile_id]
    for start in starts[: INSTANCES_H100[profile_id]]:
        create_at(nvml, dev, profile_id, start, size)
    assert nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(dev, profile_id) == 0
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlDeviceCreateGpuInstance(dev, profile_id)
    assert len(all_gis(nvml, dev, LGIPP_8)) == INSTANCES_H100[profile_id]


@pytest.mark.parametrize(("spec", "me_profile", "plain_profile"), [("h100-80gb", 20, 19), ("a30", 21, 14)])
def test_only_one_plus_me_instance(state_dir: Path, spec: str, me_profile: int, plain_profile: int) -> None:
    nvml, dev = open_enabled(spec, state_dir)
    nvml.nvmlDeviceCreateGpuInstance(dev, me_profile)
    assert nvml.nvmlDeviceGetGpuInstanceRemainingCapacity(dev, me_profile) == 0
    with pytest.raises(pynvml.NVMLError_InsufficientResources) as exc:
        nvml.nvmlDeviceCreateGpuInstance(dev, me_profile)
    assert str(exc.value) == "Insufficient Resources"  # nvidia-smi: "...using profile 20: Insufficient Resources"
    nvml.nvmlDeviceCreateGpuInstance(dev, plain_profile)  # the plain 1g still fits beside it


def test_a30_only_one_2g_plus_me_instance(state_dir: Path) -> None:
    nvml, dev = open_enabled("a30", state_dir)
    create_at(nvml, dev, 6, 0, 2)
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        create_at(nvml, dev, 6, 2, 2)


@pytest.mark.parametrize(("spec", "profile_id"), [("h100-80gb", 21), ("h100-80gb", 1), ("a30", 19), ("a30", 9)])
def test_a_profile_the_gpu_lacks_is_invalid_argument(state_dir: Path, spec: str, profile_id: int) -> None:
    nvml, dev = open_enabled(spec, state_dir)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceCreateGpuInstance(dev, profile_id)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        create_at(nvml, dev, profile_id, 0, 1)


def test_create_while_mig_is_disabled_is_not_supported(state_dir: Path) -> None:
    nvml = sim.open("h100-80gb", state_dir=state_dir)
    dev = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetMigMode(dev) == [DISABLE, DISABLE]
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceCreateGpuInstance(dev, 19)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        create_at(nvml, dev, 9, 0, 4)


def test_with_placement_needs_byref_not_a_bare_struct(state_dir: Path) -> None:
    """nvml-python.md: pynvml forwards the argument unchanged; the C API takes a pointer."""
    nvml, dev = open_enabled("h100-80gb", state_dir)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceCreateGpuInstanceWithPlacement(dev, 9, gi_placement(4, 4))
    assert all_gis(nvml, dev, LGIPP_8) == []
    gi = nvml.nvmlDeviceCreateGpuInstanceWithPlacement(dev, 9, ctypes.byref(gi_placement(4, 4)))
    assert gi_where(nvml, gi) == (2, (4, 4))
    ci_place = pynvml.c_nvmlComputeInstancePlacement_t()
    ci_place.start, ci_place.size = 0, 1
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlGpuInstanceCreateComputeInstanceWithPlacement(gi, 0, ci_place)
    ci = nvml.nvmlGpuInstanceCreateComputeInstanceWithPlacement(gi, 0, ctypes.byref(ci_place))
    assert ci_where(nvml, ci) == (0, (0, 1))


@pytest.mark.parametrize(("profile_id", "slices", "start"), [(9, 3, 0), (9, 3, 4), (0, 7, 0), (5, 4 + 1, 0)])
def test_placement_size_is_the_memory_size_not_the_slice_count(
    state_dir: Path, profile_id: int, slices: int, start: int
) -> None:
    """A 3g placement is {0,4}:4 (-lgipp), not :3; a 7g is {0}:8."""
    nvml, dev = open_enabled("h100-80gb", state_dir)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        create_at(nvml, dev, profile_id, start, slices)
    _, size = LGIPP_8[profile_id]
    create_at(nvml, dev, profile_id, start, size)


# -- 2. default placement: where the driver puts an instance created without one (§2) -----------


def default_sequence(spec: str, state_dir: Path, profiles: list[int]) -> list[tuple[int, tuple[int, int]]]:
    nvml, dev = open_enabled(spec, state_dir)
    return [gi_where(nvml, nvml.nvmlDeviceCreateGpuInstance(dev, p)) for p in profiles]


@pytest.mark.parametrize("spec", ["h100-80gb", "h20", "h100-96gb", "h100-nvl", "a100-40gb"])
def test_o1_seven_1g_instances(state_dir: Path, spec: str) -> None:
    got = default_sequence(spec, state_dir, [19] * 7)
    assert [gi for gi, _ in got] == [13, 11, 12, 7, 8, 9, 10]
    assert [w for _, w in got] == [(6, 1), (4, 1), (5, 1), (0, 1), (1, 1), (2, 1), (3, 1)]


def test_o3_a100_19_14_5(state_dir: Path) -> None:
    assert default_sequence("a100-40gb", state_dir, [19, 14, 5]) == [(13, (6, 1)), (5, (4, 2)), (1, (0, 4))]


@pytest.mark.parametrize("spec", ["h100-80gb", "a100-40gb", "h20"])
def test_o7_two_3g_instances_upper_half_first(state_dir: Path, spec: str) -> None:
    assert default_sequence(spec, state_dir, [9, 9]) == [(2, (4, 4)), (1, (0, 4))]


def test_o8_h100_9_then_14(state_dir: Path) -> None:
    assert default_sequence("h100-80gb", state_dir, [9, 14]) == [(2, (4, 4)), (3, (0, 2))]


@pytest.mark.parametrize("spec", ["h100-96gb", "h100-80gb"])
def test_o9_o10_three_double_memory_1g(state_dir: Path, spec: str) -> None:
    assert default_sequence(spec, state_dir, [15, 15, 15]) == [(5, (4, 2)), (3, (0, 2)), (4, (2, 2))]


def test_o12_a30_14_14_5(state_dir: Path) -> None:
    assert default_sequence("a30", state_dir, [14, 14, 5]) == [(3, (0, 1)), (4, (1, 1)), (2, (2, 2))]


def test_o13_rtx_pro_four_1g(state_dir: Path) -> None:
    got = default_sequence("rtx-pro-6000", state_dir, [14] * 4)
    assert got == [(3, (0, 3)), (4, (3, 3)), (5, (6, 3)), (6, (9, 3))]


# -- 3. GI ID follows from placement; CI IDs and default CI ------------------------------------


@pytest.mark.parametrize(
    ("spec", "lgipp", "table"),
    [("h100-80gb", LGIPP_8, GI_ID_8), ("a100-40gb", LGIPP_8, GI_ID_8), ("a30", LGIPP_A30, GI_ID_A30),
     ("rtx-pro-6000", LGIPP_RTX, GI_ID_RTX)],
)  # fmt: skip
def test_gi_id_follows_from_placement(
    state_dir: Path, spec: str, lgipp: dict[int, tuple[tuple[int, ...], int]], table: dict[tuple[int, int], int]
) -> None:
    nvml, dev = open_enabled(spec, state_dir)
    for profile_id, (starts, size) in lgipp.items():
        for start in starts:
            gi = create_at(nvml, dev, profile_id, start, size)
            assert gi_where(nvml, gi) == (table[(start, size)], (start, size)), (profile_id, start)
            by_id = nvml.nvmlDeviceGetGpuInstanceById(dev, table[(start, size)])
            assert gi_where(nvml, by_id)[0] == table[(start, size)]
            nvml.nvmlGpuInstanceDestroy(gi)


@pytest.mark.parametrize(
    ("spec", "gi_profile", "default_ci", "ci_placement"),
    [
        ("h100-80gb", 9, 2, (0, 4)),  # §1.6: H100 3g default CI 2, placement 0:4
        ("h100-80gb", 14, 1, (0, 2)),  # H100 2g default CI 1, placement 0:2
        ("h100-80gb", 19, 0, (0, 1)),  # 1g CIs: 0:1
        ("a100-40gb", 9, 2, None),  # MIG guide: 3g.20gb (2*)
        ("a100-40gb", 5, 3, None),  # 4g.20gb (3*)
        ("a100-40gb", 14, 1, None),  # 2g.10gb (1*)
        ("a100-40gb", 19, 0, (0, 1)),  # 1g.5gb (0*)
        ("a30", 5, 1, None),  # 2g.12gb (1*)
        ("a30", 14, 0, (0, 1)),  # 1g.6gb (0*)
        ("rtx-pro-6000", 5, 1, None),  # 2g.48gb default CI 1
        ("rtx-pro-6000", 14, 0, None),  # 1g.24gb default CI 0
    ],
)
def test_default_ci_spans_the_gi(
    state_dir: Path, spec: str, gi_profile: int, default_ci: int, ci_placement: tuple[int, int] | None
) -> None:
    node = open_node(sim=spec, state_dir=str(state_dir))
    gpu = node.gpus[0]
    gpu.set_mig_mode(True)
    gi = gpu.create_gpu_instance(gi_profile)
    default = gi.default_ci_profile()
    assert default is not None and default.id == default_ci
    ci = gi.create_compute_instance(default.id)
    assert ci.id == 0
    if ci_placement is not None:
        assert (ci.placement.start, ci.placement.size) == ci_placement
    assert ci.placement.start == 0
    # a full-size CI consumes the GI: every CI profile shows 0 free (-lcip "0/3")
    gi2 = gpu.gpu_instance(gi.id)
    assert gi2 is not None and all(gi2.ci_remaining_capacity(p.id) == 0 for p in gi2.ci_profiles())


def test_double_memory_1g_default_ci_is_rev1(state_dir: Path) -> None:
    """§1.6: H100 1g.20gb / GH200 1g.24gb (GI profile 15): default CI ID 7 (1_SLICE_REV1)."""
    for spec in ("h100-80gb", "h100-96gb"):
        node = open_node(sim=spec, state_dir=str(state_dir / spec))
        gpu = node.gpus[0]
        gpu.set_mig_mode(True)
        gi = gpu.create_gpu_instance(15)
        default = gi.default_ci_profile()
        assert default is not None and default.id == pynvml.NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE_REV1 == 7
        assert gi.create_compute_instance(7).id == 0


def test_ci_ids_start_at_0_in_each_gi_and_three_1c_get_0_1_2(state_dir: Path) -> None:
    nvml, dev = open_enabled("a100-40gb", state_dir)
    upper = nvml.nvmlDeviceCreateGpuInstance(dev, 9)
    lower = nvml.nvmlDeviceCreateGpuInstance(dev, 9)
    assert ci_where(nvml, nvml.nvmlGpuInstanceCreateComputeInstance(upper, 2)) == (0, (0, 4))
    # 1c.3g.20gb (CI profile 0) x3 in the other 3g: IDs 0, 1, 2, one compute slice each
    ones = [ci_where(nvml, nvml.nvmlGpuInstanceCreateComputeInstance(lower, 0)) for _ in range(3)]
    assert [i for i, _ in ones] == [0, 1, 2]
    assert ones[0][1] == (0, 1)
    assert sorted(w for _, w in ones) == [(0, 1), (1, 1), (2, 1)]
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlGpuInstanceCreateComputeInstance(lower, 0)  # -lcip: 1c.3g.20gb x3


def test_ci_profiles_of_an_a100_3g_match_lcip(state_dir: Path) -> None:
    """§1.6 (MIG guide): 1c.3g.20gb (0, x3), 2c.3g.20gb (1, x1), 3g.20gb (2*, x1)."""
    node = open_node(sim="a100-40gb", state_dir=str(state_dir))
    gpu = node.gpus[0]
    gpu.set_mig_mode(True)
    gi = gpu.create_gpu_instance(9)
    got = {(p.id, p.name, p.instance_count, p.is_default) for p in gi.ci_profiles()}
    assert got == {(0, "1c.3g.20gb", 3, False), (1, "2c.3g.20gb", 1, False), (2, "3g.20gb", 1, True)}


# -- 4. MIG mode: current / pending, Ampere vs Hopper ------------------------------------------


@pytest.mark.parametrize("spec", ["a100-40gb", "a30"])
def test_ampere_enable_while_in_use_stays_pending_until_reset(
    state_dir: Path, spawn: Callable[[], subprocess.Popen[bytes]], spec: str
) -> None:
    nvml = sim.open(spec, state_dir=state_dir)
    dev = nvml.nvmlDeviceGetHandleByIndex(0)
    client = spawn()
    attach(state_dir, nvml, dev, client.pid, 100)
    assert nvml.nvmlDeviceSetMigMode(dev, ENABLE) == pynvml.NVML_ERROR_IN_USE  # activation status
    assert nvml.nvmlDeviceGetMigMode(dev) == [DISABLE, ENABLE]
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceCreateGpuInstance(dev, 0)  # not effective yet
    busy = cli(state_dir, "sim", "reset-gpu", "0")
    assert busy.returncode == 5, busy.stderr  # a reset is refused while the client runs
    assert "Traceback" not in busy.stderr
    assert nvml.nvmlDeviceGetMigMode(dev) == [DISABLE, ENABLE]
    stop(client)
    done = cli(state_dir, "sim", "reset-gpu", "0")
    assert done.returncode == 0, done.stderr
    assert nvml.nvmlDeviceGetMigMode(dev) == [ENABLE, ENABLE]
    nvml.nvmlDeviceCreateGpuInstance(dev, 0)  # the full-GPU profile (ID 0 on both)


@pytest.mark.parametrize("spec", ["a100-40gb", "a30"])
def test_ampere_enable_when_idle_takes_effect(state_dir: Path, spec: str) -> None:
    """The driver's own reset succeeds on an idle GPU."""
    nvml = sim.open(spec, state_dir=state_dir)
    dev = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceSetMigMode(dev, ENABLE) == pynvml.NVML_SUCCESS
    assert nvml.nvmlDeviceGetMigMode(dev) == [ENABLE, ENABLE]


@pytest.mark.parametrize("spec", ["h100-80gb", "h20"])
def test_hopper_mode_change_is_immediate_when_idle_refused_in_use(
    state_dir: Path, spawn: Callable[[], subprocess.Popen[bytes]], spec: str
) -> None:
    nvml = sim.open(spec, state_dir=state_dir)
    dev = nvml.nvmlDeviceGetHandleByIndex(0)
    client = spawn()
    attach(state_dir, nvml, dev, client.pid, 100)
    with pytest.raises(pynvml.NVMLError_InUse) as exc:
        nvml.nvmlDeviceSetMigMode(dev, ENABLE)
    assert str(exc.value) == "In use by another client"
    assert nvml.nvmlDeviceGetMigMode(dev) == [DISABLE, DISABLE]  # nothing pending on Hopper
    stop(client)
    assert nvml.nvmlDeviceSetMigMode(dev, ENABLE) == pynvml.NVML_SUCCESS
    assert nvml.nvmlDeviceGetMigMode(dev) == [ENABLE, ENABLE]  # no reset needed
    assert nvml.nvmlDeviceSetMigMode(dev, DISABLE) == pynvml.NVML_SUCCESS
    assert nvml.nvmlDeviceGetMigMode(dev) == [DISABLE, DISABLE]


@pytest.mark.parametrize(("spec", "kept"), [("h100-80gb", False), ("h20", False), ("a100-40gb", True), ("a30", True)])
def test_reload_driver_loses_mig_mode_on_hopper_keeps_it_on_ampere(state_dir: Path, spec: str, kept: bool) -> None:
    nvml, dev = open_enabled(spec, state_dir)
    result = cli(state_dir, "sim", "reload-driver")
    assert result.returncode == 0, result.stderr
    want = ENABLE if kept else DISABLE
    assert nvml.nvmlDeviceGetMigMode(dev) == [want, want]


def test_mode_via_cli_pending_on_ampere_until_sim_reset_gpu(
    migctl: Callable[..., Any], spawn: Callable[[], subprocess.Popen[bytes]]
) -> None:
    client = spawn()
    assert migctl("--sim", "a100-40gb", "sim", "attach", "--pid", str(client.pid), "-i", "0").code == 0
    enable = migctl("--sim", "a100-40gb", "mode", "enable", "-i", "0", "--json")
    assert enable.code == 7, enable.out  # ResetRequired: pending
    assert enable.json()["gpus"][0]["result"] == "pending"
    assert migctl("--sim", "a100-40gb", "status", "--json").json()["gpus"][0]["mig"] == {
        "current": False,
        "pending": True,
    }
    stop(client)
    assert migctl("--sim", "a100-40gb", "sim", "reset-gpu", "0").code == 0
    assert migctl("--sim", "a100-40gb", "status", "--json").json()["gpus"][0]["mig"] == {
        "current": True,
        "pending": True,
    }


# -- 5. destroy refusals --------------------------------------------------------------------------


def test_destroy_gi_with_cis_or_ci_with_a_process_is_in_use(
    state_dir: Path, spawn: Callable[[], subprocess.Popen[bytes]]
) -> None:
    nvml, dev = open_enabled("h100-80gb", state_dir)
    gi = nvml.nvmlDeviceCreateGpuInstance(dev, 14)
    ci = nvml.nvmlGpuInstanceCreateComputeInstance(gi, 1)
    with pytest.raises(pynvml.NVMLError_InUse):
        nvml.nvmlGpuInstanceDestroy(gi)
    mig = nvml.nvmlComputeInstanceGetInfo(ci).device
    client = spawn()
    attach(state_dir, nvml, mig, client.pid, 100)
    with pytest.raises(pynvml.NVMLError_InUse):
        nvml.nvmlComputeInstanceDestroy(ci)
    assert len(all_gis(nvml, dev, LGIPP_8)) == 1
    stop(client)
    nvml.nvmlComputeInstanceDestroy(ci)
    nvml.nvmlGpuInstanceDestroy(gi)
    assert all_gis(nvml, dev, LGIPP_8) == []


# -- 6. MIG devices: UUIDs, order, handles ------------------------------------------------------


def test_mig_uuid_is_stable_for_its_life_and_new_when_recreated(state_dir: Path) -> None:
    nvml, dev = open_enabled("h20", state_dir)
    gi = create_at(nvml, dev, 19, 6, 1)
    ci = nvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    uuid = nvml.nvmlDeviceGetUUID(nvml.nvmlComputeInstanceGetInfo(ci).device)
    assert MIG_UUID.match(uuid)
    # same from a fresh session and from another process
    again = sim.open(None, state_dir=state_dir)
    mig = again.nvmlDeviceGetMigDeviceHandleByIndex(again.nvmlDeviceGetHandleByIndex(0), 0)
    assert again.nvmlDeviceGetUUID(mig) == uuid
    script = (
        "import sys; from migctl import sim; n = sim.open(None, state_dir=sys.argv[1]); "
        "d = n.nvmlDeviceGetHandleByIndex(0); print(n.nvmlDeviceGetUUID(n.nvmlDeviceGetMigDeviceHandleByIndex(d, 0)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(state_dir)], capture_output=True, text=True, check=True, timeout=60
    )
    assert other.stdout.strip() == uuid
    # destroyed and re-created at the same place with the same IDs: a new UUID
    nvml.nvmlComputeInstanceDestroy(ci)
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetHandleByUUID(uuid)
    ci2 = nvml.nvmlGpuInstanceCreateComputeInstance(gi, 0)
    assert ci_where(nvml, ci2)[0] == 0
    uuid2 = nvml.nvmlDeviceGetUUID(nvml.nvmlComputeInstanceGetInfo(ci2).device)
    assert MIG_UUID.match(uuid2) and uuid2 != uuid


def test_mig_device_index_follows_gi_order_a30_example(state_dir: Path) -> None:
    """Appendix A: on A30, 2g.12gb GI 2 is Device 0, ahead of GI 3 and 4 (ascending GI ID)."""
    nvml, dev = open_enabled("a30", state_dir)
    gis = [nvml.nvmlDeviceCreateGpuInstance(dev, p) for p in (14, 14, 5)]  # O12: GI 3, 4, 2
    defaults = {14: 0, 5: 1}  # §1.6: A30 1g.6gb default CI 0, 2g.12gb default CI 1
    for gi, p in zip(gis, (14, 14, 5), strict=True):
        nvml.nvmlGpuInstanceCreateComputeInstance(gi, defaults[p])
    assert nvml.nvmlDeviceGetMaxMigDeviceCount(dev) >= 3
    order = []
    for i in range(3):
        mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(dev, i)
        order.append((nvml.nvmlDeviceGetGpuInstanceId(mig), nvml.nvmlDeviceGetComputeInstanceId(mig)))
        assert nvml.nvmlDeviceGetIndex(mig) == i
    assert order == [(2, 0), (3, 0), (4, 0)]
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetMigDeviceHandleByIndex(dev, 3)
    node = open_node(sim="a30", state_dir=str(state_dir))
    listed = node.gpus[0].mig_devices()
    assert [(m.index, m.gi_id, m.profile) for m in listed] == [(0, 2, "2g.12gb"), (1, 3, "1g.6gb"), (2, 4, "1g.6gb")]


def test_handle_by_uuid_for_gpu_and_mig_and_is_mig_quirk(state_dir: Path) -> None:
    nvml, dev = open_enabled("h100-80gb", state_dir)
    gi = nvml.nvmlDeviceCreateGpuInstance(dev, 9)
    ci = nvml.nvmlGpuInstanceCreateComputeInstance(gi, 2)
    mig = nvml.nvmlComputeInstanceGetInfo(ci).device
    gpu_uuid, mig_uuid = nvml.nvmlDeviceGetUUID(dev), nvml.nvmlDeviceGetUUID(mig)
    assert gpu_uuid.startswith("GPU-") and MIG_UUID.match(mig_uuid)
    by_gpu, by_mig = nvml.nvmlDeviceGetHandleByUUID(gpu_uuid), nvml.nvmlDeviceGetHandleByUUID(mig_uuid)
    assert nvml.nvmlDeviceGetUUID(by_gpu) == gpu_uuid
    assert nvml.nvmlDeviceGetUUID(by_mig) == mig_uuid
    assert nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(by_mig)) == gpu_uuid
    assert (nvml.nvmlDeviceGetGpuInstanceId(by_mig), nvml.nvmlDeviceGetComputeInstanceId(by_mig)) == (2, 0)
    # pynvml returns the c_uint object itself, not an int
    is_mig, is_gpu = nvml.nvmlDeviceIsMigDeviceHandle(by_mig), nvml.nvmlDeviceIsMigDeviceHandle(by_gpu)
    assert isinstance(is_mig, ctypes.c_uint) and isinstance(is_gpu, ctypes.c_uint)
    assert (is_mig.value, is_gpu.value) == (1, 0)
    with pytest.raises(pynvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetHandleByUUID("MIG-00000000-0000-0000-0000-000000000000")
    # §6 / pynvml naming: "<GPU name> MIG <profile>"
    assert nvml.nvmlDeviceGetName(by_mig) == "NVIDIA H100 80GB HBM3 MIG 3g.40gb"


def test_a_smaller_compute_instance_names_its_mig_device_1c_gi(state_dir: Path, migctl: Cli) -> None:
    """MIG user guide, "MIG Device Names": a 3g.20gb split into compute instances gives MIG devices
    ``1c.3g.20gb`` and ``2c.3g.20gb``; ``nvidia-smi -L`` prints ``MIG 1c.3g.20gb Device 0``
    (nvmlDeviceGetName: ``<GPU name> MIG 1c.3g.20gb``). Only a compute instance that fills its GPU
    instance carries the GPU instance's name."""
    nvml, dev = open_enabled("a100-40gb", state_dir)
    gi = nvml.nvmlDeviceCreateGpuInstance(dev, 9)  # 3g.20gb
    one, two = (nvml.nvmlGpuInstanceCreateComputeInstance(gi, p) for p in (0, 1))  # §1.6: 1c (0), 2c (1)
    names = [nvml.nvmlDeviceGetName(nvml.nvmlComputeInstanceGetInfo(ci).device) for ci in (one, two)]
    assert names == ["NVIDIA A100-SXM4-40GB MIG 1c.3g.20gb", "NVIDIA A100-SXM4-40GB MIG 2c.3g.20gb"]
    full = nvml.nvmlGpuInstanceCreateComputeInstance(nvml.nvmlDeviceCreateGpuInstance(dev, 9), 2)
    assert nvml.nvmlDeviceGetName(nvml.nvmlComputeInstanceGetInfo(full).device) == "NVIDIA A100-SXM4-40GB MIG 3g.20gb"
    listed = migctl("--sim", "a100-40gb", "devices").out.splitlines()
    # (the second 3g.20gb went to slots 0-3, GI 1, so its MIG device is listed first)
    assert [line.split()[1] for line in listed if line.strip().startswith("MIG ")] == [
        "3g.20gb", "1c.3g.20gb", "2c.3g.20gb"]
    node = open_node(sim="a100-40gb", state_dir=str(state_dir))
    assert [m.profile for m in node.gpus[0].mig_devices()] == ["3g.20gb", "1c.3g.20gb", "2c.3g.20gb"]


@pytest.mark.parametrize("spec", ["h20", "a30", "rtx-pro-6000"])
def test_mig_device_names_follow_the_compute_slices_rule_for_every_profile(spec: str, state_dir: Path) -> None:
    """For every GPU-instance profile and each of its compute-instance profiles: the MIG device is
    ``<GPU name> MIG <c>c.<GI profile>`` when the compute instance has fewer slices than its GPU
    instance, else ``<GPU name> MIG <GI profile>`` (the H20's ``MIG 1c.3g.48gb``, ``+me`` and
    ``+gfx`` names included)."""
    node = open_node(sim=spec, state_dir=str(state_dir))
    gpu = node.gpus[0]
    gpu.set_mig_mode(True)
    checked = 0
    for prof in gpu.profiles():
        gi = gpu.create_gpu_instance(prof.id)
        for cip in gi.ci_profiles():
            ci = gi.create_compute_instance(cip.id)
            want = prof.name if cip.slice_count == prof.slice_count else f"{cip.slice_count}c.{prof.name}"
            (mig,) = [m for m in gpu.mig_devices() if (m.gi_id, m.ci_id) == (gi.id, ci.id)]
            assert mig.profile == want, (prof.name, cip.name)
            checked += 1
            ci.destroy()
        gi.destroy()
    assert checked > len(gpu.profiles())  # some profiles have smaller compute instances


# -- 7. processes ---------------------------------------------------------------------------


def wait_exited(p: subprocess.Popen[bytes]) -> None:
    """Wait until ``p`` has exited but leave it unreaped (a zombie), as a crashed client may be."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)
    raise AssertionError("process did not exit")


@pytest.mark.parametrize("reap", [True, False])
def test_processes_on_a_mig_device_are_reported_and_vanish_on_exit(
    state_dir: Path, spawn: Callable[[], subprocess.Popen[bytes]], reap: bool
) -> None:
    nvml, dev = open_enabled("h100-80gb", state_dir)
    busy_gi, idle_gi = nvml.nvmlDeviceCreateGpuInstance(dev, 9), nvml.nvmlDeviceCreateGpuInstance(dev, 9)
    busy = nvml.nvmlComputeInstanceGetInfo(nvml.nvmlGpuInstanceCreateComputeInstance(busy_gi, 2)).device
    idle = nvml.nvmlComputeInstanceGetInfo(nvml.nvmlGpuInstanceCreateComputeInstance(idle_gi, 2)).device
    client = spawn()
    attach(state_dir, nvml, busy, client.pid, 100)

    on_mig = nvml.nvmlDeviceGetComputeRunningProcesses(busy)
    assert [(p.pid, p.usedGpuMemory) for p in on_mig] == [(client.pid, 100 * 2**20)]
    assert nvml.nvmlDeviceGetComputeRunningProcesses(idle) == []
    on_gpu = nvml.nvmlDeviceGetComputeRunningProcesses(dev)
    assert [(p.pid, p.gpuInstanceId, p.computeInstanceId) for p in on_gpu] == [(client.pid, 2, 0)]

    if reap:
        stop(client)
    else:
        client.kill()
        wait_exited(client)  # exited, not yet reaped by its parent: its GPU context is gone all the same
    assert nvml.nvmlDeviceGetComputeRunningProcesses(busy) == []
    assert nvml.nvmlDeviceGetComputeRunningProcesses(dev) == []
    nvml.nvmlComputeInstanceDestroy(nvml.nvmlGpuInstanceGetComputeInstanceById(busy_gi, 0))


def test_process_on_a_gpu_with_mig_disabled_has_no_instance_ids(
    state_dir: Path, spawn: Callable[[], subprocess.Popen[bytes]]
) -> None:
    nvml = sim.open("h20", state_dir=state_dir)
    dev = nvml.nvmlDeviceGetHandleByIndex(0)
    client = spawn()
    attach(state_dir, nvml, dev, client.pid, 50)
    (p,) = nvml.nvmlDeviceGetComputeRunningProcesses(dev)
    assert (p.pid, p.gpuInstanceId, p.computeInstanceId) == (client.pid, 0xFFFFFFFF, 0xFFFFFFFF)


# -- persistence and concurrency ------------------------------------------------------------------


def test_what_one_process_creates_another_sees(state_dir: Path) -> None:
    nvml, dev = open_enabled("h100-80gbx2", state_dir)
    script = textwrap.dedent(
        """
        import ctypes, json, sys
        from migctl import sim
        n = sim.open("h100-80gbx2", state_dir=sys.argv[1])
        d = n.nvmlDeviceGetHandleByIndex(0)
        gi = n.nvmlDeviceCreateGpuInstance(d, 9)
        ci = n.nvmlGpuInstanceCreateComputeInstance(gi, 2)
        info = n.nvmlGpuInstanceGetInfo(gi)
        print(json.dumps([info.id, n.nvmlDeviceGetUUID(n.nvmlComputeInstanceGetInfo(ci).device)]))
        """
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(state_dir)], capture_output=True, text=True, timeout=60, check=True
    )
    gi_id, uuid = json.loads(other.stdout)
    assert gi_id == 2
    assert all_gis(nvml, dev, LGIPP_8) == [(2, 9, (4, 4))]
    assert nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByUUID(uuid)) == uuid
    assert nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(1)) == [DISABLE, DISABLE]


WORKER = textwrap.dedent(
    """
    import sys, time, pynvml
    from migctl import sim
    state, profile, attempts, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    n = sim.open(None, state_dir=state)
    d = n.nvmlDeviceGetHandleByIndex(0)
    open(go + "." + str(__import__("os").getpid()), "w").close()  # ready
    while not __import__("os").path.exists(go):
        time.sleep(0.001)
    made = 0
    for _ in range(attempts):
        try:
            n.nvmlDeviceCreateGpuInstance(d, profile)
            made += 1
        except pynvml.NVMLError_InsufficientResources:
            pass
    print(made)
    """
)

CHURN = textwrap.dedent(
    """
    import sys, time, pynvml
    from migctl import sim
    state, rounds, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    n = sim.open(None, state_dir=state)
    d = n.nvmlDeviceGetHandleByIndex(0)
    open(go + "." + str(__import__("os").getpid()), "w").close()  # ready
    while not __import__("os").path.exists(go):
        time.sleep(0.001)
    for _ in range(rounds):
        gi = n.nvmlDeviceCreateGpuInstance(d, 19)
        ci = n.nvmlGpuInstanceCreateComputeInstance(gi, 0)
        n.nvmlComputeInstanceDestroy(ci)
        n.nvmlGpuInstanceDestroy(gi)
    print("ok")
    """
)


def run_together(argvs: list[list[str]], go: Path) -> list[str]:
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in argvs]
    deadline = time.monotonic() + 60
    while len(list(go.parent.glob(go.name + ".*"))) < len(procs):  # every worker waits at the gate
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a worker did not start"
        time.sleep(0.01)
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    return outs


def test_concurrent_creates_never_overlap_or_lose_an_instance(state_dir: Path, tmp_path: Path) -> None:
    nvml, dev = open_enabled("h100-80gb", state_dir)
    go = tmp_path / "go"
    outs = run_together(
        [
            [sys.executable, "-c", WORKER, str(state_dir), "19", "7", str(go)],
            [sys.executable, "-c", WORKER, str(state_dir), "14", "3", str(go)],
            [sys.executable, "-c", WORKER, str(state_dir), "19", "7", str(go)],
        ],
        go,
    )
    made = sum(int(o) for o in outs)
    gis = all_gis(nvml, dev, LGIPP_8)
    assert len(gis) == made  # every successful create is still there
    assert len({g[0] for g in gis}) == len(gis)  # unique GI IDs
    spans = [Placement(*where) for _, _, where in gis]
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    for gi_id, profile_id, where in gis:
        assert GI_ID_8[where] == gi_id
        assert where[0] in LGIPP_8[profile_id][0] and where[1] == LGIPP_8[profile_id][1]
    # the 1g creators kept trying: no 1g slot can be left free
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlDeviceCreateGpuInstance(dev, 19)


def test_concurrent_create_destroy_churn_leaves_a_consistent_node(state_dir: Path, tmp_path: Path) -> None:
    nvml, dev = open_enabled("h100-80gb", state_dir)
    go = tmp_path / "go"
    outs = run_together([[sys.executable, "-c", CHURN, str(state_dir), "25", str(go)] for _ in range(3)], go)
    assert outs == ["ok"] * 3  # no create was refused, no destroy found its instance gone
    assert all_gis(nvml, dev, LGIPP_8) == []
    for f in (state_dir / "sim").glob("*.json"):
        json.loads(f.read_text())


def test_a_different_spec_than_the_stored_node_names_sim_reset(state_dir: Path) -> None:
    sim.open("h20x8", state_dir=state_dir)
    with pytest.raises(sim.SimSpecError) as exc:
        sim.open("a30", state_dir=state_dir)
    assert "sim reset" in str(exc.value) and "h20x8" in str(exc.value)
    from migctl.errors import UsageError

    with pytest.raises(UsageError, match="sim reset"):
        open_node(sim="h100-80gbx2", state_dir=str(state_dir))
    # the same node spelled the same way opens fine, and reset replaces it
    assert len(open_node(sim="h20x8", state_dir=str(state_dir)).gpus) == 8
    sim.reset("a30", state_dir=state_dir)
    a30 = sim.open("a30", state_dir=state_dir)
    assert a30.nvmlDeviceGetName(a30.nvmlDeviceGetHandleByIndex(0)) == "NVIDIA A30"


# -- MIGCTL_SIM_FAULTS and MIGCTL_SIM_LATENCY -----------------------------------------------------


def test_fault_on_the_nth_create_fails_exactly_that_call(state_dir: Path) -> None:
    nvml, dev = open_enabled("h100-80gb", state_dir, faults="create-gi@3=INSUFFICIENT_RESOURCES")
    nvml.nvmlDeviceCreateGpuInstance(dev, 19)
    create_at(nvml, dev, 19, 0, 1)  # both create calls count
    with pytest.raises(pynvml.NVMLError_InsufficientResources):
        nvml.nvmlDeviceCreateGpuInstance(dev, 19)
    assert len(all_gis(nvml, dev, LGIPP_8)) == 2  # the failed call changed nothing
    nvml.nvmlDeviceCreateGpuInstance(dev, 19)
    nvml.nvmlDeviceCreateGpuInstance(dev, 19)
    assert len(all_gis(nvml, dev, LGIPP_8)) == 4


def test_fault_on_every_destroy(state_dir: Path) -> None:
    nvml, dev = open_enabled("h100-80gb", state_dir, faults="destroy-gi=UNKNOWN")
    gis = [nvml.nvmlDeviceCreateGpuInstance(dev, 9) for _ in range(2)]
    for gi in gis:
        for _ in range(2):
            with pytest.raises(pynvml.NVMLError_Unknown):
                nvml.nvmlGpuInstanceDestroy(gi)
    assert len(all_gis(nvml, dev, LGIPP_8)) == 2


def test_fault_scoped_to_one_gpu(state_dir: Path) -> None:
    nvml = sim.open("h20x2", state_dir=state_dir, faults="set-mig-mode:1=NO_PERMISSION")
    nvml.nvmlDeviceSetMigMode(nvml.nvmlDeviceGetHandleByIndex(0), ENABLE)
    with pytest.raises(pynvml.NVMLError_NoPermission):
        nvml.nvmlDeviceSetMigMode(nvml.nvmlDeviceGetHandleByIndex(1), ENABLE)


def test_a_transient_read_fault_is_retried_by_the_device_layer(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = sim.open("h20x8", state_dir=state_dir, faults="read@1=UNKNOWN")
    with pytest.raises(pynvml.NVMLError_Unknown):
        raw.nvmlDeviceGetCount()
    assert raw.nvmlDeviceGetCount() == 8
    monkeypatch.setenv("MIGCTL_SIM_FAULTS", "read@1=UNKNOWN")
    node = open_node(sim="h20x8", state_dir=str(state_dir))  # its very first query fails once
    assert [g.name for g in node.gpus] == ["NVIDIA H20"] * 8
    monkeypatch.setenv("MIGCTL_SIM_FAULTS", "read@2=UNKNOWN,read@5=TIMEOUT")
    assert len(open_node(sim="h20x8", state_dir=str(state_dir)).gpus[0].profiles()) == 7


def test_a_failing_write_is_not_retried_by_the_device_layer(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim.open("h20", state_dir=state_dir)
    monkeypatch.setenv("MIGCTL_SIM_FAULTS", "set-mig-mode@1=UNKNOWN")
    gpu = open_node(sim="h20", state_dir=str(state_dir)).gpus[0]
    with pytest.raises(pynvml.NVMLError_Unknown):
        gpu.set_mig_mode(True)
    mode = gpu.mig_mode()
    assert mode is not None and not mode.current


@pytest.mark.parametrize(
    "text", ["create-gi@x=UNKNOWN", "bogus-op=UNKNOWN", "create-gi=NO_SUCH_ERROR", "create-gi", "read@1"]
)
def test_bad_fault_syntax_is_a_clear_error(state_dir: Path, text: str) -> None:
    with pytest.raises(sim.SimSpecError, match="MIGCTL_SIM_FAULTS"):
        sim.open("h20", state_dir=state_dir, faults=text)
    env_run = subprocess.run(
        [sys.executable, "-m", "migctl", "--sim", "h20", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM_FAULTS": text},
    )
    assert env_run.returncode == 2
    lines = env_run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("migctl: error:"), env_run.stderr
    assert "MIGCTL_SIM_FAULTS" in lines[0]


def test_realistic_latency(state_dir: Path) -> None:
    """mig-reconfig-a100.csv: ~13 ms per GI create; a mode change ~2 s (scaled here by 0.05)."""
    open_enabled("h100-80gb", state_dir)
    nvml = sim.open(None, state_dir=state_dir, latency="realistic")
    dev = nvml.nvmlDeviceGetHandleByIndex(0)
    t0 = time.monotonic()
    nvml.nvmlDeviceCreateGpuInstance(dev, 19)
    assert time.monotonic() - t0 >= 0.010
    scaled = sim.open(None, state_dir=state_dir, latency="0.05")
    other = scaled.nvmlDeviceGetHandleByIndex(0)
    nvml.nvmlGpuInstanceDestroy(nvml.nvmlDeviceGetGpuInstanceById(dev, 13))
    t0 = time.monotonic()
    scaled.nvmlDeviceSetMigMode(other, DISABLE)
    assert time.monotonic() - t0 >= 2.0 * 0.05 * 0.9
    with pytest.raises(sim.SimSpecError):
        sim.open(None, state_dir=state_dir, latency="fast")
