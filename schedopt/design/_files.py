"""The files of a design: :func:`write_design` writes them as one output set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from schedopt._io import atomic_write_text, json_text, output_set
from schedopt.design._figure import plot_design
from schedopt.design._record import Design
from schedopt.errors import SolverError
from schedopt.schedule import save_schedule

__all__ = ["DESIGN_FILES", "write_design"]

DESIGN_FILES = ("schedule.json", "schedule.csv", "design.png", "design.json")
"""The files :func:`write_design` writes (``design.png`` only with ``plot=True``)."""


def write_design(
    result: Design, out_dir: str | Path, *, force: bool = False, plot: bool = True, overwrite: bool = True
) -> Design:
    """Write ``schedule.json``, ``schedule.csv``, ``design.json`` and ``design.png`` to ``out_dir``.

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
    out = Path(out_dir)
    names = {"schedule_json": "schedule.json", "schedule_csv": "schedule.csv"}
    if plot:
        names["plot"] = "design.png"
    names["report"] = "design.json"
    files = {kind: str(out / name) for kind, name in names.items()}
    written = dataclasses.replace(result, files=files)
    stale = () if plot else ("design.png",)  # a plot of an older design must not survive next to this one
    with output_set(out, names.values(), overwrite=overwrite, stale=stale) as stage:
        schedule = result.schedule()
        save_schedule(schedule, stage / names["schedule_json"])
        save_schedule(schedule, stage / names["schedule_csv"])
        if plot:
            plot_design(result, str(stage / names["plot"]))
        atomic_write_text(stage / names["report"], json_text(written.to_dict()))
    return written
