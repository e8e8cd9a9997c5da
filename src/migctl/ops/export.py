"""``export``: the node's layout as a mig-parted v1 config that ``apply`` reproduces exactly.

The file is made by the config layer (:func:`migctl.config.export_spec`); ``portable`` leaves
out migctl's ``x-migctl`` keys so mig-parted can read it, and the report says where mig-parted
would then build something else (a GPU instance without compute instances, or compute instances
mig-parted groups differently; placements are always lost).
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.config import CurrentGpu, CurrentInstance, export_spec
from migctl.config.export import compute_counts, mig_parted_reading
from migctl.device import Gpu
from migctl.records.layouts import ExportedGpu, ExportedInstance, ExportReport


def _read(gpus: Sequence[Gpu]) -> list[tuple[CurrentGpu, ExportedGpu]]:
    """Each MIG-capable GPU's layout, as the config layer's export takes it and as the record says it."""
    out = []
    for gpu in gpus:
        mode = gpu.mig_mode()
        if mode is None:
            continue
        current: list[CurrentInstance] = []
        exported: list[ExportedInstance] = []
        for gi in gpu.gpu_instances():
            compute = tuple(sorted(ci.profile for ci in gi.compute_instances()))
            current.append(CurrentInstance(gi.profile, gi.placement.start, compute))
            exported.append(ExportedInstance(gi.profile, gi.placement, compute))
        pci = f"0x{gpu.pci_device_id:08X}"
        out.append(
            (
                CurrentGpu(gpu.index, gpu.pci_device_id, mode.current, tuple(current), gpu.geometry()),
                ExportedGpu(gpu.index, pci, mode.current, tuple(exported)),
            )
        )
    return out


def current_layout(gpus: Sequence[Gpu]) -> list[CurrentGpu]:
    """The MIG-capable GPUs' layouts as the config layer's export takes them."""
    return [c for c, _ in _read(gpus)]


def _describe(instances: Sequence[tuple[str, tuple[str, ...]]]) -> str:
    parts = []
    for profile, compute in sorted(instances):
        inside = ", ".join(compute) if compute else "no compute instance"
        parts.append(profile if compute == (profile,) else f"{profile} [{inside}]")
    return ", ".join(parts) or "nothing"


def _portable_warnings(layout: Sequence[CurrentGpu]) -> tuple[str, ...]:
    """Where mig-parted would build something else from a ``--portable`` file than the GPU has."""
    out = []
    for gpu in layout:
        if not gpu.mig_enabled:
            continue
        actual = [(i.profile, (i.profile,) if i.compute is None else tuple(sorted(i.compute))) for i in gpu.instances]
        reading = mig_parted_reading(gpu, compute_counts(gpu))
        if reading is None:
            continue
        reading = [(p, tuple(sorted(c))) for p, c in reading]
        if sorted(reading) != sorted(actual):
            out.append(
                f"--portable cannot express GPU {gpu.index}'s layout ({_describe(actual)}): mig-parted would build "
                f"{_describe(reading)} from its counts"
            )
    return tuple(out)


def export(gpus: Sequence[Gpu], name: str = "current", *, portable: bool = False) -> ExportReport:
    """The layout of ``gpus`` and the mig-parted file (``report.config``) that reproduces it.

    ``migctl export -o yaml|json`` prints ``report.config``; ``--json`` prints the report.
    """
    read = _read(gpus)
    layout = [c for c, _ in read]
    return ExportReport(
        name=name,
        portable=portable,
        gpus=tuple(e for _, e in read),
        config=export_spec(layout, name, extensions=not portable),
        warnings=_portable_warnings(layout) if portable else (),
    )
