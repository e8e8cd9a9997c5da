"""The newer change paths keep the safety promises too: ``restore``, the boot service, ``batch --auto``.

Each goes through ``apply``'s transaction (ops/apply.py): the leases of what it destroys are
taken before its first change (ops/busy.py ``Claim``), Ctrl-C/SIGTERM stop it at a safe point
(ops/cancel.py) with each GPU in its old or new layout, and it says which. Steps are hit exactly
with the simulator-only hook ``MIGCTL_FAULT_STEP=N:SIGNAL`` (see tests/test_safety_races.py).
"""

from __future__ import annotations

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
