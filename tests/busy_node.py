"""A simulated node with everything the monitoring views show, for their tests.

2 x H100 80GB: GPU 0 in MIG mode with a 3g.40gb running a process at 70% with 2048 MiB, a
1g.10gb+me under a lease taken as batch job ``train-3``, and a 2g.20gb without a compute
instance; GPU 1 without MIG, running a process at 40% with 1024 MiB.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from conftest import Sim, SimFactory

SPEC = "h100-80gbx2"


@dataclass
class Busy:
    sim: Sim
    big: str  # the 3g.40gb MIG device with a process on it
    small: str  # the 1g.10gb+me MIG device under a lease with a job name
    pid: int  # the process on the 3g.40gb
    whole_pid: int  # the process on GPU 1


@contextlib.contextmanager
def busy_node(sim: SimFactory) -> Iterator[Busy]:
    from migctl.ops import leases

    s = sim(SPEC, enable="0")
    made = s.create("-i", "0", "3g.40gb", "1g.10gb+me")
    s.ok("create", "-i", "0", "2g.20gb", "--no-compute-instance")
    big, small = made[0]["uuid"], made[1]["uuid"]
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    lease = leases.try_acquire(small, command="migctl batch jobs.yaml", job="train-3")
    try:
        s.ok("sim", "attach", "--pid", str(procs[0].pid), "--uuid", big, "--memory", "2048", "--util", "70")
        s.ok("sim", "attach", "--pid", str(procs[1].pid), "-i", "1", "--memory", "1024", "--util", "40")
        yield Busy(s, big, small, procs[0].pid, procs[1].pid)
    finally:
        if lease is not None:
            lease.release()
        for p in procs:
            p.kill()
            p.wait()
