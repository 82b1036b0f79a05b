r"""The exponential integrator: exact decay over a step, the equilibrium interpolated in the fraction of decay, the loss solved per stage.

Third order in the step (``degree=2``); the step's derivative is written by hand
(:func:`_quadratic_step`). Measured accuracy and cost: ``benchmarks/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax.numpy as jnp

from schedopt._jax import jax
from schedopt.dynamics.ode._field import OdeArgs, SGDField, _moments, _moments_upto, _safe_div
from schedopt.dynamics.ops import JAX
from schedopt.dynamics.sgd import sgd_forcing_ratio, sgd_loss
from schedopt.errors import ProblemError

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
