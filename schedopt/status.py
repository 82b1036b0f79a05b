"""How a solve, a baseline tuning or a fit ended: one enumeration, each member with its message.

A :class:`Status` is a string (``Status.CONVERGED == "converged"``), so JSON output, schedule
provenance and comparisons with the plain names read exactly as before; ``.message`` says
what the status means (in the manner of optimistix's ``RESULTS``).
"""

from __future__ import annotations

import enum

__all__ = ["STATUSES", "Status"]


class Status(enum.StrEnum):
    """The end of an iterative computation."""

    CONVERGED = "converged"
    MAX_ITERATIONS = "max_iterations"
    FAILED = "failed"
    DIVERGED = "diverged"

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @property
    def converged(self) -> bool:
        return self is Status.CONVERGED

    def __repr__(self) -> str:  # as the plain string was: messages quote it as 'converged'
        return repr(self.value)


_MESSAGES = {
    Status.CONVERGED: "the optimality test passed",
    Status.MAX_ITERATIONS: "stopped at the iteration limit",
    Status.FAILED: "the method gave up (line search, restoration, ...)",
    Status.DIVERGED: "the loss blows up at the best iterate",
}

#: The status names, in order.
STATUSES = tuple(s.value for s in Status)
