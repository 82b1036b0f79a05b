r"""The ``jax`` solver's objective: scaled parameters → per-step controls → :math:`\log(L_T - R_N)` and its gradient.

Parameters are preconditioned (knot values in units of the cap times :math:`\sqrt{n_j/\max n}`);
problem numbers are traced arguments, so a new problem with the same shapes does not recompile.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from schedopt._jax import cached_jit, jax
from schedopt.dynamics.adjoint import vmap_rows
from schedopt.dynamics.compression import (
    CompressedModes,
)
from schedopt.dynamics.momentum_adjoint import momentum_final_loss
from schedopt.dynamics.recursion import final_loss_jax
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solvers._common import (
    momentum_cap_table,
)
from schedopt.solvers.jax._options import _CONTROL_ORDER, JaxOptions, _ode_grid, _spectrum


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
        return float(problem.mean_batch_size)
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


def _capped(problem: Problem, opts: JaxOptions) -> bool:
    return "momentum" in problem.controls and opts.momentum_cap == "joint"


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
    opts: JaxOptions,
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
        tables["cap_u"], tables["cap_frac"] = momentum_cap_table(problem, opts.stability_margin)
        tables["cap_coef"] = _cap_spline(tables["cap_u"], tables["cap_frac"])
        tables["beta_at_lr"] = _beta_at_lr_knots(grids)
    return tables


def _common_ode_grid(tables: list[dict[str, Any]]) -> None:
    """Pad the ODE grids of stacked problems to one number of steps (in place)."""
    from schedopt.dynamics import ode

    steps = max(t["ts"].size - 1 for t in tables)
    for t in tables:
        t["ts"] = ode.pad_grid(t["ts"], steps)


def _cap_spline(u: np.ndarray, frac: np.ndarray) -> np.ndarray:
    r"""Coefficients ``(4, n - 1)`` of the monotone cubic (PCHIP) through the cap table ``(u, fraction)``.

    Linear interpolation of the table has a derivative jump at every node, where a learning rate
    riding its cap has no Hessian (the second-order check of :mod:`._newton` needs one). PCHIP has
    a continuous derivative, stays within the neighbouring nodes' values (no overshoot above a
    fraction of 1) and is exact at the nodes.
    """
    from scipy.interpolate import PchipInterpolator

    return np.asarray(PchipInterpolator(u, frac).c, dtype=np.float64)


def _cap_at(u, nodes, coef, xp):
    """The cap fraction at ``u = -log(1 - beta)`` from :func:`_cap_spline`'s coefficients.

    ``u`` is not clamped to the table (a clamp halves JAX's derivative at the end nodes, where a
    momentum at its bound sits): the momentum's bounds keep it there, up to rounding.
    """
    i = xp.clip(xp.searchsorted(nodes, u, side="right") - 1, 0, nodes.shape[0] - 2)
    du = u - nodes[i]
    return ((coef[0, i] * du + coef[1, i]) * du + coef[2, i]) * du + coef[3, i]


def _knot_values(x, tables, layout, capped, xp=jnp):
    """Control parameter values (unscaled) from the scaled parameter vector of one problem."""
    values, offset = {}, 0
    for name, size in layout:
        values[name] = x[offset : offset + size] * tables["scale"][name]
        offset += size
    if capped:
        beta = tables["beta_at_lr"] @ values["momentum"]
        frac = _cap_at(-xp.log1p(-beta), tables["cap_u"], tables["cap_coef"], xp)
        values["learning_rate"] = values["learning_rate"] * frac
    return values


def _cap_fraction(x, tables, slices) -> np.ndarray:
    """Stable fraction of the learning-rate cap at each learning-rate knot (NumPy)."""
    beta = tables["beta_at_lr"] @ (x[slices["momentum"]] * tables["scale"]["momentum"])
    return _cap_at(-np.log1p(-beta), tables["cap_u"], tables["cap_coef"], np)


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
        return jnp.log(momentum_final_loss(*args, u["momentum"], loss_weights=tables["weights"]))
    return jnp.log(final_loss_jax(*args, loss_weights=tables["weights"]))


@cached_jit(static_argnames=("layout", "with_momentum", "capped", "engine", "parameterisation"))
def _value_and_grad_many(
    x, tables, layout, with_momentum, capped=False, engine="recursion", parameterisation=None
):
    """Log losses of stacked problems and their gradients (rows of ``x`` are problems)."""

    def one(x_, tables_):
        return _log_loss(x_, tables_, layout, with_momentum, capped, engine, parameterisation)

    def modes(x_, tables_):
        return row_state_entries(tables_, with_momentum)

    return vmap_rows(jax.value_and_grad(one), modes)(x, tables)


def row_state_entries(tables, with_momentum: bool) -> int:
    """Per-step state entries of one problem's recursion: a mode's second moment, three of them with
    heavy-ball momentum (the lockstep's pieces and the whole-loop kernels are sized by it)."""
    modes = int(tables["lam"].shape[-1])
    return 3 * modes if with_momentum else modes


@cached_jit(static_argnames=("layout", "engine", "parameterisation"))
def _log_loss_jit(x, tables, layout, engine="recursion", parameterisation=None):
    """Log final loss of one plain-SGD problem, without its gradient (checks)."""
    return _log_loss(x, tables, layout, False, False, engine, parameterisation)


def _stack(trees):
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *trees)


def _slices(layout) -> dict[str, slice]:
    out, offset = {}, 0
    for name, size in layout:
        out[name] = slice(offset, offset + size)
        offset += size
    return out
