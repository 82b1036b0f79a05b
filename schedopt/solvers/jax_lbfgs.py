r"""Solver ``jax``: reduced gradient through the JAX dynamics, bounded L-BFGS.

The control parameters (block or knot values of every control) are mapped to
per-step values by the grids' fixed interpolation, run through the exact
recursion (:mod:`schedopt.dynamics.recursion`) and differentiated with
``jax.value_and_grad``; SciPy's L-BFGS-B handles the box bounds. The objective
is :math:`\log(L_T - R_N)` (the loss spans many decades; the log makes the
problem scale-free and the residual is a constant).

**Preconditioning.** The optimiser's variable for knot :math:`j` is its value in units of
the control's cap times :math:`\sqrt{n_j/\max n}`, :math:`n_j` the number of steps the knot
moves (:func:`_preconditioner`): knots of narrow and wide blocks then have curvatures of
one order, which L-BFGS needs (the optimum is unchanged).

**Engines** (option ``engine``). ``"recursion"``: the exact recursion, :math:`O(TN)` per
evaluation. ``"ode"``: the continuous-time model (THEORY §2.4, :mod:`schedopt.dynamics.ode`)
with the learning rate as the grid's function of :math:`t`, on a fixed geometric grid of
~200-260 steps (:data:`ODE_GRID`): :math:`O(N)` per step, independent of :math:`T`.
Measured on the benchmark problem (N = 500, K = 100 linear blocks; value + gradient, warm):
recursion 4 ms / 40 ms / 0.41 s at T = 1e3 / 1e4 / 1e5, ODE 22-25 ms at every T (0.28-0.44 s
at N = 1e4); the ODE's final-loss gap to the recursion is 1.4e-4 / 6e-6 / 2e-7. The
recursion has the Pontryagin warm start (below), which the ODE cannot use, so ``"auto"``
(default) takes the recursion up to ``T * N = ode_min_work`` (1e8: T = 2e5 at N = 500) and
the ODE beyond, for learning-rate-only SGD problems (the ODE models neither momentum nor
a batch-size control). An ODE-engine solution reports ``info["ode_final_loss"]`` and, when
``T * N <= check_work`` (2e8, a few seconds), the exact recursion's loss of the schedule as
``final_loss`` (also ``info["recursion_final_loss"]``); otherwise ``final_loss`` is the
ODE's and ``info["recursion_check"]`` says it was not checked. The ODE engine starts from
half the cap.

**Mode compression** (option ``modes``). The modes are coupled only through the loss, so the
spectrum can be replaced by a quadrature of it: the 32 largest eigenvalues as they are plus a
96-node Gauss rule in :math:`\log\lambda` for the rest (:mod:`schedopt.dynamics.compression`,
final losses within ~5e-13 of the full spectrum's). ``"auto"`` (default) does that for
plain-SGD problems with more than ``2 * (compressed_exact + compressed_nodes)`` = 256 modes;
``"compressed"`` always (plain SGD only), ``"exact"`` never. The whole solve (warm-start sweeps,
L-BFGS-B, either engine) runs on the compressed spectrum; then the result is evaluated on the
full one (the recursion, or the ODE on the same grid), reported in ``info["compression"]``
(``surrogate_final_loss``, ``full_final_loss``, ``relative_gap``), and when the two differ by
more than ``compression_rtol`` (1e-9) L-BFGS-B continues on the full spectrum from there
(``polished``). ``final_loss`` is always the full spectrum's. Measured on the benchmark problem
(``benchmarks/solvers.py``, warm, ftol 1e-8 on the recursion and 1e-10 on the ODE): 0.21 s /
0.92 s / 13.1 s at T = 1e3 / 1e4 / 1e5 (N = 500; 0.21 / 1.96 / 27.2 s on all modes), 9.7 s at
T = 1e6 with N = 1e4 on the ODE (256 s on all modes). Past ``check_work`` the
ODE engine's recursion check runs on the compressed spectrum, so long horizons are checked too.

**Warm start** (recursion engine, ``warm_start = "pontryagin"``). Pontryagin sweeps of the
per-step learning rate from half the cap (:func:`~schedopt.solvers.pontryagin.sgd_sweep`)
until a sweep lowers the per-step loss by less than ``warm_rtol`` (1e-7) or
``warm_sweeps`` (200) have run, then the bounded least-squares fit to the grid. Measured on
the benchmark problem: 38 sweeps land 2.3e-7 above the grid's optimum at T = 1e4, 49 sweeps
1e-5 at T = 1e5. Running the sweeps further is *worse* for the grid: the per-step optimum
keeps descending (to 6e-4 below the grid's optimum at T = 1e4) into oscillations that no
K = 100 grid represents, and its fit lands 1e-5 away. ``info["warm_start_sweeps"]`` reports
the count.

**Stopping.** L-BFGS-B stops on ``ftol`` (relative loss decrease per iteration), ``gtol``
or ``max_iter``. An ``ftol`` stop whose projected gradient is still above ``restart_pgtol``
(1e-2) is a slow stretch, not an optimum: L-BFGS-B restarts from there with fresh memory
(at most ``max_restarts`` times; ``info["restarts"]``). With a loose ``ftol`` (1e-8) this
is what makes a start far from the optimum safe: from half the cap on the ODE engine at
T = 1e5 the first stop was 33 % above the optimum (projected gradient 0.83); with restarts
the solve ends 9.5e-6 above the ODE loss of a strict solve (ftol 1e-13: 1445 evaluations) after 487.

Problem numbers (spectrum, noise, interpolation tables) are traced arguments,
so a new problem with the same shapes does not recompile. :func:`solve_jax_many`
solves several problems in one vectorised call: problems with the same horizon
and parameter count are stacked (spectra padded with zero modes, which do not
move) and their objectives summed, which keeps them independent because the sum
is separable. The JAX code has no device-specific parts: on a GPU it runs there.

**Batch size under a sample budget** (:mod:`schedopt.solvers.budget`). Batch
parameters are scaled by the mean batch :math:`D/T` (not by their cap, which may
be :math:`D` itself). The budget :math:`\sum_t m_t = D` is a linear equality
:math:`c(x) = a^\top p / D - 1 = 0` on the batch parameters, enforced by an
augmented-Lagrangian outer loop around L-BFGS-B: minimise
:math:`\log L_T + \mu c + \frac\rho2 c^2` in the box (inner solves stop at a
relative change ``al_ftol`` of the objective), update :math:`\mu \leftarrow \mu + \rho c`
(:math:`\mu` starts at the least-squares multiplier of the first-order conditions,
:math:`\rho` at ``al_penalty``), raise :math:`\rho` tenfold when :math:`|c|` did
not shrink fourfold, until :math:`|c| \le` ``budget_rtol``. The result is then
projected exactly onto the budget within the box
(:func:`~schedopt.solvers.budget.project_budget`), so the returned schedule meets
the budget to rounding (``info["budget_violation"]``; ``info["al_violation"]`` is
the violation before the projection, which the status requires to be below
``max(budget_rtol, 1e-9)``). The solution reports the degeneracy of the optimum
(``info["degeneracy"]``, see :func:`~schedopt.solvers.budget.degeneracy`). When it
is flat (``flatness >= flat_ratio``) and the learning rate is not at its cap at
every step, the documented tie-break is tried: the tie-break point of
:func:`~schedopt.solvers.budget.tie_break_per_step` through the optimum (the
learning rate closest to its cap, the batch size absorbing the rest); its batch
sizes, fitted to the grid and projected on the budget, with the learning rate
re-optimised for them, replace the optimum if the loss is within
``tie_break_rtol`` (1e-4) of it; otherwise the curvature terms (or the grid)
break the tie and the optimum is kept. ``info["degeneracy"]["tie_break"]`` says
which, with the loss change.

**Momentum as a control** (heavy ball, optax semantics). The gradient is the
hand-written adjoint of :mod:`schedopt.dynamics.momentum_adjoint` (about twice
as fast as autodiff through the scan). The mean-square stability threshold of the
learning rate :math:`\eta_c(\beta)` (:mod:`schedopt.dynamics.stability`) depends
on :math:`\beta`, so with ``momentum_cap = "joint"`` (default) the learning-rate
knots are :math:`\eta_j = x_j\,\min(\eta_{\max}, s\,\eta_c(\beta(t_j)))` with
:math:`x_j \in [\eta_{\min}/\eta_{\max}, 1]`, :math:`s` = ``stability_margin`` and
:math:`\eta_c` interpolated in :math:`\log(1-\beta)` from
:data:`~schedopt.solvers._common.MOMENTUM_GRID_POINTS` exact values at the
smallest batch size: at every knot the (learning rate, momentum) pair the solver
can pick is stable as a constant setting, and :math:`\beta = \beta_{\min}` keeps the full
learning-rate range when :math:`\eta_{\max} \le s\,\eta_c(\beta_{\min})` (so the SGD
optimum is feasible when :math:`\beta_{\min} = 0` and the cap is at most 95 % of the
SGD threshold, as in the shipped problems at 90 %).
The learning-rate bounds are thus scaled by the stable fraction at the knot's
momentum. ``momentum_cap = "box"`` instead requires the whole box to be stable.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.optimize

from schedopt._jax import float64, jax
from schedopt.dynamics.compression import (
    EXACT_MODES,
    QUADRATURE_NODES,
    CompressedModes,
    auto_compress,
    compress_modes,
)
from schedopt.dynamics.momentum_adjoint import momentum_final_loss
from schedopt.dynamics.recursion import final_loss, final_loss_jax
from schedopt.errors import ProblemError
from schedopt.problem import Problem, Training
from schedopt.solution import Solution
from schedopt.solvers._common import (
    check_bounds,
    control_grids,
    initial_parameters,
    lower_upper,
    merge_options,
    momentum_cap_table,
)
from schedopt.solvers.budget import FLAT_RATIO
from schedopt.solvers.pontryagin import sweep_until

__all__ = ["DEFAULT_OPTIONS", "solve_jax", "solve_jax_many"]

DEFAULT_OPTIONS = {
    "max_iter": 3000,
    "ftol": 1e-13,  # relative decrease of the loss per iteration that ends the solve (see _lbfgsb)
    "gtol": 1e-9,  # projected gradient of the log objective (in scaled units)
    "pgtol_converged": 1e-6,  # accepted as converged when L-BFGS-B stops on its line search
    # An `ftol` stop with a projected gradient above this restarts L-BFGS-B (fresh memory) from
    # where it stopped: a slow stretch (a flat start) is not an optimum. Measured: ftol stops
    # 2e-7 from the optimum had 2e-4..3e-3; one 33 % above it (ftol 1e-8 from half the cap) 0.83.
    "restart_pgtol": 1e-2,
    "max_restarts": 50,
    "memory": 30,
    # Start from a few Pontryagin sweeps projected on the grid: cuts L-BFGS iterations
    # several-fold. With batch-size / momentum controls the sweeps design the learning
    # rate at the mean batch size and momentum at its lower bound. "none" starts from
    # half the cap.
    "warm_start": "pontryagin",
    "warm_sweeps": 200,  # at most this many sweeps ...
    "warm_rtol": 1e-7,  # ... stopping after one that lowers the per-step loss by less than this
    # dynamics behind the objective: "recursion" (exact), "ode" (continuous time, THEORY 2.4),
    # "auto": the ODE from T * N = `ode_min_work` on (learning-rate-only SGD problems)
    "engine": "auto",
    "ode_min_work": 1e8,
    "check_work": 2e8,  # ODE engine: check the schedule on the recursion when T * N is at most this
    # mode compression (schedopt.dynamics.compression): "auto" solves plain-SGD problems with more
    # than 2 * (compressed_exact + compressed_nodes) modes on the compressed spectrum, checks the result
    # on the full one and, if they differ by more than `compression_rtol`, polishes on the full one
    "modes": "auto",  # "auto", "compressed" or "exact"
    "compressed_exact": EXACT_MODES,
    "compressed_nodes": QUADRATURE_NODES,
    "compression_rtol": 1e-9,
    # sample budget: augmented Lagrangian
    "budget_rtol": 1e-10,  # |sum_t m_t / D - 1| before the final exact projection
    "al_penalty": 1e2,  # initial penalty rho
    "al_max_outer": 30,
    "al_ftol": 1e-11,  # relative change of the inner objective that ends an inner solve
    # degeneracy of the budget optimum and its tie-break
    "tie_break": "auto",  # "auto": apply when flat; "none": never
    "flat_ratio": FLAT_RATIO,  # flatness at or above which the optimum counts as degenerate
    "tie_break_rtol": 1e-4,  # keep the tie-break schedule if its loss is within this of the optimum
    # momentum control
    "momentum_cap": "joint",  # "joint": learning-rate cap per momentum value; "box": box must be stable
    "stability_margin": 0.95,  # fraction of the heavy-ball threshold the joint cap allows
}
_CONTROL_ORDER = ("learning_rate", "batch_size", "momentum")

#: Integration grid of the ODE engine (:func:`schedopt.dynamics.ode.time_grid` options), coarser
#: than the module's defaults: 256 steps for K = 100 linear blocks at T = 1e3..1e6. On the
#: benchmark problem (eta = 0.7) its final loss equals the default grid's (512-768 steps) to
#: < 5e-7 relative at T = 1e3 and < 5e-9 at 1e4, 1e5, far below the ODE-vs-recursion gap of
#: the model itself (1.4e-4, 5.8e-6, 1.9e-7), at 1/3 of the cost.
ODE_GRID = {"first_step": 0.5, "growth": 1.2, "substeps": 1, "multiple": 64}


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = merge_options("jax", DEFAULT_OPTIONS, options)
    choices = {
        "warm_start": ("pontryagin", "none"),
        "tie_break": ("auto", "none"),
        "momentum_cap": ("joint", "box"),
        "engine": ("auto", "recursion", "ode"),
        "modes": ("auto", "compressed", "exact"),
    }
    for key, allowed in choices.items():
        if opts[key] not in allowed:
            raise ProblemError(
                f"option `{key}` must be {' or '.join(repr(a) for a in allowed)}, got {opts[key]!r}",
                field=key,
            )
    if not 0 < float(opts["stability_margin"]) <= 1:
        raise ProblemError(
            f"option `stability_margin` must be in (0, 1], got {opts['stability_margin']!r}",
            field="stability_margin",
        )
    return opts


def _ode_capable(problem: Problem) -> bool:
    """The ODE engine models a learning-rate control with plain SGD at a fixed batch size."""
    return (
        set(problem.controls) == {"learning_rate"}
        and problem.training.momentum == 0
        and problem.sample_budget is None
    )


def _engine(problem: Problem, opts) -> str:
    """``"recursion"`` or ``"ode"``: the option, ``"auto"`` resolved by the work ``T * N`` (``ode_min_work``)."""
    if opts["engine"] == "auto":
        work = float(problem.horizon) * problem.model.n_modes
        return "ode" if _ode_capable(problem) and work >= opts["ode_min_work"] else "recursion"
    if opts["engine"] == "ode" and not _ode_capable(problem):
        raise ProblemError(
            "option `engine` = 'ode' needs a learning-rate control alone (no batch-size or momentum "
            "control, no fixed momentum, no sample budget); use engine 'recursion'",
            field="engine",
        )
    return opts["engine"]


def _compressible(problem: Problem) -> bool:
    """Mode compression needs plain SGD (the heavy-ball recursion has no loss readout of its own)."""
    return "momentum" not in problem.controls and problem.training.momentum == 0


def _compression(problem: Problem, opts) -> CompressedModes | None:
    """The compressed spectrum the solve runs on, or ``None`` for the model's own modes (option ``modes``)."""
    if opts["modes"] == "exact":
        return None
    if not _compressible(problem):
        if opts["modes"] == "compressed":
            raise ProblemError(
                "option `modes` = 'compressed' needs plain SGD (no momentum); use 'auto' or 'exact'",
                field="modes",
            )
        return None
    sizes = {"exact": opts["compressed_exact"], "nodes": opts["compressed_nodes"]}
    model = problem.model
    if opts["modes"] == "auto":
        return auto_compress(model.eigenvalues, model.initial_error, **sizes)
    modes = compress_modes(model.eigenvalues, model.initial_error, **sizes)
    return modes if modes.n_modes < model.n_modes else None


def _spectrum(problem: Problem, modes: CompressedModes | None):
    """``(eigenvalues, initial error, loss readout)`` the objective runs on."""
    if modes is None:
        lam = problem.model.eigenvalues
        return lam, problem.model.initial_error, lam
    return modes.eigenvalues, modes.initial_error, modes.loss_weights


def _ode_grid(grid) -> np.ndarray:
    """Integration grid of the ODE engine for a control grid (see :data:`ODE_GRID`)."""
    from schedopt.dynamics import ode  # diffrax and equinox load only for the ODE engine

    return ode.time_grid(
        grid.horizon, grid.edges, refine_edges=grid.parameterisation == "constant", **ODE_GRID
    )


def _warm_start(
    problem: Problem, opts, modes: CompressedModes | None = None
) -> tuple[dict[str, np.ndarray] | None, int]:
    """Per-step Pontryagin optimum of the learning rate projected on the grid, and the sweeps run.

    With a batch-size or momentum control the sweeps run on the learning-rate-only
    problem at the mean batch size (``D / T`` under a budget, else the fixed one)
    and plain SGD; they are skipped when the momentum cannot be zero. The sweeps run on
    ``modes`` when the solve does (a compressed spectrum).
    """
    if opts["warm_start"] != "pontryagin":
        return None, 0
    controls = set(problem.controls)
    beta_min = problem.controls["momentum"].min if "momentum" in controls else problem.training.momentum
    if beta_min > 0:
        return None, 0
    sub = problem
    if controls != {"learning_rate"}:
        batch = problem.training.batch_size
        if "batch_size" in controls:
            spec = problem.controls["batch_size"]
            batch = problem.sample_budget / problem.horizon if problem.sample_budget else spec.max
        sub = problem.replace(
            controls={"learning_rate": problem.learning_rate},
            sample_budget=None,
            training=Training(horizon=problem.horizon, batch_size=batch, momentum=0.0),
        )
    values, sweeps = _pontryagin_start(sub, int(opts["warm_sweeps"]), float(opts["warm_rtol"]), modes)
    return {"learning_rate": values}, sweeps


def _pontryagin_start(
    problem: Problem, sweeps: int, rtol: float, modes: CompressedModes | None = None
) -> tuple[np.ndarray, int]:
    """Learning-rate parameters after Pontryagin sweeps from half the cap, fitted to the grid.

    The sweeps of solver ``pontryagin`` (:func:`~schedopt.solvers.pontryagin.sweep_until`),
    stopping after ``sweeps`` or once a sweep lowers the per-step loss by at most ``rtol``.
    """
    spec = problem.learning_rate
    grid = control_grids(problem)["learning_rate"]
    it = grid.interpolation()
    lam, c0, weights = _spectrum(problem, modes)
    start = it.expand(initial_parameters(problem, {"learning_rate": grid})["learning_rate"])
    if sweeps < 1:
        return it.fit(start, spec.min, spec.max), 0
    per_step, count, _ = sweep_until(
        jnp.asarray(lam),
        jnp.asarray(c0),
        jnp.asarray(problem.model.effective_noise),
        jnp.asarray(start),
        jnp.full(problem.horizon, problem.training.batch_size),
        spec.min,
        spec.max,
        max_sweeps=sweeps,
        rtol=rtol,
        loss_weights=jnp.asarray(weights),
    )
    return it.fit(np.asarray(per_step), spec.min, spec.max), count


def _layout(problem: Problem, grids) -> tuple[tuple[str, int], ...]:
    if problem.sample_budget is not None and "batch_size" not in grids:
        raise ProblemError(
            "a sample budget needs a batch_size control ([controls.batch_size])",
            field="sample_budget",
        )
    return tuple((name, grids[name].n_params) for name in _CONTROL_ORDER if name in grids)


def _scale(problem: Problem, name: str) -> float:
    """Unit of a control's scaled parameters: its cap, or the mean batch ``D / T`` under a budget."""
    if name == "batch_size" and problem.sample_budget is not None:
        return float(problem.sample_budget) / problem.horizon
    return float(problem.controls[name].max)


def _preconditioner(grid) -> np.ndarray:
    r"""Diagonal preconditioner of a control's parameters: :math:`\sqrt{n_j / \max_i n_i}`.

    :math:`n_j` is the column sum of the knot-to-step interpolation matrix (how many
    steps knot :math:`j` moves). A knot's gradient is a sum over its :math:`n_j` steps
    and its curvature grows like :math:`n_j` when the steps act independently, so
    the variable :math:`y_j = \sqrt{n_j}\,v_j` has a Hessian of comparable diagonal
    on every knot (narrow blocks of a geometric grid otherwise look flat to L-BFGS).
    Normalised so the widest knot keeps its unit: gradient tolerances only get stricter.
    """
    it = grid.interpolation()
    nxt = np.minimum(it.index + 1, it.n_params - 1)
    counts = np.bincount(it.index, 1.0 - it.weight, minlength=it.n_params) + np.bincount(
        nxt, it.weight, minlength=it.n_params
    )
    counts = np.maximum(counts, 1e-3 * counts.max())  # a knot no step reaches still gets a unit
    return np.sqrt(counts / counts.max())


def _units(problem: Problem, grids) -> dict[str, np.ndarray]:
    """Per-parameter unit of the optimiser's variables: control value = variable x unit."""
    return {name: _scale(problem, name) / _preconditioner(grid) for name, grid in grids.items()}


def _capped(problem: Problem, opts) -> bool:
    return "momentum" in problem.controls and opts["momentum_cap"] == "joint"


def _beta_at_lr_knots(grids) -> np.ndarray:
    """The linear map from momentum parameters to the momentum at the learning-rate knots."""
    lr_grid, beta_grid = grids["learning_rate"], grids["momentum"]
    eye = np.eye(beta_grid.n_params)
    return np.stack([beta_grid.evaluate(eye[j], lr_grid.knots) for j in range(beta_grid.n_params)], axis=1)


def _tables(
    problem: Problem,
    grids,
    horizon: int,
    n_modes: int,
    capped: bool,
    opts,
    engine: str = "recursion",
    modes: CompressedModes | None = None,
) -> dict[str, Any]:
    """Traced arrays describing one problem (spectrum padded with zero modes to ``n_modes``).

    The recursion needs per-step tables (interpolation, batch size, momentum); the ODE
    the block edges and its integration grid ``ts`` instead (padded to a common length later).
    The spectrum is ``modes`` (with its loss readout ``weights``) when the solve is compressed.
    """
    lam, c0, readout = _spectrum(problem, modes)
    pad = n_modes - lam.size
    tables = {
        "lam": np.pad(lam, (0, pad)),
        "c0": np.pad(c0, (0, pad)),
        "weights": np.pad(readout, (0, pad)),
        "noise": np.float64(problem.model.effective_noise),
        "scale": _units(problem, grids),
    }
    if engine == "ode":
        grid = grids["learning_rate"]
        tables["batch_size"] = np.float64(problem.training.batch_size)
        tables["edges"] = grid.edges.astype(np.float64)
        tables["ts"] = _ode_grid(grid)
        return tables
    tables["batch"] = np.full(horizon, problem.training.batch_size)
    tables["momentum"] = np.full(horizon, problem.training.momentum)
    tables["interp"] = {}
    for name, grid in grids.items():
        it = grid.interpolation()
        tables["interp"][name] = (it.index, it.weight)
    if capped:
        tables["cap_u"], tables["cap_frac"] = momentum_cap_table(problem, opts["stability_margin"])
        tables["beta_at_lr"] = _beta_at_lr_knots(grids)
    return tables


def _common_ode_grid(tables: list[dict[str, Any]]) -> None:
    """Pad the ODE grids of stacked problems to one number of steps (in place)."""
    from schedopt.dynamics import ode

    steps = max(t["ts"].size - 1 for t in tables)
    for t in tables:
        t["ts"] = ode.pad_grid(t["ts"], steps)


def _knot_values(x, tables, layout, capped, xp=jnp):
    """Control parameter values (unscaled) from the scaled parameter vector of one problem."""
    values, offset = {}, 0
    for name, size in layout:
        values[name] = x[offset : offset + size] * tables["scale"][name]
        offset += size
    if capped:
        beta = tables["beta_at_lr"] @ values["momentum"]
        frac = xp.interp(-xp.log1p(-beta), tables["cap_u"], tables["cap_frac"])
        values["learning_rate"] = values["learning_rate"] * frac
    return values


def _cap_fraction(x, tables, slices) -> np.ndarray:
    """Stable fraction of the learning-rate cap at each learning-rate knot (NumPy)."""
    beta = tables["beta_at_lr"] @ (x[slices["momentum"]] * tables["scale"]["momentum"])
    return np.interp(-np.log1p(-beta), tables["cap_u"], tables["cap_frac"])


def _per_step(x, tables, layout, capped=False):
    """Per-step (learning rate, batch size, momentum) from the scaled parameter vector."""
    out = {"batch_size": tables["batch"], "momentum": tables["momentum"]}
    for name, values in _knot_values(x, tables, layout, capped).items():
        index, weight = tables["interp"][name]
        nxt = jnp.minimum(index + 1, values.shape[0] - 1)
        out[name] = (1.0 - weight) * values[index] + weight * values[nxt]
    return out


def _ode_log_loss(x, tables, layout, parameterisation):
    """Log final loss (kept modes) of the continuous-time model; learning-rate control only."""
    from schedopt.dynamics import ode

    values = _knot_values(x, tables, layout, False)["learning_rate"]
    loss = ode.final_loss_jax(
        tables["lam"],
        tables["c0"],
        tables["noise"],
        values,
        tables["batch_size"],
        tables["edges"],
        tables["ts"],
        parameterisation=parameterisation,
        loss_weights=tables["weights"],
    )
    return jnp.log(loss)


def _log_loss(x, tables, layout, with_momentum, capped=False, engine="recursion", parameterisation=None):
    if engine == "ode":
        return _ode_log_loss(x, tables, layout, parameterisation)
    u = _per_step(x, tables, layout, capped)
    args = (tables["lam"], tables["c0"], tables["noise"], u["learning_rate"], u["batch_size"])
    if with_momentum:  # hand-written adjoint: same values as the recursion, ~2x faster gradients
        return jnp.log(momentum_final_loss(*args, u["momentum"]))  # never compressed: readout = lam
    return jnp.log(final_loss_jax(*args, loss_weights=tables["weights"]))


@partial(jax.jit, static_argnames=("layout", "with_momentum", "capped", "engine", "parameterisation"))
def _value_and_grad_many(
    x, tables, layout, with_momentum, capped=False, engine="recursion", parameterisation=None
):
    """Log losses of stacked problems and their gradients (rows of ``x`` are problems)."""

    def one(x_, tables_):
        return _log_loss(x_, tables_, layout, with_momentum, capped, engine, parameterisation)

    values, grads = jax.vmap(jax.value_and_grad(one))(x, tables)
    return values, grads


@partial(jax.jit, static_argnames=("layout", "engine", "parameterisation"))
def _log_loss_jit(x, tables, layout, engine="recursion", parameterisation=None):
    """Log final loss of one plain-SGD problem, without its gradient (checks)."""
    return _log_loss(x, tables, layout, False, False, engine, parameterisation)


def _projected_gradient(x, g, lo, hi):
    return x - np.clip(x - g, lo, hi)


def _stack(trees):
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)


def _slices(layout) -> dict[str, slice]:
    out, offset = {}, 0
    for name, size in layout:
        out[name] = slice(offset, offset + size)
        offset += size
    return out


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
            status = "diverged"
        elif iterations >= opts["max_iter"]:
            status = "max_iterations"
        elif (result.success or pg[i] <= opts["pgtol_converged"]) and budget_ok:
            status = "converged"
        else:
            status = "failed"
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


def _ode_final_loss(
    problem: Problem, learning_rate: np.ndarray, kept: float, opts, info, modes: CompressedModes | None = None
) -> float:
    """Final loss of an ODE-engine schedule: the exact recursion's when ``T * N <= check_work``.

    ``kept``: the ODE's final loss of the kept modes (the full spectrum's). Beyond ``check_work``
    the recursion runs on the compressed spectrum ``modes`` when ``T * n`` is within it (its
    error against the full recursion is ~1e-12, :mod:`schedopt.dynamics.compression`).
    Records ``info["ode_final_loss"]`` and ``info["recursion_final_loss"]`` (``None`` and
    ``info["recursion_check"]`` saying why when the recursion was too long to run).
    """
    model = problem.model
    ode_loss = kept + model.residual if np.isfinite(kept) else np.inf
    info["ode_final_loss"] = float(ode_loss)
    work = float(problem.horizon) * model.n_modes
    if work <= opts["check_work"]:
        exact = float(final_loss(model, learning_rate, batch_size=problem.training.batch_size))
        where = "recursion"
    elif modes is not None and float(problem.horizon) * modes.n_modes <= opts["check_work"]:
        exact = float(final_loss(model, learning_rate, batch_size=problem.training.batch_size, modes=modes))
        where = f"recursion on the compressed spectrum ({modes.n_modes} of {model.n_modes} modes)"
    else:
        info["recursion_final_loss"] = None
        info["recursion_check"] = (
            f"not checked: T * N = {work:.3g} > check_work = {opts['check_work']:.3g}; "
            "final_loss is the ODE's"
        )
        return float(ode_loss)
    info["recursion_final_loss"] = exact
    info["recursion_check"] = f"checked: ODE / {where} - 1 = {ode_loss / exact - 1.0:+.3g}"
    return exact


def _polished(solution: Solution, opts) -> Solution:
    """A compressed solve whose result the full spectrum does not confirm, re-solved on the full spectrum.

    Kept as it is when ``|surrogate / full - 1| <= compression_rtol``; otherwise L-BFGS-B
    restarts from its parameters on the model's own modes (no warm start), and
    ``info["compression"]["polished"]`` says so.
    """
    report = solution.info.get("compression")
    if report is None or "relative_gap" not in report:
        return solution
    gap = report["relative_gap"]
    if gap is not None and abs(gap) <= opts["compression_rtol"]:
        return solution
    polished = _solve_group(
        [solution.problem],
        [solution.parameters],
        {**opts, "warm_start": "none"},
        engine=solution.info["engine"],
        full_spectrum=True,
    )[0]
    info = dict(polished.info)
    info["evaluations"] = solution.info["evaluations"] + polished.info["evaluations"]
    info["warm_start_sweeps"] = solution.info["warm_start_sweeps"]
    info["compression"] = {
        **report,
        "polished": True,
        "polish_iterations": polished.iterations,
        "polish_evaluations": polished.info["evaluations"],
    }
    return Solution(
        problem=polished.problem,
        solver="jax",
        status=polished.status,
        final_loss=polished.final_loss,
        parameters=polished.parameters,
        grids=polished.grids,
        iterations=solution.iterations + polished.iterations,
        wall_time=solution.wall_time + polished.wall_time,
        message=polished.message,
        info=info,
    )


def _degeneracy_and_tie_break(solution: Solution, opts) -> Solution:
    """Attach ``info["degeneracy"]``; apply the tie-break of :mod:`schedopt.solvers.budget` when flat."""
    from schedopt.solvers.budget import budget_weights, degeneracy_report, project_budget, tie_break_per_step

    problem = solution.problem
    lr_spec, batch_spec = problem.learning_rate, problem.controls["batch_size"]
    lr, batch = solution.per_step("learning_rate"), solution.per_step("batch_size")
    report = degeneracy_report(solution, flat_ratio=opts["flat_ratio"])
    new_lr, new_batch, _ = tie_break_per_step(
        lr, batch, m_min=batch_spec.min, m_max=batch_spec.max, lr_min=lr_spec.min, lr_max=lr_spec.max
    )
    info = dict(solution.info)
    info["degeneracy"] = report
    if not report["degenerate"]:
        return _with_info(solution, info)
    if opts["tie_break"] != "auto":
        report["tie_break"] = "not applied (option tie_break = 'none')"
        return _with_info(solution, info)
    grids = solution.grids
    initial = {
        "learning_rate": grids["learning_rate"].interpolation().fit(new_lr, lr_spec.min, lr_spec.max),
        "batch_size": project_budget(
            grids["batch_size"].interpolation().fit(new_batch, batch_spec.min, batch_spec.max),
            budget_weights(grids["batch_size"]),
            float(problem.sample_budget),
            batch_spec.min,
            batch_spec.max,
        ),
    }
    for name in problem.controls:
        if name not in initial:
            initial[name] = np.asarray(solution.parameters[name])
    # the batch sizes of the tie-break point, with the learning rate re-optimised for them
    # (the grid cannot represent the rule's learning rate exactly once the batch is fitted)
    candidate = _solve_group([problem], [initial], {**opts, "warm_start": "none"}, pinned="batch_size")[0]
    loss = candidate.final_loss if candidate.status != "failed" else np.inf
    per_step = {name: candidate.per_step(name) for name in problem.controls}
    change = float(loss / solution.final_loss - 1.0)
    keep = bool(np.isfinite(loss) and change <= opts["tie_break_rtol"])
    report["tie_break"] = {
        "rule": (
            "among (nearly) equal-loss schedules, the learning rate closest to its cap "
            "(constant where the step count leaves slack), batch size absorbing the rest"
        ),
        "applied": keep,
        "relative_loss_change": change,
        "per_step_relative_loss_change": float(
            final_loss(problem.model, new_lr, batch_size=new_batch, momentum=None) / solution.final_loss - 1.0
        )
        if "momentum" not in problem.controls and problem.training.momentum == 0
        else None,
        "learning_rate_spread_before": float(np.ptp(lr) / lr_spec.max),
        "learning_rate_spread_after": float(np.ptp(per_step["learning_rate"]) / lr_spec.max),
    }
    if not keep:
        report["tie_break"]["reason"] = (
            f"the tie-break schedule costs {change:+.3g} relative loss (> tie_break_rtol = "
            f"{opts['tie_break_rtol']:g}): curvature (or the grid's resolution, see "
            "per_step_relative_loss_change) breaks the tie; the solver's optimum is kept"
        )
        return _with_info(solution, info)
    return Solution(
        problem=problem,
        solver="jax",
        status=solution.status,
        final_loss=float(loss),
        parameters=candidate.parameters,
        grids=grids,
        iterations=solution.iterations + candidate.iterations,
        wall_time=solution.wall_time + candidate.wall_time,
        message=solution.message,
        info=info,
    )


def _with_info(solution: Solution, info: Mapping[str, Any]) -> Solution:
    return Solution(
        problem=solution.problem,
        solver=solution.solver,
        status=solution.status,
        final_loss=solution.final_loss,
        parameters=solution.parameters,
        grids=solution.grids,
        iterations=solution.iterations,
        wall_time=solution.wall_time,
        message=solution.message,
        info=info,
    )


@float64
def solve_jax(
    problem: Problem,
    *,
    initial: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Solution:
    """Solve one problem (see :func:`schedopt.solvers.solve`)."""
    return solve_jax_many([problem], initial=[initial] if initial else None, options=options)[0]


@float64
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
        check_bounds(p, momentum_cap="joint" if _capped(p, opts) else "box")
        _layout(p, control_grids(p))
        if p.sample_budget is not None:
            from schedopt.solvers.budget import check_budget

            check_budget(p)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(problems):
        g = control_grids(p)
        engine = _engine(p, opts)
        param = g["learning_rate"].parameterisation if engine == "ode" else None
        key = (p.horizon, _layout(p, g), p.training.momentum > 0, p.sample_budget is not None, engine, param)
        groups.setdefault(key, []).append(i)
    out: list[Solution | None] = [None] * len(problems)
    for key, indices in groups.items():
        init = [initial[i] for i in indices] if initial else None
        group = [problems[i] for i in indices]
        start = time.perf_counter()
        solved = _solve_group(group, init, opts, engine=key[4])
        shared = time.perf_counter() - start  # the group's solve with every check and tie-break
        for i, sol in zip(indices, solved, strict=True):
            start = time.perf_counter()
            polished = _polished(sol, opts)
            # wall_time: everything this solution cost, the final full-spectrum checks included
            out[i] = dataclasses.replace(polished, wall_time=shared + time.perf_counter() - start)
    return out  # type: ignore[return-value]
