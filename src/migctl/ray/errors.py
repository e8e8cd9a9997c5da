"""Errors of the Ray front end (they cross process boundaries: keep them plain and picklable)."""

from __future__ import annotations

from migctl.errors import InUseError, MigctlError, NotSupportedError, UsageError

# Each keeps the kind of its exit code (records.errors.ErrorKind: one kind per exit code); the
# class and the message say what happened.


class MigUnavailableError(InUseError):
    """No MIG device for the request became available in time; the message says what was missing."""


class MigRequestError(UsageError):
    """The request can never be met as written (unknown profile, bad option)."""


class MigWorkerDiedError(MigctlError):
    """The process running a MIG task died (killed, crashed, its node lost); its lease was released."""


class RayNotAvailableError(NotSupportedError):
    """Ray is not installed, or no Ray cluster could be reached (exit 3, ``not_supported``)."""


class DeviceBusyError(Exception):
    """An executor found its device's lease held by someone else (the scheduler tries another)."""


__all__ = ["DeviceBusyError", "MigRequestError", "MigUnavailableError", "MigWorkerDiedError", "RayNotAvailableError"]
