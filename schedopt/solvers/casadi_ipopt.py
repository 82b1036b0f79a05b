r"""IPOPT (through CasADi) on the exact discrete recursion, sized by the control parameters.

The NLP is *single shooting*: its decision variables are the control parameters
only (``K + 1`` knot values per piecewise-linear control, ``K`` per
piecewise-constant one), never the ``T`` per-step states. It is built in three
layers:

1. one optimiser step as a CasADi :class:`~casadi.Function`, made by calling the
   project's step function (:func:`~schedopt.dynamics.sgd.sgd_step`, or
   :func:`~schedopt.dynamics.momentum.momentum_step`) on CasADi symbols with the
   :data:`~schedopt.dynamics.ops.CASADI` namespace: the dynamics are written once;
2. ``T`` steps as a tower of nested ``fold`` calls of at most
   :data:`FOLD_BASE` steps each (:func:`fold_steps`), so the expression graph has
   ``O(FOLD_BASE \log T)`` nodes whatever the horizon, and reverse-mode
   derivatives recompute the states of a block instead of storing all ``T`` of
   them;
3. the per-step controls as a sparse linear map of the parameters,
   :math:`u = B x` with ``B`` the control grid's
   :meth:`~schedopt.controls.Interpolation.matrix`.

The objective is :math:`\log(L_T - R_N)`, the log of the final loss of the kept
modes: it is scale free (losses span 1 to 1e-12) and its optimum is that of
:math:`L_T`. A sample budget :math:`\sum_t m_t = D` (batch size as a control) is
a linear equality constraint.

Hessian: ``"limited-memory"`` (the default) is IPOPT's L-BFGS with a history of
:data:`LBFGS_HISTORY` pairs (IPOPT's default of 6 took 436 iterations instead of
78 at ``T = 10^3``; 30 took 148). ``"exact"`` is CasADi's forward-over-reverse
Hessian: about one gradient per parameter per iteration, and building it takes
longer the longer the horizon, so it only pays when steps per parameter are few.
Measured on ``a = b = 2``, ``N = 500``, batch 5, ``K = 100`` uniform linear blocks
(CPU seconds of a warm solve, 2-core machine):

============  ===============================  ===============================
``T``         limited-memory                   exact
============  ===============================  ===============================
``10^2``      540 iterations, 26 s             47 iterations, 18 s
``10^3``      78 iterations, 3.3 s             15 iterations, ~90 s
``10^4``      113 iterations, 36 s             not run (~100 gradients per iteration)
============  ===============================  ===============================

Both reach the final loss of an independent L-BFGS-B solve on the JAX recursion
to 1e-13 relative (3e-8 for limited-memory at ``T = 10^2``, where it stops at
IPOPT's acceptable level).

Only MUMPS is available as IPOPT's linear solver (the pip build of CasADi has
no HSL; asking for ``ma97`` crashes the process), so no other is accepted.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
    A. Wächter and L. T. Biegler, *On the implementation of an interior-point
    filter line-search algorithm for large-scale nonlinear programming*,
    Math. Program. 106 (2006).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from schedopt._jax import float64
from schedopt.controls import ControlGrid
from schedopt.dynamics.momentum import momentum_init, momentum_step
from schedopt.dynamics.ops import CASADI
from schedopt.dynamics.sgd import sgd_step
from schedopt.errors import ProblemError
from schedopt.problem import CONTROL_NAMES, Problem
from schedopt.solution import Solution
from schedopt.solvers._common import (
    check_bounds,
    control_grids,
    initial_parameters,
    lower_upper,
    merge_options,
)
from schedopt.status import Status

__all__ = [
    "DEFAULT_OPTIONS",
    "FOLD_BASE",
    "HESSIANS",
    "LBFGS_HISTORY",
    "LINEAR_SOLVERS",
    "CasadiNLP",
    "build_nlp",
    "fold_steps",
    "solve_casadi",
]

#: Hessian modes: IPOPT's L-BFGS approximation, or CasADi's exact Hessian.
HESSIANS = ("limited-memory", "exact")
#: IPOPT linear solvers that work in the pip build of CasADi.
LINEAR_SOLVERS = ("mumps",)
#: Steps per level of the nested fold (graph size ~ FOLD_BASE * log(T) call nodes).
FOLD_BASE = 10
#: L-BFGS history (IPOPT's ``limited_memory_max_history``; its default is 6).
LBFGS_HISTORY = 100

DEFAULT_OPTIONS: Mapping[str, Any] = {
    "max_iter": 3000,
    "tol": 1e-10,
    "hessian": "limited-memory",
    "max_wall_time": None,
    "linear_solver": "mumps",
}

#: Largest relative violation of the sample budget for an iterate to count as the best one.
_BUDGET_TOL = 1e-8

_CONVERGED = ("Solve_Succeeded", "Solved_To_Acceptable_Level")
_LIMITS = ("Maximum_Iterations_Exceeded", "Maximum_CpuTime_Exceeded", "Maximum_WallTime_Exceeded")


def _casadi():
    try:
        import casadi
    except ImportError:
        raise ProblemError(
            "`solver` = 'casadi' needs CasADi: install the casadi extra (pip install 'schedopt[casadi]')",
            field="solver",
        ) from None
    return casadi


# ---------------------------------------------------------------------------------------------
# options


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


# ---------------------------------------------------------------------------------------------
# the NLP


def fold_steps(step, steps: int, base: int = FOLD_BASE):
    """``steps`` applications of ``step`` as a tower of nested folds.

    Args:
        step: a CasADi Function ``(state, u_1, ..., u_r) -> state_next`` whose inputs
            after the first are ``1 x w`` rows of per-step controls (``w`` steps per call).
        steps: how many times to apply it.
        base: calls per level of the tower.

    Returns:
        A Function ``(state, U_1, ..., U_r) -> state_final`` with ``U_i`` of shape
        ``1 x (steps * w)``. Its graph has ``O(base log(steps))`` nodes.
    """
    ca = _casadi()
    if steps <= base:
        return step.fold(steps) if steps > 1 else step
    q, r = divmod(steps, base)
    tower = fold_steps(step.fold(base), q, base)
    if r == 0:
        return tower
    rest = step.fold(r) if r > 1 else step
    width = step.size2_in(1)
    n_rows = step.n_in() - 1
    state = ca.MX.sym("state", step.sparsity_in(0))
    rows = [ca.MX.sym(f"u{i}", 1, steps * width) for i in range(n_rows)]
    split = q * base * width
    mid = tower(state, *[u[:, :split] for u in rows])
    end = rest(mid, *[u[:, split:] for u in rows])
    return ca.Function(f"fold_{steps}x{width}", [state, *rows], [end])


@dataclass(frozen=True, eq=False)
class CasadiNLP:
    r"""The single-shooting NLP of a problem.

    Attributes:
        names: the controls being designed, in the order of the decision vector.
        sizes: number of parameters of each control.
        grids: the control grid of each control.
        step: one optimiser step ``(state, lr, m[, beta]) -> state_next``.
        rollout: ``T`` steps ``(state0, lr_row, m_row[, beta_row]) -> state_T``.
        loss: ``x -> L_T - R_N`` (final loss of the kept modes) as a Function of the
            stacked parameters.
        x: the decision vector (MX symbol).
        objective: :math:`\log(L_T - R_N)` (MX).
        constraints: MX column of constraints or an empty one: the relative
            violation of the sample budget, :math:`\sum_t m_t / D - 1`.
        bounds_g: ``(lbg, ubg)`` of the constraints.
        lower, upper: box bounds of ``x``.
        momentum: whether the heavy-ball recursion is used.
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    grids: Mapping[str, ControlGrid]
    step: Any
    rollout: Any
    loss: Any
    x: Any
    objective: Any
    constraints: Any
    bounds_g: tuple[np.ndarray, np.ndarray]
    lower: np.ndarray
    upper: np.ndarray
    momentum: bool

    def split(self, x) -> dict[str, np.ndarray]:
        """Parameters by control name from a stacked vector."""
        x = np.asarray(x, dtype=np.float64).ravel()
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes, strict=True):
            out[name] = x[start : start + size].copy()
            start += size
        return out

    def stack(self, parameters: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(parameters[n], dtype=np.float64) for n in self.names])


def _uses_momentum(problem: Problem) -> bool:
    return "momentum" in problem.controls or problem.training.momentum > 0.0


def build_nlp(problem: Problem, grids: Mapping[str, ControlGrid] | None = None) -> CasadiNLP:
    """Build the CasADi NLP of ``problem`` (no solve)."""
    ca = _casadi()
    grids = dict(grids) if grids is not None else control_grids(problem)
    model = problem.model
    horizon = problem.horizon
    n = model.n_modes
    lam = ca.DM(model.eigenvalues)
    noise = float(model.effective_noise)
    momentum = _uses_momentum(problem)

    lr_s, m_s, beta_s = ca.MX.sym("lr"), ca.MX.sym("m"), ca.MX.sym("beta")
    if momentum:
        state = ca.MX.sym("state", 3 * n)
        parts = (state[:n], state[n : 2 * n], state[2 * n :])
        nxt = momentum_step(parts, lr_s, m_s, beta_s, lam, noise, CASADI)
        step = ca.Function("momentum_step", [state, lr_s, m_s, beta_s], [ca.vertcat(*nxt)])
        state0 = ca.DM(np.concatenate(momentum_init(model.initial_error)))
    else:
        state = ca.MX.sym("c", n)
        step = ca.Function("sgd_step", [state, lr_s, m_s], [sgd_step(state, lr_s, m_s, lam, noise, CASADI)])
        state0 = ca.DM(model.initial_error)
    rollout = fold_steps(step, horizon)

    names = tuple(name for name in CONTROL_NAMES if name in problem.controls)
    sizes = tuple(grids[name].n_params for name in names)
    x = ca.MX.sym("x", sum(sizes))
    rows, start = {}, 0
    for name, size in zip(names, sizes, strict=True):
        matrix = ca.DM(grids[name].interpolation().matrix().tocsc())
        rows[name] = ca.mtimes(matrix, x[start : start + size]).T
        start += size
    fixed = {"batch_size": problem.training.batch_size, "momentum": problem.training.momentum}
    for name, value in fixed.items():
        rows.setdefault(name, ca.DM.ones(1, horizon) * float(value))
    args = [rows["learning_rate"], rows["batch_size"]] + ([rows["momentum"]] if momentum else [])
    final = rollout(state0, *args)
    kept = ca.dot(lam, final[:n])
    loss = ca.Function("final_loss", [x], [kept], ["x"], ["loss"])

    constraints = ca.MX(0, 1)
    lbg = ubg = np.zeros(0)
    if problem.sample_budget is not None and "batch_size" in problem.controls:
        # relative violation of the sample budget: sum_t m_t / D - 1 = 0
        constraints = ca.sum2(rows["batch_size"]) / float(problem.sample_budget) - 1.0
        lbg = ubg = np.zeros(1)

    bounds = lower_upper(problem, grids)
    return CasadiNLP(
        names=names,
        sizes=sizes,
        grids=grids,
        step=step,
        rollout=rollout,
        loss=loss,
        x=x,
        objective=ca.log(kept),
        constraints=constraints,
        bounds_g=(lbg, ubg),
        lower=np.concatenate([bounds[name][0] for name in names]),
        upper=np.concatenate([bounds[name][1] for name in names]),
        momentum=momentum,
    )


# ---------------------------------------------------------------------------------------------
# best iterate


def _best_iterate_callback(nx: int, ng: int, budget_tol: float):
    """An IPOPT iteration callback that keeps the iterate with the lowest objective.

    Iterates that violate the (linear) constraints by more than ``budget_tol`` are skipped.
    """
    ca = _casadi()

    class BestIterate(ca.Callback):
        def __init__(self):
            ca.Callback.__init__(self)
            self.best_f = math.inf
            self.best_x: np.ndarray | None = None
            self.count = 0
            self.construct("best_iterate", {})

        def get_n_in(self):
            return ca.nlpsol_n_out()

        def get_n_out(self):
            return 1

        def get_name_in(self, i):
            return ca.nlpsol_out(i)

        def get_name_out(self, i):
            return "ret"

        def get_sparsity_in(self, i):
            name = ca.nlpsol_out(i)
            if name == "f":
                return ca.Sparsity.scalar()
            if name in ("x", "lam_x"):
                return ca.Sparsity.dense(nx)
            if name in ("g", "lam_g"):
                return ca.Sparsity.dense(ng)
            return ca.Sparsity(0, 0)

        def eval(self, arg):
            self.count += 1
            f = float(arg[ca.nlpsol_out().index("f")])
            g = np.asarray(arg[ca.nlpsol_out().index("g")], dtype=np.float64).ravel()
            if math.isfinite(f) and f < self.best_f and (g.size == 0 or np.all(np.abs(g) <= budget_tol)):
                self.best_f = f
                self.best_x = np.asarray(arg[ca.nlpsol_out().index("x")], dtype=np.float64).ravel().copy()
            return [0]

    return BestIterate()


# ---------------------------------------------------------------------------------------------
# the solver


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


@float64
def solve_casadi(
    problem: Problem,
    *,
    initial: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Solution:
    """Minimise the final loss of ``problem`` with IPOPT on the exact recursion.

    Args:
        problem: the problem (learning rate, and optionally batch size with a sample
            budget, and momentum as controls).
        initial: starting parameters by control name (default: a safe schedule).
        options: ``max_iter`` (3000), ``tol`` (1e-10, IPOPT's tolerance on the log
            objective), ``hessian`` (``"limited-memory"`` or ``"exact"``),
            ``max_wall_time`` (seconds, ``None``), ``linear_solver`` (only ``"mumps"``).

    Returns:
        The :class:`~schedopt.solution.Solution`. Its final loss is evaluated by the
        JAX recursion (:func:`schedopt.dynamics.recursion.final_loss`), like every
        solver's. When IPOPT stops without converging, the parameters are those of the
        best iterate it visited.
    """
    from schedopt.dynamics.recursion import final_loss

    clock = time.perf_counter()
    check_bounds(problem)
    opts = _options(options)
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
    grids = control_grids(problem)
    start = initial_parameters(problem, grids, initial)
    nlp = build_nlp(problem, grids)
    x0 = nlp.stack(start)

    ca = _casadi()
    ng = int(nlp.constraints.numel())
    lbg, ubg = nlp.bounds_g
    callback = _best_iterate_callback(x0.size, ng, _BUDGET_TOL)
    solver = ca.nlpsol(
        "schedopt_casadi",
        "ipopt",
        {"x": nlp.x, "f": nlp.objective, "g": nlp.constraints},
        _ipopt_options(opts, callback),
    )
    build_time = time.perf_counter() - clock
    result = solver(x0=x0, lbx=nlp.lower, ubx=nlp.upper, lbg=lbg, ubg=ubg)
    stats = solver.stats()
    ipopt_status = str(stats.get("return_status", "unknown"))
    status = _status(ipopt_status)

    x_final = np.asarray(result["x"], dtype=np.float64).ravel()
    f_final = float(result["f"])
    use_best = (
        status is not Status.CONVERGED
        and callback.best_x is not None
        and (not math.isfinite(f_final) or callback.best_f < f_final)
    )
    # IPOPT relaxes the bounds by ~1e-8 (bound_relax_factor): clip back into the box
    x_best = np.clip(callback.best_x if use_best else x_final, nlp.lower, nlp.upper)
    params = nlp.split(x_best)
    lr, m, beta = _per_step(problem, nlp, params)
    loss = float(final_loss(model, lr, batch_size=m, momentum=beta))
    if not math.isfinite(loss):
        status = Status.DIVERGED
    objective = math.log(loss - model.residual) if loss - model.residual > 0 else -math.inf
    return Solution(
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
            "hessian": opts["hessian"],
            "build_time": build_time,
            "n_eval_f": int(stats.get("n_call_nlp_f", 0)),
            "n_eval_grad_f": int(stats.get("n_call_nlp_grad_f", 0)),
            "best_iterate": bool(use_best),
        },
    )
