"""The log every example training loop writes: schedopt's pilot CSV and its JSON sidecar, both atomically.

The CSV has the header :data:`CSV_HEADER` and one row per ``t = 0..T``: the learning rate update
``t`` used (empty at ``t = T``), the minibatch loss of the parameters after ``t`` updates, and
the validation loss where one was measured (empty otherwise). ``schedopt fit`` reads it as it is.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "CSV_HEADER",
    "atomic_write",
    "check_log_path",
    "csv_text",
    "json_number",
    "schedule_description",
    "sidecar_path",
]

CSV_HEADER = ("step", "learning_rate", "train_loss", "val_loss")
"""Columns of the training log, in order."""


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory: whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_text(lrs: np.ndarray, train_losses: np.ndarray, val: Mapping[int, float]) -> str:
    """The CSV log of a run of ``lrs.size`` updates: ``train_losses`` has one more entry (after the last)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    horizon = lrs.size
    for t in range(horizon + 1):
        lr = lrs[t] if t < horizon else None
        writer.writerow([t, _fmt(lr), _fmt(train_losses[t]), _fmt(val.get(t))])
    return buf.getvalue()


def sidecar_path(log_path: str | os.PathLike) -> Path:
    """The JSON sidecar of a CSV log: the same path with the suffix ``.json``."""
    return Path(log_path).with_suffix(".json")


def check_log_path(log_path: str | os.PathLike | None) -> None:
    """A log's path may not end in ``.json``: its sidecar takes that name."""
    if log_path is not None and Path(log_path).suffix == ".json":
        raise ValueError(
            f"`log_path` must not end in .json (the sidecar takes that name), got {str(log_path)!r}"
        )


def json_number(value: float) -> float | None:
    """``value`` as JSON allows it: a float, or ``None`` for NaN and infinities."""
    return float(value) if math.isfinite(value) else None


def schedule_description(schedule) -> dict:
    """What a run's sidecar records of its schedule: its ``description`` attribute, else its name."""
    description = getattr(schedule, "description", None)
    if description is None:
        description = {"kind": "callable", "name": getattr(schedule, "__name__", repr(schedule))}
    return description
