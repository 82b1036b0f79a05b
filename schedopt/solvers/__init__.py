"""Solvers of the schedule-design problem, behind one entry point :func:`solve`.

Each solver lives in its own module and registers a function
``(problem, *, initial, options) -> Solution``:

* ``jax``: reduced gradient through the JAX recursion (or ODE), bounded L-BFGS;
* ``casadi``: IPOPT on the exact recursion, built from the same step function;
* ``pontryagin``: forward-backward sweep with the closed-form per-step optimum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from schedopt._jax import float64
from schedopt.errors import DivergenceError, ProblemError, SolverError
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.status import Status

__all__ = ["SOLVERS", "solve"]

SOLVERS = ("jax", "casadi", "pontryagin")


def _solver_function(name: str) -> Callable[..., Solution]:
    """Import only the solver asked for (CasADi is slow to import)."""
    if name == "jax":
        from schedopt.solvers.jax import solve_jax

        return solve_jax
    if name == "casadi":
        from schedopt.solvers.casadi_ipopt import solve_casadi

        return solve_casadi
    from schedopt.solvers.pontryagin import solve_pontryagin

    return solve_pontryagin


@float64
def solve(
    problem: Problem,
    solver: str = "jax",
    *,
    throw: bool = True,
    initial: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Solution:
    """Design the schedule that minimises the final loss of ``problem``.

    Args:
        problem: the problem.
        solver: ``"jax"``, ``"casadi"`` or ``"pontryagin"``.
        throw: raise :class:`SolverError` when the solve does not converge
            (:class:`DivergenceError`, a subclass, when it diverged; the error carries
            the solution as ``.solution``); if false, return it with its status.
        initial: starting parameters by control name (default: a safe schedule).
        options: solver-specific options (tolerances, iteration limits).
    """
    if solver not in SOLVERS:
        raise ProblemError(f"`solver` must be one of {', '.join(SOLVERS)}, got {solver!r}", field="solver")
    solution = _solver_function(solver)(problem, initial=initial, options=dict(options or {}))
    if throw and not solution.converged:
        error = DivergenceError if solution.status is Status.DIVERGED else SolverError
        err = error(
            f"solver {solver!r} stopped with status {solution.status!r} after "
            f"{solution.iterations} iterations: {solution.message}"
        )
        err.solution = solution
        raise err
    return solution
