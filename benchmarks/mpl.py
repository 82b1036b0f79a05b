r"""The Multi-Power Law (Luo et al., 2025, arXiv:2503.12811): the peer schedopt's fitted model is measured against.

.. math::

    L(t) = L_0 + A\,(S_1(t) + S_W)^{-\alpha} - LD(t),\qquad
    LD(t) = B \sum_{k=1}^{t} (\eta_{k-1} - \eta_k)\, G(\eta_k^{-\gamma} S_k(t)),\qquad
    G(x) = 1 - (C x + 1)^{-\beta}

with :math:`S_1(t) + S_W = \sum_{\tau < t} \eta_\tau` the cumulative learning rate
(warmup included) and :math:`S_k(t) = \sum_{\tau = k}^{t-1} \eta_\tau`; the
loss-drop sum runs over the updates after the warmup (``k > warmup``), as in
the paper. Learning rates are divided by a reference ``eta_ref`` (the largest
pilot peak) so that the seven parameters are of order one whatever the units.

Fitted, as the paper does, on log losses with a Huber-type loss, from several
starts; :func:`optimize_schedule` minimises the predicted final loss over
monotone non-increasing schedules after the warmup (the paper's constraint),
with the peak held.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

jax.config.update("jax_enable_x64", True)

NAMES = ("L0", "A", "alpha", "B", "C", "beta", "gamma")


def _loss_at(theta, eta, warmup, t):
    """Predicted loss after ``t`` updates (``t`` static) of the normalised learning rates ``eta``."""
    l0, log_a, alpha, log_b, log_c, beta, gamma = theta
    eta = eta[:t]
    cum = jnp.cumsum(eta)
    s1 = cum[-1] if t > 0 else 0.0
    power = jnp.exp(log_a) * (s1 + 1e-12) ** (-alpha)
    if t <= warmup + 1:
        return l0 + power
    k = jnp.arange(warmup + 1, t)  # updates whose drop counts: eta[k-1] -> eta[k]
    drop = eta[k - 1] - eta[k]
    s_k = s1 - cum[k - 1]  # sum of eta[k..t-1]
    x = jnp.maximum(eta[k], 1e-12) ** (-gamma) * s_k
    g = 1.0 - (jnp.exp(log_c) * x + 1.0) ** (-beta)
    return l0 + power - jnp.exp(log_b) * jnp.sum(drop * g)


@dataclass(frozen=True)
class MultiPowerLaw:
    """Fitted parameters (``L0, log A, alpha, log B, log C, beta, gamma``), the reference learning rate and warmup."""

    theta: np.ndarray
    eta_ref: float
    warmup: int
    rms_log_error: float

    def predict(self, lrs: np.ndarray, steps) -> np.ndarray:
        """Predicted losses after each of ``steps`` updates of the network learning rates ``lrs``."""
        eta = jnp.asarray(np.asarray(lrs, dtype=np.float64) / self.eta_ref)
        theta = jnp.asarray(self.theta)
        return np.array([float(_loss_at(theta, eta, self.warmup, int(t))) for t in steps])

    def final_loss(self, lrs: np.ndarray) -> float:
        return float(self.predict(lrs, [len(lrs)])[0])

    def parameters(self) -> dict[str, float]:
        l0, log_a, alpha, log_b, log_c, beta, gamma = (float(v) for v in self.theta)
        return {
            "L0": l0,
            "A": math.exp(log_a),
            "alpha": alpha,
            "B": math.exp(log_b),
            "C": math.exp(log_c),
            "beta": beta,
            "gamma": gamma,
            "eta_ref": self.eta_ref,
        }


def fit(runs, warmup: int, min_step: int | None = None) -> MultiPowerLaw:
    """Fit to ``runs``: a list of ``(lrs (T,), steps, losses)``; points before ``min_step`` (default: the warmup's end) are left out."""
    min_step = warmup if min_step is None else min_step
    eta_ref = max(float(np.max(lrs)) for lrs, _, _ in runs)
    data = []
    for lrs, steps, losses in runs:
        keep = np.asarray(steps) >= max(min_step, 1)
        data.append(
            (
                jnp.asarray(np.asarray(lrs) / eta_ref),
                [int(s) for s in np.asarray(steps)[keep]],
                np.log(np.asarray(losses)[keep]),
            )
        )

    def residuals(theta):
        out = []
        for eta, steps, log_loss in data:
            pred = jnp.stack([_loss_at(theta, eta, warmup, t) for t in steps])
            out.append((jnp.log(jnp.maximum(pred, 1e-6)) - log_loss) / math.sqrt(len(steps)))
        return jnp.concatenate(out)

    fun = jax.jit(residuals)
    jac = jax.jit(jax.jacfwd(residuals))
    lowest = min(float(np.min(np.exp(lg))) for _, _, lg in data)
    first = max(float(np.max(np.exp(lg))) for _, _, lg in data)
    lo = np.array([0.0, math.log(1e-3), 0.02, math.log(1e-5), math.log(1e-7), 0.02, 0.0])
    hi = np.array([lowest, math.log(1e3), 3.0, math.log(1e2), math.log(1e4), 5.0, 3.0])
    best = None
    for l0_frac in (0.5, 0.8):
        for alpha in (0.3, 0.6):
            for log_c in (-4.0, -2.0, 0.0):
                x0 = np.array(
                    [
                        l0_frac * lowest,
                        math.log(max(first - l0_frac * lowest, 1e-2)),
                        alpha,
                        math.log(0.2),
                        log_c,
                        0.6,
                        0.6,
                    ]
                )
                x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    res = scipy.optimize.least_squares(
                        lambda x: np.asarray(fun(jnp.asarray(x))),
                        x0,
                        jac=lambda x: np.asarray(jac(jnp.asarray(x))),
                        bounds=(lo, hi),
                        loss="soft_l1",
                        f_scale=0.01,
                        max_nfev=200,
                    )
                if best is None or res.cost < best.cost:
                    best = res
    rms = float(
        np.sqrt(
            np.mean(np.asarray(fun(jnp.asarray(best.x))) ** 2 * sum(len(s) for _, s, _ in data) / len(data))
        )
    )
    return MultiPowerLaw(np.asarray(best.x), eta_ref, warmup, rms)


def optimize_schedule(law: MultiPowerLaw, horizon: int, peak: float) -> np.ndarray:
    """The schedule minimising the law's final loss: linear warmup to ``peak``, then non-increasing in ``[0, peak]``."""
    w = law.warmup
    ramp = peak * (np.arange(w) + 1.0) / w if w > 0 else np.zeros(0)
    n = horizon - w
    theta = jnp.asarray(law.theta)
    p = peak / law.eta_ref

    def final(frac):  # frac: (n,) fractions of the remaining lr removed per update, in [0, 1]
        keep = jnp.cumprod(1.0 - frac)
        eta = jnp.concatenate([jnp.asarray(ramp / law.eta_ref), p * keep])
        return _loss_at(theta, eta, w, horizon)

    value_grad = jax.jit(jax.value_and_grad(final))
    x0 = np.zeros(n)
    x0[int(0.8 * n) :] = (
        1.0 / np.arange(int(n - 0.8 * n) + 1, 1, -1)[: n - int(0.8 * n)]
    )  # a linear decay to 0
    res = scipy.optimize.minimize(
        lambda x: tuple(np.asarray(v, dtype=np.float64) for v in value_grad(jnp.asarray(x))),
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, 1.0)] * n,
        options={"maxiter": 2000},
    )
    keep = np.cumprod(1.0 - res.x)
    return np.concatenate([ramp, peak * keep])
