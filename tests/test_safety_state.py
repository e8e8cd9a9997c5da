"""migctl's own state under crashes, corruption and other users (issue 9 items 3, 6, 7; issue 10
sections 6 and 9): damaged journals, the state directory's safety, corrupted leases and lock
files, crash state shown by status/doctor/assert, simulated state out of system paths, and a
shared state directory between root and a user."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Cli, Sim
from test_safety_races import layout

EXIT_STATE = 11


def killed_mid_apply(s: Sim, state_dir: Path, step: int = 12) -> None:
    """``apply`` killed with SIGKILL just before its ``step``-th GPU-changing step (both GPUs half-way)."""
    s.ok("apply", "--layout", "1g.12gb:7")
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM": s.spec, "MIGCTL_FAULT_STEP": f"{step}:KILL"}
    p = subprocess.run(
        [sys.executable, "-m", "migctl", "apply", "--layout", "3g.48gb,2g.24gb,1g.12gb:2", "--sequential"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == -9, p.stderr
    assert list((state_dir / "journal").glob("gpu-*.json"))


def journal(state_dir: Path, gpu: int = 0) -> Path:
    return state_dir / "journal" / f"gpu-{gpu}.json"


# ------------------------------------------------------------------------------------ item 3


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbled", "wrong-shape", "gpu-minus-one", "other-gpu", "directory", "not-utf8", "empty"],
)
def test_a_damaged_journal_is_reported_moved_aside_and_its_gpu_left_alone(
    migctl: Cli, state_dir: Path, damage: str
) -> None:
    s = Sim(migctl, "h20x1")
    killed_mid_apply(s, state_dir, step=8)
    path = journal(state_dir)
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "garbled":
        path.write_bytes(b"{\x00\x13 nonsense ]")
    elif damage == "wrong-shape":
        path.write_text(json.dumps({"gpu": 0, "config": "x", "target": [], "before": {"mig_enabled": True}}))
    elif damage == "gpu-minus-one":
        path.write_text(json.dumps({**json.loads(text), "gpu": -1}))
    elif damage == "other-gpu":
        path.write_text(json.dumps({**json.loads(text), "gpu": 7}))
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    elif damage == "not-utf8":
        path.write_bytes(b"\xff\xfe" + text.encode()[:10])
    else:
        path.write_text("")
    half = layout("h20x1")
    r = s("recover")
    assert r.code == EXIT_STATE, (r.out, r.err)
    assert str(path) in r.out and f"{path}.damaged-1" in r.out  # named, and where it went
    assert "GPU 0 was left alone" in r.out and "migctl status -i 0" in r.out  # the fix
    assert "internal error" not in r.out + r.err
    assert layout("h20x1") == half  # never changed on a guess
    assert (state_dir / "journal" / "gpu-0.json.damaged-1").exists()  # kept, not deleted
    assert s.ok("recover").out.strip() == "nothing to recover"


def test_apply_refuses_while_a_journal_is_damaged_and_works_once_it_was_moved_aside(
    migctl: Cli, state_dir: Path
) -> None:
    s = Sim(migctl, "h20x1")
    killed_mid_apply(s, state_dir, step=8)
    journal(state_dir).write_text('{"gpu": 0}')
    half = layout("h20x1")
    r = s("apply", "--layout", "1g.12gb:7")
    assert r.code == EXIT_STATE and "nothing was applied" in r.err and "internal error" not in r.err
    assert layout("h20x1") == half
    s.ok("apply", "--layout", "1g.12gb:7")  # plans from what the GPU has now
    assert len(layout("h20x1")[0][1]) == 7


def test_damaged_journal_of_a_gpu_the_node_lacks_changes_nothing(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x2")
    s.ok("apply", "--layout", "1g.12gb:7")
    before = layout("h20x2")
    (state_dir / "journal").mkdir(exist_ok=True)
    good = {"gpu": 9, "config": "x", "target": {"mig_enabled": False, "instances": []},
            "before": {"mig_enabled": False, "instances": []}}
    journal(state_dir, 9).write_text(json.dumps(good))
    r = s("recover")
    assert r.code == EXIT_STATE and "this node has 2 GPU(s)" in r.out and "nothing was changed" in r.out
    assert layout("h20x2") == before


# ------------------------------------------------------------------------ issue 10 section 6


def test_status_doctor_and_assert_show_what_an_interrupted_apply_left(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x2")
    killed_mid_apply(s, state_dir, step=25)  # --sequential: GPU 0 applied, GPU 1 half-way
    out = s.ok("status").out
    assert "GPU 1: an apply of config '--layout'" in out and "interrupted part-way" in out
    assert "run migctl recover" in out and "GPU 0: an apply" not in out
    data = s.json("status")
    assert [(c["gpu"], c["state"]) for c in data["interrupted"]] == [(1, "interrupted")]
    doctor = s("doctor", "--no-smoke", "--json")
    assert doctor.code == 1
    checks = [c for c in doctor.json()["checks"] if c["check"] == "interrupted-change"]
    assert [c["gpu"] for c in checks] == [1] and "migctl recover" in checks[0]["fix"]
    a = s("assert", "--layout", "3g.48gb,2g.24gb,1g.12gb:2")
    assert a.code == 10 and "GPU 1: differs: an apply of config '--layout'" in a.out and "migctl recover" in a.out
    s.ok("recover")
    assert s.json("status")["interrupted"] == []
    s.ok("assert", "--layout", "3g.48gb,2g.24gb,1g.12gb:2")


# ------------------------------------------------------------------------------------ item 6


def test_state_dir_migctl_creates_is_private(migctl: Cli, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh" / "state"
    Sim(migctl, "h20x1").ok("status", env={"MIGCTL_STATE_DIR": str(fresh)})
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o757])
def test_a_state_dir_everyone_may_write_is_refused_and_never_chmodded(migctl: Cli, tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "tmp-like"
    shared.mkdir()
    os.chmod(shared, mode)
    r = Sim(migctl, "h20x1")("create", "1g.12gb", env={"MIGCTL_STATE_DIR": str(shared)})
    assert r.code == EXIT_STATE, r.err
    assert str(shared) in r.err and "writable by every user" in r.err and "MIGCTL_STATE_DIR" in r.err
    assert stat.S_IMODE(shared.stat().st_mode) == mode  # untouched
    assert os.listdir(shared) == []


def test_an_existing_safe_state_dir_keeps_its_mode(migctl: Cli, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    os.chmod(mine, 0o755)  # noqa: S103  (a directory like /var/lib: others may read)
    Sim(migctl, "h20x1").ok("mode", "enable", env={"MIGCTL_STATE_DIR": str(mine)})
    assert stat.S_IMODE(mine.stat().st_mode) == 0o755


def test_the_simulators_folders_keep_the_mode_an_administrator_gave_them(migctl: Cli, tmp_path: Path) -> None:
    """The simulated node's folder (``<state>/sim``) and its driver files' folders are made 0700,
    but one that exists keeps its mode, through every command (never chmod a folder migctl did
    not just create)."""
    state = tmp_path / "state"
    s = Sim(migctl, "h20x1")
    s.ok("mode", "enable", env={"MIGCTL_STATE_DIR": str(state)})
    folders = [state / "sim", *(p for p in (state / "sim").rglob("*") if p.is_dir())]
    assert len(folders) > 1 and all(stat.S_IMODE(f.stat().st_mode) == 0o700 for f in folders)
    for f in folders:
        os.chmod(f, 0o2750)  # noqa: S103  (an administrator's group-readable setup)
    for args in (["status"], ["create", "1g.12gb"], ["destroy", "--all"], ["sim", "reload-driver"]):
        s.ok(*args, env={"MIGCTL_STATE_DIR": str(state)})
        assert stat.S_IMODE((state / "sim").stat().st_mode) == 0o2750, args
    remade = state / "sim" / "root" / "dev" / "nvidia-caps"  # a driver reload clears /dev/nvidia-caps
    assert stat.S_IMODE(remade.stat().st_mode) == 0o700
    kept = [f for f in folders if f != remade]
    assert len(kept) > 1 and all(stat.S_IMODE(f.stat().st_mode) == 0o2750 for f in kept)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_state_dir_of_another_user_is_refused(migctl: Cli, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    r = Sim(migctl, "h20x1")("status", env={"MIGCTL_STATE_DIR": str(theirs)})
    assert r.code == EXIT_STATE and "belongs to" in r.err and "uid 65534" in r.err


# ------------------------------------------------------------------------------------ item 7


def _state_with_a_lease(s: Sim, state_dir: Path) -> str:
    s.ok("create", "1g.12gb:2")
    uuid = s.json("devices")["gpus"][0]["mig_devices"][0]["uuid"]
    s.ok("run", "--on", uuid, "--", "true")  # leaves its (released) lease file
    return str(uuid)


def corrupt(kind: str, d: Path, uuid: str) -> None:
    """Damage one of migctl's state files the way a user, a crash or a full disk could."""
    lease = d / "leases" / f"{uuid}.lock"
    if kind == "lease-garbled":
        lease.write_bytes(b"\x00{]garbage")
    elif kind == "lease-wrong-shape":
        lease.write_text('[1, "pid", {"since": "x"}]')
    elif kind == "lease-huge-numbers":
        lease.write_text('{"pid": 1e999, "since": 1e308}')
    elif kind == "lease-directory":
        lease.unlink()
        lease.mkdir()
    elif kind == "leases-a-file":
        shutil.rmtree(d / "leases")
        (d / "leases").write_text("x")
    elif kind == "lock-owner-garbled":
        (d / "migctl.lock.owner").write_text("{{{")
    elif kind == "lock-owner-directory":
        (d / "migctl.lock.owner").mkdir()
    elif kind == "lock-directory":
        (d / "migctl.lock").unlink(missing_ok=True)
        (d / "migctl.lock").mkdir()
    elif kind in ("journal-deep", "lock-owner-deep", "last-apply-deep"):  # a RecursionError in json.loads
        names = {"journal-deep": "journal/gpu-0.json", "lock-owner-deep": "migctl.lock.owner"}
        name = names.get(kind, "last-apply.json")
        (d / name).parent.mkdir(exist_ok=True)
        (d / name).write_bytes(b"[" * 200_000)
    elif kind == "journal-huge":
        (d / "journal" / "gpu-0.json").write_bytes(b'{"gpu": 0, "pad": "' + b"x" * (8 << 20) + b'"}')
    elif kind == "journal-unreadable":  # root reads mode 000: a link to itself, which no one can open
        (d / "journal" / "gpu-0.json").symlink_to("gpu-0.json")
    elif kind == "journal-dir-a-file":
        shutil.rmtree(d / "journal", ignore_errors=True)
        (d / "journal").touch()
    else:
        raise AssertionError(kind)


CORRUPTIONS = [
    "lease-garbled",
    "lease-wrong-shape",
    "lease-huge-numbers",
    "lease-directory",
    "leases-a-file",
    "lock-owner-garbled",
    "lock-owner-directory",
    "lock-directory",
    "journal-dir-a-file",
    "journal-deep",
    "journal-huge",
    "journal-unreadable",
    "lock-owner-deep",
    "last-apply-deep",
]

COMMANDS = [
    ("status",),
    ("devices",),
    ("run", "--on", "{uuid}", "--no-queue", "--", "true"),
    ("create", "1g.12gb"),
    ("destroy", "--all"),
    ("apply", "--layout", "2g.24gb"),
    ("recover",),
    ("doctor", "--no-smoke"),
]


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_corrupted_state_is_named_never_an_internal_error(migctl: Cli, state_dir: Path, corruption: str) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("mode", "enable")
    uuid = _state_with_a_lease(s, state_dir)
    corrupt(corruption, state_dir, uuid)
    for command in COMMANDS:
        args = [a.replace("{uuid}", uuid) for a in command]
        r = s(*args)
        assert "internal error" not in r.out + r.err and "Traceback" not in r.err, (args, r.err)
        assert r.code in (0, 1, 2, 5, 6, EXIT_STATE), (args, r.code, r.err)
        if r.code == EXIT_STATE:  # the file, what is wrong, and what to do
            assert str(state_dir) in r.err and "; " in r.err, (args, r.err)


def test_a_state_dir_that_is_a_file_is_named(migctl: Cli, tmp_path: Path) -> None:
    f = tmp_path / "state-file"
    f.write_text("not a directory")
    r = Sim(migctl, "h20x1")("status", env={"MIGCTL_STATE_DIR": str(f)})
    assert r.code == EXIT_STATE and f"{f}" in r.err and "is not a directory" in r.err


# ------------------------------------------------------------------------ issue 10 section 9


def test_a_simulated_node_never_lands_in_a_system_path(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    env.update({"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "xdg")})
    code = "import migctl, os; n = migctl.Node(sim='h20x1'); print(os.environ['MIGCTL_STATE_DIR'])"
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert p.stdout.strip() == str(tmp_path / "xdg" / "migctl")
    assert (tmp_path / "xdg" / "migctl" / "sim" / "node.json").exists()
    cli = subprocess.run(
        [sys.executable, "-m", "migctl", "--sim", "h20x1", "mode", "enable"], env=env, capture_output=True, check=False
    )
    assert cli.returncode == 0
    assert (tmp_path / "xdg" / "migctl" / "migctl.lock").exists()  # its lock too: never /var/lib/migctl


#: The user ``nobody`` with only its own group (nogroup), as a login would give it.
AS_NOBODY: dict[str, Any] = {"user": "nobody", "group": "nogroup", "extra_groups": []}


def _as_nobody_python() -> list[str] | None:
    """An interpreter the user ``nobody`` can run migctl with (this venv's packages on its path)."""
    if os.geteuid() != 0:
        return None
    site = [p for p in sys.path if p.endswith("site-packages")]
    for exe in (sys.executable, "/usr/bin/python3"):
        env = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), *site]), "HOME": "/tmp"}
        try:
            subprocess.run([exe, "-c", "import migctl.cli.main"], env=env, check=True, timeout=30,
                           capture_output=True, **AS_NOBODY)
        except (subprocess.SubprocessError, OSError):
            continue
        return [exe]
    return None


@pytest.mark.skipif(_as_nobody_python() is None, reason="needs root and an interpreter another user can run")
def test_root_and_a_user_see_each_others_leases_in_a_shared_state_dir() -> None:
    exe = _as_nobody_python()
    assert exe is not None
    top = Path(tempfile.mkdtemp(prefix="migctl-shared-"))  # pytest's own folders are root's alone
    os.chmod(top, 0o755)  # noqa: S103  (the user must reach it)
    try:
        _shared_leases(exe, top)
    finally:
        shutil.rmtree(top)


def _shared_leases(exe: list[str], top: Path) -> None:
    shared = top / "shared"
    shared.mkdir()
    os.chown(shared, 0, 65534)  # the admin's setup: root:migctl 2770 (here: group nogroup, nobody's)
    os.chmod(shared, 0o2770)  # noqa: S103  (the documented shared setup)
    site = [p for p in sys.path if p.endswith("site-packages")]
    base = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), *site]), "HOME": "/tmp", "PATH": os.environ["PATH"],
            "MIGCTL_STATE_DIR": str(shared), "MIGCTL_SIM": "h20x1"}

    def migctl(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        who = AS_NOBODY if user == "nobody" else {}
        return subprocess.run([*exe, "-m", "migctl", *args], env=base, capture_output=True, text=True,
                              check=False, timeout=60, **who)

    assert migctl("mode", "enable").returncode == 0
    assert migctl("create", "1g.12gb:2").returncode == 0
    def share_simulated_driver() -> None:
        """The simulated driver is files that root's commands rewrite 0600; on hardware the user
        reaches the GPU through /dev/nvidia* instead. Only the state directory is under test."""
        for folder, _dirs, files in os.walk(shared / "sim"):  # its driver files (sim/root/...) too
            os.chown(folder, 0, 65534)
            os.chmod(folder, 0o2770)  # noqa: S103
            for name in files:
                os.chown(Path(folder) / name, 0, 65534)
                os.chmod(Path(folder) / name, 0o660)

    share_simulated_driver()
    devices = json.loads(migctl("devices", "--json").stdout)["gpus"][0]["mig_devices"]
    first, second = devices[0]["uuid"], devices[1]["uuid"]
    # root's job holds the first device: the user's run is refused, naming it
    root_job = subprocess.Popen([*exe, "-m", "migctl", "run", "--on", first, "--", "sleep", "20"], env=base)
    try:
        _wait_until(lambda: "sleep 20" in migctl("status").stdout)
        share_simulated_driver()
        r = migctl("run", "--on", first, "--no-queue", "--", "true", user="nobody")
        assert r.returncode == 5, r.stderr
        assert "sleep 20" in r.stderr
    finally:
        root_job.kill()
        root_job.wait()
    # the user's job holds the second: root's destroy is refused, naming it
    user_job = subprocess.Popen([*exe, "-m", "migctl", "run", "--on", second, "--", "sleep", "20"], env=base,
                                **AS_NOBODY)
    try:
        _wait_until(lambda: "sleep 20" in migctl("status").stdout)
        r = migctl("destroy", "--all")
        assert r.returncode == 5, r.stderr
        assert "sleep 20" in r.stderr and "nothing was destroyed" in r.stderr
    finally:
        user_job.kill()
        user_job.wait()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o2770  # migctl never changed it
    assert stat.S_IMODE((shared / "leases").stat().st_mode) & 0o070 == 0o070  # made group-usable


def _wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")
