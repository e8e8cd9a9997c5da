"""The read-only CLI as a user drives it: ``migctl status/profiles/placements/ci-profiles/devices``.

Each test runs the real console entry point in a subprocess (the ``migctl`` fixture) on a private
simulated node. Expected values are the reference's (``docs/reference/mig-hardware.md``,
``gpu-profile-tables.md``): the seed's H20 row ``MIG 1g.12gb  19  7/7  11.75 GiB  SM 8``,
``-lgipp`` placements, GI IDs, ``-lcip`` defaults and the ``nvidia-smi -L`` layout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pynvml
import pytest

Run = Callable[..., Any]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def ok(result: Any) -> Any:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err
    return result


def one_line_error(result: Any, code: int) -> str:
    """A failure is exactly one line on stderr, no traceback, and the documented exit code."""
    assert result.code == code, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err + result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("migctl: error: ")
    return str(lines[0])


def row(table: str, name: str) -> list[str]:
    """The whitespace-split tokens of the table row whose name column is exactly ``MIG <name>``."""
    for line in table.splitlines():
        tokens = [t for t in line.split() if t.strip("│┃|")]  # drop box-drawing column separators
        if "MIG" in tokens and tokens[tokens.index("MIG") + 1] == name:
            return tokens[tokens.index("MIG") :]
    raise AssertionError(f"no row for MIG {name} in:\n{table}")


# -- profiles: the seed's H20 row ---------------------------------------------------------------


def test_profiles_shows_the_seeds_h20_row(migctl: Run) -> None:
    before = ok(migctl("--sim", "h20x8", "profiles", "-i", "0"))
    assert row(before.out, "1g.12gb")[:3] == ["MIG", "1g.12gb", "19"]
    ok(migctl("--sim", "h20x8", "mode", "enable"))
    table = ok(migctl("--sim", "h20x8", "profiles", "-i", "0")).out
    # nvidia-smi mig -lgip: "MIG 1g.12gb  19  7/7  11.75  No  8  1  0"
    name, pid, free_total, gib, p2p, sm, dec, enc = row(table, "1g.12gb")[1:9]
    assert (name, pid, free_total, gib, p2p, sm, dec, enc) == ("1g.12gb", "19", "7/7", "11.75", "No", "8", "1", "0")
    assert row(table, "1g.12gb+me")[1:6] == ["1g.12gb+me", "20", "1/1", "11.75", "No"]
    assert not re.search(r"^\s*[1-7]\s", table, re.M), "profiles -i 0 showed another GPU"

    data = ok(migctl("--sim", "h20x8", "profiles", "-i", "0", "--json")).json()
    (gpu,) = data["gpus"]
    assert (gpu["index"], gpu["name"], gpu["mig_capable"], gpu["mig_enabled"]) == (0, "NVIDIA H20", True, True)
    seed = next(p for p in gpu["profiles"] if p["id"] == 19)
    assert seed["name"] == "1g.12gb"
    assert (seed["instances_free"], seed["instances_total"], seed["memory_mib"], seed["sm"]) == (7, 7, 12032, 8)
    assert seed["placements"] == [{"start": s, "size": 1} for s in range(7)]
    me = next(p for p in gpu["profiles"] if p["id"] == 20)
    assert (me["name"], me["instances_total"], me["memory_mib"], me["sm"], me["ofa"]) == ("1g.12gb+me", 1, 12032, 8, 1)


def test_profiles_free_count_follows_the_instances(migctl: Run) -> None:
    ok(migctl("--sim", "h20x8", "mode", "enable", "-i", "0"))
    ok(migctl("--sim", "h20x8", "create", "3g.48gb", "-i", "0", "--placement", "4"))
    profiles = ok(migctl("--sim", "h20x8", "profiles", "-i", "0", "--json")).json()["gpus"][0]["profiles"]
    free = {p["id"]: (p["instances_free"], p["instances_total"]) for p in profiles}
    # a 3g at 4:4 leaves the lower half (-lgipp): 1g slots 0-3, 2g/1g.24gb at 0 and 2, the other 3g
    # or the 4g at 0, no 7g
    assert free == {19: (4, 7), 20: (1, 1), 15: (2, 4), 14: (2, 3), 9: (1, 2), 5: (1, 1), 0: (0, 1)}
    table = ok(migctl("--sim", "h20x8", "profiles", "-i", "0")).out
    assert row(table, "1g.12gb")[3] == "4/7"
    assert row(table, "7g.96gb")[3] == "0/1"


# -- status --json schema and the slice bar ------------------------------------------------------


def test_status_json_schema(migctl: Run) -> None:
    ok(migctl("--sim", "h20x8", "mode", "enable", "-i", "0"))
    ok(migctl("--sim", "h20x8", "create", "1g.12gb", "-i", "0", "--placement", "6"))
    data = ok(migctl("--sim", "h20x8", "status", "--json")).json()
    assert data["simulated"] is True
    assert [g["index"] for g in data["gpus"]] == list(range(8))
    g0, g1 = data["gpus"][0], data["gpus"][1]
    assert re.fullmatch("GPU-" + UUID, g0["uuid"])
    assert g0["name"] == "NVIDIA H20"
    assert g0["pci_device_id"] == "0x232910DE"  # mig-hardware.md §7 (H20 0x2329), NVML's (id << 16) | 0x10DE
    assert g0["mig"] == {"current": True, "pending": True}
    assert g1["mig"] == {"current": False, "pending": False}
    assert g1["gpu_instances"] == []
    (gi,) = g0["gpu_instances"]
    assert {k: gi[k] for k in ("id", "profile_id", "profile", "placement")} == {
        "id": 13,  # §1.5: slot 6 is GI 13
        "profile_id": 19,
        "profile": "1g.12gb",
        "placement": {"start": 6, "size": 1},
    }
    (ci,) = gi["compute_instances"]
    assert {k: ci[k] for k in ("id", "profile_id", "profile")} == {"id": 0, "profile_id": 0, "profile": "1g.12gb"}
    assert re.fullmatch("MIG-" + UUID, ci["uuid"])
    assert len({g["uuid"] for g in data["gpus"]}) == 8
    text = json.dumps(data)
    assert '"MIG ' not in text, "profile names must not carry the MIG prefix"


def test_status_slice_bar_shows_each_instance_and_the_free_slices(migctl: Run) -> None:
    ok(migctl("--sim", "h20x8", "mode", "enable", "-i", "0"))
    ok(migctl("--sim", "h20x8", "create", "1g.12gb", "-i", "0", "--placement", "6"))
    ok(migctl("--sim", "h20x8", "create", "3g.48gb", "-i", "0", "--placement", "0"))
    out = ok(migctl("--sim", "h20x8", "status", "-i", "0")).out
    bars = [line for line in out.splitlines() if line.startswith("|")]
    assert len(bars) == 1, out
    bar = bars[0]
    cells = [c.strip() for c in bar.strip("|").split("|")]
    # 8 memory slices: GI 1 (3g) spans 0-3 as one cell, slices 4 and 5 free, GI 13 at 6, slice 7 free
    assert len(cells) == 5, bar
    assert cells[0].startswith("GI1") and "3g.48gb" in cells[0]
    assert cells[1:3] == ["·", "·"]
    assert cells[3].startswith("GI13")
    assert cells[4] == "·"
    assert "MIG-" in out and "13" in out


# -- placements --------------------------------------------------------------------------------------


def test_placements_lists_lgipp_and_what_is_free_now(migctl: Run) -> None:
    out = ok(migctl("--sim", "h20x8", "placements", "-i", "0")).out
    # mig-hardware.md §1.4, including "Placement :" for a single placement and width-2 IDs
    for line in (
        "GPU  0 Profile ID 19 Placements: {0,1,2,3,4,5,6}:1",
        "GPU  0 Profile ID 20 Placements: {0,1,2,3,4,5,6}:1",
        "GPU  0 Profile ID 15 Placements: {0,2,4,6}:2",
        "GPU  0 Profile ID 14 Placements: {0,2,4}:2",
        "GPU  0 Profile ID  9 Placements: {0,4}:4",
        "GPU  0 Profile ID  5 Placement : {0}:4",
        "GPU  0 Profile ID  0 Placement : {0}:8",
    ):
        assert any(x.startswith(line) for x in out.splitlines()), f"{line!r} not in\n{out}"

    ok(migctl("--sim", "h20x8", "mode", "enable", "-i", "0"))
    ok(migctl("--sim", "h20x8", "create", "1g.12gb", "-i", "0", "--placement", "6"))
    data = ok(migctl("--sim", "h20x8", "placements", "3g.48gb", "-i", "0", "--json")).json()
    (gpu,) = data["gpus"]
    (prof,) = gpu["profiles"]
    assert (prof["id"], prof["name"]) == (9, "3g.48gb")
    assert prof["placements"] == [{"start": 0, "size": 4, "free": True}, {"start": 4, "size": 4, "free": False}]
    by_id = ok(migctl("--sim", "h20x8", "placements", "9", "-i", "0")).out
    assert "GPU  0 Profile ID  9 Placements: {0,4}:4" in by_id
    assert re.search(r"free now: \{0\}", by_id), by_id
    bad = migctl("--sim", "h20x8", "placements", "5g.60gb", "-i", "0")
    assert "5g.60gb" in one_line_error(bad, 2)


# -- ci-profiles -------------------------------------------------------------------------------------


def test_ci_profiles_marks_the_default(migctl: Run) -> None:
    ok(migctl("--sim", "a100-40gb", "mode", "enable"))
    made = ok(migctl("--sim", "a100-40gb", "create", "3g.20gb", "--no-compute-instance", "--json")).json()
    gi_id = made["created"][0]["gpu_instance_id"]
    assert gi_id in (1, 2)  # a 3g GI is 0:4 (GI 1) or 4:4 (GI 2), §1.5
    data = ok(migctl("--sim", "a100-40gb", "ci-profiles", "-i", "0", "--gi", str(gi_id), "--json")).json()
    assert (data["index"], data["gpu_instance_id"], data["gpu_instance_profile"]) == (0, gi_id, "3g.20gb")
    # §1.6 (MIG guide): 1c.3g.20gb (0, x3), 2c.3g.20gb (1, x1), 3g.20gb (2*, x1)
    got = {p["id"]: (p["name"], p["instances_free"], p["instances_total"], p["default"]) for p in data["profiles"]}
    assert got == {0: ("1c.3g.20gb", 3, 3, False), 1: ("2c.3g.20gb", 1, 1, False), 2: ("3g.20gb", 1, 1, True)}
    table = ok(migctl("--sim", "a100-40gb", "ci-profiles", "-i", "0", "--gi", str(gi_id))).out
    assert row(table, "3g.20gb")[2] == "2*"
    assert row(table, "1c.3g.20gb")[2] == "0"
    # the default CI consumes the whole GI: -lcip then shows 0/3, 0/1, 0/1
    ok(migctl("--sim", "a100-40gb", "create-ci", "-i", "0", "--gi", str(gi_id)))
    after = ok(migctl("--sim", "a100-40gb", "ci-profiles", "-i", "0", "--gi", str(gi_id), "--json")).json()
    assert {p["id"]: p["instances_free"] for p in after["profiles"]} == {0: 0, 1: 0, 2: 0}


def test_ci_profiles_errors_are_clear(migctl: Run) -> None:
    assert "MIG disabled" in one_line_error(migctl("--sim", "h20x8", "ci-profiles", "-i", "0", "--gi", "1"), 3)
    ok(migctl("--sim", "h20x8", "mode", "enable", "-i", "0"))
    msg = one_line_error(migctl("--sim", "h20x8", "ci-profiles", "-i", "0", "--gi", "1"), 2)
    assert "GPU instance 1" in msg
    assert "one GPU" in one_line_error(migctl("--sim", "h20x8", "ci-profiles", "-i", "0,1", "--gi", "1"), 2)


# -- devices: nvidia-smi -L ---------------------------------------------------------------------------


def test_devices_lists_like_nvidia_smi_l(migctl: Run) -> None:
    ok(migctl("--sim", "a30x2", "mode", "enable", "-i", "0"))
    for profile in ("1g.6gb", "1g.6gb", "2g.12gb"):
        ok(migctl("--sim", "a30x2", "create", profile, "-i", "0"))
    out = ok(migctl("--sim", "a30x2", "devices")).out.splitlines()
    assert re.fullmatch(r"GPU 0: NVIDIA A30 \(UUID: GPU-" + UUID + r"\)", out[0])
    mig_lines = out[1:4]
    for i, line in enumerate(mig_lines):
        assert re.fullmatch(r"  MIG \S+\s+Device\s+" + str(i) + r": \(UUID: MIG-" + UUID + r"\)", line), line
    # Appendix A: index follows ascending GI ID; the 2g.12gb holds GI 2 (2:2) whatever order it was made in
    data = ok(migctl("--sim", "a30x2", "devices", "--json")).json()
    devs = data["gpus"][0]["mig_devices"]
    gi_ids = [d["gpu_instance_id"] for d in devs]
    assert gi_ids == sorted(gi_ids) and [d["index"] for d in devs] == [0, 1, 2]
    assert [d["profile"] for d in devs].count("2g.12gb") == 1
    assert re.fullmatch(r"GPU 1: NVIDIA A30 \(UUID: GPU-" + UUID + r"\)", out[4])
    assert data["gpus"][1]["mig_devices"] == []


# -- -i selections -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("sel", "want"), [("1", [1]), ("0,2", [0, 2]), ("0-3", [0, 1, 2, 3]), ("5,0-1", [0, 1, 5])])
def test_gpu_selection_forms(migctl: Run, sel: str, want: list[int]) -> None:
    data = ok(migctl("--sim", "h20x8", "devices", "-i", sel, "--json")).json()
    assert sorted(g["index"] for g in data["gpus"]) == want


def test_gpu_selection_by_uuid(migctl: Run) -> None:
    uuid = ok(migctl("--sim", "h20x8", "devices", "--json")).json()["gpus"][3]["uuid"]
    data = ok(migctl("--sim", "h20x8", "status", "-i", uuid, "--json")).json()
    assert [(g["index"], g["uuid"]) for g in data["gpus"]] == [(3, uuid)]


@pytest.mark.parametrize("sel", ["9", "x", "3-1", "GPU-00000000-0000-0000-0000-000000000000", "0,8", "-1"])
def test_bad_gpu_selection_is_a_one_line_usage_error(migctl: Run, sel: str) -> None:
    result = migctl("--sim", "h20x8", "status", f"--id={sel}")
    line = one_line_error(result, 2)
    assert sel in line
    assert result.out == ""
    as_json = migctl("--sim", "h20x8", "status", f"--id={sel}", "--json")
    assert as_json.code == 2
    err = as_json.json()
    assert (err["error"], err["exit_code"]) == ("usage", 2) and sel in err["message"]


# -- no driver, MIGCTL_SIM, sim models, bad and changed specs -------------------------------------------


def _has_driver() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_without_a_driver_and_without_sim_says_how_to_use_the_simulator(migctl: Run) -> None:
    if _has_driver():
        pytest.skip("this machine has an NVIDIA driver")
    line = one_line_error(migctl("status"), 8)
    assert "--sim h20x8" in line
    err = migctl("profiles", "--json")
    assert err.code == 8 and err.json()["error"] == "driver" and "--sim h20x8" in err.json()["message"]


def test_migctl_sim_env_works_like_the_option(migctl: Run) -> None:
    via_env = ok(migctl("devices", "--json", env={"MIGCTL_SIM": "h20x8"})).json()
    via_opt = ok(migctl("--sim", "h20x8", "devices", "--json")).json()
    assert via_env == via_opt
    assert [g["name"] for g in via_env["gpus"]] == ["NVIDIA H20"] * 8


def test_sim_models_lists_every_model(migctl: Run) -> None:
    table = ok(migctl("sim", "models")).out
    data = ok(migctl("sim", "models", "--json")).json()
    keys = [m["key"] for m in data["models"]]
    for key in ("h20", "a100-40gb", "a100-80gb", "a30", "h100-80gb", "h200", "b200", "rtx-pro-6000", "l40s"):
        assert key in keys
        assert re.search(rf"\b{re.escape(key)}\b", table), key
    h20 = next(m for m in data["models"] if m["key"] == "h20")
    assert (h20["name"], h20["pci_device_id"], h20["mig_capable"]) == ("NVIDIA H20", "0x232910DE", True)
    assert "1g.12gb" in h20["profiles"] and "1g.12gb+me" in h20["profiles"]
    l40s = next(m for m in data["models"] if m["key"] == "l40s")
    assert (l40s["mig_capable"], l40s["profiles"]) == (False, [])


def test_unknown_model_names_the_known_ones(migctl: Run) -> None:
    line = one_line_error(migctl("--sim", "bogus", "status"), 2)
    assert "bogus" in line and "h20" in line and "a100-40gb" in line
    assert "bogus" in one_line_error(migctl("--sim", "h20x8,bogusx2", "status"), 2)


def test_a_different_spec_than_the_stored_node_names_sim_reset(migctl: Run) -> None:
    ok(migctl("--sim", "h20x8", "mode", "enable", "-i", "0"))
    line = one_line_error(migctl("--sim", "a30", "status"), 2)
    assert "sim reset" in line and "h20x8" in line
    ok(migctl("--sim", "a30", "sim", "reset"))
    data = ok(migctl("--sim", "a30", "status", "--json")).json()
    assert [(g["name"], g["mig"]) for g in data["gpus"]] == [("NVIDIA A30", {"current": False, "pending": False})]
    # and the old spec is now the different one
    assert "sim reset" in one_line_error(migctl("--sim", "h20x8", "status"), 2)


def test_a_mixed_node(migctl: Run) -> None:
    spec = "h100-80gbx2,a30x1"
    data = ok(migctl("--sim", spec, "status", "--json")).json()
    got = [(g["index"], g["name"], g["pci_device_id"]) for g in data["gpus"]]
    assert got == [
        (0, "NVIDIA H100 80GB HBM3", "0x233010DE"),
        (1, "NVIDIA H100 80GB HBM3", "0x233010DE"),
        (2, "NVIDIA A30", "0x20B710DE"),
    ]
    profiles = ok(migctl("--sim", spec, "profiles", "-i", "2", "--json")).json()["gpus"][0]["profiles"]
    # gpu-profile-tables.md A30-24GB: -lgip and -lgipp
    lgip = {p["id"]: (p["name"], p["instances_total"], f"{p['memory_mib'] / 1024:.2f}") for p in profiles}
    assert lgip == {
        14: ("1g.6gb", 4, "5.81"),
        21: ("1g.6gb+me", 1, "5.81"),
        5: ("2g.12gb", 2, "11.69"),
        6: ("2g.12gb+me", 1, "11.69"),
        0: ("4g.24gb", 1, "23.44"),
    }
    starts = {p["id"]: ([x["start"] for x in p["placements"]], p["placements"][0]["size"]) for p in profiles}
    assert starts == {14: ([0, 1, 2, 3], 1), 21: ([0, 1, 2, 3], 1), 5: ([0, 2], 2), 6: ([0, 2], 2), 0: ([0], 4)}
    ok(migctl("--sim", spec, "mode", "enable"))
    ok(migctl("--sim", spec, "create", "3g.40gb", "-i", "0-1"))
    ok(migctl("--sim", spec, "create", "2g.12gb", "-i", "2"))
    status = ok(migctl("--sim", spec, "status", "--json")).json()["gpus"]
    assert [g["gpu_instances"][0]["profile"] for g in status] == ["3g.40gb", "3g.40gb", "2g.12gb"]
    assert status[2]["gpu_instances"][0]["placement"]["size"] == 2  # A30 units: 2g.12gb is {0,2}:2
    assert ok(migctl("--sim", spec, "status", "-i", "2")).out.count("|") >= 2


def test_a_gpu_that_is_not_mig_capable(migctl: Run) -> None:
    spec = "h20,l40s"
    status = ok(migctl("--sim", spec, "status", "--json")).json()["gpus"]
    assert (status[1]["name"], status[1]["mig_capable"], status[1]["mig"]) == ("NVIDIA L40S", False, None)
    assert status[1]["gpu_instances"] == []
    assert status[0]["mig_capable"] is True
    text = ok(migctl("--sim", spec, "status")).out
    assert re.search(r"GPU 1 .*L40S.*not (supported|MIG-capable)", text), text
    prof_text = ok(migctl("--sim", spec, "profiles")).out
    assert re.search(r"GPU 1 \(NVIDIA L40S\): not MIG-capable", prof_text), prof_text
    assert row(prof_text, "1g.12gb")[1] == "1g.12gb"  # the H20 beside it is still listed
    profiles = ok(migctl("--sim", spec, "profiles", "-i", "1", "--json")).json()["gpus"][0]
    assert (profiles["mig_capable"], profiles["profiles"]) == (False, [])
    place = ok(migctl("--sim", spec, "placements", "-i", "1")).out
    assert "not MIG-capable" in place
    assert ok(migctl("--sim", spec, "placements", "-i", "1", "--json")).json()["gpus"][0]["mig_capable"] is False
    assert ok(migctl("--sim", spec, "devices", "-i", "1", "--json")).json()["gpus"][0]["mig_devices"] == []
    assert "not MIG-capable" in one_line_error(migctl("--sim", spec, "ci-profiles", "-i", "1", "--gi", "0"), 3)


# -- every read-only command speaks JSON --------------------------------------------------------------


READ_ONLY = [
    ["status"],
    ["status", "-i", "0"],
    ["profiles"],
    ["placements"],
    ["placements", "1g.12gb"],
    ["ci-profiles", "-i", "0", "--gi", "13"],
    ["devices"],
    ["sim", "models"],
]


@pytest.mark.parametrize("where", ["after", "before"])
def test_every_read_only_command_prints_valid_json(migctl: Run, where: str) -> None:
    ok(migctl("--sim", "h20x8", "mode", "enable", "-i", "0"))
    ok(migctl("--sim", "h20x8", "create", "1g.12gb", "-i", "0", "--placement", "6"))
    for args in READ_ONLY:
        argv = ["--sim", "h20x8", *args, "--json"] if where == "after" else ["--json", "--sim", "h20x8", *args]
        result = ok(migctl(*argv))
        data = json.loads(result.out)
        assert isinstance(data, dict) and data, args
        assert result.err == "", (args, result.err)
