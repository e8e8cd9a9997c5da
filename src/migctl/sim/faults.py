"""Injected NVML failures and hardware-like latency for the simulator.

``MIGCTL_SIM_FAULTS`` holds rules separated by ``,`` or ``;``. A rule is::

    OP[:GPU][@N[+]]=ERROR

* ``OP``: an NVML function name (``nvmlDeviceCreateGpuInstanceWithPlacement``) or an alias:
  ``create-gi`` (both GPU-instance create calls), ``destroy-gi``, ``create-ci`` (both),
  ``destroy-ci``, ``set-mig-mode``, ``read`` (any query: not ``nvmlInit``/``nvmlShutdown``), ``any``.
* ``:GPU``: only calls on that GPU index.
* ``@N``: only the N-th matching call (counted per process from 1); ``@N+``: the N-th and all
  later ones. Without ``@``: every matching call.
* ``ERROR``: an ``NVML_ERROR_*`` name without the prefix (``INSUFFICIENT_RESOURCES``,
  ``IN_USE``, ``UNKNOWN``, ``TIMEOUT``...) or its number.

Examples: ``create-gi@3=INSUFFICIENT_RESOURCES`` (the 3rd create fails),
``destroy-gi=UNKNOWN`` (every destroy fails), ``read@1=UNKNOWN`` (the first query fails once, as
the seed's "if -lgip fails, run it again").

``MIGCTL_SIM_LATENCY`` is ``none`` (default), ``realistic`` (times measured on hardware, see
:data:`REALISTIC_S`), or a number that scales the realistic times (``0.1``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import pynvml

ALIASES: dict[str, frozenset[str]] = {
    "create-gi": frozenset({"nvmlDeviceCreateGpuInstance", "nvmlDeviceCreateGpuInstanceWithPlacement"}),
    "destroy-gi": frozenset({"nvmlGpuInstanceDestroy"}),
    "create-ci": frozenset(
        {"nvmlGpuInstanceCreateComputeInstance", "nvmlGpuInstanceCreateComputeInstanceWithPlacement"}
    ),
    "destroy-ci": frozenset({"nvmlComputeInstanceDestroy"}),
    "set-mig-mode": frozenset({"nvmlDeviceSetMigMode"}),
}
MUTATING = frozenset().union(*ALIASES.values())
#: Opening and closing the library: neither a query nor a change (``read`` leaves them alone).
LIFECYCLE = frozenset({"nvmlInit", "nvmlInitWithFlags", "nvmlShutdown"})

# Seconds per call with MIGCTL_SIM_LATENCY=realistic. From docs/reference/mig-reconfig-a100.csv
# (nvidia-smi on A100, n=300): one 7g create 52 ms and 7 creates 132 ms, both including the
# ~40 ms nvidia-smi start-up, so about 13 ms per GPU instance and a few ms per compute instance;
# destroying all instances 120-167 ms. A MIG mode change takes about 2 s, a GPU reset ~3 s.
REALISTIC_S: dict[str, float] = {
    "nvmlDeviceCreateGpuInstance": 0.013,
    "nvmlDeviceCreateGpuInstanceWithPlacement": 0.013,
    "nvmlGpuInstanceCreateComputeInstance": 0.004,
    "nvmlGpuInstanceCreateComputeInstanceWithPlacement": 0.004,
    "nvmlComputeInstanceDestroy": 0.006,
    "nvmlGpuInstanceDestroy": 0.018,
    "nvmlDeviceSetMigMode": 2.0,
    "simResetGpu": 3.0,
}


class FaultSpecError(ValueError):
    """MIGCTL_SIM_FAULTS or MIGCTL_SIM_LATENCY could not be read."""


_RULE = re.compile(r"^(?P<op>[A-Za-z_-]+)(?::(?P<gpu>\d+))?(?:@(?P<n>\d+)(?P<plus>\+)?)?=(?P<err>\w+)$")


def _error_code(text: str) -> int:
    if text.isdigit():
        return int(text)
    code = getattr(pynvml, f"NVML_ERROR_{text.upper()}", None)
    if not isinstance(code, int):
        raise FaultSpecError(f"unknown NVML error {text!r} (e.g. INSUFFICIENT_RESOURCES, IN_USE, UNKNOWN)")
    return code


@dataclass
class FaultRule:
    op: str
    gpu: int | None
    nth: int | None
    and_later: bool
    code: int
    seen: int = 0

    def matches_op(self, fn: str) -> bool:
        if self.op == "any":
            return True
        if self.op == "read":
            return fn not in MUTATING and fn not in LIFECYCLE and not fn.startswith("sim")
        return fn in ALIASES.get(self.op, frozenset({self.op}))


class Faults:
    """The parsed MIGCTL_SIM_FAULTS rules with their per-process call counters."""

    def __init__(self, text: str | None) -> None:
        self.rules: list[FaultRule] = []
        self._lock = threading.Lock()
        try:
            self._parse(text)
        except FaultSpecError as exc:
            raise FaultSpecError(f"MIGCTL_SIM_FAULTS={text!r}: {exc}") from None

    def _parse(self, text: str | None) -> None:
        for raw in re.split(r"[,;]", text or ""):
            raw = raw.strip()
            if not raw:
                continue
            m = _RULE.match(raw)
            if m is None:
                raise FaultSpecError(f"bad fault rule {raw!r}: expected OP[:GPU][@N[+]]=ERROR")
            op = m["op"]
            if not (op in ALIASES or op in ("read", "any") or op.startswith("nvml")):
                raise FaultSpecError(f"bad fault rule {raw!r}: unknown operation {op!r}")
            self.rules.append(
                FaultRule(
                    op=op,
                    gpu=int(m["gpu"]) if m["gpu"] else None,
                    nth=int(m["n"]) if m["n"] else None,
                    and_later=bool(m["plus"]),
                    code=_error_code(m["err"]),
                )
            )

    def check(self, fn: str, gpu: int | None) -> int | None:
        """The NVML error code this call must fail with, or ``None``."""
        if not self.rules:
            return None
        with self._lock:
            for rule in self.rules:
                if not rule.matches_op(fn) or (rule.gpu is not None and rule.gpu != gpu):
                    continue
                rule.seen += 1
                if rule.nth is None or rule.seen == rule.nth or (rule.and_later and rule.seen > rule.nth):
                    return rule.code
        return None


def latency_scale(text: str | None) -> float:
    """0 for ``none``, 1 for ``realistic``, else the number given."""
    value = (text or "none").strip().lower()
    if value in ("", "none", "0"):
        return 0.0
    if value == "realistic":
        return 1.0
    try:
        scale = float(value)
    except ValueError:
        raise FaultSpecError(f"MIGCTL_SIM_LATENCY={text!r}: expected none, realistic, or a scale such as 0.5") from None
    if scale < 0:
        raise FaultSpecError(f"MIGCTL_SIM_LATENCY={text!r}: the scale must not be negative")
    return scale
