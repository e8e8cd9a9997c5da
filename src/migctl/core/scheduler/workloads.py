"""Workload tables: measured iteration times per MIG profile, and memory needs, as typed records.

Pure parsing of CSV *text* (the caller reads the file; see :mod:`migctl.data` for the tables
migctl ships). Two tables, joined on ``(model, batch)``:

* the scaling table (``mig-scaling-a100.csv``): ``model,batch`` then one ``<profile>_ms`` column
  per MIG profile (milliseconds per training iteration measured on that profile; empty when
  the job did not run there, i.e. it did not fit in the slice's memory), then derived
  ``speedup_*`` columns, which are ignored here;
* the memory table (``mig-memory-a100.csv``): ``model,batch,footprint_mib,memory_mib,
  memory_source``: the memory a job needs, and how that number was obtained.

A :class:`Workload` turns the times into relative speeds (:meth:`Workload.speeds`): the speed
on a profile is ``t_reference / t_profile``, so with the largest measured profile as the
reference a job's work is simply its run time on that profile.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Workload", "WorkloadTableError", "find_workload", "parse_workloads"]


class WorkloadTableError(ValueError):
    """A workload table is malformed (names the row and column)."""


@dataclass(frozen=True)
class Workload:
    """One model at one batch size: measured iteration times and its memory need."""

    model: str
    batch: int
    iteration_ms: tuple[tuple[str, float], ...]  # (profile name, ms per iteration), measured only
    memory_mib: int
    footprint_mib: int | None = None
    memory_source: str = ""

    @property
    def key(self) -> str:
        return f"{self.model}:{self.batch}"

    def speeds(self, reference: str | None = None) -> tuple[tuple[str, float], ...]:
        """Relative speed per measured profile: ``t_reference / t_profile``.

        ``reference`` defaults to the measured profile with the most compute slices (7g on an
        A100), so every speed is at most about 1 and a job's work is its run time there.
        """
        if not self.iteration_ms:
            return ()
        times = dict(self.iteration_ms)
        if reference is None:
            reference = max(times, key=lambda name: (_slices(name), -times[name]))
        if reference not in times:
            raise KeyError(f"{self.key} has no time measured on {reference}; measured: {', '.join(times)}")
        ref = times[reference]
        return tuple((name, round(ref / ms, 6)) for name, ms in self.iteration_ms)


def _slices(name: str) -> int:
    head = name.split("g.", 1)[0]
    return int(head) if head.isdigit() else 0


def _rows(text: str, what: str, required: Iterable[str]) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    missing = [c for c in required if c not in fields]
    if missing:
        raise WorkloadTableError(f"{what}: missing column(s) {', '.join(missing)} (has {', '.join(fields)})")
    return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise WorkloadTableError(f"{what}: {value!r} is not a whole number") from None


def parse_workloads(scaling_csv: str, memory_csv: str) -> dict[str, Workload]:
    """Join the scaling and memory tables; keys are ``"model:batch"``.

    Every scaling row needs a memory row and at least one measured time.
    """
    scaling = _rows(scaling_csv, "scaling table", ("model", "batch"))
    memory = _rows(memory_csv, "memory table", ("model", "batch", "memory_mib"))
    needs: dict[tuple[str, int], Mapping[str, str]] = {}
    for i, row in enumerate(memory, start=2):
        needs[(row["model"].lower(), _int(row["batch"], f"memory table line {i}, batch"))] = row
    table: dict[str, Workload] = {}
    for i, row in enumerate(scaling, start=2):
        model = row["model"].lower()
        batch = _int(row["batch"], f"scaling table line {i}, batch")
        times: list[tuple[str, float]] = []
        for col, value in row.items():
            if not col.endswith("_ms") or not value:
                continue
            try:
                ms = float(value)
            except ValueError:
                raise WorkloadTableError(f"scaling table line {i}, {col}: {value!r} is not a number") from None
            if ms <= 0:
                raise WorkloadTableError(f"scaling table line {i}, {col}: times must be positive")
            times.append((col.removesuffix("_ms"), ms))
        if not times:
            raise WorkloadTableError(f"scaling table line {i}: {model}:{batch} has no measured time")
        need = needs.get((model, batch))
        if need is None:
            raise WorkloadTableError(f"memory table: no row for {model}:{batch}")
        footprint = need.get("footprint_mib", "")
        w = Workload(
            model=model,
            batch=batch,
            iteration_ms=tuple(times),
            memory_mib=_int(need["memory_mib"], f"memory table {model}:{batch}, memory_mib"),
            footprint_mib=_int(footprint, f"memory table {model}:{batch}, footprint_mib") if footprint else None,
            memory_source=need.get("memory_source", ""),
        )
        table[w.key] = w
    return table


def find_workload(table: Mapping[str, Workload], model: str, batch: int | None = None) -> Workload:
    """The table row for ``model`` (and ``batch``; without it, the model's smallest batch).

    ``KeyError`` says which models and batches the table has.
    """
    name = model.strip().lower()
    rows = sorted((w for w in table.values() if w.model == name), key=lambda w: w.batch)
    if not rows:
        models = sorted({w.model for w in table.values()})
        raise KeyError(f"no workload named {model!r} in the speed table (it has: {', '.join(models)})")
    if batch is None:
        return rows[0]
    for w in rows:
        if w.batch == batch:
            return w
    sizes = ", ".join(str(w.batch) for w in rows)
    raise KeyError(f"the speed table has {name} at batch sizes {sizes}, not {batch}")
