r"""Heavy-ball SGD (optax semantics): exact second-moment dynamics per mode.

optax's ``sgd(learning_rate, momentum=beta)`` runs

.. math::  v_{t+1} = \beta_t v_t + g_t, \qquad w_{t+1} = w_t - \eta_t v_{t+1},

with :math:`v_0 = 0`. Write :math:`\Delta = w - w^*` and, per mode :math:`k`,
:math:`A = E\Delta_k^2`, :math:`B = E[\Delta_k v_k]`, :math:`C = E v_k^2`.

**Derivation.** The batch gradient is
:math:`g_k = \lambda_k \Delta_k + \xi_k` where the sampling noise :math:`\xi`
has zero mean given the past (fresh samples) and, by the Gaussian fourth-moment
rule of :mod:`schedopt.dynamics.sgd`,

.. math::  E[g_k^2] = G_k = (1 + \tfrac1m)\lambda_k^2 A_k + \tfrac{\lambda_k}{m}(L + \sigma^2),
           \quad L = \sum_j \lambda_j A_j,

while :math:`E[g_k \Delta_k] = \lambda_k A_k` and :math:`E[g_k v_k] = \lambda_k B_k`
(:math:`v_t` is independent of the new batch). Then, with :math:`v' = \beta v + g`
and :math:`\Delta' = \Delta - \eta v'`:

.. math::

    C' &= E[(\beta v + g)^2] = \beta^2 C + 2\beta\lambda_k B + G_k, \\
    E[\Delta v'] &= \beta B + \lambda_k A, \\
    B' &= E[(\Delta - \eta v') v'] = \beta B + \lambda_k A - \eta C', \\
    A' &= E[(\Delta - \eta v')^2] = A - 2\eta(\beta B + \lambda_k A) + \eta^2 C'.

With :math:`\beta = 0` this is exactly the SGD recursion
(:math:`A' = A - 2\eta\lambda A + \eta^2 G`). The diagonal closes for the same
reason as in SGD: the only cross-mode term is :math:`L`. The effective learning
rate of slow modes is :math:`\eta / (1 - \beta)`.

The state is a tuple ``(A, B, C)`` of per-mode arrays; initially
``(c0, 0, 0)``. ``noise`` is the effective noise :math:`\sigma^2 + R_N`.

``loss_weights`` (default: the eigenvalues) is the loss readout :math:`L = \sum_k w_k A_k`, as in
:mod:`schedopt.dynamics.sgd`: it differs from :math:`\lambda` only for a compressed spectrum
(:mod:`schedopt.dynamics.compression`). Given the path of :math:`L`, each mode's
:math:`(A, B, C)` is again a smooth function of its eigenvalue alone, linear in
:math:`c_k(0)`, so the same quadrature of the spectrum applies.

References:
    B. Bordelon and N. Mori, arXiv:2602.04774 (2026), momentum schedules.
"""

from __future__ import annotations

from schedopt.dynamics.ops import Ops
from schedopt.dynamics.sgd import sgd_loss

__all__ = ["momentum_init", "momentum_loss", "momentum_step"]


def momentum_init(initial_error):
    """State ``(A, B, C)`` at step 0: ``v_0 = 0``."""
    zero = initial_error * 0.0
    return (initial_error, zero, zero)


def momentum_loss(state, eigenvalues, ops: Ops, loss_weights=None):
    r"""Excess loss of the kept modes, :math:`\sum_k \lambda_k A_k` (:math:`\sum_k w_k A_k` with ``loss_weights``)."""
    return sgd_loss(state[0], eigenvalues, ops, loss_weights)


def momentum_step(
    state, learning_rate, batch_size, momentum, eigenvalues, noise, ops: Ops, loss_weights=None
):
    """One exact heavy-ball step of the second moments ``(A, B, C)``."""
    a, b, c = state
    loss = sgd_loss(a, eigenvalues, ops, loss_weights)
    grad_sq = (1.0 + 1.0 / batch_size) * eigenvalues * eigenvalues * a + (eigenvalues / batch_size) * (
        loss + noise
    )
    c_next = momentum * momentum * c + 2.0 * momentum * eigenvalues * b + grad_sq
    cross = momentum * b + eigenvalues * a  # E[Delta v']
    b_next = cross - learning_rate * c_next
    a_next = a - 2.0 * learning_rate * cross + learning_rate * learning_rate * c_next
    return (a_next, b_next, c_next)
