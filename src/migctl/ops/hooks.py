"""Running mig-parted hooks (the file's schema is :mod:`migctl.config.hooks`).

Running matches mig-parted's ``HookSpec.Run``: the command is run directly (an argv list,
never through a shell), in ``workdir`` (empty: the current directory), with stdin closed and
an environment made of **only** the hook's ``envs`` plus the variables the caller passes
(the caller's win) -- the parent's environment is not inherited unless asked for. The
command is looked up on the caller's ``PATH``. The hooks of one point run in order and stop
at the first failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from migctl.config.hooks import HOOK_POINTS, HookSpec, HooksSpec


@dataclass(frozen=True)
class HookResult:
    """How one hook ran. ``returncode`` is ``None`` when it could not be started or timed out
    (``error`` says why); ``stdout``/``stderr`` hold its output unless it went to the terminal."""

    point: str
    argv: tuple[str, ...]
    workdir: str
    returncode: int | None
    error: str = ""
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        what = self.error or f"exit code {self.returncode}"
        return f"{self.point} hook {' '.join(self.argv)!r} failed: {what}"


class HookError(Exception):
    """A hook failed. ``results`` lists the hooks that ran, the failed one last."""

    def __init__(self, results: Sequence[HookResult]) -> None:
        self.results = list(results)
        self.failed = self.results[-1]
        self.point = self.failed.point
        self.returncode = self.failed.returncode
        super().__init__(self.failed.describe())


def mig_parted_env(
    config_file: str,
    selected_config: str,
    *,
    hooks_file: str = "",
    skip_reset: bool = False,
    mode_only: bool = False,
) -> dict[str, str]:
    """The variables ``mig-parted apply`` gives every hook (one per flag of the command,
    booleans as ``true``/``false``)."""
    return {
        "MIG_PARTED_CONFIG_FILE": config_file,
        "MIG_PARTED_SELECTED_CONFIG": selected_config,
        "MIG_PARTED_HOOKS_FILE": hooks_file,
        "MIG_PARTED_SKIP_RESET": str(skip_reset).lower(),
        "MIG_PARTED_MODE_CHANGE_ONLY": str(mode_only).lower(),
    }


def _run_one(point: str, hook: HookSpec, env: Mapping[str, str], inherit_env: bool, output: bool,
             timeout: float | None) -> HookResult:
    child_env = {**(os.environ if inherit_env else {}), **hook.envs, **env}
    argv = hook.argv
    exe = hook.command if os.sep in hook.command else shutil.which(hook.command)
    if exe is None:
        return HookResult(point, argv, hook.workdir, None, error=f"command not found: {hook.command}")
    pipe = None if output else subprocess.PIPE
    try:
        proc = subprocess.run(
            [exe, *hook.args], cwd=hook.workdir or None, env=child_env, stdin=subprocess.DEVNULL,
            stdout=pipe, stderr=pipe, timeout=timeout, check=False, text=True, errors="replace",
        )
    except subprocess.TimeoutExpired:
        return HookResult(point, argv, hook.workdir, None, error=f"timed out after {timeout} s")
    except OSError as exc:
        return HookResult(point, argv, hook.workdir, None, error=exc.strerror or str(exc))
    return HookResult(point, argv, hook.workdir, proc.returncode, stdout=proc.stdout or "",
                      stderr=proc.stderr or "")


def run_hook(
    hooks: HooksSpec,
    name: str,
    env: Mapping[str, str],
    *,
    check: bool | None = None,
    inherit_env: bool = False,
    output: bool = False,
    timeout: float | None = None,
) -> list[HookResult]:
    """Run the hooks of point ``name`` in order, stopping at the first failure.

    A failure raises :class:`HookError` when ``check`` (default: for every point but
    ``apply-exit``, whose failure the caller weighs against the apply's own outcome, as
    mig-parted does); otherwise the failed hook is the last result. ``output=True`` lets the
    hooks write to the terminal instead of capturing their output.
    """
    if name not in HOOK_POINTS:
        raise ValueError(f"unknown hook point {name!r} (known: {', '.join(HOOK_POINTS)})")
    results: list[HookResult] = []
    for hook in hooks.hooks.get(name, []):
        results.append(_run_one(name, hook, env, inherit_env, output, timeout))
        if not results[-1].ok:
            if check if check is not None else name != "apply-exit":
                raise HookError(results)
            break
    return results
