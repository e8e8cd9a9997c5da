"""The newer change paths keep the safety promises too: ``restore``, the boot service, ``batch --auto``.

Each goes through ``apply``'s transaction (ops/apply.py): the leases of what it destroys are
taken before its first change (ops/busy.py ``Claim``), Ctrl-C/SIGTERM stop it at a safe point
(ops/cancel.py) with each GPU in its old or new layout, and it says which. Steps are hit exactly
with the simulator-only hook ``MIGCTL_FAULT_STEP=N:SIGNAL`` (see tests/test_safety_races.py).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from conftest import Cli, Sim
from migctl.ops import cancel
from test_safety_races import Layout, finish, frozen, layout, start, uuids

# -- restore ---------------------------------------------------------------------------------------


def _checkpointed(s: Sim, tmp_path: Path, spec: str, then: str) -> tuple[Path, Layout, Layout]:
    """A checkpoint of ``spec`` on every GPU, then the node changed to ``then``: (file, old, new)."""
    s.ok("apply", "--layout", spec)
    new = layout(s.spec)
    ck = tmp_path / "ck.json"
    s.ok("checkpoint", "-f", str(ck))
    s.ok("apply", "--layout", then)
    return ck, layout(s.spec), new


def test_run_is_refused_a_device_a_restore_is_about_to_destroy(migctl: Cli, state_dir: Path, tmp_path: Path) -> None:
    s = Sim(migctl, "h20x1")
    ck, _old, new = _checkpointed(s, tmp_path, "7g.96gb", "1g.12gb:7")
    last = uuids("h20x1")[-1]
    restore = start(state_dir, "h20x1", "restore", "-f", str(ck), env={"MIGCTL_FAULT_STEP": "2:STOP"})
    try:
        frozen(restore)  # planned, leases of all 7 doomed instances taken, one instance destroyed
        r = s("run", "--on", last, "--no-queue", "--", "true")
        code, out, err = finish(restore)
    finally:
        restore.kill()
    assert r.code == 5 and "destroying it" in r.err, r.err
    assert code == 0, (out, err)
    assert layout("h20x1") == new
    assert not list((state_dir / "leases").glob(f"{last}.lock"))


@pytest.mark.parametrize(("step", "sig"), [(1, "TERM"), (9, "INT"), (20, "TERM")])
def test_interrupted_restore_ends_each_gpu_old_or_new_and_says_which(
    migctl: Cli, state_dir: Path, tmp_path: Path, step: int, sig: str
) -> None:
    s = Sim(migctl, "h20x2")
    ck, old, new = _checkpointed(s, tmp_path, "3g.48gb,2g.24gb,1g.12gb:2", "1g.12gb:7")
    assert old != new
    r = s("restore", "-f", str(ck), "--json", env={"MIGCTL_FAULT_STEP": f"{step}:{sig}"})
    assert r.code == 130, (r.out, r.err)
    doc = r.json()  # one document, saying what each GPU ended as
    assert doc["interrupted"] == f"SIG{sig}" and doc["ok"] is False
    ended = layout("h20x2")
    for g in doc["gpus"]:
        assert g["result"] in ("applied", "rolled_back"), g
        assert ended[g["gpu"]] == (new[g["gpu"]] if g["result"] == "applied" else old[g["gpu"]])
    assert any(g["result"] == "rolled_back" for g in doc["gpus"])
    assert not list((state_dir / "journal").glob("gpu-*.json"))
    # the same, as a person sees it: each GPU on stdout, one line on stderr saying it was interrupted
    s.ok("apply", "--layout", "1g.12gb:7")
    r = s("restore", "-f", str(ck), env={"MIGCTL_FAULT_STEP": f"{step}:{sig}"})
    assert r.code == 130 and f"interrupted by SIG{sig}" in r.out
    assert r.err.strip() == f"migctl: interrupted by SIG{sig}: each GPU ended as shown above"


def test_the_api_raises_interrupted_from_an_interrupted_restore(
    migctl: Cli, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import migctl as api
    from migctl.errors import Interrupted

    s = Sim(migctl, "h20x1")
    ck, old, _new = _checkpointed(s, tmp_path, "7g.96gb", "1g.12gb:7")
    with api.Node(sim="h20x1") as node:
        monkeypatch.setenv("MIGCTL_SIM", "h20x1")
        monkeypatch.setenv("MIGCTL_FAULT_STEP", "3:INT")
        cancel.reset_step_count()
        with pytest.raises(Interrupted, match="GPU 0: rolled_back") as caught:
            node.restore(ck)
    assert caught.value.report.interrupted == "SIGINT"  # type: ignore[attr-defined]
    assert layout("h20x1") == old


# -- the boot service ------------------------------------------------------------------------------


def _boot_dirs(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    units, boot = tmp_path / "units", tmp_path / "boot"
    units.mkdir()
    return units, boot, ["--boot-dir", str(boot), "--unit-dir", str(units)]


def test_interrupted_boot_apply_ends_each_gpu_old_or_new_and_records_it(
    migctl: Cli, state_dir: Path, tmp_path: Path
) -> None:
    s = Sim(migctl, "h20x2")
    _units, boot, where = _boot_dirs(tmp_path)
    s.ok("apply", "--layout", "3g.48gb,2g.24gb,1g.12gb:2")
    new = layout("h20x2")
    (tmp_path / "c.yaml").write_text(s.ok("export").out)
    s.ok("boot", "install", "-f", str(tmp_path / "c.yaml"), "-c", "current", "--no-apply", *where)
    s.ok("apply", "--layout", "1g.12gb:7")
    old = layout("h20x2")
    r = s("boot", "apply", "--boot-dir", str(boot), "--json", env={"MIGCTL_FAULT_STEP": "9:TERM"})
    assert r.code == 130, (r.out, r.err)
    run = r.json()
    assert run["ok"] is False and run["exit_code"] == 130 and "interrupted by SIGTERM" in run["error"]
    ended = layout("h20x2")
    for o in run["outcomes"]:
        assert o["result"] in ("applied", "rolled_back"), o
        assert ended[o["gpu"]] == (new[o["gpu"]] if o["result"] == "applied" else old[o["gpu"]])
        assert f"GPU {o['gpu']}: {o['result']}" in run["error"]  # says which, for each GPU
    assert not list((state_dir / "journal").glob("gpu-*.json"))
    status = s("boot", "status", *where, "--json").json()["last_boot"]
    assert status["ok"] is False and status["exit_code"] == 130 and "interrupted by SIGTERM" in status["error"]
    # the next boot apply (or a rerun) brings the recorded layout
    s.ok("boot", "apply", "--boot-dir", str(boot))
    assert layout("h20x2") == new


def test_interrupted_boot_install_records_nothing_and_says_what_each_gpu_is(
    migctl: Cli, state_dir: Path, tmp_path: Path
) -> None:
    s = Sim(migctl, "h20x2")
    units, boot, where = _boot_dirs(tmp_path)
    s.ok("apply", "--layout", "1g.12gb:7")
    old = layout("h20x2")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("version: v1\nmig-configs:\n  big:\n  - devices: all\n    mig-enabled: true\n"
                   "    mig-devices: {7g.96gb: 1}\n")
    r = s("boot", "install", "-f", str(cfg), "-c", "big", *where, env={"MIGCTL_FAULT_STEP": "5:INT"})
    assert r.code == 130 and "Traceback" not in r.err, (r.out, r.err)
    assert "interrupted by SIGINT" in r.err and "nothing was recorded" in r.err
    assert "GPU 0: rolled_back" in r.err and "GPU 1: rolled_back" in r.err
    assert layout("h20x2") == old
    assert not (boot / "selection.json").exists() and not list(units.rglob("*.service"))


def test_boot_apply_with_nowhere_to_record_its_result_changes_nothing(
    migctl: Cli, state_dir: Path, tmp_path: Path
) -> None:
    s = Sim(migctl, "h20x1")
    _units, boot, where = _boot_dirs(tmp_path)
    s.ok("apply", "--layout", "7g.96gb")
    (tmp_path / "c.yaml").write_text(s.ok("export").out)
    s.ok("boot", "install", "-f", str(tmp_path / "c.yaml"), "-c", "current", "--no-apply", *where)
    s.ok("apply", "--layout", "1g.12gb:7")
    before = layout("h20x1")
    (state_dir / "boot").mkdir(exist_ok=True)
    (state_dir / "boot" / "last.json").mkdir()  # a folder in the file's place
    r = s("boot", "apply", "--boot-dir", str(boot))
    assert r.code == 11 and "Traceback" not in r.err, (r.out, r.err)
    assert "last.json" in r.err and "nothing was applied" in r.err
    assert layout("h20x1") == before


@pytest.mark.parametrize("content", [b"", b"{", b"[1,2]", b'{"ok": "maybe"}', b"x" * (2 << 20)])
def test_a_damaged_last_boot_record_reads_as_none(
    migctl: Cli, state_dir: Path, tmp_path: Path, content: bytes
) -> None:
    s = Sim(migctl, "h20x1")
    _units, _boot, where = _boot_dirs(tmp_path)
    s.ok("status")
    (state_dir / "boot").mkdir(exist_ok=True)
    (state_dir / "boot" / "last.json").write_bytes(content)
    r = s("boot", "status", *where, "--json")
    assert "Traceback" not in r.err and r.json()["last_boot"] is None, (r.out, r.err)


# -- batch --auto ----------------------------------------------------------------------------------


def test_a_stop_the_batch_holds_blocked_is_seen_before_another_change() -> None:
    """batch --auto blocks SIGINT/SIGTERM/SIGHUP and takes them between rounds: a reshape asks
    :func:`cancel.stop_pending` before it starts a GPU reset or a retry (ops/autoreshape.py)."""
    me = threading.get_ident()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        try:
            assert not cancel.stop_pending()
            signal.pthread_kill(me, sig)  # to this thread only: it stays pending while blocked
            assert cancel.stop_pending()
            assert signal.sigtimedwait({sig}, 0) is not None  # taken, as the batch takes it
            assert not cancel.stop_pending()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert not cancel.stop_pending()  # nothing blocked: a signal would have been handled, not pending

