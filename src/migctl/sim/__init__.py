"""A faithful simulator of MIG GPUs behind the same NVML boundary as the real driver.

>>> from migctl import sim
>>> nvml = sim.open("h20x8", state_dir="/tmp/migctl-doc")      # doctest: +SKIP
>>> nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(0))  # doctest: +SKIP
'NVIDIA H20'

``open`` returns an object with the ``pynvml`` module's functions, constants, structs and
errors, so the device layer cannot tell it from the driver. ``open_control`` returns the
node's control plane (GPU reset, driver reload, processes and their load, the fabric manager).
The node persists in the state directory; every process that opens the same directory sees the
same GPUs.

The simulator shares no code with :mod:`migctl.core`: it is the oracle the planner is tested
against, so its overlap, capacity, engine-pool and placement rules are its own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from migctl.sim import engine
from migctl.sim.catalog import model, models
from migctl.sim.control import SimControl
from migctl.sim.driverfiles import MIG_MINORS
from migctl.sim.faults import Faults, FaultSpecError, latency_scale
from migctl.sim.node import SimNode
from migctl.sim.nvml import SimNvml
from migctl.sim.schema import check_gpu, check_node
from migctl.sim.state import SimStateError, Store

__all__ = ["SimControl", "SimNvml", "SimSpecError", "SimStateError", "open", "open_control", "parse_spec", "reset"]

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
    return Store(root / "sim", {"gpu-": check_gpu, "node": check_node})


def reset(spec: str | None, state_dir: str | os.PathLike[str] | None = None) -> str:
    """Create the simulated node fresh (MIG off, no instances). Returns the spec used.

    Without ``spec`` the stored node's spec is used; a node whose ``node.json`` is damaged
    needs the spec given again.
    """
    store = _store(state_dir)
    if spec is None:
        if not store.exists("node"):
            raise SimSpecError("no simulated node yet: give a SPEC, e.g. migctl --sim h20x8 sim reset")
        try:
            spec = str(store.read("node")["spec"])
        except SimStateError as exc:
            raise SimSpecError(f"{exc.message}; give its SPEC to replace it: migctl --sim SPEC sim reset") from None
    with store.lock("node"):
        _write_fresh(store, spec)
    return _canonical(spec)


def _write_fresh(store: Store, spec: str) -> None:
    keys = parse_spec(spec)
    store.remove_all()
    for index, key in enumerate(keys):
        bus = HGX_BUS_IDS[index] if index < len(HGX_BUS_IDS) else f"{0x40 + index:02X}"
        with store.replacing(f"gpu-{index}"):
            store.write(f"gpu-{index}", engine.new_gpu(index, model(key), f"00000000:{bus}:00.0"))
    SimNode(store, Faults(None), 0.0).files.create(list(range(len(keys))), any(model(k).nvswitch for k in keys))
    with store.replacing("node", lock=False):  # the caller holds the node lock
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


def _open_node(
    spec: str | None, state_dir: str | os.PathLike[str] | None, latency: str | None, faults: str | None
) -> SimNode:
    store = _store(state_dir)
    if spec is not None:
        store.spec_hint = _canonical(spec)
    if not store.exists("node"):
        if spec is None:
            raise SimSpecError("no simulated node yet: pass --sim SPEC (e.g. --sim h20x8)")
        parse_spec(spec)
        with store.lock("node"):
            if not store.exists("node"):
                _write_fresh(store, spec)
    stored = str(store.read("node")["spec"])
    store.spec_hint = stored
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
    node = SimNode(store, fault_rules, scale)
    if not (node.files.root / MIG_MINORS).is_file():  # a node made before the driver files existed
        with store.lock("node"):
            keys = [str(k) for k in node.node()["models"]]
            node.files.create(list(range(len(keys))), any(model(k).nvswitch for k in keys))
    return node


def open(
    spec: str | None,
    state_dir: str | os.PathLike[str] | None = None,
    *,
    latency: str | None = None,
    faults: str | None = None,
) -> SimNvml:
    """Open (creating if needed) the simulated node described by ``spec``: its NVML.

    ``spec`` ``None`` opens whatever node the state directory holds. A spec that differs from
    the stored node raises :class:`SimSpecError` naming ``migctl sim reset``; a damaged node
    file raises :class:`SimStateError`. ``latency`` and ``faults`` default to
    ``MIGCTL_SIM_LATENCY`` and ``MIGCTL_SIM_FAULTS``.
    """
    return SimNvml(_open_node(spec, state_dir, latency, faults))


def open_control(
    spec: str | None, state_dir: str | os.PathLike[str] | None = None, *, faults: str | None = None
) -> SimControl:
    """The control plane of the simulated node (opened as :func:`open` does)."""
    return SimControl(_open_node(spec, state_dir, None, faults))


def open_both(
    spec: str | None,
    state_dir: str | os.PathLike[str] | None = None,
    *,
    latency: str | None = None,
    faults: str | None = None,
) -> tuple[SimNvml, SimControl]:
    """The node's NVML and its control plane, sharing one open node (and its fault counters)."""
    node = _open_node(spec, state_dir, latency, faults)
    return SimNvml(node), SimControl(node)
