"""The solver's options (:class:`CasadiOptions`) and the IPOPT options they make; CasADi imported on demand."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

from schedopt.errors import ProblemError
from schedopt.solvers._options import SolverOptions, choice, nonnegative_int, real_in

#: Hessian modes: IPOPT's L-BFGS approximation, or CasADi's exact Hessian.
HESSIANS = ("limited-memory", "exact")
#: IPOPT linear solvers that work in the pip build of CasADi.
LINEAR_SOLVERS = ("mumps",)
#: L-BFGS history (IPOPT's ``limited_memory_max_history``; its default is 6).
LBFGS_HISTORY = 100


@dataclasses.dataclass(frozen=True)
class CasadiOptions(SolverOptions):
    """Options of the ``casadi`` solver (IPOPT on the exact recursion).

    Attributes:
        max_iter: IPOPT's iterations, at most (a non-negative integer).
        tol: IPOPT's tolerance on the log objective (a positive number).
        hessian: ``"limited-memory"`` (IPOPT's L-BFGS, :data:`LBFGS_HISTORY` pairs) or ``"exact"`` (CasADi's).
        max_wall_time: IPOPT's time limit in seconds, or ``None`` for none.
        linear_solver: IPOPT's linear solver: only ``"mumps"`` works in the pip build of CasADi.
    """

    solver: ClassVar[str] = "casadi"

    max_iter: int = 3000
    tol: float = 1e-10
    hessian: str = "limited-memory"
    max_wall_time: float | None = None
    linear_solver: str = "mumps"

    def __post_init__(self) -> None:
        set_option = functools.partial(object.__setattr__, self)  # normalised values on a frozen record
        set_option("max_iter", nonnegative_int("max_iter", self.max_iter))
        set_option("tol", real_in("tol", self.tol, "a positive number"))
        choice("hessian", self.hessian, HESSIANS)
        if self.max_wall_time is not None:
            seconds = "a positive number of seconds or None"
            set_option("max_wall_time", real_in("max_wall_time", self.max_wall_time, seconds))
        choice(
            "linear_solver",
            self.linear_solver,
            LINEAR_SOLVERS,
            "the only linear solver of IPOPT in this CasADi build",
        )


def _casadi():
    try:
        import casadi
    except ImportError:
        raise ProblemError(
            "`solver` = 'casadi' needs CasADi: install the casadi extra (pip install 'schedopt[casadi]')",
            field="solver",
        ) from None
    return casadi


def _ipopt_options(opts: CasadiOptions, callback) -> dict[str, Any]:
    ipopt = {
        "print_level": 0,
        "sb": "yes",
        "tol": opts.tol,
        "max_iter": opts.max_iter,
        "hessian_approximation": opts.hessian,
        "linear_solver": opts.linear_solver,
    }
    if opts.hessian == "limited-memory":
        ipopt["limited_memory_max_history"] = LBFGS_HISTORY
    if opts.max_wall_time is not None:
        ipopt["max_wall_time"] = opts.max_wall_time
    return {
        "ipopt": ipopt,
        "print_time": False,
        "error_on_fail": False,
        "iteration_callback": callback,
    }
