"""mig-parted's hooks file: its schema, and loading it (running the hooks is :mod:`migctl.ops.hooks`).

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

Stricter than mig-parted (which ignores them): unknown keys, unknown hook points and a
missing or wrong ``version`` are errors. Pure: text in, :class:`HooksSpec` or
:class:`~migctl.config.errors.ConfigError` out.
"""

from __future__ import annotations

import difflib
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from migctl.config.document import parse_document, validate
from migctl.config.load import KNOWN_KEYS

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


def load_hooks_text(text: str, source: str = "<hooks>") -> HooksSpec:
    """Parse and validate a hooks file; problems are :class:`ConfigError` with file:line."""
    return validate(HooksSpec, parse_document(text, source), known_keys=KNOWN_KEYS)
