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

**Heavy-ball SGD** (:mod:`schedopt.dynamics.momentum`, optax semantics). At
constant :math:`(\eta, \beta, m)` the per-mode state :math:`x_k = (A_k, B_k, C_k)`
evolves as :math:`x' = M x + \text{const}` with
:math:`M = \mathrm{blockdiag}(P_k) + u v^\top`, where, with
:math:`g_k = (1+\frac1m)\lambda_k^2`,

.. math::

    P_k = \begin{pmatrix}
        1 - 2\eta\lambda_k + \eta^2 g_k & -2\eta\beta(1 - \eta\lambda_k) & \eta^2\beta^2 \\
        \lambda_k - \eta g_k & \beta(1 - 2\eta\lambda_k) & -\eta\beta^2 \\
        g_k & 2\beta\lambda_k & \beta^2
    \end{pmatrix},
    \qquad u_k = \tfrac{\lambda_k}{m}(\eta^2, -\eta, 1), \qquad v_k = (\lambda_k, 0, 0)

(the rank-one term is the loss :math:`L = v^\top x` feeding every mode's
gradient noise). :math:`M` is not symmetric, but it is the restriction of a
second-moment map :math:`X \mapsto E[R X R^\top]` to the per-mode 2x2
covariances :math:`\begin{pmatrix} A_k & B_k \\ B_k & C_k\end{pmatrix}`, so it
maps the cone of such positive semidefinite blocks into itself; so do
:math:`\mathrm{blockdiag}(P_k)` alone (the same map without the cross-mode noise)
and :math:`u v^\top` (:math:`u_k` is the PSD block
:math:`\frac{\lambda_k}{m}(\eta, -1)(\eta, -1)^\top`, :math:`v^\top x = L \ge 0`).
By Krein-Rutman the spectral radius of each is a real eigenvalue, and for
:math:`z > \rho(D)`, :math:`D = \mathrm{blockdiag}(P_k)`, the resolvent
:math:`(z - D)^{-1} = \sum_n D^n / z^{n+1}` is cone-preserving, so the secular
function :math:`f(z) = v^\top (z - D)^{-1} u = \sum_k \lambda_k [(z - P_k)^{-1} u_k]_A`
is non-negative and decreasing. Since
:math:`\det(z - M) = \det(z - D)(1 - f(z))`, exactly:

.. math::  \rho(M) < 1 \iff \max_k \rho(P_k) < 1 \ \text{and}\ f(1) < 1,

and :math:`\rho(M)` is :math:`\rho(D)` or the largest root of :math:`f(z) = 1`,
whichever is larger. This costs N batched 3x3 eigenvalue problems (for the
threshold, Jury's test on their characteristic cubics) and 3x3 solves.
At :math:`\beta = 0` it reduces to the SGD criterion above. The stable learning
rates at fixed :math:`(\beta, m)` form an interval :math:`(0, \eta_c(\beta))`
(checked against dense eigenvalues in the tests), found by bisection.
:math:`\eta_c` is not monotone in :math:`\beta`: the deterministic limit
:math:`\eta\lambda_1 < 2(1+\beta)` grows with :math:`\beta`, while the noise
limit, roughly :math:`\frac{\eta}{1-\beta}\frac{\sum_k\lambda_k}{m} < 2`, shrinks like
:math:`1-\beta`. :math:`M_t` being non-normal, staying below :math:`\eta_c(\beta_t)`
at every step does not by itself bound a time-varying schedule's transient growth;
the exact recursion of a schedule is what decides.
"""

from __future__ import annotations

import numpy as np

from schedopt.problem import Model

__all__ = [
    "cap_note",
    "momentum_spectral_radius",
    "momentum_stability_threshold",
    "spectral_radius",
    "stability_threshold",
]


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


def _heavy_ball_blocks(lam: np.ndarray, eta, beta, m: float):
    """Per-mode 3x3 blocks ``P_k`` ``(..., N, 3, 3)`` and coupling vectors ``u_k`` ``(..., N, 3)``.

    ``eta`` and ``beta`` may carry a leading batch axis (shape ``(B, 1)``).
    """
    eta = np.asarray(eta, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    g = (1.0 + 1.0 / m) * lam * lam
    shape = np.broadcast_shapes(eta.shape, beta.shape, lam.shape)
    p = np.empty((*shape, 3, 3))
    p[..., 0, 0] = 1.0 - 2.0 * eta * lam + eta * eta * g
    p[..., 0, 1] = -2.0 * eta * beta * (1.0 - eta * lam)
    p[..., 0, 2] = eta * eta * beta * beta
    p[..., 1, 0] = lam - eta * g
    p[..., 1, 1] = beta * (1.0 - 2.0 * eta * lam)
    p[..., 1, 2] = -eta * beta * beta
    p[..., 2, 0] = g
    p[..., 2, 1] = 2.0 * beta * lam
    p[..., 2, 2] = beta * beta
    u = np.empty((*shape, 3))
    scale = np.broadcast_to(lam / m, shape)
    u[..., 0] = scale * eta * eta
    u[..., 1] = -scale * eta
    u[..., 2] = scale
    return p, u


def _secular(z, p: np.ndarray, u: np.ndarray, lam: np.ndarray):
    r""":math:`f(z) = \sum_k \lambda_k [(z - P_k)^{-1} u_k]_A` (batched over leading axes)."""
    z = np.asarray(z, dtype=np.float64)[..., None, None, None]
    sol = np.linalg.solve(z * np.eye(3) - p, u[..., None])[..., 0, 0]
    return sol @ lam


def _block_radius(p: np.ndarray):
    return np.max(np.abs(np.linalg.eigvals(p)), axis=(-2, -1))


def _blocks_stable(p: np.ndarray):
    """Whether every 3x3 block has spectral radius < 1 (Jury's test on its characteristic cubic)."""
    c2 = -np.trace(p, axis1=-2, axis2=-1)
    c1 = (
        p[..., 0, 0] * p[..., 1, 1]
        - p[..., 0, 1] * p[..., 1, 0]
        + p[..., 0, 0] * p[..., 2, 2]
        - p[..., 0, 2] * p[..., 2, 0]
        + p[..., 1, 1] * p[..., 2, 2]
        - p[..., 1, 2] * p[..., 2, 1]
    )
    c0 = -np.linalg.det(p)
    ok = (
        (1.0 + c2 + c1 + c0 > 0.0)
        & (1.0 - c2 + c1 - c0 > 0.0)
        & (np.abs(c0) < 1.0)
        & (np.abs(c0 * c0 - 1.0) > np.abs(c0 * c2 - c1))
    )
    return np.all(ok, axis=-1)


def _momentum_stable(lam: np.ndarray, eta, beta, m: float):
    """Mean-square stability at each (eta, beta) pair (batched, leading axis)."""
    p, u = _heavy_ball_blocks(lam, eta, beta, m)
    stable = _blocks_stable(p)  # then 1 - P_k is invertible for every k
    if np.any(stable):
        stable[stable] = _secular(np.ones(int(stable.sum())), p[stable], u[stable], lam) < 1.0
    return stable


def momentum_spectral_radius(
    model: Model, learning_rate: float, momentum: float, batch_size: float = 1.0, *, rtol: float = 1e-13
) -> float:
    """Spectral radius of the heavy-ball one-step map ``M`` by its structure (``O(N)``).

    Exact up to ``rtol`` (bisection on the secular equation) and to a relative
    1e-10 above the largest per-mode block radius; see the module docstring.
    """
    lam = model.eigenvalues
    p, u = _heavy_ball_blocks(lam, float(learning_rate), float(momentum), float(batch_size))
    base = float(_block_radius(p))

    def f(z: float) -> float:
        return float(_secular(z, p, u, lam))

    # f is decreasing on (base, inf). Right at base the 3x3 solves are ill-conditioned, so
    # start a relative 1e-10 above it: a root closer to base than that is returned as base.
    lo = base * (1.0 + 1e-10) + 1e-300
    if f(lo) <= 1.0:
        return base
    hi = max(2.0 * lo, 1.0)
    while f(hi) > 1.0:
        hi *= 2.0
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if f(mid) > 1.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def momentum_stability_threshold(model: Model, momentum, batch_size: float = 1.0, *, rtol: float = 1e-10):
    """Largest constant learning rate at which heavy-ball SGD is mean-square stable.

    Args:
        model: the model.
        momentum: heavy-ball coefficient(s) in ``[0, 1)``: a scalar or a 1-D array
            (thresholds are then computed together, vectorised).
        batch_size: batch size ``m``.
        rtol: relative accuracy of the bisection.

    Returns:
        The threshold (exclusive: the returned value is stable), a float for a
        scalar ``momentum``, else an array. At ``momentum = 0`` it equals
        :func:`stability_threshold` up to ``rtol``.
    """
    beta = np.asarray(momentum, dtype=np.float64)
    if beta.ndim > 1 or not np.all((beta >= 0.0) & (beta < 1.0)):
        from schedopt.errors import ProblemError

        raise ProblemError(f"`momentum` must be in [0, 1), got {momentum!r}", field="momentum")
    lam = model.eigenvalues
    m = float(batch_size)
    betas = np.atleast_1d(beta)
    lo = np.zeros(betas.size)
    hi = 2.0 * (1.0 + betas) / float(lam.max())  # deterministic heavy-ball limit
    while np.any(hi - lo > rtol * hi):
        mid = 0.5 * (lo + hi)
        ok = _momentum_stable(lam, mid[:, None], betas[:, None], m)
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return float(lo[0]) if beta.ndim == 0 else lo


def cap_note(cap: float, threshold: float, where: str, consequence: str) -> str | None:
    """The note a learning-rate cap at or above the stability threshold gets (``None`` below it).

    ``where``: the batch size and momentum the threshold is at; ``consequence``: what it means
    for the caller (a solve may cross it for a while, a peak search crosses it).
    """
    if cap < threshold:
        return None
    return (
        f"`controls.learning_rate.max` = {cap:g} is at or above the stability threshold {threshold:.6g} "
        f"of a constant learning rate at {where}: {consequence}"
    )
