"""Drawing results for people: slice bars and nvidia-smi-like tables."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

COLORS = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta"]
CELL = 7


def gib(mib: int) -> str:
    """Memory column as nvidia-smi prints it: MiB / 1024 with %.2f (round half to even)."""
    return f"{mib / 1024:.2f}"


def slice_bar(span: int, instances: list[dict[str, Any]], *, label: str = "GI") -> Text:
    """One cell per memory slice; each instance spans its slices, free slices show as ``·``.

    ``instances``: dicts with ``id``, ``profile`` and ``placement: {start, size}``.
    """
    owner: dict[int, int] = {}
    for n, inst in enumerate(instances):
        p = inst["placement"]
        for s in range(p["start"], p["start"] + p["size"]):
            owner[s] = n
    bar = Text("|")
    s = 0
    while s < span:
        if s in owner:
            n = owner[s]
            inst = instances[n]
            width = inst["placement"]["size"] * CELL - 1
            text = f"{label}{inst['id']} {inst['profile']}"
            if len(text) > width:
                text = f"{label}{inst['id']}"[:width]
            bar.append(text.center(width), style=f"bold black on {COLORS[n % len(COLORS)]}")
            s += inst["placement"]["size"]
        else:
            bar.append("·".center(CELL - 1), style="dim")
            s += 1
        bar.append("|")
    return bar


def slice_ruler(span: int) -> Text:
    # Each number sits over its cell's content (CELL - 1 wide), not over the cell's separator.
    return Text(" " + "".join(str(s).center(CELL - 1) + " " for s in range(span)), style="dim")


def render_status(console: Console, data: dict[str, Any]) -> None:
    if data.get("simulated"):
        console.print("[dim](simulated node)[/dim]")
    for g in data["gpus"]:
        mig = g["mig"]
        if mig is None:
            mode = "MIG: not supported"
        else:
            mode = "MIG: " + ("enabled" if mig["current"] else "disabled")
            if mig["pending"] != mig["current"]:
                mode += f" [yellow](pending: {'enabled' if mig['pending'] else 'disabled'}; needs a GPU reset)[/yellow]"
        mem = g["memory"]
        console.print(
            f"[bold]GPU {g['index']}[/bold]  {g['name']}  {g['uuid']}  {g['bus_id']}  {mode}  "
            f"memory {mem['used_mib']}/{mem['total_mib']} MiB"
        )
        if mig is not None and mig["current"]:
            console.print(slice_ruler(g["slices"]))
            console.print(slice_bar(g["slices"], g["gpu_instances"]))
            rows = [(gi, ci) for gi in g["gpu_instances"] for ci in gi["compute_instances"]]
            if rows:
                table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
                for col in ("GI", "CI", "profile", "placement", "MIG device UUID", "in use by"):
                    table.add_column(col)
                for gi, ci in rows:
                    who = []
                    if ci.get("holder"):
                        h = ci["holder"]
                        who.append(f"lease pid {h['pid']} ({h.get('command', '?')})")
                    who += [f"pid {p['pid']} {p['user']}: {p['command']}" for p in ci["processes"]]
                    table.add_row(
                        str(gi["id"]),
                        str(ci["id"]),
                        ci["profile"],
                        f"{gi['placement']['start']}:{gi['placement']['size']}",
                        ci["uuid"],
                        "; ".join(who) or "-",
                    )
                console.print(table)
            empty = [gi for gi in g["gpu_instances"] if not gi["compute_instances"]]
            for gi in empty:
                console.print(f"  GI {gi['id']} ({gi['profile']}) has no compute instance (not usable by CUDA)")
            if not g["gpu_instances"]:
                console.print("  no GPU instances (CUDA sees no device on this GPU until some are created)")
        elif g["processes"]:
            for p in g["processes"]:
                console.print(f"  process pid {p['pid']} {p['user']}: {p['command']}")
        console.print()


def render_profiles(console: Console, data: dict[str, Any]) -> None:
    table = Table(title="GPU instance profiles", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("GPU", "Name", "ID", "Free/Total", "Memory GiB", "P2P", "SM", "DEC", "ENC", "CE", "JPEG", "OFA"):
        table.add_column(col, justify="left" if col == "Name" else "right")
    for g in data["gpus"]:
        if not g["mig_capable"]:
            console.print(f"GPU {g['index']} ({g['name']}): not MIG-capable")
            continue
        for p in g["profiles"]:
            free = str(p["instances_free"]) if g["mig_enabled"] else "-"
            table.add_row(
                str(g["index"]),
                f"MIG {p['name']}",
                str(p["id"]),
                f"{free}/{p['instances_total']}",
                gib(p["memory_mib"]),
                "Yes" if p["p2p"] else "No",
                str(p["sm"]),
                str(p["dec"]),
                str(p["enc"]),
                str(p["ce"]),
                str(p["jpeg"]),
                str(p["ofa"]),
            )
    if table.rows:
        console.print(table)
    if any(g["mig_capable"] and not g["mig_enabled"] for g in data["gpus"]):
        console.print("[dim]Free shows '-' while MIG is disabled: enable it with migctl mode enable[/dim]")


def render_placements(console: Console, data: dict[str, Any]) -> None:
    for g in data["gpus"]:
        if not g.get("mig_capable", True):
            console.print(f"GPU {g['index']} ({g['name']}): not MIG-capable", markup=False)
        for p in g["profiles"]:
            starts = ",".join(str(x["start"]) for x in p["placements"])
            size = p["placements"][0]["size"] if p["placements"] else 0
            word = "Placement :" if len(p["placements"]) == 1 else "Placements:"
            free = ",".join(str(x["start"]) for x in p["placements"] if x["free"])
            free_txt = f"free now: {{{free}}}" if g["mig_enabled"] else "free now: - (MIG disabled)"
            console.print(
                f"GPU {g['index']:2d} Profile ID {p['id']:2d} {word} {{{starts}}}:{size}  ({p['name']}; {free_txt})"
            )


def render_ci_profiles(console: Console, data: dict[str, Any]) -> None:
    table = Table(
        title=f"Compute instance profiles (GPU {data['index']}, GPU instance {data['gpu_instance_id']})",
        title_justify="left",
    )
    for col in ("Name", "Profile ID", "Free/Total", "SM", "DEC", "ENC", "OFA", "CE", "JPEG", "Placements"):
        table.add_column(col, justify="left" if col in ("Name", "Placements") else "right")
    for p in data["profiles"]:
        starts = ",".join(str(x["start"]) for x in p["placements"])
        size = p["placements"][0]["size"] if p["placements"] else 0
        table.add_row(
            f"MIG {p['name']}",
            f"{p['id']}{'*' if p['default'] else ''}",
            f"{p['instances_free']}/{p['instances_total']}",
            str(p["sm"]),
            str(p["dec"]),
            str(p["enc"]),
            str(p["ofa"]),
            str(p["ce"]),
            str(p["jpeg"]),
            f"{{{starts}}}:{size}",
        )
    console.print(table)
    console.print("[dim]* the default compute instance (what -C / create without a CI profile makes)[/dim]")


def render_devices(console: Console, data: dict[str, Any]) -> None:
    for g in data["gpus"]:
        console.print(f"GPU {g['index']}: {g['name']} (UUID: {g['uuid']})")
        for m in g["mig_devices"]:
            console.print(f"  MIG {m['profile']:<13} Device {m['index']:2d}: (UUID: {m['uuid']})")
