"""Read-only commands: status, profiles, placements, ci-profiles, devices. They never wait for a lock."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

from migctl.cli.app import GPUS_OPTION, STATE, commands, emit
from migctl.cli.render import dim, gib, slice_bar, slice_ruler, table
from migctl.ops import inspect
from migctl.records.inspect import (
    CiProfilesReport,
    DevicesReport,
    PlacementsReport,
    ProfilesReport,
    StatusReport,
)

app = commands()


@app.command()
def status(
    gpus: str | None = GPUS_OPTION,
    util: bool = typer.Option(
        False, "--util", help="Measure utilization per GPU and GPU instance (GPM on Hopper+; takes 0.2 s)."
    ),
) -> None:
    """GPUs, MIG mode, GPU instances as slice bars, MIG devices with memory, engines and users."""
    from migctl.ops.leases import holder_records

    node = STATE.node()
    if util:
        from migctl.ops.utilization import measured_status

        emit(measured_status(node, STATE.select(gpus), holder_records()), render_status)
        return
    emit(inspect.status(node, STATE.select(gpus), holder_records()), render_status)


@app.command()
def profiles(gpus: str | None = GPUS_OPTION) -> None:
    """GPU-instance profiles with free/total instances (nvidia-smi mig -lgip)."""
    emit(inspect.profiles(STATE.select(gpus)), render_profiles)


@app.command()
def placements(
    profile: str | None = typer.Argument(
        None, metavar="[PROFILE]", help="A profile name (1g.12gb) or ID (19); all when omitted.", show_default=False
    ),
    gpus: str | None = GPUS_OPTION,
) -> None:
    """Legal placements per profile and which are free now (nvidia-smi mig -lgipp)."""
    emit(inspect.placements(STATE.select(gpus), profile), render_placements)


@app.command("ci-profiles")
def ci_profiles(
    gpus: str | None = typer.Option(
        None, "-i", "--id", metavar="GPU", help="One GPU (may be left out on a one-GPU node).", show_default=False
    ),
    gi: int = typer.Option(..., "--gi", metavar="ID", help="GPU-instance ID.", show_default=False),
) -> None:
    """Compute-instance profiles of one GPU instance (nvidia-smi mig -lcip)."""
    emit(inspect.ci_profiles(STATE.one_gpu(gpus, "ci-profiles"), gi), render_ci_profiles)


@app.command()
def devices(gpus: str | None = GPUS_OPTION) -> None:
    """GPUs and MIG devices with their UUIDs (nvidia-smi -L)."""
    emit(inspect.devices(STATE.select(gpus)), render_devices)


# -- views ------------------------------------------------------------------------------------------


def render_status(console: Console, data: StatusReport) -> None:
    from migctl.cli.status_view import render_mig_devices, util_text

    if data.simulated:
        console.print(dim("(simulated node)"))
    for g in data.gpus:
        mode = Text("MIG: not supported")
        if g.mig is not None:
            mode = Text("MIG: " + ("enabled" if g.mig.current else "disabled"))
            if g.mig.pending != g.mig.current:
                pending = "enabled" if g.mig.pending else "disabled"
                mode.append(f" (pending: {pending}; needs a GPU reset)", style="yellow")
        head = Text.assemble(
            (f"GPU {g.index}", "bold"), f"  {g.name}  {g.uuid}  {g.bus_id}  ", mode,
            f"  memory {g.memory.used_mib}/{g.memory.total_mib} MiB",
        )
        if g.utilization is not None:
            head.append(f"  util {util_text(g.utilization)}")
            if g.utilization.source != "n/a":
                head.append(f" ({g.utilization.source.upper()})")
        console.print(head)
        if g.utilization is not None and g.utilization.reason:
            console.print(dim(f"  util n/a: {g.utilization.reason}"))
        if g.mig is not None and g.mig.current:
            console.print(slice_ruler(g.slices))
            console.print(slice_bar(g.slices, [(gi.id, gi.profile, gi.placement) for gi in g.gpu_instances]))
            render_mig_devices(console, g)
            for gi in g.gpu_instances:
                if not gi.compute_instances:
                    console.print(f"  GI {gi.id} ({gi.profile}) has no compute instance (not usable by CUDA)")
            if not g.gpu_instances:
                console.print("  no GPU instances (CUDA sees no device on this GPU until some are created)")
        else:
            for p in g.processes:
                console.print(f"  process pid {p.pid} {p.user}: {p.command}")
        console.print()


#: nvidia-smi mig -lgip's order, used by both profile tables.
_ENGINES = ("SM", "DEC", "ENC", "CE", "JPEG", "OFA")


def render_profiles(console: Console, data: ProfilesReport) -> None:
    cols = ("GPU", "Name", "ID", "Free/Total", "Memory GiB", "P2P", *_ENGINES)
    t = table(*cols, title="GPU instance profiles", right=[c for c in cols if c != "Name"])
    for g in data.gpus:
        if not g.mig_capable:
            console.print(f"GPU {g.index} ({g.name}): not MIG-capable")
            continue
        for p in g.profiles:
            free = str(p.instances_free) if g.mig_enabled else "-"
            t.add_row(
                str(g.index), f"MIG {p.name}", str(p.id), f"{free}/{p.instances_total}", gib(p.memory_mib),
                "Yes" if p.p2p else "No", *(str(v) for v in (p.sm, p.dec, p.enc, p.ce, p.jpeg, p.ofa)),
            )
    if t.rows:
        console.print(t)
    if any(g.mig_capable and not g.mig_enabled for g in data.gpus):
        console.print(dim("Free shows '-' while MIG is disabled: enable it with migctl mode enable"))


def render_placements(console: Console, data: PlacementsReport) -> None:
    for g in data.gpus:
        if not g.mig_capable:
            console.print(f"GPU {g.index} ({g.name}): not MIG-capable")
        for p in g.profiles:
            starts = ",".join(str(x.start) for x in p.placements)
            size = p.placements[0].size if p.placements else 0
            word = "Placement :" if len(p.placements) == 1 else "Placements:"
            free = ",".join(str(x.start) for x in p.placements if x.free)
            free_txt = f"free now: {{{free}}}" if g.mig_enabled else "free now: - (MIG disabled)"
            console.print(f"GPU {g.index:2d} Profile ID {p.id:2d} {word} {{{starts}}}:{size}  ({p.name}; {free_txt})")


def render_ci_profiles(console: Console, data: CiProfilesReport) -> None:
    cols = ("Name", "Profile ID", "Free/Total", *_ENGINES, "Placements")
    t = table(
        *cols,
        title=f"Compute instance profiles (GPU {data.index}, GPU instance {data.gpu_instance_id})",
        right=[c for c in cols if c not in ("Name", "Placements")],
    )
    for p in data.profiles:
        starts = ",".join(str(x.start) for x in p.placements)
        size = p.placements[0].size if p.placements else 0
        t.add_row(
            f"MIG {p.name}", f"{p.id}{'*' if p.default else ''}", f"{p.instances_free}/{p.instances_total}",
            *(str(v) for v in (p.sm, p.dec, p.enc, p.ce, p.jpeg, p.ofa)), f"{{{starts}}}:{size}",
        )
    console.print(t)
    console.print(dim("* the default compute instance (what -C / create without a CI profile makes)"))


def render_devices(console: Console, data: DevicesReport) -> None:
    for g in data.gpus:
        console.print(f"GPU {g.index}: {g.name} (UUID: {g.uuid})")
        for m in g.mig_devices:
            console.print(f"  MIG {m.profile:<13} Device {m.index:2d}: (UUID: {m.uuid})")
