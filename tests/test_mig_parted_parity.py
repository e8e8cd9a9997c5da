"""A mig-parted file means in migctl what it means in mig-parted (issue 10, section 1).

Checked against mig-parted's own test cases (vendored under ``tests/data/mig-parted``, see its
README) and against its rules as ``pkg/mig/config/config.go``, ``pkg/types`` and
``api/spec/v1`` state them: how ``mig-devices`` becomes GPU instances (``Nc.<profile>`` keys
share a GPU instance), which GPUs a ``device-filter`` matches (subsystem IDs, model names,
malformed filters), which documents are valid (empty, ``version`` only, tab-indented JSON).
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import product
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import migctl as migctl_api
from conftest import Cli, Sim, SimFactory
from migctl.config import ConfigError, GpuFacts, MigConfigEntry, load_text, parse_document, resolve, validate
from migctl.config import document as document_module
from migctl.config.grouping import Device, compute_fits, flatten, group, orders
from migctl.config.select import filter_warnings, select
from migctl.config.spec import parse_device_filter
from migctl.core.compute import CiProfile, compute_layout
from migctl.core.geometry import GpuGeometry, Placement
from migctl.core.layout import PlanRefusal, Target, TargetInstance
from migctl.core.planner import plan
from migctl.device.simulated import model_geometry
from migctl.ops.files import NVIDIA_DEFAULT_CONFIG
from migctl.sim.catalog import models

DATA = Path(__file__).resolve().parent / "data" / "mig-parted"
A100 = model_geometry("a100-40gb")
H20 = model_geometry("h20")
A100_ID, H20_ID, H100_ID = 0x20B010DE, 0x232910DE, 0x233010DE


def _entry(devices: dict[str, int]) -> MigConfigEntry:
    return MigConfigEntry.model_validate({"devices": "all", "mig-enabled": True, "mig-devices": devices})


def _layout(
    devices: dict[str, int], geometry: GpuGeometry = A100, pci: int = A100_ID
) -> Counter[tuple[str, tuple[str, ...]]]:
    """GPU-instance profile -> sorted compute instances, for each GPU instance ``devices`` makes."""
    target = resolve(_entry(devices), GpuFacts(0, pci, geometry))
    out: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for t in target.instances:
        name = geometry.by_id(t.profile_id).name
        out[(name, tuple(sorted(t.compute)) if t.compute is not None else (name,))] += 1
    return out


# -- Nc.<profile> keys: SetMigConfig's grouping -------------------------------------------------


def test_compute_instance_keys_share_the_last_gpu_instance() -> None:
    # The examples: one 7g instance with seven 1c; one 3g instance with a 2c and a 1c.
    assert _layout({"1c.7g.40gb": 7}) == {("7g.40gb", ("1c.7g.40gb",) * 7): 1}
    assert _layout({"1c.3g.20gb": 1, "2c.3g.20gb": 1}) == {("3g.20gb", ("1c.3g.20gb", "2c.3g.20gb")): 1}
    # A full-size compute instance leaves no room: a count of GPU-instance profiles is that many instances.
    assert _layout({"3g.20gb": 2}) == {("3g.20gb", ("3g.20gb",)): 2}
    # 3c.3g.20gb (mig-parted's own spelling of the full-size one) is the same as 3g.20gb.
    assert _layout({"3c.3g.20gb": 1, "1c.3g.20gb": 2}) == {
        ("3g.20gb", ("3g.20gb",)): 1, ("3g.20gb", ("1c.3g.20gb", "1c.3g.20gb")): 1}
    # Two 3-slice compute instances fill a 7g instance's span: a 1-slice one needs another instance.
    assert _layout({"3c.7g.40gb": 2, "1c.7g.40gb": 1}) == {
        ("7g.40gb", ("3c.7g.40gb", "3c.7g.40gb")): 1, ("7g.40gb", ("1c.7g.40gb",)): 1}
    # More than fit in one: the last instance fills up, then a new one starts.
    assert _layout({"1c.4g.48gb": 5}, H20, H20_ID) == {
        ("4g.48gb", ("1c.4g.48gb",) * 4): 1, ("4g.48gb", ("1c.4g.48gb",)): 1}


def test_flatten_order_is_mig_parteds() -> None:
    # G descending, then C descending, then the + attributes as text, descending.
    def dev(key: str, gi: str, compute: str, slices: int) -> Device:
        return Device(key, A100.by_name(gi), compute, slices)

    devices = [
        dev("1g.5gb", "1g.5gb", "1g.5gb", 1),
        dev("1c.3g.20gb", "3g.20gb", "1c.3g.20gb", 1),
        dev("1g.5gb+me", "1g.5gb+me", "1g.5gb+me", 1),
        dev("7g.40gb", "7g.40gb", "7g.40gb", 7),
        dev("3g.20gb", "3g.20gb", "3g.20gb", 3),
        dev("2c.3g.20gb", "3g.20gb", "2c.3g.20gb", 2),
    ]
    flat = flatten([(d, 1) for d in devices])
    assert [d.key for d in flat] == ["7g.40gb", "3g.20gb", "2c.3g.20gb", "1c.3g.20gb", "1g.5gb+me", "1g.5gb"]


def test_orders_are_the_distinct_permutations_in_mig_parteds_sequence() -> None:
    a, b = (Device(k, A100.by_name("3g.20gb"), k, n) for k, n in (("2c.3g.20gb", 2), ("1c.3g.20gb", 1)))
    seen = [[d.key[0] for d in order] for order in orders([a, a, b, b])]
    # The swap permutation of iteratePermutationsUntilSuccess, skipping equal devices.
    assert seen == [list("2211"), list("2121"), list("2112"), list("1221"), list("1212"), list("1122")]
    # mig-parted's TestIteratePermutationsUntilSuccess: n! / prod(count!) orders in all.
    c = Device("1g.5gb", A100.by_name("1g.5gb"), "1g.5gb", 1)
    assert len(list(orders([a, a, a, b, b, c]))) == math.factorial(6) // (math.factorial(3) * math.factorial(2))


def test_when_the_first_order_does_not_fit_the_next_ones_are_tried() -> None:
    # 2c, 2c, 1c, 1c on an A100 first makes three 3g instances (2c | 2c+1c | 1c): at most two fit.
    # mig-parted wipes and tries the next order, 2c, 1c, 2c, 1c: two instances of 2c+1c.
    assert _layout({"2c.3g.20gb": 2, "1c.3g.20gb": 2}) == {("3g.20gb", ("1c.3g.20gb", "2c.3g.20gb")): 2}


def _a100_possible_configs() -> list[dict[str, int]]:
    """The A100-SXM4-40GB configurations of mig-parted's TestGetSetMigConfig (known_configs.go):
    every multiset of these device types (up to the counts given) with at most 7 compute slices in
    all, whose distinct GPU-instance sizes add up to at most 7, and with 1g.5gb+me only alone."""
    kinds = [
        ("1c.1g.5gb", 7), ("1c.1g.5gb+me", 1), ("1c.2g.10gb", 6), ("2c.2g.10gb", 3), ("1c.3g.20gb", 6),
        ("2c.3g.20gb", 2), ("3c.3g.20gb", 2), ("1c.4g.20gb", 4), ("2c.4g.20gb", 2), ("4c.4g.20gb", 1),
        ("1c.7g.40gb", 7), ("2c.7g.40gb", 3), ("3c.7g.40gb", 2), ("4c.7g.40gb", 1), ("7c.7g.40gb", 1),
    ]

    def cg(key: str) -> tuple[int, int]:
        c, g = key.split(".")[:2]
        return int(c[:-1]), int(g[:-1])

    out: list[dict[str, int]] = []

    def extend(i: int, chosen: dict[str, int], cis: int) -> None:
        if i == len(kinds):
            ones = sum(cg(k)[0] * n for k, n in chosen.items() if cg(k)[1] == 1)
            if chosen and sum({cg(k)[1] for k in chosen}) <= 7 and not ("1c.1g.5gb+me" in chosen and ones > 1):
                out.append(dict(chosen))
            return
        key, most = kinds[i]
        for n in range(most + 1):
            if cis + n * cg(key)[0] > 7:
                break
            extend(i + 1, {**chosen, key: n} if n else chosen, cis + n * cg(key)[0])

    extend(0, {}, 0)
    return out


@pytest.mark.slow
def test_mig_parteds_own_set_get_cases_give_back_their_compute_instances() -> None:
    """TestGetSetMigConfig: GetMigConfig(SetMigConfig(c)) == c for every configuration above. migctl
    reads each one into GPU instances whose compute instances are exactly the file's devices, and
    never puts more compute slices into a GPU instance than it has."""
    configs = _a100_possible_configs()
    assert len(configs) == 923
    for config in configs:
        target = resolve(_entry(config), GpuFacts(0, A100_ID, A100))
        got: Counter[str] = Counter()
        for t in target.instances:
            gi = A100.by_id(t.profile_id)
            compute = t.compute if t.compute is not None else (gi.name,)
            slices = [int(c.split(".")[0][:-1]) if c.count(".") == 2 else gi.slice_count for c in compute]
            assert compute_fits(gi.slice_count, slices), (config, t)
            for n in slices:
                got[f"{n}c.{gi.name}"] += 1
        assert got == Counter(config), config


def test_the_compute_fit_rule_matches_real_compute_placements() -> None:
    """grouping.py's "the compute instance still fits" (:func:`compute_fits`) holds, for every
    GPU-instance profile of every catalog model, exactly when the compute instances have legal,
    non-overlapping placements (the simulator's compute-instance profiles, placed by the search
    migctl's create-ci uses)."""
    checked = 0
    tables = {(gi.slices, tuple((c.slices, c.instances, c.placements) for c in gi.ci_profiles)): gi
              for spec in models().values() for gi in spec.gi_profiles}
    for gi in tables.values():
        cis = [CiProfile(c.id, c.name, c.slices, c.instances, tuple(Placement(p.start, p.size) for p in c.placements))
               for c in gi.ci_profiles]
        for counts in product(*(range(gi.slices + 1) for _ in cis)):
            wanted = [c for c, n in zip(cis, counts, strict=True) for _ in range(n)]
            if not wanted:
                continue
            fits = compute_layout(gi.slices, cis, [], wanted) is not None
            assert fits == compute_fits(gi.slices, [c.slice_count for c in wanted]), (gi.name, counts)
            checked += 1
    assert checked > 100


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["1c.7g.96gb", "2c.7g.96gb", "3c.7g.96gb", "1c.4g.48gb", "2c.4g.48gb",
                                        "4g.48gb", "1c.3g.48gb", "2c.3g.48gb", "3g.48gb", "1c.2g.24gb",
                                        "2g.24gb", "1g.12gb", "1g.24gb"]), st.integers(0, 4), min_size=1))
def test_grouping_keeps_every_device_and_never_overfills(counts: dict[str, int]) -> None:
    if not any(counts.values()):
        return
    facts = GpuFacts(0, H20_ID, H20)
    target = resolve(_entry(counts), facts)
    assert resolve(_entry(dict(reversed(counts.items()))), facts) == target  # the file's key order is irrelevant
    total = 0
    for t in target.instances:
        gi = H20.by_id(t.profile_id)
        compute = t.compute if t.compute is not None else (gi.name,)
        total += len(compute)
        assert compute_fits(gi.slice_count, [int(c.split(".")[0][:-1]) if c.count(".") == 2 else gi.slice_count
                                            for c in compute])
    assert total == sum(counts.values())
    # When SetMigConfig's first order (the flattened list as it is) fits, that is the grouping.
    first = group(flatten(_devices(counts)))
    as_targets = [TargetInstance(g.gi.id, None, g.compute) for g in first]
    if not isinstance(plan(H20, [], as_targets), PlanRefusal):
        shape = Counter((t.profile_id, t.compute or (H20.by_id(t.profile_id).name,)) for t in target.instances)
        assert shape == Counter((g.gi.id, g.compute) for g in first)


def _devices(counts: dict[str, int]) -> list[tuple[Device, int]]:
    out = []
    for key, n in counts.items():
        c, _, gi_name = key.partition(".") if key.count(".") == 2 else ("", "", key)
        gi = H20.by_name(gi_name)
        slices = int(c[:-1]) if c else gi.slice_count
        out.append((Device(key, gi, key if c and slices < gi.slice_count else gi.name, slices), n))
    return out


# -- device-filter ------------------------------------------------------------------------------


def test_device_id_strings_read_as_mig_parted_reads_them() -> None:
    # pkg/types TestNewDeviceIDFromString, and Go's strconv.ParseUint(s, 0, 32).
    assert parse_device_filter("0x25B610DE") == (0x25B610DE, None)
    assert parse_device_filter("0x25B610DE:0x14A910DE") == (0x25B610DE, 0x14A910DE)
    assert parse_device_filter("0X233010de") == (0x233010DE, None)
    assert parse_device_filter("590352606") == (0x233010DE, None)  # decimal
    assert parse_device_filter("0x2330_10DE") == (0x233010DE, None)
    for bad in ("not-a-device-id", "0x25B610DE:not-a-subsystem", "0x25B610DE:0x14A910DE:extra", "",
                " 0x25B610DE", "0x", "0x1_", "0x1__2", "0x100000000", "-1", "A100-SXM4-40GB"):
        with pytest.raises(ValueError):
            parse_device_filter(bad)


H100 = model_geometry("h100-80gb")
H100_FACTS = GpuFacts(0, H100_ID, H100, "NVIDIA H100 80GB HBM3", 0x16C010DE)


@pytest.mark.parametrize(("device_filter", "matched"), [
    # api/spec/v1 TestMigConfigSpecMatchesDeviceFilter, hardware 0x2330/0x10DE, subsystem 0x16C0/0x10DE.
    ("", True),
    ("0x233010DE", True),
    ("0x233010DE:0x16C010DE", True),
    ("0x233010DE:0x16C110DE", False),
    (["0x233010DE:0x16C110DE", "0x233010DE:0x16C010DE"], True),
    ("0x233010DE:0x16C010DE:extra", False),
    # Model names are accepted and match nothing (mig-parted parses them as a device ID and fails).
    ("A100-SXM4-40GB", False),
    (["H100-SXM5-80GB", "0x233010DE"], True),
    ([""], False),
])
def test_device_filters_match_as_in_mig_parted(device_filter: str | list[str], matched: bool) -> None:
    spec = load_text(yaml.safe_dump({"version": "v1", "mig-configs": {"c": [
        {"device-filter": device_filter, "devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 1}}]}}))
    assert (0 in select(spec, "c", [H100_FACTS]).targets) is matched


def test_subsystem_filters_on_the_simulator(sim: SimFactory) -> None:
    """The simulator reports each model's subsystem ID through NVML, and migctl matches it."""
    s = sim("h100-80gbx2,a100-40gb", enable="0-2")
    text = ("version: v1\nmig-configs:\n  by-board:\n"
            "    - device-filter: '0x233010DE:0x16C010DE'\n      devices: all\n      mig-enabled: true\n"
            "      mig-devices: {1g.10gb: 1}\n"
            "    - device-filter: '0x20B010DE:0x999910DE'\n      devices: all\n      mig-enabled: true\n"
            "      mig-devices: {1g.5gb: 1}\n")
    plan_ = s.ok("plan", "-f", "-", "-c", "by-board", "--json", input=text).json()
    covered = {g["gpu"]: g["covered"] for g in plan_["gpus"]}
    assert covered == {0: True, 1: True, 2: False}  # the A100's subsystem is not 0x9999


def test_unmatchable_filters_and_empty_entries_are_warned_about(sim: SimFactory) -> None:
    s = sim("a100-40gb", enable="0")
    text = ("version: v1\nmig-configs:\n  c:\n    -\n    - device-filter: A100-SXM4-40GB\n      devices: all\n"
            "      mig-enabled: true\n      mig-devices: {1g.5gb: 1}\n    - devices: all\n      mig-enabled: true\n"
            "      mig-devices: {2g.10gb: 1}\n")
    spec = load_text(text, "w.yaml")
    warnings = filter_warnings(spec, "c")
    assert warnings[0] == "config 'c' entry 0 is empty, so it matches no GPU (as in mig-parted)"
    assert warnings[1].startswith("config 'c' entry 1: device-filter 'A100-SXM4-40GB' is not a PCI ID")
    r = s("plan", "-f", "-", "-c", "c", input=text)
    assert r.code == 0
    assert "warning: config 'c' entry 1: device-filter 'A100-SXM4-40GB' is not a PCI ID" in r.out
    assert s.ok("plan", "-f", "-", "-c", "c", "--json", input=text).json()["warnings"] == warnings


# -- documents ----------------------------------------------------------------------------------


def _cases(kind: str) -> list[Path]:
    return sorted((DATA / kind).glob("*.yaml"))


@pytest.fixture(params=["libyaml", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both YAML scanners migctl may run with: libyaml (when PyYAML has it) and PyYAML's own."""
    if request.param == "python":
        monkeypatch.setattr(document_module, "_LOADER", yaml.SafeLoader)
    elif not hasattr(yaml, "CSafeLoader"):
        pytest.skip("this PyYAML has no libyaml")
    return str(request.param)


@pytest.mark.parametrize("path", _cases("spec"), ids=lambda p: p.name)
def test_mig_parteds_spec_cases(path: Path, loader: str) -> None:
    text = path.read_text()
    if path.name.endswith(".valid.yaml"):
        spec = load_text(text, path.name)
        assert spec.version == "v1"
    else:
        with pytest.raises(ConfigError):
            load_text(text, path.name)


@pytest.mark.parametrize("path", _cases("entry"), ids=lambda p: p.name)
def test_mig_parteds_entry_cases(path: Path, loader: str) -> None:
    doc = parse_document(path.read_text(), path.name, empty_ok=True)
    if path.name.endswith(".valid.yaml"):
        if doc.data is not None:  # an empty entry is None: it matches no GPU (checked above)
            validate(MigConfigEntry, doc)
    else:
        with pytest.raises(ConfigError):
            validate(MigConfigEntry, doc)


def test_empty_and_version_only_files_are_valid_and_say_they_have_no_configs(migctl: Cli) -> None:
    for text in ("", "# nothing here\n", "version: v1\n", "null\n"):
        assert load_text(text).names() == []
    r = migctl("--sim", "a100-40gb", "apply", "-f", "-", "-c", "all-1g.5gb", input="version: v1\n")
    assert r.code == 2
    assert "no config named 'all-1g.5gb': the file defines no configs" in r.err
    for text in ("{}", "version:\n", "version: v1\nmig-configs: {}\n", "version: v1\nmig-configs:\n"):
        with pytest.raises(ConfigError):
            load_text(text)


def test_mig_parteds_example_file_builds_its_layouts() -> None:
    spec = load_text((DATA / "examples-config.yaml").read_text(), "examples-config.yaml")
    a100s = [GpuFacts(i, A100_ID, A100, "NVIDIA A100-SXM4-40GB") for i in range(8)]
    sel = select(spec, "custom-config", a100s)
    assert sel.targets[0] == Target(mig_enabled=False)
    assert _counts(sel.targets[7]) == {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
    for name in spec.names():
        for index, target in select(spec, name, a100s).targets.items():
            assert not isinstance(plan(A100, [], target.instances), PlanRefusal), (name, index)


def _counts(target: Target) -> dict[str, int]:
    return dict(Counter(A100.by_id(t.profile_id).name for t in target.instances))


# -- the CLI: default file, a config for other GPUs, and the layout it builds -------------------


def test_apply_of_a_config_for_other_gpus_says_so_and_changes_nothing(sim: SimFactory) -> None:
    s = sim("h20x2", enable="0-1")
    r = s("apply", "-c", "all-1g.10gb")  # NVIDIA's default file; all-1g.10gb is for A100/H100
    assert r.code == 2
    assert "config 'all-1g.10gb' covers none of the chosen GPUs (GPUs 0-1: NVIDIA H20, 0x232910DE)" in r.err
    assert "all-1g.12gb" in r.err and "nothing was changed" in r.err
    assert all(not g["gpu_instances"] for g in s.status()["gpus"])
    plan_ = s("plan", "-c", "all-1g.10gb", "--json")
    assert plan_.code == 2 and plan_.json()["error"]["error"] == "usage"
    assert s("apply", "-c", "all-1g.12gb").code == 0


def test_c_without_f_reads_the_env_file_then_etc_then_nvidias(sim: SimFactory, tmp_path: Path) -> None:
    s = sim("h20", enable="0")
    mine = tmp_path / "mine.yaml"
    mine.write_text("version: v1\nmig-configs:\n  mine:\n    - devices: all\n      mig-enabled: true\n"
                    "      mig-devices: {3g.48gb: 1}\n")
    assert s.json("plan", "-c", "all-1g.12gb")["source"] == str(NVIDIA_DEFAULT_CONFIG)
    assert s.json("plan", "-c", "mine", env={"MIGCTL_CONFIG_FILE": str(mine)})["source"] == str(mine)
    missing = s("plan", "-c", "mine", env={"MIGCTL_CONFIG_FILE": str(tmp_path / "nope.yaml")})
    assert missing.code == 2 and "nope.yaml: cannot read" in missing.err
    with migctl_api.Node(sim="h20") as node:  # the Python API reads the same file
        assert node.plan(config="all-1g.12gb").source == str(NVIDIA_DEFAULT_CONFIG)
    assert NVIDIA_DEFAULT_CONFIG.read_bytes() == (Path(__file__).resolve().parents[1] / "src" / "migctl" / "data"
                                                  / "mig-parted-config-default.yaml").read_bytes()


def test_compute_instance_keys_end_to_end(sim: SimFactory) -> None:
    s: Sim = sim("h20", enable="0")
    text = ("version: v1\nmig-configs:\n  shared:\n    - devices: all\n      mig-enabled: true\n"
            "      mig-devices: {1c.3g.48gb: 3, 2g.24gb: 1, 1c.2g.24gb: 2}\n")
    s.ok("apply", "-f", "-", "-c", "shared", input=text)
    gis = s.gpu(0)["gpu_instances"]
    layout = sorted((g["profile"], tuple(sorted(c["profile"] for c in g["compute_instances"]))) for g in gis)
    assert layout == [("2g.24gb", ("1c.2g.24gb", "1c.2g.24gb")), ("2g.24gb", ("2g.24gb",)),
                      ("3g.48gb", ("1c.3g.48gb",) * 3)]
    assert s("assert", "-f", "-", "-c", "shared", input=text).code == 0
    exported = s.ok("export", "--portable").out
    counts = yaml.safe_load(exported)["mig-configs"]["current"][0]["mig-devices"]
    assert counts == {"1c.3g.48gb": 3, "2g.24gb": 1, "1c.2g.24gb": 2}  # what mig-parted's export writes
    again = s.ok("plan", "-f", "-", "-c", "current", "--json", input=s.ok("export").out).json()
    assert not again["gpus"][0]["create"] and not again["gpus"][0]["destroy"]
