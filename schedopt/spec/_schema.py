"""The spec schema: its version, the keys of each table, the limits, and how a bad value is quoted."""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any, TypeVar

from schedopt.errors import SpecError

SCHEMA_VERSION = 1
"""The spec schema this version of schedopt reads and writes."""

MAX_MODES = 1_000_000
"""Largest ``model.n_modes`` of a power-law spec (problems/README.md, "Limits": at 10^6 modes and
T = 200 a design took 100-255 s and 2.2-2.4 GB on two busy cores; 10^7 did not finish in 5 minutes)."""

MODEL_KINDS = ("powerlaw", "custom")
SPECTRUM_COLUMNS = ("eigenvalues", "initial_error")

_DEFAULT_RESOURCE = "data/default.toml"
_DEFAULT_LABEL = "schedopt/data/default.toml"
_STRING_LABEL = "<string>"

_TOP_KEYS = ("schema_version", "name", "model", "training", "controls", "network")
_NETWORK_KEYS = (
    "learning_rate_scale",
    "loss_scale",
    "loss_offset",
    "learning_rate_exponent",
    "learning_rate_reference",
    "pilot_warmup",
    "pilot_horizon",
    "bracketed_above",
    "top_pilot_ahead",
    "free_offset",
)
_FREE_OFFSET_KEYS = (
    "a",
    "b",
    "noise_std",
    "null_modes",
    "null_eigenvalue",
    "learning_rate_scale",
    "loss_scale",
    "loss_offset",
    "learning_rate_exponent",
)
_POWERLAW_KEYS = (
    "kind",
    "a",
    "b",
    "n_modes",
    "noise_std",
    "initial_loss",
    "finite_size",
    "null_modes",
    "null_eigenvalue",
)
_CUSTOM_KEYS = ("kind", "file", "eigenvalues", "initial_error", "noise_std", "residual")
_TRAINING_KEYS = ("horizon", "batch_size", "momentum", "sample_budget")
_CONTROL_KEYS = ("min", "max", "blocks", "grid", "parameterisation", "edges")

_REQUIRED = object()
_MAX_SHOWN = 60  # characters of a bad value quoted in a message
_T = TypeVar("_T")


# --- helpers


def _long_integer_key(text: str) -> str | None:
    """The key path holding the first integer too long for Python to convert (tomllib does not say)."""
    import re

    table = ""
    for line in text.splitlines():
        header = re.match(r"\s*\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$", line)
        if header:
            table = header.group(1)
        elif re.search(r"\d{4000}", line) and "=" in line:
            key = line.split("=", 1)[0].strip().strip('"')
            return f"{table}.{key}" if table else key
    return None


def _number(value: Any, fail: Callable[[str], SpecError]) -> int | float:
    """A finite int or float from TOML (no strings, booleans, arrays or tables)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise fail(f"must be a number, got {_show(value)} ({_kind(value)})")
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise fail(f"must be a finite number, got {_show(value)} (too large)") from None
        return value
    if not math.isfinite(value):
        raise fail(f"must be a finite number, got {_show(value)}")
    return float(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"  # dates and times


def _show(value: Any) -> str:
    """The value as the user wrote it, roughly, cut to a readable length."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    else:
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
