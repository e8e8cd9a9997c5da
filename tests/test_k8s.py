"""Kubernetes: the device plugin's resources, GFD's labels, and the hooks file for apply.

Expected names follow NVIDIA's documented rules, not migctl's code: under ``mixed`` a MIG
device is ``nvidia.com/mig-<profile>`` with ``+`` written ``.``, and since device plugin
v0.20.0 the suffixed profiles (``-me``, ``+me.all``, ``+gfx``) are resources of their own;
``single`` exposes a uniform layout as ``nvidia.com/gpu``. Label values for the H20 come from
its ``nvidia-smi mig -lgip`` row (SM 8, DEC 1, ENC 0) and its MIG device size, 12032 MiB
(docs/reference/mig-hardware.md).
"""

from __future__ import annotations

import collections
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from migctl.config.hooks import HOOK_POINTS, load_hooks_text
from migctl.integrations import k8s
from migctl.integrations.facts import GpuFacts, MigDeviceFacts

# RTX PRO 6000 and H100 profiles, whole-GPU-instance MIG devices only
PROFILES = ["1g.24gb", "1g.24gb+me", "1g.24gb-me", "1g.24gb+me.all", "1g.24gb+gfx", "2g.48gb", "2g.48gb+gfx",
            "4g.96gb", "1g.10gb", "1g.10gb+me", "3g.40gb", "7g.80gb"]


def mig(gpu: int, gi: int, profile: str, sm: int = 16) -> MigDeviceFacts:
    g = int(profile.split("g.")[0].split(".")[-1])
    return MigDeviceFacts(gpu, gi, 0, profile, profile, f"MIG-{gpu}-{gi}", 1000 * g, sm, g, g)


def gpu(index: int, migs: list[MigDeviceFacts] | None, name: str = "NVIDIA RTX PRO 6000") -> GpuFacts:
    return GpuFacts(index, index, name, f"GPU-{index}", True, migs is not None, 97000, tuple(migs or ()))


@given(st.lists(st.one_of(st.none(), st.lists(st.sampled_from(PROFILES), max_size=4)), min_size=1, max_size=4))
def test_mixed_advertises_one_resource_per_profile_name(layout: list[list[str] | None]) -> None:
    gpus = [gpu(i, None if ps is None else [mig(i, j, p) for j, p in enumerate(ps)]) for i, ps in enumerate(layout)]
    expected = collections.Counter("nvidia.com/mig-" + p.replace("+", ".") for ps in layout if ps for p in ps)
    whole = sum(1 for ps in layout if ps is None)
    if whole:
        expected["nvidia.com/gpu"] = whole
    got = k8s.advertised(gpus, "mixed")
    assert got.ok and got.resources == dict(expected)
    assert len(got.warnings) == sum(1 for ps in layout if ps == [])


def test_v020_suffixed_profiles_are_separate_resources() -> None:
    gpus = [gpu(0, [mig(0, 1, "1g.24gb"), mig(0, 2, "1g.24gb-me"), mig(0, 3, "1g.24gb+me.all"),
                    mig(0, 4, "1g.24gb+gfx")])]
    assert k8s.advertised(gpus, "mixed").resources == {
        "nvidia.com/mig-1g.24gb": 1, "nvidia.com/mig-1g.24gb-me": 1, "nvidia.com/mig-1g.24gb.me.all": 1,
        "nvidia.com/mig-1g.24gb.gfx": 1}


def test_mixed_refuses_smaller_compute_instances() -> None:
    ci = MigDeviceFacts(0, 2, 0, "1c.3g.48gb", "3g.48gb", "MIG-x", 48000, 8, 3, 1)
    got = k8s.advertised([gpu(0, [ci], "NVIDIA H20")], "mixed")
    assert not got.ok and "1c.3g.48gb" in str(got.error) and "does not match any resource patterns" in str(got.error)


def test_single_needs_one_uniform_layout_and_says_why_not() -> None:
    uniform = [gpu(0, [mig(0, i, "1g.24gb") for i in range(4)]), gpu(1, [mig(1, i, "1g.24gb") for i in range(4)])]
    assert k8s.advertised(uniform, "single").resources == {"nvidia.com/gpu": 8}
    mixed = [gpu(0, [mig(0, 1, "1g.24gb"), mig(0, 2, "2g.48gb")])]
    assert "more than one MIG device type" in str(k8s.advertised(mixed, "single").error)
    half = [gpu(0, [mig(0, 1, "1g.24gb")]), gpu(1, None)]
    assert "same migEnabled value" in str(k8s.advertised(half, "single").error)
    empty = [gpu(0, [mig(0, 1, "1g.24gb")]), gpu(1, [])]
    assert "device 1 has no MIG devices" in str(k8s.advertised(empty, "single").error)
    assert k8s.node_labels(mixed, "single")["nvidia.com/gpu.product"] == "NVIDIA-RTX-PRO-6000-MIG-INVALID"


def test_export_k8s_on_an_h20_node(migctl: Any) -> None:
    assert migctl("--sim", "h20x2", "apply", "--layout", "1g.12gb:7").code == 0
    r = migctl("--sim", "h20x2", "export", "--format", "k8s", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["resources"]["mixed"]["resources"] == {"nvidia.com/mig-1g.12gb": 14}
    assert doc["resources"]["single"]["resources"] == {"nvidia.com/gpu": 14}
    mixed, single = doc["labels"]["mixed"], doc["labels"]["single"]
    assert mixed["nvidia.com/mig.strategy"] == "mixed" and single["nvidia.com/mig.strategy"] == "single"
    for prefix, labels in (("nvidia.com/mig-1g.12gb", mixed), ("nvidia.com/gpu", single)):
        assert labels[f"{prefix}.count"] == "14"
        assert labels[f"{prefix}.product"] == "NVIDIA-H20-MIG-1g.12gb"
        assert labels[f"{prefix}.memory"] == "12032"
        assert labels[f"{prefix}.multiprocessors"] == "8"
        assert labels[f"{prefix}.slices.gi"] == "1" and labels[f"{prefix}.slices.ci"] == "1"
        assert labels[f"{prefix}.engines.decoder"] == "1" and labels[f"{prefix}.engines.encoder"] == "0"
        assert {f"{prefix}.engines.{e}" for e in ("copy", "jpeg", "ofa")} <= set(labels)
    # a mixed layout: single says why it cannot work
    assert migctl("--sim", "h20x2", "apply", "--layout", "3g.48gb,1g.12gb", "-i", "1").code == 0
    doc = migctl("--sim", "h20x2", "export", "--format", "k8s", "--json").json()
    assert doc["resources"]["mixed"]["resources"] == {"nvidia.com/mig-1g.12gb": 8, "nvidia.com/mig-3g.48gb": 1}
    assert doc["resources"]["single"]["ok"] is False
    assert "more than one MIG device type" in doc["resources"]["single"]["error"]


def _hooks_text() -> str:
    return resources.files("migctl.integrations").joinpath("data/k8s-hooks.yaml").read_text("utf-8")


def test_shipped_hooks_file_loads_and_pauses_clients_around_changes(migctl: Any) -> None:
    text = migctl("k8s", "hooks-file").out
    assert text == _hooks_text()
    spec = load_hooks_text(text, "k8s-hooks.yaml")
    assert set(spec.hooks) <= set(HOOK_POINTS)
    for hooks in spec.hooks.values():
        for h in hooks:
            assert isinstance(h.command, str) and all(isinstance(a, str) for a in h.args)
            assert not ({"-c"} & set(h.args)) and h.command not in ("sh", "bash", "/bin/sh", "/bin/bash")
            assert "PATH" in h.envs  # hooks get only their envs (mig-parted's rule): kubectl must be findable
    argv = {point: [h.argv for h in hooks] for point, hooks in spec.hooks.items()}
    assert argv["pre-apply-mode"] == [("migctl", "k8s", "clients", "pause")]
    assert argv["pre-apply-config"] == [("migctl", "k8s", "clients", "pause")]
    assert argv["apply-exit"] == [("migctl", "k8s", "clients", "resume")]


def _stub_kubectl(tmp_path: Path, labels: dict[str, str]) -> Path:
    """A stand-in for the cluster: kubectl that records its argv and answers `get node`."""
    log = tmp_path / "kubectl.log"
    stub = tmp_path / "kubectl"
    node = json.dumps({"kind": "Node", "metadata": {"name": "gpu7", "labels": labels}})
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\n"
                    f"[ \"$1\" = get ] && printf '%s' '{node}'\nexit 0\n")
    stub.chmod(0o755)
    return log


def test_clients_pause_and_resume_flip_the_deploy_labels_like_mig_manager(migctl: Any, tmp_path: Path) -> None:
    log = _stub_kubectl(tmp_path, {"nvidia.com/gpu.deploy.device-plugin": "true",
                                   "nvidia.com/gpu.deploy.dcgm": "false"})
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    r = migctl("k8s", "clients", "pause", "--node", "gpu7", "--json", env=env)
    assert r.code == 0, r.err
    calls = log.read_text().splitlines()
    assert calls[0] == "get node gpu7 -o json"
    assert calls[1].split() == ["label", "--overwrite", "node", "gpu7",
                                "nvidia.com/gpu.deploy.device-plugin=paused-for-mig-change",
                                "nvidia.com/gpu.deploy.gpu-feature-discovery=paused-for-mig-change",
                                "nvidia.com/gpu.deploy.dcgm-exporter=paused-for-mig-change",
                                "nvidia.com/gpu.deploy.dcgm=false"]  # set to false by someone else: kept
    assert calls[2].startswith("wait --for=delete pod --all-namespaces") and "spec.nodeName=gpu7" in calls[2]
    log.unlink()
    r = migctl("k8s", "clients", "resume", "--node", "gpu7", env=env)
    assert r.code == 0, r.err
    assert "nvidia.com/gpu.deploy.device-plugin=true" in log.read_text()
    assert "nvidia.com/gpu.deploy.dcgm=false" in log.read_text()
