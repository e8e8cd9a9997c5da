"""Errors of the Ray front end (they cross process boundaries: keep them plain and picklable)."""

from __future__ import annotations

from migctl.errors import InUseError, MigctlError, UsageError


class MigUnavailableError(InUseError):
    """No MIG device for the request became available in time; the message says what was missing."""

    kind = "mig_unavailable"


class MigRequestError(UsageError):
    """The request can never be met as written (unknown profile, bad option)."""

    kind = "mig_request"


class MigWorkerDiedError(MigctlError):
    """The process running a MIG task died (killed, crashed, its node lost); its lease was released."""

    kind = "mig_worker_died"


class RayNotAvailableError(MigctlError):
    """Ray is not installed, or no Ray cluster could be reached."""

    exit_code = 3
    kind = "ray_unavailable"


class DeviceBusyError(Exception):
    """An executor found its device's lease held by someone else (the scheduler tries another)."""


__all__ = ["DeviceBusyError", "MigRequestError", "MigUnavailableError", "MigWorkerDiedError", "RayNotAvailableError"]
