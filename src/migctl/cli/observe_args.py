"""Arguments of the live front ends: ``exporter --listen HOST:PORT`` and the intervals.

Pure string checks; every problem is a one-line :class:`~migctl.errors.UsageError` naming the
option and the fix (exit 2).
"""

from __future__ import annotations

import ipaddress
import math
import re

from migctl.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9400  # dcgm-exporter's port: a migctl exporter replaces it on a MIG node

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_FORMS = "use HOST:PORT, [IPv6]:PORT or PORT, e.g. 127.0.0.1:9400, 0.0.0.0:9400, [::1]:9400"


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:9400`` -> ``("127.0.0.1", 9400)``; ``9400`` alone listens on 127.0.0.1;
    ``[::1]:9400`` is IPv6; port 0 lets the OS choose one."""
    raw = text.strip()
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0 or raw[end + 1 : end + 2] != ":":
            raise UsageError(f"--listen {text!r}: an IPv6 address needs ']:PORT' after it", hint=_FORMS)
        host, port_text = raw[1:end], raw[end + 2 :]
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError(host)
        except ValueError:
            raise UsageError(f"--listen {text!r}: {host!r} is not an IPv6 address", hint=_FORMS) from None
    elif ":" in raw:
        host, _, port_text = raw.rpartition(":")
        if ":" in host:
            raise UsageError(f"--listen {text!r}: put an IPv6 address in brackets", hint=_FORMS)
        if not host:
            host = DEFAULT_HOST
        elif not _HOSTNAME.fullmatch(host):
            raise UsageError(f"--listen {text!r}: {host!r} is not a host name or address", hint=_FORMS)
    else:
        host, port_text = DEFAULT_HOST, raw
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {text!r}: {port_text!r} is not a port (0-65535)", hint=_FORMS)
    return host, int(port_text)


def check_seconds(option: str, value: float, *, least: float, most: float = 86400.0) -> float:
    """A positive, finite number of seconds within ``[least, most]``."""
    if not math.isfinite(value) or not least <= value <= most:
        raise UsageError(f"{option} {value:g}: give seconds between {least:g} and {most:g}")
    return value
