r"""Pilot runs: the loss curves of short real training runs, read and checked for fitting.

A pilot run is a CSV log with a header and one row per optimizer step::

    step,learning_rate,train_loss,val_loss
    0,0.003,5.61,5.58
    1,0.003,5.40,
    ...
    500,,2.31,2.29

(the format ``examples/tinygpt`` writes). The convention is the model's: row
``t`` holds the learning rate used by update ``t`` (``\eta_t``) and the losses
of the parameters *after* ``t`` updates (``L_t``); the final row ``t = T`` has
no learning rate (the column may also be called ``network_learning_rate``, as in
schedopt's own CSV files, or ``lr``). Losses may be blank on rows where they were not measured.
Steps must start at 0 and increase; when rows are missing, the learning rate
of a logged step is held until the next logged one (a warning says so).

A loss logged at every update (a noisy minibatch training loss) is fitted as logged; the checks of
``fit`` (a spike, twins, the top pilot's lead, final losses) read such a dense log as a curve
(:func:`smoothed_losses`, :func:`last_loss`).

Every problem raises one :class:`~schedopt.errors.FitError` naming the file and
what is wrong (missing column, NaN or non-positive loss, non-monotone steps,
too few loss points, negative learning rate).

Limits, checked before anything is allocated (``problems/README.md``, "Limits"): the
file is a regular file of at most :data:`~schedopt._validate.MAX_PILOT_BYTES` bytes
(a FIFO or device is refused by type), has at most
:data:`~schedopt._validate.MAX_PILOT_ROWS` rows, and every step is at most
:data:`~schedopt._validate.MAX_HORIZON` (the learning rate is held across gaps, so the
last step sets the size of the per-step array: 8 bytes a step).
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schedopt._csv import csv_records
from schedopt._validate import MAX_HORIZON, MAX_PILOT_BYTES, MAX_PILOT_ROWS, input_bytes
from schedopt.calibration.plan import evaluation_every
from schedopt.errors import FitError

__all__ = [
    "DENSE_LOG",
    "LOSS_COLUMNS",
    "MIN_POINTS",
    "PilotRun",
    "PilotWarning",
    "last_loss",
    "read_pilot",
    "read_pilots",
    "smoothed_losses",
]

LOSS_COLUMNS = ("val_loss", "train_loss", "loss")
"""Loss columns tried in this order when none is named."""
RATE_COLUMNS = ("learning_rate", "network_learning_rate", "lr")
"""The learning-rate column (the network's), by any one of these names: ``network_learning_rate``
is what schedopt's own CSV files call it (an export, a fitted design's ``schedule.csv``), ``lr``
what many training loops log."""

MIN_POINTS = 5
"""Fewest loss measurements a pilot must have."""


DENSE_LOG = 5
"""Loss values within one evaluation interval from which the checks read a pilot's log as a noisy curve
(:func:`smoothed_losses`, :func:`last_loss`): five times the cadence ``schedopt pilots`` asks for."""


class PilotWarning(UserWarning):
    """A pilot file was read with an assumption the user should know of (held rates, another loss column)."""


@dataclass(frozen=True, eq=False)
class PilotRun:
    """One pilot run: its learning rate at every step and its measured losses.

    Attributes:
        name: the file it came from.
        learning_rate: ``(T,)`` learning rate of updates ``0..T-1``.
        loss_steps: steps ``t`` (``0..T``) at which the loss was measured.
        losses: the measured losses (positive, finite).
        loss_column: which CSV column the losses came from.
    """

    name: str
    learning_rate: np.ndarray
    loss_steps: np.ndarray
    losses: np.ndarray
    loss_column: str

    def __post_init__(self) -> None:
        lr = np.array(self.learning_rate, dtype=np.float64)
        steps = np.array(self.loss_steps, dtype=np.int64)
        losses = np.array(self.losses, dtype=np.float64)
        if lr.ndim != 1 or lr.size == 0:
            raise FitError(f"{self.name}: learning_rate: needs at least one step")
        if not np.all(np.isfinite(lr)) or np.any(lr < 0):
            raise FitError(f"{self.name}: learning_rate: must be finite and >= 0")
        if steps.shape != losses.shape or steps.ndim != 1:
            raise FitError(f"{self.name}: loss_steps and losses must have the same length")
        if steps.size < MIN_POINTS:
            raise FitError(
                f"{self.name}: {self.loss_column}: too few loss points ({steps.size}); a pilot needs "
                f"at least {MIN_POINTS}"
            )
        if np.any(np.diff(steps) <= 0) or steps[0] < 0 or steps[-1] > lr.size:
            raise FitError(f"{self.name}: loss steps must increase within 0..{lr.size}")
        if not np.all(np.isfinite(losses)) or np.any(losses <= 0):
            raise FitError(f"{self.name}: {self.loss_column}: losses must be finite and positive")
        for name, arr in (("learning_rate", lr), ("loss_steps", steps), ("losses", losses)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def horizon(self) -> int:
        return int(self.learning_rate.size)

    @property
    def peak_learning_rate(self) -> float:
        return float(self.learning_rate.max())


def _cell(text: str, where: str, column: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FitError(f"{where}: {column}: not a number: {text!r}") from None
    if math.isnan(value):
        raise FitError(f"{where}: {column}: NaN (a diverged run? drop it from the pilots)")
    if math.isinf(value):
        raise FitError(f"{where}: {column}: infinite (a diverged run? drop it from the pilots)")
    return value


def _loss_column(header: list[str], name: str, loss_column: str | None) -> str:
    if loss_column is not None:
        if loss_column not in header:
            raise FitError(f"{name}: missing loss column {loss_column!r} (found {', '.join(header)})")
        return loss_column
    for column in LOSS_COLUMNS:
        if column in header:
            return column
    raise FitError(
        f"{name}: missing a loss column: one of {', '.join(LOSS_COLUMNS)} (found {', '.join(header)})"
    )


def read_pilot(path: str | os.PathLike, *, loss_column: str | None = None) -> PilotRun:
    """Read a pilot run's CSV log (:func:`read_pilots` of one file).

    Args:
        path: the CSV file.
        loss_column: the loss column to fit; default the first present of
            :data:`LOSS_COLUMNS` that has at least :data:`MIN_POINTS` values.

    Raises:
        FitError: the file cannot be read or is not a usable pilot run.
    """
    return read_pilots([path], loss_column=loss_column)[0]


def read_pilots(paths: Sequence[str | os.PathLike], *, loss_column: str | None = None) -> list[PilotRun]:
    """Read pilot runs' CSV logs, every one from the same loss column.

    Without ``loss_column``, the column is the first of :data:`LOSS_COLUMNS` that every file has with at
    least :data:`MIN_POINTS` values: a fit across pilots compares their losses, so a pilot that logged
    ``val_loss`` too rarely moves every pilot to ``train_loss`` (a warning names it), never itself alone.

    Raises:
        FitError: a file cannot be read or is not a usable pilot run, or no loss column has enough
            values in every file.
    """
    tables = [_read_table(path) for path in paths]
    if loss_column is not None:
        for name, header, _, _ in tables:
            _loss_column(header, name, loss_column)
        column = loss_column
    else:
        column = _common_loss_column(tables)
    return [_pilot(name, table, column, rate) for name, _, table, rate in tables]


def _common_loss_column(tables) -> str:
    """The first of :data:`LOSS_COLUMNS` that every table has with :data:`MIN_POINTS` values (warns when a
    column before it was skipped for one file's few values); one :class:`FitError` when there is none."""
    for name, header, _, _ in tables:
        _loss_column(header, name, None)  # every file has some loss column
    shared = [c for c in LOSS_COLUMNS if all(c in header for _, header, _, _ in tables)]

    def count(table, column):
        return sum(v is not None for v in table[column])

    def sparse(column):  # (name, count) of the first file with too few values in ``column``, or None
        return next(
            (
                (name, count(table, column))
                for name, _, table, _ in tables
                if count(table, column) < MIN_POINTS
            ),
            None,
        )

    for column in shared:
        if sparse(column) is None:
            skipped = shared[: shared.index(column)]
            if skipped:
                name, n = sparse(skipped[0])
                warnings.warn(
                    f"{name}: {skipped[0]} has {n} value(s), fewer than {MIN_POINTS}, so every pilot is fitted "
                    f"on {column} (log {skipped[0]} at least {MIN_POINTS} times in every pilot, or name the "
                    "column with --loss-column)",
                    PilotWarning,
                    stacklevel=3,
                )
            return column
    if not shared:
        columns = "; ".join(
            f"{name}: {', '.join(c for c in LOSS_COLUMNS if c in header)}" for name, header, _, _ in tables
        )
        raise FitError(f"the pilots share no loss column ({columns}): log the same loss in every pilot")
    column = shared[0]
    name, n = sparse(column)
    raise FitError(
        f"{name}: {column}: too few loss points ({n}); a pilot needs at least {MIN_POINTS}, and every pilot is "
        "fitted on the same loss column (no column has enough values in every pilot)"
    )


def _read_table(path: str | os.PathLike) -> tuple[str, list[str], dict[str, list], str]:
    """A pilot file's name, header, cells by column and learning-rate column (one :class:`FitError` if bad)."""
    try:
        name = os.fspath(path)
    except TypeError:
        raise FitError(f"a pilot file must be a path, got {path!r}") from None

    def fail(message: str) -> FitError:
        return FitError(f"{name}: {'no such pilot file' if message == 'no such file' else message}")

    data = input_bytes(name, limit=MAX_PILOT_BYTES, what="a pilot file", fail=fail)  # FIFOs, devices refused
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FitError(f"{name}: cannot read the pilot file: {exc}") from None
    lines = text.count("\n") + (not text.endswith("\n"))  # as splitlines() counts a \n-ended file
    if lines > MAX_PILOT_ROWS + 1:  # before any row is parsed
        raise FitError(
            f"{name}: {lines - 1} lines after the header; a pilot file may have at most {MAX_PILOT_ROWS} rows"
        )
    records = csv_records(text, fail, comments=True)  # numbered as in the file, comments left out
    if not records:
        raise FitError(f"{name}: empty file")
    header = [h.strip() for h in records[0][1]]
    if "step" not in header:
        raise FitError(f"{name}: missing column 'step' (found {', '.join(header)})")
    rates = [h for h in RATE_COLUMNS if h in header]  # the network's learning rate, by any of its names
    if not rates:
        raise FitError(
            f"{name}: missing column 'learning_rate' (or {' or '.join(repr(c) for c in RATE_COLUMNS[1:])}; "
            f"found {', '.join(header)})"
        )
    if len(rates) > 1:
        raise FitError(f"{name}: {' and '.join(rates)}: give one learning-rate column, not several")
    return name, header, _parse_rows(records[1:], header, name), rates[0]


def _parse_rows(records: list[tuple[int, list[str]]], header: list[str], name: str) -> dict[str, list]:
    """The cells by column (errors name the row's line in the file)."""
    table: dict[str, list] = {h: [] for h in header}
    numbers = [line for line, _ in records]
    for line, row in records:
        if len(row) != len(header):
            raise FitError(f"{name}: line {line}: expected {len(header)} fields, got {len(row)}")
        for h, cell in zip(header, row, strict=True):
            table[h].append(_cell(cell, f"{name}: line {line}", h))
    if not table["step"]:
        raise FitError(f"{name}: no rows after the header")
    steps = table["step"]
    if any(s is None for s in steps):
        raise FitError(f"{name}: line {numbers[steps.index(None)]}: step: missing")
    fraction = next((i for i, s in enumerate(steps) if s != int(s)), None)
    if fraction is not None:
        raise FitError(f"{name}: line {numbers[fraction]}: step: not a whole number: {steps[fraction]:g}")
    if steps[0] != 0:
        raise FitError(
            f"{name}: line {numbers[0]}: step: the first step is {steps[0]:g}, must be 0 (row t holds the "
            "learning rate of update t, counted from 0, and the loss after t updates: log the initial "
            "loss at step 0, or subtract 1 from a log that counts updates from 1)"
        )
    if any(s > MAX_HORIZON for s in steps):  # before the per-step array is sized by the last step
        bad = next(i for i in range(len(steps)) if steps[i] > MAX_HORIZON)
        raise FitError(
            f"{name}: line {numbers[bad]}: step: {steps[bad]:.17g} is beyond the largest pilot horizon "
            f"{MAX_HORIZON} (a per-step array of 8 bytes a step)"
        )
    if any(b <= a for a, b in itertools.pairwise(steps)):
        bad = next(i for i in range(1, len(steps)) if steps[i] <= steps[i - 1])
        raise FitError(
            f"{name}: line {numbers[bad]}: step: steps must increase (step {int(steps[bad])} after "
            f"{int(steps[bad - 1])})"
        )
    return table


def _pilot(name: str, table: dict[str, list], column: str, rate_column: str = "learning_rate") -> PilotRun:
    steps = np.asarray(table["step"], dtype=np.int64)
    rates = table[rate_column]
    logged = [(int(s), r) for s, r in zip(steps, rates, strict=True) if r is not None]
    if not logged:
        raise FitError(f"{name}: {rate_column}: no values")
    if any(r < 0 for _, r in logged):
        step = next(s for s, r in logged if r < 0)
        raise FitError(f"{name}: step {step}: {rate_column}: must be >= 0")
    horizon = int(steps[-1]) if rates[-1] is None else int(steps[-1]) + 1
    if logged[0][0] != 0:
        raise FitError(f"{name}: {rate_column}: missing at step 0")
    lr = np.empty(horizon)
    for (s, r), nxt in zip(logged, [*(s for s, _ in logged[1:]), horizon], strict=True):
        lr[s:nxt] = r
    held = horizon - len(logged)
    if held > 0:
        warnings.warn(
            f"{name}: the learning rate is logged at {len(logged)} of {horizon} steps; each value is "
            "held until the next logged one",
            PilotWarning,
            stacklevel=3,
        )
    values = table[column]
    points = [(int(s), v) for s, v in zip(steps, values, strict=True) if v is not None and s <= horizon]
    if any(v <= 0 for _, v in points):
        step = next(s for s, v in points if v <= 0)
        raise FitError(f"{name}: step {step}: {column}: must be positive")
    loss_steps = np.array([s for s, _ in points], dtype=np.int64)
    losses = np.array([v for _, v in points], dtype=np.float64)
    return PilotRun(name, lr, loss_steps, losses, column)


# --- reading a log as its checks do


def smoothed_losses(run: PilotRun) -> np.ndarray:
    """The pilot's losses as its checks read them. A pilot that logged at least :data:`DENSE_LOG` values
    within some evaluation interval (:func:`~schedopt.calibration.plan.evaluation_every`: a twentieth of the
    pilot) is read as a curve: each value is the median of those logged less than half an interval from it.
    A pilot logged at the cadence ``schedopt pilots`` asks for is read as logged.

    Why: a minibatch training loss logged at every update is noisy, and its single values made a long pilot
    "spike" (2.24 against a best of 1.49 on the real code task), which cut its anneal from the fit and
    doubled the design's plateau (``benchmarks/train_loss_pilots.py``).
    """
    half = evaluation_every(run.horizon) / 2
    steps = run.loss_steps
    lo = np.searchsorted(steps, steps - half, side="right")
    hi = np.searchsorted(steps, steps + half, side="left")
    widest = int(np.max(hi - lo))
    if widest < DENSE_LOG:
        return run.losses
    # a median at every value up to 64 to a window, interpolated between them beyond (a long log stays fast)
    at = np.unique(np.r_[np.arange(0, steps.size, max(1, widest // 64)), steps.size - 1])
    medians = np.array([np.median(run.losses[lo[i] : hi[i]]) for i in at])
    return medians if at.size == steps.size else np.interp(np.arange(steps.size), at, medians)


def last_loss(run: PilotRun) -> float:
    """The pilot's loss at its last logged step as the checks read it. With at least :data:`DENSE_LOG` values
    in its last evaluation interval, the value there of a straight line fitted to them (a median would lag the
    falling loss of an anneal; a single minibatch loss is noise); else the last value."""
    end = int(run.loss_steps[-1])
    last = run.loss_steps > end - evaluation_every(run.horizon)
    if np.count_nonzero(last) < DENSE_LOG:
        return float(run.losses[-1])
    _, at_end = np.polyfit(run.loss_steps[last] - end, run.losses[last], 1)
    return float(at_end)
