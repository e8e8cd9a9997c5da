"""The ``--json`` contract of every command, as JSON Schema generated from the records.

:data:`COMMANDS` maps each command to the record its ``--json`` prints (a subcommand is
``"boot install"``; a command whose record depends on an option is listed once per value, as
``"export --format slurm"``). :func:`command_schema`
turns a record class into a JSON Schema (via pydantic, imported only here: this module runs
when the docs are generated and in tests, never when a command runs). The generated schemas
are strict: every field is always present and no other key appears, which is exactly what
:func:`migctl.records.to_data` produces.

``python tools/gen_json_docs.py`` writes ``docs/json.md`` and ``docs/schema/*.json`` from
here; a test fails when they are stale, so the docs cannot drift from the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from migctl.records import (
    autobatch,
    batch,
    boot,
    cli,
    cluster,
    doctor,
    errors,
    inspect,
    layouts,
    lifecycle,
    observe,
    parity,
    run,
    schedulers,
    sim,
)


@dataclass(frozen=True)
class CommandOutput:
    """What one command prints with ``--json``."""

    command: str
    record: type
    summary: str

    @property
    def slug(self) -> str:
        """The command as a file name: ``boot install`` -> ``boot-install`` (``docs/schema/<slug>.json``)."""
        return re.sub(r"[^A-Za-z0-9]+", "-", self.command).strip("-")

    @property
    def name(self) -> str:
        """The command itself, without the option that chooses the record (``export``)."""
        return self.command.split(" --", 1)[0]


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
        "export --format slurm",
        schedulers.SlurmExportReport,
        "gres.conf lines for the current layout and the slurm.conf NodeName fragment ([slurm.md](slurm.md)).",
    ),
    CommandOutput(
        "export --format k8s",
        schedulers.K8sExportReport,
        "What NVIDIA's device plugin advertises and GPU feature discovery labels ([kubernetes.md](kubernetes.md)).",
    ),
    CommandOutput("generate-config", parity.GenerateConfigReport, "The mig-parted configs built from the profiles."),
    CommandOutput(
        "checkpoint",
        parity.CheckpointReport,
        "The node's exact MIG state. Without `--json`, `checkpoint` prints (or `-f` writes) the `checkpoint` "
        "object of this document, which `restore` reads.",
    ),
    CommandOutput("restore", parity.RestoreReport, "Each checkpointed GPU brought back, as apply reports it."),
    CommandOutput("boot install", boot.BootRecorded, "The config applied, its exact layout recorded for every boot."),
    CommandOutput("boot select", boot.BootRecorded, "Another config applied and recorded (the unit is kept)."),
    CommandOutput("boot apply", boot.BootRun, "What the unit did at boot; `boot status` shows it as `last_boot`."),
    CommandOutput("boot status", boot.BootStatus, "Unit, recorded config, last boot apply ([boot.md](boot.md))."),
    CommandOutput("boot uninstall", boot.BootUninstall, "The files removed."),
    CommandOutput("slurm task-prolog", schedulers.TaskPrologReport, "The MIG UUIDs of the GRES a Slurm job was given."),
    CommandOutput("k8s hooks-file", schedulers.K8sHooksFileReport, "The hooks file for apply on a Kubernetes node."),
    CommandOutput("k8s clients", schedulers.K8sClientsReport, "The GPU clients' deploy labels set (pause|resume)."),
    CommandOutput(
        "run",
        run.RunReport,
        "Where the command ran and how it ended. Stdout is the command's own, so `migctl run --json` writes "
        "this document (or its error) on **stderr** when the command ends, and `--record FILE` writes it to FILE.",
    ),
    CommandOutput("batch", batch.BatchReport, "Each job's fate and the batch's summary."),
    CommandOutput(
        "batch --auto",
        autobatch.AutoBatchReport,
        "As `batch`, plus where the scheduler put each job and when, and every reshape "
        "([scheduler.md](scheduler.md)).",
    ),
    CommandOutput("doctor", doctor.DoctorReport, "Every check with its verdict and fix."),
    CommandOutput(
        "top",
        inspect.StatusReport,
        "`top --json`: one measured snapshot (the status with utilization, as `status --util`), then exit.",
    ),
    CommandOutput(
        "exporter",
        observe.ExporterStarted,
        "Printed once the exporter listens (where, and how often it collects); it then serves until stopped.",
    ),
    CommandOutput("completion", cli.CompletionScript, "The shell completion script, as data."),
    CommandOutput("sim models", sim.SimModelsReport, "GPU models the simulator knows (what `--sim` takes)."),
    CommandOutput("sim reset", sim.SimNodeReset, "The simulated node started fresh: MIG disabled, no instances."),
    CommandOutput("sim reset-gpu", sim.SimGpuReset, "A simulated GPU reset (a pending MIG mode takes effect)."),
    CommandOutput("sim reload-driver", sim.SimDriverReloaded, "A simulated driver reload (Hopper loses MIG mode)."),
    CommandOutput("sim fabric-manager", sim.SimFabricManager, "The simulated nvidia-fabricmanager after the action."),
    CommandOutput("sim attach", sim.SimAttached, "A process recorded as using a GPU or MIG device, with its load."),
    CommandOutput("sim load", sim.SimLoad, "An attached process's new load and memory."),
    CommandOutput("ray up", cluster.RayUpReport, "The scheduler and every node's agent running ([ray.md](ray.md))."),
    CommandOutput("ray down", cluster.RayDownReport, "The migctl actors stopped; MIG instances stay as they are."),
    CommandOutput(
        "cluster status", cluster.ClusterStatusReport, "Every Ray node's `status`, and what was made on demand."
    ),
    CommandOutput("cluster plan", cluster.ClusterPlanReport, "Each Ray node's `plan` of the layout."),
    CommandOutput("cluster apply", cluster.ClusterApplyReport, "Each Ray node's `apply`, run there, in parallel."),
    CommandOutput("cluster assert", cluster.ClusterAssertReport, "Each Ray node's `assert` of the layout."),
    CommandOutput("error", errors.ErrorReport, "What any command prints with --json when it fails (exit code != 0)."),
)


#: Registry entries that are not commands: the error document every command may print.
NOT_COMMANDS = frozenset({"error"})

#: Commands that print no record of migctl's: ``sim exec`` replaces itself with the program it
#: runs (its output and exit status are the program's; a refusal before that is the error document).
PROGRAM_OUTPUT = frozenset({"sim exec"})


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
