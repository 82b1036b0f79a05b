r"""Solver ``pontryagin``: forward-backward sweeps with the closed-form per-step optimum.

Each sweep (:func:`sgd_sweep`) replaces every step's
learning rate by the exact minimiser of :math:`L_T` given all other steps, so
the loss never increases. The sweep works on *per-step* learning rates: it
solves the fully resolved problem, independently of the JAX and CasADi
solvers. On a problem whose grid has one block per step (``blocks = horizon``,
``parameterisation = "constant"``) all three solvers solve the same problem
and must agree; on a coarser grid the per-step optimum is projected onto the
grid (least squares), reported with ``info["per_step_loss"]`` (a lower bound
on the grid's optimum) and flagged ``info["projected"] = True``; it is then a
fast warm start for the other solvers.

Handles the learning rate alone (fixed batch size, no momentum).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np

from schedopt._jax import cached_jit, float64, jax
from schedopt.dynamics.adjoint import (
    _forward,
    _per_step,
    _prepare,
    _replay,
    in_kernel,
    pad_modes,
    sgd_final_loss,
    step_scan,
    vmap_rows,
    whole_loops_for,
)
from schedopt.dynamics.ops import JAX, TREE_WIDTH, tree_sum
from schedopt.dynamics.recursion import final_loss
from schedopt.dynamics.sgd import sgd_loss
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers import _lockstep as lockstep
from schedopt.solvers._common import (
    check_bounds,
    control_grids,
    initial_parameters,
    with_stability,
)
from schedopt.solvers._options import SolverOptions, nonnegative_int, positive_int, real_in
from schedopt.status import Status

__all__ = ["PontryaginOptions", "sgd_sweep", "solve_pontryagin", "sweep_until"]


@dataclasses.dataclass(frozen=True)
class PontryaginOptions(SolverOptions):
    """Options of the ``pontryagin`` solver (forward-backward sweeps).

    Attributes:
        max_iter: sweeps, at most (the first always runs).
        rtol: a sweep that lowers the loss by at most this fraction of it counts as quiet.
        patience: the solve converges after this many quiet sweeps in a row.
        projection_rtol: on a coarser grid than one block per step, the per-step schedule is
            fitted to the grid; a fit whose loss exceeds the per-step loss by more than this
            fraction is not an optimum of the grid (status ``failed``).
    """

    solver: ClassVar[str] = "pontryagin"

    max_iter: int = 5000
    rtol: float = 1e-13
    patience: int = 3
    projection_rtol: float = 1e-2

    def __post_init__(self) -> None:
        set_option = functools.partial(object.__setattr__, self)  # normalised values on a frozen record
        set_option("max_iter", nonnegative_int("max_iter", self.max_iter))
        set_option("rtol", real_in("rtol", self.rtol, "a non-negative number", zero=True))
        set_option("patience", positive_int("patience", self.patience))
        set_option(
            "projection_rtol",
            real_in("projection_rtol", self.projection_rtol, "a non-negative number", zero=True),
        )


def _adjoint_update(nu, lam, weights, eta, m, inv_m, lam_nu):
    """:math:`\\nu_t = M_t^\\top \\nu_{t+1}`, given :math:`\\lambda^\\top \\nu_{t+1}` (``lam_nu``) and ``inv_m = 1/m``."""
    curv = 1.0 + inv_m
    d = 1.0 - 2.0 * eta * lam + curv * eta * eta * lam * lam
    if in_kernel():  # the same sum, its operands swapped: the same fused product (adjoint.in_kernel)
        return (eta * eta / m * lam_nu) * weights + d * nu
    return d * nu + (eta * eta / m * lam_nu) * weights


@cached_jit
def sgd_sweep(lam, c0, noise, lr, batch, lower, upper, loss_weights=None):
    r"""One Pontryagin forward-backward sweep over per-step learning rates.

    Forward with the current ``lr``; then backward from :math:`t = T-1` to 0, each
    :math:`\eta_t` is replaced by the exact minimiser of :math:`L_T` with every
    other step held fixed (THEORY §3),

    .. math::  \eta_t^* = \frac{\sum_k \nu_{t+1,k}\lambda_k c_{t,k}}
               {\sum_k \nu_{t+1,k}\bigl[(1+\frac1m)\lambda_k^2 c_{t,k} + \lambda_k (L_t+\sigma^2)/m\bigr]},

    clipped to ``[lower, upper]``, and :math:`\nu_t` is propagated with the new
    :math:`\eta_t`. The states :math:`c_t` depend only on earlier steps, which the
    backward pass has not changed yet, so every update is exact and a sweep never
    increases :math:`L_T` (block-free coordinate descent). Returns the new per-step
    learning rates and :math:`L_T` (kept modes) of the *given* ones, which the forward
    pass computes anyway. ``loss_weights``: the loss readout (default ``lam``).
    """
    weights = lam if loss_weights is None else loss_weights
    lam, weights, c0 = pad_modes(lam, weights, c0)  # zero modes: the same sums, no pad in the loops
    lr_p, batch_p, horizon = _prepare(lr, batch)
    inv_m_p, g_p = _per_step(lr_p, batch_p)
    final, starts = _forward(lam, weights, c0, noise, lr_p, batch_p)
    n_chunks, chunk = lr_p.shape
    valid = (jnp.arange(n_chunks * chunk) < horizon).reshape(n_chunks, chunk)

    # Up to TREE_WIDTH modes L_t + sigma^2 is read off a chunk's states at once (the same tree sums
    # as a step's, bitwise): one dot product fewer inside the loop. Above it the loop keeps its four
    # (the rows' reduction, fused with the products or not, rounds differently in the last bit).
    in_loop = lam.shape[-1] > TREE_WIDTH

    def step_back(nu, xs):
        c, eta_old, m, inv_m, loss, ok = xs
        nu_lam = nu * lam
        # tree sums one by one, not one over their stack: XLA fuses each product into its sum's
        # first level instead of writing and re-reading a stacked array (benchmarks/README.md)
        if in_loop:
            loss = tree_sum(weights * c) + noise
        num, nu_c_lam2, nu_lam_sum = (
            tree_sum(nu_lam * c),
            tree_sum(nu_lam * lam * c),
            tree_sum(nu_lam),
        )
        den = (1.0 + inv_m) * nu_c_lam2 + nu_lam_sum * loss / m
        eta = jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), upper)
        eta = jnp.where(ok, jnp.clip(eta, lower, upper), eta_old)
        return _adjoint_update(nu, lam, weights, eta, m, inv_m, nu_lam_sum), eta

    def chunk_back(nu, xs):
        start, eta_c, m_c, inv_m_c, g_c, ok_c = xs
        states = _replay(start, eta_c, inv_m_c, g_c, lam, noise, weights)
        loss = m_c if in_loop else tree_sum(weights * states) + noise  # m_c: a placeholder, unused
        return step_scan(step_back, nu, (states, eta_c, m_c, inv_m_c, loss, ok_c), reverse=True)

    _, new = jax.lax.scan(chunk_back, weights, (starts, lr_p, batch_p, inv_m_p, g_p, valid), reverse=True)
    return new.reshape(-1)[:horizon], sgd_loss(final, lam, JAX, weights)


def _sweep_modes(lam, *_) -> int:
    """A sweep's per-step state entries: one second moment a mode."""
    return int(np.shape(lam)[-1])


#: One sweep of several problems at once (rows are problems; :mod:`schedopt.solvers._lockstep`).
_sgd_sweep_many = jax.jit(vmap_rows(sgd_sweep, _sweep_modes))


@cached_jit
def _sgd_sweep_one(lam, c0, noise, lr, batch, lower, upper, loss_weights=None):
    """:func:`sgd_sweep` of one problem, its loops whole kernels where its state is small
    (:func:`~schedopt.dynamics.adjoint.whole_loops_for`): the rows of :data:`_sgd_sweep_many` bitwise."""
    with whole_loops_for(1, _sweep_modes(lam)):
        return sgd_sweep(lam, c0, noise, lr, batch, lower, upper, loss_weights)


@float64
def sweep_until(
    lam,
    c0,
    noise,
    lr,
    batch,
    lower,
    upper,
    *,
    max_sweeps: int,
    rtol: float,
    patience: int = 1,
    loss_weights=None,
):
    """Pontryagin sweeps (:func:`sgd_sweep`) of per-step learning rates ``lr``.

    The first sweep always runs; the sweeps stop after ``max_sweeps``, once ``patience``
    sweeps in a row each lowered :math:`L_T` by at most ``rtol`` of it, or when the loss is
    not finite. A sweep's forward pass gives the loss of the schedule it starts from, so
    nothing is evaluated apart; the loop is Python over the compiled sweep, reading one
    number per sweep (measured 30-45 % faster than the same sweeps in ``lax.while_loop``:
    42-52 against 61-83 ms a sweep at T = 1e4, N = 500).

    ``loss_weights``: the loss readout of a compressed spectrum (default ``lam``).

    Returns:
        ``(learning rates, sweeps run, status)``, a :class:`~schedopt.status.Status`:
        converged, max_iterations or diverged (then the rates are the schedule whose
        loss was not finite).
    """
    args = (lam, c0, noise, lr, batch, lower, upper, loss_weights)
    modes = _sweep_modes(lam)  # the lockstep's pieces on a CPU
    lr, loss = lockstep.call(_sgd_sweep_one, _sgd_sweep_many, args, modes=modes)  # batched inside design_many
    loss, sweeps, quiet = float(loss), 1, 0
    while sweeps < max_sweeps:
        args = (lam, c0, noise, lr, batch, lower, upper, loss_weights)
        candidate, new = lockstep.call(_sgd_sweep_one, _sgd_sweep_many, args, modes=modes)
        new = float(new)  # the loss of `lr`, the result of the previous sweep
        if not np.isfinite(new):
            return lr, sweeps, Status.DIVERGED
        lr, sweeps = candidate, sweeps + 1
        quiet = quiet + 1 if loss - new <= rtol * abs(new) else 0
        loss = new
        if quiet >= patience:
            return lr, sweeps, Status.CONVERGED
    return lr, sweeps, Status.MAX_ITERATIONS


def _exact_grid(grid) -> bool:
    return grid.parameterisation == "constant" and grid.blocks == grid.horizon


@float64
def solve_pontryagin(
    problem: Problem,
    *,
    initial: Mapping[str, Any] | None = None,
    options: PontryaginOptions | Mapping[str, Any] | None = None,
) -> Solution:
    """Solve by Pontryagin sweeps (see module docstring); ``options``: a :class:`PontryaginOptions` or a mapping."""
    opts = PontryaginOptions.coerce(options)
    if set(problem.controls) != {"learning_rate"} or problem.training.momentum > 0:
        raise ProblemError(
            "solver 'pontryagin' designs the learning rate alone (no batch-size or momentum "
            "control, no fixed momentum); use solver 'jax' or 'casadi'",
            field="solver",
        )
    start = time.perf_counter()
    bound = check_bounds(problem)
    grids = control_grids(problem)
    grid = grids["learning_rate"]
    spec = problem.learning_rate
    params0 = initial_parameters(problem, grids, initial)["learning_rate"]
    lr = jnp.asarray(grid.interpolation().expand(params0))
    model = problem.model
    lam, c0 = jnp.asarray(model.eigenvalues), jnp.asarray(model.initial_error)
    noise = jnp.asarray(model.effective_noise)
    batch = jnp.full(problem.horizon, problem.training.batch_size)
    evaluate = jax.jit(sgd_final_loss)

    lr, sweeps, status = sweep_until(
        lam,
        c0,
        noise,
        lr,
        batch,
        spec.min,
        spec.max,
        max_sweeps=opts.max_iter,
        rtol=opts.rtol,
        patience=opts.patience,
    )
    message = {
        Status.CONVERGED: f"relative decrease below {opts.rtol:g} for {opts.patience} sweeps",
        Status.DIVERGED: "loss became non-finite",
        Status.MAX_ITERATIONS: "sweep limit reached",
    }[status]
    loss = float(evaluate(lam, c0, noise, lr, batch))
    per_step = np.asarray(lr)
    exact = _exact_grid(grid)
    params = per_step if exact else grid.interpolation().fit(per_step, spec.min, spec.max)
    per_step_loss = model.residual + loss
    final = final_loss(model, grid.interpolation().expand(params), batch_size=problem.training.batch_size)
    if status is Status.CONVERGED and not final <= per_step_loss * (1.0 + opts.projection_rtol):
        # the per-step optimum can oscillate faster than the grid resolves (above the stability
        # threshold, averaging it over a block can even make the loss blow up)
        status = Status.FAILED
        message = (
            f"the sweeps' per-step schedule (loss {per_step_loss:.6g}) does not survive the fit to the "
            f"{grid.blocks}-block grid (loss {float(final):.6g}); solver 'jax' optimises on the grid"
        )
    solution = Solution(
        problem=problem,
        solver="pontryagin",
        status=status,
        final_loss=float(final),
        parameters={"learning_rate": params},
        grids=grids,
        iterations=sweeps,
        wall_time=time.perf_counter() - start,
        message=message,
        info={"per_step_loss": float(per_step_loss), "projected": not exact},
    )
    return with_stability(solution, bound)
