"""The problems of the joint studies: a sample budget with a batch-size control, the fixed-batch
problem at its mean batch size, a momentum control; each on the learning rate's grid."""

from __future__ import annotations

import dataclasses

from schedopt.errors import ProblemError
from schedopt.problem import ControlSpec, Problem, Training


def _learning_rate_at(problem: Problem, horizon: int) -> ControlSpec:
    """The learning-rate control at ``horizon``, its grid adapted as :meth:`Problem.at_horizon` does."""
    return problem.at_horizon(horizon).learning_rate


def with_sample_budget(
    problem: Problem,
    sample_budget: float,
    *,
    horizon: int | None = None,
    batch_min: float = 1.0,
    batch_max: float | None = None,
) -> Problem:
    """The problem with a batch-size control (same grid as the learning rate) and a sample budget.

    Args:
        problem: a problem with a learning-rate control (its other controls are kept).
        sample_budget: :math:`D = \\sum_t m_t`.
        horizon: number of steps (default: the problem's).
        batch_min, batch_max: batch bounds (default ``batch_max``: :math:`D` itself,
            i.e. no cap beyond the budget).
    """
    horizon = problem.horizon if horizon is None else int(horizon)
    lr = _learning_rate_at(problem, horizon)
    spec = dataclasses.replace(
        lr, name="batch_size", min=float(batch_min), max=float(batch_max or sample_budget)
    )
    controls = {**dict(problem.controls), "learning_rate": lr, "batch_size": spec}
    return problem.replace(
        training=dataclasses.replace(problem.training, horizon=horizon),
        controls=controls,
        sample_budget=float(sample_budget),
    )


def _budget_problem_at(problem: Problem, horizon: int) -> Problem:
    """The same sample-budget problem (budget and batch bounds kept) over another number of steps."""
    batch = problem.controls["batch_size"]
    return with_sample_budget(
        problem.replace(controls={k: v for k, v in problem.controls.items() if k != "batch_size"}),
        problem.sample_budget,
        horizon=horizon,
        batch_min=batch.min,
        batch_max=batch.max,
    )


def fixed_batch_problem(problem: Problem, horizon: int | None = None) -> Problem:
    """The learning-rate-only problem at the budget's constant batch size :math:`D/T`."""
    if problem.sample_budget is None:
        raise ProblemError("`sample_budget` is required", field="sample_budget")
    horizon = problem.horizon if horizon is None else int(horizon)
    batch = problem.sample_budget / horizon
    return problem.replace(
        training=Training(horizon=horizon, batch_size=batch, momentum=problem.training.momentum),
        controls={"learning_rate": _learning_rate_at(problem, horizon)},
        sample_budget=None,
    )


def momentum_problem(
    problem: Problem, beta_max: float, *, beta_min: float = 0.0, horizon: int | None = None
) -> Problem:
    """The problem with a momentum control on the learning rate's grid, bounds ``[beta_min, beta_max]``."""
    horizon = problem.horizon if horizon is None else int(horizon)
    lr = _learning_rate_at(problem, horizon)
    spec = dataclasses.replace(lr, name="momentum", min=float(beta_min), max=float(beta_max))
    return problem.replace(
        training=dataclasses.replace(problem.training, horizon=horizon, momentum=0.0),
        controls={**dict(problem.controls), "learning_rate": lr, "momentum": spec},
    )
