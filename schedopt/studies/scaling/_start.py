"""Where an ODE-engine solve of a scan starts: a solved neighbour's optimal schedule, mapped in ``t / T``.

The ``jax`` solver's Pontryagin warm start runs the recursion, so it is skipped where the
ODE engine is chosen (``T N`` at or above ``ode_min_work``); such a solve then starts from
half the cap, and L-BFGS-B took its 3000 iterations without converging on the shipped
problems at ``C = 10^8`` and ``10^{10}`` (losses still falling by several per cent per
500 iterations). The optimal schedule of a neighbouring model size, as a fraction of its
own cap and as a function of ``t / T``, landed within ~1 % of the optimum (easy phase, 1e8);
from there the easy phase's solves converged, the hard phase's less often (its anneal's share
of ``T`` shrinks with ``T``; ``benchmarks/README.md``, "Scaling studies"). Only the start changes:
the optimum, the options and the stopping tests are the solver's. Recursion-engine solves
keep the solver's own warm start, so their results are those of a solve without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from schedopt.problem import Problem


def _ode_engine(problem: Problem, solver: str, options: Any) -> bool:
    if solver != "jax":
        return False
    from schedopt.solvers.jax._options import JaxOptions, _engine

    return _engine(problem, JaxOptions.coerce(options)) == "ode"


def mapped_start(
    problem: Problem, source: Mapping[str, Any] | None, solver: str, options: Any
) -> dict[str, np.ndarray] | None:
    """Learning-rate parameters for ``problem`` from the optimal schedule of the scan point ``source``.

    ``None`` (the solver's own start) unless the problem runs on the ``jax`` solver's ODE
    engine and ``source`` holds a solved optimal schedule with a learning-rate control only.
    The source's learning rate, as a fraction of its cap, is read at the times
    ``t T_source / T`` of this problem's knots and clipped to this problem's bounds.
    """
    if source is None or not _ode_engine(problem, solver, options):
        return None
    solution = source["results"].get("optimal", {}).get("solution")
    if solution is None or set(solution.parameters) != {"learning_rate"}:
        return None
    values = np.asarray(solution.parameters["learning_rate"], dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return None
    from schedopt.solvers._common import control_grids

    old = solution.grids["learning_rate"]
    new = control_grids(problem)["learning_rate"]
    old_spec, spec = solution.problem.learning_rate, problem.learning_rate
    fraction = old.evaluate(values, new.knots * (solution.problem.horizon / problem.horizon)) / old_spec.max
    return {"learning_rate": np.clip(fraction * spec.max, spec.min, spec.max)}
