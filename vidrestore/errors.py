"""Errors a user can cause, each with a documented exit code.

The CLI prints `str(error)` as one line on stderr and exits with `exit_code`;
anything else is a bug (exit 1) and shows a traceback only with --debug.
Ctrl-C exits with 130.
"""


class VidrestoreError(Exception):
    """Base class: a problem with the user's input or environment."""

    exit_code = 1


class UsageError(VidrestoreError):
    """An unsupported option value, malformed preset or --set override (click's own usage errors are 2 too)."""

    exit_code = 2


class InputError(VidrestoreError):
    """A missing, unreadable or inconsistent input (video, frames, mask, kernel)."""

    exit_code = 3


class OutputError(VidrestoreError):
    """The output exists (without --overwrite), cannot be written, or the disk is full."""

    exit_code = 4


class ModelError(VidrestoreError):
    """A model that cannot be found or loaded."""

    exit_code = 5


class DeviceError(VidrestoreError):
    """A requested device that is not available."""

    exit_code = 6


class BatchError(VidrestoreError):
    """Some files of a batch failed (each was reported; the others were restored)."""

    exit_code = 7


class WorkerError(VidrestoreError):
    """A window could not be solved after every retry: its workers (processes, Ray actors) kept dying."""

    exit_code = 8
