"""``-i`` (issue 10 §3): one rule on every command, every form nvidia-smi takes (hypothesis).

Without ``-i`` a command acts on every GPU; ``-i`` takes an index, a list, a range, a UUID or a
PCI bus ID in each of NVML's forms; where "every GPU" is not what a user would mean
(``create``, GPU-instance IDs, ``reset``), the rule asks for ``-i`` or narrows it, the same for
the CLI and ``migctl.Node``.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Cli, Sim, SimFactory, one_line_error
from migctl.config.errors import ConfigError
from migctl.config.gpus import parse_bus_id, select_gpus

# -- -i: one rule, every form nvidia-smi takes -----------------------------------------------------


class G:
    def __init__(self, index: int, uuid: str, bus_id: str) -> None:
        self.index, self.uuid, self.bus_id = index, uuid, bus_id


NODE = [G(i, f"GPU-{i:08x}-0000-4000-8000-{i:012x}", f"00000000:{bus:02X}:00.0")
        for i, bus in enumerate([0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB])]


def _bus_forms(bus_id: str) -> list[str]:
    """Every spelling of ``bus_id`` NVML's nvmlDeviceGetHandleByPciBusId accepts."""
    domain, bus, rest = bus_id.split(":")
    device, function = rest.split(".")
    d, b, v, f = int(domain, 16), int(bus, 16), int(device, 16), int(function, 16)
    return [
        # domain:bus:device.function
        bus_id, bus_id.lower(), f"{d:04x}:{b:02x}:{v:02x}.{f}", f"{d:x}:{b:x}:{v:x}.{f:x}",
        f"{d:08X}:{b:02X}:{v:02X}", f"{d:x}:{b:x}:{v:x}",  # domain:bus:device
        f"{b:02X}:{v:02X}.{f}", f"{b:x}:{v:x}.{f:x}",  # bus:device.function
    ]


@st.composite
def selection(draw: st.DrawFn) -> tuple[str, set[int]]:
    """A ``-i`` text in any mix of forms, and the GPUs it names."""
    parts, want = [], set()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["index", "range", "uuid", "bus"]))
        i = draw(st.integers(0, len(NODE) - 1))
        if kind == "index":
            parts.append(str(i))
            want.add(i)
        elif kind == "range":
            j = draw(st.integers(i, len(NODE) - 1))
            parts.append(f"{i}-{j}")
            want |= set(range(i, j + 1))
        elif kind == "uuid":
            parts.append(draw(st.sampled_from([NODE[i].uuid, NODE[i].uuid.lower(), NODE[i].uuid.upper()])))
            want.add(i)
        else:
            parts.append(draw(st.sampled_from(_bus_forms(NODE[i].bus_id))))
            want.add(i)
    spaces = draw(st.sampled_from([",", ", "]))
    return spaces.join(parts), want


@settings(max_examples=300, deadline=None)
@given(selection())
def test_every_gpu_selection_form_names_its_gpus(case: tuple[str, set[int]]) -> None:
    text, want = case
    chosen = select_gpus(NODE, text)
    assert [g.index for g in chosen] == sorted(want)  # in index order, each once


@pytest.mark.parametrize("text", [None, "", "all", " ALL "])
def test_no_selection_is_every_gpu(text: str | None) -> None:
    assert [g.index for g in select_gpus(NODE, text)] == list(range(8))


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="ascii", exclude_characters=","), min_size=1, max_size=12))
def test_anything_else_is_a_config_error_naming_it(text: str) -> None:
    try:
        chosen = select_gpus(NODE, text)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message  # one line, even for a selection with a newline in it
        assert (text if text.isprintable() else repr(text)) in message
        return
    # it did name GPUs: then it was one of the forms
    stripped = text.strip()
    assert stripped.lower() in ("", "all") or re.fullmatch(r"\d+(-\d+)?", stripped) or parse_bus_id(stripped)
    assert chosen


def test_bus_ids_match_by_value_not_by_text() -> None:
    assert parse_bus_id("00000000:AB:00.0") == parse_bus_id("ab:0.0") == parse_bus_id("0:ab:0") == (0, 0xAB, 0, 0)
    assert parse_bus_id("0:13") is None  # GPU:GI, not a bus ID
    assert parse_bus_id("18") is None


def test_gpu_selection_on_the_cli_by_bus_id(migctl: Cli) -> None:
    for form in ("00000000:AB:00.0", "0000:ab:00.0", "AB:00.0", "0:ab:0"):
        r = migctl("--sim", "h20x8", "devices", "-i", form, "--json")
        assert r.code == 0, r.err
        assert [g["index"] for g in r.json()["gpus"]] == [5], form
    line = one_line_error(migctl("--sim", "h20x8", "devices", "-i", "00000000:AC:00.0"), 2)
    assert "no GPU has PCI bus ID 00000000:AC:00.0" in line and "00000000:AB:00.0" in line


# -- one default for -i, and the explicit ones ----------------------------------------------------


def test_without_i_create_partitions_every_gpu_with_mig_enabled(sim: SimFactory) -> None:
    """``migctl mode enable && migctl create 1g.12gb:7`` partitions all 8 GPUs (as nvidia-smi)."""
    s = sim("h20x8", enable=None)
    s.ok("mode", "enable")
    made = s.create("1g.12gb:7")
    assert sorted({m["gpu"] for m in made}) == list(range(8)) and len(made) == 56


def test_without_i_create_skips_gpus_with_mig_disabled(sim: SimFactory) -> None:
    s = sim("h20x8", enable="2,5")
    assert sorted({m["gpu"] for m in s.create("1g.12gb")}) == [2, 5]


def test_without_i_create_says_why_when_no_gpu_has_mig_enabled(sim: SimFactory) -> None:
    s = sim("a30x2", enable=None)
    r = s("create", "1g.6gb")
    assert r.code == 3 and "MIG is disabled on GPU 0" in r.err


def test_gpu_instance_ids_need_i_on_a_node_with_several_gpus(sim: SimFactory) -> None:
    s = sim("h20x8", enable="0")
    made = s.create("-i", "0", "1g.12gb:4")
    before = s.status()
    gi = str(made[0]["gpu_instance_id"])
    for argv in (["destroy", "--gi", gi], ["destroy", "--ci", f"{gi}:0"], ["create-ci", "--gi", gi],
                 ["ci-profiles", "--gi", gi]):
        line = one_line_error(s(*argv), 2)
        assert "-i" in line, line
    assert s.status() == before
    # on a one-GPU node -i may be left out
    one = Sim(s.cli, "a30")
    one.ok("sim", "reset")
    one.ok("mode", "enable")
    (m,) = one.create("2g.12gb")
    assert one.ok("ci-profiles", "--gi", str(m["gpu_instance_id"])).out


def test_reset_asks_for_i_and_takes_all(sim: SimFactory) -> None:
    s = sim("a30x2", enable=None)
    line = one_line_error(s("reset"), 2)
    assert "-i" in line and "-i all" in line
    s.ok("mode", "enable")
    assert [g["gpu"] for g in s.json("reset", "-i", "all")["gpus"]] == [0, 1]
    s.create("-i", "1", "1g.6gb")
    r = s("reset", "-i", "all", "--json")
    assert r.code == 5 and r.json()["error"] == "in_use"  # it would only destroy GPU 1's instance
    assert [g["gpu"] for g in s.json("reset", "-i", "all", "--force")["gpus"]] == [0, 1]
