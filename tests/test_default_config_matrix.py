"""NVIDIA's default mig-parted config file as test data: every named config x every model.

For each model of the simulator's catalog, one fresh simulated GPU takes every named config
of ``mig-parted-config-default.yaml`` in file order, in-process through the Python layer
(``ops.plan.plan_node`` / ``ops.apply.apply`` / ``ops.check.check``):

* a config that targets the model (``migctl.config.applies_to``: an entry covers it and the
  GPU has every profile the entry names) applies, ``assert`` passes afterwards, and a second
  apply would change nothing;
* a config that covers the model but names a profile it lacks is rejected before any change,
  with a message naming the GPU and the nearest profile it has;
* a config no entry of which covers the model leaves the GPU alone.

A handful of the same cases also go through the CLI, and ``tools/config_matrix.py`` (which
publishes the matrix in ``docs/layouts.md``) is run on a slice of it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Cli, Result
from migctl import sim
from migctl.config import GpuFacts, MigSpec, applies_to
from migctl.device import Gpu, open_node
from migctl.device.simulated import model_geometry
from migctl.errors import UsageError
from migctl.ops.apply import apply
from migctl.ops.check import assert_node, check
from migctl.ops.files import load_config_file
from migctl.ops.plan import gpu_facts, plan_node
from migctl.sim.catalog import models

REPO = Path(__file__).resolve().parents[1]
MIG_MODELS = [k for k, m in models().items() if m.mig_capable]


@pytest.fixture(scope="module")
def default_file() -> Path:
    return REPO / "src" / "migctl" / "data" / "mig-parted-config-default.yaml"


@pytest.fixture(scope="module")
def spec(default_file: Path) -> MigSpec:
    return load_config_file(default_file)


def snapshot(gpu: Gpu) -> Any:
    """Everything apply could change: MIG mode, GPU instances (ID, profile, placement) and their
    compute instances (ID, profile, MIG UUID)."""
    return (
        gpu.mig_mode(),
        [
            (gi.id, gi.profile, gi.placement, [(ci.id, ci.profile, ci.uuid) for ci in gi.compute_instances()])
            for gi in gpu.gpu_instances()
        ],
    )


@pytest.mark.parametrize("key", list(models()))
def test_every_default_config_applies_where_it_targets_and_is_rejected_where_it_does_not(
    key: str, spec: MigSpec, state_dir: Path
) -> None:
    sim.reset(key, state_dir)
    node = open_node(sim=key, state_dir=str(state_dir))
    gpu = node.gpus[0]
    problems: list[str] = []
    applied = rejected = left_alone = 0
    try:
        for name in spec.names():
            before = snapshot(gpu)
            targeted = applies_to(spec, name, [gpu_facts(gpu)])[0]
            try:
                plan = plan_node(node, spec, name, node.gpus, source="default.yaml")
            except UsageError as exc:
                rejected += 1
                if targeted:
                    problems.append(f"{name}: targeted but refused: {exc}")
                elif not re.search(rf"GPU 0 \({re.escape(gpu.name)}, 0x[0-9A-F]{{8}}\) has no profile \S+", str(exc)):
                    problems.append(f"{name}: unclear rejection: {exc}")
                elif snapshot(gpu) != before:
                    problems.append(f"{name}: rejected, but the GPU changed")
                continue
            g = plan.gpus[0]
            if g.target is None:
                # A config that covers none of the node's GPUs is refused, changing nothing.
                left_alone += 1
                try:
                    report = apply(node, plan)
                    problems.append(f"{name}: covers no GPU, yet apply went ahead: {report.gpus}")
                except UsageError as exc:
                    if targeted or "covers none of the chosen GPUs" not in str(exc) or snapshot(gpu) != before:
                        problems.append(f"{name}: should be refused, changing nothing: {g.note}; {exc}")
                continue
            if not targeted:
                problems.append(f"{name}: applies_to says not targeted, yet it plans")
            if g.refusal is not None:
                problems.append(f"{name}: refused: {g.refusal.reason}")
                continue
            report = apply(node, plan)
            if not report.ok:
                problems.append(f"{name}: apply failed: {report.gpus}")
                continue
            applied += 1
            again = plan_node(node, spec, name, node.gpus)
            diffs = {d.gpu: d.differences for d in check(again, node).gpus}
            if diffs[0]:
                problems.append(f"{name}: assert fails after apply: {diffs[0]}")
            if again.gpus[0].changes:
                problems.append(f"{name}: a second apply would change the GPU")
            try:
                assert_node(node, again)
            except Exception as exc:  # any exception is a failure worth listing
                problems.append(f"{name}: assert_node raised {exc}")
    finally:
        node.close()
    assert not problems, "\n".join(problems)
    if models()[key].mig_capable:
        # all-disabled, all-enabled, all-balanced and at least one all-<profile> layout
        assert applied >= 4, (key, applied)
    else:
        assert applied == rejected == 0 and left_alone == len(spec.names())


def test_the_default_file_covers_every_mig_model_with_its_balanced_layout(spec: MigSpec) -> None:
    for key in MIG_MODELS:
        m = models()[key]
        gpu = [GpuFacts(0, m.nvml_pci_device_id, model_geometry(m.key), m.name)]
        assert applies_to(spec, "all-balanced", gpu)[0], key
        uniform = [n for n in spec.names() if re.fullmatch(r"all-\dg\.\d+gb", n) and applies_to(spec, n, gpu)[0]]
        assert len(uniform) >= 3, (key, uniform)


def test_a_mixed_node_applies_all_balanced_with_each_models_own_profiles(
    migctl: Cli, default_file: Path, state_dir: Path
) -> None:
    nodes = "h100-80gb,h20,a30,b200,l40s"
    def run(*args: str) -> Result:
        return migctl("--sim", nodes, *args)

    r = run("apply", "-f", str(default_file), "-c", "all-balanced")
    assert r.code == 0, r
    assert "GPU 4: skipped: NVIDIA L40S" in r.out or "GPU 4: skipped" in r.out
    assert run("assert", "-f", str(default_file), "-c", "all-balanced").code == 0
    status = run("status", "--json").json()
    profiles = [sorted(gi["profile"] for gi in g["gpu_instances"]) for g in status["gpus"]]
    assert profiles == [
        ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"],
        ["1g.12gb", "1g.12gb", "2g.24gb", "3g.48gb"],
        ["1g.6gb", "1g.6gb", "2g.12gb"],
        ["1g.23gb", "1g.23gb", "2g.45gb", "3g.90gb"],
        [],
    ]
    r = run("assert", "-f", str(default_file), "-c", "all-1g.10gb")
    assert r.code == 10 and "GPU 0: differs: missing" in r.out


def test_the_cli_rejects_a_config_a_model_cannot_hold_before_any_change(migctl: Cli, default_file: Path) -> None:
    before = migctl("--sim", "h100-80gbx2", "status", "--json").out
    r = migctl("--sim", "h100-80gbx2", "apply", "-f", str(default_file), "-c", "all-1g.5gb")
    assert r.code == 2, r
    assert "GPU 0 (NVIDIA H100 80GB HBM3, 0x233010DE) has no profile 1g.5gb; did you mean 1g.10gb?" in r.err
    assert re.search(r"mig-parted-config-default\.yaml:\d+: mig-configs\.all-1g\.5gb\[0\]\.mig-devices\.1g\.5gb", r.err)
    assert migctl("--sim", "h100-80gbx2", "status", "--json").out == before


def test_the_cli_refuses_a_config_that_covers_none_of_the_gpus(migctl: Cli, default_file: Path) -> None:
    r = migctl("--sim", "h20", "apply", "-f", str(default_file), "-c", "all-1g.10gb")
    assert r.code == 2, r  # mig-parted would succeed doing nothing: almost surely the wrong config name
    assert "no entry of config 'all-1g.10gb' covers GPU 0 (NVIDIA H20, 0x232910DE)" in r.out
    assert "config 'all-1g.10gb' covers none of the chosen GPUs (GPU 0: NVIDIA H20, 0x232910DE)" in r.err
    r = migctl("--sim", "h20", "apply", "-f", str(default_file), "-c", "all-1g.12gb")
    assert r.code == 0 and "GPU 0: applied (kept 0, destroyed 0, created 7)" in r.out
    r = migctl("--sim", "h20", "apply", "-f", str(default_file), "-c", "all-disabled")
    assert r.code == 0 and "disable MIG mode" in r.out
    assert migctl("--sim", "h20", "assert", "-f", str(default_file), "-c", "all-disabled").code == 0


def _tool() -> Any:
    spec = importlib.util.spec_from_file_location("config_matrix", REPO / "tools" / "config_matrix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_matrix_tool_prints_a_markdown_table(
    default_file: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _tool().main(["--models", "h20,b200,l40s", "--configs", "all-balanced,all-1g.12gb,all-1g.10gb"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = out.splitlines()
    assert rows[0] == "| config | h20 | b200 | l40s |"
    assert rows[2] == "| `all-balanced` | ✓ | ✓ |  |"
    assert rows[3] == "| `all-1g.12gb` | ✓ | ✗ no 1g.12gb |  |"
    assert rows[4] == "| `all-1g.10gb` |  |  |  |"  # a device-filter that names neither model
    assert "3 ✓ (applied, assert passes), 1 ✗ (rejected before any change), 5 not targeted" in out
    assert "0 FAIL" in out
