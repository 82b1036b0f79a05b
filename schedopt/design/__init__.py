"""Design a schedule end to end: solve, tune the baselines on the same engine, report, write files.

This is what ``schedopt design`` runs; the CLI only parses options and prints.

- ``_prefix.py``: :class:`Warmup`, a fixed prefix of a design (a warmup ramp, a pinned plateau),
  and the problem of the steps after it (:func:`problem_after_warmup`, :func:`problem_after_prefix`).
- ``_record.py``: :class:`Design`, the result: its notes and its stable ``--json`` object.
- ``_run.py``: :func:`design`, the driver: solve in the form asked for (``FORMS``), tune the baselines.
- ``_files.py``: :func:`write_design`, the design's files (``DESIGN_FILES``) as one output set.
- ``_figure.py``: the figure, ``design.svg`` (SVG text, :mod:`schedopt.svg`) or ``design.png`` (matplotlib).
"""

from __future__ import annotations

from schedopt.design._files import DESIGN_FILES, check_figure, write_design
from schedopt.design._prefix import Warmup, problem_after_prefix, problem_after_warmup
from schedopt.design._record import RANKING_NOTE_RTOL, Design
from schedopt.design._run import FORMS, design

__all__ = [
    "DESIGN_FILES",
    "FORMS",
    "RANKING_NOTE_RTOL",
    "Design",
    "Warmup",
    "check_figure",
    "design",
    "problem_after_prefix",
    "problem_after_warmup",
    "write_design",
]
