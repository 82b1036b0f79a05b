"""The fitted model's loss curves, with a hand-written forward tangent for the fit's Jacobian.

:func:`loss_curves` runs the exact recursion (:mod:`schedopt.dynamics.sgd`, batch 1) of several lanes at once,
each lane the pilots packed end to end (``_model._lanes``): where a pilot starts, the update resets the state.
The fit's Jacobian is forward mode (``jax.jacfwd``), every fitted coordinate a tangent through every pilot
update. Differentiated automatically, :func:`~schedopt.dynamics.recursion.loss_curve_jax`'s checkpointed
chunks took 25.6 ms a Jacobian on a real task's pilots (three runs of up to 1,200 updates, 201 modes, 9
coordinates; one run a row); the scan below, one step of the state and its tangents, 19.4 ms, the same
numbers to rounding (the values within 1e-13, the Jacobians 1e-12 of their largest entry: ``tests/
test_fit_speed.py``). Fits in a fresh process: ``benchmarks/README.md``, "How long `fit` takes".

At batch 1 the recursion is ``c' = k c + g (L + s)`` with ``e = eta lambda``, ``k = 1 - 2e + 2e^2``,
``g = eta e`` and ``L = w . c``; its tangent is
``dc' = k dc + dk c + dg (L + s) + g (dL + ds)``, ``dk = (4e - 2) de``, ``dg = d(eta) e + eta de``,
``de = d(eta) lambda + eta d(lambda)``, ``dL = dw . c + w . dc``.
"""

from __future__ import annotations

import jax.numpy as jnp

from schedopt._jax import jax

__all__ = ["loss_curves"]


@jax.custom_jvp
def loss_curves(eigenvalues, initial_error, weights, noise, learning_rate, reset):
    """Loss curves ``(R, T + 1)`` (``[:, 0]`` the initial loss) of lanes at per-step model learning rates
    ``(R, T)``: modes ``eigenvalues`` with ``initial_error``, read out with ``weights``, noise ``noise``.
    Where ``reset`` ``(R, T)`` is true the update sets the state to the initial one (a new run starts in
    the lane); a learning rate of 0 leaves the state as it is (a lane's padding)."""
    return _curves(eigenvalues, initial_error, weights, noise, learning_rate, reset)


def _curves(lam, c0, w, s, eta, reset):
    def step(c, per_step):
        e, fresh = per_step[0][:, None], per_step[1][:, None]
        el = e * lam
        loss = jnp.sum(c * w, -1, keepdims=True) + s
        c_next = jnp.where(fresh, c0, (1.0 - 2.0 * el + 2.0 * el * el) * c + e * el * loss)
        return c_next, jnp.sum(c_next * w, -1)

    runs = eta.shape[0]
    _, out = jax.lax.scan(step, jnp.broadcast_to(c0, (runs, c0.shape[0])), (eta.T, reset.T))
    return jnp.concatenate([jnp.broadcast_to(jnp.sum(c0 * w), (runs, 1)), out.T], axis=1)


@loss_curves.defjvp
def _loss_curves_jvp(primals, tangents):
    lam, c0, w, s, eta, reset = primals
    d_lam, d_c0, d_w, d_s, d_eta, _ = tangents
    runs = eta.shape[0]

    def step(carry, per_step):
        c, dc = carry
        e, de, fresh = per_step[0][:, None], per_step[1][:, None], per_step[2][:, None]
        el = e * lam
        d_el = de * lam + e * d_lam
        loss = jnp.sum(c * w, -1, keepdims=True) + s
        d_loss = jnp.sum(dc * w + c * d_w, -1, keepdims=True) + d_s
        keep = 1.0 - 2.0 * el + 2.0 * el * el
        gain = e * el
        c_next = jnp.where(fresh, c0, keep * c + gain * loss)
        dc_next = jnp.where(
            fresh,
            d_c0,
            keep * dc + ((4.0 * el - 2.0) * d_el) * c + (de * el + e * d_el) * loss + gain * d_loss,
        )
        read = (jnp.sum(c_next * w, -1), jnp.sum(dc_next * w + c_next * d_w, -1))
        return (c_next, dc_next), read

    start = (jnp.broadcast_to(c0, (runs, c0.shape[0])), jnp.broadcast_to(d_c0, (runs, c0.shape[0])))
    _, (out, d_out) = jax.lax.scan(step, start, (eta.T, d_eta.T, reset.T))
    first = jnp.broadcast_to(jnp.sum(c0 * w), (runs, 1))
    d_first = jnp.broadcast_to(jnp.sum(d_c0 * w + c0 * d_w), (runs, 1))
    return jnp.concatenate([first, out.T], axis=1), jnp.concatenate([d_first, d_out.T], axis=1)
