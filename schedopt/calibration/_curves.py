"""The fitted model's loss curves: the exact recursion of several lanes at once, as one plain scan.

:func:`loss_curves` steps :func:`schedopt.dynamics.sgd.sgd_step` (batch 1; the right-hand side is written
there, once) for every lane, each lane the pilots packed end to end (``_model._lanes``): where a pilot
starts, the update resets the state. The fit's Jacobian is forward mode (``jax.jacfwd``) through this scan,
every fitted coordinate a tangent through every pilot update.

Why a scan of its own rather than :func:`~schedopt.dynamics.recursion.loss_curve_jax`: that one's
checkpointed chunks (built for long horizons and reverse mode) took 25.6 ms a Jacobian on a real task's
pilots, this scan 19.4 ms (one run a row). A hand-written tangent (a ``custom_jvp``, which an earlier
version had) buys nothing over automatic differentiation of the same scan: 12.8 vs 13.2 ms a Jacobian at
T = 2,000 and 134 vs 178, then 139 vs 135 ms at T = 20,000 (runs of the same pair differ by more than the
pair). The step's sums are ``jnp.sum``: with lanes and tangents there are many at once, so XLA's reduction
is not bound by one chain of additions, and :func:`~schedopt.dynamics.ops.tree_sum` measured slower here
(19.0 vs 13.5 ms at T = 2,000, padding 201 modes to 256 in every step). Fits in a fresh process:
``benchmarks/README.md``, "How long `fit` takes".
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
