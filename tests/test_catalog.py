"""The simulator's GPU catalog (``src/migctl/sim/data/catalog.json``) against the reference.

* every value the reference tables observed is the catalog's value, and every ``?`` / ``N*``
  value is named in the entry's ``inferred`` list (and nothing observed is flagged inferred
  except where the reference's own notes say the value was assumed);
* each model's geometry holds what real GPUs hold: the smallest profile at its instance count,
  one full-GPU instance, every profile alone, one ``+me`` instance at most, and every layout of
  NVIDIA's default mig-parted config that targets the model (a brute-force placement search
  written here, independent of any planner, then replayed through ``GpuGeometry.can_place``).

The reference's observed rows are copied to ``tests/data/gpu-profiles.json`` (see its README).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any

import pytest
import yaml

from migctl.core.geometry import Engines, GpuGeometry, Occupant
from migctl.device.simulated import model_geometry
from migctl.ops.files import NVIDIA_DEFAULT_CONFIG
from migctl.sim.catalog import GiProfileSpec, ModelSpec, Placement, model, models

REFERENCE = Path(__file__).resolve().parent / "data"  # a copy of tests/data/gpu-profiles.json

EXPECTED_KEYS = [
    "a100-40gb",
    "a100-80gb",
    "a30",
    "h100-80gb",
    "h100-nvl",
    "h100-96gb",
    "h200",
    "h20",
    "b200",
    "gb200",
    "rtx-pro-6000",
    "l40s",
]
MIG_KEYS = [k for k in EXPECTED_KEYS if k != "l40s"]

# gpu-profiles.json section -> catalog key (sections without a key: H100 PCIe, GH200 144GB)
REFERENCE_SECTIONS = {
    "A100-SXM4-40GB / A100-PCIE-40GB": "a100-40gb",
    "A100-80GB (SXM4 / PCIe)": "a100-80gb",
    "A30-24GB": "a30",
    "H100-80GB SXM5 (NVIDIA H100 80GB HBM3)": "h100-80gb",
    "H100 NVL / H100 PCIe 94GB (also H800 NVL)": "h100-nvl",
    "GH200 (H100 96GB on GH200 480GB)": "h100-96gb",
    "H200 141GB (SXM5 and NVL)": "h200",
    "H20 96GB (0x232910DE)": "h20",
    "B200 180GB (0x290110DE)": "b200",
    "GB200 (HGX, 0x294110DE)": "gb200",
    "RTX PRO 6000 Blackwell Server Edition (also Workstation / Max-Q, 96GB)": "rtx-pro-6000",
}
# the columns of a gpu-profiles.json row after the name, as catalog fields
ROW_FIELDS = ("id", "instances", "memory_mib", "p2p", "sm", "dec", "enc", "ce", "jpeg", "ofa")
GI_FIELDS = {*ROW_FIELDS, "placements", "nvml_enum", "slices", "name"}
CI_FIELDS = {"id", "name", "slices", "instances", "sm", "ce", "dec", "enc", "jpeg", "ofa", "default", "placements"}

# Values the reference prints without a mark but its notes call assumed: the catalog may (and
# does) flag them inferred. -lgipp was not observed for these models (mig-hardware.md 1.4 and
# the A100-80GB sources line) ...
LGIPP_ASSUMED = {"a100-80gb", "h100-96gb", "h200", "h20", "b200", "gb200"}
# ... and these rows were never captured at all (only names are known; tables' notes).
ROWS_NOT_CAPTURED = {"h20": {15, 14, 9, 5, 0}, "b200": {9, 5, 0}, "gb200": {9, 5, 0}}


@pytest.fixture(scope="module")
def reference() -> Path:
    return REFERENCE


@pytest.fixture(scope="module")
def profile_tables(reference: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reference / "gpu-profiles.json").read_text("utf-8"))
    return data


def _mig_models() -> list[ModelSpec]:
    return [models()[k] for k in MIG_KEYS]


def _not_observed(value: object) -> bool:
    return value is None or value == "?" or (isinstance(value, str) and value.endswith("*"))


def _parse_lgipp(text: str) -> tuple[Placement, ...]:
    m = re.fullmatch(r"\{([\d,]+)\}:(\d+)", text.strip())
    assert m, f"unparseable -lgipp text {text!r}"
    size = int(m.group(2))
    return tuple(Placement(int(s), size) for s in m.group(1).split(","))


# --------------------------------------------------------------------------- the catalog itself


def test_catalog_has_exactly_the_expected_models() -> None:
    assert list(models()) == EXPECTED_KEYS


def test_model_lookup_is_case_insensitive_and_names_known_keys() -> None:
    assert model(" H20 ").key == "h20"
    with pytest.raises(KeyError, match="a100-40gb"):
        model("v100")


def test_model_level_facts() -> None:
    expect = {
        # key: (name, pci id, arch, max instances, span, nvswitch)
        "a100-40gb": ("NVIDIA A100-SXM4-40GB", 0x20B0, "ampere", 7, 8, True),
        "a100-80gb": ("NVIDIA A100-SXM4-80GB", 0x20B2, "ampere", 7, 8, True),
        "a30": ("NVIDIA A30", 0x20B7, "ampere", 4, 4, False),
        "h100-80gb": ("NVIDIA H100 80GB HBM3", 0x2330, "hopper", 7, 8, True),
        "h100-nvl": ("NVIDIA H100 NVL", 0x2321, "hopper", 7, 8, False),
        "h100-96gb": ("NVIDIA GH200 480GB", 0x2342, "hopper", 7, 8, False),
        "h200": ("NVIDIA H200", 0x2335, "hopper", 7, 8, True),
        "h20": ("NVIDIA H20", 0x2329, "hopper", 7, 8, True),
        "b200": ("NVIDIA B200", 0x2901, "blackwell", 7, 8, True),
        "gb200": ("NVIDIA GB200", 0x2941, "blackwell", 7, 8, True),
        "rtx-pro-6000": ("NVIDIA RTX PRO 6000 Blackwell Server Edition", 0x2BB5, "blackwell", 4, 12, False),
        "l40s": ("NVIDIA L40S", 0x26B9, "ada", 0, 0, False),
    }
    for key, (name, pci, arch, max_inst, span, nvswitch) in expect.items():
        m = models()[key]
        assert (m.name, m.pci_device_id, m.arch, m.max_instances, m.span, m.nvswitch) == (
            name,
            pci,
            arch,
            max_inst,
            span,
            nvswitch,
        ), key
        assert m.nvml_pci_device_id == (pci << 16) | 0x10DE
        assert m.mig_capable == (key != "l40s")
        assert m.source, f"{key}: no source"
        assert m.memory_mib > 0
        assert m.sm > 0
        assert set(m.inferred) <= {"memory_mib", "sm", "pci_device_id", "name"}, key
    assert models()["h20"].nvml_pci_device_id == 0x232910DE
    assert models()["a100-40gb"].resets_to_enable
    assert not models()["h100-80gb"].resets_to_enable


def test_not_mig_capable_model_has_no_profiles() -> None:
    l40s = models()["l40s"]
    assert not l40s.mig_capable
    assert l40s.gi_profiles == ()
    assert l40s.full_profile is None
    assert l40s.engine_totals is None
    assert model_geometry(l40s.key).profiles == ()


@pytest.mark.parametrize("key", MIG_KEYS)
def test_profile_ids_and_enums_are_unique(key: str) -> None:
    m = models()[key]
    ids = [p.id for p in m.gi_profiles]
    enums = [p.nvml_enum for p in m.gi_profiles]
    names = [p.name for p in m.gi_profiles]
    assert len(ids) == len(set(ids)), ids
    assert len(enums) == len(set(enums)), enums
    assert len(names) == len(set(names)), names
    for p in m.gi_profiles:
        assert m.gi_by_id(p.id) is p
        assert m.gi_by_enum(p.nvml_enum) is p


@pytest.mark.parametrize("key", MIG_KEYS)
def test_profile_shapes_are_consistent(key: str) -> None:
    m = models()[key]
    geometry = model_geometry(m.key)
    assert geometry.span == m.span
    full = m.full_profile
    assert full is not None
    assert full.placements == (Placement(0, m.span),)
    assert full.memory_mib <= m.memory_mib
    assert m.engine_totals == full.engines
    for p in m.gi_profiles:
        assert not p.name.startswith("MIG "), p.name
        assert re.match(rf"{p.slices}g\.\d+gb", p.name), p.name
        assert p.placements, p.name
        assert len({pl.size for pl in p.placements}) == 1, p.name
        assert all(pl.end <= m.span for pl in p.placements), p.name
        assert 1 <= p.instances <= len(p.placements), p.name
        assert p.memory_mib <= full.memory_mib, p.name
        assert p.sm <= full.sm, p.name
        assert p.engines.within(full.engines), p.name
        assert set(p.inferred) <= GI_FIELDS, (p.name, p.inferred)
    assert max(p.instances for p in m.gi_profiles) == m.max_instances


def test_nvml_enum_mapping() -> None:
    eight = {19: 0, 20: 7, 15: 9, 14: 1, 9: 2, 5: 3, 0: 4}
    for key in MIG_KEYS:
        if models()[key].span == 8:
            assert {p.id: p.nvml_enum for p in models()[key].gi_profiles} == eight, key
    assert {p.id: p.nvml_enum for p in models()["a30"].gi_profiles} == {14: 0, 21: 7, 5: 1, 6: 8, 0: 3}
    assert {p.id: p.nvml_enum for p in models()["rtx-pro-6000"].gi_profiles} == {
        14: 0x0,
        21: 0x7,
        47: 0xA,
        65: 0xF,
        67: 0xD,
        5: 0x1,
        35: 0xB,
        64: 0x10,
        66: 0xE,
        0: 0x3,
        32: 0xC,
    }


def test_h20_1g_row_as_seen_on_the_seed_server() -> None:
    h20 = models()["h20"]
    p = model_geometry(h20.key).by_name("MIG 1g.12gb")
    assert (p.id, p.instance_count, p.memory_mib, p.sm) == (19, 7, 12032, 8)
    spec = h20.gi_by_id(19)
    assert spec is not None
    assert {"id", "instances", "memory_mib", "sm", "dec", "enc"}.isdisjoint(spec.inferred)
    me = h20.gi_by_id(20)
    assert me is not None
    assert (me.name, me.instances, me.memory_mib, me.ofa) == ("1g.12gb+me", 1, 12032, 1)


# --------------------------------------------------------------------------- against the reference


def test_reference_sections_exist(profile_tables: dict[str, Any]) -> None:
    missing = set(REFERENCE_SECTIONS) - set(profile_tables)
    assert not missing, f"reference sections renamed or gone: {sorted(missing)}"


def _reference_rows(tables: dict[str, Any]) -> Iterator[tuple[str, GiProfileSpec, list[Any], str | None]]:
    for section, key in REFERENCE_SECTIONS.items():
        entry = tables[section]
        m = models()[key]
        ref_names = [row[0] for row in entry["rows"]]
        assert sorted(ref_names) == sorted(p.name for p in m.gi_profiles), key
        for row in entry["rows"]:
            spec = next(p for p in m.gi_profiles if p.name == row[0])
            lgipp = (entry.get("lgipp") or {}).get(str(row[1]))
            yield key, spec, row, lgipp


def _catalog_value(spec: GiProfileSpec, field: str) -> object:
    return getattr(spec, field)


def test_observed_values_match_and_unknown_ones_are_flagged(profile_tables: dict[str, Any]) -> None:
    problems: list[str] = []
    for key, spec, row, lgipp in _reference_rows(profile_tables):
        where = f"{key} {spec.name}"
        for field, ref in zip(ROW_FIELDS, row[1:], strict=True):
            if _not_observed(ref):
                if field not in spec.inferred:
                    problems.append(f"{where}: {field} is {ref!r} in the reference but not flagged inferred")
                continue
            if field == "memory_mib":
                ok = f"{spec.memory_mib / 1024:.2f}" == f"{float(ref):.2f}"
            elif field == "p2p":
                ok = spec.p2p == (ref == "Yes")
            else:
                ok = _catalog_value(spec, field) == ref
            if not ok:
                problems.append(f"{where}: {field} = {_catalog_value(spec, field)!r}, reference {ref!r}")
        if lgipp is None or _not_observed(lgipp):
            if "placements" not in spec.inferred:
                problems.append(f"{where}: placements not in the reference but not inferred")
        elif spec.placements != _parse_lgipp(lgipp):
            problems.append(f"{where}: placements {spec.placements} != -lgipp {lgipp}")
    assert not problems, "\n".join(problems)


def test_observed_values_are_not_flagged_inferred(profile_tables: dict[str, Any]) -> None:
    problems: list[str] = []
    for key, spec, row, _ in _reference_rows(profile_tables):
        if spec.id in ROWS_NOT_CAPTURED.get(key, set()):
            continue
        observed = {f for f, v in zip(ROW_FIELDS, row[1:], strict=True) if not _not_observed(v)}
        if key not in LGIPP_ASSUMED:
            observed.add("placements")
        wrongly = observed & set(spec.inferred)
        if wrongly:
            problems.append(f"{key} {spec.name}: observed {sorted(wrongly)} flagged inferred")
    assert not problems, "\n".join(problems)


def test_fully_captured_models_flag_nothing_inferred(profile_tables: dict[str, Any]) -> None:
    for key, spec, _, _ in _reference_rows(profile_tables):
        if key in ("rtx-pro-6000", "a30", "a100-40gb", "h100-80gb", "h100-nvl"):
            assert spec.inferred == (), (key, spec.name, spec.inferred)


# --------------------------------------------------------------------------- compute instances


@pytest.mark.parametrize("key", MIG_KEYS)
def test_every_gi_profile_has_exactly_one_default_ci(key: str) -> None:
    for p in models()[key].gi_profiles:
        defaults = [c for c in p.ci_profiles if c.default]
        assert len(defaults) == 1, (key, p.name)
        d = defaults[0]
        assert p.default_ci is d
        assert d.name == p.name
        assert d.slices == p.slices
        assert d.instances == 1
        assert d.sm == p.sm
        assert d.placements == (Placement(0, d.placements[0].size),)


@pytest.mark.parametrize("key", MIG_KEYS)
def test_ci_profiles_follow_the_observed_scheme(key: str) -> None:
    expected_ids = {1: [0], 2: [0, 1], 3: [0, 1, 2], 4: [0, 1, 3], 7: [0, 1, 2, 3, 4]}
    default_ids = {1: 0, 2: 1, 3: 2, 4: 3, 7: 4}
    for p in models()[key].gi_profiles:
        ids = [c.id for c in p.ci_profiles]
        assert len(ids) == len(set(ids)), (key, p.name)
        if p.nvml_enum == 9 and p.placement_size == 2:  # 1_SLICE_REV2: the double-memory 1g
            assert ids == [7], (key, p.name)
        else:
            assert ids == expected_ids[p.slices], (key, p.name)
            assert p.default_ci.id == default_ids[p.slices], (key, p.name)
        cts_span = p.default_ci.placements[0].size
        for c in p.ci_profiles:
            assert set(c.inferred) <= CI_FIELDS, (key, p.name, c.inferred)
            assert c.slices * c.instances <= p.slices, (key, c.name)
            assert c.instances <= len(c.placements), (key, c.name)
            assert all(pl.end <= cts_span for pl in c.placements), (key, c.name)
            assert c.sm <= p.sm, (key, c.name)
            assert (c.ce, c.dec, c.enc, c.jpeg, c.ofa) == (p.ce, p.dec, p.enc, p.jpeg, p.ofa)
            if not c.default:
                assert c.name == f"{c.slices}c.{p.name}", (key, c.name)


def test_ci_facts_observed_in_mig_hardware_1_6() -> None:
    def ci(key: str, gi: int, ci_id: int) -> Any:
        spec = models()[key].gi_by_id(gi)
        assert spec is not None
        found = spec.ci_by_id(ci_id)
        assert found is not None, (key, gi, ci_id)
        return found

    a100 = models()["a100-40gb"]
    g3 = a100.gi_by_id(9)
    assert g3 is not None
    assert [(c.name, c.id, c.instances, c.default) for c in g3.ci_profiles] == [
        ("1c.3g.20gb", 0, 3, False),
        ("2c.3g.20gb", 1, 1, False),
        ("3g.20gb", 2, 1, True),
    ]
    g4 = a100.gi_by_id(5)
    assert g4 is not None
    assert [(c.name, c.id, c.instances) for c in g4.ci_profiles] == [
        ("1c.4g.20gb", 0, 4),
        ("2c.4g.20gb", 1, 2),
        ("4g.20gb", 3, 1),
    ]  # no 3c on a 4g
    # A30 -lcip, verbatim in mig-hardware.md appendix A
    one_c, two_g = ci("a30", 5, 0), ci("a30", 5, 1)
    assert (one_c.name, one_c.instances, one_c.sm, one_c.dec, one_c.enc, one_c.ofa, one_c.ce, one_c.jpeg) == (
        "1c.2g.12gb",
        2,
        14,
        2,
        0,
        0,
        2,
        0,
    )
    assert (two_g.name, two_g.default, two_g.sm) == ("2g.12gb", True, 28)
    assert "sm" not in one_c.inferred
    # H100: 3g default CI 2 at 0:4, 2g default CI 1 at 0:2; profile 15 default CI 7
    assert ci("h100-80gb", 9, 2).placements == (Placement(0, 4),)
    assert ci("h100-80gb", 14, 1).placements == (Placement(0, 2),)
    for key in ("h100-80gb", "h100-96gb"):
        c7 = ci(key, 15, 7)
        assert c7.default
        assert "id" not in c7.inferred
    assert ci("rtx-pro-6000", 5, 1).default
    assert ci("rtx-pro-6000", 14, 0).default
    # H100 3g.40gb (60 SMs): a 1c gets the 1g share, 16
    assert ci("h100-80gb", 9, 0).sm == 16


# --------------------------------------------------------------------------- what the geometry holds


def _search(geometry: GpuGeometry, demand: dict[int, int]) -> list[Occupant] | None:
    """Placements for ``demand`` (profile ID -> count) by brute force, or ``None``.

    Checks slices, instance counts and the media-engine pool itself, independently of
    ``GpuGeometry.why_not``.
    """
    wanted: list[int] = []
    for pid, count in demand.items():
        prof = geometry.by_id(pid)
        if count > prof.instance_count:
            return None
        wanted += [pid] * count
    wanted.sort(key=lambda pid: -geometry.by_id(pid).placement_size)
    need = Engines()
    for pid in wanted:
        need = need + geometry.by_id(pid).engines
    if geometry.engine_totals is not None and not need.within(geometry.engine_totals):
        return None

    def rec(i: int, used: frozenset[int], placed: list[Occupant]) -> list[Occupant] | None:
        if i == len(wanted):
            return placed
        prof = geometry.by_id(wanted[i])
        floor = -1
        if i > 0 and wanted[i - 1] == prof.id:  # same profile: ascending starts only
            floor = placed[-1].placement.start
        for pl in prof.placements:
            if pl.start <= floor:
                continue
            cells = frozenset(range(pl.start, pl.end))
            if cells & used:
                continue
            found = rec(i + 1, used | cells, [*placed, Occupant(prof.id, pl)])
            if found is not None:
                return found
        return None

    return rec(0, frozenset(), [])


def _fits(geometry: GpuGeometry, demand: dict[int, int]) -> bool:
    layout = _search(geometry, demand)
    if layout is None:
        return False
    # replay it through the rules the simulator enforces
    for i, occ in enumerate(layout):
        prof = geometry.by_id(occ.profile_id)
        reason = geometry.why_not(layout[:i], prof, occ.placement)
        assert reason is None, f"search found {layout} but the geometry refuses: {reason}"
    return True


def _refused_by_geometry(geometry: GpuGeometry, first: int, second: int) -> bool:
    """After placing ``first`` anywhere, ``second`` has no free placement."""
    p1 = geometry.by_id(first)
    p2 = geometry.by_id(second)
    return all(not geometry.free_placements([Occupant(first, pl)], p2) for pl in p1.placements)


def _smallest(m: ModelSpec) -> GiProfileSpec:
    size = min(p.placement_size for p in m.gi_profiles)
    return max((p for p in m.gi_profiles if p.placement_size == size), key=lambda p: p.instances)


def _me_profiles(m: ModelSpec) -> list[GiProfileSpec]:
    return [p for p in m.gi_profiles if "+me" in p.name]


@pytest.mark.parametrize("key", MIG_KEYS)
def test_smallest_profile_fills_the_gpu(key: str) -> None:
    m = models()[key]
    small = _smallest(m)
    assert small.instances == m.max_instances
    assert _fits(model_geometry(m.key), {small.id: m.max_instances})
    assert not _fits(model_geometry(m.key), {small.id: m.max_instances + 1})


@pytest.mark.parametrize("key", MIG_KEYS)
def test_one_full_gpu_instance_and_nothing_beside_it(key: str) -> None:
    m = models()[key]
    full = m.full_profile
    assert full is not None
    g = model_geometry(m.key)
    assert _fits(g, {full.id: 1})
    for p in m.gi_profiles:
        if p.id != full.id:
            assert not _fits(g, {full.id: 1, p.id: 1}), (key, p.name)


@pytest.mark.parametrize("key", MIG_KEYS)
def test_every_profile_alone_and_at_its_instance_count(key: str) -> None:
    m = models()[key]
    g = model_geometry(m.key)
    for p in m.gi_profiles:
        assert _fits(g, {p.id: 1}), (key, p.name)
        assert _fits(g, {p.id: p.instances}), (key, p.name, p.instances)


@pytest.mark.parametrize("key", MIG_KEYS)
def test_exactly_one_plus_me_instance(key: str) -> None:
    m = models()[key]
    g = model_geometry(m.key)
    me = _me_profiles(m)
    assert me, key
    small = _smallest(m)
    for p in me:
        assert p.ofa == 1
        assert p.instances == 1
        # one +me beside as many small instances as slices allow (7g: 6 x 1g + 1 x 1g+me)
        if p.placement_size == small.placement_size and "+me.all" not in p.name:
            assert _fits(g, {p.id: 1, small.id: m.max_instances - 1}), (key, p.name)
    for a, b in combinations_with_replacement(me, 2):
        assert not _fits(g, Counter([a.id, b.id])), (key, a.name, b.name)
        if a.id != b.id:
            assert _refused_by_geometry(g, a.id, b.id), (key, a.name, b.name)


EIGHT_SLOT_LEGAL = [
    {19: 7},
    {19: 6, 20: 1},
    {9: 1, 5: 1},
    {14: 3, 19: 1},
    {14: 3, 20: 1},
    {9: 2},
    {15: 4},
    {5: 1, 19: 3},
    {5: 1, 15: 2},
    {9: 1, 14: 2},
    {14: 2, 15: 1, 19: 1},
    {9: 1, 19: 4},
]
EIGHT_SLOT_ILLEGAL = [{19: 8}, {20: 2}, {9: 1, 5: 1, 19: 1}, {15: 4, 19: 1}, {14: 4}, {9: 3}]
A30_LEGAL = [{14: 4}, {21: 1, 14: 3}, {5: 2}, {6: 1, 5: 1}, {6: 1, 14: 2}, {5: 1, 14: 2}, {0: 1}]
A30_ILLEGAL = [{21: 1, 6: 1}, {0: 1, 14: 1}, {14: 5}, {5: 2, 14: 1}]
RTX_LEGAL = [
    {14: 4},
    {47: 4},
    {67: 4},
    {21: 1, 14: 3},
    {65: 1, 67: 3},
    {64: 1, 66: 1},
    {64: 1, 67: 2},
    {5: 2},
    {5: 1, 14: 2},
    {35: 2},
    {66: 2},
    {0: 1},
    {32: 1},
    {21: 1, 67: 1, 5: 1},
]
RTX_ILLEGAL = [
    {65: 1, 14: 1},
    {65: 1, 21: 1},
    {64: 1, 5: 1},
    {64: 1, 14: 1},
    {65: 1, 64: 1},
    {65: 1, 47: 1},
    {14: 5},
    {0: 1, 32: 1},
]
COMBOS = {8: (EIGHT_SLOT_LEGAL, EIGHT_SLOT_ILLEGAL), 4: (A30_LEGAL, A30_ILLEGAL), 12: (RTX_LEGAL, RTX_ILLEGAL)}


@pytest.mark.parametrize("key", MIG_KEYS)
def test_real_world_combinations(key: str) -> None:
    m = models()[key]
    g = model_geometry(m.key)
    legal, illegal = COMBOS[m.span]
    for demand in legal:
        assert _fits(g, demand), (key, {g.by_id(i).name: n for i, n in demand.items()})
    for demand in illegal:
        assert not _fits(g, demand), (key, {g.by_id(i).name: n for i, n in demand.items()})


def test_me_all_leaves_room_only_for_no_me_profiles() -> None:
    m = models()["rtx-pro-6000"]
    g = model_geometry(m.key)
    for me_all in (65, 64):
        for p in m.gi_profiles:
            if p.id == me_all:
                continue
            alongside = _fits(g, {me_all: 1, p.id: 1})
            assert alongside == p.name.endswith("-me"), (g.by_id(me_all).name, p.name)


# --------------------------------------------------------------------------- mig-parted defaults


def _device_filter(entry: dict[str, Any]) -> set[int] | None:
    raw = entry.get("device-filter")
    if raw is None:
        return None
    values = [raw] if isinstance(raw, str) else list(raw)
    return {int(str(v), 16) for v in values}


def _mig_parted_entries(reference: Path) -> list[tuple[str, dict[str, Any]]]:
    doc = yaml.safe_load(NVIDIA_DEFAULT_CONFIG.read_text("utf-8"))
    return [
        (name, entry)
        for name, entries in doc["mig-configs"].items()
        for entry in entries
        if entry.get("mig-enabled") and entry.get("mig-devices")
    ]


@pytest.mark.parametrize("key", MIG_KEYS)
def test_mig_parted_default_layouts_fit(key: str, reference: Path) -> None:
    m = models()[key]
    g = model_geometry(m.key)
    targeted = 0
    problems: list[str] = []
    for name, entry in _mig_parted_entries(reference):
        devices: dict[str, int] = entry["mig-devices"]
        resolved = {n: g.find(n) for n in devices}
        ids = _device_filter(entry)
        if ids is not None:
            if m.nvml_pci_device_id not in ids:
                continue
            targeted += 1
            unknown = [n for n, p in resolved.items() if p is None]
            if unknown:
                problems.append(f"{name}: {unknown} are not {key} profiles")
                continue
        elif any(p is None for p in resolved.values()):
            continue  # an unfiltered layout for another GPU
        demand = {p.id: devices[n] for n, p in resolved.items() if p is not None}
        if not _fits(g, demand):
            problems.append(f"{name}: {devices} does not fit")
    assert targeted, f"no mig-parted entry targets {key} by device-filter"
    assert not problems, "\n".join(problems)
