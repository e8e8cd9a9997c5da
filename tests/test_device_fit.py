"""Jobs get the device that fits them best (issue 10, section 7).

The node: one H20 holding a 3g.48gb instance (created first, so it has the lowest MIG device
index, the one "lowest index first" used to pick) and two 1g.12gb instances. A job without a
target takes the smallest free device; in a batch, jobs that ask for 3g.48gb get it even when
jobs that run anywhere come first in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import migctl
from conftest import Cli
from migctl.usage import release

SPEC = "h20"


@pytest.fixture
def node(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[migctl.Node]:
    monkeypatch.setenv("MIGCTL_SIM", SPEC)
    api = migctl.Node(sim=SPEC)
    api.set_mig_mode(True, gpus="0")
    api.create("3g.48gb", gpus="0")
    api.create("1g.12gb:2", gpus="0")
    devices = api.devices()
    assert min(devices, key=lambda d: d.index).profile == "3g.48gb"
    yield api
    api.close()


def test_run_without_a_target_takes_the_smallest_free_device(node: migctl.Node, migctl: Cli, tmp_path: Path) -> None:
    out = tmp_path / "profile"
    r = migctl("run", "--", "sh", "-c", f"echo $MIGCTL_PROFILE > {out}")
    assert r.code == 0, r.err
    assert out.read_text().strip() == "1g.12gb"
    held = node.lease()  # the next one: still a 1g.12gb, while one is free
    try:
        assert held.device.profile == "1g.12gb"
        other = node.lease()
        try:
            assert other.device.profile == "1g.12gb" and other.device.uuid != held.device.uuid
            assert node.lease().device.profile == "3g.48gb"  # only the big one is left
        finally:
            other.release()
    finally:
        held.release()


def test_use_without_a_target_takes_the_smallest_free_device(node: migctl.Node) -> None:
    try:
        dev = node.use()
        assert dev.profile == "1g.12gb"
    finally:
        release()


def test_a_batch_gives_named_profiles_their_instance_first(node: migctl.Node, migctl: Cli, tmp_path: Path) -> None:
    log = tmp_path / "where.log"
    record = f'echo "$JOB $MIGCTL_PROFILE" >> {log}; sleep 0.3'

    def job(name: str, profile: str | None) -> str:
        target = f"\n    profile: {profile}" if profile else ""
        return f"  - name: {name}\n    command: [sh, -c, '{record}']\n    env: {{JOB: {name}}}{target}\n"

    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("jobs:\n" + "".join(job(f"any-{i}", None) for i in range(4))
                    + job("big-1", "3g.48gb") + job("big-2", "3g.48gb"))
    r = migctl("batch", str(jobs), "--logs", str(tmp_path / "logs"))
    assert r.code == 0, r.out + r.err
    where = dict(line.split() for line in log.read_text().splitlines())
    assert where["big-1"] == where["big-2"] == "3g.48gb"
    # The jobs that run anywhere started on the small instances, not on the one big-1 waited for.
    assert where["any-0"] == where["any-1"] == "1g.12gb"
