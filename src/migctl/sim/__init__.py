"""A faithful simulator of MIG GPUs behind the same NVML boundary as the real driver.

>>> from migctl import sim
>>> nvml = sim.open("h20x8", state_dir="/tmp/migctl-doc")      # doctest: +SKIP
>>> nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(0))  # doctest: +SKIP
'NVIDIA H20'

``open`` returns an object with the ``pynvml`` module's functions, constants, structs and
errors, so the device layer cannot tell it from the driver. The node persists in the state
directory; every process that opens the same directory sees the same GPUs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from migctl.sim import engine
from migctl.sim.catalog import model, models
from migctl.sim.faults import Faults, FaultSpecError, latency_scale
from migctl.sim.nvml import SimNvml
from migctl.sim.state import Store

__all__ = ["SimNvml", "SimSpecError", "open", "parse_spec", "reset"]

DRIVER_VERSION = "570.172.08"
# Bus IDs of an HGX 8-GPU board, as nvidia-smi prints them.
HGX_BUS_IDS = ["18", "2A", "3A", "5D", "9A", "AB", "BA", "DB"]


class SimSpecError(ValueError):
    """A bad ``--sim`` SPEC, or one that differs from the node already stored."""


def parse_spec(spec: str) -> list[str]:
    """``"h100-80gbx4,a30x2"`` -> eight model keys, one per GPU, in index order."""
    keys: list[str] = []
    for part in spec.split(","):
        part = part.strip().lower()
        if not part:
            continue
        m = re.fullmatch(r"(.+?)(?:x(\d+))?", part)
        assert m is not None
        name, count = m[1], int(m[2] or 1)
        if name not in models():
            raise SimSpecError(f"unknown GPU model {name!r} in --sim {spec!r}; known models: {', '.join(models())}")
        if not 1 <= count <= 64:
            raise SimSpecError(f"--sim {spec!r}: a model's count must be 1..64, not {count}")
        keys.extend([name] * count)
    if not keys:
        raise SimSpecError("--sim needs a SPEC such as h20x8, a100-40gb or h100-80gbx4,a30x2")
    if len(keys) > 64:
        raise SimSpecError(f"--sim {spec!r}: at most 64 GPUs per node")
    return keys


def _canonical(spec: str) -> str:
    return ",".join(part.strip().lower() for part in spec.split(",") if part.strip())


def _store(state_dir: str | os.PathLike[str] | None) -> Store:
    if state_dir is None:
        from migctl.paths import state_dir as default_state_dir

        root = default_state_dir()
    else:
        root = Path(state_dir)
    return Store(root / "sim")


def reset(spec: str | None, state_dir: str | os.PathLike[str] | None = None) -> str:
    """Create the simulated node fresh (MIG off, no instances). Returns the spec used."""
    store = _store(state_dir)
    if spec is None:
        if not store.exists("node"):
            raise SimSpecError("no simulated node yet: give a SPEC, e.g. migctl --sim h20x8 sim reset")
        spec = str(store.read("node")["spec"])
    with store.lock("node"):
        _write_fresh(store, spec)
    return _canonical(spec)


def _write_fresh(store: Store, spec: str) -> None:
    keys = parse_spec(spec)
    store.remove_all()
    for index, key in enumerate(keys):
        bus = HGX_BUS_IDS[index] if index < len(HGX_BUS_IDS) else f"{0x40 + index:02X}"
        store.write(f"gpu-{index}", engine.new_gpu(index, model(key), f"00000000:{bus}:00.0"))
    store.write(
        "node",
        {
            "version": 1,
            "spec": _canonical(spec),
            "models": keys,
            "driver_version": DRIVER_VERSION,
            "fabric_manager": {"active": True, "version": DRIVER_VERSION},
        },
    )


def open(
    spec: str | None,
    state_dir: str | os.PathLike[str] | None = None,
    *,
    latency: str | None = None,
    faults: str | None = None,
) -> SimNvml:
    """Open (creating if needed) the simulated node described by ``spec``.

    ``spec`` ``None`` opens whatever node the state directory holds. A spec that differs from
    the stored node raises :class:`SimSpecError` naming ``migctl sim reset``. ``latency`` and
    ``faults`` default to ``MIGCTL_SIM_LATENCY`` and ``MIGCTL_SIM_FAULTS``.
    """
    store = _store(state_dir)
    if not store.exists("node"):
        if spec is None:
            raise SimSpecError("no simulated node yet: pass --sim SPEC (e.g. --sim h20x8)")
        parse_spec(spec)
        with store.lock("node"):
            if not store.exists("node"):
                _write_fresh(store, spec)
    stored = str(store.read("node")["spec"])
    if spec is not None and _canonical(spec) != stored:
        parse_spec(spec)
        raise SimSpecError(
            f"the simulated node in {store.root} is {stored!r}, not {_canonical(spec)!r}; "
            f"run 'migctl --sim {_canonical(spec)} sim reset' to replace it"
        )
    try:
        fault_rules = Faults(faults if faults is not None else os.environ.get("MIGCTL_SIM_FAULTS"))
        scale = latency_scale(latency if latency is not None else os.environ.get("MIGCTL_SIM_LATENCY"))
    except FaultSpecError as exc:
        raise SimSpecError(str(exc)) from None
    return SimNvml(store, fault_rules, scale)
