"""``export``: the node's layout as a mig-parted v1 config that ``apply`` reproduces exactly.

The file is made by the config layer (:func:`migctl.config.export_spec`); ``portable`` leaves
out migctl's ``x-migctl`` keys so mig-parted can read it, and the report says what that loses
(a GPU instance with several compute instances has no mig-parted form).
"""

from __future__ import annotations

from collections.abc import Sequence

from migctl.config import CurrentGpu, CurrentInstance, export_spec
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
                CurrentGpu(gpu.index, gpu.pci_device_id, mode.current, tuple(current)),
                ExportedGpu(gpu.index, pci, mode.current, tuple(exported)),
            )
        )
    return out


def current_layout(gpus: Sequence[Gpu]) -> list[CurrentGpu]:
    """The MIG-capable GPUs' layouts as the config layer's export takes them."""
    return [c for c, _ in _read(gpus)]


def _portable_warnings(layout: Sequence[CurrentGpu], name: str) -> tuple[str, ...]:
    """What a ``--portable`` file cannot express: several compute instances in one GPU instance."""
    out = []
    for entry in export_spec(layout, name)["mig-configs"][name]:
        for pin in (entry.get("x-migctl") or {}).get("instances", []):
            if "compute" in pin:
                out.append(
                    f"--portable cannot express GPU {entry['devices'][0]}'s {pin['profile']} at slice "
                    f"{pin['placement']} with compute instances {', '.join(pin['compute'])}; "
                    f"the file asks for a {pin['profile']} with its default compute instance"
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
        warnings=_portable_warnings(layout, name) if portable else (),
    )
