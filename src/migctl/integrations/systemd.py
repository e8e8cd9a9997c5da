"""The systemd unit that re-applies the recorded MIG layout at boot.

Modelled on mig-parted's ``nvidia-mig-manager.service`` (``deployments/systemd``): a oneshot
with ``DefaultDependencies=no`` that runs after the driver's helpers (persistenced, fabric
manager) and before anything that opens the GPUs, so those clients see the final MIG devices
and never hold a GPU that is being partitioned. Pure: it returns the unit's text.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

UNIT_NAME = "migctl-boot.service"
EXPORTER_UNIT = "migctl-exporter.service"
AFTER = ("nvidia-persistenced.service", "nvidia-fabricmanager.service")
#: GPU clients that must start after the layout is in place (and mig-parted's reset target).
BEFORE = (
    "nvidia-gpu-reset.target",
    "kubelet.service",
    "slurmd.service",
    "nvidia-dcgm.service",
    "dcgm-exporter.service",
    EXPORTER_UNIT,
)
WANTED_BY = "multi-user.target"
DEFAULT_TIMEOUT_S = 480


@dataclass(frozen=True)
class BootUnit:
    """What the unit runs and where its files live (the paths it must wait to be mounted)."""

    exec_start: tuple[str, ...]
    boot_dir: str
    state_dir: str
    timeout_s: int = DEFAULT_TIMEOUT_S
    environment: tuple[tuple[str, str], ...] = ()


def _quote(arg: str) -> str:
    """An ExecStart argument: systemd splits on spaces and honours double quotes and ``%``."""
    arg = arg.replace("%", "%%")
    if arg and all(c not in arg for c in ' \t"\'\\;$'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _env(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [f'Environment="{k}={v.replace("%", "%%")}"' for k, v in pairs]


def unit_text(unit: BootUnit) -> str:
    """The ``migctl-boot.service`` file."""
    if not unit.exec_start or not unit.exec_start[0].startswith("/"):
        raise ValueError(f"ExecStart needs an absolute program path, got {shlex.join(unit.exec_start)!r}")
    lines = [
        "# Written by migctl boot install; changes are lost at the next install or select.",
        "[Unit]",
        "Description=Re-apply the recorded MIG layout (migctl boot)",
        "DefaultDependencies=no",
        f"After={' '.join(AFTER)}",
        f"Before={' '.join(BEFORE)}",
        f"RequiresMountsFor={_quote(unit.boot_dir)} {_quote(unit.state_dir)}",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        f"TimeoutStartSec={unit.timeout_s}",
        *_env(unit.environment),
        f"ExecStart={' '.join(_quote(a) for a in unit.exec_start)}",
        "",
        "[Install]",
        f"WantedBy={WANTED_BY}",
        "",
    ]
    return "\n".join(lines)
