"""Read-only views of the node as typed records (:mod:`migctl.records.inspect`).

The CLI renders these same records as tables, and ``--json`` prints them, so the JSON and the
table cannot disagree. None of these take the host lock.

>>> from migctl.device import open_node
>>> node = open_node(sim="h20x8")                                  # doctest: +SKIP
>>> report = status(node, node.gpus, holders={})                   # doctest: +SKIP
>>> report.gpus[0].name                                            # doctest: +SKIP
'NVIDIA H20'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from migctl.core.geometry import Occupant
from migctl.device import ComputeInstance, Gpu, GpuInstance, Node, ProcessInfo
from migctl.device.telemetry import bar1_info, memory_info
from migctl.errors import NotSupportedError, UsageError
from migctl.records.common import Holder, ProcessRecord
from migctl.records.inspect import (
    CiProfileRow,
    CiProfilesReport,
    ComputeInstanceStatus,
    DeviceMemory,
    DevicesReport,
    EngineCounts,
    GpuDevices,
    GpuInstanceStatus,
    GpuPlacements,
    GpuProfiles,
    GpuStatus,
    Memory,
    MigDeviceRow,
    MigModeState,
    PlacementSlot,
    PlacementsReport,
    ProfilePlacements,
    ProfileRow,
    ProfilesReport,
    StatusReport,
)

if TYPE_CHECKING:
    from migctl.ops.utilization import UtilizationSampler


def _span(gpu: Gpu) -> int:
    return max((p.end for prof in gpu.profiles() for p in prof.placements), default=0)


def occupants(gpu: Gpu) -> list[Occupant]:
    return [Occupant(gi.profile_id, gi.placement) for gi in gpu.gpu_instances()]


def process_record(p: ProcessInfo) -> ProcessRecord:
    return ProcessRecord(p.pid, p.user, p.command, p.used_memory_mib, p.gi_id, p.ci_id)


def _device_status(
    gi: GpuInstance, ci: ComputeInstance, procs: Sequence[ProcessRecord], held: Mapping[str, Holder]
) -> ComputeInstanceStatus:
    """One MIG device: its memory and BAR1 (on its own handle), SMs, engines, users."""
    nvml = gi.gpu.nvml
    mem = memory_info(nvml, ci.device)
    bar1 = bar1_info(nvml, ci.device)
    prof = next((p for p in gi.ci_profiles() if p.id == ci.profile_id), None)
    return ComputeInstanceStatus(
        id=ci.id,
        profile_id=ci.profile_id,
        profile=ci.profile,
        placement=ci.placement,
        uuid=ci.uuid,
        processes=tuple(p for p in procs if p.gpu_instance_id == gi.id and p.compute_instance_id == ci.id),
        holder=held.get(ci.uuid),
        memory=None if mem is None else DeviceMemory(mem.total_mib, mem.used_mib, mem.free_mib, mem.reserved_mib),
        bar1=None if bar1 is None else Memory(total_mib=bar1.total_mib, used_mib=bar1.used_mib),
        sm=prof.sm if prof else 0,
        engines=EngineCounts(*((prof.ce, prof.dec, prof.enc, prof.jpeg, prof.ofa) if prof else (0, 0, 0, 0, 0))),
    )


def gpu_status(
    gpu: Gpu, holders: Mapping[str, Holder] | None = None, sampler: UtilizationSampler | None = None
) -> GpuStatus:
    """One GPU for ``migctl status``. ``holders`` maps MIG UUID -> lease holder (``migctl run``);
    with a ``sampler``, utilization is measured too (else it is ``null``)."""
    mode = gpu.mig_mode()
    total, used = gpu.memory_mib()
    procs = [process_record(p) for p in gpu.processes()]
    held = holders or {}
    instances = []
    for gi in gpu.gpu_instances():
        devices = tuple(_device_status(gi, ci, procs, held) for ci in gi.compute_instances())
        util = sampler.gpu_instance(gpu, gi.id, has_compute_instance=bool(devices)) if sampler else None
        instances.append(
            GpuInstanceStatus(
                id=gi.id,
                profile_id=gi.profile_id,
                profile=gi.profile,
                placement=gi.placement,
                compute_instances=devices,
                utilization=util,
            )
        )
    enabled = bool(mode and mode.current)
    return GpuStatus(
        index=gpu.index,
        uuid=gpu.uuid,
        name=gpu.name,
        pci_device_id=f"0x{gpu.pci_device_id:08X}",
        bus_id=gpu.bus_id,
        memory=Memory(total_mib=total, used_mib=used),
        mig_capable=mode is not None,
        mig=None if mode is None else MigModeState(current=mode.current, pending=mode.pending),
        slices=_span(gpu) if mode is not None else 0,
        gpu_instances=tuple(instances),
        processes=tuple(procs),
        utilization=sampler.gpu(gpu, mig_enabled=enabled) if sampler else None,
    )


def status(
    node: Node,
    gpus: Sequence[Gpu],
    holders: Mapping[str, Holder] | None = None,
    *,
    sampler: UtilizationSampler | None = None,
) -> StatusReport:
    """``migctl status`` (``nvidia-smi`` plus ``mig -lgi``/``-lci``): every GPU, its instances and users.

    With a ``sampler`` (:mod:`migctl.ops.utilization`) each GPU and GPU instance carries its
    utilization since the sampler's previous round.
    """
    report = StatusReport(simulated=node.is_simulator, gpus=tuple(gpu_status(g, holders, sampler) for g in gpus))
    if sampler is not None:
        sampler.end_round()
    return report


def profiles(gpus: Sequence[Gpu]) -> ProfilesReport:
    """``nvidia-smi mig -lgip``: per GPU, every GPU-instance profile with free/total instances."""
    out = []
    for gpu in gpus:
        rows = []
        for p in gpu.profiles():
            free = gpu.remaining_capacity(p.id)
            rows.append(
                ProfileRow(
                    id=p.id,
                    name=p.name,
                    instances_free=free if free is not None else 0,
                    instances_total=p.instance_count,
                    memory_mib=p.memory_mib,
                    p2p=p.p2p,
                    sm=p.sm,
                    dec=p.dec,
                    enc=p.enc,
                    ce=p.ce,
                    jpeg=p.jpeg,
                    ofa=p.ofa,
                    placements=p.placements,
                )
            )
        mode = gpu.mig_mode()
        out.append(
            GpuProfiles(
                index=gpu.index,
                name=gpu.name,
                mig_capable=mode is not None,
                mig_enabled=bool(mode and mode.current),
                profiles=tuple(rows),
            )
        )
    return ProfilesReport(gpus=tuple(out))


def placements(gpus: Sequence[Gpu], profile: str | int | None = None) -> PlacementsReport:
    """``nvidia-smi mig -lgipp``, plus which placements are free now (by the driver's rules).

    ``profile`` (a name such as ``1g.12gb`` or an ID) limits the answer to one profile.
    """
    out = []
    for gpu in gpus:
        geometry = gpu.geometry()
        occ = occupants(gpu)
        mode = gpu.mig_mode()
        enabled = bool(mode and mode.current)
        chosen = geometry.profiles
        if profile is not None:
            found = geometry.find(profile)
            if found is None:
                raise UsageError(
                    f"GPU {gpu.index} ({gpu.name}) has no profile {profile!r}",
                    hint="its profiles are: " + ", ".join(f"{p.name} (ID {p.id})" for p in geometry.profiles),
                )
            chosen = (found,)
        rows = tuple(
            ProfilePlacements(
                id=p.id,
                name=p.name,
                placements=tuple(
                    PlacementSlot(x.start, x.size, enabled and geometry.can_place(occ, p, x)) for x in p.placements
                ),
            )
            for p in chosen
        )
        out.append(GpuPlacements(gpu.index, gpu.name, mode is not None, enabled, rows))
    return PlacementsReport(gpus=tuple(out))


def ci_profiles(gpu: Gpu, gi_id: int) -> CiProfilesReport:
    """``nvidia-smi mig -lcip -i GPU -gi ID``."""
    require_mig_capable(gpu)
    mode = gpu.mig_mode()
    if mode is not None and not mode.current:
        raise NotSupportedError(
            f"GPU {gpu.index} ({gpu.name}) has MIG disabled, so it has no GPU instances",
            hint=f"enable it with: migctl mode enable -i {gpu.index}",
        )
    gi = gpu.gpu_instance(gi_id)
    if gi is None:
        ids = ", ".join(str(g.id) for g in gpu.gpu_instances()) or "none"
        raise UsageError(
            f"GPU {gpu.index} has no GPU instance {gi_id}", hint=f"its GPU instances are: {ids} (see migctl status)"
        )
    rows = tuple(
        CiProfileRow(
            id=p.id,
            name=p.name,
            instances_free=gi.ci_remaining_capacity(p.id),
            instances_total=p.instance_count,
            default=p.is_default,
            sm=p.sm,
            dec=p.dec,
            enc=p.enc,
            ce=p.ce,
            jpeg=p.jpeg,
            ofa=p.ofa,
            placements=p.placements,
        )
        for p in gi.ci_profiles()
    )
    return CiProfilesReport(index=gpu.index, gpu_instance_id=gi.id, gpu_instance_profile=gi.profile, profiles=rows)


def devices(gpus: Sequence[Gpu]) -> DevicesReport:
    """``nvidia-smi -L``: GPUs and their MIG devices with UUIDs."""
    return DevicesReport(
        gpus=tuple(
            GpuDevices(
                index=g.index,
                name=g.name,
                uuid=g.uuid,
                mig_devices=tuple(
                    MigDeviceRow(m.index, m.uuid, m.gi_id, m.ci_id, m.profile, m.memory_mib) for m in g.mig_devices()
                ),
            )
            for g in gpus
        )
    )


def require_mig_capable(gpu: Gpu) -> None:
    if gpu.mig_mode() is None:
        raise NotSupportedError(f"GPU {gpu.index} ({gpu.name}) is not MIG-capable")
