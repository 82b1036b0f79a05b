"""The solver's options, checked, and the IPOPT options they make; CasADi imported on demand."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from schedopt.errors import ProblemError
from schedopt.solvers._common import merge_options

#: Hessian modes: IPOPT's L-BFGS approximation, or CasADi's exact Hessian.
HESSIANS = ("limited-memory", "exact")
#: IPOPT linear solvers that work in the pip build of CasADi.
LINEAR_SOLVERS = ("mumps",)
#: L-BFGS history (IPOPT's ``limited_memory_max_history``; its default is 6).
LBFGS_HISTORY = 100

DEFAULT_OPTIONS: Mapping[str, Any] = {
    "max_iter": 3000,
    "tol": 1e-10,
    "hessian": "limited-memory",
    "max_wall_time": None,
    "linear_solver": "mumps",
}


def _casadi():
    try:
        import casadi
    except ImportError:
        raise ProblemError(
            "`solver` = 'casadi' needs CasADi: install the casadi extra (pip install 'schedopt[casadi]')",
            field="solver",
        ) from None
    return casadi


def _options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated options: defaults overridden by the user's, every bad value named."""
    out = merge_options("casadi", DEFAULT_OPTIONS, options)
    max_iter = out["max_iter"]
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ProblemError(
            f"option `max_iter` must be a non-negative integer, got {max_iter!r}", field="max_iter"
        )
    out["max_iter"] = int(max_iter)
    tol = out["tol"]
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < math.inf:
        raise ProblemError(f"option `tol` must be a positive number, got {tol!r}", field="tol")
    out["tol"] = float(tol)
    if out["hessian"] not in HESSIANS:
        raise ProblemError(
            f"option `hessian` must be {' or '.join(repr(h) for h in HESSIANS)}, got {out['hessian']!r}",
            field="hessian",
        )
    wall = out["max_wall_time"]
    if wall is not None:
        if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not 0 < wall < math.inf:
            raise ProblemError(
                f"option `max_wall_time` must be a positive number of seconds or None, got {wall!r}",
                field="max_wall_time",
            )
        out["max_wall_time"] = float(wall)
    if out["linear_solver"] not in LINEAR_SOLVERS:
        raise ProblemError(
            f"option `linear_solver` must be {' or '.join(repr(s) for s in LINEAR_SOLVERS)} "
            f"(the only linear solver of IPOPT in this CasADi build), got {out['linear_solver']!r}",
            field="linear_solver",
        )
    return out


def _ipopt_options(opts: Mapping[str, Any], callback) -> dict[str, Any]:
    ipopt = {
        "print_level": 0,
        "sb": "yes",
        "tol": opts["tol"],
        "max_iter": opts["max_iter"],
        "hessian_approximation": opts["hessian"],
        "linear_solver": opts["linear_solver"],
    }
    if opts["hessian"] == "limited-memory":
        ipopt["limited_memory_max_history"] = LBFGS_HISTORY
    if opts["max_wall_time"] is not None:
        ipopt["max_wall_time"] = opts["max_wall_time"]
    return {
        "ipopt": ipopt,
        "print_time": False,
        "error_on_fail": False,
        "iteration_callback": callback,
    }
