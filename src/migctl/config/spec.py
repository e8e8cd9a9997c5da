"""The mig-parted ``version: v1`` config schema, plus migctl's ``x-migctl`` entry key.

Semantics follow NVIDIA/mig-parted (``api/spec/v1/spec.go``, ``helpers.go``,
``pkg/types``):

* top level: ``version`` (must be ``v1``) and ``mig-configs`` (when present, at least one
  config, each with at least one entry); any other key is an error, as in mig-parted. An empty
  document and one holding only ``version: v1`` are valid and define no configs;
* an entry requires ``devices`` (``all`` or a list of GPU indices) and ``mig-enabled``;
  ``device-filter`` is optional (a string or a list of strings; ``""`` or ``[]`` means no
  filter; a string that is not a PCI ID is accepted and matches no GPU, as in mig-parted);
  ``mig-devices`` (profile name -> count) is required when MIG is enabled and must be
  empty or absent when it is not; a non-empty ``mig-devices`` whose counts are all 0 is an
  error (mig-parted's rule: write ``{}`` for "MIG on, no instances");
* unknown entry keys are errors. mig-parted's parser is strict too, so **a file that uses
  ``x-migctl`` is migctl-only**: mig-parted rejects it with ``unexpected field: x-migctl``.

``x-migctl: {instances: [{profile, placement, compute}]}`` pins some of the instances that
``mig-devices`` counts to a start slice and/or subdivides them into compute instances; it may
pin fewer instances than counted, never more, and only profiles that ``mig-devices`` names.

Profile names are compared case-insensitively with any ``MIG `` prefix removed
(:func:`normalize_profile`); they are resolved against each GPU's own profiles only when a
config is selected (``migctl.config.select``).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from migctl.config.errors import Path

VERSION = "v1"

_PROFILE = re.compile(r"(?:(\d+)c\.)?(\d+)g\.(\d+)gb((?:[+-][a-z][a-z0-9]*(?:\.[a-z0-9]+)*)*)")


def normalize_profile(name: str) -> str:
    """``"MIG 1G.10GB "`` -> ``"1g.10gb"``: how migctl compares profile names."""
    key = name.strip()
    if key[:4].lower() == "mig ":
        key = key[4:].strip()
    return key.lower()


def parse_profile(name: str) -> tuple[int | None, int, int, str] | None:
    """``"1c.3g.48gb+me"`` -> ``(1, 3, 48, "+me")``; ``(None, g, gb, suffix)`` for a GPU-instance
    name; ``None`` if ``name`` is not a MIG profile name."""
    m = _PROFILE.fullmatch(normalize_profile(name))
    if m is None:
        return None
    c = int(m[1]) if m[1] is not None else None
    return c, int(m[2]), int(m[3]), m[4]


def _go_uint32(text: str) -> int:
    """``strconv.ParseUint(text, 0, 32)``, the way Go (and so mig-parted) reads a number: ``0x``,
    ``0o``, ``0b`` or a leading ``0`` (octal) choose the base, ``_`` may separate digits, no
    sign or spaces; raises ``ValueError``."""
    if not text:
        raise ValueError(text)
    base, digits = 10, text
    if text[0] == "0":
        prefix = text[1:2].lower()
        if len(text) >= 3 and prefix in ("b", "o", "x"):
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], text[2:]
        else:
            base, digits = 8, text[1:]
    if "_" in digits and not _underscores_ok(text):
        raise ValueError(text)
    value = 0
    for ch in digits.replace("_", ""):
        d = int(ch, 36) if ch.isascii() and ch.isalnum() else 99
        if d >= base:
            raise ValueError(text)
        value = value * base + d
        if value > 0xFFFFFFFF:
            raise ValueError(text)
    return value


def _underscores_ok(text: str) -> bool:
    """Go's rule: an underscore sits between digits (a base prefix counts as one)."""
    saw, i = "^", 0
    hexa = False
    if len(text) >= 2 and text[0] == "0" and text[1].lower() in "box":
        saw, i, hexa = "0", 2, text[1].lower() == "x"
    for ch in text[i:]:
        if ch.isdigit() or (hexa and ch.lower() in "abcdef"):
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def parse_device_filter(text: str) -> tuple[int, int | None]:
    """``"0x233010DE"`` -> ``(0x233010DE, None)``; ``"0x233010DE:0x16C010DE"`` adds the subsystem
    ID (``(subsystem device << 16) | subsystem vendor``, as NVML's ``pciSubSystemId``).

    Read as mig-parted reads it (``types.NewDeviceIDFromString``): at most one ``:``, each part
    a 32-bit number in Go's syntax (hex with ``0x``, decimal, octal...). Anything else raises
    ``ValueError``; mig-parted then compares an all-zero ID, which matches no GPU.
    """
    parts = text.split(":")
    if len(parts) > 2:
        raise ValueError(text)
    device = _go_uint32(parts[0])
    return device, _go_uint32(parts[1]) if len(parts) == 2 else None


def _fail(message: str, at: Path = ()) -> NoReturn:
    """Raise a validation error; ``at`` locates it below the value being validated."""
    raise PydanticCustomError("migctl", "{message}", {"message": message, "at": at})


def _check_profile_key(name: str) -> str:
    if parse_profile(name) is None:
        _fail(f"{name!r} is not a MIG profile name (expected e.g. 1g.10gb, 1g.10gb+me, 1c.2g.20gb)")
    return name


def _check_compute_name(name: str) -> str:
    key = normalize_profile(name)
    if not re.fullmatch(r"\d+c", key) and parse_profile(key) is None:
        _fail(f"{name!r} is not a compute-instance profile (expected e.g. 1c.3g.48gb, 1c, 3g.48gb)")
    return name


def _device_filter(value: object) -> str | list[str] | None:
    """A string or a list of strings, as mig-parted's parser takes it. Whether each names a GPU
    is decided when matching (a string that is not a PCI ID matches no GPU, as in mig-parted)."""
    if value is None or isinstance(value, str):
        return value  # mig-parted: a null or "" filter matches every GPU
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                _fail(f"expected a PCI device ID string like 0x233010DE, got {item!r}", (i,))
        return list(value)
    _fail(f"expected a PCI device ID like 0x233010DE or a list of them, got {value!r}")


def _devices(value: object) -> Literal["all"] | list[int]:
    if value == "all":
        return "all"
    if not isinstance(value, list):
        _fail(f"expected 'all' or a list of GPU indices, got {value!r}")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            _fail(f"expected a GPU index (an integer >= 0), got {item!r}", (i,))
    return list(value)


def _version(value: object) -> str:
    if value != VERSION:
        _fail(f"unknown version {value!r}; migctl reads version: v1")
    return VERSION


def _null_is_empty(value: object) -> object:
    return {} if value is None else value  # mig-parted reads "mig-devices: null" as {}


ProfileName = Annotated[str, AfterValidator(_check_profile_key)]
ComputeName = Annotated[str, AfterValidator(_check_compute_name)]
Count = Annotated[int, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class XInstance(_Model):
    """One pinned or subdivided GPU instance (``x-migctl.instances[]``)."""

    profile: ProfileName
    placement: Annotated[int, Field(ge=0)] | None = None
    compute: list[ComputeName] | None = None


class XMigctl(_Model):
    """migctl's extension of a mig-parted entry."""

    instances: list[XInstance] = Field(default_factory=list)


class MigConfigEntry(_Model):
    """One entry of a named config: which GPUs it covers and what they should hold."""

    device_filter: Annotated[str | list[str] | None, PlainValidator(_device_filter)] = Field(
        default=None, alias="device-filter"
    )
    devices: Annotated[Literal["all"] | list[int], PlainValidator(_devices)]
    mig_enabled: bool = Field(alias="mig-enabled")
    mig_devices: Annotated[dict[ProfileName, Count] | None, BeforeValidator(_null_is_empty)] = Field(
        default=None, alias="mig-devices"
    )
    x_migctl: XMigctl | None = Field(default=None, alias="x-migctl")

    @model_validator(mode="after")
    def _consistent(self) -> MigConfigEntry:
        counts = self.mig_devices
        if self.mig_enabled and counts is None:
            _fail("required when mig-enabled is true (use {} for no instances)", ("mig-devices",))
        if not self.mig_enabled and counts:
            _fail("mig-devices must be empty when mig-enabled is false", ("mig-devices",))
        if not self.mig_enabled and self.x_migctl is not None and self.x_migctl.instances:
            _fail("x-migctl instances need mig-enabled: true", ("x-migctl",))
        counts = counts or {}
        if counts and not any(counts.values()):
            _fail("all counts are 0 (write mig-devices: {} for no instances)", ("mig-devices",))
        seen: dict[str, str] = {}
        for name in counts:
            if normalize_profile(name) in seen:
                _fail(f"duplicate profile {name!r} (also written {seen[normalize_profile(name)]!r};"
                      " names are case-insensitive)", ("mig-devices", name))
            seen[normalize_profile(name)] = name
        pinned: Counter[str] = Counter()
        for i, inst in enumerate(self.x_migctl.instances if self.x_migctl else []):
            key = normalize_profile(inst.profile)
            at: Path = ("x-migctl", "instances", i, "profile")
            if key not in seen:
                _fail(f"{inst.profile!r} is not counted in mig-devices; x-migctl only pins"
                      " instances that mig-devices asks for", at)
            pinned[key] += 1
            if pinned[key] > counts[seen[key]]:
                _fail(f"x-migctl lists {pinned[key]} instances of {inst.profile} but mig-devices"
                      f" counts {counts[seen[key]]}", at)
        return self

    def pins(self, profile: str) -> list[XInstance]:
        """The ``x-migctl`` instances of ``profile`` (compared as :func:`normalize_profile`)."""
        key = normalize_profile(profile)
        insts = self.x_migctl.instances if self.x_migctl else []
        return [x for x in insts if normalize_profile(x.profile) == key]


ConfigName = Annotated[str, Field(min_length=1)]
#: A config's entries. ``None`` is an empty entry (``- `` with nothing after it): mig-parted
#: reads it as an entry that matches no GPU, and so does migctl (with a warning).
Entries = Annotated[list[MigConfigEntry | None], Field(min_length=1)]


class MigSpec(_Model):
    """A whole config file. Equality ignores where it was loaded from."""

    version: Annotated[str, PlainValidator(_version)]
    mig_configs: Annotated[dict[ConfigName, Entries], Field(min_length=1)] = Field(
        default_factory=dict, alias="mig-configs"
    )
    """Absent (a file holding only ``version: v1``) means no configs, as in mig-parted; present,
    it must name at least one."""

    _source: str = PrivateAttr(default="<config>")
    _lines: dict[Path, int] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str:
        return self._source

    def names(self) -> list[str]:
        return list(self.mig_configs)

    def line_of(self, path: Path) -> int | None:
        """Line of ``path`` in the loaded file (or of its nearest enclosing key)."""
        for n in range(len(path), -1, -1):
            if path[:n] in self._lines:
                return self._lines[path[:n]]
        return None

    def located(self, source: str, lines: dict[Path, int]) -> MigSpec:
        """Remember where this spec came from (used by the loader)."""
        self._source = source
        self._lines = lines
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MigSpec):
            return NotImplemented
        return self.version == other.version and self.mig_configs == other.mig_configs

    def to_data(self) -> dict[str, Any]:
        """The spec as plain data with the file's own key names (for YAML/JSON output)."""
        return self.model_dump(by_alias=True, exclude_none=True)

