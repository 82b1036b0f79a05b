"""The ``jax`` solver's entry points: one problem, or several solved in one vectorised call."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from schedopt._jax import float64
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers._common import (
    check_bounds,
    control_grids,
    with_stability,
)
from schedopt.solvers.jax._basins import with_basin_search
from schedopt.solvers.jax._checks import _polished
from schedopt.solvers.jax._driver import _solve_group
from schedopt.solvers.jax._objective import _capped, _layout
from schedopt.solvers.jax._options import JaxOptions, _engine


@float64
def solve_jax(
    problem: Problem,
    *,
    initial: Mapping[str, Any] | None = None,
    options: JaxOptions | Mapping[str, Any] | None = None,
) -> Solution:
    """Solve one problem (see :func:`schedopt.solvers.solve`)."""
    return solve_jax_many([problem], initial=[initial] if initial else None, options=options)[0]


@float64
def solve_jax_many(
    problems: Sequence[Problem],
    *,
    initial: Sequence[Mapping[str, Any] | None] | None = None,
    options: JaxOptions | Mapping[str, Any] | None = None,
) -> list[Solution]:
    """Solve several problems; those with equal horizon and controls share one vectorised solve.

    Returns the solutions in the order of ``problems``.
    """
    opts = JaxOptions.coerce(options)
    problems = list(problems)
    if not problems:
        return []
    bounds = []
    for p in problems:
        bounds.append(check_bounds(p, momentum_cap="joint" if _capped(p, opts) else "box"))
        _layout(p, control_grids(p))
        if p.sample_budget is not None:
            from schedopt.solvers.budget import check_budget

            check_budget(p)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(problems):
        g = control_grids(p)
        engine = _engine(p, opts)
        param = g["learning_rate"].parameterisation if engine == "ode" else None
        key = (p.horizon, _layout(p, g), p.training.momentum > 0, p.sample_budget is not None, engine, param)
        groups.setdefault(key, []).append(i)
    out: list[Solution | None] = [None] * len(problems)
    for key, indices in groups.items():
        init = [initial[i] for i in indices] if initial else None
        group = [problems[i] for i in indices]
        start = time.perf_counter()
        solved = _solve_group(group, init, opts, engine=key[4])
        shared = time.perf_counter() - start  # the group's solve with every check and tie-break
        for i, sol in zip(indices, solved, strict=True):
            start = time.perf_counter()
            sol = with_basin_search(sol, opts, _solve_from(opts, key[4]))
            polished = _polished(sol, opts)
            # wall_time: everything this solution cost, the final full-spectrum checks included
            polished = with_stability(polished, bounds[i])
            out[i] = dataclasses.replace(polished, wall_time=shared + time.perf_counter() - start)
    return out  # type: ignore[return-value]


def _solve_from(opts: JaxOptions, engine: str):
    """Solve one problem from given learning-rate parameters, without warm start (a basin-search start)."""
    cold = opts.replace(warm_start="none")

    def solve_from(problem: Problem, values) -> Solution:
        return _solve_group([problem], [{"learning_rate": values}], cold, engine=engine)[0]

    return solve_from
