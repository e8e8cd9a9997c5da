"""What the CLI writes, at its edges: data is never read as markup, ``--json`` is one document
whatever happens, a closed pipe ends quietly, and ``--version``/``--help`` start without the
heavy libraries.

Data printed verbatim (issue 10 §4): rich turns ``:AB:`` into an emoji and ``[bold]`` into
style when markup is on; slot AB is GPU 5 on HGX boards. The views are given records whose
strings are built here (every bus ID from 00 to FF, hostile profile, process, user, job and
GPU names) and must print each of them exactly; control characters (an escape sequence in a
process name) must be shown, never sent to the terminal.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import MIGCTL, Cli, SimFactory
from migctl.cli.render import safe_console
from migctl.core.geometry import Placement
from migctl.records.batch import BatchJob, BatchReport, BatchSummary
from migctl.records.common import Holder, ProcessRecord
from migctl.records.doctor import Check, DoctorReport
from migctl.records.inspect import (
    ComputeInstanceStatus,
    DeviceMemory,
    DevicesReport,
    EngineCounts,
    GpuDevices,
    GpuInstanceStatus,
    GpuStatus,
    Memory,
    MigDeviceRow,
    MigModeState,
    StatusReport,
)
from migctl.records.run import DeviceRef

BUS_IDS = [f"00000000:{b:02X}:00.0" for b in range(256)]
#: Strings rich would read as markup or emoji, and a markup escape.
MARKUP = ["[bold]x[/bold]", "[/]", ":AB:", ":smile:", "[red on white]", "\\[bold]", "[link=http://x]y[/link]"]
#: Control characters a terminal would obey: a colour, a title change, a bell, a carriage return.
CONTROL = ["\x1b[31mred", "\x1b]0;pwned\x07", "a\rb", "\x9b1m"]


def _render(render: Any, record: Any, *, terminal: bool = False) -> str:
    """What ``render`` prints of ``record`` on migctl's console (a colour terminal with ``terminal``)."""
    out = io.StringIO()
    extra: dict[str, Any] = {"force_terminal": True, "color_system": "truecolor"} if terminal else {}
    render(safe_console(width=400, file=out, **extra), record)
    return out.getvalue()


def _process(i: int, command: str, user: str = "alice") -> ProcessRecord:
    return ProcessRecord(pid=1000 + i, user=user, command=command, used_memory_mib=512, gpu_instance_id=1,
                         compute_instance_id=0)


def _gpu(index: int, bus_id: str, *, name: str = "NVIDIA H20", profile: str = "1g.12gb",
         processes: tuple[ProcessRecord, ...] = (), holder: Holder | None = None, mig: bool = True) -> GpuStatus:
    """A GPU as ops.inspect reports it: with MIG, one MIG device holding ``processes`` (which the
    GPU lists too, as NVML does); without, the processes on the whole GPU."""
    if not mig:
        return GpuStatus(index, f"GPU-{index:08d}", name, "0x232910DE", bus_id, Memory(97871, 12),
                         True, MigModeState(False, False), 8, (), processes, None)
    ci = ComputeInstanceStatus(0, 0, profile, Placement(0, 1), f"MIG-{index:08d}", processes, holder,
                               DeviceMemory(11776, 512, 11008, 256), Memory(16384, 2), 16,
                               EngineCounts(ce=1, dec=1, enc=0, jpeg=1, ofa=0))
    gi = GpuInstanceStatus(1, 19, profile, Placement(0, 1), (ci,), None)
    return GpuStatus(index, f"GPU-{index:08d}", name, "0x232910DE", bus_id, Memory(97871, 12),
                     True, MigModeState(True, True), 8, (gi,), processes, None)


def _status_views() -> Any:
    from migctl.cli.inspect_cmds import render_devices, render_status

    return render_status, render_devices


def test_every_bus_id_prints_verbatim_in_status() -> None:
    render_status, _ = _status_views()
    report = StatusReport(True, tuple(_gpu(i, bus) for i, bus in enumerate(BUS_IDS)))
    for terminal in (False, True):
        text = _render(render_status, report, terminal=terminal)
        for bus in BUS_IDS:
            assert bus in text, bus
        assert "🆎" not in text


def test_every_bus_id_prints_verbatim_in_devices_and_doctor() -> None:
    from migctl.cli.run_views import render_doctor

    _, render_devices = _status_views()
    devices = DevicesReport(tuple(
        GpuDevices(i, f"NVIDIA H20 at {bus}", f"GPU-{bus}", (MigDeviceRow(0, f"MIG-{bus}", 1, 0, ":AB:", 12032),))
        for i, bus in enumerate(BUS_IDS)
    ))
    checks = tuple(Check("mig", "warn", f"GPU {i} ({bus}): MIG mode pending", f"migctl reset -i {bus}", gpu=i)
                   for i, bus in enumerate(BUS_IDS))
    doctor = DoctorReport(simulated=True, checks=checks, summary={"pass": 0, "warn": 256, "fail": 0}, ok=True)
    for terminal in (False, True):
        dev_text = _render(render_devices, devices, terminal=terminal)
        doc_text = _render(render_doctor, doctor, terminal=terminal)
        for bus in BUS_IDS:
            assert f"NVIDIA H20 at {bus}" in dev_text and f"MIG-{bus}" in dev_text, bus
            assert f"({bus}): MIG mode pending" in doc_text and f"migctl reset -i {bus}" in doc_text, bus
        assert "MIG :AB:" in dev_text


#: Cell text: ASCII, wide (CJK, emoji) and combining characters, markup, control characters and
#: a no-break space (what rich's right justification strips, as str.rstrip). A tab or a newline
#: would only make the table rich's own.
_CELL_TEXT = st.lists(
    st.sampled_from([*"aZ09 .:-_/[]()", "日", "本", "🆎", "e\u0301", "\x1b", "\x07", "\x9b", ":smile:", "\u00a0"]),
    max_size=8,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    headers=st.lists(_CELL_TEXT.filter(bool), min_size=1, max_size=6),
    data=st.data(),
    title=st.none() | _CELL_TEXT,
    width=st.integers(10, 200),
    terminal=st.booleans(),
)
def test_the_table_style_draws_what_rich_draws(
    headers: list[str], data: st.DataObject, title: str | None, width: int, terminal: bool
) -> None:
    """``render.table`` draws the tables it can itself (faster); the output is rich's, byte for byte."""
    from rich import box
    from rich.table import Table

    from migctl.cli.render import table

    right = data.draw(st.sets(st.sampled_from(headers)))
    rows = data.draw(st.lists(st.lists(_CELL_TEXT, min_size=len(headers), max_size=len(headers)), max_size=6))
    reference = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold", show_edge=False
    )
    for h in headers:
        reference.add_column(h, justify="right" if h in right else "left", no_wrap=True)
    ours = table(*headers, title=title, right=tuple(right))
    for row in rows:
        reference.add_row(*row)
        ours.add_row(*row)
    drawn = []
    for t in (ours, reference):
        out = io.StringIO()
        extra: dict[str, Any] = {"force_terminal": True, "color_system": "truecolor"} if terminal else {}
        safe_console(width=width, file=out, **extra).print(t)
        drawn.append(out.getvalue())
    assert drawn[0] == drawn[1]


@pytest.mark.parametrize("terminal", [False, True])
def test_hostile_names_print_verbatim_and_control_characters_are_shown(terminal: bool) -> None:
    from migctl.cli.run_views import render_batch

    render_status, _ = _status_views()
    hostile = MARKUP + CONTROL
    # each word on a GPU with MIG (the MIG devices and processes tables) and on one without
    # (the whole GPU's processes, "user: command")
    gpus = tuple(
        _gpu(2 * i + whole, BUS_IDS[2 * i + whole], name=f"GPU {word}", profile=word,
             processes=(_process(2 * i + whole, f"python {word}", user=word),),
             holder=Holder(pid=1, command=f"lease {word}", since=0.0), mig=not whole)
        for i, word in enumerate(hostile)
        for whole in (0, 1)
    )
    text = _render(render_status, StatusReport(False, gpus), terminal=terminal)
    for i, word in enumerate(MARKUP):  # the processes table: pid, user and command, verbatim
        pid = 1000 + 2 * i
        assert re.search(rf"\b{pid}\s+{re.escape(word)}\s+512\s+python {re.escape(word)}", text), (word, text)
    jobs = tuple(
        BatchJob(name=word, status="failed", exit_code=1, reason=word, attempts=1, duration_s=0.1,
                 instance=DeviceRef("MIG-x", 0, 13, 0, word), log="/tmp/x", command=("sh", "-c", word), history=())
        for word in hostile
    )
    summary = BatchSummary(len(jobs), 0, len(jobs), 0, 0, 1.0, None, "/tmp/logs", 1, None)
    batch_text = _render(render_batch, BatchReport(jobs, summary), terminal=terminal)
    for word in MARKUP:
        for where in (f"GPU {word}", f"python {word}", f"{word}: python", f"lease {word}"):
            assert where in text, (where, text)
        assert word in batch_text and f"failed: {word}" in batch_text
    for out in (text, batch_text):
        # the data's escape sequences are shown as text; nothing a terminal would obey is left
        # but rich's own colours (on a terminal)
        assert "python \\x1b[31mred" in out or "\\x1b[31mred" in out
        assert "\\x1b]0;pwned" in out and "\\x9b1m" in out
        obeyed = _CONTROL.findall(_SGR.sub("", out) if terminal else out)
        assert obeyed == [], obeyed


#: rich's own colour sequences (only on a terminal), and any control character a terminal obeys.
_SGR = re.compile("\x1b\\[[0-9;]*m")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_status_on_the_simulator_prints_bus_id_ab_and_a_hostile_process_verbatim(sim: SimFactory) -> None:
    s = sim("h20x8", enable="5")
    (made,) = s.create("-i", "5", "1g.12gb")
    argv0 = "[bold]:AB:[/] \x1b[31mevil"
    proc = subprocess.Popen([argv0, "30"], executable="/bin/sleep")
    try:
        s.ok("sim", "attach", "--pid", str(proc.pid), "--uuid", made["uuid"])
        out = s.ok("status", "-i", "5").out
    finally:
        proc.kill()
        proc.wait()
    assert "00000000:AB:00.0" in out and "🆎" not in out
    assert "[bold]:AB:[/] \\x1b[31mevil 30" in out
    assert "\x1b" not in out


# -- one JSON document, whatever happens -----------------------------------------------------------

#: (argv, expected exit code, the document's kind: a command name from the schema registry, or "error").
JSON_CASES: list[tuple[list[str], int, str]] = [
    (["status"], 0, "status"),
    (["status", "-i", "9"], 2, "error"),
    (["status", "--bogus"], 2, "error"),  # click's usage error
    (["status", "-i"], 2, "error"),  # an option without its value
    (["nosuchcommand"], 2, "error"),
    ([], 2, "error"),  # no command at all
    (["create", "1g.12gb", "-i", "0", "--placement", "x"], 2, "error"),
    (["create"], 2, "error"),
    (["plan", "--layout", "7g.96gb,1g.12gb", "-i", "0"], 4, "plan"),  # a refused plan: one document
    (["plan", "--layout", "1g.12gb:7", "-i", "0"], 0, "plan"),
    (["export", "-i", "0"], 0, "export"),
    (["export", "-o", "toml"], 2, "error"),
    (["destroy", "--gi", "1"], 2, "error"),
    (["reset"], 2, "error"),
    (["completion", "bash"], 0, "completion"),
    (["completion", "ksh"], 2, "error"),
    (["sim", "models"], 0, "sim"),
    (["sim", "exec"], 2, "error"),  # no command to run
    (["status", "--util", "-i", "0"], 0, "status"),
    (["top"], 0, "top"),
    (["top", "--interval", "0"], 2, "error"),
    (["exporter", "--listen", "127.0.0.1:x"], 2, "error"),
    (["apply", "--mode-only", "--dry-run", "--layout", "1g.12gb:7", "-i", "0"], 0, "plan"),
    (["export", "--format", "k8s"], 0, "export --format k8s"),
    (["export", "--format", "slurm", "-i", "0"], 0, "export --format slurm"),
    (["export", "--format", "bogus"], 2, "error"),
    (["generate-config", "-i", "0"], 0, "generate-config"),
    (["generate-config", "-o", "toml"], 2, "error"),
    (["checkpoint", "-i", "0"], 0, "checkpoint"),
    (["restore"], 2, "error"),  # no checkpoint named
    (["boot"], 2, "error"),  # a group without its subcommand
    (["k8s", "clients", "bogus"], 2, "error"),
    (["slurm", "task-prolog", "-i", "9"], 2, "error"),
]


@pytest.mark.parametrize(("argv", "code", "kind"), JSON_CASES, ids=[" ".join(c[0]) for c in JSON_CASES])
@pytest.mark.parametrize("where", ["before", "after"])
def test_json_is_one_document_on_stdout_errors_included(
    sim: SimFactory, argv: list[str], code: int, kind: str, where: str
) -> None:
    from migctl.records.schema import by_command, command_schema

    s = sim("h20x8", enable="0")
    r = s("--json", *argv) if where == "before" else s(*argv, "--json")
    assert r.code == code, (r.out, r.err)
    document = json.loads(r.out)  # the whole of stdout is exactly one document
    assert isinstance(document, dict)
    assert r.err == "", r.err  # nothing else, not even on stderr
    if kind == "sim":
        return  # the simulator's own commands are not part of the contract (docs/json.md)
    schema = command_schema(by_command()[kind].record)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    if kind == "error":
        assert document["exit_code"] == code and document["error"] == "usage"
        assert "\n" not in document["message"]


# -- a closed pipe ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--layout", "1g.12gb:7", "--json"],
        ["status"],
        ["profiles", "--json"],
        ["export"],
        ["--help"],
        ["--version"],
        ["plan", "--help"],
        ["bogus"],
        ["top", "--once"],
        ["generate-config"],
        ["export", "--format", "k8s"],
        ["k8s", "hooks-file"],
    ],
    ids=lambda a: " ".join(a),
)
def test_a_closed_pipe_ends_quietly(state_dir: Path, argv: list[str]) -> None:
    """``migctl ... | head``: the reader is gone before migctl writes. No traceback, no message:
    exit 141 (128 + SIGPIPE) as a program killed by SIGPIPE, or the command's own error code."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "MIGCTL_SIM": "h20x8"}
    try:
        p = subprocess.run([*MIGCTL, *argv], stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=60,
                           check=False, text=True)
    finally:
        os.close(write_end)
    if argv == ["bogus"]:  # its error goes to stderr, which is open
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        return
    assert p.returncode == 141, p.stderr
    assert p.stderr == ""


# -- what --version and --help cost ----------------------------------------------------------------

HEAVY = ("typer", "click", "rich", "pydantic", "pynvml", "psutil", "yaml", "filelock", "jsonschema")
OURS_HEAVY = ("migctl.device", "migctl.ops", "migctl.sim", "migctl.config", "migctl.api", "migctl.usage")


def _modules_after(argvs: list[list[str]], env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running migctl with each of ``argvs``."""
    code = (
        "import io, contextlib, json, sys\n"
        "from migctl.cli.main import run\n"
        f"for argv in {argvs!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        run(argv)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                       env={**os.environ, **(env or {})})
    return set(json.loads(p.stdout.splitlines()[-1]))


def test_version_and_help_import_none_of_the_heavy_libraries() -> None:
    loaded = _modules_after(
        [["--version"], ["--help"], ["--sim", "h20x8", "--json", "--version"], ["--json", "--help"]]
    )
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(OURS_HEAVY))
    assert heavy == []
    assert "migctl.cli.registry" in loaded


def test_status_does_not_import_pydantic_or_the_config_files_layer(state_dir: Path) -> None:
    """status needs typer, rich and the device layer; not pydantic (typer 0.29 would import it
    for every option) and not the mig-parted file schema."""
    loaded = _modules_after([["--sim", "h20x8", "status"]], env={"MIGCTL_STATE_DIR": str(state_dir)})
    assert "migctl.cli.inspect_cmds" in loaded and "rich.table" in loaded  # it did run
    unwanted = sorted(
        m for m in loaded
        if m.split(".")[0] in ("pydantic", "yaml", "jsonschema")
        or m.startswith(("migctl.config.spec", "migctl.config.document", "migctl.cli.layout_cmds"))
    )
    assert unwanted == []


def test_version_is_the_package_version(migctl: Cli) -> None:
    from importlib.metadata import version

    import migctl as package

    assert migctl("--version").out == f"migctl {version('migctl')}\n"
    assert package.__version__ == version("migctl")
    assert json.loads(migctl("--json", "--version").out) == {"version": version("migctl")}
    # also after a command, where click answers
    r = migctl("status", "--version")
    assert (r.code, r.out) == (0, f"migctl {version('migctl')}\n")


def test_errors_name_nvml_codes_as_pynvml_does() -> None:
    """migctl.errors names NVML's return codes without importing pynvml; each must be pynvml's."""
    import pynvml

    from migctl.errors import NVML_ERROR_CODES, NVML_TEXT, nvml_error_name

    for name, code in NVML_ERROR_CODES.items():
        assert getattr(pynvml, name) == code, name
    theirs = {name: getattr(pynvml, name) for name in dir(pynvml) if name.startswith("NVML_ERROR_")}
    for name, code in theirs.items():
        if isinstance(code, int):  # every code pynvml knows has its name here
            assert nvml_error_name(code) == name or theirs.get(nvml_error_name(code)) == code, name
    assert set(NVML_TEXT) <= set(NVML_ERROR_CODES.values())
    assert nvml_error_name(12345) == "NVML_ERROR_12345"
