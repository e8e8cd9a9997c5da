"""``-i``: which GPUs a command acts on, in the forms ``nvidia-smi -i`` accepts, and lists of them.

=====================  ===========================  ============================================
form                   example                      GPUs
=====================  ===========================  ============================================
nothing, ``all``                                    every GPU (nvidia-smi without ``-i``)
an index               ``3``                        GPU 3 (the driver's order, as nvidia-smi)
a range                ``0-3``                      GPUs 0, 1, 2 and 3
a UUID                 ``GPU-1b24da31-...``         that GPU (case does not matter)
a PCI bus ID           ``00000000:18:00.0``         that GPU; also the short forms NVML's
                       ``0000:18:00.0``, ``18:00.0``  ``nvmlDeviceGetHandleByPciBusId`` accepts:
                       ``0:18:0``                   ``domain:bus:device[.function]`` and
                                                    ``bus:device.function``, all hexadecimal
a list of those        ``0,2``, ``0-1,GPU-...``     each of them, in index order, once
=====================  ===========================  ============================================

Parsing is pure: text and the node's GPU identities in, the chosen GPUs or a
:class:`~migctl.config.errors.ConfigError` (naming the bad part and the valid choices) out.

>>> from types import SimpleNamespace as G
>>> node = [G(index=i, uuid=f"GPU-{i}", bus_id=f"00000000:{0x18 + i:02X}:00.0") for i in range(4)]
>>> [g.index for g in select_gpus(node, "3,0-1")]
[0, 1, 3]
>>> [g.index for g in select_gpus(node, "19:00.0")]
[1]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, TypeVar

from migctl.config.errors import ConfigError

HINT = "use e.g. -i 0, -i 0,2, -i 0-3, -i GPU-<uuid> or a PCI bus ID such as -i 00000000:18:00.0"


class GpuIdentity(Protocol):
    """What ``-i`` matches a GPU by (:class:`migctl.device.Gpu` has these)."""

    @property
    def index(self) -> int: ...
    @property
    def uuid(self) -> str: ...
    @property
    def bus_id(self) -> str: ...


G = TypeVar("G", bound=GpuIdentity)

_INDEX = re.compile(r"(\d+)(?:-(\d+))?")
_HEX = r"[0-9a-fA-F]{1,8}"
#: domain:bus:device.function, domain:bus:device, bus:device.function (NVML's three forms).
_BUS_ID = (
    re.compile(rf"(?P<domain>{_HEX}):(?P<bus>{_HEX}):(?P<device>{_HEX})\.(?P<function>{_HEX})"),
    re.compile(rf"(?P<domain>{_HEX}):(?P<bus>{_HEX}):(?P<device>{_HEX})"),
    re.compile(rf"(?P<bus>{_HEX}):(?P<device>{_HEX})\.(?P<function>{_HEX})"),
)

BusId = tuple[int, int, int, int]


def parse_bus_id(text: str) -> BusId | None:
    """``"00000000:18:00.0"`` (or a short form) -> ``(domain, bus, device, function)``; ``None``
    when ``text`` is not a PCI bus ID."""
    for pattern in _BUS_ID:
        m = pattern.fullmatch(text.strip())
        if m is not None:
            parts = m.groupdict()
            return (
                int(parts.get("domain") or "0", 16),
                int(parts["bus"], 16),
                int(parts["device"], 16),
                int(parts.get("function") or "0", 16),
            )
    return None


def is_all(spec: str | None) -> bool:
    """Whether ``-i spec`` means every GPU (no ``-i``, an empty one, or ``all``)."""
    return spec is None or spec.strip().lower() in ("", "all")


def select_gpus(gpus: Sequence[G], spec: str | None) -> list[G]:
    """The GPUs of ``gpus`` that ``-i spec`` names, in index order, each once (every GPU for
    :func:`is_all` specs)."""
    if is_all(spec):
        return list(gpus)
    assert spec is not None
    valid = f"valid GPU indices are 0-{len(gpus) - 1}" if gpus else "this node has no GPU"
    chosen: dict[int, G] = {}
    for raw in spec.split(","):
        part = raw.strip()
        for g in _one(gpus, spec, part, valid):
            chosen.setdefault(g.index, g)
    return [chosen[i] for i in sorted(chosen)]


def _one(gpus: Sequence[G], spec: str, part: str, valid: str) -> list[G]:
    where = f"-i {spec if spec.isprintable() else repr(spec)}"  # one line, whatever was typed
    if part.upper().startswith("GPU-"):
        match = [g for g in gpus if g.uuid.lower() == part.lower()]
        if not match:
            raise ConfigError(f"no GPU has UUID {part}; list them with: migctl devices", source=where)
        return match
    m = _INDEX.fullmatch(part)
    if m is not None:
        lo, hi = int(m[1]), int(m[2] or m[1])
        if lo > hi:
            raise ConfigError(f"{part!r} is a reversed range; write it low-high: {hi}-{lo}", source=where)
        if hi >= len(gpus):
            raise ConfigError(f"GPU {hi} does not exist; {valid}", source=where)
        return [g for g in gpus if lo <= g.index <= hi]
    bus = parse_bus_id(part)
    if bus is not None:
        match = [g for g in gpus if parse_bus_id(g.bus_id) == bus]
        if not match:
            known = ", ".join(g.bus_id for g in gpus) or "none"
            raise ConfigError(f"no GPU has PCI bus ID {part}; the GPUs' bus IDs: {known}", source=where)
        return match
    raise ConfigError(f"{part!r} is not a GPU index, range, UUID or PCI bus ID; {HINT}", source=where)


def parse_ids(values: Sequence[str], *, option: str) -> list[int]:
    """``--gi 9,10 --gi 11`` -> ``[9, 10, 11]``: IDs given as a comma list, repeated, or both."""
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit():
                raise ConfigError(f"{part!r} is not an ID; give numbers such as {option} 9,10", source=option)
            out.append(int(part))
    return out


def split_list(values: Sequence[str]) -> list[str]:
    """``--uuid A,B --uuid C`` -> ``[A, B, C]``: a comma list, repeated, or both (blanks dropped)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
