"""What every solver shares: bound checks, grids, initial guesses, the evaluated result."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from schedopt.controls import ControlGrid, grid_for
from schedopt.dynamics.stability import cap_note, momentum_stability_threshold, stability_threshold
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solution import Solution

__all__ = [
    "MOMENTUM_GRID_POINTS",
    "START_MARGIN",
    "check_bounds",
    "control_grids",
    "initial_parameters",
    "lower_upper",
    "momentum_cap_table",
    "momentum_grid",
    "momentum_range",
    "momentum_thresholds",
    "with_stability",
]


#: Points of the momentum range at which the heavy-ball threshold is computed
#: (uniform in :math:`\log(1-\beta)`, which resolves :math:`\beta \to 1`).
MOMENTUM_GRID_POINTS = 25


def momentum_range(problem: Problem) -> tuple[float, float] | None:
    """``(beta_min, beta_max)`` of a momentum control, ``(beta, beta)`` for a fixed ``beta > 0``, else ``None``."""
    spec = problem.controls.get("momentum")
    if spec is not None:
        return spec.min, spec.max
    beta = problem.training.momentum
    return (beta, beta) if beta > 0 else None


def momentum_grid(beta_min: float, beta_max: float, points: int = MOMENTUM_GRID_POINTS) -> np.ndarray:
    r"""Momentum values from ``beta_min`` to ``beta_max``, uniform in :math:`-\log(1-\beta)`."""
    if beta_max <= beta_min:
        return np.array([beta_min])
    u = np.linspace(-np.log1p(-beta_min), -np.log1p(-beta_max), points)
    return -np.expm1(-u)


def _min_batch(problem: Problem) -> float:
    batch = problem.controls.get("batch_size")
    return batch.min if batch is not None else problem.training.batch_size


def momentum_thresholds(problem: Problem, betas) -> np.ndarray:
    """Heavy-ball stability threshold of the learning rate at each momentum, at the smallest batch size."""
    return np.atleast_1d(
        momentum_stability_threshold(problem.model, np.asarray(betas, float), _min_batch(problem))
    )


def momentum_cap_table(problem: Problem, margin: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    r"""The joint heavy-ball cap of the learning rate as a table over the momentum range.

    Returns ``(u, fraction)``: :math:`u = -\log(1-\beta)` at :data:`MOMENTUM_GRID_POINTS`
    momenta of the control's range and :math:`\min(1, \text{margin}\,\eta_c(\beta) / \eta_{\max})`
    there (:math:`\eta_c` at the smallest batch size). Interpolate in :math:`u` to cap the
    learning rate at any momentum: :math:`\eta \le \text{fraction}(\beta)\,\eta_{\max}` (the ``jax``
    solver takes the monotone cubic through the table, whose derivative has no kink).
    """
    spec = problem.controls["momentum"]
    betas = momentum_grid(spec.min, spec.max)
    cap = margin * momentum_thresholds(problem, betas)
    frac = np.minimum(1.0, cap / problem.learning_rate.max)
    if betas.size == 1:
        betas, frac = np.repeat(betas, 2), np.repeat(frac, 2)
    return -np.log1p(-betas), frac


#: The default starting learning rate is at most this fraction of the stability threshold
#: (a cap at or above the threshold is allowed: the start stays stable as a constant setting).
START_MARGIN = 0.9


def _sgd_threshold(problem: Problem, batch_size: float) -> float:
    """The plain-SGD stability threshold at ``batch_size``; inside a lockstep batch, computed once for
    every problem with the same eigenvalues (a bisection over the spectrum, asked twice a solve)."""
    from schedopt.solvers import _lockstep

    lam = problem.model.eigenvalues
    key = ("stability_threshold", lam.dtype.str, lam.tobytes(), float(batch_size))
    return _lockstep.shared(key, lambda: stability_threshold(problem.model, batch_size))


def _threshold(problem: Problem, momentum_cap: str = "box") -> tuple[float, str]:
    """The stability threshold :func:`check_bounds` compares the cap with, and where it is taken."""
    m_min = _min_batch(problem)
    betas = momentum_range(problem)
    if betas is None:
        return _sgd_threshold(problem, m_min), f"batch_size = {m_min:g}"
    grid = momentum_grid(*betas) if momentum_cap == "box" else np.array([betas[0]])
    thresholds = momentum_thresholds(problem, grid)
    worst = int(np.argmin(thresholds))
    return float(thresholds[worst]), f"batch_size = {m_min:g} and momentum = {grid[worst]:.6g} (heavy ball)"


def check_bounds(problem: Problem, *, momentum_cap: str = "box") -> tuple[float, str | None]:
    r"""The stability threshold of the learning rate, and a note if the cap is at or above it.

    The threshold is that of a constant learning rate, at the smallest batch size the
    problem allows (the least stable setting). A cap at or above it is allowed: a
    finite-horizon schedule may run above the threshold for a while (the optimum of
    the seed paper's problem does), so the note only states the threshold; the solvers
    start below it (:data:`START_MARGIN`) and report status ``diverged`` if the loss
    blows up.

    With momentum (a control, or a fixed ``training.momentum > 0``) the threshold is
    the heavy-ball one (:func:`~schedopt.dynamics.stability.momentum_stability_threshold`),
    which is not monotone in :math:`\beta`:

    * ``momentum_cap="box"``: the smallest threshold over :data:`MOMENTUM_GRID_POINTS`
      momenta of the range (uniform in :math:`\log(1-\beta)`), so that below it every
      point of the box ``[0, lr.max] x [beta_min, beta_max]`` is stable;
    * ``momentum_cap="joint"``: the solver caps the learning rate at each momentum
      itself (solver ``jax``), so only the edge ``beta = beta_min`` of the box counts.
    """
    if momentum_cap not in ("box", "joint"):
        raise ProblemError(
            f"`momentum_cap` must be 'box' or 'joint', got {momentum_cap!r}", field="momentum_cap"
        )
    threshold, where = _threshold(problem, momentum_cap)
    consequence = (
        "the schedule may exceed it for a while, but a solve that diverges there is reported as such"
    )
    return threshold, cap_note(problem.learning_rate.max, threshold, where, consequence)


def with_stability(solution: Solution, bound: tuple[float, str | None]) -> Solution:
    """``solution`` with the threshold of :func:`check_bounds` (``info["stability_threshold"]``) and
    its note, if the cap is at or above it (``info["stability_note"]``)."""
    threshold, note = bound
    info = {**solution.info, "stability_threshold": float(threshold)}
    if note is not None:
        info["stability_note"] = note
    return dataclasses.replace(solution, info=info)


def control_grids(problem: Problem) -> dict[str, ControlGrid]:
    """The grid of every control at the problem's horizon.

    Inside a lockstep batch (:mod:`schedopt.solvers._lockstep`) a grid is built once for every
    problem with the same discretisation and horizon (grids are frozen records).
    """
    return {name: _grid(spec, problem.horizon) for name, spec in problem.controls.items()}


def grid_key(spec, horizon: int) -> tuple:
    """What a control's grid depends on: equal keys, equal grids."""
    return ("grid", spec.blocks, spec.grid, spec.parameterisation, spec.edges, int(horizon))


def _grid(spec, horizon: int) -> ControlGrid:
    from schedopt.solvers import _lockstep

    return _lockstep.shared(grid_key(spec, horizon), lambda: grid_for(spec, horizon))


def lower_upper(
    problem: Problem, grids: Mapping[str, ControlGrid]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Box bounds on each control's parameters."""
    out = {}
    for name, grid in grids.items():
        spec = problem.controls[name]
        out[name] = (np.full(grid.n_params, spec.min), np.full(grid.n_params, spec.max))
    return out


def _start_threshold(problem: Problem, momentum: np.ndarray | None) -> float:
    """Stability threshold of a constant learning rate at the smallest batch size and the starting momenta."""
    if momentum is None:
        momentum = np.array([problem.training.momentum])
    betas = np.unique(momentum)
    if not np.any(betas > 0):
        return _sgd_threshold(problem, _min_batch(problem))
    return float(momentum_thresholds(problem, betas).min())


def initial_parameters(
    problem: Problem, grids: Mapping[str, ControlGrid], initial: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Starting parameters: the user's, validated, or a safe default.

    Default: batch size at its fixed value (or the budget-consistent value), momentum at
    its fixed value, learning rate at half its cap but at most :data:`START_MARGIN` of the
    stability threshold at the smallest batch size and the starting momentum (a cap above
    the threshold is allowed; the start is stable as a constant setting), all clipped to
    the bounds.
    """
    bounds = lower_upper(problem, grids)
    out: dict[str, np.ndarray] = {}
    # the learning rate last: its default depends on the starting momentum
    for name in sorted(grids, key=lambda n: n == "learning_rate"):
        grid = grids[name]
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
            guess = np.minimum(0.5 * hi, START_MARGIN * _start_threshold(problem, out.get("momentum")))
        elif name == "batch_size":
            guess = np.full(grid.n_params, problem.mean_batch_size)
        else:
            guess = np.full(grid.n_params, problem.training.momentum)
        out[name] = np.clip(guess, lo, hi)
    return {name: out[name] for name in grids}
