"""MIG devices for Ray tasks across several nodes, made on demand (docs/ray.md).

With no Ray cluster given, this starts a local one of three "servers" on this machine, each
with its own simulated 8x H20 (its own MIGCTL_SIM and MIGCTL_STATE_DIR), exactly as three
``ray start`` runs would have them. On a real cluster: ``RAY_ADDRESS=auto python
examples/ray_mig.py`` (each node's GPUs must have MIG enabled: ``migctl cluster apply``).

    python examples/ray_mig.py            # 3 simulated nodes, 60 mixed tasks
    python examples/ray_mig.py --tasks 200
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray

import migctl.ray

ENABLED = """\
version: v1
mig-configs:
  mig-on:
    - devices: all
      mig-enabled: true
      mig-devices: {}
"""


@migctl.ray.remote(mig="1g.12gb")
def train(step: int) -> tuple[str, str, str]:
    """A job: CUDA would see exactly one device here, the MIG device in CUDA_VISIBLE_DEVICES."""
    time.sleep(0.3)  # the work
    return os.environ["MIGCTL_PROFILE"], os.environ["CUDA_VISIBLE_DEVICES"], ray.get_runtime_context().get_node_id()


def local_cluster(base: Path, nodes: int) -> object:
    from ray.cluster_utils import Cluster

    def env(i: int) -> dict[str, str]:
        return {"MIGCTL_SIM": "h20x8", "MIGCTL_STATE_DIR": str(base / f"node{i}")}

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False, "env_vars": env(0)}
    )
    for i in range(1, nodes):
        cluster.add_node(num_cpus=2, include_dashboard=False, env_vars=env(i))
    cluster.wait_for_nodes()
    return cluster


def migctl_cli(*args: str, address: str) -> None:
    """The same commands a user types, against this cluster."""
    subprocess.run([sys.executable, "-m", "migctl", *args], env={**os.environ, "RAY_ADDRESS": address}, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--nodes", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="migctl-ray-") as tmp:
        cluster = None
        address = os.environ.get("RAY_ADDRESS")
        if not address:
            print(f"starting a local Ray cluster: {opts.nodes} nodes, each a simulated 8x H20 ...", flush=True)
            cluster = local_cluster(Path(tmp), opts.nodes)
            address = cluster.address  # type: ignore[attr-defined]
            layout = Path(tmp) / "mig-on.yaml"
            layout.write_text(ENABLED)
            migctl_cli("cluster", "apply", "-f", str(layout), "-c", "mig-on", address=address)
        try:
            ray.init(address=address)
            migctl.ray.init()  # an agent on every node, and the scheduler
            mix = ["1g.12gb"] * 6 + ["2g.24gb"] * 2 + ["3g.48gb", "7g.96gb"]
            refs = [train.options(mig=mix[i % len(mix)]).remote(i) for i in range(opts.tasks)]
            ran = ray.get(refs)
            per_node = collections.Counter((node[:8], profile) for profile, _, node in ran)
            for (node, profile), n in sorted(per_node.items()):
                print(f"node {node}: {n:3d} task(s) on {profile}")
            print(f"{len(ran)} tasks on {len({uuid for _, uuid, _ in ran})} MIG devices made on demand")
            ray.shutdown()
            migctl_cli("cluster", "status", address=address)
        finally:
            if ray.is_initialized():
                ray.shutdown()
            if cluster is not None:
                cluster.shutdown()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
