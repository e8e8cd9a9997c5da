"""Who uses a GPU's instances: the one place migctl decides that an instance is busy.

An instance is **busy** when a compute process NVML lists runs on it, or when a migctl lease
(``migctl run``, ``migctl batch``, ``migctl.use``) holds one of its MIG devices. A busy
instance is never destroyed or reshaped (promise 1): ``destroy``, ``mode disable
--destroy-instances``, ``plan``/``apply`` and ``create`` (which treats every existing
instance as untouchable) all ask this module, and ``status`` / ``migctl.devices`` use it to
say who holds a device.

:func:`snapshot` reads the GPU's processes once (one NVML call) and the node's leases once
(the lease files), then answers per GPU instance or per compute instance::

    use = snapshot(gpu)
    for gi in gpu.gpu_instances():
        if use.of_gpu_instance(gi).busy: ...
    use.of_gpu_instance(gi).words()    # ["pid 4242 (alice: python train.py)", ...]
    use.holder(mig_uuid)               # the lease, else the first process, as a Holder record

A snapshot is a moment's truth: a lease taken just after it is not seen. Making the check
atomic with respect to new leases is a matter of holding the leases of the instances about
to be destroyed (``ops.leases.try_acquire`` on each of their MIG devices) from the check
until the destroy: :meth:`GpuUse.of_gpu_instance` already lists exactly those MIG devices
(:attr:`Use.uuids`), so such a guard can be built on top of a snapshot without changing its
callers' questions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from migctl.core.layout import ExistingInstance
from migctl.device import ComputeInstance, Gpu, GpuInstance, ProcessInfo
from migctl.ops.leases import holder_records
from migctl.records.common import Holder


def describe_lease(h: Holder) -> str:
    """``pid 123 (python train.py, migctl lease)``."""
    return f"pid {h.pid} ({h.command}, migctl lease)"


def process_holder(p: ProcessInfo) -> Holder:
    """A process NVML lists on a MIG device, as a :class:`Holder` (``source: nvml``)."""
    return Holder(pid=p.pid, command=p.command, since=p.started, source="nvml")


@dataclass(frozen=True)
class Use:
    """Who uses one GPU instance (all its compute instances) or one compute instance."""

    processes: tuple[ProcessInfo, ...] = ()
    """Compute processes NVML lists on it."""
    leases: tuple[Holder, ...] = ()
    """migctl leases on its MIG devices."""
    uuids: tuple[str, ...] = field(default=(), compare=False)
    """Its MIG devices (what a lease would be taken on)."""

    @property
    def busy(self) -> bool:
        return bool(self.processes or self.leases)

    def words(self) -> list[str]:
        """Each user once, in words: processes first (``pid 7 (alice: python x.py)``, or ``pid 7
        (alice: python x.py, migctl lease)`` when it also holds the lease), then leases whose
        holder NVML does not list."""
        leased = {h.pid for h in self.leases if h.pid is not None}
        out: dict[int, str] = {}
        for p in self.processes:
            if p.pid not in out:
                out[p.pid] = f"pid {p.pid} ({p.user}: {p.command}, migctl lease)" if p.pid in leased else p.describe()
        words = list(out.values())
        for h in self.leases:
            if h.pid is None or h.pid not in out:
                words.append(describe_lease(h))
        return list(dict.fromkeys(words))


class GpuUse:
    """A snapshot of who uses one GPU's instances (see the module doc)."""

    def __init__(self, gpu: int, processes: Sequence[ProcessInfo], leases: Mapping[str, Holder]) -> None:
        self.gpu = gpu
        self.processes = tuple(processes)
        self.leases = leases

    def _use(self, procs: Iterable[ProcessInfo], cis: Sequence[ComputeInstance]) -> Use:
        uuids = tuple(ci.uuid for ci in cis)
        held = tuple(self.leases[u] for u in uuids if u in self.leases)
        return Use(tuple(procs), held, uuids)

    def of_gpu_instance(self, gi: GpuInstance, cis: Sequence[ComputeInstance] | None = None) -> Use:
        """Who uses ``gi`` (any of its compute instances; ``cis`` if already read)."""
        cis = gi.compute_instances() if cis is None else cis
        return self._use((p for p in self.processes if p.gi_id == gi.id), cis)

    def of_gpu(self, gis: Sequence[GpuInstance]) -> Use:
        """Who uses the whole GPU: every process on it, and the leases on its MIG devices."""
        return self._use(self.processes, [ci for gi in gis for ci in gi.compute_instances()])

    def of_compute_instance(self, gi_id: int, ci: ComputeInstance) -> Use:
        """Who uses one compute instance (MIG device) of GPU instance ``gi_id``."""
        return self._use((p for p in self.processes if p.gi_id == gi_id and p.ci_id == ci.id), [ci])

    def holder(self, uuid: str, gi_id: int, ci_id: int) -> Holder | None:
        """Who holds MIG device ``uuid``: its lease, else the first process NVML lists on it."""
        if uuid in self.leases:
            return self.leases[uuid]
        p = next((p for p in self.processes if p.gi_id == gi_id and p.ci_id == ci_id), None)
        return None if p is None else process_holder(p)


def node_leases() -> dict[str, Holder]:
    """Every migctl lease held now, by MIG UUID."""
    return holder_records()


def snapshot(gpu: Gpu, leases: Mapping[str, Holder] | None = None) -> GpuUse:
    """Who uses ``gpu``'s instances now. ``leases`` (from :func:`node_leases`) saves re-reading
    the lease files when several GPUs are checked."""
    return GpuUse(gpu.index, gpu.processes(), node_leases() if leases is None else leases)


def existing_instances(gpu: Gpu, use: GpuUse | None) -> list[ExistingInstance]:
    """The GPU's instances as the planner sees them, each marked busy as ``use`` says.

    ``use=None`` marks every instance busy without asking: for ``create``, which must never
    touch an existing instance, so who uses them does not matter.
    """
    out = []
    for gi in gpu.gpu_instances():
        cis = gi.compute_instances()
        busy = True if use is None else use.of_gpu_instance(gi, cis).busy
        out.append(
            ExistingInstance(
                gi_id=gi.id,
                profile_id=gi.profile_id,
                placement=gi.placement,
                compute=tuple(sorted(ci.profile for ci in cis)),
                busy=busy,
            )
        )
    return out
