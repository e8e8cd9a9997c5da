"""The shape of the simulated node's files, checked each time one is read from disk.

A file that passes can be used without a ``KeyError`` or ``TypeError`` anywhere in the
simulator; one that does not is reported (by :class:`migctl.sim.state.SimStateError`) with the
first thing found wrong, e.g. ``gis[1]: 'start' is missing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migctl.sim.catalog import models


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fields(where: str, obj: Any, spec: Mapping[str, tuple[type, ...]]) -> str | None:
    if not isinstance(obj, dict):
        return f"{where} is a {type(obj).__name__}, not an object"
    for key, types in spec.items():
        if key not in obj:
            return f"{where}: {key!r} is missing"
        value = obj[key]
        if isinstance(value, bool) and bool not in types:
            return f"{where}: {key!r} is {value!r}, expected {' or '.join(t.__name__ for t in types)}"
        if not isinstance(value, types):
            return f"{where}: {key!r} is {value!r}, expected {' or '.join(t.__name__ for t in types)}"
    return None


_INT: tuple[type, ...] = (int,)
_STR: tuple[type, ...] = (str,)
_LIST: tuple[type, ...] = (list,)
_DICT: tuple[type, ...] = (dict,)
_GPU: dict[str, tuple[type, ...]] = {
    "index": _INT,
    "model": _STR,
    "uuid": _STR,
    "bus_id": _STR,
    "mig": _DICT,
    "gis": _LIST,
    "procs": _LIST,
}
_MIG: dict[str, tuple[type, ...]] = {"current": _INT, "pending": _INT}
_GI: dict[str, tuple[type, ...]] = {"id": _INT, "profile": _INT, "start": _INT, "size": _INT, "cis": _LIST}
_CI: dict[str, tuple[type, ...]] = {"id": _INT, "profile": _INT, "start": _INT, "size": _INT, "uuid": _STR}
_PROC: dict[str, tuple[type, ...]] = {"pid": _INT, "ctime": (int, float), "mem_mib": _INT}
_NODE: dict[str, tuple[type, ...]] = {"spec": _STR, "models": _LIST, "driver_version": _STR, "fabric_manager": _DICT}
_FM: dict[str, tuple[type, ...]] = {"active": (bool,), "version": _STR}


def check_gpu(data: Any) -> str | None:
    """What is wrong with a ``gpu-N.json`` document, or ``None``."""
    problem = _fields("the GPU", data, _GPU) or _fields("mig", data["mig"], _MIG)
    if problem:
        return problem
    if data["model"] not in models():
        return f"'model' is {data['model']!r}, not a known GPU model"
    if data["bus_id"].count(":") != 2:
        return f"'bus_id' is {data['bus_id']!r}, not a PCI bus ID"
    for i, gi in enumerate(data["gis"]):
        problem = _fields(f"gis[{i}]", gi, _GI)
        if problem:
            return problem
        for j, ci in enumerate(gi["cis"]):
            problem = _fields(f"gis[{i}].cis[{j}]", ci, _CI)
            if problem:
                return problem
    for i, proc in enumerate(data["procs"]):
        problem = _fields(f"procs[{i}]", proc, _PROC)
        if problem:
            return problem
        for key in ("gi", "ci", "util"):
            if proc.get(key) is not None and not _is_int(proc[key]):
                return f"procs[{i}]: {key!r} is {proc[key]!r}, expected int or null"
    return None


def check_node(data: Any) -> str | None:
    """What is wrong with ``node.json``, or ``None``."""
    problem = _fields("the node", data, _NODE) or _fields("fabric_manager", data["fabric_manager"], _FM)
    if problem:
        return problem
    if not data["models"]:
        return "'models' is empty"
    for i, key in enumerate(data["models"]):
        if key not in models():
            return f"models[{i}] is {key!r}, not a known GPU model"
    return None
