"""The inputs of a scaling study: the computes, the checked problem, the problem at one model size."""

from __future__ import annotations

import math

import numpy as np

from schedopt import _validate as v
from schedopt.dynamics.stability import stability_threshold
from schedopt.errors import ProblemError
from schedopt.problem import Model, Problem


def parse_compute(text: str) -> list[float]:
    """``"1e6:1e10:9"`` → 9 log-spaced computes from 1e6 to 1e10; or a comma list ``"1e5,1e6"``."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            count = float(n)
            if not count.is_integer() or count < 2:
                raise ValueError
            lo_v, hi_v = float(lo), float(hi)
            if not (math.isfinite(lo_v) and math.isfinite(hi_v)) or lo_v <= 0 or hi_v <= lo_v:
                raise ValueError
            values = np.geomspace(lo_v, hi_v, int(count))
        else:
            values = np.unique([float(x) for x in text.split(",") if x.strip()])
            if values.size < 2 or not np.all(np.isfinite(values)) or values.min() <= 0:
                raise ValueError
    except ValueError:
        raise ProblemError(
            f"`--compute` must be LO:HI:COUNT (e.g. 1e6:1e10:9, COUNT >= 2) or a comma list of at "
            f"least two positive numbers, got {text!r}",
            field="compute",
        ) from None
    return [float(x) for x in values]


def _check_problem(problem: Problem) -> None:
    if not problem.model.is_powerlaw:
        raise ProblemError(
            'compute-optimal scaling needs a power-law model (model.kind = "powerlaw"): the model '
            "size N is the number of modes kept from an infinite power law",
            field="model.kind",
        )
    if problem.model.a <= 1:
        raise ProblemError(
            f"`model.a` must be > 1 for a finite-size model (finite R_N), got {problem.model.a!r}",
            field="model.a",
        )
    if "batch_size" in problem.controls or problem.sample_budget is not None:
        raise ProblemError(
            "compute-optimal scaling holds the batch size fixed; remove `controls.batch_size`",
            field="controls.batch_size",
        )


def _cap_fraction(problem: Problem) -> float:
    return problem.learning_rate.max / stability_threshold(problem.model, problem.training.batch_size)


def scaling_problem(problem: Problem, n_modes: int, horizon: int, *, blocks: int | None = None) -> Problem:
    """``problem`` with the top ``n_modes`` of its infinite power law, at ``horizon`` steps.

    Same exponents, noise and total initial loss (kept + frozen modes); the
    learning-rate cap keeps the spec's fraction of the stability threshold (package
    docstring); ``blocks`` (default: the spec's) is capped at the horizon.
    """
    _check_problem(problem)
    n_modes = v.positive_int("n_modes", n_modes)
    m = problem.model
    total = m.initial_loss + m.residual
    model = Model.powerlaw(
        m.a, m.b, n_modes, noise_std=math.sqrt(m.noise_variance), initial_loss=total, finite_size=True
    )
    cap = _cap_fraction(problem) * stability_threshold(model, problem.training.batch_size)
    base = problem.replace(model=model).with_control("learning_rate", max=cap)
    if blocks is not None:
        blocks = v.positive_int("blocks", blocks)
        if base.learning_rate.grid == "custom":
            raise ProblemError("`blocks` cannot override a custom grid (its edges are given)", field="blocks")
        # raise the horizon first so that the new block count is valid, then set the target horizon
        base = base.at_horizon(max(base.horizon, blocks)).with_control("learning_rate", blocks=blocks)
    return base.at_horizon(horizon)
