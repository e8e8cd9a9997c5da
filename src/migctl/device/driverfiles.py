"""The driver's files outside NVML: MIG capability minors and device paths (for Slurm and friends).

``/proc/driver/nvidia-caps/mig-minors`` maps each MIG capability to the minor number of its
``/dev/nvidia-caps/nvidia-cap<n>`` device::

    config 1
    monitor 2
    gpu0/gi0/access 3
    gpu0/gi0/ci0/access 4
    ...

``gpu<m>`` is the GPU's minor number (``/dev/nvidia<m>``, ``nvmlDeviceGetMinorNumber``), not
its NVML index. The file is read under the platform's driver root (``/`` on a GPU server, the
simulated driver's own root on a simulated node); migctl never computes these numbers itself.

>>> minors = node.mig_minors()                 # doctest: +SKIP
>>> minors.gi(0, 13), minors.ci(0, 13, 0)      # doctest: +SKIP
(120, 121)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from migctl.errors import DriverError

MIG_MINORS = "proc/driver/nvidia-caps/mig-minors"
MAX_BYTES = 4 * 1024 * 1024
_NAME = re.compile(r"gpu([0-9]+)/gi([0-9]+)/(?:ci([0-9]+)/)?access")
_MINOR = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class MigMinors:
    """The driver's MIG capability minors (``/proc/driver/nvidia-caps/mig-minors``)."""

    config: int | None
    monitor: int | None
    gpu_instances: Mapping[tuple[int, int], int] = field(default_factory=dict)
    compute_instances: Mapping[tuple[int, int, int], int] = field(default_factory=dict)

    def gi(self, gpu_minor: int, gi_id: int) -> int | None:
        """The minor of ``gpu<m>/gi<g>/access`` (``None`` if the driver lists none)."""
        return self.gpu_instances.get((gpu_minor, gi_id))

    def ci(self, gpu_minor: int, gi_id: int, ci_id: int) -> int | None:
        """The minor of ``gpu<m>/gi<g>/ci<c>/access``."""
        return self.compute_instances.get((gpu_minor, gi_id, ci_id))


def parse_mig_minors(text: str, where: str = MIG_MINORS) -> MigMinors:
    """Parse the text of a mig-minors table (pure; :func:`read_mig_minors` reads the driver's).

    Each line is ``NAME MINOR``: ``config``, ``monitor``, ``gpu<m>/gi<g>/access`` and
    ``gpu<m>/gi<g>/ci<c>/access`` are kept; other names (capabilities a later driver may add)
    are skipped. A line that is not a name and a number is a :class:`DriverError` naming
    ``where`` and the line number.
    """
    config = monitor = None
    gis: dict[tuple[int, int], int] = {}
    cis: dict[tuple[int, int, int], int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2 or _MINOR.fullmatch(parts[1]) is None:
            raise DriverError(
                f"{where}:{number}: unexpected line {raw.strip()[:80]!r}: expected 'NAME MINOR' "
                "such as 'gpu0/gi1/access 12'",
                hint="is it the NVIDIA driver's /proc/driver/nvidia-caps/mig-minors?",
            )
        name, minor = parts[0], int(parts[1])
        if name == "config":
            config = minor
        elif name == "monitor":
            monitor = minor
        elif (m := _NAME.fullmatch(name)) is not None:
            gpu, gi, ci = m.groups()
            if ci is None:
                gis[(int(gpu), int(gi))] = minor
            else:
                cis[(int(gpu), int(gi), int(ci))] = minor
    return MigMinors(config, monitor, gis, cis)


def read_mig_minors(driver_root: Path) -> MigMinors:
    """Read and parse the driver's ``mig-minors`` under ``driver_root``."""
    return read_mig_minors_file(driver_root / MIG_MINORS)


def read_mig_minors_file(path: Path) -> MigMinors:
    """Read and parse a mig-minors table at ``path`` (the driver's, or a copy of another node's).

    A missing, unreadable, oversized or malformed file is a :class:`DriverError` naming it.
    """
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise DriverError(
            f"{path} does not exist",
            hint="the NVIDIA driver (R450 or later) lists its MIG capabilities there: load it with nvidia-caps support",
        ) from None
    except OSError as exc:
        raise DriverError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise DriverError(f"{path} is larger than {MAX_BYTES} bytes: not the driver's mig-minors")
    return parse_mig_minors(data.decode("utf-8", errors="replace"), str(path))


def driver_path(driver_root: Path, path: str) -> Path:
    """Where the driver's ``path`` (``/dev/nvidia0``) is on this node (under its driver root)."""
    return driver_root / path.lstrip("/")
