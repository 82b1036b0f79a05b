r"""Final heavy-ball loss with a hand-written adjoint (reverse mode) for fast gradients.

Forward: the exact heavy-ball recursion of :mod:`schedopt.dynamics.momentum`
(``momentum_step``, written once). Reverse: with per-mode adjoints
:math:`(\bar A, \bar B, \bar C)` of the state after a step and, for that step,
:math:`L = w^\top A` (:math:`w` the loss readout ``loss_weights``; :math:`w = \lambda` for a
model's own modes), :math:`s = L + \sigma^2`, :math:`g_k = (1+\frac1m)\lambda_k^2`,
:math:`G = gA + \frac{\lambda}{m}s`, :math:`E = \beta B + \lambda A`,
:math:`C' = \beta^2 C + 2\beta\lambda B + G`:

.. math::

    \bar C'_{\rm tot} &= \bar C' - \eta\bar B' + \eta^2 \bar A', \qquad
    \bar E = \bar B' - 2\eta\bar A', \qquad
    \bar L = \tfrac1m \lambda^\top \bar C'_{\rm tot}, \\
    \bar A &= \bar A' + \lambda\bar E + g\,\bar C'_{\rm tot} + w\bar L, \qquad
    \bar B = \beta\bar E + 2\beta\lambda\bar C'_{\rm tot}, \qquad
    \bar C = \beta^2\bar C'_{\rm tot}, \\
    \partial_\eta &= \textstyle\sum_k (2\eta C' - 2E)\bar A' - C'\bar B', \qquad
    \partial_\beta = \textstyle\sum_k B\bar E + (2\beta C + 2\lambda B)\bar C'_{\rm tot}, \\
    \partial_m &= -\tfrac1{m^2}\textstyle\sum_k (\lambda^2 A + \lambda s)\bar C'_{\rm tot}, \qquad
    \partial_{\sigma^2} = \tfrac1m \lambda^\top \bar C'_{\rm tot},

with :math:`\bar A_T = \bar g w`, :math:`\bar B_T = \bar C_T = 0`; the readout's own cotangent is
:math:`\partial_w L_T = \bar g A_T + \sum_t \bar L_t A_t` (it reaches :math:`\lambda` when
:math:`w = \lambda`). As in
:mod:`schedopt.dynamics.adjoint`, states are kept only at chunk boundaries (about
:math:`\sqrt T` of them) and recomputed chunk by chunk: memory :math:`O(\sqrt T N)`,
cost about three forward passes where generic reverse mode through the scan
costs about seven. The result equals autodiff of
:mod:`schedopt.dynamics.recursion` (tested in ``tests/test_momentum_control.py``).
"""

from __future__ import annotations

import jax.numpy as jnp

from schedopt._jax import jax
from schedopt.dynamics.adjoint import _chunks
from schedopt.dynamics.momentum import momentum_init, momentum_step
from schedopt.dynamics.ops import JAX, tree_sum
from schedopt.dynamics.sgd import sgd_loss

__all__ = ["momentum_final_loss"]


def _prepare(lr, batch, beta):
    horizon = lr.shape[-1]
    chunk, n_chunks = _chunks(horizon)
    pad = chunk * n_chunks - horizon
    lr_p = jnp.pad(lr, (0, pad)).reshape(n_chunks, chunk)  # eta = 0 leaves A unchanged
    batch_p = jnp.pad(batch, (0, pad), mode="edge").reshape(n_chunks, chunk)
    beta_p = jnp.pad(beta, (0, pad), mode="edge").reshape(n_chunks, chunk)
    return lr_p, batch_p, beta_p, horizon


def _forward(lam, weights, c0, noise, lr_p, batch_p, beta_p):
    def inner(state, xs):
        return momentum_step(state, xs[0], xs[1], xs[2], lam, noise, JAX, weights), None

    def outer(state, xs):
        end, _ = jax.lax.scan(inner, state, xs)
        return end, state  # the state at the start of the chunk

    return jax.lax.scan(outer, momentum_init(c0), (lr_p, batch_p, beta_p))


def momentum_final_loss(lam, c0, noise, lr, batch, beta, loss_weights=None):
    """:math:`L_T` (kept modes) of the exact heavy-ball recursion; per-step ``lr``, ``batch``, ``beta``.

    ``loss_weights``: the loss readout (default ``lam``; see :mod:`schedopt.dynamics.momentum`).
    """
    return _final_loss(lam, lam if loss_weights is None else loss_weights, c0, noise, lr, batch, beta)


@jax.custom_vjp
def _final_loss(lam, weights, c0, noise, lr, batch, beta):
    lr_p, batch_p, beta_p, _ = _prepare(lr, batch, beta)
    final, _ = _forward(lam, weights, c0, noise, lr_p, batch_p, beta_p)
    return sgd_loss(final[0], lam, JAX, weights)


def _fwd(lam, weights, c0, noise, lr, batch, beta):
    lr_p, batch_p, beta_p, _ = _prepare(lr, batch, beta)
    final, starts = _forward(lam, weights, c0, noise, lr_p, batch_p, beta_p)
    return sgd_loss(final[0], lam, JAX, weights), (lam, weights, noise, lr, batch, beta, final[0], starts)


def _bwd(res, gbar):
    """The adjoint; the loss readout ``weights`` gets its own cotangent (``lam``'s when they are one array)."""
    lam, weights, noise, lr, batch, beta, final_a, starts = res
    lr_p, batch_p, beta_p, horizon = _prepare(lr, batch, beta)

    def adjoint_step(carry, xs):
        (abar, bbar, cbar), g_noise, g_lam, g_weights = carry
        (a, b, c), eta, m, mom = xs
        loss = tree_sum(weights * a)
        s = loss + noise
        g = (1.0 + 1.0 / m) * lam * lam
        big_g = g * a + (lam / m) * s
        c_new = mom * mom * c + 2.0 * mom * lam * b + big_g
        e = mom * b + lam * a
        c_tot = cbar - eta * bbar + eta * eta * abar
        e_bar = bbar - 2.0 * eta * abar
        # four tree sums, not one over their stack: XLA fuses each product into its sum's first
        # level instead of writing and re-reading a stacked array (as in the SGD adjoint,
        # dynamics/adjoint.py; benchmarks/README.md)
        lam_c_tot, grad_eta, grad_beta, m_part = (
            tree_sum(lam * c_tot),
            tree_sum((2.0 * eta * c_new - 2.0 * e) * abar - c_new * bbar),
            tree_sum(b * e_bar + (2.0 * mom * c + 2.0 * lam * b) * c_tot),
            tree_sum((lam * lam * a + lam * s) * c_tot),
        )
        l_bar = lam_c_tot / m
        grad_m = -m_part / (m * m)
        g_noise = g_noise + l_bar
        g_lam = g_lam + c_tot * (2.0 * (1.0 + 1.0 / m) * lam * a + s / m + 2.0 * mom * b) + e_bar * a
        g_weights = g_weights + l_bar * a
        a_prev = abar + lam * e_bar + g * c_tot + weights * l_bar
        b_prev = mom * e_bar + 2.0 * mom * lam * c_tot
        c_prev = mom * mom * c_tot
        return ((a_prev, b_prev, c_prev), g_noise, g_lam, g_weights), (grad_eta, grad_m, grad_beta)

    def chunk_adjoint(carry, xs):
        start, eta_c, m_c, beta_c = xs

        def replay(state, u):
            return momentum_step(state, u[0], u[1], u[2], lam, noise, JAX, weights), state

        _, states = jax.lax.scan(replay, start, (eta_c, m_c, beta_c))
        return jax.lax.scan(adjoint_step, carry, (states, eta_c, m_c, beta_c), reverse=True)

    zero = jnp.zeros_like(lam)
    init = ((gbar * weights, zero, zero), jnp.zeros_like(noise), zero, gbar * final_a)
    ((a0, _, _), g_noise, g_lam, g_weights), (g_eta, g_m, g_beta) = jax.lax.scan(
        chunk_adjoint, init, (starts, lr_p, batch_p, beta_p), reverse=True
    )
    return (
        g_lam,
        g_weights,
        a0,
        g_noise,
        g_eta.reshape(-1)[:horizon],
        g_m.reshape(-1)[:horizon],
        g_beta.reshape(-1)[:horizon],
    )


_final_loss.defvjp(_fwd, _bwd)
