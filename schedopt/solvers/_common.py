"""What every solver shares: bound checks, grids, initial guesses, the evaluated result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from schedopt.controls import ControlGrid, grid_for
from schedopt.dynamics.stability import stability_threshold
from schedopt.errors import ProblemError
from schedopt.problem import Problem

__all__ = ["check_bounds", "control_grids", "initial_parameters", "lower_upper"]


def check_bounds(problem: Problem) -> float:
    """Check the learning-rate cap against the stability threshold; return the threshold.

    The threshold is computed at the smallest batch size the problem allows (the
    least stable setting). A cap at or above it is an error that names the option.
    """
    lr = problem.learning_rate
    batch = problem.controls.get("batch_size")
    m_min = batch.min if batch is not None else problem.training.batch_size
    threshold = stability_threshold(problem.model, m_min)
    if "momentum" not in problem.controls and problem.training.momentum == 0.0 and lr.max >= threshold:
        raise ProblemError(
            f"`controls.learning_rate.max` = {lr.max:g} is at or above the stability threshold "
            f"{threshold:.6g} of the recursion at batch_size = {m_min:g}; lower it below the threshold",
            field="max",
        )
    return threshold


def control_grids(problem: Problem) -> dict[str, ControlGrid]:
    """The grid of every control at the problem's horizon."""
    return {name: grid_for(spec, problem.horizon) for name, spec in problem.controls.items()}


def lower_upper(
    problem: Problem, grids: Mapping[str, ControlGrid]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Box bounds on each control's parameters."""
    out = {}
    for name, grid in grids.items():
        spec = problem.controls[name]
        out[name] = (np.full(grid.n_params, spec.min), np.full(grid.n_params, spec.max))
    return out


def initial_parameters(
    problem: Problem, grids: Mapping[str, ControlGrid], initial: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Starting parameters: the user's, validated, or a safe default.

    Default: learning rate at half its cap, batch size at its fixed value (or the
    budget-consistent value), momentum at its fixed value, all clipped to the bounds.
    """
    bounds = lower_upper(problem, grids)
    out: dict[str, np.ndarray] = {}
    for name, grid in grids.items():
        lo, hi = bounds[name]
        if initial is not None and name in initial:
            value = np.asarray(initial[name], dtype=np.float64)
            if value.shape != (grid.n_params,):
                raise ProblemError(
                    f"`initial.{name}` must have {grid.n_params} values, got shape {value.shape}",
                    field="initial",
                )
            if not np.all(np.isfinite(value)) or np.any(value < lo - 1e-12) or np.any(value > hi + 1e-12):
                raise ProblemError(
                    f"`initial.{name}` must be finite and within [{lo[0]:g}, {hi[0]:g}]",
                    field="initial",
                )
            out[name] = np.clip(value, lo, hi)
            continue
        if name == "learning_rate":
            guess = 0.5 * hi
        elif name == "batch_size":
            if problem.sample_budget is not None:
                guess = np.full(grid.n_params, problem.sample_budget / problem.horizon)
            else:
                guess = np.full(grid.n_params, problem.training.batch_size)
        else:
            guess = np.full(grid.n_params, problem.training.momentum)
        out[name] = np.clip(guess, lo, hi)
    return out
