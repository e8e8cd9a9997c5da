"""The ``--json`` contract of every command, as JSON Schema generated from the records.

:data:`COMMANDS` maps each command to the record its ``--json`` prints. :func:`command_schema`
turns a record class into a JSON Schema (via pydantic, imported only here: this module runs
when the docs are generated and in tests, never when a command runs). The generated schemas
are strict: every field is always present and no other key appears, which is exactly what
:func:`migctl.records.to_data` produces.

``python tools/gen_json_docs.py`` writes ``docs/json.md`` and ``docs/schema/*.json`` from
here; a test fails when they are stale, so the docs cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migctl.records import batch, cli, doctor, errors, inspect, layouts, lifecycle, run


@dataclass(frozen=True)
class CommandOutput:
    """What one command prints with ``--json``."""

    command: str
    record: type
    summary: str


COMMANDS: tuple[CommandOutput, ...] = (
    CommandOutput("status", inspect.StatusReport, "GPUs, MIG mode, GPU and compute instances, processes, leases."),
    CommandOutput("profiles", inspect.ProfilesReport, "GPU-instance profiles (nvidia-smi mig -lgip)."),
    CommandOutput("placements", inspect.PlacementsReport, "Legal placements and which are free (mig -lgipp)."),
    CommandOutput("ci-profiles", inspect.CiProfilesReport, "Compute-instance profiles of a GPU instance (mig -lcip)."),
    CommandOutput("devices", inspect.DevicesReport, "GPUs and MIG devices with UUIDs (nvidia-smi -L)."),
    CommandOutput("mode", lifecycle.ModeReport, "MIG mode per GPU; pending and refused GPUs explained (-mig 1|0)."),
    CommandOutput("reset", lifecycle.ResetReport, "Each GPU's MIG mode after a GPU reset (--gpu-reset)."),
    CommandOutput("create", lifecycle.CreateReport, "The GPU instances made, with compute instances (mig -cgi -C)."),
    CommandOutput("create-ci", lifecycle.CreateReport, "The compute instances made in one GPU instance (mig -cci)."),
    CommandOutput("destroy", lifecycle.DestroyReport, "What was destroyed: compute instances, then GPU instances."),
    CommandOutput("plan", layouts.PlanReport, "Per GPU, what apply would keep, destroy, recompute and create."),
    CommandOutput("apply", layouts.ApplyReport, "How each GPU's transaction ended, and the hooks that ran."),
    CommandOutput("assert", layouts.AssertReport, "Whether the node matches the layout, and each GPU's differences."),
    CommandOutput("export", layouts.ExportReport, "The layout, and the mig-parted file that reproduces it."),
    CommandOutput("recover", layouts.RecoverReport, "Interrupted applies and creates, finished or rolled back."),
    CommandOutput(
        "run",
        run.RunReport,
        "Where the command ran and how it ended. Stdout is the command's own, so `migctl run --json` writes "
        "this document (or its error) on **stderr** when the command ends, and `--record FILE` writes it to FILE.",
    ),
    CommandOutput("batch", batch.BatchReport, "Each job's fate and the batch's summary."),
    CommandOutput("doctor", doctor.DoctorReport, "Every check with its verdict and fix."),
    CommandOutput("completion", cli.CompletionScript, "The shell completion script, as data."),
    CommandOutput("error", errors.ErrorReport, "What any command prints with --json when it fails (exit code != 0)."),
)


#: Registry entries that are not commands: the error document every command may print.
NOT_COMMANDS = frozenset({"error"})


def by_command() -> dict[str, CommandOutput]:
    return {c.command: c for c in COMMANDS}


def _strict(node: Any) -> Any:
    """Every object: all properties required, no others allowed; drop pydantic's titles."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items() if k != "title"}
        if out.get("type") == "object" and "properties" in out:
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
            for prop in out["properties"].values():
                prop.pop("default", None)
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def command_schema(record: type) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of what ``to_data`` makes of ``record``."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(record).json_schema(mode="serialization")
    strict: dict[str, Any] = _strict(schema)
    strict["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return strict
