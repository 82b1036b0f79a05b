"""Validation helpers shared by the immutable records.

Each raises :class:`~schedopt.errors.ProblemError` whose message names the
parameter and the bad value, e.g. "`horizon` must be a positive integer, got -3".
No helper coerces silently: a float where an integer is required is an error.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from schedopt.errors import ProblemError


def _fail(name: str, what: str, value: object) -> ProblemError:
    return ProblemError(f"`{name}` must be {what}, got {value!r}", field=name)


def real(name: str, value: object) -> float:
    """A finite real number (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _fail(name, "a finite number", value)
    v = float(value)
    if not math.isfinite(v):
        raise _fail(name, "a finite number", value)
    return v


def positive(name: str, value: object) -> float:
    v = real(name, value)
    if v <= 0:
        raise _fail(name, "a positive number", value)
    return v


def nonnegative(name: str, value: object) -> float:
    v = real(name, value)
    if v < 0:
        raise _fail(name, "a non-negative number", value)
    return v


def greater_than(name: str, value: object, bound: float) -> float:
    v = real(name, value)
    if v <= bound:
        raise _fail(name, f"a number greater than {bound:g}", value)
    return v


def positive_int(name: str, value: object) -> int:
    """A positive integer; integral floats such as ``1e4`` are accepted, ``2.5`` is not."""
    if isinstance(value, bool):
        raise _fail(name, "a positive integer", value)
    if isinstance(value, Integral):
        v = int(value)
    elif isinstance(value, Real) and math.isfinite(float(value)) and float(value).is_integer():
        v = int(value)
    else:
        raise _fail(name, "a positive integer", value)
    if v < 1:
        raise _fail(name, "a positive integer", value)
    return v


def nonnegative_int(name: str, value: object) -> int:
    """A non-negative integer (as :func:`positive_int`, zero allowed)."""
    if not isinstance(value, bool) and isinstance(value, Real) and float(value) == 0:
        return 0
    try:
        return positive_int(name, value)
    except ProblemError:
        raise _fail(name, "a non-negative integer", value) from None


def one_of(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def frozen_array(name: str, value: object, *, positive: bool = False) -> np.ndarray:
    """A finite float64 1-d array, made read-only."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(name, "an array of numbers", value) from None
    if arr.ndim != 1 or arr.size == 0:
        raise _fail(name, "a non-empty 1-d array", f"shape {arr.shape}")
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else (arr < 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "positive" if positive else "non-negative"
        raise ProblemError(
            f"`{name}` must hold finite {what} numbers, got {float(arr[i])!r} at index {i}",
            field=name,
        )
    arr.setflags(write=False)
    return arr


MAX_NAME_LENGTH = 100  # characters of a name that becomes a folder or file name


def file_name(name: str, value: object) -> str:
    """A plain file name: it names a folder under the output folder, so it may not leave it.

    Refused: non-strings, empty or blank names, ``.`` and ``..``, path separators (``/``
    and ``\\``), control characters (including newline and NUL), a leading ``-`` or
    ``~``, and names longer than ``MAX_NAME_LENGTH``.
    """
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, "a non-empty string", value)
    what = "a plain file name (no path separators, '..', or control characters)"
    if (
        value in (".", "..")
        or value != value.strip()
        or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 or 0x80 <= ord(c) < 0xA0 for c in value)
        or value[0] in "-~"
        or len(value) > MAX_NAME_LENGTH
    ):
        raise _fail(name, what, value)
    return value


# --- bounds on the work a small input can ask for (problems/README.md, "Limits")

MAX_HORIZON = 10_000_000
"""Largest horizon ``T`` (steps): one per-step float64 array is 80 MB at this size."""

MAX_SPEC_BYTES = 1 << 20
"""Largest spec (TOML) file: 1 MiB."""

MAX_DATA_BYTES = 256 << 20
"""Largest schedule file or custom-spectrum file: 256 MiB."""

MAX_PILOT_BYTES = 4 << 20
"""Largest pilot CSV (``schedopt fit``): 4 MiB, ~140 000 rows of a typical log."""

MAX_PILOT_ROWS = 200_000
"""Most rows (lines after the header) a pilot CSV may have; each parsed row holds a few Python floats (~0.3 KB)."""


def horizon(name: str, value: object) -> int:
    """A positive integer horizon of at most :data:`MAX_HORIZON` steps."""
    h = positive_int(name, value)
    if h > MAX_HORIZON:
        raise ProblemError(
            f"`{name}` must be at most {MAX_HORIZON} steps (a per-step array of 8 bytes a step), got {value!r}",
            field=name,
        )
    return h


def input_bytes(path: object, *, limit: int, what: str, fail) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; ``fail(message)`` builds the error.

    A FIFO, device, socket or folder is refused by its type before it is opened for
    reading (reading ``/dev/zero`` never ends; a FIFO without a writer blocks), and
    the file is opened non-blocking and checked again (it may have been swapped).
    """
    import os
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise fail("no such file") from None
    except (OSError, ValueError) as err:
        raise fail(f"cannot read the file: {getattr(err, 'strerror', None) or err}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO, device or socket"
        raise fail(f"{what} must be a regular file, got {kind}")
    if info.st_size > limit:
        raise fail(f"{what} is {info.st_size} bytes; the limit is {limit} bytes")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise fail(f"cannot read the file: {err.strerror or err}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise fail(f"{what} must be a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise fail(f"{what} is more than {limit} bytes")
    return data
