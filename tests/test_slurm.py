"""Slurm: gres.conf from the current layout, checked by a real slurmd, and jobs that get one MIG UUID.

Expected Type strings come from Slurm's documented AutoDetect=nvml rule (the GPU's name
lowercased, spaces to ``_``, cut at the first ``-``, then ``_<profile>``; e.g.
``nvidia_a100_3g.20gb``), and minor numbers from the driver's table: for the pure generator the
table of NVIDIA's MIG user guide ("Device Nodes and Capabilities": ``config 1``, ``monitor 2``,
then per GPU, GI 0..14 each followed by its CI 0..7: ``gpu0/gi1/access 12``,
``gpu0/gi1/ci0/access 13``), and through the CLI the simulated node's own
``/proc/driver/nvidia-caps/mig-minors``, read here line by line, never through migctl.
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
from migctl.device.driverfiles import parse_mig_minors
from migctl.errors import DriverError
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
    m = parse_mig_minors(driver_minors(2))
    assert m.gi(0, 1) == 12 and m.ci(0, 1, 0) == 13 and m.gi(0, 2) == 21
    assert m.gi(1, 0) == 138 and len(m.gpu_instances) == 30 and len(m.compute_instances) == 240
    with pytest.raises(DriverError, match=r"mig-minors:3: unexpected line .*expected 'NAME MINOR'"):
        parse_mig_minors("config 1\nmonitor 2\ngpu0/gi0/access three\n", "mig-minors")


_KEYS = st.one_of(
    st.tuples(st.integers(0, 31), st.integers(0, 14)),
    st.tuples(st.integers(0, 31), st.integers(0, 14), st.integers(0, 7)),
)


@given(
    entries=st.dictionaries(_KEYS, st.integers(0, 10**6), max_size=40),
    others=st.lists(st.sampled_from(["fabric-mgmt", "gpu0/gi0/future/access", "sys"]), max_size=3),
    spaces=st.sampled_from([" ", "  ", "\t"]),
)
def test_mig_minors_parser_keeps_every_entry_and_skips_unknown_names(
    entries: dict[tuple[int, ...], int], others: list[str], spaces: str
) -> None:
    lines = [f"{n} {i + 90000}" for i, n in enumerate(others)]
    for key, minor in entries.items():
        name = f"gpu{key[0]}/gi{key[1]}/" + (f"ci{key[2]}/" if len(key) == 3 else "") + "access"
        lines.append(f"{name}{spaces}{minor}")
    m = parse_mig_minors("\n".join(lines) + "\n")
    assert dict(m.gpu_instances) == {k: v for k, v in entries.items() if len(k) == 2}
    assert dict(m.compute_instances) == {k: v for k, v in entries.items() if len(k) == 3}
    assert (m.config, m.monitor) == (None, None)


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
    layout = slurm.gres_layout(gpus, parse_mig_minors(driver_minors(4)))
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
    layout = slurm.gres_layout(gpus, parse_mig_minors(driver_minors(1)))
    assert [r.uuid for r in layout.records] == ["MIG-b", "MIG-a"]  # type nvidia_h20_1g... before ..._3g...
    assert slurm.job_devices(layout, {"SLURM_STEP_GPUS": "1"}).export_line == "export CUDA_VISIBLE_DEVICES=MIG-a"
    assert slurm.job_devices(layout, {"SLURM_JOB_GPUS": "0,1", "CUDA_VISIBLE_DEVICES": "0,1"}).uuids == (
        "MIG-b", "MIG-a")
    assert slurm.job_devices(layout, {"CUDA_VISIBLE_DEVICES": "MIG-x"}).export_line is None  # AutoDetect's UUIDs
    assert slurm.job_devices(layout, {}).export_line is None
    with pytest.raises(slurm.SlurmError, match="layout changed"):
        slurm.job_devices(layout, {"SLURM_STEP_GPUS": "2"})


# -- through the CLI, on the simulated node's own driver files -----------------------------------


def _node(migctl: Cli, layout: str, gpu: str = "0") -> None:
    r = migctl("--sim", "h20x2", "apply", "--layout", layout, "-i", gpu)
    assert r.code == 0, r.err


def driver_root(state_dir: Path) -> Path:
    """Where the simulated driver keeps /proc and /dev (docs/simulator.md)."""
    return state_dir / "sim" / "root"


def driver_table(state_dir: Path) -> dict[str, int]:
    """The simulated driver's mig-minors, read line by line: ``{"gpu0/gi1/access": 12, ...}``."""
    text = (driver_root(state_dir) / "proc/driver/nvidia-caps/mig-minors").read_text()
    return {name: int(minor) for name, minor in (line.split() for line in text.splitlines() if line.strip())}


def test_export_slurm_json_is_one_document(migctl: Cli, state_dir: Path) -> None:
    _node(migctl, "3g.48gb,1g.12gb:2")
    r = migctl("--sim", "h20x2", "export", "--format", "slurm", "--node-name", "gpu7", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    # GPU 1 has MIG disabled: a whole GPU record
    assert doc["counts"] == {"nvidia_h20": 1, "nvidia_h20_1g.12gb": 2, "nvidia_h20_3g.48gb": 1}
    assert doc["slurm_conf"] == "NodeName=gpu7 Gres=gpu:nvidia_h20:1,gpu:nvidia_h20_1g.12gb:2,gpu:nvidia_h20_3g.48gb:1"
    dev = driver_root(state_dir) / "dev"
    assert doc["gres_conf"].splitlines()[0] == f"Name=gpu Type=nvidia_h20 File={dev}/nvidia1"
    assert doc["mig_minors"] == str(driver_root(state_dir) / "proc/driver/nvidia-caps/mig-minors")
    assert doc["dev_root"] == str(dev)


def test_gres_conf_minors_are_the_drivers_for_every_gpu_and_compute_instance(migctl: Cli, state_dir: Path) -> None:
    """Every MIG device's files: its GPU's /dev/nvidia<m>, then the nvidia-cap<n> of its GPU
    instance and of its compute instance, n as the driver's table lists them; files that exist."""
    _node(migctl, "3g.48gb[1c.3g.48gb,2c.3g.48gb],2g.24gb,1g.12gb", "0")
    _node(migctl, "4g.48gb[1c.4g.48gb,1c.4g.48gb,2c.4g.48gb],1g.24gb,1g.12gb:2", "1")
    table = driver_table(state_dir)
    devices = [(g["index"], m) for g in migctl("--sim", "h20x2", "devices", "--json").json()["gpus"]
               for m in g["mig_devices"]]
    assert len(devices) == 4 + 6
    doc = migctl("--sim", "h20x2", "export", "--format", "slurm", "--json").json()
    dev = driver_root(state_dir) / "dev"
    by_uuid = {r["uuid"]: r for r in doc["records"]}
    assert len(by_uuid) == len(doc["records"]) == len(devices)
    for gpu, m in devices:
        gi, ci = m["gpu_instance_id"], m["compute_instance_id"]
        record = by_uuid[m["uuid"]]
        assert (record["gpu"], record["gpu_instance"], record["compute_instance"]) == (gpu, gi, ci)
        assert record["files"] == [
            f"{dev}/nvidia{gpu}",  # the simulated GPU's minor number is its index
            f"{dev}/nvidia-caps/nvidia-cap{table[f'gpu{gpu}/gi{gi}/access']}",
            f"{dev}/nvidia-caps/nvidia-cap{table[f'gpu{gpu}/gi{gi}/ci{ci}/access']}",
        ]
        assert all(Path(f).exists() for f in record["files"]), record["files"]
        # the Type carries the MIG device's own profile (1c.3g.48gb for a smaller compute instance)
        assert record["type"] == "nvidia_h20_" + m["profile"] and record["profile"] == m["profile"]
    assert doc["counts"]["nvidia_h20_1c.4g.48gb"] == 2 and doc["counts"]["nvidia_h20_2c.3g.48gb"] == 1


def test_mig_minors_and_dev_root_overrides(migctl: Cli, tmp_path: Path) -> None:
    """--mig-minors reads another copy of the table with the same parser; --dev-root moves /dev."""
    _node(migctl, "2g.24gb@0")
    minors = tmp_path / "mig-minors"
    minors.write_text(driver_minors(2).replace("gpu0/gi3/access 30", "gpu0/gi3/access 4030"))
    r = migctl("--sim", "h20x2", "export", "--format", "slurm", "-i", "0", "--mig-minors", str(minors),
               "--dev-root", "/srv/dev", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["mig_minors"] == str(minors) and doc["dev_root"] == "/srv/dev"
    (record,) = doc["records"]
    assert record["gpu_instance"] == 3  # 2g.24gb at slot 0: GI 3
    assert record["files"] == ["/srv/dev/nvidia0", "/srv/dev/nvidia-caps/nvidia-cap4030",
                               "/srv/dev/nvidia-caps/nvidia-cap31"]


def test_export_slurm_with_a_bad_minors_file_is_a_one_line_error(migctl: Cli, tmp_path: Path) -> None:
    _node(migctl, "1g.12gb")
    r = migctl("--sim", "h20x2", "export", "--format", "slurm", "--mig-minors", str(tmp_path / "nope"))
    assert r.code == 2 and "--mig-minors" in r.err and "does not exist" in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1
    bad = tmp_path / "bad"
    bad.write_text("config 1\nmonitor two\n")
    r = migctl("--sim", "h20x2", "export", "--format", "slurm", "--mig-minors", str(bad))
    assert r.code == 2 and f"{bad}:2: unexpected line" in r.err and len(r.err.strip().splitlines()) == 1
    other = tmp_path / "other"
    other.write_text("config 1\nmonitor 2\n")  # another node's table, without this node's GI
    r = migctl("--sim", "h20x2", "export", "--format", "slurm", "--mig-minors", str(other))
    assert r.code == 2 and f"{other} has no gpu0/gi" in r.err and len(r.err.strip().splitlines()) == 1


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
    _node(migctl, "3g.48gb[1c.3g.48gb,2c.3g.48gb],2g.24gb,1g.12gb:2")
    root = tmp_path / "slurm"
    root.mkdir()
    r = migctl("--sim", "h20x2", "export", "--format", "slurm", "--node-name", slurm_cluster.node_name(), "-i", "0",
               "--json")
    assert r.code == 0, r.err
    doc = r.json()
    files = [f for rec in doc["records"] for f in rec["files"]]
    assert all(f.startswith(str(driver_root(state_dir) / "dev")) and Path(f).exists() for f in files)
    # the simulated driver's device files are plain files; slurmd wants devices (see docs/slurm.md)
    chardev = slurm_cluster.make_device_files(files)
    prolog = root / "task-prolog.sh"
    prolog.write_text(
        "#!/bin/sh\n"
        f"export MIGCTL_STATE_DIR={state_dir} MIGCTL_SIM=h20x2\n"
        f"exec {sys.executable} -m migctl slurm task-prolog -i 0\n"
    )
    prolog.chmod(0o755)
    conf = slurm_cluster.write_conf(root, doc["slurm_conf"], doc["gres_conf"], prolog)

    # slurmd -G: the GRES slurmd parsed from our gres.conf, in its index order
    g = subprocess.run([slurm_cluster.exe("slurmd"), "-G", "-f", str(conf)], capture_output=True, text=True,
                       timeout=30, check=False)
    listed = [GRES_LINE.search(line) for line in (g.stdout + g.stderr).splitlines()]
    parsed = [(m[1], int(m[2]), m[3]) for m in listed if m]
    assert collections.Counter(t for t, _, _ in parsed) == {
        "nvidia_h20_1c.3g.48gb": 1, "nvidia_h20_2c.3g.48gb": 1, "nvidia_h20_2g.24gb": 1, "nvidia_h20_1g.12gb": 2,
    }, g.stdout + g.stderr
    assert all(n == 1 for _, n, _ in parsed)
    if not chardev:
        pytest.skip("slurmd -G passed; the srun part needs character devices (mknod: root), since slurmd gives "
                    "a job no GPU when gres.conf names plain files")
    assert "error" not in (g.stdout + g.stderr).lower(), g.stdout + g.stderr

    devices = migctl("--sim", "h20x2", "devices", "--json").json()["gpus"][0]["mig_devices"]
    by_uuid = {d["uuid"]: d for d in devices}
    table = driver_table(state_dir)
    ci_of_minor = {n: name for name, n in table.items() if name.startswith("gpu0/") and "/ci" in name}

    def ci_of_files(files: str) -> str:
        """``gpu0/gi<g>/ci<c>/access`` of a record slurmd listed (its last file is the CI's capability)."""
        return ci_of_minor[int(files.split(",")[2].rsplit("nvidia-cap", 1)[1])]

    with slurm_cluster.cluster(root, conf) as env:
        for gres, profile, count in (("nvidia_h20_1g.12gb", "1g.12gb", 1), ("nvidia_h20_2g.24gb", "2g.24gb", 1),
                                     ("nvidia_h20_1c.3g.48gb", "1c.3g.48gb", 1), ("nvidia_h20_1g.12gb", "1g.12gb", 2)):
            job = subprocess.run(
                [slurm_cluster.exe("srun"), f"--gres=gpu:{gres}:{count}", "sh", "-c",
                 'echo "$SLURM_STEP_GPUS|$CUDA_VISIBLE_DEVICES"'],
                capture_output=True, text=True, env=env, timeout=60, check=False)
            assert job.returncode == 0, job.stderr
            indices, visible = job.stdout.strip().split("|")
            uuids = visible.split(",")
            assert len(uuids) == count and len(set(uuids)) == count
            for index, uuid in zip(indices.split(","), uuids, strict=True):
                mig = by_uuid[uuid]
                assert uuid.startswith("MIG-") and mig["profile"] == profile
                # the index slurmd gave maps (through slurmd's own listing) to this MIG device's CI
                assert ci_of_files(parsed[int(index)][2]) == \
                    f"gpu0/gi{mig['gpu_instance_id']}/ci{mig['compute_instance_id']}/access"
