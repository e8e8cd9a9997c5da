"""Slurm: gres.conf from the current layout, checked by a real slurmd, and jobs that get one MIG UUID.

Expected Type strings come from Slurm's documented AutoDetect=nvml rule (the GPU's name
lowercased, spaces to ``_``, cut at the first ``-``, then ``_<profile>``; e.g.
``nvidia_a100_3g.20gb``), and minor numbers from the driver's table in NVIDIA's MIG user guide
("Device Nodes and Capabilities": ``config 1``, ``monitor 2``, then per GPU, GI 0..14 each
followed by its CI 0..7: ``gpu0/gi1/access 12``, ``gpu0/gi1/ci0/access 13``), never from migctl.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import slurm_cluster
from conftest import Cli
from migctl.integrations import slurm
from migctl.integrations.facts import GpuFacts, MigDeviceFacts

REPO = Path(__file__).resolve().parents[1]


def driver_minors(gpu_minors: int) -> str:
    """/proc/driver/nvidia-caps/mig-minors as the driver writes it for ``gpu_minors`` GPUs."""
    lines, n = ["config 1", "monitor 2"], 3
    for g in range(gpu_minors):
        for gi in range(15):
            lines.append(f"gpu{g}/gi{gi}/access {n}")
            n += 1
            for ci in range(8):
                lines.append(f"gpu{g}/gi{gi}/ci{ci}/access {n}")
                n += 1
    return "\n".join(lines) + "\n"


def gi_minor(gpu: int, gi: int) -> int:
    return 3 + gpu * 135 + gi * 9


def ci_minor(gpu: int, gi: int, ci: int) -> int:
    return gi_minor(gpu, gi) + 1 + ci


# -- pure -------------------------------------------------------------------------------------


def test_type_strings_follow_autodetect() -> None:
    assert slurm.mig_type("NVIDIA A100-SXM4-40GB", "3g.20gb") == "nvidia_a100_3g.20gb"  # Slurm's gres.conf docs
    assert slurm.mig_type("NVIDIA H100 80GB HBM3", "1g.10gb+me") == "nvidia_h100_80gb_hbm3_1g.10gb+me"
    assert slurm.mig_type("NVIDIA H20", "1c.3g.48gb") == "nvidia_h20_1c.3g.48gb"
    assert slurm.gpu_type("NVIDIA A100-SXM4-40GB") == "nvidia_a100-sxm4-40gb"  # whole GPUs are not cut


@given(
    words=st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH-", min_size=1, max_size=8), min_size=1,
                   max_size=4),
    g=st.integers(1, 7),
    gb=st.integers(1, 200),
    suffix=st.sampled_from(["", "+me", "-me", "+gfx", "+me.all"]),
)
def test_type_string_rule_for_any_gpu_name(words: list[str], g: int, gb: int, suffix: str) -> None:
    name = "NVIDIA " + " ".join(words)
    profile = f"{g}g.{gb}gb{suffix}"
    got = slurm.mig_type(name, profile)
    # the documented rule: lowercase, spaces -> "_", cut at the first "-", then "_" + profile
    assert got == name.lower().replace(" ", "_").split("-")[0] + "_" + profile
    assert " " not in got


def test_mig_minors_parser_reads_the_driver_table_and_names_bad_lines() -> None:
    m = slurm.parse_mig_minors(driver_minors(2))
    assert m.gi[(0, 1)] == 12 and m.ci[(0, 1, 0)] == 13 and m.gi[(0, 2)] == 21
    assert m.gi[(1, 0)] == 138 and len(m.gi) == 30 and len(m.ci) == 240
    with pytest.raises(slurm.SlurmError, match=r"mig-minors:3: expected 'NAME MINOR'"):
        slurm.parse_mig_minors("config 1\nmonitor 2\ngpu0/gi0/access three\n", "mig-minors")


@st.composite
def layouts(draw: st.DrawFn) -> list[GpuFacts]:
    gpus = []
    profiles = ["1g.12gb", "1g.24gb", "2g.24gb", "3g.48gb", "1c.3g.48gb", "7g.96gb", "1g.12gb+me"]
    for index in range(draw(st.integers(1, 4))):
        enabled = draw(st.booleans())
        gis = draw(st.lists(st.integers(0, 14), unique=True, max_size=7)) if enabled else []
        migs = []
        for gi in gis:
            for ci in draw(st.lists(st.integers(0, 7), unique=True, min_size=1, max_size=3)):
                profile = draw(st.sampled_from(profiles))
                migs.append(MigDeviceFacts(index, gi, ci, profile, "x", f"MIG-{index}-{gi}-{ci}", 1, 1, 1, 1))
        gpus.append(GpuFacts(index, index, "NVIDIA H20", f"GPU-{index}", True, enabled, 1, tuple(migs)))
    return gpus


@given(layouts())
def test_gres_records_use_driver_minors_in_slurmd_order(gpus: list[GpuFacts]) -> None:
    layout = slurm.gres_layout(gpus, slurm.parse_mig_minors(driver_minors(4)))
    expected: list[tuple[tuple[int, int, int], tuple[str, ...], str, str]] = []
    for g in gpus:
        if not g.mig_enabled:
            expected.append(((g.index, -1, -1), (f"/dev/nvidia{g.index}",), g.uuid, "nvidia_h20"))
        for m in g.mig_devices:
            files = (f"/dev/nvidia{g.index}", f"/dev/nvidia-caps/nvidia-cap{gi_minor(g.index, m.gi_id)}",
                     f"/dev/nvidia-caps/nvidia-cap{ci_minor(g.index, m.gi_id, m.ci_id)}")
            expected.append(((g.index, m.gi_id, m.ci_id), files, m.uuid, "nvidia_h20_" + m.profile))
    # slurmd numbers records type by type (types in Gres= order: sorted), then GPU minor, GI, CI
    expected.sort(key=lambda e: (e[3], e[0]))
    assert [(r.files, r.uuid, r.type) for r in layout.records] == [e[1:] for e in expected]
    counts = collections.Counter(e[3] for e in expected)
    assert layout.gres() == ",".join(f"gpu:{t}:{n}" for t, n in sorted(counts.items()))
    notes = [g for g in gpus if g.mig_enabled and not g.mig_devices]
    assert len(layout.notes) == len(notes)


def test_job_indices_map_to_uuids_and_stale_indices_are_refused() -> None:
    gpus = [GpuFacts(0, 0, "NVIDIA H20", "GPU-0", True, True, 1, (
        MigDeviceFacts(0, 2, 0, "3g.48gb", "3g.48gb", "MIG-a", 1, 1, 3, 3),
        MigDeviceFacts(0, 1, 0, "1g.12gb", "1g.12gb", "MIG-b", 1, 1, 1, 1)))]
    layout = slurm.gres_layout(gpus, slurm.parse_mig_minors(driver_minors(1)))
    assert [r.uuid for r in layout.records] == ["MIG-b", "MIG-a"]  # type nvidia_h20_1g... before ..._3g...
    assert slurm.job_devices(layout, {"SLURM_STEP_GPUS": "1"}).export_line == "export CUDA_VISIBLE_DEVICES=MIG-a"
    assert slurm.job_devices(layout, {"SLURM_JOB_GPUS": "0,1", "CUDA_VISIBLE_DEVICES": "0,1"}).uuids == (
        "MIG-b", "MIG-a")
    assert slurm.job_devices(layout, {"CUDA_VISIBLE_DEVICES": "MIG-x"}).export_line is None  # AutoDetect's UUIDs
    assert slurm.job_devices(layout, {}).export_line is None
    with pytest.raises(slurm.SlurmError, match="layout changed"):
        slurm.job_devices(layout, {"SLURM_STEP_GPUS": "2"})


# -- through the CLI ----------------------------------------------------------------------------


def _node(migctl: Cli, tmp_path: Path, layout: str) -> Path:
    assert migctl("--sim", "h20x2", "apply", "--layout", layout, "-i", "0").code == 0
    minors = tmp_path / "mig-minors"
    minors.write_text(driver_minors(2))
    return minors


def test_export_slurm_json_is_one_document(migctl: Cli, tmp_path: Path) -> None:
    minors = _node(migctl, tmp_path, "3g.48gb,1g.12gb:2")
    r = migctl("--sim", "h20x2", "export", "--format", "slurm", "--mig-minors", str(minors), "--node-name", "gpu7",
               "--json")
    assert r.code == 0, r.err
    doc = r.json()
    # GPU 1 has MIG disabled: a whole GPU record
    assert doc["counts"] == {"nvidia_h20": 1, "nvidia_h20_1g.12gb": 2, "nvidia_h20_3g.48gb": 1}
    assert doc["slurm_conf"] == "NodeName=gpu7 Gres=gpu:nvidia_h20:1,gpu:nvidia_h20_1g.12gb:2,gpu:nvidia_h20_3g.48gb:1"
    assert doc["gres_conf"].splitlines()[0] == "Name=gpu Type=nvidia_h20 File=/dev/nvidia1"


def test_export_slurm_without_minors_file_is_a_one_line_error(migctl: Cli, tmp_path: Path) -> None:
    _node(migctl, tmp_path, "1g.12gb")
    r = migctl("--sim", "h20x2", "export", "--format", "slurm", "--mig-minors", str(tmp_path / "nope"))
    assert r.code == 2 and "cannot read the MIG minor numbers" in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1


# -- a real Slurm -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_programs() -> None:
    if slurm_cluster.missing_programs():
        subprocess.run(["bash", str(REPO / "tools" / "install-slurm.sh")], check=False, timeout=900)
    missing = slurm_cluster.missing_programs()
    if missing:
        pytest.skip(f"Slurm is not installed and tools/install-slurm.sh could not install it: {', '.join(missing)}")


GRES_LINE = re.compile(r"Gres Name=gpu Type=(\S+) Count=(\d+) .*File=(\S+)")


def test_real_slurmd_accepts_gres_conf_and_srun_sees_one_mig_uuid(
    slurm_programs: None, migctl: Cli, tmp_path: Path, state_dir: Path
) -> None:
    minors = _node(migctl, tmp_path, "3g.48gb,2g.24gb,1g.12gb:2")
    root = tmp_path / "slurm"
    root.mkdir()
    dev = root / "dev"
    r = migctl("--sim", "h20x2", "export", "--format", "slurm", "--mig-minors", str(minors), "--dev-root", str(dev),
               "--node-name", slurm_cluster.node_name(), "-i", "0", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    chardev = slurm_cluster.make_device_files([f for rec in doc["records"] for f in rec["files"]])
    prolog = root / "task-prolog.sh"
    prolog.write_text(
        "#!/bin/sh\n"
        f"export MIGCTL_STATE_DIR={state_dir} MIGCTL_SIM=h20x2\n"
        f"exec {sys.executable} -m migctl slurm task-prolog -i 0 --mig-minors {minors} --dev-root {dev}\n"
    )
    prolog.chmod(0o755)
    conf = slurm_cluster.write_conf(root, doc["slurm_conf"], doc["gres_conf"], prolog)

    # slurmd -G: the GRES slurmd parsed from our gres.conf, in its index order
    g = subprocess.run([slurm_cluster.exe("slurmd"), "-G", "-f", str(conf)], capture_output=True, text=True,
                       timeout=30, check=False)
    listed = [GRES_LINE.search(line) for line in (g.stdout + g.stderr).splitlines()]
    parsed = [(m[1], int(m[2]), m[3]) for m in listed if m]
    assert collections.Counter(t for t, _, _ in parsed) == {
        "nvidia_h20_3g.48gb": 1, "nvidia_h20_2g.24gb": 1, "nvidia_h20_1g.12gb": 2}, g.stdout + g.stderr
    assert all(n == 1 for _, n, _ in parsed)
    if chardev:
        assert "error" not in (g.stdout + g.stderr).lower(), g.stdout + g.stderr

    devices = migctl("--sim", "h20x2", "devices", "--json").json()["gpus"][0]["mig_devices"]
    by_uuid = {d["uuid"]: d for d in devices}

    def gi_of_files(files: str) -> int:
        cap = int(files.split(",")[1].rsplit("nvidia-cap", 1)[1])
        return (cap - 3) // 9  # GPU 0's GI minors: 3 + 9 * GI

    with slurm_cluster.cluster(root, conf) as env:
        for gres, profile, count in (("nvidia_h20_1g.12gb", "1g.12gb", 1), ("nvidia_h20_3g.48gb", "3g.48gb", 1),
                                     ("nvidia_h20_1g.12gb", "1g.12gb", 2)):
            job = subprocess.run(
                [slurm_cluster.exe("srun"), f"--gres=gpu:{gres}:{count}", "sh", "-c",
                 'echo "$SLURM_STEP_GPUS|$CUDA_VISIBLE_DEVICES"'],
                capture_output=True, text=True, env=env, timeout=60, check=False)
            assert job.returncode == 0, job.stderr
            indices, visible = job.stdout.strip().split("|")
            uuids = visible.split(",")
            assert len(uuids) == count and len(set(uuids)) == count
            for index, uuid in zip(indices.split(","), uuids, strict=True):
                assert uuid.startswith("MIG-") and by_uuid[uuid]["profile"] == profile
                # the index slurmd gave maps (through slurmd's own listing) to this MIG device's GI
                assert gi_of_files(parsed[int(index)][2]) == by_uuid[uuid]["gpu_instance_id"]
