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
        table.add_column(col, overflow="fold")  # a narrow terminal wraps a number, never cuts it to "0.007…"
    for row in rows:
        table.add_row(*[str(x) for x in row])
    Console().print(table)


def _progress(enabled: bool | None = None):
    """Stage lines on stderr when it is a terminal, or always with ``enabled`` (``--progress``)."""
    import sys
    import time

    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    start = time.perf_counter()

    def say(message: str) -> None:
        typer.echo(f"[{time.perf_counter() - start:6.1f} s] {message}", err=True)

    return say


def _bar(*, disable: bool, get_time=None):
    """A rich progress bar on stderr for a study's points, with an ETA from the mean time per point.

    rich's own remaining-time column estimates the speed over its last 30 seconds and shows
    ``-:--:--`` when fewer than two updates fall in that window: always, when each point
    takes longer (``scaling``). This one shows the estimate from the first point on.
    """
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn
    from rich.text import Text

    from schedopt._progress import remaining

    class EtaColumn(ProgressColumn):
        def render(self, task) -> Text:
            left = None if task.finished else remaining(task.elapsed or 0.0, task.completed, task.total)
            if left is None:
                return Text("eta -:--:--" if not task.finished else "", style="progress.remaining")
            minutes, seconds = divmod(round(left), 60)
            hours, minutes = divmod(minutes, 60)
            return Text(f"eta {hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        EtaColumn(),
        console=Console(file=sys.stderr),
        transient=True,
        disable=disable,
        get_time=get_time,
    )


def _live(enabled: bool | None):
    """A context that prints solver and fit iterations on stderr (``--progress``).

    ``enabled=None``: only when stderr is a terminal (one line rewritten in place);
    ``True``: also into pipes and logs, one line per second at most. The line says the
    stage, the iteration, the objective (``log L_T`` of a solve, the least-squares cost of
    a fit) and the elapsed time.
    """
    import contextlib
    import sys

    tty = sys.stderr.isatty()
    if enabled is False or (enabled is None and not tty):
        return contextlib.nullcontext()
    from schedopt._progress import reporting

    last = [-1.0]
    printed = [False]

    def show(stage: str, iteration: int, objective: float, elapsed: float) -> None:
        printed[0] = True
        label = {"solve": "log L_T", "fit": "cost"}.get(stage, "objective")
        text = f"{stage}: iteration {iteration}, {label} {objective:.6g}, {elapsed:.1f} s"
        if tty:
            sys.stderr.write("\r" + text.ljust(72))
            sys.stderr.flush()
        elif elapsed - last[0] >= 1.0:
            last[0] = elapsed
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    @contextlib.contextmanager
    def scope():
        try:
            with reporting(show):
                yield
        finally:
            if tty and printed[0]:
                sys.stderr.write("\n")

    return scope()


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _stderr(value: float) -> str:
    return "" if not math.isfinite(value) else f" ± {value:.2g}"


def _gap(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3%}"
