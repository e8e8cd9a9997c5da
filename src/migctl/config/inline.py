"""The short command-line layout: ``migctl apply --layout '3g.48gb,2g.24gb,1g.12gb:2'``.

Grammar (whitespace around items and inside brackets is ignored)::

    layout  := ""                      MIG on, no instances
             | "disabled"              MIG off
             | item ("," item)*
    item    := PROFILE [":" COUNT] ["@" START] ["[" [CI ("," CI)*] "]"]

* ``PROFILE`` is a GPU-instance profile name as in ``mig-devices`` (``1g.12gb``,
  ``1g.12gb+me``, ``1c.3g.48gb``); ``COUNT`` (default 1) how many; the same profile may
  appear in several items, their counts add up;
* ``@START`` pins the instance to memory slice ``START`` (only with ``COUNT`` 1);
* ``[CI,...]`` lists the compute instances to create in each instance (``1c.3g.48gb`` or
  just ``1c``); ``[]`` creates none.

Example: ``3g.48gb@4[1c,1c,1c],2g.24gb,1g.12gb:2``. The result is a :class:`MigConfigEntry`
(``devices: all``; pins and compute lists in ``x-migctl``), resolved by the same code as a
config file.
"""

from __future__ import annotations

import re

from migctl.config.document import Document, validate
from migctl.config.errors import ConfigError
from migctl.config.requests import MAX_COUNT
from migctl.config.spec import MigConfigEntry, normalize_profile

SOURCE = "--layout"

_ITEM = re.compile(
    r"\s*(?P<profile>[^\s:@\[\],]+)\s*(?::\s*(?P<count>[0-9]+))?\s*(?:@\s*(?P<start>[0-9]{1,6}))?"
    r"\s*(?:\[(?P<compute>[^\[\]]*)\])?\s*",
    re.ASCII,
)


def _split(text: str) -> list[str]:
    """Split at commas outside brackets."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return [*items, cur]


def parse_layout(text: str, source: str = SOURCE) -> MigConfigEntry:
    """Parse the inline form (see the module doc) into a config entry."""
    if text.strip().lower() == "disabled":
        return MigConfigEntry.model_validate({"devices": "all", "mig-enabled": False})
    counts: dict[str, int] = {}
    pins: list[dict[str, object]] = []
    for item in _split(text) if text.strip() else []:
        m = _ITEM.fullmatch(item)
        if m is None:
            raise ConfigError("expected PROFILE[:COUNT][@START][[CI,...]], e.g. 3g.48gb@4[1c,1c,1c]",
                              source=source, key=item.strip() or "(empty item)")
        if m["count"] is not None and len(m["count"].lstrip("0")) > 3:  # before int(): no 5000-digit parse
            raise ConfigError(f"count must be at most {MAX_COUNT}", source=source, key=item.strip())
        name, count = normalize_profile(m["profile"]), int(m["count"] or 1)
        if count < 1:
            raise ConfigError("count must be at least 1", source=source, key=item.strip())
        if count > MAX_COUNT or counts.get(name, 0) + count > MAX_COUNT:
            raise ConfigError(
                f"count must be at most {MAX_COUNT} (no GPU holds more instances of a profile)",
                source=source,
                key=item.strip(),
            )
        if m["start"] is not None and count != 1:
            raise ConfigError("a pinned (@START) item stands for one instance", source=source,
                              key=item.strip())
        counts[name] = counts.get(name, 0) + count
        if m["start"] is not None or m["compute"] is not None:
            pin: dict[str, object] = {"profile": name}
            if m["start"] is not None:
                pin["placement"] = int(m["start"])
            if m["compute"] is not None:
                pin["compute"] = [c.strip() for c in m["compute"].split(",")] if m["compute"].strip() else []
            pins += [pin] * count
    data: dict[str, object] = {"devices": "all", "mig-enabled": True, "mig-devices": counts}
    order = list(counts)
    pins.sort(key=lambda p: order.index(str(p["profile"])))  # grouped as format_layout writes them
    if pins:
        data["x-migctl"] = {"instances": pins}
    return validate(MigConfigEntry, Document(data, {}, source))


def format_layout(entry: MigConfigEntry) -> str:
    """The inline form of ``entry`` (its ``devices`` and ``device-filter`` are not part of it);
    ``parse_layout(format_layout(e))`` gives back ``e`` for any ``e`` that ``parse_layout`` made."""
    if not entry.mig_enabled:
        return "disabled"
    items = []
    for name, count in (entry.mig_devices or {}).items():
        pins = entry.pins(name)
        for pin in pins:
            at = "" if pin.placement is None else f"@{pin.placement}"
            ci = "" if pin.compute is None else f"[{','.join(pin.compute)}]"
            items.append(f"{name}{at}{ci}")
        rest = count - len(pins)
        if rest > 0:
            items.append(name if rest == 1 else f"{name}:{rest}")
    return ",".join(items)
