"""Disruption: how many existing GPU instances each method destroys to go from layout A to B.

For H100-80GB and H20, every ordered pair of the named layouts NVIDIA's default mig-parted
file has for the model (the configs that ``migctl.config.applies_to`` the model, with MIG
enabled), plus seeded random layouts at random placements, compared three ways:

* **migctl**: ``core.planner.plan`` (keeps what it can, creates at explicit placements);
* **wipe**: ``wipe_plan`` (benchmarks/_wipe.py), what mig-parted does (any count differs: destroy all);
Three kinds of pairs: named (every ordered pair of the file's layouts), random (current and
target drawn independently), and edits (the target is the current layout with one instance
replaced by another profile: the everyday "change one partition" request).

* **minimum**: an exhaustive search written here, independent of the planner: try every
  subset of the existing instances to keep, largest first, and check (by backtracking over
  legal placements with the geometry's own rules) that the rest of the target fits around
  it. The first subset that works gives the true minimum number destroyed.

Target: migctl destroys exactly the minimum in every case.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from _common import print_table  # benchmarks/_common.py
from _wipe import wipe_plan  # benchmarks/_wipe.py: the mig-parted baseline
from migctl.config import GpuFacts, applies_to
from migctl.config.select import select
from migctl.core.geometry import GpuGeometry, Occupant
from migctl.core.layout import ExistingInstance, Plan, TargetInstance
from migctl.core.planner import plan
from migctl.device.simulated import model_geometry
from migctl.ops.files import load_config_file
from migctl.sim.catalog import model

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "src" / "migctl" / "data" / "mig-parted-config-default.yaml"
MODELS = ("h100-80gb", "h20")
SEED = 20240611


# -- the independent oracle --------------------------------------------------------------


def placeable(geometry: GpuGeometry, occupants: list[Occupant], profile_ids: Sequence[int]) -> bool:
    """Can instances of ``profile_ids`` all be created next to ``occupants``? (Backtracking;
    identical profiles take increasing starts, so each set of placements is tried once.)"""
    todo = sorted(profile_ids, key=lambda pid: -geometry.by_id(pid).placement_size)

    def go(k: int, placed: list[Occupant], last_start: int) -> bool:
        if k == len(todo):
            return True
        prof = geometry.by_id(todo[k])
        same_as_previous = k > 0 and todo[k - 1] == todo[k]
        for p in prof.placements:
            if same_as_previous and p.start <= last_start:
                continue
            if geometry.why_not(placed, prof, p) is None and go(k + 1, [*placed, Occupant(prof.id, p)], p.start):
                return True
        return False

    return go(0, list(occupants), -1)


def minimum_destroyed(geometry: GpuGeometry, current: Sequence[ExistingInstance], target: Sequence[int]) -> int:
    """The fewest existing instances to destroy so that ``target`` (profile IDs) can be reached."""
    want = Counter(target)
    for kept_count in range(len(current), -1, -1):
        for keep in combinations(current, kept_count):
            have = Counter(e.profile_id for e in keep)
            if any(n > want[pid] for pid, n in have.items()):
                continue
            rest = list((want - have).elements())
            if placeable(geometry, [Occupant(e.profile_id, e.placement) for e in keep], rest):
                return len(current) - kept_count
    raise ValueError("the target does not fit even an empty GPU")


# -- layouts -----------------------------------------------------------------------------


def named_layouts(spec_path: Path, key: str) -> dict[str, tuple[TargetInstance, ...]]:
    """Config name -> its target on model ``key`` (configs that apply to it, MIG enabled)."""
    spec = load_config_file(spec_path)
    m = model(key)
    facts = [GpuFacts(0, m.nvml_pci_device_id, model_geometry(m.key), m.name)]
    out = {}
    for name in spec.names():
        if not applies_to(spec, name, facts)[0]:
            continue
        target = select(spec, name, facts).targets[0]
        if target.mig_enabled:
            out[name] = target.instances
    return out


def realize(geometry: GpuGeometry, target: Sequence[TargetInstance]) -> list[ExistingInstance]:
    """The instances a GPU holds after applying ``target`` to an empty GPU with migctl."""
    p = plan(geometry, [], target)
    assert isinstance(p, Plan), p
    return [ExistingInstance(i + 1, c.profile_id, c.placement, c.compute) for i, c in enumerate(p.create)]


def random_layout(geometry: GpuGeometry, rng: random.Random) -> list[ExistingInstance]:
    """A random valid set of instances at random legal placements (as if made by hand)."""
    placed: list[Occupant] = []
    goal = rng.randint(1, 7)
    for _ in range(60):
        if len(placed) >= goal:
            break
        prof = rng.choice(geometry.profiles)
        free = geometry.free_placements(placed, prof)
        if free:
            placed.append(Occupant(prof.id, rng.choice(free)))
    return [
        ExistingInstance(i + 1, o.profile_id, o.placement, (geometry.by_id(o.profile_id).name,))
        for i, o in enumerate(placed)
    ]


def edited(geometry: GpuGeometry, current: list[ExistingInstance], rng: random.Random) -> list[TargetInstance]:
    """``current``'s profiles with one instance swapped for another profile (still valid)."""
    ids = [e.profile_id for e in current]
    for _ in range(100):
        changed = list(ids)
        changed[rng.randrange(len(changed))] = rng.choice(geometry.profiles).id
        if changed != ids and placeable(geometry, [], changed):
            return [TargetInstance(pid) for pid in changed]
    return [TargetInstance(pid) for pid in ids[:-1]]  # no swap fits: drop one instance instead


# -- the comparison ----------------------------------------------------------------------


@dataclass
class Tally:
    pairs: int = 0
    migctl: list[int] = field(default_factory=list)
    wipe: list[int] = field(default_factory=list)
    minimum: list[int] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def add(
        self, label: str, geometry: GpuGeometry, current: list[ExistingInstance], target: Sequence[TargetInstance]
    ) -> None:
        ours = plan(geometry, current, target)
        theirs = wipe_plan(geometry, current, target)
        assert isinstance(ours, Plan), f"{label}: migctl refused: {ours}"
        assert isinstance(theirs, Plan), f"{label}: wipe refused: {theirs}"
        best = minimum_destroyed(geometry, current, [t.profile_id for t in target])
        self.pairs += 1
        self.migctl.append(len(ours.destroy))
        self.wipe.append(len(theirs.destroy))
        self.minimum.append(best)
        if len(ours.destroy) != best:
            self.mismatches.append(f"{label}: migctl destroys {len(ours.destroy)}, minimum {best}")


def _cell(values: list[int]) -> str:
    return f"{sum(values)} / {statistics.mean(values):.2f}" if values else "-"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    random_pairs = 40 if quick else 400
    rows = []
    failures: list[str] = []
    started = time.perf_counter()
    for key in MODELS:
        geometry = model_geometry(key)
        layouts = named_layouts(DEFAULT_FILE, key)
        if quick:
            layouts = dict(list(layouts.items())[:6])
        named = Tally()
        for a, b in ((a, b) for a in layouts for b in layouts if a != b):
            named.add(f"{key} {a} -> {b}", geometry, realize(geometry, layouts[a]), layouts[b])
        rng = random.Random(f"{SEED}-{key}")
        rand = Tally()
        for i in range(random_pairs):
            current = random_layout(geometry, rng)
            target = [TargetInstance(e.profile_id) for e in random_layout(geometry, rng)]
            rand.add(f"{key} random pair {i}", geometry, current, target)
        edits = Tally()
        for i in range(random_pairs):
            current = random_layout(geometry, rng)
            edits.add(f"{key} edit {i}", geometry, current, edited(geometry, current, rng))
        kinds = (
            (named, f"named ({len(layouts)} layouts)"),
            (rand, f"random (seed {SEED})"),
            (edits, "edit: one instance replaced"),
        )
        for t, kind in kinds:
            fewer = sum(1 for m, w in zip(t.migctl, t.wipe, strict=True) if m < w)
            rows.append(
                (
                    key,
                    kind,
                    t.pairs,
                    _cell(t.migctl),
                    _cell(t.wipe),
                    _cell(t.minimum),
                    "yes" if not t.mismatches else "NO",
                    f"{fewer}",
                    f"{sum(t.wipe) / max(sum(t.migctl), 1):.1f}x",
                )
            )
            failures += t.mismatches
    header = (
        "model",
        "layouts",
        "pairs",
        "migctl destroyed (total / mean)",
        "wipe = mig-parted (total / mean)",
        "true minimum (total / mean)",
        "migctl = minimum in every pair",
        "pairs where wipe destroys more",
        "wipe / migctl",
    )
    print_table(header, rows)
    print(f"\n({time.perf_counter() - started:.1f} s; default config file: {DEFAULT_FILE.name})")
    for line in failures[:20]:
        print("MISMATCH:", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
