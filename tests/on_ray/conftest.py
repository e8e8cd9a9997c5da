"""A real local Ray cluster for the migctl.ray tests: one per test session, started and stopped here.

Three nodes on this machine (``ray.cluster_utils.Cluster``), each with its own simulated GPUs:
its own ``MIGCTL_STATE_DIR`` and ``MIGCTL_SIM`` spec, passed through that node's environment
(the raylet's, which its workers inherit), as ``ray start`` on three servers would have them.
Run the group alone with ``pytest -m ray tests/on_ray``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import ray

NODES = {"n0": "h20x1", "n1": "h20x1", "n2": "a30x1"}

# Small layouts every test can reset the cluster to (device filters: H20 0x2329, A30 0x20B7).
LAYOUTS = """\
version: v1
mig-configs:
  empty:
    - devices: all
      mig-enabled: true
      mig-devices: {}
  small:
    - device-filter: "0x232910DE"
      devices: all
      mig-enabled: true
      mig-devices: {"1g.12gb": 3}
    - device-filter: "0x20B710DE"
      devices: all
      mig-enabled: true
      mig-devices: {"1g.6gb": 2}
"""


@dataclass
class RayCluster:
    cluster: Any
    address: str
    state_dirs: dict[str, Path]  # node name -> its state directory
    node_ids: dict[str, str] = field(default_factory=dict)  # node name -> Ray node id
    layouts: Path = Path()
    base: Path = Path()

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``migctl ARGS`` in a subprocess, connected to this cluster as a user's shell would be."""
        env = {**os.environ, "RAY_ADDRESS": self.address, "COLUMNS": "200"}
        env.pop("MIGCTL_STATE_DIR", None)
        env.pop("MIGCTL_SIM", None)
        return subprocess.run([sys.executable, "-m", "migctl", *args], capture_output=True, text=True, env=env,
                              timeout=timeout, check=False)

    def node_status(self, name: str) -> dict[str, Any]:
        """What ``migctl status --json`` shows on one node, read as its admin would (its own state dir)."""
        from migctl import Node
        from migctl.records import to_data

        saved = os.environ.get("MIGCTL_STATE_DIR")
        try:
            with Node(sim=NODES[name], state_dir=self.state_dirs[name]) as node:
                data: dict[str, Any] = to_data(node.status())
        finally:
            if saved is None:
                os.environ.pop("MIGCTL_STATE_DIR", None)
            else:
                os.environ["MIGCTL_STATE_DIR"] = saved
        return data

    def apply(self, config: str) -> dict[str, Any]:
        """``cluster apply`` of a layout of :data:`LAYOUTS` through the Python API (the CLI's own
        path is tested on its own); its record, as ``--json`` prints it, checked against the schema."""
        from migctl.ray import cluster
        from migctl.records import dumps

        report = cluster.apply(LAYOUTS, str(self.layouts), config)
        assert report.ok, dumps(report)
        return valid("cluster apply", dumps(report))


def valid(command: str, stdout: str) -> dict[str, Any]:
    """The one JSON document a command printed, validated against the schema of its record."""
    import jsonschema

    from migctl.records.schema import by_command, command_schema

    document: dict[str, Any] = json.loads(stdout)
    schema = command_schema(by_command()[command].record)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    return document


def node_env(state_dir: Path, spec: str, **extra: str) -> dict[str, str]:
    return {"MIGCTL_SIM": spec, "MIGCTL_STATE_DIR": str(state_dir), **extra}


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    from ray.cluster_utils import Cluster

    import migctl.ray

    base = tmp_path_factory.mktemp("ray")
    dirs = {name: base / name for name in NODES}
    common: dict[str, Any] = {"include_dashboard": False, "object_store_memory": 80 * 1024 * 1024}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            **common,
            "num_cpus": 2,
            "env_vars": node_env(dirs["n0"], NODES["n0"]),
            # Notice a dead node in about a second, not the default half a minute.
            "_system_config": {
                "health_check_initial_delay_ms": 0,
                "health_check_period_ms": 500,
                "health_check_failure_threshold": 3,
            },
        },
    )
    names: dict[str, Any] = {"n0": cluster.head_node}
    for name in ("n1", "n2"):
        names[name] = cluster.add_node(**common, num_cpus=1, env_vars=node_env(dirs[name], NODES[name]))
    cluster.wait_for_nodes()
    layouts = base / "layouts.yaml"
    layouts.write_text(LAYOUTS)
    ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        migctl.ray.init(reclaim_after_s=2.0, drain_after_s=0.3, executor_idle_s=60.0)
        rc = RayCluster(cluster, cluster.address, dirs, {n: node.node_id for n, node in names.items()}, layouts, base)
        yield rc
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
