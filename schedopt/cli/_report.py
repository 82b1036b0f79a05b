"""How commands report: a rich table or one strict JSON object on stdout; progress on stderr."""

from __future__ import annotations

import math
from typing import Any

import typer


def _emit_json(obj: Any) -> None:
    from schedopt._io import json_text

    typer.echo(json_text(obj), nl=False)  # strict JSON: nan/inf as null (README, "JSON output")


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(x) for x in row])
    Console().print(table)


def _progress():
    """Progress lines on stderr when it is a terminal (never in pipes, logs or --json output)."""
    import sys
    import time

    if not sys.stderr.isatty():
        return None
    start = time.perf_counter()

    def say(message: str) -> None:
        typer.echo(f"[{time.perf_counter() - start:6.1f} s] {message}", err=True)

    return say


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _stderr(value: float) -> str:
    return "" if not math.isfinite(value) else f" ± {value:.2g}"


def _gap(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3%}"
