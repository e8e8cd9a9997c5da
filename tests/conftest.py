"""Shared test fixtures: every test gets its own state directory, and drives migctl as a user does.

``migctl`` runs the real console script in a subprocess (real files, real processes), with
``MIGCTL_STATE_DIR`` pointing at the test's temporary folder, so tests never share a node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data"  # copies of shared/reference files (see its README)
MIGCTL = [sys.executable, "-m", "migctl"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private MIGCTL_STATE_DIR for this test (also set in-process for API tests)."""
    d = tmp_path / "state"
    monkeypatch.setenv("MIGCTL_STATE_DIR", str(d))
    monkeypatch.delenv("MIGCTL_SIM", raising=False)
    monkeypatch.delenv("MIGCTL_SIM_FAULTS", raising=False)
    monkeypatch.delenv("MIGCTL_SIM_LATENCY", raising=False)
    yield d


@pytest.fixture
def migctl(state_dir: Path) -> Callable[..., Result]:
    """Run ``migctl ARGS...`` in a subprocess; ``env=`` adds variables, ``input=`` feeds stdin."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 60) -> Result:
        full_env = {**os.environ, "MIGCTL_STATE_DIR": str(state_dir), "COLUMNS": "200", **(env or {})}
        p = subprocess.run(
            [*MIGCTL, *args], capture_output=True, text=True, env=full_env, input=input, timeout=timeout, check=False
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return run


@pytest.fixture
def reference() -> Path:
    """Test data copied from shared/reference (tests/data): always present, never skipped."""
    return REFERENCE
