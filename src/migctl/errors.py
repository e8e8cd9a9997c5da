"""migctl's typed errors: one class per kind of failure, each with its documented exit code.

Every error says what went wrong and what to do next. Errors that come from the driver carry
the NVML error (``nvml_code``), so callers can branch on either.

=====  ==================  ====================================================================
exit   class               meaning
=====  ==================  ====================================================================
0                          success
1      MigctlError         any other failure (e.g. ``assert`` found a difference)
2      UsageError          bad input: unknown profile, bad ``-i``, bad config file...
3      NotSupportedError   the GPU or driver cannot do this (not MIG-capable, MIG disabled)
4      InsufficientResourcesError  the instances do not fit the free slices
5      InUseError          processes or instances are in the way
6      PermissionDeniedError  not root / no MIG capability access
7      ResetRequiredError  a MIG mode change is pending until a GPU reset
8      DriverError         no driver, or the driver failed
9      LockTimeoutError    another migctl holds the host lock
10     MismatchError       ``migctl assert``: the node differs from the layout
130    Interrupted         Ctrl-C or SIGTERM; what the command had created was undone
=====  ==================  ====================================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pynvml

    from migctl.records.errors import ErrorReport


class MigctlError(Exception):
    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None, nvml_code: int | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.nvml_code = nvml_code
        self.details = details

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def record(self) -> ErrorReport:
        """The typed error document (``--json`` prints it; schema ``error`` in ``docs/json.md``).

        ``details`` are fields of :class:`ErrorReport` (``rolled_back``, ``destroyed``, ...).
        """
        from migctl.records.errors import ErrorKind, ErrorReport  # the records load when an error is printed

        return ErrorReport(
            error=cast(ErrorKind, self.kind),  # each class's kind is one of ErrorKind (a test checks)
            message=self.message,
            exit_code=self.exit_code,
            hint=self.hint or None,
            nvml_error=None if self.nvml_code is None else nvml_error_name(self.nvml_code),
            **self.details,
        )

    def to_json(self) -> dict[str, Any]:
        """:meth:`record` as JSON-ready data."""
        from migctl.records import to_data

        data: dict[str, Any] = to_data(self.record())
        return data


class UsageError(MigctlError):
    exit_code = 2
    kind = "usage"


class NotSupportedError(MigctlError):
    exit_code = 3
    kind = "not_supported"


class InsufficientResourcesError(MigctlError):
    exit_code = 4
    kind = "insufficient_resources"


class InUseError(MigctlError):
    exit_code = 5
    kind = "in_use"


class PermissionDeniedError(MigctlError):
    exit_code = 6
    kind = "permission_denied"


class ResetRequiredError(MigctlError):
    exit_code = 7
    kind = "reset_required"


class DriverError(MigctlError):
    exit_code = 8
    kind = "driver"


class LockTimeoutError(MigctlError):
    exit_code = 9
    kind = "locked"


class MismatchError(MigctlError):
    exit_code = 10
    kind = "mismatch"


class Interrupted(MigctlError):
    """Ctrl-C or SIGTERM stopped a command; what it had changed was undone."""

    exit_code = 130
    kind = "interrupted"


EXIT_CODES: dict[str, int] = {
    cls.kind: cls.exit_code
    for cls in (
        MigctlError,
        UsageError,
        NotSupportedError,
        InsufficientResourcesError,
        InUseError,
        PermissionDeniedError,
        ResetRequiredError,
        DriverError,
        LockTimeoutError,
        MismatchError,
        Interrupted,
    )
}

#: NVML's return codes (``nvmlReturn_t`` in nvml.h). They are fixed C values, so migctl names
#: them without importing pynvml at start-up; a test checks each against pynvml's constant.
NVML_ERROR_CODES: dict[str, int] = {
    "NVML_ERROR_UNINITIALIZED": 1,
    "NVML_ERROR_INVALID_ARGUMENT": 2,
    "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_ERROR_NO_PERMISSION": 4,
    "NVML_ERROR_ALREADY_INITIALIZED": 5,
    "NVML_ERROR_NOT_FOUND": 6,
    "NVML_ERROR_INSUFFICIENT_SIZE": 7,
    "NVML_ERROR_INSUFFICIENT_POWER": 8,
    "NVML_ERROR_DRIVER_NOT_LOADED": 9,
    "NVML_ERROR_TIMEOUT": 10,
    "NVML_ERROR_IRQ_ISSUE": 11,
    "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
    "NVML_ERROR_FUNCTION_NOT_FOUND": 13,
    "NVML_ERROR_CORRUPTED_INFOROM": 14,
    "NVML_ERROR_GPU_IS_LOST": 15,
    "NVML_ERROR_RESET_REQUIRED": 16,
    "NVML_ERROR_OPERATING_SYSTEM": 17,
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": 18,
    "NVML_ERROR_IN_USE": 19,
    "NVML_ERROR_MEMORY": 20,
    "NVML_ERROR_NO_DATA": 21,
    "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED": 22,
    "NVML_ERROR_INSUFFICIENT_RESOURCES": 23,
    "NVML_ERROR_FREQ_NOT_SUPPORTED": 24,
    "NVML_ERROR_ARGUMENT_VERSION_MISMATCH": 25,
    "NVML_ERROR_DEPRECATED": 26,
    "NVML_ERROR_NOT_READY": 27,
    "NVML_ERROR_GPU_NOT_FOUND": 28,
    "NVML_ERROR_INVALID_STATE": 29,
    "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED": 30,
    "NVML_ERROR_UNKNOWN": 999,
}
_CODE = NVML_ERROR_CODES

# How the driver says it, as nvidia-smi prints (nvmlErrorString).
NVML_TEXT = {
    _CODE["NVML_ERROR_INVALID_ARGUMENT"]: "Invalid Argument",
    _CODE["NVML_ERROR_NOT_SUPPORTED"]: "Not Supported",
    _CODE["NVML_ERROR_NO_PERMISSION"]: "Insufficient Permissions",
    _CODE["NVML_ERROR_NOT_FOUND"]: "Not Found",
    _CODE["NVML_ERROR_IN_USE"]: "In use by another client",
    _CODE["NVML_ERROR_INSUFFICIENT_RESOURCES"]: "Insufficient Resources",
    _CODE["NVML_ERROR_RESET_REQUIRED"]: "GPU requires restart",
    _CODE["NVML_ERROR_UNKNOWN"]: "Unknown Error",
    _CODE["NVML_ERROR_TIMEOUT"]: "Timeout",
    _CODE["NVML_ERROR_GPU_IS_LOST"]: "GPU is lost",
    _CODE["NVML_ERROR_DRIVER_NOT_LOADED"]: "Driver Not Loaded",
    _CODE["NVML_ERROR_LIBRARY_NOT_FOUND"]: "NVML Shared Library Not Found",
}

_NAMES = {code: name for name, code in NVML_ERROR_CODES.items()}


def nvml_error_name(code: int) -> str:
    return _NAMES.get(code, f"NVML_ERROR_{code}")


PERMISSION_HINT = (
    "run as root, or grant MIG management to this user with read access to "
    "/proc/driver/nvidia/capabilities/mig/config (see NVIDIA's MIG user guide, 'Device Nodes and Capabilities')"
)


def from_nvml(exc: pynvml.NVMLError, action: str, *, hint: str | None = None, **details: Any) -> MigctlError:
    """Translate a driver error raised while doing ``action`` into migctl's typed error."""
    code = int(exc.value)
    text = NVML_TEXT.get(code) or str(exc)
    message = f"{action}: {text} ({nvml_error_name(code)})"
    cls: type[MigctlError] = {
        _CODE["NVML_ERROR_INVALID_ARGUMENT"]: UsageError,
        _CODE["NVML_ERROR_NOT_SUPPORTED"]: NotSupportedError,
        _CODE["NVML_ERROR_NO_PERMISSION"]: PermissionDeniedError,
        _CODE["NVML_ERROR_IN_USE"]: InUseError,
        _CODE["NVML_ERROR_INSUFFICIENT_RESOURCES"]: InsufficientResourcesError,
        _CODE["NVML_ERROR_RESET_REQUIRED"]: ResetRequiredError,
    }.get(code, DriverError)
    if cls is PermissionDeniedError and hint is None:
        hint = PERMISSION_HINT
    return cls(message, hint=hint, nvml_code=code, **details)
