"""NumPy-level entry points of the ODE: :func:`solve` (a loss curve) and :func:`final_loss`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax.numpy as jnp
import numpy as np

from schedopt._jax import float64, jax
from schedopt.controls import ControlGrid
from schedopt.dynamics.ode._field import FORMS
from schedopt.dynamics.ode._grid import FIRST_STEP, GROWTH, SUBSTEPS, time_grid
from schedopt.dynamics.ode._jax import INTEGRATORS, loss_at_jax
from schedopt.dynamics.recursion import divergence_limit, per_step
from schedopt.errors import ProblemError, SolverError
from schedopt.problem import Model

# --------------------------------------------------------------------------- #
# NumPy-level API                                                             #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class OdeSolution:
    """Loss of the continuous-time model at the save times.

    Attributes:
        ts: save times (steps), ``(S,)``; the last is the horizon.
        loss: excess loss :math:`L(t)` (kept modes + residual) at ``ts``; leading
            batch axes when schedules were batched. ``inf`` where the solve diverged.
        grid: the integration grid (exponential solver) or ``[0, T]`` (Tsit5).
        num_steps: solver steps taken (per schedule for Tsit5).
        solver, form: as requested.
    """

    ts: np.ndarray
    loss: np.ndarray
    grid: np.ndarray
    num_steps: np.ndarray
    solver: str
    form: str

    @property
    def final_loss(self):
        return self.loss[..., -1]


def _control(learning_rate, grid: ControlGrid | None):
    """``(edges, parameterisation, values)`` from a grid + values or a per-step array."""
    if grid is None:
        lr = np.asarray(learning_rate, dtype=np.float64)
        if lr.ndim == 0:
            raise ProblemError(
                "`learning_rate` must be a per-step array, or values with `grid=`",
                field="learning_rate",
            )
        lr = per_step("learning_rate", lr, lr.shape[-1])
        edges = np.arange(lr.shape[-1] + 1, dtype=np.float64)
        return edges, "constant", lr
    if not isinstance(grid, ControlGrid):
        raise ProblemError(f"`grid` must be a ControlGrid, got {type(grid).__name__}", field="grid")
    values = np.asarray(learning_rate, dtype=np.float64)
    if values.ndim == 0 or values.shape[-1] != grid.n_params:
        raise ProblemError(
            f"`learning_rate` must hold {grid.n_params} values for this grid, got shape {values.shape}",
            field="learning_rate",
        )
    if not np.all(np.isfinite(values)):
        raise ProblemError("`learning_rate` values must be finite", field="learning_rate")
    return grid.edges.astype(np.float64), grid.parameterisation, values


def _check_choices(solver: str, form: str, batch_size) -> float:
    """Check the integrator, the form and the batch size; the batch size as a float."""
    if solver not in INTEGRATORS:
        raise ProblemError(f"`solver` must be one of {INTEGRATORS}, got {solver!r}", field="solver")
    if form not in FORMS:
        raise ProblemError(f"`form` must be one of {FORMS}, got {form!r}", field="form")
    m = float(batch_size)
    if not (math.isfinite(m) and m >= 1):
        raise ProblemError(f"`batch_size` must be a number >= 1, got {batch_size!r}", field="batch_size")
    return m


def _save_times(save_at, horizon: float) -> np.ndarray:
    """The save times, checked, sorted and with the horizon added."""
    save = np.array([] if save_at is None else save_at, dtype=np.float64).ravel()
    if np.any((save < 0) | (save > horizon)):
        raise ProblemError(f"`save_at` times must lie in [0, {horizon:g}]", field="save_at")
    return np.unique(np.concatenate([save, [horizon]]))


def _given_grid(ts, horizon: float, edges: np.ndarray, save: np.ndarray, solver: str) -> np.ndarray:
    """A caller's integration grid, checked against the horizon, the block edges and the save times."""
    ts = np.asarray(ts, dtype=np.float64)
    if ts.ndim != 1 or ts[0] != 0 or ts[-1] != horizon or np.any(np.diff(ts) <= 0):
        raise ProblemError(f"`ts` must increase strictly from 0 to {horizon:g}", field="ts")
    if (solver == "exponential" and not np.all(np.isin(edges, ts))) or not np.all(np.isin(save, ts)):
        raise ProblemError("`ts` must contain every block edge and save time", field="ts")
    return ts


def _integrate(model: Model, values: np.ndarray, fn, args) -> tuple[np.ndarray, np.ndarray]:
    """Kept-mode losses at the save times and solver steps, for one schedule or a batch of them."""
    lam = jnp.asarray(model.eigenvalues)
    c0 = jnp.asarray(model.initial_error)
    noise = jnp.asarray(model.effective_noise)
    if values.ndim == 1:
        loss, steps = fn(lam, c0, noise, jnp.asarray(values), *args)
    else:
        lead = values.shape[:-1]
        flat = jnp.asarray(values.reshape(-1, values.shape[-1]))
        loss, steps = jax.vmap(lambda v: fn(lam, c0, noise, v, *args))(flat)
        loss = loss.reshape(*lead, -1)
        steps = steps.reshape(lead)
    return np.asarray(loss), steps


@float64
def solve(
    model: Model,
    learning_rate,
    *,
    grid: ControlGrid | None = None,
    batch_size: float = 1.0,
    save_at=None,
    solver: str = "exponential",
    form: str = "plain",
    degree: int = 2,
    ts=None,
    first_step: float = FIRST_STEP,
    growth: float = GROWTH,
    substeps: int = SUBSTEPS,
    refine_edges: bool | None = None,
    multiple: int = 128,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 200_000,
) -> OdeSolution:
    r"""Solve the continuous-time model for one or many learning-rate schedules.

    Args:
        model: the model.
        learning_rate: with ``grid``: control values ``(..., n_params)``; without: per-step
            learning rates ``(..., T)`` (piecewise constant on unit blocks: short horizons).
        grid: the control grid (its last edge is the horizon ``T``).
        batch_size: samples per step (scalar).
        save_at: times (steps) at which to report the loss; ``T`` is always added.
        solver: ``"exponential"`` (default) or ``"tsit5"`` (reference).
        form: ``"plain"`` (THEORY §2.4) or ``"matched"``.
        degree: 2 (third-order exponential integrator) or 1 (second order).
        ts: custom integration grid (must contain the block edges and save times).
        first_step, growth, substeps, refine_edges, multiple: options of :func:`time_grid`;
            ``refine_edges=None`` refines after the block edges of piecewise-constant
            grids (jumps), not of linear ones nor of per-step arrays.
        rtol, atol, max_steps: Tsit5 options.

    Returns:
        an :class:`OdeSolution`; ``loss`` includes the residual :math:`R_N`.

    Raises:
        ProblemError: bad inputs. SolverError: Tsit5 failed (e.g. ``max_steps``).
    """
    m = _check_choices(solver, form, batch_size)
    edges, param, values = _control(learning_rate, grid)
    if np.any(values < 0):
        raise ProblemError("`learning_rate` must be non-negative", field="learning_rate")
    horizon = float(edges[-1])
    save = _save_times(save_at, horizon)
    if ts is None:
        refine = (grid is not None and param == "constant") if refine_edges is None else refine_edges
        grid_options = {
            "first_step": first_step,
            "growth": growth,
            "substeps": substeps,
            "multiple": multiple,
        }
        ts = time_grid(horizon, edges, refine_edges=refine, include=save, **grid_options)
    else:
        ts = _given_grid(ts, horizon, edges, save, solver)
    if solver == "tsit5":
        ts = np.array([0.0, horizon])
    fn = partial(
        loss_at_jax,
        parameterisation=param,
        form=form,
        solver=solver,
        degree=degree,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
    )
    args = (jnp.asarray(m), jnp.asarray(edges), jnp.asarray(ts), jnp.asarray(save))
    loss, steps = _integrate(model, values, fn, args)
    if solver == "tsit5" and np.any(np.isnan(loss)):
        raise SolverError(
            f"diffrax Tsit5 did not reach t1 = {horizon:g} (max_steps = {max_steps}, "
            f"rtol = {rtol:g}); raise max_steps or use solver='exponential'"
        )
    loss = loss + model.residual
    limit = divergence_limit(model)
    loss = np.where(np.isfinite(loss) & (loss <= limit), loss, np.inf)
    return OdeSolution(ts=save, loss=loss, grid=ts, num_steps=np.asarray(steps), solver=solver, form=form)


@float64
def final_loss(model: Model, learning_rate, *, grid: ControlGrid | None = None, **options):
    """Final excess loss :math:`L_T` (kept modes + residual) of the ODE; ``inf`` where it diverged.

    Same arguments as :func:`solve`.
    """
    out = solve(model, learning_rate, grid=grid, **options).final_loss
    return float(out) if np.ndim(out) == 0 else out
