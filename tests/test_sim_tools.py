"""Real NVML tools run unmodified on the simulated node (``migctl sim exec``), and see what migctl sees.

nvitop (``nvitop -1`` and its ``Device``/``MigDevice`` API), gpustat and plain pynvml scripts
run in a child whose pynvml library is the simulator. What they show is compared with the NVML
facts ``migctl status --json`` and ``migctl profiles --json`` report (UUIDs, bus IDs, GPU and
instance IDs, memory, processes), never with text migctl itself renders.

The node: 2x H20. GPU 0 in MIG mode with a 3g.48gb and a 1g.12gb; a process using 2048 MiB at
70% load on the 3g. GPU 1 without MIG, a process using 1024 MiB at 40% load.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynvml
import pytest

from migctl import sim
from migctl.device import open_node

BIN = Path(sys.executable).parent
MIB = 1024 * 1024
SPEC = "h20x2"


@dataclass
class Node:
    state: Path
    status: dict[str, Any]
    profiles: dict[str, Any]
    busy_pid: int  # on GPU 0's 3g.48gb MIG device
    whole_pid: int  # on GPU 1 (no MIG)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "MIGCTL_STATE_DIR": str(self.state), "COLUMNS": "200"}
        for key in ("MIGCTL_SIM", "MIGCTL_SIM_FAULTS", "MIGCTL_SIM_LATENCY"):
            env.pop(key, None)
        return env

    def migctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [sys.executable, "-m", "migctl", "--sim", SPEC, *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
            check=False,
        )
        if check:
            assert out.returncode == 0, out.stderr
        return out

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        out = self.migctl("sim", "exec", "--", *argv, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        for bad in ("Traceback", "ERROR", "could not be attached"):
            assert bad not in out.stderr, out.stderr
        return out

    def mig_devices(self) -> list[tuple[int, int, str, str]]:
        """(GI, CI, profile, UUID) of GPU 0's MIG devices, in NVML index order (GI, then CI)."""
        gpu0 = self.status["gpus"][0]
        found = [
            (gi["id"], ci["id"], gi["profile"], ci["uuid"])
            for gi in gpu0["gpu_instances"]
            for ci in gi["compute_instances"]
        ]
        return sorted(found)

    def profile_mib(self, name: str) -> int:
        (p,) = [p for p in self.profiles["gpus"][0]["profiles"] if p["name"] == name]
        return int(p["memory_mib"])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    state = tmp_path_factory.mktemp("tools") / "state"
    sleepers = [subprocess.Popen(["sleep", "600"]) for _ in range(2)]
    try:
        dev = open_node(sim=SPEC, state_dir=str(state))
        gpu = dev.gpus[0]
        gpu.set_mig_mode(True)
        three = gpu.create_gpu_instance(9)  # 3g.48gb
        small = gpu.create_gpu_instance(19)  # 1g.12gb
        for gi in (three, small):
            default = gi.default_ci_profile()
            assert default is not None
            gi.create_compute_instance(default.id)
        busy_uuid = three.compute_instances()[0].uuid
        control = sim.open_control(None, state_dir=state)
        control.attach(sleepers[0].pid, uuid=busy_uuid, memory_mib=2048, util=70)
        control.attach(sleepers[1].pid, gpu=1, memory_mib=1024, util=40)
        n = Node(state, {}, {}, sleepers[0].pid, sleepers[1].pid)
        n.status = json.loads(n.migctl("status", "--json").stdout)
        n.profiles = json.loads(n.migctl("profiles", "--json").stdout)
        yield n
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


def test_nvitop_one_shot_shows_the_gpus_mig_devices_memory_and_processes(node: Node) -> None:
    out = node.exec(str(BIN / "nvitop"), "-1").stdout
    for gpu in node.status["gpus"]:
        assert gpu["bus_id"] in out
    migs = node.mig_devices()
    for gi, ci, profile, _ in migs:
        assert re.search(rf"0:\d+\s+{re.escape(profile)} @ GI/CI:\s*{gi}/{ci}\b", out), (gi, ci, profile)
    busy = next(i for i, m in enumerate(migs) if m[2] == "3g.48gb")
    line = next(line for line in out.splitlines() if f"GI/CI: {migs[busy][0]}/{migs[busy][1]}" in line)
    assert "2048MiB" in line
    # processes: the MIG process on device 0:<its MIG index>, the other on GPU 1
    rows = [line for line in out.splitlines() if re.search(rf"\b{node.busy_pid}\b|\b{node.whole_pid}\b", line)]
    assert any(re.search(rf"\b0:{busy}\s+{node.busy_pid} C\b.*2048MiB", r) for r in rows), rows
    assert any(re.search(rf"\b1\s+{node.whole_pid} C\b.*1024MiB", r) for r in rows), rows


NVITOP_API = textwrap.dedent(
    """
    import json
    from nvitop import Device
    out = []
    for d in Device.all():
        migs = [
            {"uuid": m.uuid(), "gi": m.gpu_instance_id(), "ci": m.compute_instance_id(), "total": m.memory_total(),
             "used": m.memory_used(), "pids": sorted(m.processes()), "name": m.name()}
            for m in d.mig_devices()
        ]
        out.append({"uuid": d.uuid(), "name": d.name(), "bus_id": d.bus_id(), "total": d.memory_total(),
                    "mig": d.is_mig_mode_enabled(), "pids": sorted(d.processes()), "util": d.gpu_utilization(),
                    "migs": migs})
    print(json.dumps(out, default=str))
    """
)


def test_nvitop_device_and_mig_device_api(node: Node) -> None:
    seen = json.loads(node.exec(sys.executable, "-c", NVITOP_API).stdout)
    status = node.status["gpus"]
    assert [(d["uuid"], d["name"], d["bus_id"]) for d in seen] == [(g["uuid"], g["name"], g["bus_id"]) for g in status]
    assert [d["total"] for d in seen] == [g["memory"]["total_mib"] * MIB for g in status]
    assert [d["mig"] for d in seen] == [g["mig"]["current"] for g in status]
    migs = node.mig_devices()
    assert [(m["gi"], m["ci"], m["uuid"]) for m in seen[0]["migs"]] == [(gi, ci, uuid) for gi, ci, _, uuid in migs]
    for m, (_, _, profile, _) in zip(seen[0]["migs"], migs, strict=True):
        assert m["total"] == node.profile_mib(profile) * MIB
        assert m["name"].endswith(profile)
        busy = profile == "3g.48gb"
        assert m["pids"] == ([node.busy_pid] if busy else [])
        assert m["used"] == (2048 * MIB if busy else 0)
    assert seen[0]["pids"] == [node.busy_pid] and seen[1]["pids"] == [node.whole_pid]
    assert seen[0]["util"] == "N/A"  # MIG mode: no utilization rates (GPM's job)
    assert seen[1]["util"] == 40


def test_gpustat_shows_the_same_gpus_memory_and_processes(node: Node) -> None:
    seen = json.loads(node.exec(str(BIN / "gpustat"), "--json").stdout)["gpus"]
    status = node.status["gpus"]
    assert [(g["uuid"], g["name"], g["memory.total"]) for g in seen] == [
        (g["uuid"], g["name"], g["memory"]["total_mib"]) for g in status
    ]
    assert [(p["pid"], p["gpu_memory_usage"]) for p in seen[0]["processes"]] == [(node.busy_pid, 2048)]
    assert [(p["pid"], p["gpu_memory_usage"]) for p in seen[1]["processes"]] == [(node.whole_pid, 1024)]
    procs = {p["pid"]: p for g in status for p in g["processes"]}
    assert set(procs) == {node.busy_pid, node.whole_pid}
    assert (seen[0]["utilization.gpu"], seen[1]["utilization.gpu"]) == (None, 40)
    assert all(g["fan.speed"] is None for g in seen)  # passively cooled: NotSupported


PYNVML_SCRIPT = textwrap.dedent(
    """
    import json, time, pynvml as N
    PROBED = ("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetTemperatureV")
    N.nvmlInit()
    def err(fn, *a):
        try:
            fn(*a)
        except N.NVMLError as e:
            return type(e).__name__
        return "ok"
    g0, g1 = N.nvmlDeviceGetHandleByIndex(0), N.nvmlDeviceGetHandleByIndex(1)
    mig = N.nvmlDeviceGetHandleByUUID(BUSY)
    small = N.nvmlDeviceGetHandleByUUID(SMALL)
    v1, v2 = N.nvmlDeviceGetMemoryInfo(mig), N.nvmlDeviceGetMemoryInfo(mig, version=N.nvmlMemory_v2)
    bar1 = N.nvmlDeviceGetBAR1MemoryInfo(mig)
    def gpm(gi):
        a, b = N.nvmlGpmSampleAlloc(), N.nvmlGpmSampleAlloc()
        N.nvmlGpmMigSampleGet(g0, gi, a)
        time.sleep(0.15)
        N.nvmlGpmMigSampleGet(g0, gi, b)
        req = N.c_nvmlGpmMetricsGet_t()
        req.version, req.numMetrics, req.sample1, req.sample2 = N.NVML_GPM_METRICS_GET_VERSION, 6, a, b
        ids = [N.NVML_GPM_METRIC_GRAPHICS_UTIL, N.NVML_GPM_METRIC_SM_UTIL, N.NVML_GPM_METRIC_SM_OCCUPANCY,
               N.NVML_GPM_METRIC_DRAM_BW_UTIL, N.NVML_GPM_METRIC_ANY_TENSOR_UTIL, N.NVML_GPM_METRIC_FP64_UTIL]
        for i, m in enumerate(ids):
            req.metrics[i].metricId = m
        N.nvmlGpmMetricsGet(req)
        N.nvmlGpmSampleFree(a); N.nvmlGpmSampleFree(b)
        return [[req.metrics[i].nvmlReturn, req.metrics[i].value] for i in range(6)]
    out = {
        "lib": type(N.nvmlLib).__name__,
        "mem_v1": [v1.total, v1.used], "mem_v2": [v2.total, v2.used, v2.reserved, v2.free],
        "bar1": [bar1.bar1Total, bar1.bar1Used, bar1.bar1Free],
        "procs": {f"v{v}": [[p.pid, p.usedGpuMemory, p.gpuInstanceId, p.computeInstanceId] for p in fn(g0)]
                  for v, fn in ((1, N.nvmlDeviceGetComputeRunningProcesses),
                                (2, N.nvmlDeviceGetComputeRunningProcesses_v2),
                                (3, N.nvmlDeviceGetComputeRunningProcesses_v3))},
        "graphics": N.nvmlDeviceGetGraphicsRunningProcesses(g0),
        "temp": [N.nvmlDeviceGetTemperature(g, N.NVML_TEMPERATURE_GPU) for g in (g0, g1)],
        "temp_v": N.nvmlDeviceGetTemperatureV(g0, N.NVML_TEMPERATURE_GPU),
        "power": [N.nvmlDeviceGetPowerUsage(g0), N.nvmlDeviceGetEnforcedPowerLimit(g0),
                  N.nvmlDeviceGetPowerManagementLimitConstraints(g0)],
        "clocks": [N.nvmlDeviceGetClockInfo(g0, N.NVML_CLOCK_SM), N.nvmlDeviceGetMaxClockInfo(g0, N.NVML_CLOCK_SM)],
        "pstate": N.nvmlDeviceGetPerformanceState(g0),
        "util1": [N.nvmlDeviceGetUtilizationRates(g1).gpu],
        "enc": N.nvmlDeviceGetEncoderUtilization(g1)[0], "dec": N.nvmlDeviceGetDecoderUtilization(g1)[0],
        "modes": [N.nvmlDeviceGetEccMode(g0), N.nvmlDeviceGetPersistenceMode(g0), N.nvmlDeviceGetComputeMode(g0)],
        "errors": {
            "util_mig_mode": err(N.nvmlDeviceGetUtilizationRates, g0),
            "util_mig_device": err(N.nvmlDeviceGetUtilizationRates, mig),
            "fan": err(N.nvmlDeviceGetFanSpeed, g0),
            "temp_mig_device": err(N.nvmlDeviceGetTemperature, mig, 0),
            "not_modelled": err(N.nvmlDeviceGetBoardId, g0),
        },
        "gpm_supported": N.nvmlGpmQueryDeviceSupport(g0).isSupportedDevice,
        "gpm_busy": gpm(N.nvmlDeviceGetGpuInstanceId(mig)),
        "gpm_idle": gpm(N.nvmlDeviceGetGpuInstanceId(small)),
        "probe": [N._nvmlGetFunctionPointer(s) is not None for s in PROBED],
    }
    print(json.dumps(out))
    """
)


def test_pynvml_answers_as_hardware_through_the_simulated_library(node: Node) -> None:
    migs = node.mig_devices()
    busy = next(m for m in migs if m[2] == "3g.48gb")
    small = next(m for m in migs if m[2] == "1g.12gb")
    script = f"BUSY = {busy[3]!r}\nSMALL = {small[3]!r}\n" + PYNVML_SCRIPT
    got = json.loads(node.exec(sys.executable, "-c", script).stdout)
    assert got["lib"] == "SimLibrary"  # pynvml's C library is the simulator; libnvidia-ml never loaded
    total = node.profile_mib("3g.48gb") * MIB
    assert got["mem_v1"][0] == got["mem_v2"][0] == total
    assert got["mem_v2"][1] == 2048 * MIB and sum(got["mem_v2"][1:]) == total
    assert got["mem_v1"][1] == 2048 * MIB + got["mem_v2"][2]  # v1 counts the reserved memory as used
    assert got["bar1"][0] == got["bar1"][1] + got["bar1"][2] > 0
    want = [[node.busy_pid, 2048 * MIB, busy[0], busy[1]]]
    assert got["procs"] == {"v1": want, "v2": want, "v3": want}
    assert got["graphics"] == []
    assert all(0 < t < 92 for t in got["temp"]) and got["temp_v"] == got["temp"][0]  # below shutdown
    usage, limit, (low, high) = got["power"]
    assert 0 < usage < limit == high and 0 < low < high
    assert got["clocks"][0] == got["clocks"][1] > 0 and got["pstate"] == 0
    assert got["util1"] == [40] and got["enc"] == got["dec"] == 0
    assert got["modes"] == [[1, 1], 1, 0]
    assert got["errors"] == {
        "util_mig_mode": "NVMLError_NotSupported",
        "util_mig_device": "NVMLError_NotSupported",
        "fan": "NVMLError_NotSupported",
        "temp_mig_device": "NVMLError_NotSupported",
        "not_modelled": "NVMLError_FunctionNotFound",
    }
    assert got["gpm_supported"] == 1
    ok = pynvml.NVML_SUCCESS
    graphics, sm, occupancy, dram, tensor, fp64 = got["gpm_busy"]
    assert graphics == [ok, 70.0]  # the process's load, on the GI it runs in
    for metric in (sm, occupancy, dram, tensor):
        assert metric[0] == ok and 0 < metric[1] <= 70
    assert fp64[0] == pynvml.NVML_ERROR_NOT_SUPPORTED
    assert all(m[1] == 0 for m in got["gpm_idle"])
    assert got["probe"] == [True, True, True]


def test_load_changes_show_in_gpm_and_utilization(node: Node) -> None:
    nvml = sim.open(None, state_dir=node.state)
    g0, g1 = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)
    busy_gi = next(m for m in node.mig_devices() if m[2] == "3g.48gb")[0]

    def graphics_util() -> float:
        a, b = nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()
        nvml.nvmlGpmMigSampleGet(g0, busy_gi, a)
        nvml.nvmlGpmMigSampleGet(g0, busy_gi, b)
        req = pynvml.c_nvmlGpmMetricsGet_t()
        req.version, req.numMetrics, req.sample1, req.sample2 = pynvml.NVML_GPM_METRICS_GET_VERSION, 1, a, b
        req.metrics[0].metricId = pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL
        nvml.nvmlGpmMetricsGet(req)
        return float(req.metrics[0].value)

    assert graphics_util() == 70.0
    before = [nvml.nvmlDeviceGetTemperature(g1, 0), nvml.nvmlDeviceGetPowerUsage(g1)]
    assert node.migctl("sim", "load", "--pid", str(node.busy_pid), "--util", "25").returncode == 0
    assert node.migctl("sim", "load", "--pid", str(node.whole_pid), "--util", "90").returncode == 0
    try:
        assert graphics_util() == 25.0
        assert nvml.nvmlDeviceGetUtilizationRates(g1).gpu == 90
        after = [nvml.nvmlDeviceGetTemperature(g1, 0), nvml.nvmlDeviceGetPowerUsage(g1)]
        assert after[0] > before[0] and after[1] > before[1]  # more load: warmer, more power
    finally:
        control = sim.open_control(None, state_dir=node.state)
        control.set_load(node.busy_pid, util=70)
        control.set_load(node.whole_pid, util=40)


def test_gpm_is_not_supported_on_ampere(state_dir: Path) -> None:
    nvml = sim.open("a100-40gb", state_dir=state_dir)
    dev = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlGpmQueryDeviceSupport(dev).isSupportedDevice == 0
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlGpmSampleGet(dev, nvml.nvmlGpmSampleAlloc())


def test_sim_attach_names_a_missing_process(node: Node) -> None:
    out = node.migctl("sim", "attach", "--pid", "999999", "-i", "1", check=False)
    assert out.returncode == 2
    assert "no running process has pid 999999" in out.stderr and "MIG" not in out.stderr
