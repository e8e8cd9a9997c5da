"""mig-parted hooks files: their schema (config layer) and running them (ops.hooks)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from migctl.config import (
    ConfigError,
)
from migctl.config.hooks import load_hooks_text
from migctl.ops.hooks import HookError, mig_parted_env, run_hook

# --- hooks -------------------------------------------------------------------------------------

DUMP_ENV = "import json, os, sys; json.dump({'env': dict(os.environ), 'cwd': os.getcwd()}, open(sys.argv[1], 'w'))"


def _hooks(tmp_path: Path, hooks: dict[str, list[dict[str, object]]]) -> str:
    return yaml.safe_dump({"version": "v1", "hooks": hooks})


def test_hook_runs_argv_with_its_envs_and_mig_parted_variables(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "env.json"
    monkeypatch.setenv("MIGCTL_TEST_PARENT_ONLY", "1")
    text = _hooks(tmp_path, {"apply-start": [{
        "workdir": str(tmp_path), "command": sys.executable, "args": ["-c", DUMP_ENV, str(out)],
        "envs": {"HOOK_VAR": "from-hook", "MIG_PARTED_SELECTED_CONFIG": "overridden"},
    }]})
    hooks = load_hooks_text(text, "hooks.yaml")
    env = mig_parted_env("/etc/config.yaml", "all-balanced", hooks_file="hooks.yaml")
    results = run_hook(hooks, "apply-start", env)
    assert [r.returncode for r in results] == [0]
    seen = json.loads(out.read_text())
    assert seen["cwd"] == str(tmp_path)
    assert seen["env"]["HOOK_VAR"] == "from-hook"
    assert seen["env"]["MIG_PARTED_SELECTED_CONFIG"] == "all-balanced"  # the caller's win
    assert seen["env"]["MIG_PARTED_CONFIG_FILE"] == "/etc/config.yaml"
    assert seen["env"]["MIG_PARTED_SKIP_RESET"] == "false"
    assert "MIGCTL_TEST_PARENT_ONLY" not in seen["env"]  # as mig-parted: not inherited
    assert run_hook(hooks, "pre-apply-mode", env) == []


def test_failing_hook_reports_its_exit_code(tmp_path: Path) -> None:
    marker = tmp_path / "second-ran"
    failing: dict[str, object] = {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]}
    second: dict[str, object] = {"command": sys.executable, "args": ["-c", f"open({str(marker)!r}, 'w')"]}
    hooks = load_hooks_text(_hooks(tmp_path, {"pre-apply-config": [failing, second],
                                              "apply-exit": [failing, second]}))
    with pytest.raises(HookError) as info:
        run_hook(hooks, "pre-apply-config", {})
    assert info.value.returncode == 3 and "exit code 3" in str(info.value)
    results = run_hook(hooks, "apply-exit", {})  # the caller decides
    assert [r.returncode for r in results] == [3]
    assert not marker.exists()  # stops at the first failure, as mig-parted
    missing = load_hooks_text(_hooks(tmp_path, {"apply-start": [{"command": "no-such-command-migctl"}]}))
    with pytest.raises(HookError, match="command not found"):
        run_hook(missing, "apply-start", {})


def test_hooks_file_errors_have_lines() -> None:
    text = "version: v1\nhooks:\n  apply-strat:\n    - command: /bin/true\n"
    with pytest.raises(ConfigError, match=r"^hooks.yaml:3: hooks.apply-strat: .*did you mean 'apply-start'"):
        load_hooks_text(text, "hooks.yaml")
    with pytest.raises(ConfigError, match=r"^hooks.yaml:5: hooks.apply-exit\[0\].envs.N: expected a string"):
        load_hooks_text("version: v1\nhooks:\n  apply-exit:\n    - command: x\n      envs: {N: 1}\n",
                        "hooks.yaml")
