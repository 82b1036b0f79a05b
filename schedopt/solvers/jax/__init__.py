"""Solver ``jax``: reduced gradient through the JAX dynamics, bounded L-BFGS-B.

The control parameters are mapped to per-step values by the grids' fixed interpolation,
run through the exact recursion (or the ODE for long horizons) and differentiated with
``jax.value_and_grad``; L-BFGS-B handles the box bounds, an augmented Lagrangian a sample
budget. The objective is :math:`\\log(L_T - R_N)`. How each part works, and why, is in
``docs/architecture.md`` ("The JAX solver"); measurements in ``benchmarks/README.md``.

- ``_options.py``: :class:`JaxOptions`, the solver's options; engine (recursion / ODE) and spectrum (compressed) choice.
- ``_objective.py``: parameters → per-step controls → log loss, preconditioned and batched.
- ``_warm.py``: the Pontryagin warm start.
- ``_driver.py``: stacked problems, L-BFGS-B with restarts, the augmented Lagrangian.
- ``_checks.py``: the ODE engine's recursion check, the full-spectrum polish, the budget tie-break.
- ``_basins.py``: the basin search of a cheap problem whose minimum chatters at its cap.
- ``_solve.py``: :func:`solve_jax`, :func:`solve_jax_many`.
"""

from __future__ import annotations

from schedopt.solvers.jax._options import JaxOptions
from schedopt.solvers.jax._solve import solve_jax, solve_jax_many

__all__ = ["JaxOptions", "solve_jax", "solve_jax_many"]
