"""Data files migctl ships, and their loaders.

* ``mig-scaling-a100.csv``: milliseconds per training iteration of 8 models at 4 batch sizes
  each on the 1g.5gb, 2g.10gb, 3g.20gb, 4g.20gb and 7g.40gb profiles of an A100-40GB, and the
  speed-up over 1g.5gb. Measured by the MISO authors (SoCC'22, artifact boringlee24/socc22-miso,
  ``mps/models/logs/mig``); an empty cell means the job did not run on that profile (it did not
  fit in the slice's memory). Copied unchanged from the project's reference folder.
* ``mig-memory-a100.csv``: the memory each of those jobs needs. ``footprint_mib`` is MISO's
  measurement (``mps/configs/memory.json``: the job's GPU memory with the PyTorch caching
  allocator on a whole GPU). That overstates the need: 15 jobs ran on a slice smaller than
  their footprint (resnet's 9934 MiB ran on 1g.5gb, 4864 MiB). So ``memory_mib`` is the
  footprint lowered to the memory of the smallest profile the job has a time on
  (``memory_source`` says ``lowered``) and otherwise the footprint itself (``footprint``). It is
  therefore consistent with the scaling table: a job's need fits every profile it ran on and
  exceeds every profile it has no time for. Lowered values are inferred, not measured.

``migctl batch --auto`` looks model names up here; the scheduler benchmark and the tests use
the same tables.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from migctl.core.scheduler.workloads import Workload, find_workload, parse_workloads

__all__ = ["find_workload", "workloads"]


def _text(name: str) -> str:
    return resources.files("migctl.data").joinpath(name).read_text(encoding="utf-8")


@cache
def workloads() -> dict[str, Workload]:
    """The A100-40GB speed table, keyed by ``"model:batch"`` (``"resnet:128"``)."""
    return parse_workloads(_text("mig-scaling-a100.csv"), _text("mig-memory-a100.csv"))
