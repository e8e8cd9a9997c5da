"""``migctl run``, ``migctl.use()`` and their Python API, driven as a user drives them.

The node is a simulated 2x H20 (GPU 0: two 1g.12gb, GPU 1: one 2g.24gb) in the test's own
state directory. ``migctl`` runs in-process; what only a real process shows (signals, a
killed migctl, a terminal, concurrent launchers, the child's own stdout) uses real processes.

(Over 400 lines for a reason: every case below runs on the one node the ``node`` fixture makes
and uses the same launch helpers; the batch tests, with their own node, are test_batch.py.)
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import psutil
import pytest

from conftest import Cli, Result
from migctl.records.common import Holder
from migctl.records.schema import by_command, command_schema

SPEC = "h20x2"
MIGCTL = [sys.executable, "-m", "migctl"]
T = TypeVar("T")
Devices = dict[str, dict[str, Any]]


@pytest.fixture
def node(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Devices:
    """Make the node through the Python API; returns the MIG devices by short name."""
    import migctl
    from migctl.records import to_data

    monkeypatch.setenv("MIGCTL_SIM", SPEC)
    api = migctl.Node(sim=SPEC)
    api.set_mig_mode(True, gpus=None)
    api.create("1g.12gb:2", gpus="0")
    api.create("2g.24gb", gpus="1")
    devs = {}
    for g in to_data(api.status())["gpus"]:
        for gi in g["gpu_instances"]:
            for ci in gi["compute_instances"]:
                devs[f"{g['index']}:{gi['id']}"] = {
                    "uuid": ci["uuid"],
                    "gpu": g["index"],
                    "gi": gi["id"],
                    "profile": gi["profile"],
                }
    api.close()
    return devs


@pytest.fixture
def spawn(state_dir: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``migctl ARGS`` in the background; whatever is left is killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir)}
        p = subprocess.Popen([*MIGCTL, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(p)
        return p

    yield start
    for p in started:
        for child in _descendants(p.pid):
            child.kill()
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def holder(uuid: str) -> Holder | None:
    from migctl.ops import leases

    return leases.holder(uuid)


def wait_for(predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def child_holding(uuid: str, launcher: int) -> Holder:
    """The lease holder of ``uuid`` once it is the launcher's child (not the launcher itself)."""

    def found() -> Holder | None:
        h = holder(uuid)
        return h if h is not None and h.pid not in (None, launcher) else None

    return wait_for(found)


def read_line(p: subprocess.Popen[str], timeout: float) -> str:
    """The next stderr line of ``p`` (fails after ``timeout`` rather than hanging)."""
    assert p.stderr is not None
    ready, _, _ = select.select([p.stderr], [], [], timeout)
    assert ready, "no output in time"
    return p.stderr.readline()


def one_line_error(r: Result) -> str:
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("migctl: error: ")
    return lines[0]


def validate(command: str, document: Any) -> None:
    jsonschema.validate(document, command_schema(by_command()[command].record), cls=jsonschema.Draft202012Validator)


# A child that runs until the test creates a file (so nothing is left behind and timing is exact).
def until(stop: Path) -> list[str]:
    return ["sh", "-c", 'while [ ! -e "$1" ]; do sleep 0.05; done', "sh", str(stop)]


# -- the child's environment and fate ------------------------------------------------------------


def test_child_gets_the_device_environment(migctl: Cli, node: Devices, tmp_path: Path) -> None:
    dev = next(d for d in node.values() if d["profile"] == "2g.24gb")
    out = tmp_path / "env.json"
    script = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    r = migctl("run", "--on", dev["uuid"], "--", sys.executable, "-c", script, str(out))
    assert r.code == 0, r.err
    env = json.loads(out.read_text())
    assert env["CUDA_VISIBLE_DEVICES"] == dev["uuid"]
    assert env["CUDA_VISIBLE_DEVICES"].startswith("MIG-")
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["MIGCTL_DEVICE_UUID"] == dev["uuid"]
    assert env["MIGCTL_GPU_INDEX"] == str(dev["gpu"])
    assert env["MIGCTL_GPU_INSTANCE_ID"] == str(dev["gi"])
    assert env["MIGCTL_PROFILE"] == "2g.24gb"
    assert f"running on GPU {dev['gpu']} GI {dev['gi']}" in r.err  # says where it runs (stderr)
    assert r.out == ""  # migctl itself writes nothing on stdout: it is the command's


def test_exit_code_and_signal_death_propagate(migctl: Cli, migctl_process: Cli, node: Devices) -> None:
    assert migctl("run", "-q", "--", "sh", "-c", "exit 7").code == 7
    assert migctl("run", "-q", "--", "sh", "-c", 'kill -KILL "$$"').code == 128 + 9
    # argv, never a shell: the metacharacters reach the program untouched (its stdout: a real process)
    r = migctl_process("run", "-q", "--", "printf", "%s|", "a b", "$HOME", ";", "*")
    assert (r.code, r.out) == (0, "a b|$HOME|;|*|")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_are_forwarded(
    spawn: Callable[..., subprocess.Popen[str]], node: Devices, tmp_path: Path, sig: int
) -> None:
    marker = tmp_path / "marker"
    record = tmp_path / "run.json"
    name = signal.Signals(sig).name.removeprefix("SIG")
    trap = f"trap 'echo {name} > \"$1\"; exit 3' {name}; while :; do sleep 0.05; done"
    p = spawn("run", "-q", "--on", "0:11", "--record", str(record), "--", "sh", "-c", trap, "sh", str(marker))
    uuid = node["0:11"]["uuid"]
    child = child_holding(uuid, p.pid)
    assert child.pid is not None and psutil.Process(child.pid).ppid() == p.pid
    p.send_signal(sig)
    assert p.wait(timeout=10) == 3  # the child's exit code, after its trap ran
    assert marker.read_text().strip() == name
    assert holder(uuid) is None
    report = json.loads(record.read_text())  # the record says what migctl passed on
    assert report["forwarded"] == [signal.Signals(sig).name]
    assert (report["exit_code"], report["signal"], report["pid"]) == (3, None, child.pid)


def test_terminal_ctrl_c_reaches_the_child_once(node: Devices, state_dir: Path, tmp_path: Path) -> None:
    """Ctrl-C on a terminal signals the whole foreground group: migctl must not pass it on again."""
    import pty

    count = tmp_path / "count"
    stop = tmp_path / "stop"
    script = f'trap "echo INT >> {count}" INT; while [ ! -e {stop} ]; do sleep 0.05; done; exit 5'
    pid, fd = pty.fork()
    if pid == 0:  # the child: migctl on a terminal, as a user runs it
        try:
            os.environ["MIGCTL_STATE_DIR"] = str(state_dir)
            os.execv(sys.executable, [*MIGCTL, "run", "-q", "--on", "0:11", "--", "sh", "-c", script])  # noqa: S606
        finally:
            os._exit(127)
    try:
        uuid = node["0:11"]["uuid"]
        wait_for(lambda: (h := holder(uuid)) is not None and h.command.startswith("sh -c"))
        time.sleep(0.2)  # the trap is set
        os.write(fd, b"\x03")
        wait_for(lambda: count.exists())
        time.sleep(0.3)
        stop.touch()
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 5
    assert count.read_text().split() == ["INT"]  # once, from the terminal; not again from migctl


# -- exclusivity --------------------------------------------------------------------------------


def test_no_queue_names_the_holder_and_queue_waits(
    migctl: Cli, spawn: Callable[..., subprocess.Popen[str]], node: Devices, tmp_path: Path
) -> None:
    uuid = node["0:11"]["uuid"]
    stop = tmp_path / "stop"
    first = spawn("run", "-q", "--on", uuid, "--", *until(stop))
    child_pid = child_holding(uuid, first.pid).pid

    t0 = time.monotonic()
    r = migctl("run", "--no-queue", "--on", uuid, "--", "true")
    assert r.code == 5
    line = one_line_error(r)
    assert f"leased by pid {child_pid} (sh -c" in line and " since " in line
    assert time.monotonic() - t0 < 5
    assert migctl("run", "--on", uuid, "--", "true").code == 5  # no queue is the default
    r = migctl("run", "--queue", "0.3", "--on", uuid, "--", "true")
    assert r.code == 5 and f"pid {child_pid}" in r.err

    waiter = spawn("run", "--queue", "--on", uuid, "--", "sh", "-c", "echo second")
    said = read_line(waiter, timeout=15)  # it says that it waits, and for whom
    assert said.startswith("migctl: waiting as long as needed") and f"pid {child_pid}" in said
    time.sleep(0.3)
    assert waiter.poll() is None  # queued behind the first
    stop.touch()
    out, err = waiter.communicate(timeout=10)
    assert waiter.returncode == 0, err
    assert out.strip() == "second" and "running on" in err
    assert first.wait(timeout=10) == 0


def test_lease_outlives_a_killed_migctl_but_not_its_child(
    migctl: Cli, spawn: Callable[..., subprocess.Popen[str]], node: Devices, tmp_path: Path
) -> None:
    uuid = node["0:12"]["uuid"]
    stop = tmp_path / "stop"
    p = spawn("run", "-q", "--on", uuid, "--", *until(stop))
    child_pid = child_holding(uuid, p.pid).pid
    assert child_pid is not None
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    assert psutil.pid_exists(child_pid)
    r = migctl("run", "--on", uuid, "--", "true")  # the orphaned child still holds it
    assert r.code == 5 and f"pid {child_pid}" in r.err
    stop.touch()
    wait_for(lambda: holder(uuid) is None)  # released by the kernel when the child exited
    assert migctl("run", "-q", "--on", uuid, "--", "true").code == 0


def test_running_child_is_a_process_on_its_device_and_blocks_destroy(
    migctl: Cli, spawn: Callable[..., subprocess.Popen[str]], node: Devices, tmp_path: Path
) -> None:
    uuid = node["0:11"]["uuid"]
    stop = tmp_path / "stop"
    p = spawn("run", "-q", "--on", uuid, "--", *until(stop))
    child_pid = child_holding(uuid, p.pid).pid

    def device_status() -> dict[str, Any] | None:
        status = migctl("status", "--json").json()
        ci: dict[str, Any] = next(
            c for g in status["gpus"] for gi in g["gpu_instances"] for c in gi["compute_instances"] if c["uuid"] == uuid
        )
        return ci if ci["processes"] else None

    # NVML lists it on that MIG device: as CUDA does on hardware, the launcher registers the
    # child just after starting it (and after the lease names it), so allow it that moment
    ci = wait_for(device_status)
    assert [q["pid"] for q in ci["processes"]] == [child_pid]
    assert ci["holder"]["pid"] == child_pid
    assert ci["holder"]["command"].startswith("sh -c")
    assert isinstance(ci["holder"]["since"], float)

    r = migctl("destroy", "--uuid", uuid)
    assert r.code == 5, r.err
    assert str(child_pid) in r.err
    assert uuid in migctl("devices").out  # nothing was destroyed
    stop.touch()
    assert p.wait(timeout=10) == 0
    wait_for(lambda: holder(uuid) is None)
    assert migctl("destroy", "--uuid", uuid).code == 0


# -- targets --------------------------------------------------------------------------------------


def test_target_forms(migctl: Cli, node: Devices, tmp_path: Path) -> None:
    seen = tmp_path / "seen"

    def where(*target: str) -> str:
        script = 'echo "$MIGCTL_DEVICE_UUID $MIGCTL_PROFILE" > "$1"'
        r = migctl("run", "-q", *target, "--", "sh", "-c", script, "sh", str(seen))
        assert r.code == 0, r.err
        return seen.read_text().strip()

    big = next(d for d in node.values() if d["profile"] == "2g.24gb")
    assert where("--on", "0:11") == f"{node['0:11']['uuid']} 1g.12gb"
    assert where("-o", "2g.24gb") == f"{big['uuid']} 2g.24gb"
    assert where(f"--on={node['0:12']['uuid'][:13]}") == f"{node['0:12']['uuid']} 1g.12gb"  # a unique prefix
    assert where().split()[0] in {d["uuid"] for d in node.values()}
    r = migctl("run", "--on", "0:99", "--", "true")
    assert r.code == 2
    assert "0:99" in one_line_error(r) and "0:11, 0:12" in r.err  # says what exists
    r = migctl("run", "--", "no-such-program-xyz")
    assert r.code == 127 and "command not found" in one_line_error(r)
    assert holder(node["0:11"]["uuid"]) is None  # a typo leased nothing


def test_target_matching(node: Devices) -> None:
    from migctl.config.target import parse_target
    from migctl.device import open_node
    from migctl.errors import UsageError
    from migctl.ops import launch

    devices = launch.inventory(open_node(SPEC))

    def match(text: str | None) -> list[str]:
        return [d.uuid for d in launch.match_target(parse_target(text), devices)]

    uuid = node["0:12"]["uuid"]
    assert match(uuid) == [uuid]
    assert match(uuid.lower()) == [uuid]
    assert match(uuid[:13]) == [uuid]  # a unique prefix
    assert match("0:12:0") == [uuid]
    assert len(match("1g.12gb")) == 2
    assert len(match(None)) == 3
    for bad in ("MIG-00000000-0000", "0:99", "2:11", "3g.48gb", "7", "0:x"):
        with pytest.raises(UsageError) as info:
            match(bad)
        assert bad in str(info.value)


def test_a_profile_target_names_the_mig_devices_own_profile(migctl: Cli, state_dir: Path, tmp_path: Path) -> None:
    """A 3g.48gb split into compute instances holds MIG devices 1c.3g.48gb and 2c.3g.48gb (what
    nvidia-smi -L and CUDA call them): --on names those; --on 3g.48gb names only a whole 3g."""
    assert migctl("--sim", "h20", "apply", "--layout", "3g.48gb[1c.3g.48gb,2c.3g.48gb],1g.12gb").code == 0
    status = migctl("--sim", "h20", "status", "--json").json()
    by_ci_profile = {ci["profile"]: ci["uuid"] for gi in status["gpus"][0]["gpu_instances"]
                     for ci in gi["compute_instances"]}
    assert set(by_ci_profile) == {"1c.3g.48gb", "2c.3g.48gb", "1g.12gb"}
    seen = tmp_path / "seen"
    script = 'echo "$MIGCTL_DEVICE_UUID $MIGCTL_PROFILE" > "$1"'
    for profile in ("1c.3g.48gb", "2c.3g.48gb"):
        r = migctl("--sim", "h20", "run", "-q", "--on", profile, "--", "sh", "-c", script, "sh", str(seen))
        assert r.code == 0, r.err
        assert seen.read_text().split() == [by_ci_profile[profile], profile]
    r = migctl("--sim", "h20", "run", "--on", "3g.48gb", "--", "true")
    assert r.code == 2 and "1c.3g.48gb, 1g.12gb, 2c.3g.48gb" in one_line_error(r)
    devices = migctl("--sim", "h20", "devices", "--json").json()["gpus"][0]["mig_devices"]
    assert {d["profile"]: d["uuid"] for d in devices} == by_ci_profile


def test_no_mig_devices_is_explained(migctl: Cli, state_dir: Path) -> None:
    r = migctl("--sim", "h20", "run", "--", "true")
    assert r.code == 3
    assert "no MIG devices" in one_line_error(r) and "migctl create" in r.err


# -- migctl's record: --json on stderr, --record FILE -----------------------------------------------


def test_json_record_goes_to_stderr_and_stdout_stays_the_commands(
    migctl: Cli, migctl_process: Cli, node: Devices
) -> None:
    r = migctl_process("run", "--json", "--on", "0:12", "--", "sh", "-c", "echo job-out; echo job-err >&2; exit 4")
    assert r.code == 4
    assert r.out == "job-out\n"  # exactly the command's stdout
    assert r.err.startswith("job-err\n")  # the command's stderr, then migctl's one document
    report = json.loads(r.err.removeprefix("job-err\n"))
    validate("run", report)
    assert report["device"]["uuid"] == node["0:12"]["uuid"]
    assert report["device"]["profile"] == "1g.12gb" and report["device"]["gpu_instance_id"] == node["0:12"]["gi"]
    assert report["command"] == ["sh", "-c", "echo job-out; echo job-err >&2; exit 4"]
    assert (report["exit_code"], report["signal"], report["forwarded"]) == (4, None, [])
    assert report["duration_s"] >= 0 and report["waited_s"] >= 0 and report["started"] > 1e9
    r = migctl("--json", "run", "-q", "--", "sh", "-c", 'kill -TERM "$$"')  # the global --json too
    assert r.code == 143 and r.out == ""
    report = json.loads(r.err)
    assert (report["exit_code"], report["signal"]) == (143, "SIGTERM")


def test_record_file_and_errors_in_the_same_place(migctl: Cli, node: Devices, tmp_path: Path) -> None:
    record = tmp_path / "run.json"
    r = migctl("run", "--record", str(record), "--on", "2g.24gb", "--", "true")
    assert r.code == 0 and "running on" in r.err  # the notice still goes to stderr
    report = json.loads(record.read_text())
    validate("run", report)
    assert report["device"]["profile"] == "2g.24gb" and report["exit_code"] == 0

    r = migctl("run", "--record", str(record), "--on", "9g.99gb", "--", "true")  # migctl's own failure
    assert r.code == 2
    error = json.loads(record.read_text())
    assert error["error"] == "usage" and "9g.99gb" in error["message"] and error["exit_code"] == 2

    r = migctl("run", "--json", "--on", "0:99", "--", "true")  # with --json the error is on stderr
    assert (r.code, r.out) == (2, "")
    assert json.loads(r.err)["error"] == "usage"
    r = migctl("run", "--json", "--bogus", "true")  # a command-line error too
    assert (r.code, r.out) == (2, "") and "no such option" in json.loads(r.err)["message"]

    r = migctl("run", "--record", str(tmp_path / "no" / "dir" / "x.json"), "--", "true")
    assert r.code == 2 and "cannot write" in one_line_error(r)
    assert holder(node["0:11"]["uuid"]) is None  # nothing ran


def test_busy_error_in_json_names_the_holder(migctl: Cli, node: Devices) -> None:
    from migctl.ops import leases

    uuid = next(d["uuid"] for d in node.values() if d["gpu"] == 1)
    lease = leases.try_acquire(uuid, command="held by the test")
    assert lease is not None
    try:
        r = migctl("run", "--json", "--on", uuid, "--", "true")
    finally:
        lease.release()
    assert r.code == 5 and r.out == ""
    error = json.loads(r.err)
    assert error["error"] == "in_use"
    assert error["holder"]["uuid"] == uuid and error["holder"]["pid"] == os.getpid()
    assert error["holder"]["command"] == "held by the test" and error["holder"]["source"] == "lease"


# -- the Python API -----------------------------------------------------------------------------------


def test_node_run_returns_the_record(node: Devices, tmp_path: Path) -> None:
    import migctl
    from migctl.errors import InUseError
    from migctl.ops.child import CommandNotFoundError
    from migctl.records.run import RunReport, RunStarting

    events: list[object] = []
    out = tmp_path / "uuid"
    with migctl.Node(sim=SPEC) as api:
        script = 'echo "$CUDA_VISIBLE_DEVICES" > "$1"; exit 6'
        report = api.run(["sh", "-c", script, "sh", str(out)], on="0:11", on_event=events.append)
        assert isinstance(report, RunReport)
        assert report.exit_code == 6 and report.signal is None
        assert report.device.uuid == node["0:11"]["uuid"] == out.read_text().strip()
        assert [type(e) for e in events] == [RunStarting]
        with pytest.raises(CommandNotFoundError) as missing:
            api.run(["no-such-program-xyz"])
        assert missing.value.exit_code == 127
        with api.lease("0:12") as held:  # a lease for programs we start ourselves
            assert held.device.uuid == node["0:12"]["uuid"] and held.env["CUDA_VISIBLE_DEVICES"] == held.device.uuid
            busy = {d.uuid: d for d in api.devices()}[held.device.uuid]
            assert busy.busy and busy.holder is not None and busy.holder.pid == os.getpid()
            with pytest.raises(InUseError):
                api.run(["true"], on="0:12")
        assert holder(node["0:12"]["uuid"]) is None


# -- migctl.use() and migctl.devices() --------------------------------------------------------------


def python(code: str, **env: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    full.update(env)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_use_sets_the_variables_and_holds_the_lease(migctl: Cli, node: Devices) -> None:
    p = python(
        """
        import json, os, sys
        import migctl.usage as usage
        dev = usage.use("1g.12gb")
        print(json.dumps({"uuid": dev.uuid, "gpu": dev.gpu, "env": {k: v for k, v in os.environ.items()
              if k.startswith(("CUDA_", "MIGCTL_"))}}), flush=True)
        sys.stdin.read()
        """
    )
    assert p.stdout is not None and p.stdin is not None
    seen = json.loads(p.stdout.readline())
    try:
        uuid = seen["uuid"]
        assert seen["env"]["CUDA_VISIBLE_DEVICES"] == uuid and uuid.startswith("MIG-")
        assert seen["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert seen["env"]["MIGCTL_PROFILE"] == "1g.12gb"
        held = holder(uuid)
        assert held is not None and held.pid == p.pid
        r = migctl("run", "--on", uuid, "--", "true")
        assert r.code == 5 and f"pid {p.pid}" in r.err
        listed = migctl("devices", "--json").json()  # and the devices list shows it unchanged
        assert uuid in json.dumps(listed)
    finally:
        p.stdin.close()
        p.wait(timeout=10)
    assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    assert holder(uuid) is None


def test_devices_name_the_holder_as_a_typed_record(migctl: Cli, node: Devices) -> None:
    import migctl as api
    from migctl.ops import leases

    leased, used = node["0:11"]["uuid"], node["0:12"]["uuid"]
    lease = leases.try_acquire(leased, command="held by the test")
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert migctl("sim", "attach", "--pid", str(proc.pid), "--uuid", used).code == 0
        found = {d.uuid: d for d in api.devices(sim=SPEC)}
        by_lease, by_process = found[leased].holder, found[used].holder
        assert isinstance(by_lease, Holder) and isinstance(by_process, Holder)
        assert (by_lease.pid, by_lease.command, by_lease.source) == (os.getpid(), "held by the test", "lease")
        assert (by_process.pid, by_process.source) == (proc.pid, "nvml") and "sleep" in by_process.command
        assert found[leased].busy and found[used].busy
        free = [d for d in found.values() if d.uuid not in (leased, used)]
        assert free and all(not d.busy and d.holder is None for d in free)
    finally:
        if lease is not None:
            lease.release()
        proc.kill()
        proc.wait()


def test_use_refuses_once_cuda_is_initialised(node: Devices) -> None:
    p = python(
        """
        import sys, types
        sys.modules["torch"] = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))
        import migctl, migctl.usage as usage
        try:
            usage.use()
        except migctl.UsageError as exc:
            print(exc)
        else:
            print("no error")
        """
    )
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "CUDA is already initialised" in out
    assert "torch.cuda.is_initialized()" in out
    assert "before" in out and "migctl run" in out  # what to do instead


def test_use_refuses_a_conflicting_cuda_visible_devices(node: Devices) -> None:
    code = """
        import migctl, migctl.usage as usage
        try:
            dev = usage.use()
        except migctl.UsageError as exc:
            print("error:", exc)
        else:
            print("uuid:", dev.uuid)
        """
    out, _ = python(code, CUDA_VISIBLE_DEVICES="0").communicate(timeout=30)
    assert out.startswith("error:") and "CUDA_VISIBLE_DEVICES is already set to '0'" in out
    pinned = node["0:12"]["uuid"]
    out, _ = python(code, CUDA_VISIBLE_DEVICES=pinned).communicate(timeout=30)
    assert out.strip() == f"uuid: {pinned}"  # one MIG device named: that one is leased


def test_use_inside_migctl_run_takes_the_launchers_device(migctl_process: Cli, node: Devices) -> None:
    code = "import migctl.usage as u; print(u.use().uuid)"
    r = migctl_process("run", "-q", "--on", "0:12", "--", sys.executable, "-c", code)
    assert (r.code, r.out.strip()) == (0, node["0:12"]["uuid"]), r.err


def test_example_script_runs_without_torch(node: Devices) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "train_on_mig.py"
    p = python(
        f"import runpy, sys; sys.argv = ['x', '--on', '2g.24gb']; runpy.run_path({str(example)!r}, run_name='__main__')"
    )
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    big = next(d for d in node.values() if d["profile"] == "2g.24gb")
    assert f"CUDA_VISIBLE_DEVICES={big['uuid']}" in out
    # Without PyTorch it says what it would do; with it, this simulated node cannot run CUDA
    # (tests/test_torch_honesty.py checks that path).
    assert "PyTorch is not installed" in out or "This node is simulated" in out
