"""The config layer: mig-parted v1 files, selection on mixed nodes, --layout.

Property tests over the same layer are in test_config_properties.py; hooks in test_hooks.py."""
from __future__ import annotations

import io
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from config_geometries import B200, B200_ID, H20, H20_ID, H100, H100_ID, L40S_ID, MIXED  # tests/config_geometries.py
from migctl.config import (
    ConfigError,
    GpuFacts,
    MigSpec,
    applies_to,
    format_layout,
    get_config,
    load_text,
    parse_layout,
    resolve,
)
from migctl.config.document import MAX_CHARS, parse_document
from migctl.config.select import select, suggest
from migctl.core.geometry import GpuGeometry, Placement
from migctl.core.layout import Target, TargetInstance
from migctl.errors import UsageError
from migctl.ops.files import load_config_file, read_text

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "src" / "migctl" / "data" / "mig-parted-config-default.yaml"


def _counts(target: Target, geometry: GpuGeometry) -> dict[str, int]:
    return dict(Counter(geometry.by_id(t.profile_id).name for t in target.instances))


# --- NVIDIA's default file -------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_spec() -> MigSpec:
    return load_config_file(DEFAULT_FILE)


def test_default_file_loads_unchanged(default_spec: MigSpec) -> None:
    raw = yaml.safe_load(DEFAULT_FILE.read_text())
    assert len(raw["mig-configs"]) == 81
    assert default_spec.names() == list(raw["mig-configs"])
    for name, entries in raw["mig-configs"].items():
        assert len(default_spec.mig_configs[name]) == len(entries)
        for entry, parsed in zip(entries, default_spec.mig_configs[name], strict=True):
            assert parsed is not None
            assert parsed.mig_enabled == entry["mig-enabled"]
            assert parsed.mig_devices == entry.get("mig-devices")
            assert parsed.device_filter == entry.get("device-filter")
    # JSON is accepted too, and means the same thing.
    assert load_text(json.dumps(raw), "default.json") == default_spec


def test_default_balanced_on_a_mixed_node(default_spec: MigSpec) -> None:
    sel = select(default_spec, "all-balanced", MIXED)
    assert not sel.skipped and not sel.overridden
    assert _counts(sel.targets[0], H100) == {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}
    assert _counts(sel.targets[1], H20) == {"3g.48gb": 1, "2g.24gb": 1, "1g.12gb": 2}
    assert _counts(sel.targets[2], B200) == {"3g.90gb": 1, "2g.45gb": 1, "1g.23gb": 2}
    # Largest first, and no placement or compute layout asked for.
    assert [t.profile_id for t in sel.targets[0].instances] == [9, 14, 19, 19]
    assert all(t.placement is None and t.compute is None for t in sel.targets[0].instances)


def test_applies_to_builds_a_config_by_model_matrix(default_spec: MigSpec) -> None:
    l40s = GpuFacts(3, L40S_ID, None, "NVIDIA L40S")
    node = [*MIXED, l40s]
    assert applies_to(default_spec, "all-1g.10gb", node) == {0: True, 1: False, 2: False, 3: False}
    assert applies_to(default_spec, "all-1g.23gb", node) == {0: False, 1: False, 2: True, 3: False}
    assert applies_to(default_spec, "all-3g.71gb", node) == {0: False, 1: False, 2: False, 3: False}
    assert applies_to(default_spec, "all-disabled", node) == {0: True, 1: True, 2: True, 3: False}
    with pytest.raises(ConfigError, match=r"all-1g\.10gb"):
        applies_to(default_spec, "all-1g.10g", node)


# --- errors carry file, line and key ---------------------------------------------------------

HEAD = "version: v1\nmig-configs:\n  custom:\n"

BAD = [
    (HEAD + "    - devices: all\n      mig-enabled: maybe\n      mig-devices: {}\n",
     5, "mig-configs.custom[0].mig-enabled", "expected true or false"),
    (HEAD + "    - devices: all\n      mig-enabled: true\n      mig-devices:\n        1g.10gb: 2\n"
     "        2g.20gb: -1\n", 8, "mig-configs.custom[0].mig-devices.2g.20gb", "must be >= 0"),
    ("# comment\nversion: v2\nmig-configs:\n  custom:\n    - devices: all\n      mig-enabled: false\n",
     2, "version", "unknown version 'v2'"),
    (HEAD + "    - devices: all\n      device-filter: [\"0x233010DE\", 0x16C010DE]\n"
     "      mig-enabled: false\n", 5, "mig-configs.custom[0].device-filter[1]", "expected a PCI device ID string"),
    (HEAD + "    - devices: all\n      mig-enabled: true\n      mig-devices: {1g.10gb: 1}\n"
     "      mig-device: {}\n", 7, "mig-configs.custom[0].mig-device", "did you mean 'mig-devices'"),
    (HEAD + "    - devices: [0, 1]\n      mig-enabled: true\n", 4, "mig-configs.custom[0].mig-devices",
     "required when mig-enabled is true"),
    (HEAD + "    - devices: all\n      mig-enabled: false\n      mig-devices: {1g.10gb: 1}\n",
     6, "mig-configs.custom[0].mig-devices", "must be empty when mig-enabled is false"),
    (HEAD + "    - devices: all\n      mig-enabled: true\n      mig-devices: {7g.80gb: 1}\n"
     "      x-migctl:\n        instances:\n          - profile: 3g.40gb\n",
     9, "mig-configs.custom[0].x-migctl.instances[0].profile", "not counted in mig-devices"),
    (HEAD + "    - devices: all\n      mig-enabled: true\n      mig-devices: {}\n  custom:\n"
     "    - devices: all\n      mig-enabled: false\n", 7, "mig-configs.custom", "duplicate key"),
    (HEAD + "    - devices: al\n      mig-enabled: false\n", 4, "mig-configs.custom[0].devices",
     "expected 'all' or a list"),
]


@pytest.mark.parametrize(("text", "line", "key", "message"), BAD)
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_text(*read_text(path))
    err = info.value
    assert (err.source, err.line, err.key) == (str(path), line, key)
    assert message in err.message
    assert str(err).startswith(f"{path}:{line}: {key}: ")
    assert "\n" not in str(err)


def test_unknown_config_name_lists_nearest_first(default_spec: MigSpec) -> None:
    with pytest.raises(ConfigError) as info:
        get_config(default_spec, "all-1g.10g")
    assert "did you mean 'all-1g.10gb'?" in info.value.message
    assert info.value.message.split("available: ")[1].startswith("all-1g.10gb, ")
    spec = load_text(HEAD + "    - devices: all\n      mig-enabled: false\n", "one.yaml")
    assert get_config(spec, None) == spec.mig_configs["custom"]  # the only config


def test_stdin_and_unreadable_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(HEAD + "    - devices: all\n      mig-enabled: oops\n"))
    with pytest.raises(UsageError, match=r"^<stdin>:5: mig-configs.custom\[0\].mig-enabled: "):
        load_config_file("-")
    with pytest.raises(UsageError, match=r"missing.yaml: cannot read: No such file"):
        load_config_file(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"version: v1\n# caf\xe9\n")
    with pytest.raises(UsageError, match=r"latin1.yaml: cannot read: not UTF-8 text"):
        load_config_file(tmp_path / "latin1.yaml")
    with pytest.raises(ConfigError, match=r"^x.yaml:3: invalid YAML: mapping values are not allowed"):
        load_text("version: v1\nmig-configs:\n  a: b: c\n", "x.yaml")



# --- the one YAML reader: line numbers and guards --------------------------------------------------


def test_the_reader_locates_every_key_and_item() -> None:
    doc = parse_document("jobs:\n  - name: a\n    command: [x]\n  - name: b\n", "jobs.yaml")
    assert doc.data == {"jobs": [{"name": "a", "command": ["x"]}, {"name": "b"}]}
    paths: list[tuple[str | int, ...]] = [("jobs",), ("jobs", 0, "command"), ("jobs", 1), ("jobs", 1, "name")]
    assert [doc.line_of(p) for p in paths] == [1, 3, 4, 4]
    assert doc.line_of(("jobs", 1, "missing", 3)) == 4  # the nearest enclosing key
    assert str(doc.error(("jobs", 0, "command", 0), "not found")) == "jobs.yaml:3: jobs[0].command[0]: not found"
    with pytest.raises(ConfigError, match=r"^d.yaml:3: a: duplicate key \(first at line 1\)$"):
        parse_document("a: 1\nb: 2\na: 3\n", "d.yaml")


def test_the_reader_refuses_alias_bombs_recursion_and_huge_documents() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )  # 10**9 nodes once expanded
    with pytest.raises(ConfigError, match=r"^bomb.yaml:\d+: .*document too large \(aliases expand to over"):
        parse_document(bomb, "bomb.yaml")
    with pytest.raises(ConfigError, match=r"^loop.yaml:1: a\[0\]: recursive alias$"):
        parse_document("a: &a [*a]\n", "loop.yaml")
    with pytest.raises(ConfigError, match=r"^big.yaml: document too large"):
        parse_document("#" * (MAX_CHARS + 1), "big.yaml")
    # The loaders built on it refuse the same bomb, with the file's name.
    with pytest.raises(ConfigError, match=r"^cfg.yaml:\d+: .*document too large"):
        load_text("version: v1\n" + bomb, "cfg.yaml")

# --- selection ---------------------------------------------------------------------------------

NODE_SPEC = """\
version: v1
mig-configs:
  mixed:
    - device-filter: "0x233010de"
      devices: all
      mig-enabled: true
      mig-devices: {"MIG 3G.40GB": 2}
    - device-filter: ["0x232910DE", "0x290110DE"]
      devices: [0, 2]
      mig-enabled: true
      mig-devices: {"1g.24gb": 4}
  override:
    - devices: all
      mig-enabled: true
      mig-devices: {}
    - devices: [1]
      mig-enabled: false
  pinned:
    - devices: all
      mig-enabled: true
      mig-devices: {3g.48gb: 2, 1c.2g.24gb: 1}
      x-migctl:
        instances:
          - profile: 3g.48gb
            placement: 4
            compute: [1c.3g.48gb, 1c, 1c.3g.48gb]
"""


def test_device_filter_and_devices_on_a_mixed_node() -> None:
    spec = load_text(NODE_SPEC, "node.yaml")
    node = [GpuFacts(0, H20_ID, H20, "NVIDIA H20"), GpuFacts(1, H100_ID, H100), GpuFacts(2, H20_ID, H20),
            GpuFacts(3, H20_ID, H20)]
    sel = select(spec, "mixed", node)
    assert sel.entry == {0: 1, 1: 0, 2: 1}
    assert _counts(sel.targets[0], H20) == {"1g.24gb": 4}
    assert _counts(sel.targets[1], H100) == {"3g.40gb": 2}  # filter is case-insensitive hex
    assert sel.targets[0] == sel.targets[2]
    assert set(sel.skipped) == {3} and "left alone" in sel.skipped[3]  # index 3 not in [0, 2]


def test_last_matching_entry_wins_as_in_mig_parted() -> None:
    spec = load_text(NODE_SPEC, "node.yaml")
    sel = select(spec, "override", MIXED)
    assert sel.targets[1] == Target(mig_enabled=False)
    assert sel.overridden == {1: (0,)}
    assert sel.targets[0] == sel.targets[2] == Target(mig_enabled=True, instances=())


def test_pins_compute_and_ci_profile_keys() -> None:
    spec = load_text(NODE_SPEC, "node.yaml")
    target = select(spec, "pinned", MIXED[1:2]).targets[1]
    assert target.instances == (
        TargetInstance(9, Placement(4, 4), ("1c.3g.48gb", "1c.3g.48gb", "1c.3g.48gb")),
        TargetInstance(9, None, None),
        TargetInstance(14, None, ("1c.2g.24gb",)),
    )


def test_unknown_profile_names_gpu_config_and_nearest_profile() -> None:
    text = HEAD + "    - devices: all\n      mig-enabled: true\n      mig-devices:\n        1g.24gb: 2\n"
    spec = load_text(text, "b200.yaml")
    with pytest.raises(ConfigError) as info:
        select(spec, "custom", MIXED)
    err = info.value
    assert (err.source, err.line, err.key) == ("b200.yaml", 7, "mig-configs.custom[0].mig-devices.1g.24gb")
    assert "GPU 0 (NVIDIA H100 80GB HBM3, 0x233010DE)" in err.message  # the first GPU lacking it
    assert "'custom'" in err.message
    assert suggest("1g.24gb", B200) == "1g.23gb"
    assert suggest("3g.47gb", H20) == "3g.48gb"
    b200_only = select(spec, "custom", [GpuFacts(0, H20_ID, H20)]).targets[0]
    assert _counts(b200_only, H20) == {"1g.24gb": 2}
    with pytest.raises(ConfigError, match=r"GPU 5 \(NVIDIA B200, 0x290110DE\) has no profile 1g.24gb; "
                                          r"did you mean 1g.23gb\?"):
        select(spec, "custom", [GpuFacts(5, B200_ID, B200, "NVIDIA B200")])


def test_non_mig_gpus_follow_mig_parted() -> None:
    l40s = GpuFacts(0, L40S_ID, None, "NVIDIA L40S")
    spec = load_text(HEAD + "    - devices: all\n      mig-enabled: true\n      mig-devices: {}\n"
                     "  named:\n    - devices: [0]\n      mig-enabled: true\n      mig-devices: {}\n", "n.yaml")
    assert "not MIG-capable" in select(spec, "custom", [l40s]).skipped[0]
    with pytest.raises(ConfigError, match="not MIG-capable"):
        select(spec, "named", [l40s])


# --- inline --layout ---------------------------------------------------------------------------


def test_inline_layout_resolves_like_a_config_entry() -> None:
    h20 = GpuFacts(0, H20_ID, H20)
    target = resolve(parse_layout("3g.48gb, 2g.24gb,1g.12gb:2"), h20)
    assert _counts(target, H20) == {"3g.48gb": 1, "2g.24gb": 1, "1g.12gb": 2}
    pinned = resolve(parse_layout("3g.48gb@4[1c.3g.48gb,1c.3g.48gb,1c.3g.48gb],3g.48gb@0[]"), h20)
    assert pinned.instances == (TargetInstance(9, Placement(0, 4), ()),
                                TargetInstance(9, Placement(4, 4), ("1c.3g.48gb",) * 3))
    assert resolve(parse_layout(""), h20) == Target(mig_enabled=True, instances=())
    assert resolve(parse_layout("disabled"), h20) == Target(mig_enabled=False)
    assert format_layout(parse_layout("1g.12gb,3g.48gb@4,1g.12gb")) == "1g.12gb:2,3g.48gb@4"


@pytest.mark.parametrize(("text", "message"), [
    ("3g.48gb:2@4", "stands for one instance"),
    ("3g.48gb,", "expected PROFILE"),
    ("3g.48gb:0", "at least 1"),
    ("big", "not a MIG profile name"),
    ("3g.48gb[1c", "expected PROFILE"),
])
def test_inline_layout_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_layout(text)
    assert str(info.value).startswith("--layout: ")


def test_inline_compute_must_belong_to_its_instance() -> None:
    with pytest.raises(ConfigError, match="does not belong"):
        resolve(parse_layout("3g.48gb[1c.2g.24gb]"), GpuFacts(0, H20_ID, H20))
