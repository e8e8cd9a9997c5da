"""Checkpoints: a node's exact MIG state as JSON (records in :mod:`migctl.records.parity`), and
the targets that bring it back.

Like mig-parted's ``checkpoint``/``restore`` (``api/checkpoint/v1``: per GPU UUID, the MIG mode
and each GPU instance's profile and placement with its compute instances), but readable: it
names profiles as well as giving their IDs, and records compute-instance placements and MIG
UUIDs (informational: a MIG device's UUID is new each time it is created).

```json
{"version": "migctl.checkpoint/v1",
 "gpus": [{"index": 0, "uuid": "GPU-...", "name": "NVIDIA H20", "pci_device_id": "0x232910DE",
           "mig_enabled": true,
           "gpu_instances": [{"id": 2, "profile": "3g.48gb", "profile_id": 9,
                              "placement": {"start": 4, "size": 4},
                              "compute_instances": [{"id": 0, "profile": "1c.3g.48gb", "profile_id": 0,
                                                     "placement": {"start": 0, "size": 1},
                                                     "uuid": "MIG-..."}]}]}]}
```
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from migctl.core.geometry import Placement
from migctl.core.layout import Target, TargetInstance
from migctl.records import dumps
from migctl.records.parity import (
    CHECKPOINT_VERSION,
    Checkpoint,
    CheckpointComputeInstance,
    CheckpointGpu,
    CheckpointGpuInstance,
)

VERSION = CHECKPOINT_VERSION


class CheckpointError(ValueError):
    """A checkpoint file migctl cannot use; the message is one line naming where."""


def target(gpu: CheckpointGpu) -> Target:
    """One checkpointed GPU as a target pinned to the same placements and compute instances."""
    return Target(
        mig_enabled=gpu.mig_enabled,
        instances=tuple(
            TargetInstance(gi.profile_id, gi.placement, tuple(sorted(c.profile for c in gi.compute_instances)))
            for gi in gpu.gpu_instances
        ),
    )


def to_text(ck: Checkpoint) -> str:
    """The checkpoint file's text (JSON, as ``--json`` would print the record)."""
    return dumps(ck) + "\n"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Placement(_Model):
    start: int = Field(ge=0)
    size: int = Field(ge=1)


class _Ci(_Model):
    id: int = Field(ge=0)
    profile: str
    profile_id: int = Field(ge=0)
    placement: _Placement
    uuid: str = ""


class _Gi(_Model):
    id: int = Field(ge=0)
    profile: str
    profile_id: int = Field(ge=0)
    placement: _Placement
    compute_instances: list[_Ci] = Field(default_factory=list)


class _Gpu(_Model):
    index: int = Field(ge=0)
    uuid: str = Field(min_length=1)
    name: str = ""
    pci_device_id: str = Field(pattern=r"^0[xX][0-9a-fA-F]{1,8}$")
    mig_enabled: bool
    gpu_instances: list[_Gi] = Field(default_factory=list)


class _Checkpoint(_Model):
    version: str
    gpus: list[_Gpu]


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _placement(p: _Placement) -> Placement:
    return Placement(p.start, p.size)


def from_text(text: str, source: str = "<checkpoint>") -> Checkpoint:
    """Parse a checkpoint; any problem is one :class:`CheckpointError` line naming the key."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise CheckpointError(f"{source}: not JSON (nested too deeply)") from None
    except ValueError as exc:
        raise CheckpointError(f"{source}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        got = data.get("version") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{source}: version: expected {VERSION!r}, got {got!r} (see migctl checkpoint)")
    try:
        model = _Checkpoint.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CheckpointError(f"{source}: {_where(tuple(first['loc']))}: {first['msg']}") from None
    seen: set[str] = set()
    for i, g in enumerate(model.gpus):
        if g.uuid in seen:
            raise CheckpointError(f"{source}: gpus[{i}].uuid: GPU {g.uuid} appears twice")
        seen.add(g.uuid)
        if not g.mig_enabled and g.gpu_instances:
            raise CheckpointError(f"{source}: gpus[{i}].gpu_instances: must be empty when mig_enabled is false")
    return Checkpoint(
        "migctl.checkpoint/v1",
        tuple(
            CheckpointGpu(
                g.index,
                g.uuid,
                g.name,
                f"0x{int(g.pci_device_id, 16):08X}",
                g.mig_enabled,
                tuple(
                    CheckpointGpuInstance(
                        gi.id,
                        gi.profile,
                        gi.profile_id,
                        _placement(gi.placement),
                        tuple(
                            CheckpointComputeInstance(c.id, c.profile, c.profile_id, _placement(c.placement), c.uuid)
                            for c in gi.compute_instances
                        ),
                    )
                    for gi in g.gpu_instances
                ),
            )
            for g in model.gpus
        ),
    )
