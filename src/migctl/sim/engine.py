"""The hardware's rules, applied to one simulated GPU's state.

Deliberately written apart from the planner in ``migctl.core``: the simulator is the oracle
the planner is tested against, so it must not share the planner's code. Every refusal raises
the ``pynvml.NVMLError`` subclass real hardware raises (``docs/reference/mig-hardware.md``):

* a GPU instance occupies memory slices ``[start, start+size)``; overlap, a full instance
  count, or an exhausted media-engine pool (one OFA: one ``+me``) is INSUFFICIENT_RESOURCES;
* a profile the GPU lacks is INVALID_ARGUMENT; creating while MIG is disabled is NOT_SUPPORTED;
* destroying a GPU instance that has compute instances, or an instance with a process, is IN_USE;
* without a placement, the driver's placement is the fitted rule of §2: the free placement
  that blocks the fewest still-possible placements of all profiles, lowest start on ties, and
  the double-memory 1g profile takes the isolated last quarter only when nothing else is free;
* GPU-instance IDs follow from placement (RM's swizzId, §1.5); compute-instance IDs are the
  lowest free from 0; compute-instance placement follows ``kmigmgrGetFreeCTSId``.

The state is a plain dict (see :mod:`migctl.sim.state`)::

    {"index", "model", "uuid", "bus_id", "mig": {"current", "pending"},
     "gis": [{"id", "profile", "start", "size", "cis": [{"id", "profile", "start", "size", "uuid"}]}],
     "procs": [{"pid", "ctime", "gi", "ci", "mem_mib", "name", "util"}]}

``util`` (0-100, optional) is the simulated load a process puts on its device's SMs.
"""

from __future__ import annotations

import os
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

import psutil
import pynvml

from migctl.sim.catalog import CiProfileSpec, Engines, GiProfileSpec, ModelSpec, Placement

Gpu = dict[str, Any]
NO_ID = 0xFFFFFFFF
REV2_ENUM = pynvml.NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2


def fail(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


# -- processes -------------------------------------------------------------------------------


_PROCFS = os.path.exists("/proc/self/stat")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if _PROCFS else 100
_boot: tuple[float, float] = (0.0, -1e9)  # (boot time, when it was read: monotonic)


def _boot_time() -> float:
    """psutil's boot time (``/proc/stat`` btime), read again every 10 s (the clock may be set)."""
    global _boot
    now = time.monotonic()
    if now - _boot[1] > 10:
        _boot = (psutil.boot_time(), now)
    return _boot[0]


def process_alive(proc: dict[str, Any]) -> bool:
    """A recorded process is alive if its pid exists with the same start time (no pid reuse).

    A zombie (exited, not yet reaped by its parent) has closed its device files, so the driver
    has already released its context: it is not a GPU client any more.

    Every simulated NVML query asks this of the GPU's processes, so on Linux it is one read of
    ``/proc/PID/stat`` (start time and state, as psutil computes them) rather than psutil's three.
    """
    if _PROCFS:
        try:
            data = Path(f"/proc/{int(proc['pid'])}/stat").read_bytes()
            fields = data[data.rfind(b")") + 2 :].split()
            started = float(fields[19]) / _CLOCK_TICKS + _boot_time()
            return abs(started - float(proc["ctime"])) < 0.01 and fields[0] != b"Z"
        except (FileNotFoundError, ProcessLookupError):
            return False
        except (OSError, IndexError, ValueError):
            pass  # unreadable: ask psutil
    try:
        p = psutil.Process(int(proc["pid"]))
        return abs(p.create_time() - float(proc["ctime"])) < 0.01 and p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def live_procs(gpu: Gpu) -> list[dict[str, Any]]:
    return [p for p in gpu.get("procs", []) if process_alive(p)]


def prune_dead(gpu: Gpu) -> None:
    gpu["procs"] = live_procs(gpu)


def procs_on(gpu: Gpu, gi_id: int | None = None, ci_id: int | None = None) -> list[dict[str, Any]]:
    out = []
    for p in live_procs(gpu):
        if gi_id is not None and p.get("gi") != gi_id:
            continue
        if ci_id is not None and p.get("ci") != ci_id:
            continue
        out.append(p)
    return out


# -- GPU instances ---------------------------------------------------------------------------


def gi_profile(model: ModelSpec, profile_id: int) -> GiProfileSpec:
    prof = model.gi_by_id(profile_id)
    if prof is None:
        raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    return prof


def find_gi(gpu: Gpu, gi_id: int) -> dict[str, Any] | None:
    return next((g for g in gpu["gis"] if g["id"] == gi_id), None)


def gi_placement(gi: dict[str, Any]) -> Placement:
    return Placement(gi["start"], gi["size"])


def swizz_id(model: ModelSpec, placement: Placement) -> int:
    """RM's swizzId for a placement: the node of a binary tree over the memory span (§1.5)."""
    level, width = 0, model.span
    while width > placement.size:
        width //= 2
        level += 1
    return (2**level - 1) + placement.start // placement.size


def _engines_ok(model: ModelSpec, gpu: Gpu, prof: GiProfileSpec) -> bool:
    total = model.engine_totals
    if total is None:
        return True
    dec, enc, jpeg, ofa = prof.dec, prof.enc, prof.jpeg, prof.ofa
    for gi in gpu["gis"]:
        other = gi_profile(model, gi["profile"])
        dec, enc, jpeg, ofa = dec + other.dec, enc + other.enc, jpeg + other.jpeg, ofa + other.ofa
    return Engines(dec, enc, jpeg, ofa).within(total)


def gi_fits(model: ModelSpec, gpu: Gpu, prof: GiProfileSpec, placement: Placement) -> bool:
    """Whether one more instance of ``prof`` can go at ``placement`` now."""
    if placement not in prof.placements:
        return False
    if any(gi_placement(gi).overlaps(placement) for gi in gpu["gis"]):
        return False
    if sum(1 for gi in gpu["gis"] if gi["profile"] == prof.id) >= prof.instances:
        return False
    if len(gpu["gis"]) >= model.max_instances:
        return False
    return _engines_ok(model, gpu, prof)


def free_gi_placements(model: ModelSpec, gpu: Gpu, prof: GiProfileSpec) -> list[Placement]:
    return [p for p in prof.placements if gi_fits(model, gpu, prof, p)]


def remaining_gi_capacity(model: ModelSpec, gpu: Gpu, prof: GiProfileSpec) -> int:
    """How many more instances of ``prof`` fit if created one after another."""
    trial = {"gis": [dict(g) for g in gpu["gis"]]}
    count = 0
    while True:
        free = free_gi_placements(model, trial, prof)
        if not free:
            return count
        trial["gis"].append({"id": -1, "profile": prof.id, "start": free[0].start, "size": free[0].size})
        count += 1


def default_gi_placement(model: ModelSpec, gpu: Gpu, prof: GiProfileSpec) -> Placement | None:
    """Where the driver puts an instance created without a placement (§2, fitted rule)."""
    occupied = [gi_placement(gi) for gi in gpu["gis"]]
    still_possible = [
        p for other in model.gi_profiles for p in other.placements if not any(p.overlaps(o) for o in occupied)
    ]

    def rank(candidate: Placement) -> tuple[int, int, int]:
        isolated_last_quarter = prof.nvml_enum == REV2_ENUM and candidate.end == model.span
        blocked = sum(1 for p in still_possible if p.overlaps(candidate))
        return (int(isolated_last_quarter), blocked, candidate.start)

    free = free_gi_placements(model, gpu, prof)
    return min(free, key=rank) if free else None


def create_gi(model: ModelSpec, gpu: Gpu, profile_id: int, placement: Placement | None) -> dict[str, Any]:
    if not model.mig_capable or gpu["mig"]["current"] != pynvml.NVML_DEVICE_MIG_ENABLE:
        raise fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
    prof = gi_profile(model, profile_id)
    if placement is None:
        placement = default_gi_placement(model, gpu, prof)
        if placement is None:
            raise fail(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
    else:
        if placement.size != prof.placement_size or placement.start not in {p.start for p in prof.placements}:
            raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if not gi_fits(model, gpu, prof, placement):
            raise fail(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
    gi = {
        "id": swizz_id(model, placement),
        "profile": prof.id,
        "start": placement.start,
        "size": placement.size,
        "cis": [],
    }
    gpu["gis"].append(gi)
    gpu["gis"].sort(key=lambda g: g["id"])
    return gi


def destroy_gi(gpu: Gpu, gi_id: int) -> None:
    gi = find_gi(gpu, gi_id)
    if gi is None:
        raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    if gi["cis"] or procs_on(gpu, gi_id):
        raise fail(pynvml.NVML_ERROR_IN_USE)
    gpu["gis"].remove(gi)


# -- compute instances -----------------------------------------------------------------------


def ci_profile(model: ModelSpec, gi: dict[str, Any], ci_profile_id: int) -> CiProfileSpec:
    if not 0 <= ci_profile_id < pynvml.NVML_COMPUTE_INSTANCE_PROFILE_COUNT:
        raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    prof = gi_profile(model, gi["profile"]).ci_by_id(ci_profile_id)
    if prof is None:
        raise fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
    return prof


def ci_fits(model: ModelSpec, gi: dict[str, Any], prof: CiProfileSpec, placement: Placement) -> bool:
    if placement not in prof.placements:
        return False
    if any(Placement(c["start"], c["size"]).overlaps(placement) for c in gi["cis"]):
        return False
    if sum(1 for c in gi["cis"] if c["profile"] == prof.id) >= prof.instances:
        return False
    gi_slices = gi_profile(model, gi["profile"]).slices
    used = sum(ci_profile(model, gi, c["profile"]).slices for c in gi["cis"])
    return used + prof.slices <= gi_slices


def free_ci_placements(model: ModelSpec, gi: dict[str, Any], prof: CiProfileSpec) -> list[Placement]:
    return [p for p in prof.placements if ci_fits(model, gi, prof, p)]


def remaining_ci_capacity(model: ModelSpec, gi: dict[str, Any], prof: CiProfileSpec) -> int:
    trial = {"profile": gi["profile"], "cis": [dict(c) for c in gi["cis"]]}
    count = 0
    while True:
        free = free_ci_placements(model, trial, prof)
        if not free:
            return count
        trial["cis"].append({"id": -1, "profile": prof.id, "start": free[0].start, "size": free[0].size})
        count += 1


def default_ci_placement(model: ModelSpec, gi: dict[str, Any], prof: CiProfileSpec) -> Placement | None:
    """kmigmgrGetFreeCTSId: the free placement leaving the most still-valid ones, lowest on ties."""
    gi_prof = gi_profile(model, gi["profile"])
    occupied = [Placement(c["start"], c["size"]) for c in gi["cis"]]
    still_valid = [
        p for other in gi_prof.ci_profiles for p in other.placements if not any(p.overlaps(o) for o in occupied)
    ]
    free = free_ci_placements(model, gi, prof)
    if not free:
        return None
    return min(free, key=lambda c: (sum(1 for p in still_valid if p.overlaps(c)), c.start))


def new_mig_uuid(gpu_uuid: str, gi_id: int, ci_id: int) -> str:
    """A fresh MIG UUID: stable for the instance's life, different when it is re-created."""
    token = uuidlib.uuid4().hex
    return "MIG-" + str(uuidlib.uuid5(uuidlib.NAMESPACE_OID, f"{gpu_uuid}/{gi_id}/{ci_id}/{token}"))


def create_ci(
    model: ModelSpec, gpu: Gpu, gi: dict[str, Any], ci_profile_id: int, placement: Placement | None
) -> dict[str, Any]:
    prof = ci_profile(model, gi, ci_profile_id)
    if placement is None:
        placement = default_ci_placement(model, gi, prof)
        if placement is None:
            raise fail(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
    else:
        if placement.size != prof.placements[0].size or placement.start not in {p.start for p in prof.placements}:
            raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if not ci_fits(model, gi, prof, placement):
            raise fail(pynvml.NVML_ERROR_INSUFFICIENT_RESOURCES)
    taken = {c["id"] for c in gi["cis"]}
    ci_id = next(i for i in range(len(taken) + 1) if i not in taken)
    ci = {
        "id": ci_id,
        "profile": prof.id,
        "start": placement.start,
        "size": placement.size,
        "uuid": new_mig_uuid(gpu["uuid"], gi["id"], ci_id),
    }
    gi["cis"].append(ci)
    gi["cis"].sort(key=lambda c: c["id"])
    return ci


def destroy_ci(gpu: Gpu, gi: dict[str, Any], ci_id: int) -> None:
    ci = next((c for c in gi["cis"] if c["id"] == ci_id), None)
    if ci is None:
        raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    if procs_on(gpu, gi["id"], ci_id):
        raise fail(pynvml.NVML_ERROR_IN_USE)
    gi["cis"].remove(ci)


def mig_devices(gpu: Gpu) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(GI, CI) pairs in MIG device index order: ascending GI ID, then CI ID."""
    return [(gi, ci) for gi in sorted(gpu["gis"], key=lambda g: g["id"]) for ci in gi["cis"]]


# -- MIG mode, reset, driver -----------------------------------------------------------------


def set_mig_mode(model: ModelSpec, gpu: Gpu, mode: int) -> int:
    """Returns the activation status (``NVML_SUCCESS`` or ``NVML_ERROR_IN_USE``)."""
    if not model.mig_capable:
        raise fail(pynvml.NVML_ERROR_NOT_SUPPORTED)
    if mode not in (pynvml.NVML_DEVICE_MIG_DISABLE, pynvml.NVML_DEVICE_MIG_ENABLE):
        raise fail(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    mig = gpu["mig"]
    if mode == mig["current"]:
        mig["pending"] = mode  # asking for the current mode cancels a pending change
        return pynvml.NVML_SUCCESS
    if mode == pynvml.NVML_DEVICE_MIG_DISABLE and gpu["gis"]:
        raise fail(pynvml.NVML_ERROR_IN_USE)
    if live_procs(gpu):
        if model.resets_to_enable:
            # Ampere: the mode is stored and waits for a GPU reset the driver could not do.
            mig["pending"] = mode
            return pynvml.NVML_ERROR_IN_USE
        raise fail(pynvml.NVML_ERROR_IN_USE)  # Hopper and later refuse outright
    mig["current"] = mig["pending"] = mode
    return pynvml.NVML_SUCCESS


def reset_gpu(gpu: Gpu) -> None:
    """A GPU reset: instances are gone, a pending mode becomes current. Refused with processes."""
    if live_procs(gpu):
        raise fail(pynvml.NVML_ERROR_IN_USE)
    gpu["gis"] = []
    gpu["mig"]["current"] = gpu["mig"]["pending"]
    gpu["procs"] = []


def reload_driver(model: ModelSpec, gpu: Gpu) -> None:
    """Unload and load the kernel modules. Hopper and later lose MIG mode; Ampere keeps it."""
    reset_gpu(gpu)
    if not model.resets_to_enable:
        gpu["mig"]["current"] = gpu["mig"]["pending"] = pynvml.NVML_DEVICE_MIG_DISABLE


def new_gpu(index: int, model: ModelSpec, bus_id: str) -> Gpu:
    return {
        "index": index,
        "model": model.key,
        "uuid": "GPU-" + str(uuidlib.uuid4()),
        "bus_id": bus_id,
        "mig": {"current": 0, "pending": 0},
        "gis": [],
        "procs": [],
    }
