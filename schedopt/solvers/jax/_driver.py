r"""The ``jax`` solver's driver: stacked problems, L-BFGS-B with restarts, the augmented Lagrangian of a sample budget."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.optimize

from schedopt._jax import jax
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers import _lockstep as lockstep
from schedopt.solvers._common import (
    control_grids,
    initial_parameters,
    lower_upper,
)
from schedopt.solvers._lockstep import final_loss  # vectorised over a batch's solves inside design_many
from schedopt.solvers.jax._checks import _degeneracy_and_tie_break, _ode_final_loss
from schedopt.solvers.jax._newton import second_order
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
    row_state_entries,
)
from schedopt.solvers.jax._options import JaxOptions, _compression
from schedopt.solvers.jax._warm import _warm_start
from schedopt.status import Status

#: The log loss L-BFGS-B is given where the loss or its gradient overflowed (a learning rate
#: above the stability threshold for many steps): above the log of every finite float (709.8),
#: with a zero gradient, so that the line search backtracks; on ``inf`` SciPy's L-BFGS-B stops
#: at once and reports convergence at the starting point.
OVERFLOW_LOG_LOSS = 1e3


def _projected_gradient(x, g, lo, hi):
    return x - np.clip(x - g, lo, hi)


def _lbfgsb(fun, x0, lo, hi, opts: JaxOptions, max_iter):
    """SciPy's L-BFGS-B on ``fun`` shifted by its value at ``x0``.

    L-BFGS-B stops when an iteration decreases ``f`` by less than ``ftol * max(|f|, 1)``.
    On the shifted log loss ``|f|`` stays below 1 unless the solve gains more than a
    factor ``e`` of loss, so ``ftol`` is the relative decrease of the loss per iteration
    at which the solve stops, whatever the loss level (``log L`` itself would scale it
    by ``|log L|``). The shift does not change the gradient.
    """
    from schedopt._progress import listening, report

    f0, _ = fun(x0)
    shift = float(f0) if np.isfinite(f0) else 0.0
    count = [0]

    def shifted(x):
        value, grad = fun(x)
        return value - shift, grad

    def progress(intermediate_result):
        count[0] += 1
        report("solve", count[0], float(intermediate_result.fun) + shift)  # log L_T

    # a callback and bounds given as pairs cost SciPy 10 us each per evaluation (of ~50 us): the
    # callback only when a progress display listens, the bounds as arrays (the same floats)
    return scipy.optimize.minimize(
        shifted,
        x0,
        jac=True,
        method="L-BFGS-B",
        callback=progress if listening() else None,
        bounds=scipy.optimize.Bounds(lo, hi),
        options={
            "maxiter": max_iter,
            "ftol": opts.ftol,
            "gtol": opts.gtol,
            # full memory up to 100 parameters: 30 pairs took 2.3x the iterations on the authors'
            # problem at T = 1e4 (benchmarks/README.md); more pairs than parameters add nothing
            "maxcor": min(opts.memory, x0.size),
            "maxfun": 10 * max_iter,
        },
    )


def _stalled(result, fun, x, lo, hi, opts: JaxOptions) -> bool:
    """An ``ftol`` stop (relative reduction) with the projected gradient above ``restart_pgtol``."""
    if "REDUCTION" not in str(result.message).upper():
        return False
    _, grad = fun(x)  # cached: L-BFGS-B's last evaluation
    return float(np.abs(_projected_gradient(x, grad, lo, hi)).max()) > opts.restart_pgtol


@dataclasses.dataclass(eq=False)
class _Group:
    """Problems of one shape, stacked, and what the objective needs of them."""

    problems: Sequence[Problem]
    grids: list
    layout: tuple
    slices: dict
    spectra: list  # compressed spectra (option ``modes``), for the solve and the checks
    compressed: list  # the spectra the objective runs on (``None``: the full one)
    with_momentum: bool
    capped: bool
    budgeted: bool
    tables: list
    stacked: Any
    engine: str
    parameterisation: Any
    n_params: int

    @property
    def count(self) -> int:
        return len(self.problems)

    @property
    def row_modes(self) -> int | None:
        """Per-mode state entries of one problem's recursion (the lockstep's pieces on a CPU), or
        ``None`` for the ODE engine (one vectorised call)."""
        if self.engine != "recursion":
            return None
        return row_state_entries(self.stacked, self.with_momentum)

    def scaled(self, i: int, values) -> np.ndarray:
        """Problem ``i``'s parameters ``{name: values}`` as one vector in the optimiser's units."""
        units = self.tables[i]["scale"]
        return np.concatenate([np.asarray(values[name], float) / units[name] for name, _ in self.layout])


def _group(problems: Sequence[Problem], opts: JaxOptions, engine: str, full_spectrum: bool) -> _Group:
    grids = [control_grids(p) for p in problems]
    layout = _layout(problems[0], grids[0])
    horizon = problems[0].horizon
    spectra = [_compression(p, opts) for p in problems]
    compressed = [None] * len(problems) if full_spectrum else spectra
    n_modes = max(
        p.model.n_modes if c is None else c.n_modes for p, c in zip(problems, compressed, strict=True)
    )
    with_momentum = "momentum" in grids[0] or any(p.training.momentum > 0 for p in problems)
    capped = _capped(problems[0], opts)
    tables = [
        _tables(p, g, horizon, n_modes, capped, opts, engine, c)
        for p, g, c in zip(problems, grids, compressed, strict=True)
    ]
    if engine == "ode":
        _common_ode_grid(tables)
    return _Group(
        problems=problems,
        grids=grids,
        layout=layout,
        slices=_slices(layout),
        spectra=spectra,
        compressed=compressed,
        with_momentum=with_momentum,
        capped=capped,
        budgeted=problems[0].sample_budget is not None,
        tables=tables,
        stacked=_stack(tables),
        engine=engine,
        parameterisation=grids[0]["learning_rate"].parameterisation if engine == "ode" else None,
        n_params=sum(size for _, size in layout),
    )


def _starts(group: _Group, initial, opts: JaxOptions, pinned: str | None):
    """Starting point, bounds and budget weights of every problem (optimiser units), and warm-start sweeps."""
    from schedopt.solvers.budget import budget_weights, check_budget, project_budget

    slices = group.slices
    x0, lo, hi, weights, warm_sweeps = [], [], [], [], []
    for i, (p, g) in enumerate(zip(group.problems, group.grids, strict=True)):
        start_values, sweeps = None, 0
        if initial and initial[i] is not None:
            start_values = dict(initial[i])
        elif group.engine == "recursion":  # the sweeps run the recursion: too slow where the ODE is chosen
            start_values, sweeps = _warm_start(p, opts, group.compressed[i])
        warm_sweeps.append(sweeps)
        params = initial_parameters(p, g, start_values)
        bounds = lower_upper(p, g)
        lo.append(group.scaled(i, {k: b[0] for k, b in bounds.items()}))
        hi.append(group.scaled(i, {k: b[1] for k, b in bounds.items()}))
        row = group.scaled(i, params)
        if group.capped:  # learning-rate parameters are fractions of the momentum-dependent cap
            frac = _cap_fraction(row, group.tables[i], slices)
            row[slices["learning_rate"]] /= np.maximum(frac, 1e-300)
        if group.budgeted:
            budget = check_budget(p)
            spec = p.controls["batch_size"]
            a = budget_weights(g["batch_size"])
            unit = group.tables[i]["scale"]["batch_size"]
            row[slices["batch_size"]] = (
                project_budget(row[slices["batch_size"]] * unit, a, budget, spec.min, spec.max) / unit
            )
            w = np.zeros(group.n_params)
            w[slices["batch_size"]] = a * unit / budget
            weights.append(w)
        x0.append(np.clip(row, lo[-1], hi[-1]))
        if pinned is not None:
            lo[-1][slices[pinned]] = hi[-1][slices[pinned]] = x0[-1][slices[pinned]]
    x0, lo, hi = (np.concatenate(a) for a in (x0, lo, hi))
    weights = np.stack(weights) if group.budgeted else np.zeros((group.count, group.n_params))
    return x0, lo, hi, weights, warm_sweeps


class _Lagrangian:
    """The summed log losses of a group, plus the budget's augmented-Lagrangian terms.

    Evaluations are cached by point (L-BFGS-B's final point is usually evaluated again).
    """

    def __init__(self, group: _Group, weights: np.ndarray, penalty: float):
        self.group, self.weights, self.penalty = group, weights, penalty
        self.multiplier = np.zeros(group.count)
        self.evaluations = 0
        self._recent: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # the last evaluations

    def violation(self, flat) -> np.ndarray:
        group = self.group
        if not group.budgeted:
            return np.zeros(group.count)
        return (self.weights * flat.reshape(group.count, group.n_params)).sum(axis=1) - 1.0

    def evaluate(self, flat):
        """Per-problem log losses and gradients."""
        group = self.group
        key = flat.tobytes()
        if key not in self._recent:
            self.evaluations += 1
            values, grads = lockstep.call(  # batched with other solves inside design_many
                _value_and_grad_many,
                _value_and_grad_many,
                # a NumPy row: the lockstep stacks rows on the host (a device_put cost 33 us a call)
                (flat.reshape(group.count, group.n_params), group.stacked),
                (group.layout, group.with_momentum, group.capped, group.engine, group.parameterisation),
                stacked=True,
                modes=group.row_modes,
            )
            if len(self._recent) >= 4:
                self._recent.pop(next(iter(self._recent)))
            self._recent[key] = (np.asarray(values), np.asarray(grads))
        return self._recent[key][0], self._recent[key][1].copy()

    def __call__(self, flat):
        values, grads = self.evaluate(flat)
        bad = ~np.isfinite(values) | ~np.isfinite(grads).all(axis=1)
        if bad.any():  # overflow: a learning rate above the stability threshold for long
            values, grads = np.where(bad, OVERFLOW_LOG_LOSS, values), np.where(bad[:, None], 0.0, grads)
        if self.group.budgeted:
            c = self.violation(flat)
            values = values + self.multiplier * c + 0.5 * self.penalty * c * c
            grads += (self.multiplier + self.penalty * c)[:, None] * self.weights
        return float(values.sum()), grads.reshape(-1)


@dataclasses.dataclass(eq=False)
class _Run:
    """How the minimisation went (shared by the group's problems)."""

    result: Any
    iterations: int = 0
    outer: int = 0
    restarts: int = 0
    messages: list = dataclasses.field(default_factory=list)
    second_order: list | None = None  # per problem, :func:`~schedopt.solvers.jax._newton.second_order`


def _momentum_control(group: _Group) -> bool:
    return any(name == "momentum" for name, _ in group.layout)


def _minimise(fun: _Lagrangian, x0, lo, hi, opts: JaxOptions) -> tuple[np.ndarray, _Run]:
    """L-BFGS-B, restarted after a stall; under a budget, inside the augmented-Lagrangian outer loop."""
    budgeted = fun.group.budgeted
    x, run = x0, _Run(result=None)
    previous = np.inf
    inner_opts = opts
    if _momentum_control(fun.group):  # a long, nearly flat valley: near-full memory (see _newton.py)
        inner_opts = opts.replace(memory=max(opts.memory, min(opts.momentum_memory, x0.size)))
    if budgeted:
        # start from the least-squares multiplier of the first-order conditions at x0
        saved, fun.penalty = fun.penalty, 0.0
        _, g0 = fun(x0)
        fun.penalty = saved
        g0 = g0.reshape(fun.group.count, fun.group.n_params)
        fun.multiplier = -(g0 * fun.weights).sum(axis=1) / (fun.weights * fun.weights).sum(axis=1)
        inner_opts = inner_opts.replace(ftol=max(opts.ftol, opts.al_ftol))
    while True:
        run.result = _lbfgsb(fun, x, lo, hi, inner_opts, max(1, opts.max_iter - run.iterations))
        x = run.result.x
        run.iterations += int(run.result.nit)
        run.outer += 1
        run.messages.append(str(run.result.message))
        if not budgeted:
            if _stalled(run.result, fun, x, lo, hi, opts) and run.restarts < opts.max_restarts:
                if run.iterations < opts.max_iter:
                    run.restarts += 1
                    continue
            break
        c = fun.violation(x)
        worst = float(np.abs(c).max())
        if worst <= opts.budget_rtol or run.outer >= opts.al_max_outer or run.iterations >= opts.max_iter:
            break
        fun.multiplier = fun.multiplier + fun.penalty * c
        if worst > 0.25 * previous:
            fun.penalty *= 10.0
        previous = worst
    return x, run


def _project_on_budget(group: _Group, x: np.ndarray, lo, hi) -> None:
    """Project each row of ``x`` (optimiser units) exactly onto its problem's budget, in place."""
    from schedopt.solvers.budget import budget_weights, project_budget

    count, slices = group.count, group.slices
    for i, (p, g) in enumerate(zip(group.problems, group.grids, strict=True)):
        spec = p.controls["batch_size"]
        unit = group.tables[i]["scale"]["batch_size"]
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


def _second_order_message(report: dict) -> str:
    if report.get("reason"):
        return f"second-order check not passed: {report['reason']}"
    gain = report["newton_decrement"]
    gain = "undefined (negative curvature)" if gain is None else f"{gain:.3g}"
    verdict = "passed" if report["passed"] else "not passed"
    return (
        f"second-order check {verdict} after {report['newton_steps']} Newton step(s): predicted relative "
        f"loss gain {gain} (newton_rtol {report['newton_rtol']:g}), {report['flat_directions']} flat and "
        f"{report['negative_directions']} negative-curvature direction(s) of {report['free']} free"
    )


def _solution(
    group: _Group, i: int, x_i, log_loss: float, pg: float, run: _Run, fun: _Lagrangian, extra, opts
):
    """Problem ``i``'s result: parameters, final loss (checked), info and status."""
    p, g, layout = group.problems[i], group.grids[i], group.layout
    warm_sweeps, al_violation, wall = extra
    knots = _knot_values(x_i, group.tables[i], layout, group.capped, xp=np)
    params = {name: np.asarray(knots[name], dtype=np.float64) for name, _ in layout}
    per_step = {name: g[name].interpolation().expand(params[name]) for name in params}
    info: dict[str, Any] = {
        "projected_gradient": float(pg),
        "evaluations": fun.evaluations,
        "engine": group.engine,
        "batched_with": group.count,
        "warm_start_sweeps": warm_sweeps,
        "restarts": run.restarts,
    }
    kept = float(np.exp(log_loss))
    compressed = group.compressed[i]
    if compressed is not None:
        info["compression"] = compressed.describe()
    if group.engine == "ode":
        full_kept = kept
        if compressed is not None:  # the full spectrum's ODE on the same grid
            full = _tables(p, g, p.horizon, p.model.n_modes, group.capped, opts, group.engine)
            full["ts"] = group.tables[i]["ts"]
            full_kept = float(
                np.exp(_log_loss_jit(jax.device_put(x_i), full, layout, group.engine, group.parameterisation))
            )
        loss = _ode_final_loss(p, per_step["learning_rate"], full_kept, opts, info, group.spectra[i])
        checked = full_kept + p.model.residual
    else:
        loss = final_loss(
            p.model,
            per_step.get("learning_rate"),
            batch_size=per_step.get("batch_size", p.training.batch_size),
            momentum=per_step.get("momentum", p.training.momentum) if group.with_momentum else None,
        )
        checked = loss
    if compressed is not None:
        surrogate = kept + p.model.residual
        info["compression"].update(
            surrogate_final_loss=surrogate,
            full_final_loss=float(checked),
            relative_gap=float(surrogate / checked - 1.0) if np.isfinite(checked) else None,
            polished=False,
        )
    budget_ok = True
    if group.budgeted:
        total = float(per_step["batch_size"].sum())
        info["sample_budget"] = float(p.sample_budget)
        info["budget_violation"] = abs(total - p.sample_budget) / p.sample_budget
        info["al_violation"] = float(al_violation)
        info["al_outer_iterations"] = run.outer
        info["budget_multiplier"] = float(fun.multiplier[i])
        budget_ok = al_violation <= max(opts.budget_rtol, 1e-9)
    if group.capped:
        info["momentum_cap"] = "joint"
        info["learning_rate_cap_fraction_min"] = float(np.min(group.tables[i]["cap_frac"]))
    hessian = run.second_order[i] if run.second_order is not None else None
    messages = list(dict.fromkeys(run.messages))
    if hessian is not None:
        info["second_order"] = hessian
        messages.append(_second_order_message(hessian))
    if not np.isfinite(loss):
        status = Status.DIVERGED
    elif hessian is not None and hessian["passed"]:  # the reduced Hessian decides, however L-BFGS-B stopped
        status = Status.CONVERGED
    elif run.iterations >= opts.max_iter:
        status = Status.MAX_ITERATIONS
    elif hessian is None and (run.result.success or pg <= opts.pgtol_converged) and budget_ok:
        status = Status.CONVERGED
    else:
        status = Status.FAILED
    return Solution(
        problem=p,
        solver="jax",
        status=status,
        final_loss=float(loss),
        parameters=params,
        grids=g,
        iterations=run.iterations,
        wall_time=wall,
        message="; ".join(messages),
        info=info,
    )


def _solve_group(
    problems: Sequence[Problem],
    initial,
    opts: JaxOptions,
    *,
    pinned: str | None = None,
    engine: str = "recursion",
    full_spectrum: bool = False,
) -> list[Solution]:
    """Solve stacked problems; ``pinned`` names a control held at its initial values.

    The objective runs on the compressed spectrum of option ``modes`` unless ``full_spectrum``
    (a polish, :func:`_polished`); the recursion check of an ODE-engine result may use it either way.
    """
    start = time.perf_counter()
    group = _group(problems, opts, engine, full_spectrum)
    x0, lo, hi, weights, warm_sweeps = _starts(group, initial, opts, pinned)
    fun = _Lagrangian(group, weights, float(opts.al_penalty) if group.budgeted else 0.0)
    x, run = _minimise(fun, x0, lo, hi, opts)
    if (
        opts.second_order == "auto"
        and _momentum_control(group)
        and not group.budgeted
        and pinned is None
        and np.isfinite(fun.evaluate(x)[0]).all()  # not an overflow (which __call__ masks)
    ):
        x, run.second_order = second_order(fun, x, lo, hi, opts)
    al_violation = np.abs(fun.violation(x))
    x = x.reshape(group.count, group.n_params).copy()
    if group.budgeted:  # exact projection onto the budget
        _project_on_budget(group, x, lo, hi)
    _, grads = fun(x.reshape(-1))  # gradient of the Lagrangian under a budget
    log_losses, _ = fun.evaluate(x.reshape(-1))  # cached: no second evaluation
    pg = np.abs(_projected_gradient(x.reshape(-1), grads, lo, hi)).reshape(group.count, -1).max(axis=1)
    wall = time.perf_counter() - start
    solutions = []
    for i in range(group.count):
        extra = (warm_sweeps[i], al_violation[i], wall)
        solution = _solution(group, i, x[i], log_losses[i], pg[i], run, fun, extra, opts)
        if group.budgeted and np.isfinite(solution.final_loss) and pinned is None:
            solution = _degeneracy_and_tie_break(solution, opts)
        solutions.append(solution)
    return solutions
