"""The arrays of a custom spectrum from a file: CSV (``eigenvalues,initial_error``) or ``.npz``."""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable, Mapping

import numpy as np

from schedopt._csv import csv_records
from schedopt.errors import SpecError
from schedopt.spec._schema import SPECTRUM_COLUMNS

# --- custom spectrum files


def _read_csv(raw: bytes, fail: Callable[[str], SpecError]) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise fail(f"not valid UTF-8 (offset {err.start})") from None
    rows = [
        (lineno, [cell.strip() for cell in row]) for lineno, row in csv_records(text, fail, comments=True)
    ]
    if not rows:
        raise fail("the file is empty; expected the header `eigenvalues,initial_error`")
    lineno, header = rows[0]
    if sorted(header) != sorted(SPECTRUM_COLUMNS):
        raise fail(f"line {lineno}: the header must be `eigenvalues,initial_error`, got {','.join(header)!r}")
    order = [header.index(col) for col in SPECTRUM_COLUMNS]
    if len(rows) == 1:
        raise fail("no data rows after the header")
    columns: list[list[float]] = [[], []]
    for lineno, row in rows[1:]:
        if len(row) != len(header):
            raise fail(f"line {lineno}: expected {len(header)} values, got {len(row)} ({','.join(row)!r})")
        for j, col in enumerate(SPECTRUM_COLUMNS):
            cell = row[order[j]]
            try:
                x = float(cell)
            except ValueError:
                raise fail(f"line {lineno}: `{col}` must be a number, got {cell!r}") from None
            if not math.isfinite(x):
                raise fail(f"line {lineno}: `{col}` must be a finite number, got {cell!r}")
            columns[j].append(x)
    return np.array(columns[0], dtype=np.float64), np.array(columns[1], dtype=np.float64)


def _read_npz(raw: bytes, fail: Callable[[str], SpecError]) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            if not isinstance(npz, Mapping):
                raise fail("not an .npz archive")
            names = sorted(npz.files)
            if names != sorted(SPECTRUM_COLUMNS):
                raise fail(f"must hold exactly the arrays `eigenvalues` and `initial_error`, got {names!r}")
            arrays = [npz[col] for col in SPECTRUM_COLUMNS]
    except SpecError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise fail(f"cannot read the .npz archive: {str(err)[:200]}") from None
    out = []
    for col, arr in zip(SPECTRUM_COLUMNS, arrays, strict=True):
        if arr.ndim != 1 or arr.dtype.kind not in "iuf":
            raise fail(
                f"`{col}` must be a 1-d array of real numbers, got dtype {arr.dtype} shape {arr.shape}"
            )
        arr = arr.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise fail(f"`{col}` must be finite, got {arr[bad[0]]!r} at index {int(bad[0])}")
        out.append(arr)
    return out[0], out[1]
