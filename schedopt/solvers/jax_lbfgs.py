r"""Solver ``jax``: reduced gradient through the JAX dynamics, bounded L-BFGS.

The control parameters (block or knot values of every control) are mapped to
per-step values by the grids' fixed interpolation, run through the exact
recursion (:mod:`schedopt.dynamics.recursion`) and differentiated with
``jax.value_and_grad``; SciPy's L-BFGS-B handles the box bounds. The objective
is :math:`\log(L_T - R_N)` (the loss spans many decades; the log makes the
problem scale-free and the residual is a constant).

Problem numbers (spectrum, noise, interpolation tables) are traced arguments,
so a new problem with the same shapes does not recompile. :func:`solve_jax_many`
solves several problems in one vectorised call: problems with the same horizon
and parameter count are stacked (spectra padded with zero modes, which do not
move) and their objectives summed, which keeps them independent because the sum
is separable. The JAX code has no device-specific parts: on a GPU it runs there.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.optimize

from schedopt._jax import jax
from schedopt.dynamics.recursion import final_loss, final_loss_jax
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers._common import check_bounds, control_grids, initial_parameters, lower_upper

__all__ = ["DEFAULT_OPTIONS", "solve_jax", "solve_jax_many"]

DEFAULT_OPTIONS = {
    "max_iter": 3000,
    "ftol": 1e-14,  # relative change of the log objective
    "gtol": 1e-9,  # projected gradient of the log objective (in scaled units)
    "pgtol_converged": 1e-6,  # accepted as converged when L-BFGS-B stops on its line search
    "memory": 30,
    # Start from a few Pontryagin sweeps projected on the grid (learning-rate-only
    # problems): cuts L-BFGS iterations several-fold. "none" starts from half the cap.
    "warm_start": "pontryagin",
    "warm_sweeps": 30,
}
_CONTROL_ORDER = ("learning_rate", "batch_size", "momentum")


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ProblemError(
            f"unknown option(s) for solver 'jax': {', '.join(sorted(unknown))} "
            f"(allowed: {', '.join(DEFAULT_OPTIONS)})",
            field="options",
        )
    opts = {**DEFAULT_OPTIONS, **options}
    if opts["warm_start"] not in ("pontryagin", "none"):
        raise ProblemError(
            f"option `warm_start` must be 'pontryagin' or 'none', got {opts['warm_start']!r}",
            field="warm_start",
        )
    return opts


def _warm_start(problem: Problem, opts) -> dict[str, np.ndarray] | None:
    """Per-step Pontryagin optimum projected on the grid, for learning-rate-only problems."""
    if opts["warm_start"] != "pontryagin":
        return None
    if set(problem.controls) != {"learning_rate"} or problem.training.momentum > 0:
        return None
    from schedopt.solvers.pontryagin import solve_pontryagin

    sol = solve_pontryagin(problem, options={"max_iter": opts["warm_sweeps"], "rtol": 1e-9})
    return dict(sol.parameters)


def _layout(problem: Problem, grids) -> tuple[tuple[str, int], ...]:
    if problem.sample_budget is not None:
        raise ProblemError(
            "solver 'jax' does not handle a sample budget; use the joint batch-size solver",
            field="sample_budget",
        )
    return tuple((name, grids[name].n_params) for name in _CONTROL_ORDER if name in grids)


def _tables(problem: Problem, grids, horizon: int, n_modes: int) -> dict[str, Any]:
    """Traced arrays describing one problem (spectrum padded with zero modes to ``n_modes``)."""
    pad = n_modes - problem.model.n_modes
    tables = {
        "lam": np.pad(problem.model.eigenvalues, (0, pad)),
        "c0": np.pad(problem.model.initial_error, (0, pad)),
        "noise": np.float64(problem.model.effective_noise),
        "batch": np.full(horizon, problem.training.batch_size),
        "momentum": np.full(horizon, problem.training.momentum),
        "scale": {},
        "interp": {},
    }
    for name, grid in grids.items():
        it = grid.interpolation()
        tables["interp"][name] = (it.index, it.weight)
        tables["scale"][name] = np.float64(problem.controls[name].max)
    return tables


def _per_step(x, tables, layout):
    """Per-step (learning rate, batch size, momentum) from the scaled parameter vector."""
    out = {"batch_size": tables["batch"], "momentum": tables["momentum"]}
    offset = 0
    for name, size in layout:
        values = x[offset : offset + size] * tables["scale"][name]
        offset += size
        index, weight = tables["interp"][name]
        nxt = jnp.minimum(index + 1, size - 1)
        out[name] = (1.0 - weight) * values[index] + weight * values[nxt]
    return out


def _log_loss(x, tables, layout, with_momentum):
    u = _per_step(x, tables, layout)
    beta = u["momentum"] if with_momentum else None
    loss = final_loss_jax(
        tables["lam"], tables["c0"], tables["noise"], u["learning_rate"], u["batch_size"], beta
    )
    return jnp.log(loss)


@partial(jax.jit, static_argnames=("layout", "with_momentum"))
def _value_and_grad_many(x, tables, layout, with_momentum):
    """Sum of log losses of stacked problems and its gradient (rows of ``x`` are problems)."""

    def one(x_, tables_):
        return _log_loss(x_, tables_, layout, with_momentum)

    values, grads = jax.vmap(jax.value_and_grad(one))(x, tables)
    return values, grads


def _projected_gradient(x, g, lo, hi):
    return x - np.clip(x - g, lo, hi)


def _stack(trees):
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)


def _solve_group(problems: Sequence[Problem], initial, opts) -> list[Solution]:
    start = time.perf_counter()
    grids = [control_grids(p) for p in problems]
    layout = _layout(problems[0], grids[0])
    horizon = problems[0].horizon
    n_modes = max(p.model.n_modes for p in problems)
    with_momentum = "momentum" in grids[0] or any(p.training.momentum > 0 for p in problems)
    tables = _stack([_tables(p, g, horizon, n_modes) for p, g in zip(problems, grids, strict=True)])
    n_params = sum(size for _, size in layout)

    def scaled(p, g, values):
        return np.concatenate([values[name] / p.controls[name].max for name, _ in layout])

    x0, lo, hi = [], [], []
    for i, (p, g) in enumerate(zip(problems, grids, strict=True)):
        start_values = initial[i] if initial and initial[i] is not None else _warm_start(p, opts)
        x0.append(scaled(p, g, initial_parameters(p, g, start_values)))
        bounds = lower_upper(p, g)
        lo.append(scaled(p, g, {k: b[0] for k, b in bounds.items()}))
        hi.append(scaled(p, g, {k: b[1] for k, b in bounds.items()}))
    x0, lo, hi = (np.concatenate(a) for a in (x0, lo, hi))
    count = len(problems)
    evaluations = 0

    def fun(flat):
        nonlocal evaluations
        evaluations += 1
        values, grads = _value_and_grad_many(
            jnp.asarray(flat.reshape(count, n_params)), tables, layout, with_momentum
        )
        values, grads = np.asarray(values), np.asarray(grads)
        if not np.all(np.isfinite(values)):
            return np.inf, np.zeros_like(flat)
        return float(values.sum()), grads.reshape(-1)

    result = scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lo, hi, strict=True)),
        options={
            "maxiter": opts["max_iter"],
            "ftol": opts["ftol"],
            "gtol": opts["gtol"],
            "maxcor": opts["memory"],
            "maxfun": 10 * opts["max_iter"],
        },
    )
    wall = time.perf_counter() - start
    x = result.x.reshape(count, n_params)
    _, grads = fun(result.x)
    pg = np.abs(_projected_gradient(result.x, grads, lo, hi)).reshape(count, n_params).max(axis=1)

    solutions = []
    for i, (p, g) in enumerate(zip(problems, grids, strict=True)):
        params, offset = {}, 0
        for name, size in layout:
            params[name] = x[i, offset : offset + size] * p.controls[name].max
            offset += size
        per_step = {name: g[name].interpolation().expand(params[name]) for name in params}
        loss = final_loss(
            p.model,
            per_step.get("learning_rate"),
            batch_size=per_step.get("batch_size", p.training.batch_size),
            momentum=per_step.get("momentum", p.training.momentum) if with_momentum else None,
        )
        if not np.isfinite(loss):
            status = "diverged"
        elif result.nit >= opts["max_iter"]:
            status = "max_iterations"
        elif result.success or pg[i] <= opts["pgtol_converged"]:
            status = "converged"
        else:
            status = "failed"
        solutions.append(
            Solution(
                problem=p,
                solver="jax",
                status=status,
                final_loss=float(loss),
                parameters=params,
                grids=g,
                iterations=int(result.nit),
                wall_time=wall,
                message=str(result.message),
                info={
                    "projected_gradient": float(pg[i]),
                    "evaluations": evaluations,
                    "engine": "recursion",
                    "batched_with": count,
                },
            )
        )
    return solutions


def solve_jax(
    problem: Problem,
    *,
    initial: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Solution:
    """Solve one problem (see :func:`schedopt.solvers.solve`)."""
    return solve_jax_many([problem], initial=[initial] if initial else None, options=options)[0]


def solve_jax_many(
    problems: Sequence[Problem],
    *,
    initial: Sequence[Mapping[str, Any] | None] | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[Solution]:
    """Solve several problems; those with equal horizon and controls share one vectorised solve.

    Returns the solutions in the order of ``problems``.
    """
    opts = _options(options or {})
    problems = list(problems)
    if not problems:
        return []
    for p in problems:
        check_bounds(p)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(problems):
        g = control_grids(p)
        key = (p.horizon, _layout(p, g), p.training.momentum > 0)
        groups.setdefault(key, []).append(i)
    out: list[Solution | None] = [None] * len(problems)
    for indices in groups.values():
        init = [initial[i] for i in indices] if initial else None
        for i, sol in zip(indices, _solve_group([problems[i] for i in indices], init, opts), strict=True):
            out[i] = sol
    return out  # type: ignore[return-value]
