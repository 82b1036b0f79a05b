"""The files of a design: :func:`write_design` writes them as one output set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from schedopt._io import atomic_write_text, json_text, output_set
from schedopt.design._figure import FIGURES, plot_design, svg_design
from schedopt.design._record import Design
from schedopt.errors import ProblemError, SolverError
from schedopt.schedule import save_schedule

__all__ = ["DESIGN_FILES", "check_figure", "write_design"]

DESIGN_FILES = ("schedule.json", "schedule.csv", "design.svg", "design.png", "design.json")
"""The files :func:`write_design` may write (one figure at most: ``design.svg`` or ``design.png``)."""


def check_figure(figure: str) -> str:
    """``figure`` if it is one of :data:`FIGURES` (``svg``, ``png``, ``none``), else a one-line error."""
    if figure not in FIGURES:
        raise ProblemError(
            f"`--figure` must be one of {', '.join(FIGURES)}, got {figure!r}", field="--figure"
        )
    return figure


def write_design(
    result: Design,
    out_dir: str | Path,
    *,
    force: bool = False,
    figure: str = "svg",
    overwrite: bool = True,
) -> Design:
    """Write ``schedule.json``, ``schedule.csv``, ``design.json`` and the figure to ``out_dir``.

    ``figure``: ``"svg"`` writes ``design.svg`` (no matplotlib), ``"png"`` the matplotlib
    ``design.png`` (the ``plots`` extra), ``"none"`` no figure. A figure of an older design (in
    the other format, or any with ``"none"``) is removed with the commit, so it never survives
    next to this design's files.

    A solve that did not converge is written only with ``force=True``; the files then
    say ``"converged": false``. The files are one transaction
    (:func:`schedopt._io.output_set`): all are written to a staging folder, then
    committed together, so an error, an interrupt or a concurrent run leaves the
    complete old set or the complete new one. ``overwrite=False`` refuses to replace
    an existing file of the set (``schedopt design`` without ``--force``).
    """
    sol = result.solution
    if not sol.converged and not force:
        raise SolverError(
            f"solver {sol.solver!r} stopped with status {sol.status!r}: {sol.message}; "
            "nothing written (use --force to write the unconverged schedule)"
        )
    drawing = FIGURES[check_figure(figure)]
    out = Path(out_dir)
    names = {"schedule_json": "schedule.json", "schedule_csv": "schedule.csv"}
    if drawing is not None:
        names["plot"] = drawing
    names["report"] = "design.json"
    files = {kind: str(out / name) for kind, name in names.items()}
    written = dataclasses.replace(result, files=files)
    # a figure of an older design must not survive next to this one
    stale = [name for name in FIGURES.values() if name is not None and name != drawing]
    with output_set(out, names.values(), overwrite=overwrite, stale=stale) as stage:
        schedule = result.schedule()
        save_schedule(schedule, stage / names["schedule_json"])
        save_schedule(schedule, stage / names["schedule_csv"])
        if drawing is not None:
            draw = svg_design if figure == "svg" else plot_design
            draw(result, str(stage / names["plot"]))
        atomic_write_text(stage / names["report"], json_text(written.to_dict()))
    return written
