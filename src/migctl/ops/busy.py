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

A snapshot is a moment's truth: a lease taken just after it is not seen. So every destroy
(``destroy``, ``apply`` and its rollback, ``recover``, a ``create``'s rollback, ``reset``,
``mode disable --destroy-instances``) goes through a :class:`Claim`: right before destroying
an instance it takes the leases of the instance's MIG devices itself and then reads the
processes on it again. A ``migctl run`` (or batch, or ``migctl.use``) leases its device
before it starts the job, so the two can never both succeed: either the run holds the lease
and the destroy is refused (:class:`~migctl.errors.InUseError`), or the destroy holds it and
the run is told the device is being destroyed. The claim is held until the destroy is done,
and the lease files of destroyed devices are removed.

The leases a claim holds belong to this process: :func:`node_leases` leaves them out, so the
command that holds them does not see its own claims as users.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from migctl.core.layout import ExistingInstance
from migctl.device import ComputeInstance, Gpu, GpuInstance, ProcessInfo
from migctl.errors import InUseError
from migctl.ops import leases as lease_files
from migctl.ops.leases import Lease, holder_records
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
    """Every migctl lease held now, by MIG UUID (but the claims this process holds to destroy)."""
    held = holder_records()
    with _claims_lock:
        mine = set(_claimed)
    return {u: h for u, h in held.items() if u not in mine} if mine else held


_claims_lock = threading.Lock()
_claimed: set[str] = set()


class Claim:
    """The leases of MIG devices about to be destroyed, held from the busy check until the destroy.

    >>> with Claim("migctl destroy -i 0 --all") as claim:        # doctest: +SKIP
    ...     claim.check(gpu, gi, what="GI 7 on GPU 0")           # InUseError if anyone uses it now
    ...     for ci in gi.compute_instances(): ci.destroy()
    ...     gi.destroy()
    ...     claim.destroyed(gi_uuids)
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._held: dict[str, Lease] = {}

    def take(self, uuids: Iterable[str]) -> list[tuple[str, Holder]]:
        """Lease each of ``uuids`` (keeping those already held); who holds the ones it could not."""
        blocked = []
        for u in uuids:
            if u in self._held:
                continue
            lease = lease_files.try_acquire(u, command=f"{self.what} (destroying it)")
            if lease is None:
                blocked.append((u, lease_files.holder(u) or Holder(pid=None, command="?", since=None)))
                continue
            self._held[u] = lease
            with _claims_lock:
                _claimed.add(u)
        return blocked

    def users(
        self, gpu: Gpu, gi: GpuInstance, cis: Sequence[ComputeInstance] | None = None, *, only_ci: int | None = None
    ) -> list[str]:
        """Take the leases of ``gi``'s MIG devices (or of compute instance ``only_ci``), then read the
        processes on it now: who is in the way, in words (empty: nobody, and nobody can start)."""
        cis = gi.compute_instances() if cis is None else cis
        chosen = [ci for ci in cis if only_ci is None or ci.id == only_ci]
        words = [describe_lease(h) for _, h in self.take(ci.uuid for ci in chosen)]
        for p in gpu.processes():
            if p.gi_id == gi.id and (only_ci is None or p.ci_id == only_ci):
                words.insert(0, p.describe())
        return words

    def check(
        self, gpu: Gpu, gi: GpuInstance, cis: Sequence[ComputeInstance] | None = None, *, only_ci: int | None = None
    ) -> None:
        """:meth:`users`, raising :class:`InUseError` (naming them) when anyone uses it."""
        who = self.users(gpu, gi, cis, only_ci=only_ci)
        if who:
            what = f"GI {gi.id}" if only_ci is None else f"CI {gi.id}:{only_ci}"
            raise InUseError(
                f"{what} ({gi.profile}) on GPU {gpu.index} is in use: {', '.join(who)}",
                hint="stop those processes first",
            )

    def destroyed(self, uuids: Iterable[str]) -> None:
        """These MIG devices are gone: remove their lease files and let go of the leases."""
        for u in uuids:
            lease = self._held.pop(u, None)
            if lease is None:
                continue
            with contextlib.suppress(OSError):
                lease_files.lease_path(u).unlink()
            lease.release()
            with _claims_lock:
                _claimed.discard(u)

    def held(self, gpu: Gpu | None = None) -> list[str]:
        """The MIG devices (of ``gpu``) whose leases this claim holds."""
        uuids = {m.uuid for m in gpu.mig_devices()} if gpu is not None else None
        return [u for u in self._held if uuids is None or u in uuids]

    def release(self) -> None:
        """Let go of every lease still held (what was not destroyed after all)."""
        for u, lease in list(self._held.items()):
            lease.release()
            with _claims_lock:
                _claimed.discard(u)
        self._held.clear()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
