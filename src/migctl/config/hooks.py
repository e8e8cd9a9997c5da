"""mig-parted's hooks file, and running its hooks.

Format (mig-parted ``api/hooks/v1``; e.g. its ``deployments/systemd/hooks-default.yaml``)::

    version: v1
    hooks:
      apply-start:
        - workdir: /etc/nvidia-mig-manager
          command: /bin/bash
          args: ["-x", "-c", "source hooks.sh; persist-config ${MIG_PARTED_SELECTED_CONFIG}"]
          envs: {FOO: bar}

Hook points, in the order an apply reaches them: ``apply-start``; ``pre-apply-mode`` (only if
some GPU's MIG mode must change); ``pre-apply-config`` (only if some GPU's instances must
change); ``apply-exit`` (always, last, also after a failure).

Running matches mig-parted's ``HookSpec.Run``: the command is run directly (an argv list,
never through a shell), in ``workdir`` (empty: the current directory), with stdin closed and
an environment made of **only** the hook's ``envs`` plus the variables the caller passes
(the caller's win) -- the parent's environment is not inherited unless asked for. The
command is looked up on the caller's ``PATH``. The hooks of one point run in order and stop
at the first failure.

Stricter than mig-parted (which ignores them): unknown keys, unknown hook points and a
missing or wrong ``version`` are errors.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from migctl.config.load import parse_document, read_source, validate

HOOK_POINTS = ("apply-start", "pre-apply-mode", "pre-apply-config", "apply-exit")


def _hook_point(name: str) -> str:
    if name not in HOOK_POINTS:
        near = difflib.get_close_matches(name, HOOK_POINTS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise PydanticCustomError("migctl", "{message}", {
            "message": f"unknown hook point {name!r}{hint} (known: {', '.join(HOOK_POINTS)})"})
    return name


def _version(value: object) -> str:
    if value != "v1":
        raise PydanticCustomError("migctl", "{message}", {
            "message": f"unknown version {value!r}; migctl reads hooks version: v1"})
    return "v1"


class HookSpec(BaseModel):
    """One hook: ``command`` run with ``args`` in ``workdir`` with ``envs`` added."""

    model_config = ConfigDict(extra="forbid", strict=True)

    command: Annotated[str, Field(min_length=1)]
    args: list[str] = Field(default_factory=list)
    envs: dict[str, str] = Field(default_factory=dict)
    workdir: str = ""

    @property
    def argv(self) -> tuple[str, ...]:
        return (self.command, *self.args)


class HooksSpec(BaseModel):
    """A hooks file: hook point -> the hooks to run there, in order."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: Annotated[str, PlainValidator(_version)]
    hooks: dict[Annotated[str, AfterValidator(_hook_point)], list[HookSpec]] = Field(default_factory=dict)


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


def load_hooks_text(text: str, source: str = "<hooks>") -> HooksSpec:
    """Parse and validate a hooks file; problems are :class:`ConfigError` with file:line."""
    data, lines = parse_document(text, source)
    return validate(HooksSpec, data, lines, source)


def load_hooks_path(path: str | os.PathLike[str]) -> HooksSpec:
    """Load a hooks file (``-``: stdin)."""
    text, source = read_source(path)
    return load_hooks_text(text, source)


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
