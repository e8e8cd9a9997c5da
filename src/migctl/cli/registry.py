"""Which commands migctl has, the module each lives in, and the top-level ``--help``.

Nothing here imports typer, rich or the operations: ``migctl --help`` and ``migctl --version``
are answered from this table alone, and a command's module is imported only when that command
runs (:class:`migctl.cli.group.LazyGroup`). The one-line help below *is* each command's short
help (the group sets it on the command), so the two cannot drift.

Adding a front-end module is one line per command it defines (a module whose commands form a
group, like ``sim``, is one line): ``"name": ("module_in_migctl.cli", "Section", "One line.")``.
A test checks that every module defines exactly the commands listed for it.
"""

from __future__ import annotations

import os
import textwrap

#: name -> (module under ``migctl.cli``, help section, one-line help), in ``--help``'s order.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "status": ("inspect_cmds", "Inspect", "GPUs, MIG mode, GPU instances as slice bars, MIG devices, who uses them."),
    "top": ("observe_cmds", "Inspect", "Live view of GPUs, GPU instances and MIG devices: memory, utilization, users."),
    "devices": ("inspect_cmds", "Inspect", "GPUs and MIG devices with their UUIDs (nvidia-smi -L)."),
    "profiles": ("inspect_cmds", "Inspect", "GPU-instance profiles with free/total instances (nvidia-smi mig -lgip)."),
    "placements": ("inspect_cmds", "Inspect", "Legal placements and which are free now (nvidia-smi mig -lgipp)."),
    "ci-profiles": ("inspect_cmds", "Inspect", "Compute-instance profiles of one GPU instance (nvidia-smi mig -lcip)."),
    "mode": ("lifecycle_cmds", "Partition", "Enable or disable MIG mode (nvidia-smi -mig 1|0)."),
    "reset": ("lifecycle_cmds", "Partition", "Reset GPUs so a pending MIG mode takes effect (nvidia-smi -r)."),
    "create": ("lifecycle_cmds", "Partition", "Create GPU instances with their compute instances, all or nothing."),
    "create-ci": ("lifecycle_cmds", "Partition", "Create compute instances inside one GPU instance, all or nothing."),
    "destroy": ("lifecycle_cmds", "Partition", "Destroy compute and GPU instances; never ones in use."),
    "plan": ("layout_cmds", "Layouts", "Show what apply would do on each GPU, changing nothing."),
    "apply": ("layout_cmds", "Layouts", "Apply a layout (mig-parted file or --layout), each GPU a transaction."),
    "assert": ("layout_cmds", "Layouts", "Exit 0 if the node matches the layout, else 10 with the differences."),
    "export": ("layout_cmds", "Layouts", "Print the current layout as a mig-parted config (or for Slurm, Kubernetes)."),
    "recover": ("layout_cmds", "Layouts", "Finish or roll back an apply interrupted by a crash."),
    "generate-config": ("parity_cmds", "Layouts", "A mig-parted config built from the profiles the GPUs report."),
    "checkpoint": ("parity_cmds", "Layouts", "Save the exact MIG state (mode, instances, placements) as JSON."),
    "restore": ("parity_cmds", "Layouts", "Bring checkpointed GPUs back to that exact state; never busy ones."),
    "run": ("run_cmds", "Run work", "Run a command on one MIG device, leased for its whole life."),
    "batch": ("run_cmds", "Run work", "Run many jobs in parallel on MIG devices; --auto partitions the GPUs for them."),
    "doctor": ("run_cmds", "Run work", "Check that MIG and CUDA work here, with the fix for each problem."),
    "exporter": ("observe_cmds", "Services", "Serve Prometheus metrics with dcgm-exporter's names, per GPU instance."),
    "boot": ("boot_cmds", "Services", "Re-apply the recorded MIG layout at every boot (a systemd unit)."),
    "slurm": ("scheduler_cmds", "Services", "Slurm: MIG UUIDs for a job's GRES (export --format slurm: gres.conf)."),
    "k8s": ("scheduler_cmds", "Services", "Kubernetes: pause GPU client pods around apply, their hooks file."),
    "ray": ("ray_cmds", "Services", "Run migctl's agent on every Ray node and its MIG scheduler (docs/ray.md)."),
    "cluster": ("ray_cmds", "Services", "Every Ray node's MIG layout: status, plan, apply, assert (-f FILE -c NAME)."),
    "sim": ("sim_cmds", "More", "Control the simulated node (models, reset, driver reload, processes, exec)."),
    "completion": ("completion_cmds", "More", "Print the shell completion script for bash, zsh or fish."),
}

#: The options every command takes, before or after the command: (flag, metavar, help).
GLOBAL_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--sim", "SPEC", "Use the MIG simulator, e.g. h20x8 or h100-80gbx4,a30x2 (env MIGCTL_SIM)."),
    ("--state-dir", "DIR", "Where locks, leases, journals and a simulated node live (env MIGCTL_STATE_DIR)."),
    ("--json", "", "Print one JSON document on stdout, errors included (docs/json.md)."),
    ("--debug", "", "Show the traceback of an unexpected error."),
    ("--version", "", "Print migctl's version and exit."),
)

#: The global options that take a value (the rest are flags).
VALUED = frozenset(flag for flag, metavar, _ in GLOBAL_OPTIONS if metavar)
FLAGS = frozenset(flag for flag, metavar, _ in GLOBAL_OPTIONS if not metavar)

ABOUT = "Safe, repeatable NVIDIA MIG management: inspect, partition, apply layouts, run jobs."


def module_commands() -> dict[str, list[str]]:
    """module -> the commands it defines, in help order."""
    out: dict[str, list[str]] = {}
    for name, (module, _, _) in COMMANDS.items():
        out.setdefault(module, []).append(name)
    return out


def _width() -> int:
    try:
        return int(os.environ.get("COLUMNS") or os.get_terminal_size().columns)
    except (OSError, ValueError):
        return 100


def top_help(width: int | None = None) -> str:
    """``migctl --help``: usage, the global options and the commands by section."""
    width = max(60, min(width or _width(), 120))
    options = [(f"{flag} {metavar}".strip(), text) for flag, metavar, text in GLOBAL_OPTIONS]
    options.append(("--help", "Show this message and exit (migctl COMMAND --help: that command's)."))
    left = max(len(name) for name, _ in [*options, *((n, "") for n in COMMANDS)]) + 2
    lines = ["Usage: migctl [OPTIONS] COMMAND [ARGS]...", "", f"  {ABOUT}", ""]

    def row(name: str, text: str) -> None:
        wrapped = textwrap.wrap(text, width - left - 2) or [""]
        lines.append(f"  {name.ljust(left)}{wrapped[0]}")
        lines.extend(" " * (left + 2) + more for more in wrapped[1:])

    lines.append("Options (before or after the command):")
    for name, text in options:
        row(name, text)
    section = None
    for name, (_, sect, text) in COMMANDS.items():
        if sect != section:
            lines += ["", f"{sect}:"]
            section = sect
        row(name, text)
    lines += [
        "",
        "-i GPUS means the same on every command: every GPU when left out (as nvidia-smi); an index,",
        "a list (0,2), a range (0-3), a GPU UUID or a PCI bus ID. Grammar, defaults, exit codes: docs/cli.md.",
    ]
    return "\n".join(lines) + "\n"
