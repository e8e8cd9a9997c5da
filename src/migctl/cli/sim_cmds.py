"""``migctl sim ...``: the simulated node's own controls (what happens outside NVML)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from migctl.cli.app import STATE, commands, emit
from migctl.errors import UsageError, from_nvml

if TYPE_CHECKING:
    from rich.console import Console

    from migctl import sim as simulator
    from migctl.records.sim import SimModelsReport

app = commands()
sim_app = commands(
    help="Control the simulated node (models, reset, driver reload, processes, fabric manager).", no_args_is_help=True
)
app.add_typer(sim_app, name="sim")


def _control() -> simulator.SimControl:
    from migctl import sim as simulator

    try:
        return simulator.open_control(STATE.sim)
    except simulator.SimSpecError as exc:
        raise UsageError(str(exc)) from None


@sim_app.command("models")
def models() -> None:
    """GPU models the simulator knows (for --sim MODEL[xCOUNT],...)."""
    from migctl.records.sim import SimModel, SimModelsReport
    from migctl.sim import catalog

    emit(
        SimModelsReport(
            tuple(
                SimModel(
                    key=m.key,
                    name=m.name,
                    pci_device_id=f"0x{m.nvml_pci_device_id:08X}",
                    arch=m.arch,
                    mig_capable=m.mig_capable,
                    max_instances=m.max_instances,
                    profiles=tuple(p.name for p in m.gi_profiles),
                    nvswitch=m.nvswitch,
                )
                for m in catalog.models().values()
            )
        ),
        _render_models,
    )


def _render_models(console: Console, report: SimModelsReport) -> None:
    from migctl.cli.render import table

    t = table("model", "name", "PCI ID", "arch", "max inst", "profiles", right=("max inst",))
    t.columns[5].no_wrap = False
    for m in report.models:
        profiles = ", ".join(m.profiles) or "(not MIG-capable)"
        t.add_row(m.key, m.name, m.pci_device_id, m.arch, str(m.max_instances), profiles)
    console.print(t)


@sim_app.command("reset")
def reset() -> None:
    """Start the simulated node fresh: MIG disabled, no instances (uses --sim SPEC, else the stored one)."""
    from migctl import sim as simulator
    from migctl.records.sim import SimNodeReset

    try:
        spec = simulator.reset(STATE.sim)
    except simulator.SimSpecError as exc:
        raise UsageError(str(exc)) from None
    emit(SimNodeReset(spec, True), lambda c, r: c.print(f"simulated node reset: {r.spec}"))


@sim_app.command("reset-gpu")
def reset_gpu(index: int = typer.Argument(..., metavar="INDEX", help="GPU index.", show_default=False)) -> None:
    """Simulate a GPU reset (a pending MIG mode takes effect; instances are lost)."""
    import pynvml

    control = _control()
    if not 0 <= index < control.gpu_count:
        raise UsageError(f"the simulated node has no GPU {index}")
    try:
        control.reset_gpu(index)
    except pynvml.NVMLError as exc:
        raise from_nvml(exc, f"resetting simulated GPU {index}", hint="stop the processes using it first") from None
    from migctl.records.sim import SimGpuReset

    emit(SimGpuReset(index, True), lambda c, r: c.print(f"GPU {r.index} reset"))


@sim_app.command("reload-driver")
def reload_driver() -> None:
    """Simulate unloading and reloading the driver (Hopper and later lose MIG mode)."""
    import pynvml

    control = _control()
    try:
        control.reload_driver()
    except pynvml.NVMLError as exc:
        raise from_nvml(exc, "reloading the simulated driver", hint="stop the processes using the GPUs first") from None
    from migctl.records.sim import SimDriverReloaded

    emit(SimDriverReloaded(True), lambda c, r: c.print("driver reloaded"))


@sim_app.command("fabric-manager")
def fabric_manager(
    action: str = typer.Argument(
        "status", metavar="[start|stop|status]", help="What to do (default status).", show_default=False
    ),
) -> None:
    """Start or stop the simulated nvidia-fabricmanager service (HGX boards need it for CUDA)."""
    control = _control()
    if action not in ("start", "stop", "status"):
        raise UsageError(f"fabric-manager {action!r}: expected start, stop or status")
    if action != "status":
        control.set_fabric_manager(action == "start")
    from migctl.records.sim import SimFabricManager

    fm = control.fabric_manager()
    emit(
        SimFabricManager(fm.active, fm.version),
        lambda c, r: c.print(f"nvidia-fabricmanager: {'active' if r.active else 'inactive'} (version {r.version})"),
    )


@sim_app.command("attach")
def attach(
    pid: int = typer.Option(
        ..., "--pid", metavar="PID", help="A running process to record as a compute process.", show_default=False
    ),
    gpu: int | None = typer.Option(
        None, "-i", "--id", metavar="GPU", help="GPU index (MIG disabled: the whole GPU).", show_default=False
    ),
    uuid: str | None = typer.Option(None, "--uuid", metavar="MIG-UUID", help="MIG device UUID.", show_default=False),
    memory: int = typer.Option(
        256, "--memory", metavar="MIB", help="GPU memory it uses, MiB (default 256).", show_default=False
    ),
    util: int = typer.Option(
        0, "--util", metavar="PERCENT", help="Load it puts on the device's SMs, 0-100 (default 0).", show_default=False
    ),
) -> None:
    """Record a running process as using a GPU or MIG device (until it exits), with its load."""
    control = _control()  # checks that the pid exists first, then where to attach it
    done = control.attach(pid, uuid=uuid or None, gpu=gpu, memory_mib=memory, util=util)
    from migctl.records.sim import SimAttached

    emit(SimAttached(pid, True, done.memory_mib, done.util), lambda c, r: c.print(f"pid {r.pid} attached"))


@sim_app.command("load")
def set_load(
    pid: int = typer.Option(..., "--pid", metavar="PID", help="An attached process.", show_default=False),
    util: int | None = typer.Option(
        None, "--util", metavar="PERCENT", help="Its new load on the device's SMs, 0-100.", show_default=False
    ),
    memory: int | None = typer.Option(
        None, "--memory", metavar="MIB", help="Its new GPU memory, MiB.", show_default=False
    ),
) -> None:
    """Change the load (and memory) of a process attached with sim attach."""
    done = _control().set_load(pid, util=util, memory_mib=memory)
    from migctl.records.sim import SimLoad

    emit(
        SimLoad(pid, done.memory_mib, done.util),
        lambda c, r: c.print(f"pid {r.pid}: {r.util}% load, {r.memory_mib} MiB"),
    )


@sim_app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    command: list[str] | None = typer.Argument(
        None,
        metavar="[--] COMMAND [ARGS]...",
        help="The program and its arguments (every word from COMMAND on is its own).",
        show_default=False,
    ),
) -> None:
    """Run COMMAND with pynvml talking to the simulated node (nvitop, gpustat, your own script).

    Any Python program in COMMAND's process tree that imports pynvml sees the simulated GPUs,
    MIG devices, processes and load, and never the real libnvidia-ml. migctl's own options end
    at COMMAND (or --): migctl --sim h20x8 sim exec nvitop -1. Exit status: COMMAND's.
    """
    import os
    import shutil

    from migctl.sim.exec import child_env

    argv = list(command or ())
    if not argv:
        raise UsageError("sim exec needs a command", hint="e.g. migctl --sim h20x8 sim exec -- nvitop -1")
    control = _control()
    exe = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
    if exe is None or not os.access(exe, os.X_OK):
        raise UsageError(f"{argv[0]}: command not found", hint="give a program on PATH or its path")
    env = child_env(control.spec, control.state_dir)
    os.execve(exe, argv, env)  # noqa: S606 - an argv list, no shell: the command replaces migctl
