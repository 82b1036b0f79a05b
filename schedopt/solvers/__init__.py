"""Solvers of the schedule-design problem, behind one entry point :func:`solve`.

Each solver lives in its own module and registers a function
``(problem, *, initial, options) -> Solution``:

* ``jax``: reduced gradient through the JAX recursion (or ODE), bounded L-BFGS;
* ``casadi``: IPOPT on the exact recursion, built from the same step function;
* ``pontryagin``: forward-backward sweep with the closed-form per-step optimum.

Each solver's options are a frozen dataclass, :class:`JaxOptions`, :class:`CasadiOptions` and
:class:`PontryaginOptions` (subclasses of ``_options.SolverOptions``): every field typed, with
its default and a line of documentation, checked when the record is built. :func:`solve` takes
the record or a mapping of its fields (converted by ``from_mapping``, unknown names refused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from schedopt._jax import float64
from schedopt.errors import DivergenceError, ProblemError, SolverError
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers._options import SolverOptions
from schedopt.status import Status

__all__ = ["SOLVERS", "CasadiOptions", "JaxOptions", "PontryaginOptions", "solve"]

SOLVERS = ("jax", "casadi", "pontryagin")

#: Where each solver's options live (imported on first use: each module loads its solver).
_OPTIONS = {
    "JaxOptions": "schedopt.solvers.jax._options",
    "CasadiOptions": "schedopt.solvers.casadi_ipopt._options",
    "PontryaginOptions": "schedopt.solvers.pontryagin",
}


def __getattr__(name: str):
    if name in _OPTIONS:
        import importlib

        value = getattr(importlib.import_module(_OPTIONS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


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
    options: SolverOptions | Mapping[str, Any] | None = None,
) -> Solution:
    """Design the schedule that minimises the final loss of ``problem``.

    Args:
        problem: the problem.
        solver: ``"jax"``, ``"casadi"`` or ``"pontryagin"``.
        throw: raise :class:`SolverError` when the solve does not converge
            (:class:`DivergenceError`, a subclass, when it diverged; the error carries
            the solution as ``.solution``); if false, return it with its status.
        initial: starting parameters by control name (default: a safe schedule).
        options: the solver's options: its record (:class:`JaxOptions`, :class:`CasadiOptions`,
            :class:`PontryaginOptions`) or a mapping of the record's fields (default: its defaults).
    """
    if solver not in SOLVERS:
        raise ProblemError(f"`solver` must be one of {', '.join(SOLVERS)}, got {solver!r}", field="solver")
    solution = _solver_function(solver)(problem, initial=initial, options=options)
    if throw and not solution.converged:
        error = DivergenceError if solution.status is Status.DIVERGED else SolverError
        err = error(
            f"solver {solver!r} stopped with status {solution.status!r} after "
            f"{solution.iterations} iterations: {solution.message}"
        )
        err.solution = solution
        raise err
    return solution
