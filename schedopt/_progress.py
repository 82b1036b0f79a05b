"""Live progress of long computations (solves, fits), reported to whoever asked for it.

Library code calls :func:`report` at each iteration; it costs nothing unless a caller
installed a callback with :func:`reporting` (the CLI's ``--progress``, on stderr). The
callback is held in a context variable, so threads and nested calls keep their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator

__all__ = ["Progress", "listening", "remaining", "report", "reporting"]

Progress = Callable[[str, int, float, float], None]
"""``(stage, iteration, objective, elapsed seconds)``."""

_CALLBACK: contextvars.ContextVar[tuple[Progress, float] | None] = contextvars.ContextVar(
    "schedopt_progress", default=None
)


@contextlib.contextmanager
def reporting(callback: Progress) -> Iterator[None]:
    """Within the block, :func:`report` calls ``callback`` (elapsed time from the block's start)."""
    token = _CALLBACK.set((callback, time.perf_counter()))
    try:
        yield
    finally:
        _CALLBACK.reset(token)


def listening() -> bool:
    """Whether a :func:`reporting` block is installed in this context (else :func:`report` does nothing)."""
    return _CALLBACK.get() is not None


def report(stage: str, iteration: int, objective: float) -> None:
    """One iteration of ``stage`` (``"solve"``, ``"fit"``) reached ``objective``."""
    installed = _CALLBACK.get()
    if installed is not None:
        callback, start = installed
        callback(stage, int(iteration), float(objective), time.perf_counter() - start)


def remaining(elapsed: float, done: float, total: float | None) -> float | None:
    """Seconds left of a run of ``total`` units that took ``elapsed`` for the first ``done``.

    The mean time per unit so far times the units left (a study's points take minutes each,
    so a window of recent rates, as progress bars keep, would hold one point or none).
    ``None`` before the first unit, or when the total is unknown.
    """
    if total is None or done <= 0 or elapsed < 0:
        return None
    return elapsed / done * max(total - done, 0.0)
