"""``ops.create.create_at``: GPU instances at placements the caller chose (migctl.ray's on-demand path),
on several GPUs under one lock, journaled, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Sim, SimFactory
from migctl.core.geometry import Placement
from migctl.device import open_node
from migctl.errors import InsufficientResourcesError, MigctlError, NotSupportedError
from migctl.ops.create import create_at


def layout(s: Sim, gpu: int) -> list[tuple[str, int]]:
    return sorted((gi["profile"], gi["placement"]["start"]) for gi in s.gpu(gpu)["gpu_instances"])


def test_instances_go_exactly_where_asked_on_several_gpus_with_their_mig_devices(sim: SimFactory) -> None:
    s = sim("h20x2", enable="0,1")
    s.ok("create", "-i", "0", "1g.12gb", "--placement", "0")
    node = open_node(s.spec)
    try:
        wanted = [(node.gpus[0], "1g.12gb", Placement(6, 1)), (node.gpus[1], "3g.48gb", Placement(4, 4)),
                  (node.gpus[0], "2g.24gb", Placement(2, 2))]
        report = create_at(node, wanted, what="test")
    finally:
        node.close()
    assert [(c.gpu, c.profile, c.placement.start) for c in report.created] == [(0, "1g.12gb", 6), (0, "2g.24gb", 2),
                                                                               (1, "3g.48gb", 4)]
    assert all(c.uuid and c.uuid.startswith("MIG-") for c in report.created)
    assert layout(s, 0) == [("1g.12gb", 0), ("1g.12gb", 6), ("2g.24gb", 2)]  # the one there before is kept
    assert layout(s, 1) == [("3g.48gb", 4)]


@pytest.mark.parametrize(
    ("gpu", "profile", "start", "error", "message"),
    [
        (0, "2g.24gb", 0, InsufficientResourcesError, r"GPU 0: 2g\.24gb at 0:2: .*"),  # slice 0 is taken
        (0, "2g.24gb", 1, InsufficientResourcesError, r"cannot start at slice 1 \(legal starts: 0,2,4\)"),
        (1, "1g.12gb", 0, NotSupportedError, r"MIG is disabled on GPU 1"),
    ],
)
def test_a_placement_that_cannot_be_had_creates_nothing_anywhere(
    sim: SimFactory, gpu: int, profile: str, start: int, error: type[MigctlError], message: str
) -> None:
    s = sim("h20x3", enable="0,2")
    s.ok("create", "-i", "0", "1g.12gb", "--placement", "0")
    before = [layout(s, 0), layout(s, 2)]
    node = open_node(s.spec)
    try:
        size = {"1g.12gb": 1, "2g.24gb": 2}[profile]
        with pytest.raises(error, match=message):
            create_at(node, [(node.gpus[2], "1g.12gb", Placement(6, 1)),
                             (node.gpus[gpu], profile, Placement(start, size))])
    finally:
        node.close()
    assert [layout(s, 0), layout(s, 2)] == before


def test_two_asks_for_one_placement_are_refused_together(sim: SimFactory) -> None:
    s = sim("h20x1")
    node = open_node(s.spec)
    try:
        with pytest.raises(InsufficientResourcesError, match=r"GPU 0: 1g\.12gb at 6:1"):
            create_at(node, [(node.gpus[0], "1g.12gb", Placement(6, 1)), (node.gpus[0], 19, Placement(6, 1))])
    finally:
        node.close()
    assert layout(s, 0) == []


def test_a_driver_failure_part_way_undoes_everything_it_made(
    sim: SimFactory, monkeypatch: pytest.MonkeyPatch, state_dir: Path
) -> None:
    s = sim("h20x2", enable="0,1")
    monkeypatch.setenv("MIGCTL_SIM_FAULTS", "create-gi@3=INSUFFICIENT_RESOURCES")
    node = open_node(s.spec)
    try:
        wanted = [(node.gpus[0], "1g.12gb", Placement(6, 1)), (node.gpus[0], "1g.12gb", Placement(5, 1)),
                  (node.gpus[1], "1g.12gb", Placement(6, 1))]
        with pytest.raises(MigctlError) as failed:
            create_at(node, wanted)
    finally:
        node.close()
    assert failed.value.details.get("rolled_back") is True
    monkeypatch.delenv("MIGCTL_SIM_FAULTS")
    assert layout(s, 0) == layout(s, 1) == []
    assert not list((state_dir / "journal").glob("gpu-*.json"))  # nothing left for recover


def test_an_interrupted_earlier_change_is_finished_first_not_overwritten(sim: SimFactory, state_dir: Path) -> None:
    """A journal left by a crash (here: a create that died after journaling) is recovered before the new one."""
    s = sim("h20x1")
    journal = state_dir / "journal"
    journal.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = {"mig_enabled": True, "instances": [{"profile_id": 19, "placement": [0, 1], "compute": None}]}
    (journal / "gpu-0.json").write_text(json.dumps({"gpu": 0, "config": "migctl create 1g.12gb", "pid": 1,
                                                    "started": 0, "target": target,
                                                    "before": {"mig_enabled": True, "instances": []}}))
    node = open_node(s.spec)
    try:
        create_at(node, [(node.gpus[0], "1g.12gb", Placement(6, 1))])
    finally:
        node.close()
    assert layout(s, 0) == [("1g.12gb", 0), ("1g.12gb", 6)]
    assert not list(journal.glob("gpu-*.json"))
