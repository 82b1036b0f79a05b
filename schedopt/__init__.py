"""schedopt: optimal learning-rate, batch-size and momentum schedules by optimal control.

The public API; everything else is internal. See README.md for a tour, docs/architecture.md
for the package tree and docs/theory.md for the mathematics (cited in the code as "THEORY §n").

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from schedopt.errors import (
    DivergenceError,
    ExportError,
    FitError,
    ProblemError,
    SchedoptError,
    SolverError,
    SpecError,
)

if TYPE_CHECKING:  # the names below load lazily (see ``__getattr__``); listed for type checkers
    from schedopt.batch import InvalidDesign, design_many
    from schedopt.controls import ControlGrid, block_edges, grid_for
    from schedopt.dynamics.recursion import Trajectory, final_loss, loss_curve
    from schedopt.dynamics.stability import stability_threshold
    from schedopt.problem import ControlSpec, Model, Problem, Training
    from schedopt.schedule import Schedule, load_schedule, save_schedule, schedule_from_solution
    from schedopt.solution import Solution
    from schedopt.solvers import CasadiOptions, JaxOptions, PontryaginOptions, solve
    from schedopt.spec import default_problem, dump_problem, load_problem, parse_problem
    from schedopt.status import Status
    from schedopt.theory import phase, predicted_exponents

#: Public name -> the module that defines it. ``import schedopt`` loads none of them (JAX alone
#: takes over a second to import); the first access of a name imports its module. No module
#: changes a JAX setting: float64 is scoped to schedopt's own calls (``schedopt._jax.float64``).
_LAZY = {
    "InvalidDesign": "schedopt.batch",
    "design_many": "schedopt.batch",
    "ControlGrid": "schedopt.controls",
    "block_edges": "schedopt.controls",
    "grid_for": "schedopt.controls",
    "Trajectory": "schedopt.dynamics.recursion",
    "final_loss": "schedopt.dynamics.recursion",
    "loss_curve": "schedopt.dynamics.recursion",
    "stability_threshold": "schedopt.dynamics.stability",
    "ControlSpec": "schedopt.problem",
    "Model": "schedopt.problem",
    "Problem": "schedopt.problem",
    "Training": "schedopt.problem",
    "Schedule": "schedopt.schedule",
    "load_schedule": "schedopt.schedule",
    "save_schedule": "schedopt.schedule",
    "schedule_from_solution": "schedopt.schedule",
    "Solution": "schedopt.solution",
    "Status": "schedopt.status",
    "solve": "schedopt.solvers",
    "CasadiOptions": "schedopt.solvers",
    "JaxOptions": "schedopt.solvers",
    "PontryaginOptions": "schedopt.solvers",
    "default_problem": "schedopt.spec",
    "dump_problem": "schedopt.spec",
    "load_problem": "schedopt.spec",
    "parse_problem": "schedopt.spec",
    "phase": "schedopt.theory",
    "predicted_exponents": "schedopt.theory",
}


def __getattr__(name: str):
    """Load a public name on first use (PEP 562) and cache it in the module."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("schedopt")
        except PackageNotFoundError:  # running from a source tree without installation
            value = "0.0.0+unknown"
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'schedopt' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CasadiOptions",
    "ControlGrid",
    "ControlSpec",
    "DivergenceError",
    "ExportError",
    "FitError",
    "InvalidDesign",
    "JaxOptions",
    "Model",
    "PontryaginOptions",
    "Problem",
    "ProblemError",
    "SchedoptError",
    "Schedule",
    "Solution",
    "SolverError",
    "SpecError",
    "Status",
    "Training",
    "Trajectory",
    "__version__",
    "block_edges",
    "default_problem",
    "design_many",
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
