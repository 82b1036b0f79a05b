r"""The ``jax`` solver's driver: stacked problems, L-BFGS-B with restarts, the augmented Lagrangian of a sample budget."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.optimize

from schedopt.dynamics.recursion import final_loss
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers._common import (
    control_grids,
    initial_parameters,
    lower_upper,
)
from schedopt.solvers.jax._checks import _degeneracy_and_tie_break, _ode_final_loss
from schedopt.solvers.jax._objective import (
    _cap_fraction,
    _capped,
    _common_ode_grid,
    _knot_values,
    _layout,
    _log_loss_jit,
    _slices,
    _stack,
    _tables,
    _value_and_grad_many,
)
from schedopt.solvers.jax._options import _compression
from schedopt.solvers.jax._warm import _warm_start
from schedopt.status import Status


def _projected_gradient(x, g, lo, hi):
    return x - np.clip(x - g, lo, hi)


def _lbfgsb(fun, x0, lo, hi, opts, max_iter):
    """SciPy's L-BFGS-B on ``fun`` shifted by its value at ``x0``.

    L-BFGS-B stops when an iteration decreases ``f`` by less than ``ftol * max(|f|, 1)``.
    On the shifted log loss ``|f|`` stays below 1 unless the solve gains more than a
    factor ``e`` of loss, so ``ftol`` is the relative decrease of the loss per iteration
    at which the solve stops, whatever the loss level (``log L`` itself would scale it
    by ``|log L|``). The shift does not change the gradient.
    """
    f0, _ = fun(x0)
    shift = float(f0) if np.isfinite(f0) else 0.0

    def shifted(x):
        value, grad = fun(x)
        return value - shift, grad

    return scipy.optimize.minimize(
        shifted,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lo, hi, strict=True)),
        options={
            "maxiter": max_iter,
            "ftol": opts["ftol"],
            "gtol": opts["gtol"],
            "maxcor": opts["memory"],
            "maxfun": 10 * max_iter,
        },
    )


def _stalled(result, fun, x, lo, hi, opts) -> bool:
    """An ``ftol`` stop (relative reduction) with the projected gradient above ``restart_pgtol``."""
    if "REDUCTION" not in str(result.message).upper():
        return False
    _, grad = fun(x)  # cached: L-BFGS-B's last evaluation
    return float(np.abs(_projected_gradient(x, grad, lo, hi)).max()) > opts["restart_pgtol"]


def _solve_group(
    problems: Sequence[Problem],
    initial,
    opts,
    *,
    pinned: str | None = None,
    engine: str = "recursion",
    full_spectrum: bool = False,
) -> list[Solution]:
    """Solve stacked problems; ``pinned`` names a control held at its initial values.

    The objective runs on the compressed spectrum of option ``modes`` unless ``full_spectrum``
    (a polish, :func:`_polished`); the recursion check of an ODE-engine result may use it either way.
    """
    from schedopt.solvers.budget import budget_weights, check_budget, project_budget

    start = time.perf_counter()
    grids = [control_grids(p) for p in problems]
    layout = _layout(problems[0], grids[0])
    slices = _slices(layout)
    horizon = problems[0].horizon
    spectra = [_compression(p, opts) for p in problems]  # compressed spectra, for the solve and checks
    compressed = [None] * len(problems) if full_spectrum else spectra
    n_modes = max(
        p.model.n_modes if c is None else c.n_modes for p, c in zip(problems, compressed, strict=True)
    )
    with_momentum = "momentum" in grids[0] or any(p.training.momentum > 0 for p in problems)
    capped = _capped(problems[0], opts)
    budgeted = problems[0].sample_budget is not None
    tables = [
        _tables(p, g, horizon, n_modes, capped, opts, engine, c)
        for p, g, c in zip(problems, grids, compressed, strict=True)
    ]
    if engine == "ode":
        _common_ode_grid(tables)
    parameterisation = grids[0]["learning_rate"].parameterisation if engine == "ode" else None
    stacked = _stack(tables)
    n_params = sum(size for _, size in layout)
    count = len(problems)

    def scaled(i, values):
        units = tables[i]["scale"]
        return np.concatenate([np.asarray(values[name], float) / units[name] for name, _ in layout])

    x0, lo, hi, weights, warm_sweeps = [], [], [], [], []
    for i, (p, g) in enumerate(zip(problems, grids, strict=True)):
        start_values, sweeps = None, 0
        if initial and initial[i] is not None:
            start_values = dict(initial[i])
        elif engine == "recursion":  # the sweeps run the recursion: too slow where the ODE is chosen
            start_values, sweeps = _warm_start(p, opts, compressed[i])
        warm_sweeps.append(sweeps)
        params = initial_parameters(p, g, start_values)
        bounds = lower_upper(p, g)
        lo.append(scaled(i, {k: b[0] for k, b in bounds.items()}))
        hi.append(scaled(i, {k: b[1] for k, b in bounds.items()}))
        row = scaled(i, params)
        if capped:  # learning-rate parameters are fractions of the momentum-dependent cap
            frac = _cap_fraction(row, tables[i], slices)
            row[slices["learning_rate"]] /= np.maximum(frac, 1e-300)
        if budgeted:
            budget = check_budget(p)
            spec = p.controls["batch_size"]
            a = budget_weights(g["batch_size"])
            unit = tables[i]["scale"]["batch_size"]
            row[slices["batch_size"]] = (
                project_budget(row[slices["batch_size"]] * unit, a, budget, spec.min, spec.max) / unit
            )
            w = np.zeros(n_params)
            w[slices["batch_size"]] = a * unit / budget
            weights.append(w)
        x0.append(np.clip(row, lo[-1], hi[-1]))
        if pinned is not None:
            lo[-1][slices[pinned]] = hi[-1][slices[pinned]] = x0[-1][slices[pinned]]
    x0, lo, hi = (np.concatenate(a) for a in (x0, lo, hi))
    weights = np.stack(weights) if budgeted else np.zeros((count, n_params))
    multiplier = np.zeros(count)
    penalty = float(opts["al_penalty"]) if budgeted else 0.0
    evaluations = 0
    recent: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # the last evaluations (x -> values, grads)

    def violation(flat):
        return (weights * flat.reshape(count, n_params)).sum(axis=1) - 1.0 if budgeted else np.zeros(count)

    def evaluate(flat):
        """Per-problem log losses and gradients; L-BFGS-B's final point is usually cached."""
        nonlocal evaluations
        key = flat.tobytes()
        if key not in recent:
            evaluations += 1
            values, grads = _value_and_grad_many(
                jnp.asarray(flat.reshape(count, n_params)),
                stacked,
                layout,
                with_momentum,
                capped,
                engine,
                parameterisation,
            )
            if len(recent) >= 4:
                recent.pop(next(iter(recent)))
            recent[key] = (np.asarray(values), np.asarray(grads))
        return recent[key][0], recent[key][1].copy()

    def fun(flat):
        values, grads = evaluate(flat)
        if not np.all(np.isfinite(values)) or not np.all(np.isfinite(grads)):
            return np.inf, np.zeros_like(flat)
        if budgeted:
            c = violation(flat)
            values = values + multiplier * c + 0.5 * penalty * c * c
            grads += (multiplier + penalty * c)[:, None] * weights
        return float(values.sum()), grads.reshape(-1)

    x, iterations, outer, messages = x0, 0, 0, []
    result = None
    previous = np.inf
    inner_opts = opts
    if budgeted:
        # start from the least-squares multiplier of the first-order conditions at x0
        saved, penalty = penalty, 0.0
        _, g0 = fun(x0)
        penalty = saved
        g0 = g0.reshape(count, n_params)
        multiplier = -(g0 * weights).sum(axis=1) / (weights * weights).sum(axis=1)
        inner_opts = {**opts, "ftol": max(opts["ftol"], opts["al_ftol"])}
    restarts = 0
    while True:
        result = _lbfgsb(fun, x, lo, hi, inner_opts, max(1, opts["max_iter"] - iterations))
        x = result.x
        iterations += int(result.nit)
        outer += 1
        messages.append(str(result.message))
        if not budgeted:
            if _stalled(result, fun, x, lo, hi, opts) and restarts < opts["max_restarts"]:
                if iterations < opts["max_iter"]:
                    restarts += 1
                    continue
            break
        c = violation(x)
        worst = float(np.abs(c).max())
        if worst <= opts["budget_rtol"] or outer >= opts["al_max_outer"] or iterations >= opts["max_iter"]:
            break
        multiplier = multiplier + penalty * c
        if worst > 0.25 * previous:
            penalty *= 10.0
        previous = worst
    al_violation = np.abs(violation(x))
    x = x.reshape(count, n_params).copy()
    if budgeted:  # exact projection onto the budget
        for i, (p, g) in enumerate(zip(problems, grids, strict=True)):
            spec = p.controls["batch_size"]
            unit = tables[i]["scale"]["batch_size"]
            x[i, slices["batch_size"]] = (
                project_budget(
                    x[i, slices["batch_size"]] * unit,
                    budget_weights(g["batch_size"]),
                    float(p.sample_budget),
                    spec.min,
                    spec.max,
                )
                / unit
            )
            x[i] = np.clip(x[i], lo.reshape(count, -1)[i], hi.reshape(count, -1)[i])
    _, grads = fun(x.reshape(-1))  # gradient of the Lagrangian under a budget
    log_losses, _ = evaluate(x.reshape(-1))  # cached: no second evaluation
    pg = np.abs(_projected_gradient(x.reshape(-1), grads, lo, hi)).reshape(count, n_params).max(axis=1)
    wall = time.perf_counter() - start

    solutions = []
    for i, (p, g) in enumerate(zip(problems, grids, strict=True)):
        knots = _knot_values(x[i], tables[i], layout, capped, xp=np)
        params = {name: np.asarray(knots[name], dtype=np.float64) for name, _ in layout}
        per_step = {name: g[name].interpolation().expand(params[name]) for name in params}
        info: dict[str, Any] = {
            "projected_gradient": float(pg[i]),
            "evaluations": evaluations,
            "engine": engine,
            "batched_with": count,
            "warm_start_sweeps": warm_sweeps[i],
            "restarts": restarts,
        }
        kept = float(np.exp(log_losses[i]))
        if compressed[i] is not None:
            info["compression"] = compressed[i].describe()
        if engine == "ode":
            full_kept = kept
            if compressed[i] is not None:  # the full spectrum's ODE on the same grid
                full = _tables(p, g, horizon, p.model.n_modes, capped, opts, engine)
                full["ts"] = tables[i]["ts"]
                full_kept = float(
                    np.exp(_log_loss_jit(jnp.asarray(x[i]), full, layout, engine, parameterisation))
                )
            loss = _ode_final_loss(p, per_step["learning_rate"], full_kept, opts, info, spectra[i])
            checked = full_kept + p.model.residual
        else:
            loss = final_loss(
                p.model,
                per_step.get("learning_rate"),
                batch_size=per_step.get("batch_size", p.training.batch_size),
                momentum=per_step.get("momentum", p.training.momentum) if with_momentum else None,
            )
            checked = loss
        if compressed[i] is not None:
            surrogate = kept + p.model.residual
            info["compression"].update(
                surrogate_final_loss=surrogate,
                full_final_loss=float(checked),
                relative_gap=float(surrogate / checked - 1.0) if np.isfinite(checked) else None,
                polished=False,
            )
        budget_ok = True
        if budgeted:
            total = float(per_step["batch_size"].sum())
            info["sample_budget"] = float(p.sample_budget)
            info["budget_violation"] = abs(total - p.sample_budget) / p.sample_budget
            info["al_violation"] = float(al_violation[i])
            info["al_outer_iterations"] = outer
            info["budget_multiplier"] = float(multiplier[i])
            budget_ok = al_violation[i] <= max(opts["budget_rtol"], 1e-9)
        if capped:
            info["momentum_cap"] = "joint"
            info["learning_rate_cap_fraction_min"] = float(np.min(tables[i]["cap_frac"]))
        if not np.isfinite(loss):
            status = Status.DIVERGED
        elif iterations >= opts["max_iter"]:
            status = Status.MAX_ITERATIONS
        elif (result.success or pg[i] <= opts["pgtol_converged"]) and budget_ok:
            status = Status.CONVERGED
        else:
            status = Status.FAILED
        solution = Solution(
            problem=p,
            solver="jax",
            status=status,
            final_loss=float(loss),
            parameters=params,
            grids=g,
            iterations=iterations,
            wall_time=wall,
            message="; ".join(dict.fromkeys(messages)),
            info=info,
        )
        if budgeted and np.isfinite(loss) and pinned is None:
            solution = _degeneracy_and_tie_break(solution, opts)
        solutions.append(solution)
    return solutions
