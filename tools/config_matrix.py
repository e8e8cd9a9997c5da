"""Apply every named config of NVIDIA's default mig-parted file on one simulated GPU of every
model in the catalog, and print the config x model matrix as a Markdown table.

    .venv/bin/python tools/config_matrix.py                    # the whole matrix
    .venv/bin/python tools/config_matrix.py --models h20,b200  # some models
    .venv/bin/python tools/config_matrix.py --file my.yaml --configs all-balanced

A cell is

* ``✓``  the config targets the model (``migctl.config.applies_to``) and was applied, and
  ``assert`` (``ops.check.check``) passes afterwards;
* ``✗ reason``  the config covers the model but cannot apply to it (it names a profile the
  model lacks, or does not fit); it was rejected before any change, and the GPU is verified
  unchanged;
* blank: no entry of the config covers the model (its ``device-filter`` excludes it, or the
  GPU is not MIG-capable), so apply leaves the GPU alone;
* ``FAIL ...``: a bug -- a targeted config did not apply, or a rejection changed the GPU.

Each model gets one fresh simulated GPU; the configs are applied one after the other in file
order, so every cell is also a transition from the previous config's layout. Exit status 0
when no cell is ``FAIL``. ``docs/layouts.md`` publishes the output.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migctl import sim
from migctl.config import applies_to
from migctl.device import Gpu, open_node
from migctl.errors import UsageError
from migctl.ops.apply import apply
from migctl.ops.check import check
from migctl.ops.files import load_config_file
from migctl.ops.plan import gpu_facts, plan_node
from migctl.sim.catalog import models

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILE = REPO / "src" / "migctl" / "data" / "mig-parted-config-default.yaml"


@dataclass(frozen=True)
class Cell:
    mark: str  # "✓", "✗", "" (not targeted) or "FAIL"
    reason: str = ""

    def text(self) -> str:
        return f"{self.mark} {self.reason}".strip()


def snapshot(gpu: Gpu) -> Any:
    """Everything apply could change on ``gpu``: mode, GIs (ID, profile, placement), CIs (UUIDs)."""
    mode = gpu.mig_mode()
    gis = tuple(
        (gi.id, gi.profile_id, gi.placement, tuple((ci.id, ci.profile, ci.uuid) for ci in gi.compute_instances()))
        for gi in gpu.gpu_instances()
    )
    return (mode, gis)


def _short(message: str) -> str:
    m = re.search(r"has no profile (\S+?);", message) or re.search(r"has no profile (\S+)", message)
    if m:
        return f"no {m[1]}"
    return message.split(": ")[-1][:60]


def model_column(spec_path: Path, names: list[str], key: str, root: Path) -> dict[str, Cell]:
    """Apply each config in ``names`` in turn on one fresh simulated GPU of model ``key``."""
    spec = load_config_file(spec_path)
    state = root / key
    os.environ["MIGCTL_STATE_DIR"] = str(state)  # the journal and host lock live there too
    sim.reset(key, state)
    node = open_node(sim=key, state_dir=str(state))
    out: dict[str, Cell] = {}
    try:
        gpu = node.gpus[0]
        for name in names:
            before = snapshot(gpu)
            targeted = applies_to(spec, name, [gpu_facts(gpu)])[0]
            try:
                plan = plan_node(node, spec, name, node.gpus, source=str(spec_path))
            except UsageError as exc:
                cell = Cell("✗", _short(exc.message))
            else:
                g = plan.gpus[0]
                if g.target is None:
                    cell = Cell("")
                elif g.refusal is not None:
                    cell = Cell("✗", "does not fit")
                else:
                    report = apply(node, plan, parallel=False)
                    after = plan_node(node, spec, name, node.gpus, source=str(spec_path))
                    diffs = {g.gpu: g.differences for g in check(after, node).gpus}[0]
                    if not report.ok or diffs:
                        detail = "; ".join(o.detail for o in report.gpus if o.detail) or "; ".join(diffs)
                        cell = Cell("FAIL", detail[:80])
                    elif any(g.changes for g in after.gpus):
                        cell = Cell("FAIL", "not idempotent: a second apply would change the GPU")
                    else:
                        cell = Cell("✓")
            if cell.mark in ("✗", "") and snapshot(gpu) != before:
                cell = Cell("FAIL", f"rejected but the GPU changed ({cell.reason})")
            if targeted != (cell.mark == "✓") and cell.mark != "FAIL":
                why = "targeted but not applied" if targeted else "applied but applies_to says not targeted"
                cell = Cell("FAIL", f"{why} ({cell.text()})")
            out[name] = cell
    finally:
        node.close()
    return out


def matrix(spec_path: Path, model_keys: list[str], configs: list[str] | None = None) -> dict[str, dict[str, Cell]]:
    """config -> model -> cell."""
    spec = load_config_file(spec_path)
    names = configs or spec.names()
    saved = os.environ.get("MIGCTL_STATE_DIR")
    try:
        with tempfile.TemporaryDirectory(prefix="migctl-matrix-") as tmp:
            columns = {key: model_column(spec_path, names, key, Path(tmp)) for key in model_keys}
    finally:
        if saved is None:
            os.environ.pop("MIGCTL_STATE_DIR", None)
        else:
            os.environ["MIGCTL_STATE_DIR"] = saved
    return {name: {key: columns[key][name] for key in model_keys} for name in names}


def render(cells: dict[str, dict[str, Cell]], model_keys: list[str], spec_path: Path) -> str:
    counts = Counter(c.mark for row in cells.values() for c in row.values())
    lines = [
        "| config | " + " | ".join(model_keys) + " |",
        "|---|" + "---|" * len(model_keys),
    ]
    for name, row in cells.items():
        lines.append(f"| `{name}` | " + " | ".join(row[k].text() for k in model_keys) + " |")
    lines.append("")
    lines.append(
        f"{len(cells)} configs from `{spec_path.name}` x {len(model_keys)} models: "
        f"{counts['✓']} ✓ (applied, assert passes), {counts['✗']} ✗ (rejected before any change), "
        f"{counts['']} not targeted (left alone), {counts['FAIL']} FAIL."
    )
    lines.append("")
    lines.append(
        "Models: "
        + "; ".join(f"`{k}` {models()[k].name} (`0x{models()[k].nvml_pci_device_id:08X}`)" for k in model_keys)
        + "."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="config_matrix.py")
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="mig-parted v1 config file")
    parser.add_argument("--models", help="comma-separated model keys (default: every model in the catalog)")
    parser.add_argument("--configs", help="comma-separated config names (default: every config in the file)")
    args = parser.parse_args(argv)
    keys = args.models.split(",") if args.models else list(models())
    unknown = [k for k in keys if k not in models()]
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(models())}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        cells = matrix(args.file, keys, args.configs.split(",") if args.configs else None)
    except UsageError as exc:
        print(f"config_matrix: {exc}", file=sys.stderr)
        return 2
    print(render(cells, keys, args.file))
    print(f"\n(computed in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 1 if any(c.mark == "FAIL" for row in cells.values() for c in row.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
