"""``migctl sim ...``: the simulated node's own controls (what happens outside NVML)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from migctl import sim as simulator
from migctl.cli.app import STATE, commands, emit
from migctl.cli.render import table
from migctl.errors import UsageError, from_nvml
from migctl.sim import catalog

app = commands()
sim_app = commands(
    help="Control the simulated node (models, reset, driver reload, processes, fabric manager).", no_args_is_help=True
)
app.add_typer(sim_app, name="sim")


def _sim() -> simulator.SimNvml:
    try:
        return simulator.open(STATE.sim)
    except simulator.SimSpecError as exc:
        raise UsageError(str(exc)) from None


def _gpu_handle(nvml: simulator.SimNvml, index: int) -> Any:
    import pynvml

    try:
        return nvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError:
        raise UsageError(f"the simulated node has no GPU {index}") from None


@sim_app.command("models")
def models() -> None:
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
        t = table("model", "name", "PCI ID", "arch", "max inst", "profiles", right=("max inst",))
        t.columns[5].no_wrap = False
        for m in d["models"]:
            t.add_row(
                m["key"],
                m["name"],
                m["pci_device_id"],
                m["arch"],
                str(m["max_instances"]),
                ", ".join(m["profiles"]) or "(not MIG-capable)",
            )
        console.print(t)

    emit(data, render)


@sim_app.command("reset")
def reset() -> None:
    """Start the simulated node fresh: MIG disabled, no instances (uses --sim SPEC, else the stored one)."""
    try:
        spec = simulator.reset(STATE.sim)
    except simulator.SimSpecError as exc:
        raise UsageError(str(exc)) from None
    emit({"spec": spec, "reset": True}, lambda c, d: c.print(f"simulated node reset: {d['spec']}"))


@sim_app.command("reset-gpu")
def reset_gpu(index: int = typer.Argument(..., metavar="INDEX", help="GPU index.", show_default=False)) -> None:
    """Simulate a GPU reset (a pending MIG mode takes effect; instances are lost)."""
    import pynvml

    nvml = _sim()
    try:
        nvml.simResetGpu(_gpu_handle(nvml, index))
    except pynvml.NVMLError as exc:
        raise from_nvml(exc, f"resetting simulated GPU {index}", hint="stop the processes using it first") from None
    emit({"index": index, "reset": True}, lambda c, d: c.print(f"GPU {index} reset"))


@sim_app.command("reload-driver")
def reload_driver() -> None:
    """Simulate unloading and reloading the driver (Hopper and later lose MIG mode)."""
    import pynvml

    nvml = _sim()
    try:
        nvml.simReloadDriver()
    except pynvml.NVMLError as exc:
        raise from_nvml(exc, "reloading the simulated driver", hint="stop the processes using the GPUs first") from None
    emit({"reloaded": True}, lambda c, d: c.print("driver reloaded"))


@sim_app.command("fabric-manager")
def fabric_manager(
    action: str = typer.Argument(
        "status", metavar="[start|stop|status]", help="What to do (default status).", show_default=False
    ),
) -> None:
    """Start or stop the simulated nvidia-fabricmanager service (HGX boards need it for CUDA)."""
    nvml = _sim()
    if action not in ("start", "stop", "status"):
        raise UsageError(f"fabric-manager {action!r}: expected start, stop or status")
    if action != "status":
        nvml.simSetFabricManager(action == "start")
    state = nvml.simFabricManager()
    emit(
        state,
        lambda c, d: c.print(
            f"nvidia-fabricmanager: {'active' if d['active'] else 'inactive'} (version {d['version']})"
        ),
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
) -> None:
    """Record a running process as using a GPU or MIG device (until it exits)."""
    import pynvml

    nvml = _sim()
    try:
        if uuid:
            handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
        elif gpu is not None:
            handle = _gpu_handle(nvml, gpu)
        else:
            raise UsageError("sim attach needs -i GPU or --uuid MIG-...")
        nvml.simAttachProcess(handle, pid, memory)
    except pynvml.NVMLError as exc:
        raise from_nvml(
            exc,
            f"attaching pid {pid}",
            hint="attach to a MIG device (--uuid) when MIG is enabled, to a GPU (-i) otherwise",
        ) from None
    emit({"pid": pid, "attached": True}, lambda c, d: c.print(f"pid {pid} attached"))
