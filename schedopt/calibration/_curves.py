"""The fitted model's loss curves: the exact recursion of several lanes at once, as one plain scan.

:func:`loss_curves` steps :func:`schedopt.dynamics.sgd.sgd_step` (batch 1; the right-hand side is written
there, once) for every lane, each lane the pilots packed end to end (``_model._lanes``): where a pilot
starts, the update resets the state. The fit's Jacobian is forward mode (``jax.jacfwd``) through this scan,
every fitted coordinate a tangent through every pilot update.

Why a scan of its own rather than :func:`~schedopt.dynamics.recursion.loss_curve_jax`: that one's
checkpointed chunks (built for long horizons and reverse mode) took 25.6 ms a Jacobian on a real task's
pilots (one run a row), a scan like this one with a hand-written tangent 19.4 ms. That tangent (a
``custom_jvp``, 8408df9 and before) wrote the step a second time and is gone: JAX's own forward mode of the
scan costs 2 % more CPU a Jacobian (13.1 against 12.8 ms on the planned pilots of T = 2,000, 134.9 against
131.7 ms at T = 20,000: ``benchmarks/fit_jacobian.py --before``) and a whole fit in a fresh process the same
(CPU ratios 0.99-1.15, ``results/fit-time-rhs-once.json``). The step's sums are ``jnp.sum``: with lanes and
tangents there are many at once, so XLA's reduction is not bound by one chain of additions, and
:func:`~schedopt.dynamics.ops.tree_sum` (padding 201 modes to 256 in every step) was 40 % slower here in
an ad-hoc timing. Fits in a fresh process: ``benchmarks/README.md``, "How long `fit` takes".
"""

from __future__ import annotations

import jax.numpy as jnp

from schedopt._jax import jax
from schedopt.dynamics.ops import Ops
from schedopt.dynamics.sgd import sgd_loss, sgd_step

__all__ = ["loss_curves"]

#: One lane's step functions' sums (``jax.vmap`` maps them over the lanes and the tangents).
_LANE = Ops(name="jax-lanes", sum=jnp.sum)


def _step(c, learning_rate, eigenvalues, weights, noise):
    return sgd_step(c, learning_rate, 1.0, eigenvalues, noise, _LANE, loss_weights=weights)


def _loss(c, weights):
    return sgd_loss(c, None, _LANE, loss_weights=weights)


_lanes_step = jax.vmap(_step, in_axes=(0, 0, None, None, None))
_lanes_loss = jax.vmap(_loss, in_axes=(0, None))


def loss_curves(eigenvalues, initial_error, weights, noise, learning_rate, reset):
    """Loss curves ``(R, T + 1)`` (``[:, 0]`` the initial loss) of lanes at per-step model learning rates
    ``(R, T)``: modes ``eigenvalues`` with ``initial_error``, read out with ``weights``, noise ``noise``.
    Where ``reset`` ``(R, T)`` is true the update sets the state to the initial one (a new run starts in
    the lane); a learning rate of 0 leaves the state as it is (a lane's padding)."""

    def step(c, per_step):
        rate, fresh = per_step
        c_next = jnp.where(fresh[:, None], initial_error, _lanes_step(c, rate, eigenvalues, weights, noise))
        return c_next, _lanes_loss(c_next, weights)

    lanes = learning_rate.shape[0]
    start = jnp.broadcast_to(initial_error, (lanes, initial_error.shape[0]))
    _, losses = jax.lax.scan(step, start, (learning_rate.T, reset.T))
    first = jnp.broadcast_to(_loss(initial_error, weights), (lanes, 1))
    return jnp.concatenate([first, losses.T], axis=1)
