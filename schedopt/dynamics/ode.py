r"""The continuous-time SGD model (THEORY §2.4), solved by an exponential integrator on a geometric time grid.

Treating one optimiser step as one unit of time, the second moments obey

.. math::  \frac{dc_k}{dt} = -r_k(t)\, c_k + f_k(t), \qquad
           r_k = 2\eta\lambda_k - (1+\tfrac1m)\eta^2\lambda_k^2, \quad
           f_k = \tfrac{\eta^2}{m}\lambda_k \,(L + \sigma^2),

with :math:`\eta(t)` the continuous-time learning rate of a
:class:`~schedopt.controls.ControlGrid` (piecewise constant or linear),
:math:`L = \sum_k \lambda_k c_k` and :math:`\sigma^2` the effective noise
(label noise + residual :math:`R_N`). Rate and forcing come from
:func:`schedopt.dynamics.sgd.sgd_parts`, where the right-hand side is written once.

Entry points: :func:`solve` / :func:`final_loss` (NumPy in, a ``Model`` and a
grid + values or a per-step array) and :func:`final_loss_jax` /
:func:`loss_at_jax` (jit-, grad- and vmap-safe; model numbers are traced
arguments, so nothing recompiles when they change).

Solvers
-------

``solver="exponential"`` (default): an exponential integrator stepped on
:func:`time_grid` (block edges, a few sub-steps per block, geometric refinement
from ``t = 0`` and toward ``t = T``; ~850 steps for ``T = 10^7``), run as a
``jax.lax.scan`` (:func:`_scan_solve`; the same step is also a custom
``diffrax.AbstractSolver``, :class:`ExponentialIntegrator`). Per mode, with
:math:`q_k = f_k/r_k` the instantaneous equilibrium:

* the decay :math:`R_k = \int r_k\,dt` over a step is exact (Simpson's rule on
  the quadratic :math:`r_k(t)`), so stiffness costs nothing: steps of
  :math:`10^5` with :math:`2\eta\lambda_1 \approx 1` are stable;
* :math:`q_k` is interpolated by a quadratic in the fraction of decay
  :math:`\rho = \int_{t_0}^{t} r_k / R_k` (exact handling of a time-varying
  rate) through :math:`t_0`, the midpoint (a second-order half step) and
  :math:`t_1`; the weights are moments :math:`\int_0^1 e^{-Ru}u^n du`;
* :math:`q_k(t_1)` is affine in the unknown :math:`L(t_1)`, so each stage solves
  a scalar linear equation :math:`L = (A + B\sigma^2)/(1 - B)` with
  :math:`B < \frac{\eta^2}{m}\sum_k\lambda_k^2/r_k < 1` below the stability
  threshold. The stationary loss :math:`S\sigma^2/(1-S)` is reproduced exactly.

Third order in the step (``degree=2``; ``degree=1``, linear :math:`q`, is second
order). Measured against the exact constant-:math:`\eta` solution (boundary
model, :math:`\eta\lambda_1 = 0.4`, ``T = 10^4``): worst relative error over the
run 1.8e-5 / 5.0e-6 / 9.9e-7 / 2.0e-7 for grids of 106 / 200 / 385 / 757 steps
(growth 1.2 / 1.1 / 1.05 / 1.025), 30–75x below ``degree=1`` on the same grid.
Stiff modes show the usual order reduction (error ratio 3–5 per halving late
in the run, 8 early). Cost O(N) per step. The state-independent part of a step
(moments, divisions) is computed apart from the affine recursion in the state, and
its derivative is written by hand (:func:`_quadratic_step`); reverse mode
recomputes each step from the stored states. Forward + gradient w.r.t. 101
learning-rate values, 256 steps, 2 shared CPU cores: ~25 ms at ``N = 500`` and
~0.3 s at ``N = 10^4`` (diffrax ``diffeqsolve`` with
``RecursiveCheckpointAdjoint``, before: 0.13-0.16 s and 1.2-1.7 s).

``solver="tsit5"``: reference, ``diffrax.Tsit5`` with a ``PIDController``
(``jump_ts`` at block edges). Explicit, so its steps stay
:math:`\lesssim 3/(2\eta\lambda_1)`: short horizons and checks only.

Forms
-----

``form="plain"`` (default) is THEORY's ODE. ``form="matched"`` replaces
:math:`r_k` by :math:`-\log(1-r_k)` and :math:`f_k` by :math:`f_k\cdot(-\log(1-r_k))/r_k`
(same :math:`q_k`): a constant-:math:`\eta` interval then decays each mode by
exactly the recursion's factor :math:`(1-r_k)` per step.

Where the ODE is not faithful to the recursion
----------------------------------------------

Measured by ``benchmarks/dynamics.py`` (relative gap ODE / recursion - 1, batch 1):

* **First steps.** The recursion moves a fast mode by :math:`1 - r` per step,
  the ODE by :math:`e^{-r}`; the loss curves differ by 1–10 % around step
  :math:`t \approx 1/(\eta\lambda_1)` (shipped problems at 1/4–1 of their
  learning-rate cap: 1.1–9.5 % at steps 3–14), and this transient forgets itself
  (below 0.4 % from step 100 on).
* **First order in** :math:`\eta\lambda_1`. Constant :math:`\eta`, boundary
  model (a = b = 2, N = 1000, σ = 0.5), at intrinsic time :math:`\eta t = 10`:
  gap 4.7e-4, 9.2e-4, 1.8e-3, 3.3e-3, 5.5e-3, 7.1e-3, 7.8e-3 at
  :math:`\eta\lambda_1` = 0.0125, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4: it halves with
  :math:`\eta` until :math:`\eta\lambda_1 \approx 0.2` and saturates above;
  at :math:`\eta t = 1` it is 0.6–6 %.
* **Final losses are faithful.** On the shipped problems (cosine,
  linear-to-zero, constant; peaks 1/4–1 of the cap, ``T = 10^4``) the final
  loss gap is below 4e-4; ODE vs recursion at ``T = 10^6``, ``N = 10^3`` (cosine):
  7e-6. With noise, late losses sit near the equilibrium, which the two share.
* ``form="matched"`` has a **second-order** gap (it falls 4x per halving of
  :math:`\eta`: 6e-6 at :math:`\eta\lambda_1 = 0.0125`, :math:`\eta t = 10`), but
  at :math:`\eta\lambda_1 \ge 0.4` it is no better than the plain form, and at
  0.6 it is worse (9 % vs 0.7 %): it corrects the decay, not the once-per-step
  injection of the noise feedback.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).

    M. Hochbruck and A. Ostermann, *Exponential integrators*, Acta Numerica 19
    (2010) 209–286.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np

from schedopt._jax import float64, jax
from schedopt.controls import ControlGrid
from schedopt.dynamics.ops import JAX, Ops
from schedopt.dynamics.recursion import DIVERGENCE_FACTOR, per_step
from schedopt.dynamics.sgd import sgd_forcing_ratio, sgd_loss, sgd_parts
from schedopt.errors import ProblemError, SolverError
from schedopt.problem import Model

__all__ = [
    "FORMS",
    "SOLVERS",
    "ExponentialIntegrator",
    "OdeArgs",
    "OdeSolution",
    "SGDField",
    "final_loss",
    "final_loss_jax",
    "loss_at_jax",
    "pad_grid",
    "solve",
    "time_grid",
]

FORMS = ("plain", "matched")
SOLVERS = ("exponential", "tsit5")

#: Default grid: first step (in optimiser steps) and growth factor of the
#: geometric refinement from ``t = 0`` and toward ``t = T``.
FIRST_STEP = 0.125
GROWTH = 1.05
#: Default number of equal sub-steps every control block is split into.
SUBSTEPS = 2


# --------------------------------------------------------------------------- #
# step weights: moments of the exponential kernel                            #
# --------------------------------------------------------------------------- #

_SERIES = 0.25  # below this |z| the moments use their Taylor series (12 terms: < 1e-16)
_MOMENT_COEF = [[(-1) ** j / (math.factorial(j) * (n + j + 1)) for j in range(12)] for n in range(4)]


def _moments_upto(z, top: int):
    r"""$e^{-z}$ and $J_n(z) = \int_0^1 e^{-zu} u^n\,du$ for $n = 0..top$ (``top <= 3``).

    Upward recurrence $J_n = (n J_{n-1} - e^{-z})/z$ for $|z| \ge 1/4$ (error
    growth at most $3!/z^3 \approx 400$ ulp); below, the Taylor series of $J_3$ and
    the (stable) downward recurrence $J_n = (z J_{n+1} + e^{-z})/(n+1)$. Safe at ``z = 0``.
    """
    small = jnp.abs(z) < _SERIES
    inv = 1.0 / jnp.where(small, 1.0, z)
    em = jnp.expm1(-z)
    decay = 1.0 + em
    big = [-em * inv]
    for n in range(1, top + 1):
        big.append((n * big[-1] - decay) * inv)
    series = [jnp.full_like(z, _MOMENT_COEF[3][-1])]
    for coef in reversed(_MOMENT_COEF[3][:-1]):
        series[0] = series[0] * z + coef
    for n in (3, 2, 1):
        series.insert(0, (z * series[0] + decay) * (1.0 / n))
    return [decay] + [jnp.where(small, series[n], big[n]) for n in range(top + 1)]


@jax.custom_jvp
def _moments(z):
    r"""$e^{-z}$, $J_0$, $J_1$, $J_2$ (see :func:`_moments_upto`); closed-form derivatives."""
    return tuple(_moments_upto(z, 2))


@_moments.defjvp
def _moments_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    decay, j0, j1, j2, j3 = _moments_upto(z, 3)
    # d/dz e^{-z} = -e^{-z}, d/dz J_n = -J_{n+1}
    return (decay, j0, j1, j2), (-decay * dz, -j1 * dz, -j2 * dz, -j3 * dz)


def _log_ratio(r):
    r"""$-\log(1 - r)/r$, smooth at 0 (the matched-rate factor)."""
    small = jnp.abs(r) < 1e-3
    rs = jnp.where(small, 0.5, r)
    big = -jnp.log1p(-rs) / rs
    ser = 1.0 + r * (1 / 2 + r * (1 / 3 + r * (1 / 4 + r / 5)))
    return jnp.where(small, ser, big)


#: Array ops whose loss is 0: :func:`sgd_parts` at ``c = 0`` without summing zeros (a
#: reduction over the modes per call, not simplified away by XLA).
_NO_LOSS = Ops(name="jax-no-loss", sum=lambda x: 0.0)


def _safe_div(num, den):
    """``num / den`` with 0 where ``den == 0`` (then ``num`` is 0 too: eta = 0); gradient-safe."""
    zero = den == 0
    return jnp.where(zero, 0.0, num / jnp.where(zero, 1.0, den))


# --------------------------------------------------------------------------- #
# vector field                                                                #
# --------------------------------------------------------------------------- #


class OdeArgs(eqx.Module):
    """The traced inputs of a solve (``args`` of ``diffeqsolve``): nothing here recompiles.

    Attributes:
        values: control parameters of the learning rate, ``(n_params,)``.
        batch_size: samples per step ``m`` (scalar).
        eigenvalues: spectrum :math:`\\lambda`, ``(N,)``.
        noise: effective noise :math:`\\sigma^2 + R_N` (scalar).
        loss_weights: loss readout of a compressed spectrum
            (:mod:`schedopt.dynamics.compression`), ``(N,)``; ``None``: the eigenvalues.
    """

    values: jax.Array
    batch_size: jax.Array
    eigenvalues: jax.Array
    noise: jax.Array
    loss_weights: jax.Array | None = None

    @property
    def readout(self) -> jax.Array:
        r"""The loss readout :math:`w`, :math:`L = \sum_k w_k c_k`."""
        return self.eigenvalues if self.loss_weights is None else self.loss_weights


class SGDField(eqx.Module):
    r"""Right-hand side :math:`dc/dt = -r(t)\,c + f(t)` of THEORY §2.4 with a control-grid learning rate.

    Call it as a diffrax vector field ``field(t, y, args)`` (``args`` an
    :class:`OdeArgs`). :class:`ExponentialIntegrator` uses its split form
    instead: :meth:`learning_rate_step` and :meth:`decay_rate`.

    Attributes:
        edges: block edges of the control grid (float64, ``(K + 1,)``).
        parameterisation: ``"linear"`` or ``"constant"``.
        form: ``"plain"`` (THEORY) or ``"matched"`` (rate :math:`-\log(1-r)`).
    """

    edges: jax.Array
    parameterisation: str = eqx.field(static=True)
    form: str = eqx.field(static=True, default="plain")

    def __check_init__(self) -> None:
        if self.parameterisation not in ("linear", "constant"):
            raise ProblemError(
                f"`parameterisation` must be 'linear' or 'constant', got {self.parameterisation!r}",
                field="parameterisation",
            )
        if self.form not in FORMS:
            raise ProblemError(f"`form` must be one of {FORMS}, got {self.form!r}", field="form")

    def _block(self, t):
        blocks = self.edges.shape[0] - 1
        method = "compare_all" if blocks <= 512 else "scan"
        i = jnp.searchsorted(self.edges, t, side="right", method=method) - 1
        return jnp.clip(i, 0, blocks - 1)

    def _on_block(self, i, times, values):
        """The learning rate of block ``i`` (its linear piece extended) at ``times``."""
        if self.parameterisation == "constant":
            return jnp.broadcast_to(values[i], jnp.shape(times))
        left, right = self.edges[i], self.edges[i + 1]
        v_left, v_right = values[i], values[i + 1]
        return v_left + (times - left) / (right - left) * (v_right - v_left)

    def learning_rate(self, t, args: OdeArgs):
        r"""The continuous-time learning rate :math:`\eta(t)` (right-continuous at block edges)."""
        return self._on_block(self._block(t), t, args.values)

    def learning_rate_step(self, t0, t1, fractions, args: OdeArgs) -> tuple:
        r""":math:`\eta` at ``t0 + f (t1 - t0)`` for each ``f`` in ``fractions``, on the block of the midpoint.

        Exact when the step lies inside one block (grid points at every block edge),
        including at its ends, where a piecewise-constant rate jumps. ``t0``, ``t1``:
        scalars or arrays of steps; one array of their shape per fraction.
        """
        i = self._block(0.5 * (t0 + t1))
        return tuple(self._on_block(i, t0 + f * (t1 - t0), args.values) for f in fractions)

    def _transform(self, rate, forcing):
        if self.form == "plain":
            return rate, forcing
        factor = _log_ratio(rate)
        return factor * rate, factor * forcing

    def decay_rate(self, learning_rate, args: OdeArgs):
        r"""Decay rate :math:`r` of the field's form (its forcing is :math:`r\,\alpha (L + \sigma^2)`,
        :math:`\alpha` = :func:`~schedopt.dynamics.sgd.sgd_forcing_ratio` in both forms)."""
        rate, forcing = sgd_parts(0.0, learning_rate, args.batch_size, args.eigenvalues, 1.0, _NO_LOSS)
        return self._transform(rate, forcing)[0]

    def __call__(self, t, y, args: OdeArgs):
        eta = self.learning_rate(t, args)
        rate, forcing = sgd_parts(
            y, eta, args.batch_size, args.eigenvalues, args.noise, JAX, args.loss_weights
        )
        rate, forcing = self._transform(rate, forcing)
        return forcing - rate * y


# --------------------------------------------------------------------------- #
# the exponential integrator                                                  #
# --------------------------------------------------------------------------- #


def _sgd_field(term) -> SGDField | None:
    """The :class:`SGDField` inside an ``ODETerm`` (diffeqsolve wraps terms)."""
    while not isinstance(getattr(term, "vector_field", None), SGDField):
        if not hasattr(term, "term"):
            return None
        term = term.term
    return term.vector_field


def _implicit_loss(readout, base, weight, noise):
    r"""Solve :math:`L = \sum_k \rho_k (b_k + w_k (L + \sigma^2))` for :math:`L` (``inf`` if unstable).

    :math:`\rho` = ``readout``, the loss readout (:math:`\lambda`, or :attr:`OdeArgs.readout`).
    """
    gain = jnp.sum(readout * weight)
    loss = (jnp.sum(readout * base) + gain * noise) / (1.0 - gain)
    return jnp.where(gain < 1.0, loss, jnp.inf)


class _Coefficients(eqx.Module):
    r"""One exponential-integrator step, per mode, as an affine map of the state (``(..., N)`` arrays).

    With :math:`s_0 = L(t_0) + \sigma^2`, the step is

    * midpoint (``degree=2`` only): :math:`b_m = D_h c_0 + P_h s_0`, :math:`L_m` from
      :func:`_implicit_loss` with weights :math:`W_h`, :math:`s_m = L_m + \sigma^2`;
    * end: :math:`b = D c_0 + A s_0 + B s_m`, :math:`L_1` from :func:`_implicit_loss`
      with weights :math:`W`, :math:`c_1 = b + W (L_1 + \sigma^2)`.

    None of these depend on the state: they are computed for many steps at once
    (:func:`_scan_solve`), and only this cheap affine recursion runs step by step.
    """

    decay: jax.Array
    a: jax.Array
    b: jax.Array | None
    w: jax.Array
    decay_half: jax.Array | None
    p_half: jax.Array | None
    w_half: jax.Array | None


def _step_coefficients(field: SGDField, t0, t1, args: OdeArgs, degree: int) -> _Coefficients:
    r"""The :class:`_Coefficients` of the steps ``[t0, t1]`` (scalars or ``(S,)`` arrays: ``(S, N)`` out).

    Per mode, the decay :math:`R = \int r` is exact (Simpson: :math:`r` is quadratic
    in :math:`t`) and :math:`q = f/r = \alpha (L + \sigma^2)` is interpolated in the
    fraction of decay (see :class:`ExponentialIntegrator`). Every row is computed on
    its own (no ``(4, N)`` stacks): with stacked rows XLA's reverse mode duplicated the
    whole elementwise chain into several fusions (4x slower on a CPU).
    """
    t0, t1 = jnp.asarray(t0), jnp.asarray(t1)
    etas = field.learning_rate_step(t0, t1, _STEP_FRACTIONS[degree], args)
    return _coefficients(field, t1 - t0, etas, args, degree)


#: Where in a step the learning rate is needed: ``t0``, the midpoint, ``t1`` (and ``t0 + h/4``).
_STEP_FRACTIONS = {1: (0.0, 0.5, 1.0), 2: (0.0, 0.5, 1.0, 0.25)}


def _coefficients(field: SGDField, h, etas, args: OdeArgs, degree: int) -> _Coefficients:
    """:func:`_step_coefficients` from the step lengths and the learning rates at :data:`_STEP_FRACTIONS`.

    ``q = alpha (L + noise)`` with ``alpha`` in closed form
    (:func:`~schedopt.dynamics.sgd.sgd_forcing_ratio`), not a guarded ratio of the field's
    forcing and rate: that was 0 with a zero derivative at eta = 0, where a learning rate at
    its lower bound needs its true gradient.
    """
    rate, alpha = [], []
    for i, eta in enumerate(etas):
        rate.append(field.decay_rate(eta[..., None], args))
        if i < 3:  # at t0, the midpoint, t1
            alpha.append(sgd_forcing_ratio(eta[..., None], args.batch_size, args.eigenvalues))
    h = h[..., None]
    big_r = (h / 6.0) * (rate[0] + 4.0 * rate[1] + rate[2])
    if degree == 1:
        decay, j0, j1, _ = _moments(big_r)
        return _Coefficients(
            decay=decay,
            a=big_r * j1 * alpha[0],
            b=None,
            w=big_r * (j0 - j1) * alpha[2],
            decay_half=None,
            p_half=None,
            w_half=None,
        )
    # stage 1: degree-1 half step to the midpoint (for q there); stage 2: q quadratic in
    # u = 1 - rho through u = 1 (t0), mu (midpoint), 0 (t1)
    r_half = (h / 12.0) * (rate[0] + 4.0 * rate[3] + rate[1])
    decay, a, b, w, decay_h, p_half, w_half = _quadratic_step(big_r, r_half, *alpha)
    return _Coefficients(decay=decay, a=a, b=b, w=w, decay_half=decay_h, p_half=p_half, w_half=w_half)


def _quadratic_parts(big_r, r_half):
    """Moments of both stages and the midpoint's place ``mu`` (``degree=2``), with what their derivatives need."""
    decay, j0, j1, j2, j3 = _moments_upto(big_r, 3)
    decay_h, j0_h, j1_h, j2_h = _moments_upto(r_half, 2)
    zero = big_r == 0
    rho = _safe_div(r_half, big_r)
    inside = (rho > 0.1) & (rho < 0.9) & ~zero  # where mu moves with the decays
    mu = jnp.where(zero, 0.5, 1.0 - jnp.clip(rho, 0.1, 0.9))
    return (decay, j0, j1, j2, j3, decay_h, j0_h, j1_h, j2_h, rho, inside, mu)


@jax.custom_vjp
def _quadratic_step(big_r, r_half, alpha0, alpha1, alpha2):
    """``D, A, B, W, D_h, P_h, W_h`` of :class:`_Coefficients` from the decays and the ratios ``q / (L + noise)``.

    Reverse mode by hand (:func:`_quadratic_step_bwd`): XLA's own derivative of this
    chain of moments and divisions was most of the cost of a gradient.
    """
    return _quadratic_step_fwd(big_r, r_half, alpha0, alpha1, alpha2)[0]


def _quadratic_step_fwd(big_r, r_half, alpha0, alpha1, alpha2):
    parts = _quadratic_parts(big_r, r_half)
    decay, j0, j1, j2, _, decay_h, j0_h, j1_h, _, _, _, mu = parts
    u_a = big_r * (j2 - mu * j1) / (1.0 - mu)
    u_b = big_r * (j2 - j1) / (mu * (mu - 1.0))
    u_w = big_r * (j2 - (1.0 + mu) * j1 + mu * j0) / mu
    out = (
        decay,
        u_a * alpha0,
        u_b * alpha1,
        u_w * alpha2,
        decay_h,
        r_half * j1_h * alpha0,
        r_half * (j0_h - j1_h) * alpha1,
    )
    return out, (big_r, r_half, alpha0, alpha1, alpha2, u_a, u_b, u_w, parts)


def _quadratic_step_bwd(res, cts):
    big_r, r_half, alpha0, alpha1, alpha2, u_a, u_b, u_w, parts = res
    decay, j0, j1, j2, j3, decay_h, j0_h, j1_h, j2_h, rho, inside, mu = parts
    c_decay, c_a, c_b, c_w, c_decay_h, c_p, c_wh = cts
    # through the alphas
    g_alpha0 = c_a * u_a + c_p * (r_half * j1_h)
    g_alpha1 = c_b * u_b + c_wh * (r_half * (j0_h - j1_h))
    g_alpha2 = c_w * u_w
    # cotangents of u_a, u_b, u_w
    ua, ub, uw = c_a * alpha0, c_b * alpha1, c_w * alpha2
    one_m, mm1 = 1.0 - mu, mu * (mu - 1.0)
    diff = j2 - j1
    g_j0 = uw * big_r
    g_j1 = -ua * big_r * mu / one_m - ub * big_r / mm1 - uw * big_r * (1.0 + mu) / mu
    g_j2 = ua * big_r / one_m + ub * big_r / mm1 + uw * big_r / mu
    g_mu = big_r * diff * (ua / (one_m * one_m) - ub * (2.0 * mu - 1.0) / (mm1 * mm1) - uw / (mu * mu))
    g_mu = jnp.where(inside, g_mu, 0.0)
    inv_r = 1.0 / jnp.where(inside, big_r, 1.0)
    g_r = (
        ua * (j2 - mu * j1) / one_m
        + ub * diff / mm1
        + uw * (j2 - (1.0 + mu) * j1 + mu * j0) / mu
        - c_decay * decay
        - g_j0 * j1
        - g_j1 * j2
        - g_j2 * j3
        + g_mu * rho * inv_r  # mu = 1 - r_half / big_r
    )
    # midpoint stage
    pa, wa = c_p * alpha0, c_wh * alpha1
    g_j0h = wa * r_half
    g_j1h = (pa - wa) * r_half
    g_rh = pa * j1_h + wa * (j0_h - j1_h) - c_decay_h * decay_h - g_j0h * j1_h - g_j1h * j2_h - g_mu * inv_r
    return g_r, g_rh, g_alpha0, g_alpha1, g_alpha2


_quadratic_step.defvjp(_quadratic_step_fwd, _quadratic_step_bwd)


def _advance(coefs: _Coefficients, y0, loss0, readout, noise):
    """One step ``c_0 -> c_1`` from its :class:`_Coefficients` (``(N,)``) and ``L(t_0)``; returns ``(c_1, L(t_1))``.

    ``readout``: the loss readout :attr:`OdeArgs.readout`.
    """
    s0 = loss0 + noise
    base = coefs.decay * y0 + coefs.a * s0
    if coefs.b is not None:
        base_m = coefs.decay_half * y0 + coefs.p_half * s0
        s_m = _implicit_loss(readout, base_m, coefs.w_half, noise) + noise
        base = base + coefs.b * s_m
    y1 = base + coefs.w * (_implicit_loss(readout, base, coefs.w, noise) + noise)
    return y1, sgd_loss(y1, readout, JAX)


class ExponentialIntegrator(diffrax.AbstractSolver):
    r"""Exponential integrator for :math:`dc/dt = -r(t)\,(c - q(t, L))`: exact decay, implicit in L.

    Per mode, the decay :math:`R = \int_{t_0}^{t_1} r\,dt` is exact, and
    :math:`q = f/r` is interpolated by a polynomial of degree ``degree`` in the
    fraction of decay :math:`\rho(s) = \int_{t_0}^{s} r / R` (so a time-varying
    rate is handled exactly). ``degree=2`` (default, third order) takes a half
    step with ``degree=1`` (second order) to get :math:`q` at the midpoint.
    :math:`q(t_1)` is affine in the unknown :math:`L(t_1)`: each stage solves a
    scalar linear equation, which makes the step unconditionally stable.

    Use with ``diffrax.StepTo(ts)`` whose ``ts`` contain every block edge (where
    :math:`\eta` has a kink or a jump; :func:`time_grid` does that). The term must
    be a ``diffrax.ODETerm`` wrapping an :class:`SGDField`.
    """

    degree: int = eqx.field(static=True, default=2)

    term_structure: ClassVar = diffrax.ODETerm
    interpolation_cls: ClassVar[Callable[..., diffrax.LocalLinearInterpolation]] = (
        diffrax.LocalLinearInterpolation
    )

    def __check_init__(self) -> None:
        if self.degree not in (1, 2):
            raise ProblemError(f"`degree` must be 1 or 2, got {self.degree!r}", field="degree")

    def order(self, terms):
        return self.degree + 1

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        field = _sgd_field(terms)
        if field is None:
            raise TypeError(
                f"ExponentialIntegrator needs an ODETerm of an SGDField, got {type(terms).__name__}"
            )
        coefs = _step_coefficients(field, t0, t1, args, self.degree)
        y1, _ = _advance(coefs, y0, sgd_loss(y0, args.readout, JAX), args.readout, args.noise)
        dense_info = dict(y0=y0, y1=y1)
        return y1, None, dense_info, None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


# --------------------------------------------------------------------------- #
# time grid                                                                   #
# --------------------------------------------------------------------------- #


def _graded(length: float, first: float, growth: float) -> np.ndarray:
    """Offsets ``0 < s_1 < ... < length`` with spacing ``max(first, (growth - 1) * s)``."""
    switch = first / (growth - 1.0)
    uniform = np.arange(first, min(switch, length), first)
    start = max(switch, first)
    if start >= length:
        return uniform
    n = int(math.ceil(math.log(length / start) / math.log(growth)))
    return np.concatenate([uniform, start * growth ** np.arange(n)])


def time_grid(
    horizon: int,
    edges=None,
    *,
    first_step: float = FIRST_STEP,
    growth: float = GROWTH,
    substeps: int = SUBSTEPS,
    refine_edges: bool = False,
    include=None,
    multiple: int = 1,
) -> np.ndarray:
    """Integration times ``0 = t_0 < ... < t_n = horizon`` for the exponential integrator.

    The union of: the block edges (required: the learning rate is linear between
    grid points); ``substeps`` equal parts of every block; a geometric sequence
    ``first_step * growth**i`` from ``t = 0`` (the loss moves fast early) and the
    same toward ``t = horizon`` (the final anneal); with ``refine_edges`` the same
    sequence after every block edge (for piecewise-constant learning rates with
    large jumps); and the times in ``include`` (save times). Optional points
    closer than ``first_step / 4`` to a required point or to each other are dropped.

    Args:
        horizon: ``T`` in steps.
        edges: block edges (default ``[0, T]``).
        first_step: smallest grid step near ``0`` and ``T``, in steps.
        growth: ratio of consecutive geometric steps (> 1).
        substeps: minimum number of grid steps per block.
        refine_edges: refine geometrically after every block edge too.
        include: extra required times in ``[0, T]``.
        multiple: pad the number of steps up to a multiple of this by halving the
            widest steps, so that grids of nearby horizons share one compilation.
    """
    horizon = float(horizon)
    if not horizon > 0:
        raise ProblemError(f"`horizon` must be positive, got {horizon!r}", field="horizon")
    if not first_step > 0:
        raise ProblemError(f"`first_step` must be positive, got {first_step!r}", field="first_step")
    if not growth > 1:
        raise ProblemError(f"`growth` must be > 1, got {growth!r}", field="growth")
    for name, value in (("substeps", substeps), ("multiple", multiple)):
        if int(value) != value or value < 1:
            raise ProblemError(f"`{name}` must be a positive integer, got {value!r}", field=name)
    e = np.array([0.0, horizon] if edges is None else edges, dtype=np.float64)
    required = [e, [0.0, horizon]]
    if include is not None:
        inc = np.asarray(include, dtype=np.float64).ravel()
        if np.any((inc < 0) | (inc > horizon)):
            raise ProblemError(f"`include` times must lie in [0, {horizon:g}]", field="include")
        required.append(inc)
    req = np.unique(np.concatenate(required))
    geo = _graded(horizon, first_step, growth)
    optional = [geo, horizon - geo]
    widths = np.diff(e)
    if substeps > 1:
        frac = np.arange(1, substeps) / substeps
        optional.append((e[:-1, None] + widths[:, None] * frac).ravel())
    if refine_edges:
        optional.extend(a + _graded(w, first_step, growth) for a, w in zip(e[:-1], widths, strict=True))
    opt = np.unique(np.concatenate(optional))
    opt = opt[(opt > 0) & (opt < horizon)]
    points = np.concatenate([req, opt])
    is_req = np.concatenate([np.ones(req.size, bool), np.zeros(opt.size, bool)])
    order = np.argsort(points, kind="stable")
    points, is_req = points[order], is_req[order]
    return _pad(_thin(points, is_req, first_step / 4), int(multiple))


def _pad(ts: np.ndarray, multiple: int) -> np.ndarray:
    """Halve the widest steps until the number of steps is a multiple of ``multiple``."""
    return pad_grid(ts, ts.size - 1 + (-(ts.size - 1) % multiple))


def pad_grid(ts, n_steps: int) -> np.ndarray:
    """Halve the widest steps of a grid until it has ``n_steps`` steps (grids of one shape share a compile).

    Raises:
        ProblemError: ``ts`` has more than ``n_steps`` steps already.
    """
    ts = np.asarray(ts, dtype=np.float64)
    extra = int(n_steps) - (ts.size - 1)
    if extra < 0:
        raise ProblemError(f"`n_steps` ({n_steps}) is below the grid's {ts.size - 1} steps", field="n_steps")
    while extra > 0:
        widths = np.diff(ts)
        k = min(extra, widths.size)
        widest = np.argpartition(-widths, k - 1)[:k]
        ts = np.sort(np.concatenate([ts, ts[widest] + 0.5 * widths[widest]]))
        extra -= k
    return ts


def _thin(points: np.ndarray, is_req: np.ndarray, tol: float) -> np.ndarray:
    """Drop optional points within ``tol`` of a kept point (greedy, left to right)."""
    nxt_req = np.full(points.size, np.inf)
    req_pos = np.flatnonzero(is_req)
    idx = np.searchsorted(req_pos, np.arange(points.size))
    has = idx < req_pos.size
    nxt_req[has] = points[req_pos[idx[has]]]
    keep = np.zeros(points.size, bool)
    last = -np.inf
    for i, (t, req) in enumerate(zip(points.tolist(), is_req.tolist(), strict=True)):
        if req or (t - last >= tol and nxt_req[i] - t >= tol):
            if not (req and t == last):
                keep[i] = True
                last = t
    return points[keep]


# --------------------------------------------------------------------------- #
# JAX entry points                                                            #
# --------------------------------------------------------------------------- #


#: Steps per chunk of the exponential solver times modes (one step per chunk from N = 2**14 / 2
#: on; larger chunks were slower on a CPU at N = 10^4).
CHUNK_ELEMENTS = 1 << 14
#: Floats of the states stored for reverse mode (64 MB): longer grids take longer chunks.
CHECKPOINT_ELEMENTS = 8 << 20


def _chunks(n_steps: int, n_modes: int, checkpoints: int | None) -> tuple[int, int]:
    """``(number of chunks, steps per chunk)`` of :func:`_scan_solve` (the last chunk is padded)."""
    if checkpoints is None:
        size = max(CHUNK_ELEMENTS // max(n_modes, 1), -(-n_steps * n_modes // CHECKPOINT_ELEMENTS), 1)
        size = min(n_steps, size)
    else:
        size = -(-n_steps // max(1, min(n_steps, int(checkpoints))))
    return -(-n_steps // size), size


def _scan_solve(field: SGDField, args: OdeArgs, y0, ts, degree: int, checkpoints: int | None):
    r"""The exponential integrator on the grid ``ts``: the loss at every grid point, ``(len(ts),)``.

    A ``lax.scan`` over chunks of steps (one step each unless ``N`` is small). The
    learning rates of all steps are looked up at once, before the loop; per chunk,
    the state-independent :class:`_Coefficients` (moments, divisions: the costly
    part) are computed, then :func:`_advance` runs the affine recursion in the state.
    Reverse mode stores the state at chunk boundaries only (``jax.checkpoint``) and
    recomputes a chunk when it needs it. Zero-width padding steps at ``T`` are exact no-ops.

    Replaces ``diffrax.diffeqsolve`` with ``StepTo`` and ``RecursiveCheckpointAdjoint``
    (same steps, same results to rounding): 4-6x faster forward + gradient on a CPU.
    """
    readout, noise = args.readout, args.noise
    n_steps = ts.shape[0] - 1
    count, size = _chunks(n_steps, readout.shape[-1], checkpoints)
    pad = jnp.full((count * size - n_steps,), ts[-1])
    t0 = jnp.concatenate([ts[:-1], pad])
    t1 = jnp.concatenate([ts[1:], pad])
    # the learning rates of all steps at once, outside the loop
    etas = field.learning_rate_step(t0, t1, _STEP_FRACTIONS[degree], args)
    steps = tuple(x.reshape(count, size) for x in (t1 - t0, *etas))

    def advance(carry, coefs):
        y, loss = _advance(coefs, *carry, readout, noise)
        return (y, loss), loss

    @jax.checkpoint
    def chunk(carry, xs):
        if size == 1:  # one step: (N,) arrays, not (1, N) (XLA's reductions over these are faster)
            return advance(carry, _coefficients(field, xs[0][0], tuple(x[0] for x in xs[1:]), args, degree))
        coefs = _coefficients(field, xs[0], xs[1:], args, degree)
        return jax.lax.scan(advance, carry, coefs)

    loss0 = sgd_loss(y0, readout, JAX)
    _, losses = jax.lax.scan(chunk, (y0, loss0), steps)
    return jnp.concatenate([loss0[None], losses.reshape(-1)[:n_steps]])


def _interpolate(save_ts, ts, losses):
    """Losses at ``save_ts`` from those at the grid points ``ts``: exact at grid points, linear between.

    The loss is linear in the state, so this is diffrax's ``LocalLinearInterpolation``.
    """
    i = jnp.clip(jnp.searchsorted(ts, save_ts, side="right") - 1, 0, ts.shape[0] - 2)
    lo, hi = losses[i], losses[i + 1]
    w = (save_ts - ts[i]) / (ts[i + 1] - ts[i])
    return jnp.where(w <= 0.0, lo, jnp.where(w >= 1.0, hi, lo + w * (hi - lo)))


def _loss_fn(t, y, args):
    return sgd_loss(y, args.readout, JAX)


@partial(
    jax.jit,
    static_argnames=(
        "parameterisation",
        "form",
        "solver",
        "degree",
        "rtol",
        "atol",
        "max_steps",
        "checkpoints",
    ),
)
def loss_at_jax(
    eigenvalues,
    initial_error,
    noise,
    values,
    batch_size,
    edges,
    ts,
    save_ts,
    *,
    parameterisation: str = "linear",
    form: str = "plain",
    solver: str = "exponential",
    degree: int = 2,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 200_000,
    checkpoints: int | None = None,
    loss_weights=None,
):
    r"""Loss of the kept modes at ``save_ts``; jit-, grad- (w.r.t. ``values``) and vmap-safe.

    Args:
        eigenvalues, initial_error: ``(N,)`` arrays.
        noise: effective noise :math:`\sigma^2 + R_N`.
        values: learning-rate parameters on the grid ``edges`` (``(K+1,)`` linear, ``(K,)`` constant).
        batch_size: scalar.
        edges: ``(K + 1,)`` block edges in steps (float).
        ts: integration grid (exponential solver: must contain ``edges`` and ``save_ts``;
            see :func:`time_grid`); for Tsit5 only ``ts[0]`` and ``ts[-1]`` are used.
        save_ts: ``(S,)`` times in ``[ts[0], ts[-1]]``.
        parameterisation, form, solver: see :class:`SGDField` and the module docstring.
        degree: of the exponential integrator's interpolation (order ``degree + 1``).
        rtol, atol, max_steps: Tsit5 controller tolerances and step limit.
        checkpoints: reverse-mode checkpoints (exponential solver): the states stored for the
            gradient, one per chunk of steps (default: chunks of ``max(1, 2**14 // N)`` steps).
        loss_weights: loss readout ``(N,)`` of a compressed spectrum
            (:class:`~schedopt.dynamics.compression.CompressedModes`); default the eigenvalues.
    """
    field = SGDField(edges=edges, parameterisation=parameterisation, form=form)
    args = OdeArgs(
        values=values, batch_size=batch_size, eigenvalues=eigenvalues, noise=noise, loss_weights=loss_weights
    )
    if solver == "exponential":
        losses = _scan_solve(field, args, initial_error, ts, degree, checkpoints)
        return _interpolate(save_ts, ts, losses), jnp.asarray(ts.shape[0] - 1)
    if solver == "tsit5":
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            t0=ts[0],
            t1=ts[-1],
            dt0=None,
            y0=initial_error,
            args=args,
            saveat=diffrax.SaveAt(ts=save_ts, fn=_loss_fn),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, jump_ts=edges),
            max_steps=max_steps,
            throw=False,
        )
    else:
        raise ProblemError(f"`solver` must be one of {SOLVERS}, got {solver!r}", field="solver")
    ok = sol.result == diffrax.RESULTS.successful
    return jnp.where(ok, sol.ys, jnp.nan), sol.stats["num_steps"]


def final_loss_jax(
    eigenvalues,
    initial_error,
    noise,
    values,
    batch_size,
    edges,
    ts,
    *,
    parameterisation="linear",
    form="plain",
    loss_weights=None,
):
    r"""Final loss of the kept modes :math:`L_T - R_N` by the exponential integrator; jit/grad/vmap-safe.

    Same arguments as :func:`loss_at_jax`; ``ts`` from :func:`time_grid` (``ts[-1]`` is ``T``).
    """
    losses, _ = loss_at_jax(
        eigenvalues,
        initial_error,
        noise,
        values,
        batch_size,
        edges,
        ts,
        ts[-1:],
        parameterisation=parameterisation,
        form=form,
        loss_weights=loss_weights,
    )
    return losses[-1]


# --------------------------------------------------------------------------- #
# NumPy-level API                                                             #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class OdeSolution:
    """Loss of the continuous-time model at the save times.

    Attributes:
        ts: save times (steps), ``(S,)``; the last is the horizon.
        loss: excess loss :math:`L(t)` (kept modes + residual) at ``ts``; leading
            batch axes when schedules were batched. ``inf`` where the solve diverged.
        grid: the integration grid (exponential solver) or ``[0, T]`` (Tsit5).
        num_steps: solver steps taken (per schedule for Tsit5).
        solver, form: as requested.
    """

    ts: np.ndarray
    loss: np.ndarray
    grid: np.ndarray
    num_steps: np.ndarray
    solver: str
    form: str

    @property
    def final_loss(self):
        return self.loss[..., -1]


def _control(learning_rate, grid: ControlGrid | None):
    """``(edges, parameterisation, values)`` from a grid + values or a per-step array."""
    if grid is None:
        lr = np.asarray(learning_rate, dtype=np.float64)
        if lr.ndim == 0:
            raise ProblemError(
                "`learning_rate` must be a per-step array, or values with `grid=`",
                field="learning_rate",
            )
        lr = per_step("learning_rate", lr, lr.shape[-1])
        edges = np.arange(lr.shape[-1] + 1, dtype=np.float64)
        return edges, "constant", lr
    if not isinstance(grid, ControlGrid):
        raise ProblemError(f"`grid` must be a ControlGrid, got {type(grid).__name__}", field="grid")
    values = np.asarray(learning_rate, dtype=np.float64)
    if values.ndim == 0 or values.shape[-1] != grid.n_params:
        raise ProblemError(
            f"`learning_rate` must hold {grid.n_params} values for this grid, got shape {values.shape}",
            field="learning_rate",
        )
    if not np.all(np.isfinite(values)):
        raise ProblemError("`learning_rate` values must be finite", field="learning_rate")
    return grid.edges.astype(np.float64), grid.parameterisation, values


@float64
def solve(
    model: Model,
    learning_rate,
    *,
    grid: ControlGrid | None = None,
    batch_size: float = 1.0,
    save_at=None,
    solver: str = "exponential",
    form: str = "plain",
    degree: int = 2,
    ts=None,
    first_step: float = FIRST_STEP,
    growth: float = GROWTH,
    substeps: int = SUBSTEPS,
    refine_edges: bool | None = None,
    multiple: int = 128,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 200_000,
) -> OdeSolution:
    r"""Solve the continuous-time model for one or many learning-rate schedules.

    Args:
        model: the model.
        learning_rate: with ``grid``: control values ``(..., n_params)``; without: per-step
            learning rates ``(..., T)`` (piecewise constant on unit blocks: short horizons).
        grid: the control grid (its last edge is the horizon ``T``).
        batch_size: samples per step (scalar).
        save_at: times (steps) at which to report the loss; ``T`` is always added.
        solver: ``"exponential"`` (default) or ``"tsit5"`` (reference).
        form: ``"plain"`` (THEORY §2.4) or ``"matched"``.
        degree: 2 (third-order exponential integrator) or 1 (second order).
        ts: custom integration grid (must contain the block edges and save times).
        first_step, growth, substeps, refine_edges, multiple: options of :func:`time_grid`;
            ``refine_edges=None`` refines after the block edges of piecewise-constant
            grids (jumps), not of linear ones nor of per-step arrays.
        rtol, atol, max_steps: Tsit5 options.

    Returns:
        an :class:`OdeSolution`; ``loss`` includes the residual :math:`R_N`.

    Raises:
        ProblemError: bad inputs. SolverError: Tsit5 failed (e.g. ``max_steps``).
    """
    if solver not in SOLVERS:
        raise ProblemError(f"`solver` must be one of {SOLVERS}, got {solver!r}", field="solver")
    if form not in FORMS:
        raise ProblemError(f"`form` must be one of {FORMS}, got {form!r}", field="form")
    m = float(batch_size)
    if not (math.isfinite(m) and m >= 1):
        raise ProblemError(f"`batch_size` must be a number >= 1, got {batch_size!r}", field="batch_size")
    edges, param, values = _control(learning_rate, grid)
    if np.any(values < 0):
        raise ProblemError("`learning_rate` must be non-negative", field="learning_rate")
    horizon = float(edges[-1])
    save = np.array([] if save_at is None else save_at, dtype=np.float64).ravel()
    if np.any((save < 0) | (save > horizon)):
        raise ProblemError(f"`save_at` times must lie in [0, {horizon:g}]", field="save_at")
    save = np.unique(np.concatenate([save, [horizon]]))
    if ts is None:
        ts = time_grid(
            horizon,
            edges,
            first_step=first_step,
            growth=growth,
            substeps=substeps,
            refine_edges=(grid is not None and param == "constant") if refine_edges is None else refine_edges,
            include=save,
            multiple=multiple,
        )
    else:
        ts = np.asarray(ts, dtype=np.float64)
        if ts.ndim != 1 or ts[0] != 0 or ts[-1] != horizon or np.any(np.diff(ts) <= 0):
            raise ProblemError(f"`ts` must increase strictly from 0 to {horizon:g}", field="ts")
        if (solver == "exponential" and not np.all(np.isin(edges, ts))) or not np.all(np.isin(save, ts)):
            raise ProblemError("`ts` must contain every block edge and save time", field="ts")
    if solver == "tsit5":
        ts = np.array([0.0, horizon])

    lam = jnp.asarray(model.eigenvalues)
    c0 = jnp.asarray(model.initial_error)
    noise = jnp.asarray(model.effective_noise)
    fn = partial(
        loss_at_jax,
        parameterisation=param,
        form=form,
        solver=solver,
        degree=degree,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
    )
    args = (jnp.asarray(m), jnp.asarray(edges), jnp.asarray(ts), jnp.asarray(save))
    if values.ndim == 1:
        loss, steps = fn(lam, c0, noise, jnp.asarray(values), *args)
    else:
        lead = values.shape[:-1]
        flat = jnp.asarray(values.reshape(-1, values.shape[-1]))
        loss, steps = jax.vmap(lambda v: fn(lam, c0, noise, v, *args))(flat)
        loss = loss.reshape(*lead, -1)
        steps = steps.reshape(lead)
    loss = np.asarray(loss)
    if solver == "tsit5" and np.any(np.isnan(loss)):
        raise SolverError(
            f"diffrax Tsit5 did not reach t1 = {horizon:g} (max_steps = {max_steps}, "
            f"rtol = {rtol:g}); raise max_steps or use solver='exponential'"
        )
    loss = loss + model.residual
    limit = DIVERGENCE_FACTOR * (model.initial_loss + model.residual + model.effective_noise)
    loss = np.where(np.isfinite(loss) & (loss <= limit), loss, np.inf)
    return OdeSolution(ts=save, loss=loss, grid=ts, num_steps=np.asarray(steps), solver=solver, form=form)


@float64
def final_loss(model: Model, learning_rate, *, grid: ControlGrid | None = None, **options):
    """Final excess loss :math:`L_T` (kept modes + residual) of the ODE; ``inf`` where it diverged.

    Same arguments as :func:`solve`.
    """
    out = solve(model, learning_rate, grid=grid, **options).final_loss
    return float(out) if np.ndim(out) == 0 else out
