"""Warm start of the ``jax`` solver: Pontryagin sweeps of the per-step learning rate, fitted to the grid."""

from __future__ import annotations

import numpy as np

from schedopt._jax import jax
from schedopt.dynamics.compression import (
    CompressedModes,
)
from schedopt.problem import Problem, Training
from schedopt.solvers import _lockstep
from schedopt.solvers._common import (
    control_grids,
    initial_parameters,
)
from schedopt.solvers._lockstep import final_loss  # vectorised over a batch's solves inside design_many
from schedopt.solvers.jax._options import JaxOptions, _spectrum
from schedopt.solvers.pontryagin import sweep_until


def _warm_start(
    problem: Problem, opts: JaxOptions, modes: CompressedModes | None = None
) -> tuple[dict[str, np.ndarray] | None, int]:
    """Per-step Pontryagin optimum of the learning rate projected on the grid, and the sweeps run.

    With a batch-size or momentum control the sweeps run on the learning-rate-only
    problem at the mean batch size (``D / T`` under a budget, else the fixed one)
    and plain SGD; they are skipped when the momentum cannot be zero. The sweeps run on
    ``modes`` when the solve does (a compressed spectrum).
    """
    if opts.warm_start != "pontryagin":
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
            batch = problem.mean_batch_size if problem.sample_budget else spec.max
        sub = problem.replace(
            controls={"learning_rate": problem.learning_rate},
            sample_budget=None,
            training=Training(horizon=problem.horizon, batch_size=batch, momentum=0.0),
        )
    values, sweeps = _pontryagin_start(sub, int(opts.warm_sweeps), float(opts.warm_rtol), modes)
    return {"learning_rate": values}, sweeps


def _pontryagin_start(
    problem: Problem, sweeps: int, rtol: float, modes: CompressedModes | None = None
) -> tuple[np.ndarray, int]:
    """Learning-rate parameters after Pontryagin sweeps from the default start, fitted to the grid.

    The sweeps of solver ``pontryagin`` (:func:`~schedopt.solvers.pontryagin.sweep_until`),
    stopping after ``sweeps`` or once a sweep lowers the per-step loss by at most ``rtol``,
    from half the cap or less (:func:`~schedopt.solvers._common.initial_parameters`: below
    the stability threshold). If the grid's fit of the per-step optimum loses to that start
    (with a cap above the threshold the per-step optimum may alternate between rates above and
    below it, and a block's average of them may be unstable), the start is kept.
    """
    spec = problem.learning_rate
    grid = control_grids(problem)["learning_rate"]
    it = grid.interpolation()
    lam, c0, weights = _spectrum(problem, modes)
    start = it.expand(initial_parameters(problem, {"learning_rate": grid})["learning_rate"])
    if sweeps < 1:
        return it.fit(start, spec.min, spec.max), 0
    arrays = (lam, c0, problem.model.effective_noise, start)
    batch, weights = np.full(problem.horizon, float(problem.training.batch_size)), np.asarray(weights)
    if not _lockstep.batching():  # inside a batch the lockstep stacks the rows on the host
        # device_put, not jnp.asarray or jnp.full: the same arrays, without a small program per
        # shape to trace, lower and fetch from the cache in every fresh process
        arrays, batch, weights = jax.device_put((arrays, batch, weights))
    per_step, count, _ = sweep_until(
        *arrays, batch, spec.min, spec.max, max_sweeps=sweeps, rtol=rtol, loss_weights=weights
    )
    fitted = it.fit(np.asarray(per_step), spec.min, spec.max)
    batch = problem.training.batch_size
    loss = final_loss(problem.model, it.expand(fitted), batch_size=batch, modes=modes)
    if not loss <= final_loss(problem.model, start, batch_size=batch, modes=modes):
        return it.fit(start, spec.min, spec.max), count
    return fitted, count
