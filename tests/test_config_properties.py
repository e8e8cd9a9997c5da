"""Property tests of the config layer: generated configs, arbitrary text, --layout items and
export round trips (hypothesis)."""
from __future__ import annotations

import json
from collections import Counter

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config_geometries import B200, B200_ID, H20, H20_ID, H100, H100_ID  # tests/config_geometries.py
from migctl.config import (
    ConfigError,
    CurrentGpu,
    CurrentInstance,
    GpuFacts,
    MigSpec,
    export_spec,
    export_text,
    format_layout,
    load_text,
    parse_layout,
)
from migctl.config.select import select
from migctl.core.geometry import Occupant, Placement
from migctl.core.layout import TargetInstance

# --- property tests ----------------------------------------------------------------------------

PROFILE_NAMES = st.builds(
    lambda c, g, gb, suffix: f"{c}c.{g}g.{gb}gb{suffix}" if c else f"{g}g.{gb}gb{suffix}",
    st.sampled_from([None, None, 1, 2]), st.sampled_from([1, 2, 3, 4, 7]), st.integers(1, 200),
    st.sampled_from(["", "+me", "-me", "+gfx", "+me.all"]),
)
FILTERS = st.integers(0, 2**32 - 1).map(lambda n: f"0x{n:08X}")


@st.composite
def entries(draw: st.DrawFn) -> dict[str, object]:
    entry: dict[str, object] = {}
    kind = draw(st.sampled_from(["none", "str", "list"]))
    if kind == "str":
        entry["device-filter"] = draw(FILTERS)
    elif kind == "list":
        entry["device-filter"] = draw(st.lists(FILTERS.map(str.lower), max_size=3))
    entry["devices"] = draw(st.one_of(st.just("all"), st.lists(st.integers(0, 15), max_size=4)))
    enabled = draw(st.booleans())
    entry["mig-enabled"] = enabled
    if enabled:
        names = draw(st.lists(PROFILE_NAMES, max_size=4, unique_by=str.lower))
        counts = {n: draw(st.integers(1, 7)) for n in names}
        entry["mig-devices"] = counts
        pin_one = draw(st.booleans())
        if names and pin_one:
            pin: dict[str, object] = {"profile": names[0], "placement": draw(st.integers(0, 7))}
            if draw(st.booleans()):
                gi = names[0].split(".", 1)[1] if names[0].split(".")[0].endswith("c") else names[0]
                pin["compute"] = draw(st.lists(st.sampled_from(["1c", f"1c.{gi}"]), max_size=3))
            entry["x-migctl"] = {"instances": [pin]}
    elif draw(st.booleans()):
        entry["mig-devices"] = {}
    return entry


CONFIG_NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
SPECS = st.fixed_dictionaries({
    "version": st.just("v1"),
    "mig-configs": st.dictionaries(CONFIG_NAMES, st.lists(entries(), min_size=1, max_size=3),
                                   min_size=1, max_size=4),
})


@settings(max_examples=80, deadline=None)
@given(SPECS, st.booleans())
def test_generated_configs_round_trip(data: dict[str, object], as_json: bool) -> None:
    text = json.dumps(data, indent=1) if as_json else yaml.safe_dump(data, allow_unicode=True)
    spec = load_text(text, "gen.yaml")
    assert spec == MigSpec.model_validate(data)
    assert load_text(yaml.safe_dump(spec.to_data()), "again.yaml") == spec


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 9), st.text(max_size=8),
                    st.sampled_from(["all", "v1", "0x233010DE", "1g.10gb", "x-migctl"]))
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["version", "mig-configs", "devices", "mig-enabled", "mig-devices",
                                     "device-filter", "x-migctl", "instances", "a"]), inner, max_size=4),
), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), JUNK.map(lambda d: yaml.safe_dump({"version": "v1", "mig-configs": d}))))
def test_arbitrary_text_only_ever_raises_config_error(text: str) -> None:
    try:
        load_text(text, "junk.yaml")
    except ConfigError as err:
        assert str(err).startswith("junk.yaml")
        assert "\n" not in str(err)


INLINE_ITEMS = st.lists(st.tuples(
    st.sampled_from(["1g.12gb", "1g.24gb", "2g.24gb", "3g.48gb", "7g.96gb"]),
    st.integers(1, 3), st.one_of(st.none(), st.integers(0, 7)),
    st.one_of(st.none(), st.lists(st.sampled_from(["1c", "1c.3g.48gb", "2c.3g.48gb"]), max_size=3)),
), max_size=5)


def _render_item(profile: str, count: int, start: int | None, compute: list[str] | None) -> str:
    text = profile if start is not None or count == 1 else f"{profile}:{count}"
    text += "" if start is None else f"@{start}"
    return text + ("" if compute is None else f"[{','.join(compute)}]")


@settings(max_examples=100, deadline=None)
@given(INLINE_ITEMS)
def test_inline_items_render_and_parse_back(items: list[tuple[str, int, int | None, list[str] | None]]) -> None:
    items = [(p, 1 if s is not None else n, s, c) for p, n, s, c in items]
    entry = parse_layout(" , ".join(_render_item(*item) for item in items))
    expected = Counter[str]()
    for p, n, _, _ in items:
        expected[p] += n
    assert entry.mig_devices == dict(expected)
    pins = [(p, s, c) for p, n, s, c in items for _ in range(n) if s is not None or c is not None]
    got = [(x.profile, x.placement, x.compute) for x in (entry.x_migctl.instances if entry.x_migctl else [])]
    assert Counter(map(repr, got)) == Counter(map(repr, pins))
    assert parse_layout(format_layout(entry)) == entry


GEOMETRIES = {H100_ID: H100, H20_ID: H20, B200_ID: B200}


@st.composite
def current_gpus(draw: st.DrawFn) -> list[CurrentGpu]:
    gpus = []
    for index in range(draw(st.integers(1, 3))):
        pci = draw(st.sampled_from(sorted(GEOMETRIES)))
        geometry = GEOMETRIES[pci]
        instances = []
        taken: list[Occupant] = []
        for _ in range(draw(st.integers(0, 4))):
            prof = draw(st.sampled_from(geometry.profiles))
            where = draw(st.sampled_from(prof.placements))
            if not geometry.can_place(taken, prof, where):
                continue  # a layout a GPU can hold
            taken.append(Occupant(prof.id, where))
            small = f"1c.{prof.name}" if prof.slice_count > 1 else prof.name
            compute = draw(st.sampled_from([None, (prof.name,), (small,), (small, small), ()]))
            instances.append(CurrentInstance(prof.name, where.start, compute))
        known = draw(st.booleans())  # with the GPU's geometry, counts are written as mig-parted's
        gpus.append(CurrentGpu(index, pci, draw(st.booleans()), tuple(instances), geometry if known else None))
    return gpus


def _expected(gpu: CurrentGpu, placements: bool) -> Counter[TargetInstance]:
    geo = GEOMETRIES[gpu.pci_device_id]
    out = Counter[TargetInstance]()
    for inst in gpu.instances if gpu.mig_enabled else ():
        gi = geo.by_name(inst.profile)
        compute = None if inst.compute in (None, (gi.name,)) else inst.compute
        out[TargetInstance(gi.id, Placement(inst.start, gi.placement_size) if placements else None, compute)] += 1
    return out


@settings(max_examples=80, deadline=None)
@given(current_gpus(), st.sampled_from(["yaml", "json"]), st.booleans())
def test_export_load_select_round_trips(gpus: list[CurrentGpu], fmt: str, placements: bool) -> None:
    text = export_text(gpus, fmt="json" if fmt == "json" else "yaml", placements=placements)
    facts = [GpuFacts(g.index, g.pci_device_id, GEOMETRIES[g.pci_device_id]) for g in gpus]
    sel = select(load_text(text, "current.yaml"), "current", facts)
    assert not sel.skipped
    for gpu in gpus:
        target = sel.targets[gpu.index]
        assert target.mig_enabled == gpu.mig_enabled
        assert Counter(target.instances) == _expected(gpu, placements)


def test_export_format_and_mig_parted_compatible_mode() -> None:
    layout = (CurrentInstance("3g.48gb", 4, ("1c.3g.48gb",) * 3),
              CurrentInstance("3g.48gb", 0, ("3g.48gb",)),
              CurrentInstance("1g.12gb", 3, ("1g.12gb",)))
    gpus = [CurrentGpu(0, H20_ID, True, layout, H20), CurrentGpu(1, H20_ID, False)]
    doc = export_spec(gpus)
    # mig-parted's own export counts compute instances: 3 x 1c.3g.48gb is one 3g.48gb GPU instance.
    assert doc["mig-configs"]["current"] == [
        {"devices": [0], "mig-enabled": True, "mig-devices": {"3g.48gb": 1, "1c.3g.48gb": 3, "1g.12gb": 1},
         "x-migctl": {"instances": [
             {"profile": "3g.48gb", "placement": 0},
             {"profile": "1c.3g.48gb", "placement": 4, "compute": ["1c.3g.48gb"] * 3},
             {"profile": "1g.12gb", "placement": 3},
         ]}},
        {"devices": [1], "mig-enabled": False},
    ]
    plain = export_text(gpus, extensions=False)
    assert "x-migctl" not in plain and "devices: [0]" in plain
    counts = yaml.safe_load(plain)["mig-configs"]["current"][0]["mig-devices"]
    assert counts == {"3g.48gb": 1, "1c.3g.48gb": 3, "1g.12gb": 1}
    # Two 3g.48gb instances holding one 1c each have no mig-parted form (it would put both 1c in
    # one instance): written as GPU instances with their compute instances in x-migctl.
    split = (CurrentInstance("3g.48gb", 0, ("1c.3g.48gb",)), CurrentInstance("3g.48gb", 4, ("1c.3g.48gb",)))
    entry = export_spec([CurrentGpu(0, H20_ID, True, split, H20)])["mig-configs"]["current"][0]
    assert entry["mig-devices"] == {"3g.48gb": 2}
    assert [p["compute"] for p in entry["x-migctl"]["instances"]] == [["1c.3g.48gb"], ["1c.3g.48gb"]]
