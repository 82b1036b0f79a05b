r"""Mini-batch SGD on a linear model with Gaussian features: exact second-moment dynamics.

Per mode :math:`k`, the mean squared weight error :math:`c_k` evolves as
(THEORY §2.1)

.. math::

    c_{t+1,k} = \bigl[1 - 2\eta\lambda_k + (1 + \tfrac1m)\eta^2\lambda_k^2\bigr] c_{t,k}
                + \tfrac{\eta^2}{m}\lambda_k (L_t + \sigma^2),
    \qquad L_t = \sum_k \lambda_k c_{t,k}.

Derivation: with :math:`\Delta = w - w^*` and a batch of :math:`m` fresh samples
:math:`x \sim N(0, \Lambda)`, :math:`y = x^\top w^* + \epsilon`, the gradient is
:math:`g = \frac1m \sum_i x_i (x_i^\top \Delta - \epsilon_i)`. The Gaussian
fourth moment :math:`E[x x^\top A x x^\top] = 2\Lambda A \Lambda + \mathrm{tr}(\Lambda A)\Lambda`
gives :math:`E[g_k^2] = (1+\frac1m)\lambda_k^2 E\Delta_k^2 + \frac{\lambda_k}{m}(L + \sigma^2)`
and :math:`E[g_k \Delta_k] = \lambda_k E\Delta_k^2`; the diagonal closes exactly
because :math:`L` only involves the diagonal.

The same update written as an increment is the continuous-time right-hand side
(THEORY §2.4, one step = one unit of time). It is split into a diagonal decay
rate :math:`r_k = 2\eta\lambda_k - (1+\frac1m)\eta^2\lambda_k^2` and a forcing
:math:`f_k = \frac{\eta^2}{m}\lambda_k (L + \sigma^2)` so that exponential
integrators can use it; everything is written here once.

``noise`` is the *effective* noise :math:`\sigma^2 + R_N` (finite model size, §2.2).

``loss_weights`` (default: the eigenvalues) is the loss readout :math:`L = \sum_k w_k c_k`.
It differs from :math:`\lambda` only for a compressed spectrum
(:mod:`schedopt.dynamics.compression`), whose node :math:`k` stands for :math:`\omega_k`
modes: :math:`w_k = \omega_k \lambda_k`.

References:
    B. Bordelon and N. Mori, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

from schedopt.dynamics.ops import Ops

__all__ = ["sgd_forcing_ratio", "sgd_increment", "sgd_loss", "sgd_parts", "sgd_step"]


def sgd_loss(c, eigenvalues, ops: Ops, loss_weights=None):
    r"""Excess loss of the kept modes, :math:`\sum_k \lambda_k c_k` (:math:`\sum_k w_k c_k` with ``loss_weights``)."""
    return ops.sum((eigenvalues if loss_weights is None else loss_weights) * c)


def sgd_parts(c, learning_rate, batch_size, eigenvalues, noise, ops: Ops, loss_weights=None):
    r"""Decay rate :math:`r_k` and forcing :math:`f_k`, with :math:`\Delta c_k = -r_k c_k + f_k`."""
    lr_lam = learning_rate * eigenvalues
    rate = 2.0 * lr_lam - (1.0 + 1.0 / batch_size) * lr_lam * lr_lam
    loss = sgd_loss(c, eigenvalues, ops, loss_weights)
    forcing = (learning_rate * learning_rate / batch_size) * eigenvalues * (loss + noise)
    return rate, forcing


def sgd_forcing_ratio(learning_rate, batch_size, eigenvalues):
    r"""Forcing per unit of decay and of :math:`L + \sigma^2`: :math:`f_k / (r_k (L + \sigma^2))`.

    From :func:`sgd_parts`, :math:`\frac{\eta^2\lambda/m}{2\eta\lambda - (1+\frac1m)\eta^2\lambda^2}
    = \frac{\eta}{m\,(2 - (1+\frac1m)\eta\lambda)}`. As a ratio of the two parts it is
    0/0 at :math:`\eta = 0`; the closed form is smooth there, with slope :math:`1/(2m)`.
    """
    return learning_rate / (batch_size * (2.0 - (1.0 + 1.0 / batch_size) * learning_rate * eigenvalues))


def sgd_increment(c, learning_rate, batch_size, eigenvalues, noise, ops: Ops, loss_weights=None):
    """Change of ``c`` in one step: the discrete increment and the ODE right-hand side."""
    rate, forcing = sgd_parts(c, learning_rate, batch_size, eigenvalues, noise, ops, loss_weights)
    return forcing - rate * c


def sgd_step(c, learning_rate, batch_size, eigenvalues, noise, ops: Ops, loss_weights=None):
    """One exact SGD step of the second moments: ``c_{t+1}`` from ``c_t``."""
    rate, forcing = sgd_parts(c, learning_rate, batch_size, eigenvalues, noise, ops, loss_weights)
    return (1.0 - rate) * c + forcing
