"""``migctl top``: its screens as text at a fixed size, its keys, and the real thing in tmux.

The snapshot tests draw a node described here by hand (records, as an observation round
returns them) and compare with screens written by hand from the layout documented in
``docs/observability.md``: nothing expected is captured from the code under test. The tmux
test runs ``migctl top`` in a real terminal (80x24), presses keys and reads the screen.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from busy_node import SPEC, Busy, busy_node
from conftest import MIGCTL, REPO, SimFactory
from migctl.core.geometry import Placement
from migctl.records.common import Holder, ProcessRecord
from migctl.records.inspect import (
    ComputeInstanceStatus,
    DeviceMemory,
    EngineCounts,
    GpuInstanceStatus,
    GpuStatus,
    Memory,
    MigModeState,
    StatusReport,
    Utilization,
)
from migctl.records.observe import GpuTelemetryRecord, Observation
from migctl.records.schema import by_command, command_schema
from migctl.top.screen import frame
from migctl.top.terminal import parse_keys
from migctl.top.view import DOWN, END, ENTER, ESC, HOME, PGDN, PGUP, UP, History, ViewState

# -- a node described by hand -------------------------------------------------------------------------

NAME = "NVIDIA H100 80GB HBM3"
UUID0, UUID1 = "GPU-00000000-0000-4000-8000-000000000000", "GPU-11111111-1111-4111-8111-111111111111"
NOON_UTC = 1767268800.0  # 2026-01-01 12:00:00 UTC


def gpm(pct: float) -> Utilization:
    return Utilization("gpm", None, pct, None, pct, pct, pct, pct, pct, 1.0)


NO_CI = Utilization("n/a", "no compute instance, so nothing runs on it", *([None] * 8))


def device(
    ci_id: int,
    profile: str,
    uuid: str,
    total: int,
    used: int,
    processes: tuple[ProcessRecord, ...] = (),
    holder: Holder | None = None,
) -> ComputeInstanceStatus:
    return ComputeInstanceStatus(
        id=ci_id,
        profile_id=0,
        profile=profile,
        placement=Placement(0, 1),
        uuid=uuid,
        processes=processes,
        holder=holder,
        memory=DeviceMemory(total, used, total - used - 12, 12),
        bar1=Memory(total_mib=16384, used_mib=2),
        sm=16,
        engines=EngineCounts(1, 1, 0, 1, 0),
    )


ALICE = ProcessRecord(4242, "alice", "python train.py", 2048, 2, 0)
BOB = ProcessRecord(6000, "bob", "python serve.py", 1024, None, None)
JOB = Holder(pid=5151, command="migctl batch jobs.yaml", since=NOON_UTC, source="lease", job="train-3")

GPU0 = GpuStatus(
    index=0,
    uuid=UUID0,
    name=NAME,
    pci_device_id="0x233010DE",
    bus_id="00000000:18:00.0",
    memory=Memory(total_mib=81559, used_mib=2060),
    mig_capable=True,
    mig=MigModeState(current=True, pending=True),
    slices=8,
    gpu_instances=(
        GpuInstanceStatus(
            2, 9, "3g.40gb", Placement(4, 4), (device(0, "3g.40gb", "MIG-a", 40448, 2048, processes=(ALICE,)),), gpm(70)
        ),
        GpuInstanceStatus(4, 14, "2g.20gb", Placement(2, 2), (), NO_CI),
        GpuInstanceStatus(
            7, 20, "1g.10gb+me", Placement(0, 1), (device(0, "1g.10gb+me", "MIG-b", 9984, 0, holder=JOB),), gpm(0)
        ),
    ),
    processes=(ALICE,),
    utilization=gpm(31.8),
)
GPU1 = GpuStatus(
    index=1,
    uuid=UUID1,
    name=NAME,
    pci_device_id="0x233010DE",
    bus_id="00000000:2A:00.0",
    memory=Memory(total_mib=81559, used_mib=1036),
    mig_capable=True,
    mig=MigModeState(current=False, pending=False),
    slices=8,
    gpu_instances=(),
    processes=(BOB,),
    utilization=Utilization("nvml", None, 40.0, 16.0, None, None, None, None, None, None),
)


def telemetry(index: int, used: int, temp: int, watts: float) -> GpuTelemetryRecord:
    return GpuTelemetryRecord(index, temp, watts, 700.0, 1000, 1980, 2619, 0, 0, DeviceMemory(81559, used, 0, 12))


OBS = Observation(
    taken=NOON_UTC,
    duration_s=0.01,
    hostname="node1",
    driver_version="570.172.08",
    status=StatusReport(simulated=True, gpus=(GPU0, GPU1)),
    telemetry=(telemetry(0, 2048, 58, 380.4), telemetry(1, 1024, 46, 290.0)),
    last_apply=None,
)
HISTORY = History(
    series={
        UUID0: deque([None, 30.0, 31.8]),
        f"{UUID0}/2": deque([None, 60.0, 70.0, 70.0]),
        f"{UUID0}/7": deque([None, 0.0, 0.0]),
        UUID1: deque([40.0]),
    }
)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def screen(state: ViewState, width: int = 80, height: int = 24) -> list[str]:
    lines = frame(OBS, state, HISTORY, width, height)
    assert len(lines) == height and all(line.cell_len <= width for line in lines)
    return [line.plain.rstrip() for line in lines]


KEYS_LINE = "q quit  s sort  r reverse  / filter  p processes  +/- interval  h help"

# -- snapshots ------------------------------------------------------------------------------------------


def test_the_main_screen_at_80x24() -> None:
    expected = [
        "migctl top  node1  12:00:00  every 2 s  sort: natural  filter: -",
        "2 GPUs  3 GPU instances  2 MIG devices  2 processes  1 leased",
        "GPU 0  NVIDIA H100 80GB HBM3  MIG on  mem 2.0/79.6G  util 32%  58°C  380 W",
        "  | GI7  |  ·   | GI4 2g.20gb |        GI2 3g.40gb        |",
        "   2/0 3g.40gb    ▍         2.0/39.5G  70%        ▅▆▆ 4242 alice python train.py",
        "   4/- 2g.20gb    no compute instance: nothing can run on it",
        "   7/0 1g.10gb+me            0.0/9.8G   0%            job train-3 (pid 5151)",
        "  util n/a: no compute instance, so nothing runs on it",
        "GPU 1  NVIDIA H100 80GB HBM3  MIG off  mem 1.0/79.6G  util 40%  46°C  290 W",
        "  pid 6000 bob 1.0G python serve.py",
        *[""] * 13,
        KEYS_LINE,
    ]
    assert screen(ViewState()) == expected


def test_sorted_by_utilization_and_filtered() -> None:
    state = ViewState()
    for key in ("s", "/", "a", "l", "i", "c", "e", ENTER):
        state.press(key)
    expected = [
        "migctl top  node1  12:00:00  every 2 s  sort: util  filter: alice",
        "2 GPUs  3 GPU instances  2 MIG devices  2 processes  1 leased",
        "GPU 0  NVIDIA H100 80GB HBM3  MIG on  mem 2.0/79.6G  util 32%  58°C  380 W",
        "  | GI7  |  ·   | GI4 2g.20gb |        GI2 3g.40gb        |",
        "   2/0 3g.40gb    ▍         2.0/39.5G  70%        ▅▆▆ 4242 alice python train.py",
        *[""] * 18,
        KEYS_LINE,
    ]
    assert screen(state) == expected
    state.press(ESC)  # the filter is gone; by util the whole GPU at 40% comes first
    lines = screen(state)
    assert [line.split("  ")[0] for line in lines if line.startswith("GPU ")] == ["GPU 1", "GPU 0"]
    state.press("r")
    lines = screen(state)
    assert [line.split("  ")[0] for line in lines if line.startswith("GPU ")] == ["GPU 0", "GPU 1"]
    assert lines[0].endswith("sort: util (reversed)  filter: -")


def test_the_processes_view_sorted_by_memory() -> None:
    state = ViewState()
    for key in ("p", "s", "s"):
        state.press(key)
    expected = [
        "migctl top  node1  12:00:00  every 2 s  sort: memory  filter: -",
        "2 GPUs  3 GPU instances  2 MIG devices  2 processes  1 leased",
        "GPU GI/CI     PID USER        GPU-MEM JOB        COMMAND",
        "  0   2/0    4242 alice         2048M            python train.py",
        "  1     -    6000 bob           1024M            python serve.py",
        *[""] * 18,
        "q quit  s sort  r reverse  / filter  p devices  +/- interval  h help",
    ]
    assert screen(state) == expected


def test_a_small_terminal_scrolls_and_says_where_it_is() -> None:
    state = ViewState()
    top = screen(state, height=8)
    assert top[2:7] == [
        "GPU 0  NVIDIA H100 80GB HBM3  MIG on  mem 2.0/79.6G  util 32%  58°C  380 W",
        "  | GI7  |  ·   | GI4 2g.20gb |        GI2 3g.40gb        |",
        "   2/0 3g.40gb    ▍         2.0/39.5G  70%        ▅▆▆ 4242 alice python train.py",
        "   4/- 2g.20gb    no compute instance: nothing can run on it",
        "   7/0 1g.10gb+me            0.0/9.8G   0%            job train-3 (pid 5151)",
    ]
    assert top[7] == KEYS_LINE + "     1-5/8"
    state.press(PGDN)  # a page down, but never past the last line
    bottom = screen(state, height=8)
    assert bottom[2:7] == [
        "   4/- 2g.20gb    no compute instance: nothing can run on it",
        "   7/0 1g.10gb+me            0.0/9.8G   0%            job train-3 (pid 5151)",
        "  util n/a: no compute instance, so nothing runs on it",
        "GPU 1  NVIDIA H100 80GB HBM3  MIG off  mem 1.0/79.6G  util 40%  46°C  290 W",
        "  pid 6000 bob 1.0G python serve.py",
    ]
    assert bottom[7] == KEYS_LINE + "     4-8/8"
    state.press(HOME)
    assert screen(state, height=8) == top


def test_wide_terminals_get_longer_history() -> None:
    line = next(x for x in screen(ViewState(), width=110) if x.startswith("   2/0"))
    # 10 cells at 80 columns, 20 at 110: the same 4 samples, right-aligned
    assert line == "   2/0 3g.40gb    ▍         2.0/39.5G  70%                  ▅▆▆ 4242 alice python train.py"


def test_the_help_screen_lists_every_key() -> None:
    state = ViewState()
    state.press("?")
    lines = screen(state)
    assert lines[2] == "Keys"
    assert lines[3] == "  q            quit"
    assert any(line.startswith("  / f ") for line in lines)
    state.press("x")  # any key closes it
    assert screen(state)[2].startswith("GPU 0")


# -- keys ---------------------------------------------------------------------------------------------


def typing(state: ViewState) -> str | None:
    return state.editing


def test_keys_change_the_view_as_documented() -> None:
    state = ViewState(interval_s=2.0)
    assert [state.press(k) for k in ("+", "+", "-")] == ["redraw"] * 3 and state.interval_s == 3.0
    for _ in range(10):
        state.press("-")
    assert state.interval_s == 0.5  # the shortest
    assert [state.sort for _ in range(5) if state.press("s")] == ["util", "memory", "processes", "profile", "natural"]
    state.press(",")
    assert state.sort == "profile"
    assert state.press(" ") == "refresh" and state.press("R") == "refresh"
    state.press("/")
    assert state.press("q") == "redraw" and state.editing == "q"  # typing, not quitting
    state.press(ESC)
    assert typing(state) is None and state.filter == ""
    assert state.press(DOWN) == "redraw" and state.scroll == 1
    state.press(UP)
    state.press(UP)
    assert state.scroll == 0
    state.press(END)
    assert state.scroll > 0
    assert state.press("z") == "ignore"
    assert state.press("q") == "quit"


@given(st.binary(max_size=64))
def test_any_input_reads_as_known_keys(data: bytes) -> None:
    named = {UP, DOWN, PGUP, PGDN, HOME, END, ESC, ENTER, "bs"}
    for key in parse_keys(data.decode("utf-8", "replace")):
        assert key in named or len(key) == 1
        ViewState().press(key)  # no key breaks the view


def test_escape_sequences_are_keys() -> None:
    assert parse_keys("\x1b[A\x1b[B\x1b[5~\x1b[6~\x1bOH\x1b[4~q\r\x1b") == [
        UP,
        DOWN,
        PGUP,
        PGDN,
        HOME,
        END,
        "q",
        ENTER,
        ESC,
    ]


# -- the real thing -----------------------------------------------------------------------------------


@pytest.fixture
def busy(sim: SimFactory) -> Iterator[Busy]:
    with busy_node(sim) as b:
        yield b


def test_once_prints_one_screen_of_every_line(busy: Busy) -> None:
    out = busy.sim.ok("top", "--once").out
    assert out.startswith("migctl top  ")
    assert "GPU 0" in out and "GPU 1" in out and "job train-3" in out and "70%" in out


def test_json_is_one_measured_status(busy: Busy) -> None:
    doc = busy.sim.json("top")
    jsonschema.validate(doc, command_schema(by_command()["top"].record), cls=jsonschema.Draft202012Validator)
    gi = next(gi for gi in doc["gpus"][0]["gpu_instances"] if gi["profile"] == "3g.40gb")
    assert gi["utilization"]["gpu_pct"] == pytest.approx(70)


def _tmux() -> str:
    found = shutil.which("tmux")
    assert found, "tmux is needed for this test: run tools/install-test-deps.sh"
    return found


class Tmux:
    """One private tmux server (its own socket) with one 80x24 window."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], status: Path) -> None:
        self.base = [_tmux(), "-L", name, "-f", os.devnull]
        self.status = status
        # The shell records the program's exit status itself: tmux 3.3 sometimes marks a pane
        # dead without ever reporting the status of the process that ran in it.
        line = " ".join(shlex.quote(a) for a in command) + f"; echo $? > {shlex.quote(str(status))}"
        subprocess.run(
            [*self.base, "new-session", "-d", "-s", "top", "-x", "80", "-y", "24", line],
            env=env,
            check=True,
        )
        subprocess.run([*self.base, "set-option", "-t", "top", "remain-on-exit", "on"], check=True)

    def screen(self) -> list[str]:
        out = subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True, check=True
        )
        return out.stdout.splitlines()

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "top", *keys], check=True)

    def wait_for(self, what: str, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen()
            if any(what in line for line in lines):
                return lines
            assert time.monotonic() < deadline, f"{what!r} never appeared:\n" + "\n".join(lines)
            time.sleep(0.2)

    def exit_status(self) -> str | None:
        """The program's exit status once it has ended, else ``None``."""
        try:
            text = self.status.read_text()
        except FileNotFoundError:
            return None
        return text.strip() if text.endswith("\n") else None

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, check=False)


def test_top_in_a_real_terminal(busy: Busy, state_dir: Path) -> None:
    status = busy.sim.json("status")
    ids = {gi["profile"]: gi["id"] for gi in status["gpus"][0]["gpu_instances"]}
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    command = [*MIGCTL, "--sim", SPEC, "top", "--interval", "0.5"]
    tmux = Tmux(f"migctl-test-{os.getpid()}", command, env, state_dir.parent / "top.status")
    try:
        lines = tmux.wait_for("GPU 1")
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert lines[0].startswith("migctl top") and "sort: natural" in lines[0]
        assert lines[-1].startswith("q quit")
        gpus = [line.split("  ")[0] for line in lines if line.startswith("GPU ")]
        assert gpus == ["GPU 0", "GPU 1"]
        lines = tmux.wait_for("70%")  # GPM measured the busy instance
        row = next(line for line in lines if line.startswith(f"  {ids['3g.40gb']:>2}/0 3g.40gb"))
        assert "70%" in row and "sleep 60" in row

        tmux.keys("s")  # sort by utilization: the whole GPU at 40% before the MIG GPU (70% of 60/132 SMs)
        lines = tmux.wait_for("sort: util")
        assert [line.split("  ")[0] for line in lines if line.startswith("GPU ")] == ["GPU 1", "GPU 0"]

        tmux.keys("/", "train-3", "Enter")  # the batch job's device only
        lines = tmux.wait_for("filter: train-3")
        assert [line.split("  ")[0] for line in lines if line.startswith("GPU ")] == ["GPU 0"]
        rows = [line for line in lines if line.startswith("  ") and "/" in line[:8] and "|" not in line]
        assert len(rows) == 1 and "1g.10gb+me" in rows[0] and "job train-3" in rows[0]

        tmux.keys("Escape")
        tmux.wait_for("filter: -")
        tmux.keys("q")
        deadline = time.monotonic() + 15
        while tmux.exit_status() is None:
            assert time.monotonic() < deadline, "q did not quit:\n" + "\n".join(tmux.screen())
            time.sleep(0.1)
        assert tmux.exit_status() == "0"
    finally:
        tmux.close()


def test_install_test_deps_provides_tmux() -> None:
    script = REPO / "tools" / "install-test-deps.sh"
    assert os.access(script, os.X_OK)
    assert "tmux" in script.read_text()
    # Idempotent and quiet when everything is there (as it is wherever this suite has run).
    if shutil.which("tmux"):
        r = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
