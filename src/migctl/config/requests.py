"""The short forms ``create``, ``create-ci`` and ``destroy`` take: ``1g.12gb:2`` and ``GI:CI``.

* A *profile request* is a profile (name such as ``1g.12gb`` or ``1c.3g.48gb``, or a profile
  ID such as ``19``) and how many: ``1g.12gb:2``, ``19``. Commas separate several in one
  word, as nvidia-smi's ``-cgi 19,19,14`` does: ``1g.12gb:2,2g.24gb``.
* A compute instance is named ``GI:CI`` (``13:0``).

Parsing is pure: text in, :class:`ProfileRequest` / ``(gi, ci)`` or :class:`ConfigError` out.
Whether a profile exists is the GPU's to say (:mod:`migctl.ops.create`).

>>> parse_profile_requests(["1g.12gb:2", "19,2g.24gb"])
[ProfileRequest(profile='1g.12gb', count=2), ProfileRequest(profile='19', count=1), \
ProfileRequest(profile='2g.24gb', count=1)]
>>> parse_compute_instance("13:0")
(13, 0)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from migctl.config.errors import ConfigError
from migctl.core.layout import ProfileRequest

__all__ = ["ProfileRequest", "as_profile_requests", "parse_compute_instance", "parse_profile_requests"]

_COUNTED = re.compile(r"(.+?)(?::([0-9]+))?", re.ASCII)

#: No GPU holds more than 64 instances of a profile: a larger count is a typo, refused while
#: parsing (before anything would spend memory on it).
MAX_COUNT = 64


def parse_profile_requests(items: Iterable[str]) -> list[ProfileRequest]:
    """``["1g.12gb:2", "19"]`` -> two requests; commas also separate; empty items are skipped."""
    out: list[ProfileRequest] = []
    for raw in items:
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            m = _COUNTED.fullmatch(item)
            assert m is not None  # the pattern matches any non-empty text
            if m[2] is not None and len(m[2].lstrip("0")) > 3:
                raise ConfigError(f"the count after ':' must be at most {MAX_COUNT}", source=repr(item))
            count = int(m[2]) if m[2] is not None else 1
            if count < 1:
                raise ConfigError("the count after ':' must be at least 1", source=repr(item))
            if count > MAX_COUNT:
                raise ConfigError(
                    f"the count after ':' must be at most {MAX_COUNT} (no GPU holds more instances of a profile)",
                    source=repr(item),
                )
            out.append(ProfileRequest(m[1].strip(), count))
    return out


def as_profile_requests(items: Iterable[ProfileRequest | str]) -> list[ProfileRequest]:
    """Requests given as :class:`ProfileRequest` or in the short form, parsed, in order."""
    out: list[ProfileRequest] = []
    for item in items:
        out += [item] if isinstance(item, ProfileRequest) else parse_profile_requests([item])
    return out


def parse_compute_instance(text: str) -> tuple[int, int]:
    """``"13:0"`` -> ``(13, 0)``: GPU-instance ID and compute-instance ID."""
    m = re.fullmatch(r"\s*([0-9]{1,9})\s*:\s*([0-9]{1,9})\s*", text, re.ASCII)
    if m is None:
        raise ConfigError("expected GI:CI, e.g. --ci 13:0", source=f"--ci {text!r}")
    return int(m[1]), int(m[2])
