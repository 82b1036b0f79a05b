"""CSV text → numbered records: the one CSV reader of schedopt's input files.

Callers (a custom spectrum, a schedule file) check the header and the cells and word their own
errors; this module owns the parsing: records numbered from 1, a malformed text reported as
``invalid CSV: ...`` through the caller's error, and (for files that allow them) blank records
and ``#`` comment lines left out. Its callers: custom spectra, schedule files and pilot logs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable


def csv_records(
    text: str, fail: Callable[[str], Exception], *, comments: bool = False
) -> list[tuple[int, list[str]]]:
    """The records of ``text`` as ``(number, cells)``, numbered from 1.

    Args:
        text: the decoded file (any line endings).
        fail: makes the caller's error from a message; raised on malformed CSV.
        comments: leave out empty and blank records and those whose first cell starts with ``#``.
    """
    out: list[tuple[int, list[str]]] = []
    try:
        for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if comments and (not row or not "".join(row).strip() or row[0].lstrip().startswith("#")):
                continue
            out.append((number, row))
    except csv.Error as err:
        raise fail(f"invalid CSV: {err}") from None
    return out
