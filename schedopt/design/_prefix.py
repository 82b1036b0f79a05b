"""A fixed prefix of a design (a warmup ramp, a pinned plateau) and the problem of the steps after it.

The dynamics are Markov in the per-mode errors :math:`c`, so the problem after a prefix starts
from the state the prefix leaves and its final loss is the full run's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from schedopt.errors import ProblemError
from schedopt.problem import Problem

__all__ = ["Warmup", "fixed_prefix", "problem_after_prefix", "problem_after_warmup"]


@dataclass(frozen=True, eq=False)
class Warmup:
    """A fixed warmup prefix of a design: ``learning_rate`` (model units) at steps ``0..steps-1``.

    ``problem`` is the full problem (horizon ``T``); the design's solution is of the
    steps after the ramp, from the state the ramp leaves (:func:`problem_after_warmup`).
    The prefix may end with the design's pinned plateau (the plateau-anneal form): only
    its first ``ramp_steps`` steps (the warmup ramp) precede the baselines too.
    """

    steps: int
    shape: str
    peak: float  # the ramp's end, in the units a person reads (the network's for a fitted spec)
    learning_rate: np.ndarray
    problem: Problem
    ramp_steps: int | None = None  # the warmup ramp's steps, shared with the baselines (None: all)

    @property
    def shared(self) -> np.ndarray:
        """The part of the prefix every schedule compared starts with: the warmup ramp."""
        return self.learning_rate if self.ramp_steps is None else self.learning_rate[: self.ramp_steps]

    def to_dict(self) -> dict[str, Any]:
        units = "network" if self.problem.network is not None else "model"
        ramp = self.steps if self.ramp_steps is None else self.ramp_steps
        return {
            "steps": self.steps,
            "shape": self.shape,
            "peak": self.peak,
            "peak_units": units,
            "ramp_steps": ramp,
        }


def problem_after_warmup(problem: Problem, steps: int, shape: str = "linear") -> tuple[Problem, Warmup]:
    r"""The problem of the steps after a fixed warmup ramp, and the ramp.

    The ramp goes to the learning-rate cap (``controls.learning_rate.max``; for a fitted
    spec the ramp is linear in the network's learning rate). It runs from the model's
    initial state with the fixed batch size; the per-mode errors :math:`c_k(W)` it
    leaves are the initial errors of a problem with horizon ``T - W``. Its optimum is
    the best schedule for those steps given the ramp, and its final loss is the full
    run's (the dynamics are Markov in :math:`c`). Designed batch sizes, momentum and
    sample budgets are refused (their state or budget would span the ramp).
    """
    from schedopt.schedule._warmup import check_warmup, warmup_values

    steps = check_warmup(steps, problem.horizon, shape=shape, field="--warmup")
    for name in ("batch_size", "momentum"):
        if name in problem.controls:
            raise ProblemError(f"`--warmup` with a designed {name} is not supported", field="warmup")
    if problem.training.momentum > 0:
        raise ProblemError(
            "`--warmup` with momentum (training.momentum > 0) is not supported", field="warmup"
        )
    if problem.sample_budget is not None:
        raise ProblemError("`--warmup` with a sample budget is not supported", field="warmup")
    if steps > problem.horizon - problem.learning_rate.blocks:
        raise ProblemError(
            f"`--warmup` {steps} leaves fewer steps than the {problem.learning_rate.blocks} control blocks",
            field="warmup",
        )
    cap = problem.learning_rate.max
    units = problem.network
    peak = float(cap if units is None else units.network_learning_rate(cap))
    ramp = warmup_values(steps, peak, shape)
    if units is not None:
        ramp = np.minimum(units.model_learning_rate(ramp), cap)
    return problem_after_prefix(problem, ramp), Warmup(steps, shape, peak, ramp, problem)


def problem_after_prefix(problem: Problem, learning_rate: np.ndarray) -> Problem:
    """The problem of the steps after a fixed prefix of learning rates (model units), from the state it leaves.

    The prefix runs from the model's initial state at the fixed batch size; the per-mode
    errors it leaves are the initial errors of a problem with the remaining horizon (the
    dynamics are Markov in :math:`c`, so that problem's final loss is the full run's).
    """
    from schedopt.dynamics.ops import NUMPY
    from schedopt.dynamics.sgd import sgd_step

    model = problem.model
    c = np.array(model.initial_error, dtype=np.float64)
    batch = float(problem.training.batch_size)
    for lr in learning_rate:
        c = sgd_step(c, float(lr), batch, model.eigenvalues, model.effective_noise, NUMPY)
    return problem.with_horizon(problem.horizon - len(learning_rate)).replace(
        model=dataclasses.replace(model, initial_error=np.maximum(c, 0.0))
    )


def fixed_prefix(problem: Problem, ramp: Warmup | None, plateau: np.ndarray) -> Warmup:
    """The warmup ramp (if any) and a pinned plateau as one fixed prefix of the design."""
    full = problem if ramp is None else ramp.problem
    head = np.zeros(0) if ramp is None else ramp.learning_rate
    level = float(plateau[0])
    units = full.network
    peak = level if units is None else float(units.network_learning_rate(level))
    shape = "plateau" if ramp is None else f"{ramp.shape}+plateau"
    prefix = np.concatenate([head, plateau])
    return Warmup(int(prefix.size), shape, peak, prefix, full, ramp_steps=int(head.size))
