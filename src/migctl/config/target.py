"""What ``--on TARGET`` (``migctl run``, ``batch``, ``migctl.use``) and a jobs file's ``target:``
and ``profile:`` name: parsed here, matched against the node's MIG devices in
:func:`migctl.ops.launch.match_target`.

=====================  ============================================  =========================
form                   example                                       meaning
=====================  ============================================  =========================
nothing                                                              any MIG device
``MIG-<uuid>``         ``MIG-1b24da31-838c-5294-b2b5-22ae3e5f0676``  that device (a unique prefix is enough)
``GPU:GI[:CI]``        ``0:13``, ``0:13:1``                          that GPU instance (or compute instance)
a profile name         ``1g.12gb``                                   every MIG device of that profile
=====================  ============================================  =========================

>>> parse_target("0:13")
Address(text='0:13', gpu=0, gpu_instance_id=13, compute_instance_id=None)
>>> parse_target("  ")
AnyDevice(text='')
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class AnyDevice:
    """No target: any MIG device of the node."""

    text: str = ""


@dataclass(frozen=True)
class UuidPrefix:
    """``MIG-<uuid>``, or a prefix of one that names a single device (compared case-insensitively)."""

    text: str


@dataclass(frozen=True)
class Address:
    """``GPU:GI`` (every compute instance of that GPU instance) or ``GPU:GI:CI``."""

    text: str
    gpu: int
    gpu_instance_id: int
    compute_instance_id: int | None


@dataclass(frozen=True)
class ProfileName:
    """A MIG device profile such as ``1g.12gb`` (compared case-insensitively)."""

    text: str


#: A parsed target; ``text`` is what the user wrote (stripped), for messages.
Target = AnyDevice | UuidPrefix | Address | ProfileName

ANY = AnyDevice()

_ADDRESS = re.compile(r"(\d+):(\d+)(?::(\d+))?")


def parse_target(text: str | None) -> Target:
    """The target ``text`` names. Every string is some target: whether it names a device is
    decided against the node (an unknown profile is reported there, with the ones that exist)."""
    if text is None or not text.strip():
        return ANY
    stripped = text.strip()
    if stripped.upper().startswith("MIG-"):
        return UuidPrefix(stripped)
    m = _ADDRESS.fullmatch(stripped)
    if m is not None:
        return Address(stripped, int(m[1]), int(m[2]), None if m[3] is None else int(m[3]))
    return ProfileName(stripped)
