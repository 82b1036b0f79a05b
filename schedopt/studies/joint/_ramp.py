"""The batch ramp of a budget optimum against the easy-phase prediction (THEORY §4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from schedopt.errors import ProblemError
from schedopt.solution import Solution
from schedopt.solvers import solve
from schedopt.studies.joint._problems import _budget_problem_at
from schedopt.studies.joint._wall_clock import WallClock
from schedopt.studies.joint._warm import _rescaled
from schedopt.theory import PowerLawFit, estimate_exponents, fit_power_law, predicted_exponents

#: Default range of t/T over which the batch ramp is fitted: away from the warm-up
#: at the start and from the last blocks, where the batch cap or grid resolution bind.
RAMP_FIT_RANGE = (0.2, 0.9)


@dataclass(frozen=True)
class RampFit:
    """A fitted batch ramp :math:`m_t \\propto (1 - t/T)^p` and the prediction.

    Attributes:
        exponent: fitted :math:`p`.
        predicted: :math:`1/(2b) - 1` (``None`` outside the easy phase).
        fit_range: range of :math:`t/T` fitted.
        residual: RMS residual of :math:`\\log m_t`.
        stderr: standard error of ``exponent`` (steps are correlated: a lower bound).
        points: number of steps fitted.
        mean_learning_rate_over_cap: mean :math:`\\eta_t/\\eta_{\\max}` over the range
            (the prediction assumes 1).
    """

    exponent: float
    predicted: float | None
    fit_range: tuple[float, float]
    residual: float
    stderr: float
    points: int
    mean_learning_rate_over_cap: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_batch_ramp(solution: Solution, *, fit_range: tuple[float, float] = RAMP_FIT_RANGE) -> RampFit:
    """Fit the batch schedule of a solution against :math:`(1 - t/T)` over ``fit_range`` of t/T."""
    lo, hi = (float(x) for x in fit_range)
    if not 0.0 <= lo < hi < 1.0:
        raise ProblemError(f"`fit_range` must satisfy 0 <= lo < hi < 1, got {fit_range!r}", field="fit_range")
    if "batch_size" not in solution.parameters:
        raise ProblemError("the solution has no batch-size control", field="batch_size")
    m = solution.per_step("batch_size")
    lr = solution.per_step("learning_rate")
    horizon = m.size
    u = (np.arange(horizon) + 0.5) / horizon
    keep = (u >= lo) & (u <= hi)
    fit: PowerLawFit = fit_power_law(1.0 - u[keep], m[keep])
    a, b = estimate_exponents(solution.problem.model)
    return RampFit(
        exponent=fit.exponent,
        predicted=predicted_exponents(a, b)["batch_ramp"],
        fit_range=(lo, hi),
        residual=fit.residual,
        stderr=fit.stderr,
        points=fit.points,
        mean_learning_rate_over_cap=float(np.mean(lr[keep]) / solution.problem.learning_rate.max),
    )


def wall_clock_ramp(
    wall_clock: WallClock,
    *,
    fit_range: tuple[float, float] = RAMP_FIT_RANGE,
    options: Mapping[str, Any] | None = None,
) -> tuple[Solution, RampFit]:
    r"""The batch ramp at the wall-clock optimum, where the learning rate sits at its cap.

    The best joint optimum of ``wall_clock`` (largest step counts: the flat part of
    :math:`L^*(T)`) fixes the per-sample schedule; its ``steps_at_cap``
    (:mod:`schedopt.solvers.budget`) is the fewest steps that realise it with
    :math:`\eta = \eta_{\max}`. The budget problem is solved at that step count
    (warm-started from the nearest listed solution) and its batch schedule fitted
    with :func:`fit_batch_ramp`.
    """
    best = min(wall_clock.joint_solutions, key=lambda s: s.final_loss)
    steps = int(best.info["degeneracy"]["steps_at_cap"])
    problem = best.problem
    p = _budget_problem_at(problem, steps)
    near = wall_clock.joint_at(steps)
    sol = solve(p, "jax", throw=False, options=options, initial=_rescaled(near, p))
    return sol, fit_batch_ramp(sol, fit_range=fit_range)
