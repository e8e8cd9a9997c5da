"""The Python API: the same operations as the CLI, with typed results and typed errors.

>>> import migctl
>>> node = migctl.Node(sim="h20x8")                    # doctest: +SKIP   (omit sim= on a real GPU server)
>>> node.set_mig_mode(True, gpus="0")                  # doctest: +SKIP   nvidia-smi -i 0 -mig 1
[ModeOutcome(gpu=0, name='NVIDIA H20', requested='enabled', result='enabled', ...)]
>>> node.create("1g.12gb:2", "2g.24gb", gpus="0")      # doctest: +SKIP   nvidia-smi mig -i 0 -cgi 19,19,14 -C
[CreatedInstance(gpu=0, gpu_instance_id=..., profile='1g.12gb', ...), ...]
>>> node.destroy(gpus="0", everything=True)            # doctest: +SKIP   nvidia-smi mig -dci && nvidia-smi mig -dgi

Every failure is a :class:`migctl.errors.MigctlError` subclass (``InsufficientResourcesError``,
``InUseError``...) carrying ``nvml_code`` when the driver said no.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from migctl.device import Gpu, open_node
from migctl.ops import inspect, leases, lifecycle
from migctl.ops.lifecycle import CreatedInstance, Destroyed, ModeOutcome, ResetOutcome
from migctl.records.inspect import StatusReport


class Node:
    """One machine's MIG GPUs. ``sim="h20x8"`` uses the simulator; omit it on real hardware.

    ``state_dir`` sets ``MIGCTL_STATE_DIR`` for this process (locks, leases, journals and the
    simulated node live there).
    """

    def __init__(self, sim: str | None = None, state_dir: str | os.PathLike[str] | None = None) -> None:
        if state_dir is not None:
            os.environ["MIGCTL_STATE_DIR"] = str(state_dir)
        self._node = open_node(sim)

    @property
    def gpus(self) -> list[Gpu]:
        """The device layer's GPUs (profiles, placements, instances, MIG devices, processes)."""
        return list(self._node.gpus)

    def select(self, gpus: str | int | None = None) -> list[Gpu]:
        return self._node.select(None if gpus is None else str(gpus))

    def status(self, gpus: str | int | None = None) -> StatusReport:
        """What ``migctl status`` shows (``--json`` prints this record)."""
        return inspect.status(self._node, self.select(gpus), leases.holder_records())

    def set_mig_mode(
        self,
        enabled: bool,
        gpus: str | int | None = None,
        *,
        destroy_instances: bool = False,
        wait_s: float | None = None,
    ) -> list[ModeOutcome]:
        """``migctl mode enable|disable``: one outcome per GPU (enabled, pending, refused...)."""
        return lifecycle.set_mig_mode(
            self._node, self.select(gpus), enabled, destroy_instances=destroy_instances, wait_s=wait_s
        )

    def create(
        self,
        *profiles: str,
        gpus: str | int | None = "0",
        placement: int | None = None,
        compute_instance: bool = True,
        wait_s: float | None = None,
    ) -> list[CreatedInstance]:
        """``migctl create``: all or nothing, placements chosen so any order fits."""
        return lifecycle.create(
            self._node,
            self.select(gpus),
            lifecycle.parse_counted(list(profiles)),
            placement=placement,
            compute_instance=compute_instance,
            wait_s=wait_s,
        )

    def create_ci(self, gpu: int, gi: int, *ci_profiles: str, wait_s: float | None = None) -> list[CreatedInstance]:
        """``migctl create-ci``: compute instances in GPU instance ``gi`` (default CI if none named)."""
        (chosen,) = self.select(gpu)
        return lifecycle.create_ci(self._node, chosen, gi, lifecycle.parse_counted(list(ci_profiles)), wait_s=wait_s)

    def destroy(
        self,
        gpus: str | int | None = None,
        *,
        gi: Sequence[int] = (),
        ci: Sequence[tuple[int, int]] = (),
        uuid: Sequence[str] = (),
        everything: bool = False,
        wait_s: float | None = None,
    ) -> list[Destroyed]:
        """``migctl destroy``: refuses, destroying nothing, if any target is in use."""
        chosen = self.select(gpus) if (gpus is not None or everything) else ([] if uuid else self.select(0))
        return lifecycle.destroy(
            self._node, chosen, gi_ids=gi, ci_ids=ci, uuids=uuid, everything=everything, wait_s=wait_s
        )

    def reset(self, gpus: str | int, *, force: bool = False, wait_s: float | None = None) -> list[ResetOutcome]:
        """``migctl reset``: GPU reset so a pending MIG mode takes effect (``force``: even if none is)."""
        return lifecycle.reset(self._node, self.select(gpus), force=force, wait_s=wait_s)

    def close(self) -> None:
        self._node.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
