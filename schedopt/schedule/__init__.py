"""Designed schedules: the record, its files and its short text forms.

- :class:`Schedule` (``_record.py``): step-indexed learning rate, batch size and momentum with
  provenance; :func:`schedule_from_solution` builds one from a solve.
- ``_files.py``: :func:`save_schedule` / :func:`load_schedule` (versioned JSON or CSV; the
  provenance hashes are checked on load, :func:`trusting` turns that off).
- ``_warmup.py``: :func:`with_warmup` (a ramp of ``W`` steps inside the horizon) and the ramps.
- ``_text.py``: :func:`parse_schedule_text` reads ``NAME:ARGS`` or ``file:PATH`` (the CLI's
  ``--schedule``).
"""

from __future__ import annotations

from schedopt.schedule._files import load_schedule, save_schedule, trusting, verification
from schedopt.schedule._record import (
    SCHEDULE_SCHEMA_VERSION,
    STEP_UNITS,
    Schedule,
    schedule_from_solution,
    values_sha256,
)
from schedopt.schedule._text import parse_schedule_text
from schedopt.schedule._warmup import WARMUP_SHAPES, warmup_values, with_warmup

__all__ = [
    "SCHEDULE_SCHEMA_VERSION",
    "STEP_UNITS",
    "WARMUP_SHAPES",
    "Schedule",
    "load_schedule",
    "parse_schedule_text",
    "save_schedule",
    "schedule_from_solution",
    "trusting",
    "values_sha256",
    "verification",
    "warmup_values",
    "with_warmup",
]
