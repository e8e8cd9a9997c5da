"""``status``'s MIG devices table (memory, BAR1, SMs, engines, processes, lease or job) and
utilization per GPU and GPU instance (``status --util``), as a user reads them.

Expected values are the hardware's (``docs/reference/gpu-profile-tables.md``: H100 80GB SXM5
and A100 40GB rows) and the simulated load model documented in ``docs/simulator.md`` (a process
at ``--util 70`` makes GPM read GRAPHICS_UTIL 70, SM_UTIL 0.95x, SM_OCCUPANCY 0.5x,
DRAM_BW_UTIL 0.4x, ANY_TENSOR_UTIL 0.6x; a GPU weighs its instances by SMs).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from busy_node import Busy, busy_node
from conftest import SimFactory
from migctl.records.schema import by_command, command_schema

MIB_PER_GIB = 1024


@pytest.fixture
def h100(sim: SimFactory) -> Iterator[Busy]:
    with busy_node(sim) as busy:
        yield busy


def devices(doc: dict[str, Any], gpu: int = 0) -> dict[str, dict[str, Any]]:
    return {ci["uuid"]: ci for gi in doc["gpus"][gpu]["gpu_instances"] for ci in gi["compute_instances"]}


def instance(doc: dict[str, Any], profile: str, gpu: int = 0) -> dict[str, Any]:
    return next(gi for gi in doc["gpus"][gpu]["gpu_instances"] if gi["profile"] == profile)


def test_each_mig_device_shows_its_memory_bar1_sms_engines_processes_and_holder(h100: Busy) -> None:
    doc = h100.sim.json("status")
    big, small = devices(doc)[h100.big], devices(doc)[h100.small]
    # 3g.40gb: 39.50 GiB, 60 SMs, DEC 3, ENC 0, CE 3, JPEG 3, OFA 0 (H100 80GB -lgip)
    assert big["memory"]["total_mib"] == int(39.50 * MIB_PER_GIB)
    assert big["memory"]["used_mib"] == 2048  # the process's memory; the driver's reserve apart
    reserved = big["memory"]["reserved_mib"]
    assert big["memory"]["free_mib"] == big["memory"]["total_mib"] - 2048 - reserved
    assert (big["sm"], big["engines"]) == (60, {"ce": 3, "dec": 3, "enc": 0, "jpeg": 3, "ofa": 0})
    # 1g.10gb+me: 9.75 GiB, 16 SMs and the one OFA
    assert small["memory"]["total_mib"] == int(9.75 * MIB_PER_GIB) and small["memory"]["used_mib"] == 0
    assert (small["sm"], small["engines"]) == (16, {"ce": 1, "dec": 1, "enc": 0, "jpeg": 1, "ofa": 1})
    for ci in (big, small):
        assert 0 < ci["bar1"]["used_mib"] <= ci["bar1"]["total_mib"]
    assert big["bar1"]["total_mib"] > small["bar1"]["total_mib"]  # a share of the GPU's BAR1
    (proc,) = big["processes"]
    assert (proc["pid"], proc["user"], proc["command"], proc["used_memory_mib"]) == (
        h100.pid,
        getpass.getuser(),
        "sleep 60",
        2048,
    )
    assert big["holder"] is None
    assert (small["holder"]["job"], small["holder"]["source"]) == ("train-3", "lease")
    assert small["processes"] == []


def test_the_table_shows_the_same_facts(h100: Busy) -> None:
    text = h100.sim.ok("status", "-i", "0").out
    line = next(row for row in text.splitlines() if h100.big in row)
    assert "3g.40gb" in line and "2048/40448" in line and " 60 " in line
    assert "job train-3" in next(row for row in text.splitlines() if h100.small in row)
    proc_line = next(row for row in text.splitlines() if str(h100.pid) in row)
    assert "sleep 60" in proc_line and "2048" in proc_line and getpass.getuser() in proc_line


def test_status_without_util_measures_nothing(h100: Busy) -> None:
    doc = h100.sim.json("status")
    assert all(g["utilization"] is None for g in doc["gpus"])
    assert all(gi["utilization"] is None for g in doc["gpus"] for gi in g["gpu_instances"])
    assert " util " not in h100.sim.ok("status").out


def test_util_reads_gpm_per_gpu_instance_and_nvml_on_a_whole_gpu(h100: Busy) -> None:
    doc = h100.sim.json("status", "--util")
    busy = instance(doc, "3g.40gb")["utilization"]
    assert busy["source"] == "gpm" and busy["reason"] is None
    assert busy["window_s"] > 0.1  # two samples more than 100 ms apart
    assert (busy["gpu_pct"], busy["sm_pct"], busy["sm_occupancy_pct"], busy["dram_bw_pct"], busy["tensor_pct"]) == (
        pytest.approx(70),
        pytest.approx(66.5),
        pytest.approx(35),
        pytest.approx(28),
        pytest.approx(42),
    )
    idle = instance(doc, "1g.10gb+me")["utilization"]
    assert (idle["source"], idle["gpu_pct"]) == ("gpm", 0)  # measured idle: a real 0
    empty = instance(doc, "2g.20gb")["utilization"]
    assert (empty["source"], empty["gpu_pct"]) == ("n/a", None) and "no compute instance" in empty["reason"]
    # The whole MIG GPU: its instances weighted by SMs, 70% of 60 of 132 SMs.
    whole = doc["gpus"][0]["utilization"]
    assert (whole["source"], whole["gpu_pct"]) == ("gpm", pytest.approx(70 * 60 / 132, abs=0.01))
    # GPU 1, MIG off: nvmlDeviceGetUtilizationRates (gpu 40%, memory 0.4 x 40).
    plain = doc["gpus"][1]["utilization"]
    assert (plain["source"], plain["gpu_pct"], plain["memory_pct"]) == ("nvml", 40, 16)
    assert (plain["graphics_pct"], plain["tensor_pct"]) == (pytest.approx(40), pytest.approx(24))  # and GPM's
    assert busy["graphics_pct"] == busy["gpu_pct"]
    text = h100.sim.ok("status", "--util", "-i", "0").out
    assert "70%" in next(row for row in text.splitlines() if h100.big in row)


def test_ampere_says_na_with_the_reason_never_zero(sim: SimFactory) -> None:
    s = sim("a100-40gbx2", enable="0")
    s.create("-i", "0", "3g.20gb")
    doc = s.json("status", "--util")
    gi = doc["gpus"][0]["gpu_instances"][0]["utilization"]
    assert (gi["source"], gi["gpu_pct"], gi["sm_pct"]) == ("n/a", None, None)
    assert "Hopper" in gi["reason"]
    whole = doc["gpus"][0]["utilization"]
    assert whole["source"] == "n/a" and "MIG mode" in whole["reason"]
    assert doc["gpus"][1]["utilization"]["source"] == "nvml"  # MIG off: NVML's rate works on Ampere
    text = s.ok("status", "--util", "-i", "0").out
    assert "n/a" in text and "0%" not in text
    assert "util n/a: no GPM on this GPU" in text


def test_a_gpu_that_is_not_mig_capable_has_nvmls_rate(sim: SimFactory) -> None:
    s = sim("h100-80gb,l40s", enable="0")
    doc = s.json("status", "--util", "-i", "1")
    assert doc["gpus"][0]["utilization"]["source"] == "nvml"


def test_status_util_json_matches_the_schema(h100: Busy) -> None:
    schema = command_schema(by_command()["status"].record)
    jsonschema.validate(h100.sim.json("status", "--util"), schema, cls=jsonschema.Draft202012Validator)
    jsonschema.validate(h100.sim.json("status"), schema, cls=jsonschema.Draft202012Validator)


def test_the_gpm_sampler_needs_a_window_before_it_answers(h100: Busy) -> None:
    import time

    from migctl.device import open_node
    from migctl.device.gpm import GpmMetrics, GpmSampler

    node = open_node(sim="h100-80gbx2")
    sampler = GpmSampler(node.nvml)
    gpu = node.gpus[0]
    gi = next(g for g in gpu.gpu_instances() if g.profile == "3g.40gb")
    try:
        assert sampler.take(gpu, gi.id) is None  # one sample is not a measurement
        assert sampler.take(gpu, gi.id) is None  # nor are two closer than 100 ms
        time.sleep(0.15)
        got = sampler.take(gpu, gi.id)
        assert isinstance(got, GpmMetrics) and got.graphics_pct == pytest.approx(70) and got.window_s >= 0.1
    finally:
        sampler.close()
        node.close()
