"""Shared fixtures: every test gets its own state directory, and drives migctl as a user does.

``migctl`` runs the CLI **in-process** (``migctl.cli.main.run``, the console script's own entry
point) with stdout, stderr and stdin captured and the environment given for that call only:
fast enough to call hundreds of times. ``migctl_process`` runs the real console script in a
subprocess; it is for what only a real process shows: signals, ``kill -9``, concurrent
processes, the seed walk-through and the README's commands.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from migctl import Node
from migctl.records import to_data

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data"  # copies of reference files (see its README)
MIGCTL = [sys.executable, "-m", "migctl"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli(Protocol):
    """``migctl(*args, env=..., input=...)``: run migctl and return its :class:`Result`."""

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 60
    ) -> Result: ...


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private MIGCTL_STATE_DIR for this test (also set in-process for API tests)."""
    d = tmp_path / "state"
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(d))
    monkeypatch.delenv("MIGCTL_SIM", raising=False)
    monkeypatch.delenv("MIGCTL_SIM_FAULTS", raising=False)
    monkeypatch.delenv("MIGCTL_SIM_LATENCY", raising=False)
    yield d


@contextlib.contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(extra)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(args: tuple[str, ...], env: dict[str, str], input: str | None) -> Result:
    """The CLI's own entry point, called in this process with captured streams."""
    from migctl.cli.main import run

    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO(input or "")
    with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        saved_stdin, sys.stdin = sys.stdin, stdin
        try:
            code = run(list(args))
        finally:
            sys.stdin = saved_stdin
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def migctl(state_dir: Path) -> Cli:
    """Run ``migctl ARGS...`` in-process; ``env=`` adds variables for the call, ``input=`` feeds stdin."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 60) -> Result:
        return run_in_process(args, {"MIGCTL_STATE_DIR": str(state_dir), "COLUMNS": "200", **(env or {})}, input)

    return run


@pytest.fixture
def migctl_process(state_dir: Path) -> Cli:
    """Run ``migctl ARGS...`` as a real subprocess (signals, kill -9, concurrency, end to end)."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 60) -> Result:
        full_env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "COLUMNS": "200", **(env or {})}
        p = subprocess.run(
            [*MIGCTL, *args], capture_output=True, text=True, env=full_env, input=input, timeout=timeout, check=False
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return run


class Sim:
    """``migctl --sim SPEC ...`` on the test's private node, plus in-process snapshots."""

    def __init__(self, cli: Cli, spec: str) -> None:
        self.cli = cli
        self.spec = spec

    def __call__(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        return self.cli("--sim", self.spec, *args, env=env, input=input)

    def ok(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        r = self(*args, env=env, input=input)
        assert r.code == 0, f"migctl {' '.join(args)}: exit {r.code}\nstdout: {r.out}\nstderr: {r.err}"
        return r

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return self.ok(*args, "--json", env=env).json()

    def status(self, gpus: str | None = None) -> dict[str, Any]:
        """What ``migctl status --json`` prints, read through the Python API (the same record)."""
        with Node(sim=self.spec) as node:
            data: dict[str, Any] = to_data(node.status(gpus))
            return data

    def gpu(self, index: int = 0) -> dict[str, Any]:
        return dict(self.status(str(index))["gpus"][0])

    def create(self, *args: str) -> list[dict[str, Any]]:
        return list(self.json("create", *args)["created"])


SimFactory = Callable[..., Sim]


def one_line_error(result: Result, code: int) -> str:
    """A failure as the CLI promises it: the documented exit code, exactly one line on stderr
    (``migctl: error: ...``), nothing on stdout, no traceback. Returns the line."""
    assert result.code == code, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    assert result.out == "" and "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("migctl: error: "), result.err
    return lines[0]


@contextlib.contextmanager
def running_on(
    s: Sim, *, uuid: str | None = None, gpu: int | None = None, memory_mib: int = 700
) -> Iterator[subprocess.Popen[bytes]]:
    """A real process (``sleep 30``) that the simulated driver lists on MIG device ``uuid`` or on
    GPU ``gpu`` (``migctl sim attach``: what the driver does when a CUDA context opens there)."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        where = ["--uuid", uuid] if uuid else ["-i", str(gpu)]
        s.ok("sim", "attach", "--pid", str(proc.pid), *where, "--memory", str(memory_mib))
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def sim(migctl: Cli) -> SimFactory:
    """``sim(spec, enable="0")``: a fresh simulated node with MIG enabled on the given GPUs."""

    def make(spec: str = "h20x8", enable: str | None = "0") -> Sim:
        s = Sim(migctl, spec)
        if enable is not None:
            s.ok("mode", "enable", "-i", enable)
        return s

    return make


@pytest.fixture
def reference() -> Path:
    """Test data (tests/data): always present, never skipped."""
    return REFERENCE
