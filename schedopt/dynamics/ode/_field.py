r"""The vector field :math:`dc/dt = -r(t)\,c + f(t)` (THEORY §2.4) with a control-grid learning rate, and the moments of its exponential kernel."""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp

from schedopt._jax import jax
from schedopt.dynamics.ops import JAX, Ops
from schedopt.dynamics.sgd import sgd_parts
from schedopt.errors import ProblemError

FORMS = ("plain", "matched")


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
