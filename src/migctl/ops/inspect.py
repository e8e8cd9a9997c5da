"""Read-only views of the node, as plain JSON-ready dicts (the documented ``--json`` shapes).

The CLI renders these same dicts as tables, so what ``--json`` says and what the table shows
cannot drift apart. Schemas: ``docs/json.md``.
"""

from __future__ import annotations

from typing import Any

from migctl.core.geometry import Occupant, Placement
from migctl.device import Gpu, Node
from migctl.errors import NotSupportedError, UsageError


def _placement(p: Placement) -> dict[str, int]:
    return {"start": p.start, "size": p.size}


def _span(gpu: Gpu) -> int:
    return max((p.end for prof in gpu.profiles() for p in prof.placements), default=0)


def occupants(gpu: Gpu) -> list[Occupant]:
    return [Occupant(gi.profile_id, gi.placement) for gi in gpu.gpu_instances()]


def gpu_status(gpu: Gpu, holders: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One GPU for ``migctl status``. ``holders`` maps MIG UUID -> lease holder (``migctl run``)."""
    mode = gpu.mig_mode()
    total, used = gpu.memory_mib()
    procs = gpu.processes()
    instances = []
    for gi in gpu.gpu_instances():
        cis = []
        for ci in gi.compute_instances():
            entry: dict[str, Any] = {
                "id": ci.id,
                "profile_id": ci.profile_id,
                "profile": ci.profile,
                "placement": _placement(ci.placement),
                "uuid": ci.uuid,
                "processes": [
                    {"pid": p.pid, "user": p.user, "command": p.command, "used_memory_mib": p.used_memory_mib}
                    for p in procs
                    if p.gi_id == gi.id and p.ci_id == ci.id
                ],
            }
            if holders is not None:
                entry["holder"] = holders.get(ci.uuid)
            cis.append(entry)
        instances.append(
            {
                "id": gi.id,
                "profile_id": gi.profile_id,
                "profile": gi.profile,
                "placement": _placement(gi.placement),
                "compute_instances": cis,
            }
        )
    return {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "name": gpu.name,
        "pci_device_id": f"0x{gpu.pci_device_id:08X}",
        "bus_id": gpu.bus_id,
        "memory": {"total_mib": total, "used_mib": used},
        "mig_capable": mode is not None,
        "mig": None if mode is None else {"current": mode.current, "pending": mode.pending},
        "slices": _span(gpu) if mode is not None else 0,
        "gpu_instances": instances,
        "processes": [
            {
                "pid": p.pid,
                "user": p.user,
                "command": p.command,
                "used_memory_mib": p.used_memory_mib,
                "gpu_instance_id": p.gi_id,
                "compute_instance_id": p.ci_id,
            }
            for p in procs
        ],
    }


def status(node: Node, gpus: list[Gpu], holders: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"simulated": node.is_simulator, "gpus": [gpu_status(g, holders) for g in gpus]}


def profiles(gpus: list[Gpu]) -> dict[str, Any]:
    """``nvidia-smi mig -lgip``: per GPU, every GPU-instance profile with free/total instances."""
    out = []
    for gpu in gpus:
        rows = []
        for p in gpu.profiles():
            free = gpu.remaining_capacity(p.id)
            rows.append(
                {
                    "id": p.id,
                    "name": p.name,
                    "instances_free": free if free is not None else 0,
                    "instances_total": p.instance_count,
                    "memory_mib": p.memory_mib,
                    "p2p": p.p2p,
                    "sm": p.sm,
                    "dec": p.dec,
                    "enc": p.enc,
                    "ce": p.ce,
                    "jpeg": p.jpeg,
                    "ofa": p.ofa,
                    "placements": [_placement(x) for x in p.placements],
                }
            )
        mode = gpu.mig_mode()
        out.append(
            {
                "index": gpu.index,
                "name": gpu.name,
                "mig_capable": mode is not None,
                "mig_enabled": bool(mode and mode.current),
                "profiles": rows,
            }
        )
    return {"gpus": out}


def placements(gpus: list[Gpu], profile: str | None) -> dict[str, Any]:
    """``nvidia-smi mig -lgipp``, plus which placements are free now (by the driver's rules)."""
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
        rows = [
            {
                "id": p.id,
                "name": p.name,
                "placements": [
                    {**_placement(x), "free": enabled and geometry.can_place(occ, p, x)} for x in p.placements
                ],
            }
            for p in chosen
        ]
        out.append(
            {
                "index": gpu.index,
                "name": gpu.name,
                "mig_capable": mode is not None,
                "mig_enabled": enabled,
                "profiles": rows,
            }
        )
    return {"gpus": out}


def ci_profiles(gpu: Gpu, gi_id: int) -> dict[str, Any]:
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
    rows = [
        {
            "id": p.id,
            "name": p.name,
            "instances_free": gi.ci_remaining_capacity(p.id),
            "instances_total": p.instance_count,
            "default": p.is_default,
            "sm": p.sm,
            "dec": p.dec,
            "enc": p.enc,
            "ofa": p.ofa,
            "ce": p.ce,
            "jpeg": p.jpeg,
            "placements": [_placement(x) for x in p.placements],
        }
        for p in gi.ci_profiles()
    ]
    return {"index": gpu.index, "gpu_instance_id": gi.id, "gpu_instance_profile": gi.profile, "profiles": rows}


def devices(gpus: list[Gpu]) -> dict[str, Any]:
    """``nvidia-smi -L``: GPUs and their MIG devices with UUIDs."""
    return {
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "uuid": g.uuid,
                "mig_devices": [
                    {
                        "index": m.index,
                        "uuid": m.uuid,
                        "gpu_instance_id": m.gi_id,
                        "compute_instance_id": m.ci_id,
                        "profile": m.profile,
                        "memory_mib": m.memory_mib,
                    }
                    for m in g.mig_devices()
                ],
            }
            for g in gpus
        ]
    }


def require_mig_capable(gpu: Gpu) -> None:
    if gpu.mig_mode() is None:
        raise NotSupportedError(f"GPU {gpu.index} ({gpu.name}) is not MIG-capable")
