"""Warm starts of the joint studies: a previous solution carried to another horizon in t/T."""

from __future__ import annotations

import numpy as np

from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers._common import control_grids


def _rescaled(previous: Solution, problem: Problem) -> dict[str, np.ndarray]:
    """A previous solution's controls mapped to another horizon in t/T (a warm start)."""
    out = {}
    for name, grid in control_grids(problem).items():
        if name not in previous.parameters:
            continue
        old = previous.grids[name]
        spec = problem.controls[name]
        values = np.interp(grid.knots / grid.horizon, old.knots / old.horizon, previous.parameters[name])
        if name == "batch_size":
            values = values * previous.problem.horizon / problem.horizon  # same budget, other T
        out[name] = np.clip(values, spec.min, spec.max)
    if "batch_size" in out and problem.sample_budget is not None:
        from schedopt.solvers.budget import budget_weights, project_budget

        spec = problem.controls["batch_size"]
        out["batch_size"] = project_budget(
            out["batch_size"],
            budget_weights(control_grids(problem)["batch_size"]),
            problem.sample_budget,
            spec.min,
            spec.max,
        )
    return out
