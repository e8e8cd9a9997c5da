"""Absurd input and hostile conditions (issue 9 items 4, 5, 8, 9, 10): compute layouts that cannot
fit, counts and files without bounds, non-NVML exceptions mid-change, permission problems, and
digits that are not ASCII. Each must change nothing (or roll back), with a documented exit code
and a one-line error naming the problem and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Cli, Sim, one_line_error
from migctl import Node
from migctl.core.layout import ProfileRequest
from migctl.device.gpu import Gpu
from migctl.errors import UsageError
from test_safety_races import layout
from test_safety_state import AS_NOBODY, _as_nobody_python

# ------------------------------------------------------------------------------------ item 4


@pytest.mark.parametrize(
    "bad",
    [
        "3g.48gb[1c,1c,1c,1c]",  # 4 compute slices in a 3-slice instance
        "4g.48gb[3c,2c]",
        "2g.24gb[2c,1c]",
        "1g.12gb[1c,1c]",
        "3g.48gb@4[2c,2c]",
    ],
)
def test_compute_layouts_that_cannot_fit_are_refused_before_any_change(migctl: Cli, bad: str) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("mode", "enable")
    s.ok("apply", "--layout", "1g.12gb:7")
    before = layout("h20x1")
    planned = s("plan", "--layout", bad)
    assert planned.code == 4, (planned.out, planned.err)
    assert "do not fit" in planned.err or "need more" in planned.err
    started = time.monotonic()
    applied = s("apply", "--layout", bad)
    assert applied.code == 4 and "nothing was changed" in applied.err
    assert time.monotonic() - started < 5
    assert layout("h20x1") == before  # no GPU instance created, no UUID changed


def test_compute_layout_is_checked_against_nvml_when_such_an_instance_exists(migctl: Cli) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("apply", "--layout", "3g.48gb,1g.12gb")  # a 3g instance: NVML lists its compute profiles
    r = s("plan", "--layout", "3g.48gb[1c,1c,1c,1c]")
    assert r.code == 4 and "they need 4 compute slice(s) together and it has 3" in r.err
    s.ok("plan", "--layout", "3g.48gb[1c,1c,1c]")
    s.ok("plan", "--layout", "3g.48gb[2c,1c],4g.48gb[2c,2c]")


# ------------------------------------------------------------------------------------ item 5


@pytest.mark.parametrize(
    "count", ["1000000000", "100000000000000000000", "9" * 5000, "65"]
)
def test_absurd_counts_are_refused_at_once(migctl: Cli, count: str) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("mode", "enable")
    started = time.monotonic()
    for args in (["create", f"1g.12gb:{count}"], ["plan", "--layout", f"1g.12gb:{count}"]):
        r = s(*args)
        assert r.code == 2, (args, r.err)
        assert "at most" in r.err and "internal error" not in r.err
    assert time.monotonic() - started < 5
    assert layout("h20x1") == [(True, [])]


def test_counts_beyond_the_gpu_are_refused_before_the_host_lock(migctl: Cli, state_dir: Path) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("mode", "enable")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from migctl.ops.lock import host_lock\n"
         "with host_lock(what='test holder'):\n    print('held', flush=True); time.sleep(30)"],
        env={**os.environ, "MIGCTL_STATE_DIR": str(state_dir)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = s("create", "1g.12gb:8", "--wait", "20")
        assert r.code == 2 and "at most 7 1g.12gb" in r.err  # at once, not after waiting for the lock
    finally:
        holder.kill()
        holder.wait()


def test_the_api_refuses_a_huge_count_without_overflow(state_dir: Path) -> None:
    with Node(sim="h20x1") as node:
        node.mode(True)
        with pytest.raises(UsageError, match="at most 7"):
            node.create(ProfileRequest("1g.12gb", 10**20))
        with pytest.raises(UsageError, match="at least 1"):
            node.create(ProfileRequest("1g.12gb", 0))


@pytest.mark.parametrize("source", ["/dev/zero", "big"])
def test_files_over_the_size_limit_are_refused_at_once(migctl: Cli, tmp_path: Path, source: str) -> None:
    s = Sim(migctl, "h20x1")
    path = source
    if source == "big":
        big = tmp_path / "big.yaml"
        big.write_text("version: v1\nmig-configs:\n  x:\n" + "  # padding\n" * 200_000)
        path = str(big)
    started = time.monotonic()
    for args in (["apply", "-f", path, "-c", "x"], ["plan", "-f", path], ["batch", path], ["batch", "--auto", path]):
        r = s(*args)
        assert r.code == 2 and "larger than 1024 KiB" in r.err, (args, r.err)
    assert time.monotonic() - started < 10


def test_a_huge_stdin_is_refused(migctl: Cli) -> None:
    r = Sim(migctl, "h20x1")("plan", "-f", "-", input="#" * (2 << 20))
    assert r.code == 2 and "<stdin>" in r.err and "larger than" in r.err


# ------------------------------------------------------------------------------------ item 8


@pytest.mark.parametrize("value", ["nan", "inf", "1e309", "-inf"])
def test_latencies_that_are_not_finite_are_refused(migctl: Cli, value: str) -> None:
    r = Sim(migctl, "h20x1")("mode", "enable", env={"MIGCTL_SIM_LATENCY": value})
    assert r.code == 2 and "MIGCTL_SIM_LATENCY" in r.err and "finite" in r.err


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "-inf"])
def test_wait_must_be_a_finite_number(migctl: Cli, value: str) -> None:
    s = Sim(migctl, "h20x1")
    for args in (
        ["create", "1g.12gb", "--wait", value],
        ["recover", "--wait", value],
        ["apply", "--layout", "1g.12gb:7", "--wait", value],
        ["cluster", "apply", "-c", "all-1g.12gb", "--wait", value],  # refused before any Ray node is asked
    ):
        r = s(*args)
        assert r.code == 2 and "--wait" in r.err, (args, r.err)
        assert r.out == "", (args, r.out)  # refused as the arguments are read: no plan printed first
    assert s("run", "--queue", value, "--", "true").code == 2 or value in ("inf",)  # run: the device queue


def test_any_exception_mid_apply_is_rolled_back(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only driver errors: a bug, a ValueError from anywhere below, rolls the GPU back too."""
    with Node(sim="h20x1") as node:
        node.apply("1g.12gb:7")
    before = layout("h20x1")
    real = Gpu.create_gpu_instance
    calls = []

    def flaky(self: Gpu, *args: object, **kwargs: object) -> object:
        calls.append(args)
        if len(calls) == 2:
            raise ValueError("sleep length must be non-negative")  # what latency=nan raised
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Gpu, "create_gpu_instance", flaky)
    with Node(sim="h20x1") as node:
        report = node.apply("3g.48gb,2g.24gb,1g.12gb:2")
    assert [g.result for g in report.gpus] == ["rolled_back"]
    assert "ValueError" in report.gpus[0].detail
    assert layout("h20x1") == before
    assert not list((state_dir / "journal").glob("gpu-*.json"))  # nothing left for recover to "finish"


# ------------------------------------------------------------------------------------ item 9


def test_no_permission_inside_apply_exits_6_with_the_hint(migctl: Cli) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("apply", "--layout", "1g.12gb:7")
    r = s("apply", "--layout", "7g.96gb", env={"MIGCTL_SIM_FAULTS": "create-gi@1=NO_PERMISSION"})
    assert r.code == 6, (r.out, r.err)
    assert "run as root" in r.out and "rolled back" in r.out


def test_no_permission_inside_create_keeps_the_hint_and_says_what_was_undone(migctl: Cli) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("mode", "enable")
    r = s("create", "1g.12gb:3", env={"MIGCTL_SIM_FAULTS": "create-gi@2=NO_PERMISSION"})
    assert r.code == 6
    assert "run as root" in r.err and "/proc/driver/nvidia/capabilities/mig/config" in r.err
    assert "destroyed again" in r.err


def test_status_shows_what_it_can_when_only_the_process_query_is_denied(migctl: Cli) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("mode", "enable")
    s.ok("create", "1g.12gb:2")
    denied = {"MIGCTL_SIM_FAULTS": "nvmlDeviceGetComputeRunningProcesses=NO_PERMISSION"}
    r = s("status", env=denied)
    assert r.code == 0 and "processes: unknown" in r.out and "1g.12gb" in r.out
    data = s("status", "--json", env=denied).json()
    assert data["gpus"][0]["processes_known"] is False
    d = s("destroy", "--all", env=denied)  # busy or not cannot be known: nothing destroyed
    assert d.code == 6 and "run as root" in d.err
    assert len(layout("h20x1")[0][1]) == 2


@pytest.mark.skipif(_as_nobody_python() is None, reason="needs root and an interpreter another user can run")
def test_a_user_without_a_writable_home_or_root_state_gets_exit_6_with_the_fix(tmp_path: Path) -> None:
    exe = _as_nobody_python()
    assert exe is not None
    site = [p for p in sys.path if p.endswith("site-packages")]
    from conftest import REPO

    base = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), *site]), "PATH": os.environ["PATH"]}
    root_only = Path("/tmp") / f"migctl-root-only-{os.getpid()}"
    root_only.mkdir(mode=0o700)
    try:
        cases = [
            {**base, "HOME": "/nonexistent", "MIGCTL_SIM": "h20x1"},  # nobody's real HOME
            {**base, "HOME": "/tmp", "MIGCTL_STATE_DIR": str(root_only), "MIGCTL_SIM": "h20x1"},
        ]
        for env in cases:
            p = subprocess.run([*exe, "-m", "migctl", "status"], env=env, capture_output=True, text=True,
                               check=False, timeout=60, **AS_NOBODY)
            assert p.returncode == 6, p.stderr
            assert "internal error" not in p.stderr and "MIGCTL_STATE_DIR" in p.stderr
            assert len(p.stderr.strip().splitlines()) == 1
    finally:
        root_only.rmdir()


# ----------------------------------------------------------------------------------- item 10


@pytest.mark.parametrize("digit", ["\u0663", "\uff13", "\U0001d7d1", "\u00b3"])  # Arabic-Indic, full-width, ...
def test_gpu_indices_must_be_ascii_digits(migctl: Cli, digit: str) -> None:
    s = Sim(migctl, "h20x8")
    for args in (["status", "-i", digit], ["reset", "-i", digit, "--force"], ["mode", "enable", "-i", digit]):
        r = s(*args)
        assert r.code == 2 and "is not a GPU index" in r.err, (args, r.err)
    s.ok("mode", "enable", "-i", "0")
    r = s("create", "-i", "0", f"1g.12gb:{digit}")
    assert r.code == 2 and layout("h20x8")[0] == (True, [])


def _number_parameters() -> list[tuple[tuple[str, ...], str | None, bool]]:
    """Every number option and argument of every command: (command words, option or None for an
    argument, whether it takes whole numbers)."""
    from typer._click.types import FloatParamType, IntParamType

    from migctl.cli import group, registry

    found: list[tuple[tuple[str, ...], str | None, bool]] = []

    def walk(words: tuple[str, ...], cmd: Any) -> None:
        for p in cmd.params:
            if isinstance(p.type, (IntParamType, FloatParamType)) and p.expose_value:
                flag = max(p.opts, key=len) if p.param_type_name == "option" else None
                found.append((words, flag, isinstance(p.type, IntParamType)))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk((*words, name), sub)

    for name in registry.COMMANDS:
        walk((name,), group.load(name))
    return found


NUMBER_PARAMETERS = _number_parameters()
NON_ASCII_DIGIT = st.characters(categories=["Nd"]).filter(lambda c: not c.isascii())


def test_the_cli_has_number_options_to_check() -> None:
    flags = {flag for _, flag, _ in NUMBER_PARAMETERS}
    assert {"--gi", "--placement", "--wait", "--pid", None} <= flags, flags


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.sampled_from(NUMBER_PARAMETERS),
    text=st.lists(st.one_of(NON_ASCII_DIGIT, st.sampled_from("0123456789")), min_size=1, max_size=4)
    .map("".join)
    .filter(lambda t: not t.isascii()),
)
def test_number_options_refuse_digits_that_are_not_ascii(
    migctl: Cli, where: tuple[tuple[str, ...], str | None, bool], text: str
) -> None:
    """int() and float() read '٣' as 3: a GPU-instance ID, a placement or a PID typed that way is
    refused (exit 2, one line naming the option), before anything runs."""
    words, flag, _whole = where
    value = [flag, text] if flag is not None else [text]
    r = migctl("--sim", "h20x1", *words, *value)
    line = one_line_error(r, 2)
    assert "write it with the digits 0-9" in line and (flag or "") in line, line


@pytest.mark.parametrize(
    ("setup", "args"),
    [
        ("7g.96gb[4c]", ["create-ci", "--gi", "\u0660", "1c.7g.96gb"]),  # Arabic-Indic zero: GI 0
        ("", ["create", "1g.12gb", "-i", "0", "--placement", "\uff13"]),  # full-width three
    ],
)
def test_a_unicode_digit_changes_nothing(migctl: Cli, setup: str, args: list[str]) -> None:
    s = Sim(migctl, "h20x1")
    s.ok("apply", "--layout", setup) if setup else s.ok("mode", "enable")
    before = layout("h20x1")
    one_line_error(s(*args), 2)
    assert layout("h20x1") == before
