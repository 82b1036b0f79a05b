"""schedopt: optimal learning-rate, batch-size and momentum schedules by optimal control.

The public API; everything else is internal. See README.md for a tour.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("schedopt")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from schedopt import _jax  # noqa: F401  (float64 on)
from schedopt.controls import ControlGrid, block_edges, grid_for
from schedopt.dynamics.recursion import Trajectory, final_loss, loss_curve
from schedopt.dynamics.stability import stability_threshold
from schedopt.errors import (
    DivergenceError,
    ExportError,
    ProblemError,
    SchedoptError,
    SolverError,
    SpecError,
)
from schedopt.problem import ControlSpec, Model, Problem, Training
from schedopt.schedule import Schedule, load_schedule, save_schedule, schedule_from_solution
from schedopt.solution import Solution
from schedopt.solvers import solve
from schedopt.spec import default_problem, dump_problem, load_problem, parse_problem
from schedopt.theory import phase, predicted_exponents

__all__ = [
    "ControlGrid",
    "ControlSpec",
    "DivergenceError",
    "ExportError",
    "Model",
    "Problem",
    "ProblemError",
    "SchedoptError",
    "Schedule",
    "Solution",
    "SolverError",
    "SpecError",
    "Training",
    "Trajectory",
    "__version__",
    "block_edges",
    "default_problem",
    "dump_problem",
    "final_loss",
    "grid_for",
    "load_problem",
    "load_schedule",
    "loss_curve",
    "parse_problem",
    "phase",
    "predicted_exponents",
    "save_schedule",
    "schedule_from_solution",
    "solve",
    "stability_threshold",
]
