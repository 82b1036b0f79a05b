""":func:`solve_casadi`: check the problem, build the NLP, run IPOPT, read its best iterate."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from schedopt._jax import float64
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers._common import check_bounds, control_grids, initial_parameters, with_stability
from schedopt.solvers.casadi_ipopt._best import _best_iterate_callback
from schedopt.solvers.casadi_ipopt._nlp import CasadiNLP, build_nlp
from schedopt.solvers.casadi_ipopt._options import CasadiOptions, _casadi, _ipopt_options
from schedopt.status import Status

#: Largest relative violation of the sample budget for an iterate to count as the best one.
_BUDGET_TOL = 1e-8

_CONVERGED = ("Solve_Succeeded", "Solved_To_Acceptable_Level")
_LIMITS = ("Maximum_Iterations_Exceeded", "Maximum_CpuTime_Exceeded", "Maximum_WallTime_Exceeded")


def _status(ipopt_status: str) -> Status:
    if ipopt_status in _CONVERGED:
        return Status.CONVERGED
    if ipopt_status in _LIMITS:
        return Status.MAX_ITERATIONS
    return Status.FAILED


def _per_step(problem: Problem, nlp: CasadiNLP, params: Mapping[str, np.ndarray]):
    def values(name, fixed):
        if name in params:
            return nlp.grids[name].interpolation().expand(params[name])
        return np.full(problem.horizon, float(fixed))

    lr = values("learning_rate", None)
    m = values("batch_size", problem.training.batch_size)
    beta = values("momentum", problem.training.momentum) if nlp.momentum else None
    return lr, m, beta


def _checked(problem: Problem, options: CasadiOptions | Mapping[str, Any] | None) -> CasadiOptions:
    """The checked options, once the problem is known to be solvable by this solver."""
    opts = CasadiOptions.coerce(options)
    model = problem.model
    if model.initial_loss == 0.0 and model.effective_noise == 0.0:
        raise ProblemError(
            "the loss is zero for every schedule (zero initial error and zero noise): "
            "there is nothing to optimise",
            field="initial_error",
        )
    if problem.sample_budget is not None and "batch_size" not in problem.controls:
        raise ProblemError(
            "a sample budget needs a batch_size control ([controls.batch_size])",
            field="sample_budget",
        )
    return opts


def _ipopt_solver(nlp: CasadiNLP, opts: Mapping[str, Any]):
    """IPOPT on the NLP, and the callback that watches its iterates for the best one."""
    ca = _casadi()
    callback = _best_iterate_callback(int(nlp.x.numel()), int(nlp.constraints.numel()), _BUDGET_TOL)
    solver = ca.nlpsol(
        "schedopt_casadi",
        "ipopt",
        {"x": nlp.x, "f": nlp.objective, "g": nlp.constraints},
        _ipopt_options(opts, callback),
    )
    return solver, callback


def _kept_iterate(nlp: CasadiNLP, result, callback, status: Status) -> tuple[dict[str, np.ndarray], bool]:
    """The parameters kept: IPOPT's last iterate, or the best one when it did not converge and the
    best is lower; and whether the best was taken."""
    x_final = np.asarray(result["x"], dtype=np.float64).ravel()
    f_final = float(result["f"])
    use_best = (
        status is not Status.CONVERGED
        and callback.best_x is not None
        and (not math.isfinite(f_final) or callback.best_f < f_final)
    )
    # IPOPT relaxes the bounds by ~1e-8 (bound_relax_factor): clip back into the box
    x_best = np.clip(callback.best_x if use_best else x_final, nlp.lower, nlp.upper)
    return nlp.split(x_best), use_best


@float64
def solve_casadi(
    problem: Problem,
    *,
    initial: Mapping[str, Any] | None = None,
    options: CasadiOptions | Mapping[str, Any] | None = None,
) -> Solution:
    """Minimise the final loss of ``problem`` with IPOPT on the exact recursion.

    Args:
        problem: the problem (learning rate, and optionally batch size with a sample
            budget, and momentum as controls).
        initial: starting parameters by control name (default: a safe schedule).
        options: a :class:`CasadiOptions` or a mapping of its fields (``max_iter``, ``tol``,
            ``hessian``, ``max_wall_time``, ``linear_solver``).

    Returns:
        The :class:`~schedopt.solution.Solution`. Its final loss is evaluated by the
        JAX recursion (:func:`schedopt.dynamics.recursion.final_loss`), like every
        solver's. When IPOPT stops without converging, the parameters are those of the
        best iterate it visited.
    """
    from schedopt.dynamics.recursion import final_loss

    clock = time.perf_counter()
    opts = _checked(problem, options)
    bound = check_bounds(problem)
    grids = control_grids(problem)
    start = initial_parameters(problem, grids, initial)
    nlp = build_nlp(problem, grids)
    solver, callback = _ipopt_solver(nlp, opts)
    build_time = time.perf_counter() - clock
    lbg, ubg = nlp.bounds_g
    result = solver(x0=nlp.stack(start), lbx=nlp.lower, ubx=nlp.upper, lbg=lbg, ubg=ubg)
    stats = solver.stats()
    ipopt_status = str(stats.get("return_status", "unknown"))
    status = _status(ipopt_status)
    params, use_best = _kept_iterate(nlp, result, callback, status)
    model = problem.model
    lr, m, beta = _per_step(problem, nlp, params)
    loss = float(final_loss(model, lr, batch_size=m, momentum=beta))
    if not math.isfinite(loss):
        status = Status.DIVERGED
    objective = math.log(loss - model.residual) if loss - model.residual > 0 else -math.inf
    solution = Solution(
        problem=problem,
        solver="casadi",
        status=status,
        final_loss=loss,
        parameters=params,
        grids=grids,
        iterations=int(stats.get("iter_count", 0)),
        wall_time=time.perf_counter() - clock,
        message=f"IPOPT: {ipopt_status}",
        info={
            "ipopt_status": ipopt_status,
            "objective": objective,
            "hessian": opts.hessian,
            "build_time": build_time,
            "n_eval_f": int(stats.get("n_call_nlp_f", 0)),
            "n_eval_grad_f": int(stats.get("n_call_nlp_grad_f", 0)),
            "best_iterate": bool(use_best),
        },
    )
    return with_stability(solution, bound)
