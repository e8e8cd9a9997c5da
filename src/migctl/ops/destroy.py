"""``destroy``: compute instances first, then GPU instances; refuses, destroying nothing, if any is in use.

Every target on every chosen GPU is resolved and checked for users (:mod:`migctl.ops.busy`)
before the first destroy. A driver failure part-way says what was already destroyed
(running the same command again finishes the job).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pynvml

from migctl.device import ComputeInstance, Gpu, GpuInstance, Node
from migctl.errors import InUseError, MigctlError, NotSupportedError, UsageError, from_nvml
from migctl.ops.busy import GpuUse, node_leases, snapshot
from migctl.ops.lock import host_lock
from migctl.records.common import DestroyedInstance
from migctl.records.lifecycle import DestroyReport


@dataclass
class _Doomed:
    """What a destroy will remove, and who is in the way."""

    cis: list[tuple[Gpu, GpuInstance, ComputeInstance]]
    gis: list[tuple[Gpu, GpuInstance]]
    users: list[str]


def _owner_gpus(node: Node, gpus: Sequence[Gpu], uuids: Sequence[str]) -> list[Gpu]:
    """The chosen GPUs plus those that own the MIG devices named by UUID."""
    targets = list(gpus)
    for u in uuids:
        owner = [g for g in node.gpus if any(m.uuid == u for m in g.mig_devices())]
        if not owner:
            raise UsageError(f"no MIG device has UUID {u}", hint="list them with: migctl devices")
        if owner[0] not in targets:
            targets.append(owner[0])
    return targets


def _collect(
    gpu: Gpu,
    use: GpuUse,
    doomed: _Doomed,
    gi_ids: Sequence[int],
    ci_pairs: Sequence[tuple[int, int]],
    everything: bool,
) -> None:
    gis = {g.id: g for g in gpu.gpu_instances()}
    for gi_id in list(gis) if everything else gi_ids:
        if gi_id not in gis:
            raise UsageError(
                f"GPU {gpu.index} has no GPU instance {gi_id}",
                hint=f"its GPU instances: {', '.join(map(str, gis)) or 'none'}",
            )
        gi = gis[gi_id]
        cis = gi.compute_instances()
        who = use.of_gpu_instance(gi, cis).words()
        doomed.users += [f"GI {gi.id} ({gi.profile}) on GPU {gpu.index}: {w}" for w in who]
        doomed.cis += [(gpu, gi, ci) for ci in cis]
        doomed.gis.append((gpu, gi))
    for gi_id, ci_id in ci_pairs:
        owner = gis.get(gi_id)
        ci = next((c for c in owner.compute_instances() if c.id == ci_id), None) if owner else None
        if owner is None or ci is None:
            raise UsageError(
                f"GPU {gpu.index} has no compute instance {gi_id}:{ci_id}", hint=f"see migctl status -i {gpu.index}"
            )
        if any(g.id == owner.id and c.id == ci.id for _, g, c in doomed.cis):
            continue
        who = use.of_compute_instance(owner.id, ci).words()
        doomed.users += [f"CI {owner.id}:{ci.id} on GPU {gpu.index}: {w}" for w in who]
        doomed.cis.append((gpu, owner, ci))


def destroy(
    node: Node,
    gpus: Sequence[Gpu],
    *,
    gi_ids: Sequence[int] = (),
    ci_ids: Sequence[tuple[int, int]] = (),
    uuids: Sequence[str] = (),
    everything: bool = False,
    wait_s: float | None = None,
) -> DestroyReport:
    """``nvidia-smi mig -dci`` then ``-dgi``: refuses (destroying nothing) if any target is in use.

    ``gi_ids`` and ``ci_ids`` (``(GI, CI)`` pairs) apply to each of ``gpus``; ``uuids`` name MIG
    devices on any GPU; ``everything`` takes every instance of ``gpus`` (skipping GPUs with MIG off).
    """
    if not (gi_ids or ci_ids or uuids or everything):
        raise UsageError("say what to destroy: --gi ID, --ci GI:CI, --uuid MIG-... or --all")
    with host_lock(wait_s):
        leases = node_leases()
        doomed = _Doomed([], [], [])
        for gpu in _owner_gpus(node, gpus, uuids):
            mode = gpu.mig_mode()
            if mode is None or not mode.current:
                if everything:
                    continue
                raise NotSupportedError(f"MIG is not enabled on GPU {gpu.index}: it has no instances to destroy")
            chosen = gpu in gpus
            pairs = list(ci_ids) if chosen else []
            pairs += [(m.gi_id, m.ci_id) for m in gpu.mig_devices() if m.uuid in uuids]
            _collect(gpu, snapshot(gpu, leases), doomed, gi_ids if chosen else (), pairs, everything)
        if doomed.users:
            raise InUseError(
                "refusing to destroy instances in use: " + "; ".join(doomed.users),
                hint="stop those processes first; nothing was destroyed",
            )
        done: list[DestroyedInstance] = []
        for gpu, gi, ci in doomed.cis:
            try:
                ci.destroy()
            except pynvml.NVMLError as exc:
                raise _partial(exc, f"destroying CI {gi.id}:{ci.id} on GPU {gpu.index}", done) from None
            done.append(DestroyedInstance(gpu.index, gi.id, ci.id, ci.profile, ci.uuid))
        for gpu, gi in doomed.gis:
            try:
                gi.destroy()
            except pynvml.NVMLError as exc:
                raise _partial(exc, f"destroying GI {gi.id} on GPU {gpu.index}", done) from None
            done.append(DestroyedInstance(gpu.index, gi.id, None, gi.profile, None))
        return DestroyReport(tuple(done))


def _partial(exc: pynvml.NVMLError, action: str, done: list[DestroyedInstance]) -> MigctlError:
    what = ", ".join(
        f"GPU {d.gpu} GI {d.gpu_instance_id}"
        + (f" CI {d.compute_instance_id}" if d.compute_instance_id is not None else "")
        for d in done
    )
    return from_nvml(
        exc,
        action,
        hint=(f"already destroyed: {what}; " if done else "nothing was destroyed; ")
        + "run the same command again to finish",
        destroyed=tuple(done),
    )
