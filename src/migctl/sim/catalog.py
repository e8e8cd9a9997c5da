"""The simulator's catalog of GPU models, loaded from ``data/catalog.json``.

The catalog is data, not code: one entry per model with its GPU-instance profiles (IDs, NVML
enum values, slices, memory, SMs, engines, placements) and, per GPU-instance profile, its
compute-instance profiles. Values that were never observed on hardware are listed in each
entry's ``inferred`` field (``?`` or ``*`` in ``docs/reference/gpu-profile-tables.md``).

Only the simulator reads this. On real hardware migctl reads every profile and placement from
NVML, so a wrong catalog value can mislead a simulation but never a real GPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Placement:
    """Slices ``[start, start + size)``: memory slices for a GPU instance, compute slices for a CI.

    The simulator's own type (it shares no code with ``migctl.core``), as ``-lgipp`` prints it.
    """

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size

    def overlaps(self, other: Placement) -> bool:
        return self.start < other.end and other.start < self.end

    def __str__(self) -> str:
        return f"{self.start}:{self.size}"


@dataclass(frozen=True)
class Engines:
    """Media engines (decoders, encoders, JPEG, OFA) a profile takes from the GPU's pool."""

    dec: int = 0
    enc: int = 0
    jpeg: int = 0
    ofa: int = 0

    def within(self, total: Engines) -> bool:
        """Whether these engines fit in ``total`` (every kind at most as many)."""
        return self.dec <= total.dec and self.enc <= total.enc and self.jpeg <= total.jpeg and self.ofa <= total.ofa


@dataclass(frozen=True)
class Telemetry:
    """What a model reports beside MIG: power, clocks, BAR1, NVLinks (public spec values)."""

    power_limit_w: int  # default and enforced power limit (TDP)
    min_power_limit_w: int
    idle_power_w: int
    max_sm_clock_mhz: int
    max_mem_clock_mhz: int
    bar1_mib: int
    nvlinks: int  # links to NVSwitches (HGX) or bridges; 0: none
    compute_capability: tuple[int, int]


@dataclass(frozen=True)
class CiProfileSpec:
    id: int  # NVML_COMPUTE_INSTANCE_PROFILE_* value (= the ID nvidia-smi prints)
    name: str  # "1c.3g.48gb"; the default one carries the GI profile's name
    slices: int
    instances: int
    sm: int
    ce: int
    dec: int
    enc: int
    jpeg: int
    ofa: int
    default: bool
    placements: tuple[Placement, ...]  # in compute-slice (CTS span) units
    inferred: tuple[str, ...]


@dataclass(frozen=True)
class GiProfileSpec:
    id: int
    nvml_enum: int
    name: str
    slices: int
    instances: int
    memory_mib: int
    sm: int
    ce: int
    dec: int
    enc: int
    jpeg: int
    ofa: int
    p2p: bool
    placements: tuple[Placement, ...]
    ci_profiles: tuple[CiProfileSpec, ...]
    inferred: tuple[str, ...]

    @property
    def placement_size(self) -> int:
        return self.placements[0].size

    @property
    def engines(self) -> Engines:
        return Engines(self.dec, self.enc, self.jpeg, self.ofa)

    def ci_by_id(self, ci_profile_id: int) -> CiProfileSpec | None:
        return next((c for c in self.ci_profiles if c.id == ci_profile_id), None)

    @property
    def default_ci(self) -> CiProfileSpec:
        return next(c for c in self.ci_profiles if c.default)


@dataclass(frozen=True)
class ModelSpec:
    key: str  # what --sim takes: "h20", "a100-40gb", ...
    name: str  # what nvmlDeviceGetName returns: "NVIDIA H20"
    pci_device_id: int  # 16-bit PCI device ID; NVML reports (id << 16) | 0x10DE
    arch: str  # "ampere", "hopper", "blackwell", or "ada" (not MIG-capable)
    memory_mib: int
    sm: int
    max_instances: int
    span: int  # memory slices: 8, or 4 on A30, 12 on RTX PRO 6000
    nvswitch: bool  # HGX board: CUDA needs nvidia-fabricmanager
    mig_capable: bool
    pci_subsystem_id: int  # 16-bit subsystem device ID (vendor 0x10DE); NVML: (id << 16) | 0x10DE
    telemetry: Telemetry
    gi_profiles: tuple[GiProfileSpec, ...]
    inferred: tuple[str, ...]
    source: str

    @property
    def nvml_pci_device_id(self) -> int:
        return (self.pci_device_id << 16) | 0x10DE

    @property
    def nvml_pci_subsystem_id(self) -> int:
        return (self.pci_subsystem_id << 16) | 0x10DE

    @property
    def gpm_supported(self) -> bool:
        """GPM (``nvmlGpmQueryDeviceSupport``): Hopper and later."""
        return self.arch in ("hopper", "blackwell")

    @property
    def resets_to_enable(self) -> bool:
        """Ampere needs a GPU reset for a mode change; Hopper and later switch when idle."""
        return self.arch == "ampere"

    def gi_by_id(self, profile_id: int) -> GiProfileSpec | None:
        return next((p for p in self.gi_profiles if p.id == profile_id), None)

    def gi_by_enum(self, nvml_enum: int) -> GiProfileSpec | None:
        return next((p for p in self.gi_profiles if p.nvml_enum == nvml_enum), None)

    @property
    def full_profile(self) -> GiProfileSpec | None:
        return max(self.gi_profiles, key=lambda p: p.placement_size, default=None)

    @property
    def engine_totals(self) -> Engines | None:
        full = self.full_profile
        return full.engines if full is not None else None


def _placements(raw: dict[str, Any]) -> tuple[Placement, ...]:
    return tuple(Placement(int(s), int(raw["size"])) for s in raw["starts"])


def _ci(raw: dict[str, Any]) -> CiProfileSpec:
    return CiProfileSpec(
        id=int(raw["id"]),
        name=str(raw["name"]),
        slices=int(raw["slices"]),
        instances=int(raw["instances"]),
        sm=int(raw["sm"]),
        ce=int(raw.get("ce", 0)),
        dec=int(raw.get("dec", 0)),
        enc=int(raw.get("enc", 0)),
        jpeg=int(raw.get("jpeg", 0)),
        ofa=int(raw.get("ofa", 0)),
        default=bool(raw.get("default", False)),
        placements=_placements(raw["placements"]),
        inferred=tuple(raw.get("inferred", ())),
    )


def _gi(raw: dict[str, Any]) -> GiProfileSpec:
    return GiProfileSpec(
        id=int(raw["id"]),
        nvml_enum=int(raw["nvml_enum"]),
        name=str(raw["name"]),
        slices=int(raw["slices"]),
        instances=int(raw["instances"]),
        memory_mib=int(raw["memory_mib"]),
        sm=int(raw["sm"]),
        ce=int(raw["ce"]),
        dec=int(raw["dec"]),
        enc=int(raw["enc"]),
        jpeg=int(raw["jpeg"]),
        ofa=int(raw["ofa"]),
        p2p=bool(raw.get("p2p", False)),
        placements=_placements(raw["placements"]),
        ci_profiles=tuple(_ci(c) for c in raw["ci_profiles"]),
        inferred=tuple(raw.get("inferred", ())),
    )


def _telemetry(raw: dict[str, Any]) -> Telemetry:
    major, minor = (int(x) for x in str(raw["compute_capability"]).split("."))
    return Telemetry(
        power_limit_w=int(raw["power_limit_w"]),
        min_power_limit_w=int(raw["min_power_limit_w"]),
        idle_power_w=int(raw["idle_power_w"]),
        max_sm_clock_mhz=int(raw["max_sm_clock_mhz"]),
        max_mem_clock_mhz=int(raw["max_mem_clock_mhz"]),
        bar1_mib=int(raw["bar1_mib"]),
        nvlinks=int(raw["nvlinks"]),
        compute_capability=(major, minor),
    )


def _model(raw: dict[str, Any]) -> ModelSpec:
    return ModelSpec(
        key=str(raw["key"]),
        name=str(raw["name"]),
        pci_device_id=int(str(raw["pci_device_id"]), 16),
        arch=str(raw["arch"]),
        memory_mib=int(raw["memory_mib"]),
        sm=int(raw["sm"]),
        max_instances=int(raw["max_instances"]),
        span=int(raw["span"]),
        nvswitch=bool(raw["nvswitch"]),
        mig_capable=bool(raw.get("mig_capable", True)),
        pci_subsystem_id=int(str(raw["pci_subsystem_id"]), 16),
        telemetry=_telemetry(raw["telemetry"]),
        gi_profiles=tuple(_gi(p) for p in raw.get("gi_profiles", ())),
        inferred=tuple(raw.get("inferred", ())),
        source=str(raw.get("source", "")),
    )


@cache
def models() -> dict[str, ModelSpec]:
    """Every model in the catalog, by key, in catalog order."""
    text = resources.files("migctl.sim").joinpath("data/catalog.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return {m["key"]: _model(m) for m in data["models"]}


def model(key: str) -> ModelSpec:
    """A model by its key; ``KeyError`` names the known ones."""
    found = models().get(key.strip().lower())
    if found is None:
        raise KeyError(f"unknown GPU model {key!r}; known: {', '.join(models())}")
    return found
