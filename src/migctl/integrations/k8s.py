"""Kubernetes: what NVIDIA's device plugin advertises and GPU feature discovery labels, per layout.

Rules of NVIDIA/k8s-device-plugin v0.20.0 (``internal/rm/rm.go``, ``internal/rm/device_map.go``,
``internal/lm/mig-strategy.go``, ``internal/lm/resource.go``; MIG profile strings from
NVIDIA/go-nvlib ``MigProfileInfo.String``):

* **mixed**: a GPU with MIG disabled is one ``nvidia.com/gpu``; a MIG device whose compute
  instance fills its GPU instance is one ``nvidia.com/mig-<profile>``, ``+`` written ``.``
  (``mig-1g.10gb``, ``mig-1g.10gb.me``, ``mig-1g.24gb-me``, ``mig-1g.24gb.me.all``,
  ``mig-1g.24gb.gfx``). Since v0.20 patterns are anchored, so each suffixed profile is its own
  resource. A MIG device of a smaller compute instance (``1c.3g.48gb``) matches no resource:
  the plugin stops with "does not match any resource patterns". A MIG-enabled GPU without MIG
  devices is only warned about.
* **single**: every MIG device is one ``nvidia.com/gpu``, only if every MIG-enabled GPU has
  MIG devices, all MIG devices have equal attributes, and no GPU has MIG disabled while MIG
  devices exist; otherwise the plugin stops (and GFD labels the node ``...-MIG-INVALID``).
* **labels** (GFD, mixed): per MIG device name, ``nvidia.com/mig-<name>.count``, ``.replicas``,
  ``.sharing-strategy``, ``.product`` (``<GPU model>-MIG-<name>``, sanitised), ``.memory``
  (MiB), ``.multiprocessors``, ``.slices.gi``, ``.slices.ci``, ``.engines.{copy,decoder,
  encoder,jpeg,ofa}``; the attributes are those of the first such device. Under single the same
  keys are under ``nvidia.com/gpu.``. Both set ``nvidia.com/mig.strategy``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from migctl.integrations.facts import GpuFacts, MigDeviceFacts

STRATEGIES = ("mixed", "single")
_CI_PREFIX = re.compile(r"\d+c\.")


def mig_name(profile: str) -> str:
    """The name the plugin and GFD give a MIG device of ``profile``: ``1g.10gb+me`` -> ``1g.10gb.me``."""
    return profile.replace("+", ".")


def is_full_compute(profile: str) -> bool:
    """Whether a MIG device of ``profile`` is a whole GPU instance (``3g.48gb``, not ``1c.3g.48gb``)."""
    return _CI_PREFIX.match(profile) is None


def sanitise(text: str) -> str:
    """GFD's label-value cleaning: drop characters outside ``[A-Za-z0-9-_. ]``, spaces to ``-``."""
    return "-".join(re.sub(r"[^A-Za-z0-9\-_. ]", "", text).split())


@dataclass(frozen=True)
class Advertised:
    """What the device plugin advertises under one strategy, or why it would refuse to start."""

    strategy: str
    resources: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def _mig_devices(gpus: Sequence[GpuFacts]) -> list[tuple[GpuFacts, MigDeviceFacts]]:
    return [(g, m) for g in gpus if g.mig_enabled for m in g.mig_devices]


def advertised(gpus: Sequence[GpuFacts], strategy: str) -> Advertised:
    """The extended resources the plugin would advertise for ``gpus`` under ``strategy``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown MIG strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    whole = [g for g in gpus if not g.mig_enabled]
    migs = _mig_devices(gpus)
    empty = [g.index for g in gpus if g.mig_enabled and not g.mig_devices]
    if strategy == "mixed":
        bad = [m for _, m in migs if not is_full_compute(m.profile)]
        if bad:
            m = bad[0]
            return Advertised(strategy, error=(
                f"MIG profile '{m.profile}' does not match any resource patterns (GPU {m.gpu_index}, GI {m.gi_id}): "
                "the device plugin advertises only MIG devices that fill their GPU instance, and stops otherwise"))
        resources: dict[str, int] = {}
        if whole:
            resources["nvidia.com/gpu"] = len(whole)
        for _, m in migs:
            key = f"nvidia.com/mig-{mig_name(m.profile)}"
            resources[key] = resources.get(key, 0) + 1
        warnings = tuple(f"device {i} has no MIG devices configured" for i in empty)
        return Advertised(strategy, dict(sorted(resources.items())), warnings=warnings)
    if empty:
        return Advertised(strategy, error=f"device {empty[0]} has no MIG devices configured (single needs MIG devices"
                                          " on every MIG-enabled GPU)")
    kinds = {m.attributes for _, m in migs}
    if len(kinds) > 1:
        names = sorted({m.profile for _, m in migs})
        return Advertised(strategy, error=f"more than one MIG device type present on node ({', '.join(names)}); "
                                          "single needs one uniform layout: use mixed")
    if whole and migs:
        return Advertised(strategy, error="all devices on the node must be configured with the same migEnabled "
                                          f"value (MIG is disabled on GPU {whole[0].index})")
    count = len(migs) if migs else len(whole)
    return Advertised(strategy, {"nvidia.com/gpu": count} if count else {})


def _attribute_labels(prefix: str, m: MigDeviceFacts) -> dict[str, str]:
    values = {
        "memory": m.memory_mib,
        "multiprocessors": m.multiprocessors,
        "slices.gi": m.gi_slices,
        "slices.ci": m.ci_slices,
        "engines.copy": m.copy_engines,
        "engines.decoder": m.decoders,
        "engines.encoder": m.encoders,
        "engines.jpeg": m.jpeg,
        "engines.ofa": m.ofa,
    }
    return {f"{prefix}.{k}": str(v) for k, v in values.items()}


def _base_labels(prefix: str, count: int, *parts: str) -> dict[str, str]:
    product = "-".join(sanitise(p) for p in parts if p)
    return {f"{prefix}.product": product, f"{prefix}.count": str(count), f"{prefix}.replicas": "1",
            f"{prefix}.sharing-strategy": "none"}


def node_labels(gpus: Sequence[GpuFacts], strategy: str) -> dict[str, str]:
    """The MIG labels GPU feature discovery sets for ``gpus`` under ``strategy`` (sorted by key)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown MIG strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    labels = {"nvidia.com/mig.strategy": strategy}
    migs = _mig_devices(gpus)
    by_name: dict[str, tuple[GpuFacts, MigDeviceFacts, int]] = {}
    for g, m in migs:
        name = mig_name(m.profile)
        first = by_name.get(name)
        by_name[name] = (g, m, 1) if first is None else (first[0], first[1], first[2] + 1)
    if strategy == "mixed":
        for name, (g, m, count) in by_name.items():
            prefix = f"nvidia.com/mig-{name}"
            labels.update(_base_labels(prefix, count, g.name, "MIG", name))
            labels.update(_attribute_labels(prefix, m))
        return dict(sorted(labels.items()))
    enabled = [g for g in gpus if g.mig_enabled]
    if not enabled:
        return labels
    invalid = (any(not g.mig_devices for g in enabled) or any(not g.mig_enabled for g in gpus)
               or len(by_name) != 1)
    prefix = "nvidia.com/gpu"
    if invalid:
        labels.update({f"{prefix}.product": "-".join([sanitise(enabled[0].name), "MIG", "INVALID"]),
                       f"{prefix}.count": "0", f"{prefix}.replicas": "0", f"{prefix}.sharing-strategy": "",
                       f"{prefix}.memory": "0"})
        return dict(sorted(labels.items()))
    ((name, (g, m, count)),) = by_name.items()
    labels.update(_base_labels(prefix, count, g.name, "MIG", name))
    labels.update(_attribute_labels(prefix, m))
    return dict(sorted(labels.items()))


# -- pausing the GPU clients around a MIG change (what the GPU Operator's mig-manager does) -----

#: The nodeSelector labels the GPU Operator (and migctl's docs for Helm installs) give the
#: DaemonSets of the GPU clients: ``nvidia.com/gpu.deploy.<component>=true``.
CLIENT_COMPONENTS = ("device-plugin", "gpu-feature-discovery", "dcgm-exporter", "dcgm")
PAUSED = "paused-for-mig-change"


def client_labels(current: dict[str, str], action: str) -> dict[str, str]:
    """The ``nvidia.com/gpu.deploy.*`` values to set to ``pause`` or ``resume`` the GPU clients.

    As mig-manager's ``maybe_set_paused``/``maybe_set_true``: a component set to ``false`` by
    someone else stays ``false``; otherwise pause sets ``paused-for-mig-change`` and resume
    ``true``.
    """
    if action not in ("pause", "resume"):
        raise ValueError(f"unknown action {action!r} (pause or resume)")
    out = {}
    for component in CLIENT_COMPONENTS:
        key = f"nvidia.com/gpu.deploy.{component}"
        value = current.get(key)
        if value == "false":
            out[key] = "false"
        else:
            out[key] = PAUSED if action == "pause" else "true"
    return out
