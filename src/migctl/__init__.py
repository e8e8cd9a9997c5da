"""migctl: safe, repeatable NVIDIA Multi-Instance GPU (MIG) management.

Quick start (on the simulator; drop ``sim=`` on a real GPU server)::

    import migctl
    node = migctl.Node(sim="h20x8")
    node.mode(True, gpus="0")
    node.create("1g.12gb:2", gpus="0")              # or migctl.ProfileRequest("1g.12gb", 2)
    print(node.status(gpus="0"))

    migctl.use("1g.12gb")   # before CUDA starts: this process now sees one MIG device
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migctl.lazy import exports

if TYPE_CHECKING:
    from migctl.api import Node
    from migctl.core.layout import ProfileRequest
    from migctl.errors import (
        DriverError,
        InsufficientResourcesError,
        InUseError,
        LockTimeoutError,
        MigctlError,
        MismatchError,
        NotSupportedError,
        PermissionDeniedError,
        ResetRequiredError,
        UsageError,
    )
    from migctl.usage import MigDevice, devices, release, use

__version__ = "0.1.0"

# Every name is imported on first use: ``Node`` and ``use`` pull in the device layer, NVML and
# the operations, and ``migctl --version``/``--help`` (which import this package first) must
# stay instant.
_LAZY = {
    "Node": "migctl.api",
    "ProfileRequest": "migctl.core.layout",
    "MigDevice": "migctl.usage",
    "devices": "migctl.usage",
    "release": "migctl.usage",
    "use": "migctl.usage",
    **{
        name: "migctl.errors"
        for name in (
            "DriverError",
            "InUseError",
            "InsufficientResourcesError",
            "LockTimeoutError",
            "MigctlError",
            "MismatchError",
            "NotSupportedError",
            "PermissionDeniedError",
            "ResetRequiredError",
            "UsageError",
        )
    },
}


__getattr__ = exports(__name__, _LAZY)


__all__ = [
    "DriverError",
    "InUseError",
    "InsufficientResourcesError",
    "LockTimeoutError",
    "MigDevice",
    "MigctlError",
    "MismatchError",
    "Node",
    "NotSupportedError",
    "PermissionDeniedError",
    "ProfileRequest",
    "ResetRequiredError",
    "UsageError",
    "__version__",
    "devices",
    "release",
    "use",
]
