"""``migctl sim ...``: the simulated node's own controls (what happens outside NVML)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from migctl import sim as simulator
from migctl.cli.app import JSON_OPTION, STATE, app, emit
from migctl.errors import UsageError, from_nvml
from migctl.sim import catalog

sim_app = typer.Typer(
    help="Control the simulated node (models, reset, driver reload, processes, fabric manager).", no_args_is_help=True
)
app.add_typer(sim_app, name="sim")


def _control() -> simulator.SimControl:
    try:
        return simulator.open_control(STATE.sim)
    except simulator.SimSpecError as exc:
        raise UsageError(str(exc)) from None


@sim_app.command("models")
def models(json_out: bool = JSON_OPTION) -> None:
    """GPU models the simulator knows (for --sim MODEL[xCOUNT],...)."""
    data = {
        "models": [
            {
                "key": m.key,
                "name": m.name,
                "pci_device_id": f"0x{m.nvml_pci_device_id:08X}",
                "arch": m.arch,
                "mig_capable": m.mig_capable,
                "max_instances": m.max_instances,
                "profiles": [p.name for p in m.gi_profiles],
                "nvswitch": m.nvswitch,
            }
            for m in catalog.models().values()
        ]
    }

    def render(console: Console, d: dict[str, Any]) -> None:
        table = Table()
        for col in ("model", "name", "PCI ID", "arch", "max inst", "profiles"):
            table.add_column(col)
        for m in d["models"]:
            table.add_row(
                m["key"],
                m["name"],
                m["pci_device_id"],
                m["arch"],
                str(m["max_instances"]),
                ", ".join(m["profiles"]) or "(not MIG-capable)",
            )
        console.print(table)

    emit(data, render, json_out)


@sim_app.command("reset")
def reset(json_out: bool = JSON_OPTION) -> None:
    """Start the simulated node fresh: MIG disabled, no instances (uses --sim SPEC, else the stored one)."""
    try:
        spec = simulator.reset(STATE.sim)
    except simulator.SimSpecError as exc:
        raise UsageError(str(exc)) from None
    emit({"spec": spec, "reset": True}, lambda c, d: c.print(f"simulated node reset: {d['spec']}"), json_out)


@sim_app.command("reset-gpu")
def reset_gpu(index: int = typer.Argument(..., help="GPU index."), json_out: bool = JSON_OPTION) -> None:
    """Simulate a GPU reset (a pending MIG mode takes effect; instances are lost)."""
    import pynvml

    control = _control()
    if not 0 <= index < control.gpu_count:
        raise UsageError(f"the simulated node has no GPU {index}")
    try:
        control.reset_gpu(index)
    except pynvml.NVMLError as exc:
        raise from_nvml(exc, f"resetting simulated GPU {index}", hint="stop the processes using it first") from None
    emit({"index": index, "reset": True}, lambda c, d: c.print(f"GPU {index} reset"), json_out)


@sim_app.command("reload-driver")
def reload_driver(json_out: bool = JSON_OPTION) -> None:
    """Simulate unloading and reloading the driver (Hopper and later lose MIG mode)."""
    import pynvml

    control = _control()
    try:
        control.reload_driver()
    except pynvml.NVMLError as exc:
        raise from_nvml(exc, "reloading the simulated driver", hint="stop the processes using the GPUs first") from None
    emit({"reloaded": True}, lambda c, d: c.print("driver reloaded"), json_out)


@sim_app.command("fabric-manager")
def fabric_manager(
    action: str = typer.Argument("status", help="start, stop or status"), json_out: bool = JSON_OPTION
) -> None:
    """Start or stop the simulated nvidia-fabricmanager service (HGX boards need it for CUDA)."""
    control = _control()
    if action not in ("start", "stop", "status"):
        raise UsageError(f"fabric-manager {action!r}: expected start, stop or status")
    if action != "status":
        control.set_fabric_manager(action == "start")
    fm = control.fabric_manager()
    emit(
        {"active": fm.active, "version": fm.version},
        lambda c, d: c.print(
            f"nvidia-fabricmanager: {'active' if d['active'] else 'inactive'} (version {d['version']})"
        ),
        json_out,
    )


@sim_app.command("attach")
def attach(
    pid: int = typer.Option(..., "--pid", help="A running process to record as a compute process."),
    gpu: int | None = typer.Option(None, "-i", "--id", help="GPU index (MIG disabled: the whole GPU)."),
    uuid: str | None = typer.Option(None, "--uuid", help="MIG device UUID."),
    memory: int = typer.Option(256, "--memory", help="GPU memory it uses, MiB."),
    util: int = typer.Option(0, "--util", help="Load it puts on the device's SMs, 0-100 percent."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Record a running process as using a GPU or MIG device (until it exits), with its load."""
    control = _control()  # checks that the pid exists first, then where to attach it
    done = control.attach(pid, uuid=uuid or None, gpu=gpu, memory_mib=memory, util=util)
    emit(
        {"pid": pid, "attached": True, "memory_mib": done.memory_mib, "util": done.util},
        lambda c, d: c.print(f"pid {pid} attached"),
        json_out,
    )


@sim_app.command("load")
def set_load(
    pid: int = typer.Option(..., "--pid", help="An attached process."),
    util: int | None = typer.Option(None, "--util", help="Its new load on the device's SMs, 0-100 percent."),
    memory: int | None = typer.Option(None, "--memory", help="Its new GPU memory, MiB."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Change the load (and memory) of a process attached with sim attach."""
    done = _control().set_load(pid, util=util, memory_mib=memory)
    emit(
        {"pid": pid, "memory_mib": done.memory_mib, "util": done.util},
        lambda c, d: c.print(f"pid {pid}: {d['util']}% load, {d['memory_mib']} MiB"),
        json_out,
    )


@sim_app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
)
def exec_(ctx: typer.Context) -> None:
    """Run COMMAND with pynvml talking to the simulated node (nvitop, gpustat, your own script).

    \b
    migctl [--sim SPEC] sim exec -- COMMAND [ARGS...]

    Any Python program in COMMAND's process tree that imports pynvml sees the simulated GPUs,
    MIG devices, processes and load, and never the real libnvidia-ml. Exit status: COMMAND's.
    """
    import os
    import shutil

    from migctl.sim.exec import child_env

    argv = [a for a in ctx.args]
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("sim exec needs a command", hint="e.g. migctl --sim h20x8 sim exec -- nvitop -1")
    control = _control()
    exe = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
    if exe is None or not os.access(exe, os.X_OK):
        raise UsageError(f"{argv[0]}: command not found", hint="give a program on PATH or its path")
    env = child_env(control.spec, control.state_dir)
    os.execve(exe, argv, env)  # noqa: S606 - an argv list, no shell: the command replaces migctl
