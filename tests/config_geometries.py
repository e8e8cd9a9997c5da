"""Three 8-slot MIG GPUs as the config tests see them (H100, H20 and B200 profile IDs and
names), and a mixed node of them: geometry built by hand, not read from the simulator."""

from __future__ import annotations

from migctl.config import GpuFacts
from migctl.core.geometry import GiProfile, GpuGeometry, Placement


def _geometry(names: list[str], gib: list[int]) -> GpuGeometry:
    """An 8-slot MIG GPU: 1g x7, 1g(2 slots) x4, 2g x3, 3g x2, 4g x1, 7g x1 (H100 IDs)."""
    shapes = [  # id, slices, count, placement starts, placement size
        (19, 1, 7, range(7), 1),
        (15, 1, 4, (0, 2, 4, 6), 2),
        (14, 2, 3, (0, 2, 4), 2),
        (9, 3, 2, (0, 4), 4),
        (5, 4, 1, (0,), 4),
        (0, 7, 1, (0,), 8),
    ]
    return GpuGeometry(tuple(
        GiProfile(id=pid, name=name, slice_count=sl, instance_count=n, memory_mib=mem * 1024,
                  placements=tuple(Placement(s, size) for s in starts))
        for (pid, sl, n, starts, size), name, mem in zip(shapes, names, gib, strict=True)
    ))


H100 = _geometry(["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"], [10, 20, 20, 40, 40, 80])
H20 = _geometry(["1g.12gb", "1g.24gb", "2g.24gb", "3g.48gb", "4g.48gb", "7g.96gb"], [12, 24, 24, 48, 48, 96])
B200 = _geometry(["1g.23gb", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"],
                 [23, 45, 45, 90, 90, 180])
H100_ID, H20_ID, B200_ID, L40S_ID = 0x233010DE, 0x232910DE, 0x290110DE, 0x26B910DE

MIXED = [
    GpuFacts(0, H100_ID, H100, "NVIDIA H100 80GB HBM3"),
    GpuFacts(1, H20_ID, H20, "NVIDIA H20"),
    GpuFacts(2, B200_ID, B200, "NVIDIA B200"),
]
