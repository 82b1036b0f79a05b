r"""Mean-square stability of the SGD recursion at a constant learning rate.

At constant :math:`\eta` and :math:`m` the recursion is :math:`c_{t+1} = M c_t + \text{const}`
with :math:`M = \mathrm{diag}(d) + \frac{\eta^2}{m}\lambda\lambda^\top`,
:math:`d_k = 1 - r_k`, :math:`r_k = 2\eta\lambda_k - (1+\frac1m)\eta^2\lambda_k^2`.
:math:`M` is symmetric with :math:`d_k = (1-\eta\lambda_k)^2 + \eta^2\lambda_k^2/m > 0`,
so all its eigenvalues are positive and the loss stays bounded iff the largest
is below 1. By the secular equation of a diagonal-plus-rank-one matrix that holds iff

.. math::  r_k > 0 \;\forall k \quad\text{and}\quad
           \frac{\eta^2}{m}\sum_k \frac{\lambda_k^2}{r_k} < 1
           \iff \frac{\eta}{m}\sum_k \frac{\lambda_k}{2 - (1+\frac1m)\eta\lambda_k} < 1 .

The left side increases with :math:`\eta`, so the threshold is found by bisection.
Because every :math:`M_t` is symmetric, :math:`\|M_t\|_2 = \rho(M_t)`, so a
schedule that stays below the threshold at every step is stable too.
"""

from __future__ import annotations

import numpy as np

from schedopt.problem import Model

__all__ = ["spectral_radius", "stability_threshold"]


def _excess(eta: float, lam: np.ndarray, m: float) -> float:
    denom = 2.0 - (1.0 + 1.0 / m) * eta * lam
    if np.any(denom <= 0):
        return np.inf
    return eta / m * float(np.sum(lam / denom)) - 1.0


def stability_threshold(model: Model, batch_size: float = 1.0, *, rtol: float = 1e-12) -> float:
    """Largest constant learning rate at which the loss does not diverge (exclusive bound)."""
    lam = model.eigenvalues
    m = float(batch_size)
    hi = 2.0 / ((1.0 + 1.0 / m) * float(lam.max()))
    lo = 0.0
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if _excess(mid, lam, m) < 0:
            lo = mid
        else:
            hi = mid
    return lo


def spectral_radius(model: Model, learning_rate: float, batch_size: float = 1.0) -> float:
    """Largest eigenvalue of the one-step map :math:`M` (dense; for tests and small N)."""
    lam = model.eigenvalues
    eta, m = float(learning_rate), float(batch_size)
    d = 1.0 - 2.0 * eta * lam + (1.0 + 1.0 / m) * eta**2 * lam**2
    mat = np.diag(d) + eta**2 / m * np.outer(lam, lam)
    return float(np.max(np.abs(np.linalg.eigvalsh(mat))))
