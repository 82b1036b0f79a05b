"""Exceptions raised by schedopt.

Every error a user can cause by input (a spec, an option, a file) is a
:class:`SchedoptError`; the CLI turns it into one line and exit code 2 (1 for
solver failures). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "DivergenceError",
    "ExportError",
    "FitError",
    "ProblemError",
    "SchedoptError",
    "SolverError",
    "SpecError",
]


class SchedoptError(Exception):
    """Base class of every error caused by user input or by a failed solve."""

    exit_code: int = 2


class SpecError(SchedoptError):
    """A problem spec (TOML) or a file it points to is invalid.

    The message names the file, the key path and the bad value.
    """

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None):
        self.path = path
        self.key = key
        where = ": ".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class ProblemError(SchedoptError):
    """A problem, schedule or option is invalid (bad bounds, bad grid, ...).

    ``field`` names the offending parameter, so that a spec loader can map it
    back to a key path in the file.
    """

    def __init__(self, message: str, *, field: str | None = None):
        self.field = field
        super().__init__(message)


class SolverError(SchedoptError):
    """A solve failed (did not converge, or the solver is unusable)."""

    exit_code = 1


class DivergenceError(SolverError):
    """A solve or a tuning ended in divergence: the loss blows up (status ``diverged``).

    Raised instead of a plain :class:`SolverError` by ``solve(..., throw=True)`` when the
    solution's status is ``diverged``, and by the baseline tuning when every schedule of its
    grid diverges. A :class:`SolverError`, so every ``except SolverError`` still catches it.
    """


class ExportError(SchedoptError):
    """A schedule could not be written or read."""


class FitError(SchedoptError):
    """Pilot runs cannot be read or do not identify the model (names the file and what is wrong)."""
