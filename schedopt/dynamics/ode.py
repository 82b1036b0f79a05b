r"""The continuous-time SGD model (THEORY §2.4), solved with diffrax on a geometric time grid.

Treating one optimiser step as one unit of time, the second moments obey

.. math::  \frac{dc_k}{dt} = -r_k(t)\, c_k + f_k(t), \qquad
           r_k = 2\eta\lambda_k - (1+\tfrac1m)\eta^2\lambda_k^2, \quad
           f_k = \tfrac{\eta^2}{m}\lambda_k \,(L + \sigma^2),

with :math:`\eta = \eta(t)` the continuous-time learning rate of a
:class:`~schedopt.controls.ControlGrid` (piecewise constant or linear in
:math:`t`), :math:`L = \sum_k \lambda_k c_k` and :math:`\sigma^2` the effective
noise (label noise + finite-size residual :math:`R_N`). Rate and forcing come
from :func:`schedopt.dynamics.sgd.sgd_parts` (the right-hand side is written
once, there).

Solvers
-------

``solver="exponential"`` (default): :class:`ExponentialIntegrator`, a custom
``diffrax.AbstractSolver`` stepped on a fixed grid with ``diffrax.StepTo``.
Write :math:`f_k = r_k q_k` with :math:`q_k = f_k / r_k` the instantaneous
equilibrium of mode ``k``. On a step :math:`[t_0, t_1]` of length :math:`h`,

* the decay is exact: :math:`R_k = \int_{t_0}^{t_1} r_k\,dt` by Simpson's rule,
  exact because :math:`\eta` is linear in :math:`t` between grid points (block
  edges are grid points);
* :math:`q_k` is interpolated linearly between :math:`q_k(t_0)` and
  :math:`q_k(t_1)`, which gives

  .. math:: c_k(t_1) = e^{-R_k} c_k(t_0) + R_k\psi(R_k)\, q_k(t_0) + R_k\varphi_2(R_k)\, q_k(t_1),

  :math:`\varphi_2(z) = (e^{-z}-1+z)/z^2`, :math:`\psi(z) = (1-e^{-z}(1+z))/z^2`;
* :math:`q_k(t_1) = \alpha_k (L(t_1) + \sigma^2)` is affine in the unknown
  end-of-step loss, so the implicit step is solved exactly (a scalar equation):
  :math:`L(t_1) = (A + B\sigma^2)/(1 - B)` with
  :math:`B = \sum_k \lambda_k R_k\varphi_2(R_k)\alpha_k < \frac{\eta^2}{m}\sum_k
  \lambda_k^2/r_k < 1` whenever :math:`\eta` is below the stability threshold.

It is unconditionally stable (steps of :math:`10^5` with :math:`2\eta\lambda_1 \approx 1`
are fine), exact for constant :math:`q` (in particular it reproduces the
stationary loss :math:`L^* = S\sigma^2/(1-S)`, :math:`S = \frac{\eta^2}{m}\sum_k\lambda_k^2/r_k`,
at any step size), and second order in the step. Cost: :math:`O(N)` per grid
step; the default grid (:func:`time_grid`) has a few hundred to a few thousand
steps for horizons :math:`10^6`–:math:`10^7`.

``solver="tsit5"``: the reference, ``diffrax.Tsit5`` with a ``PIDController``
(``jump_ts`` at the block edges). Explicit, so its steps stay
:math:`\lesssim 3/(2\eta\lambda_1)`: use it for short horizons and to check the
exponential integrator.

Forms
-----

``form="plain"`` (default) is THEORY's ODE above. ``form="matched"`` replaces
:math:`r_k` by :math:`\tilde r_k = -\log(1-r_k)` and :math:`f_k` by
:math:`f_k\tilde r_k/r_k` (same :math:`q_k`); then a constant-:math:`\eta` step
decays every mode by exactly the factor :math:`d_k = 1 - r_k > 0` of the discrete
recursion. It is offered to measure; see below.

Where the ODE is not faithful to the recursion
----------------------------------------------

Measured (``benchmarks/dynamics.py``, ``tests/test_ode.py``), relative gap of
the final loss ODE vs exact recursion, batch size 1:

* the gap is first order in the step size :math:`\eta\lambda_1`: power-law
  model ``a=2, b=1.5, N=1000, σ²=0.1``, constant :math:`\eta`, ``T=10^4``:
  ~0.5 % at :math:`\eta\lambda_1 = 0.05`, ~5 % at 0.4, halving when
  :math:`\eta` halves. See :data:`MEASURED_GAPS` for the table.
* With a decaying schedule (cosine, linear-to-zero) the final loss is set at
  small :math:`\eta`, and the gap drops to ~0.1–1 % even with a peak
  :math:`\eta\lambda_1` of 0.5.
* The first few steps: the recursion moves the fast modes by the factor
  :math:`1 - r_k` per step, the ODE by :math:`e^{-r_k}`; at
  :math:`\eta\lambda_1 = 0.5` the top mode's error after one step differs by
  :math:`(1-r)/e^{-r} - 1 = e^{0.5}/2 - 1 \approx -18\,\%`. This transient
  forgets itself at the rate of the fast modes; it does not accumulate.
* ``form="matched"`` makes the decay exact for constant :math:`\eta`, which
  removes the first-step error of the fast modes, but the noise feedback
  through :math:`L` is then integrated continuously where the recursion
  injects it once per step; the net effect on final losses is reported in
  :data:`MEASURED_GAPS` (it helps for constant :math:`\eta`, not in general).

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

from schedopt._jax import jax
from schedopt.controls import ControlGrid
from schedopt.dynamics.ops import JAX
from schedopt.dynamics.recursion import DIVERGENCE_FACTOR, per_step
from schedopt.dynamics.sgd import sgd_loss, sgd_parts
from schedopt.errors import ProblemError, SolverError
from schedopt.problem import Model

__all__ = [
    "FORMS",
    "MEASURED_GAPS",
    "SOLVERS",
    "ExponentialIntegrator",
    "OdeArgs",
    "OdeSolution",
    "SGDField",
    "final_loss",
    "final_loss_jax",
    "loss_at_jax",
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

#: Measured final-loss gaps ODE vs recursion (filled from benchmarks/results/dynamics.json).
MEASURED_GAPS: dict[str, object] = {}


# --------------------------------------------------------------------------- #
# numerically safe phi-functions                                              #
# --------------------------------------------------------------------------- #

_SERIES = 0.05  # below this |z|, Taylor series (truncation < 1e-14 relative)


def _weights(z):
    r"""$e^{-z}$, $z\psi(z)$ and $z\varphi_2(z)$ with one ``expm1`` (series near 0; gradient-safe).

    $\varphi_2(z) = (e^{-z} - 1 + z)/z^2$, $\psi(z) = (1 - e^{-z}(1 + z))/z^2$.
    """
    small = jnp.abs(z) < _SERIES
    zs = jnp.where(small, 1.0, z)
    em = jnp.expm1(-z)
    inv = 1.0 / zs
    big_phi2 = (em + zs) * inv
    big_psi = -(em + zs * (1.0 + em)) * inv
    ser_phi2 = z * (1 / 2 - z * (1 / 6 - z * (1 / 24 - z * (1 / 120 - z * (1 / 720 - z / 5040)))))
    ser_psi = z * (1 / 2 - z * (1 / 3 - z * (1 / 8 - z * (1 / 30 - z * (1 / 144 - z / 840)))))
    return 1.0 + em, jnp.where(small, ser_psi, big_psi), jnp.where(small, ser_phi2, big_phi2)


def _log_ratio(r):
    r"""$-\log(1 - r)/r$, smooth at 0 (the matched-rate factor)."""
    small = jnp.abs(r) < 1e-3
    rs = jnp.where(small, 0.5, r)
    big = -jnp.log1p(-rs) / rs
    ser = 1.0 + r * (1 / 2 + r * (1 / 3 + r * (1 / 4 + r / 5)))
    return jnp.where(small, ser, big)


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
    """

    values: jax.Array
    batch_size: jax.Array
    eigenvalues: jax.Array
    noise: jax.Array


class SGDField(eqx.Module):
    r"""Right-hand side :math:`dc/dt = -r(t)\,c + f(t)` of THEORY §2.4 with a control-grid learning rate.

    Call it as a diffrax vector field ``field(t, y, args)`` (``args`` an
    :class:`OdeArgs`). :class:`ExponentialIntegrator` uses its split form
    instead: :meth:`learning_rate` and :meth:`rate_gain`.

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

    def _on_block(self, i, t, values):
        if self.parameterisation == "constant":
            return values[i]
        left, right = self.edges[i], self.edges[i + 1]
        return values[i] + (t - left) / (right - left) * (values[i + 1] - values[i])

    def learning_rate(self, t, args: OdeArgs):
        r"""The continuous-time learning rate :math:`\eta(t)` (right-continuous at block edges)."""
        return self._on_block(self._block(t), t, args.values)

    def learning_rate_step(self, t0, t1, args: OdeArgs):
        r""":math:`\eta` at the start, middle and end of a step, on the block holding its midpoint.

        Exact when the step lies inside one block (grid points at every block edge).
        """
        t_mid = 0.5 * (t0 + t1)
        i = self._block(t_mid)
        return tuple(self._on_block(i, t, args.values) for t in (t0, t_mid, t1))

    def _transform(self, rate, forcing):
        if self.form == "plain":
            return rate, forcing
        factor = _log_ratio(rate)
        return factor * rate, factor * forcing

    def rate_gain(self, learning_rate, args: OdeArgs):
        r"""Decay rate :math:`r` and gain :math:`g` (forcing per unit of :math:`L + \sigma^2`)."""
        zero = jnp.zeros_like(args.eigenvalues)
        rate, gain = sgd_parts(zero, learning_rate, args.batch_size, args.eigenvalues, 1.0, JAX)
        return self._transform(rate, gain)

    def __call__(self, t, y, args: OdeArgs):
        eta = self.learning_rate(t, args)
        rate, forcing = sgd_parts(y, eta, args.batch_size, args.eigenvalues, args.noise, JAX)
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


class ExponentialIntegrator(diffrax.AbstractSolver):
    r"""Exponential integrator for :math:`dc/dt = -r(t)\,c + r(t)\,q(t, L)`, exact decay, implicit in L.

    Second order, unconditionally stable. Use with ``diffrax.StepTo(ts)`` whose
    ``ts`` contain every point where :math:`\eta` has a kink or a jump (the block
    edges; :func:`time_grid` does that): a step takes the learning rate of the
    block holding its midpoint.

    The term must be a ``diffrax.ODETerm`` wrapping an :class:`SGDField`.
    """

    term_structure: ClassVar = diffrax.ODETerm
    interpolation_cls: ClassVar[Callable[..., diffrax.LocalLinearInterpolation]] = (
        diffrax.LocalLinearInterpolation
    )

    def order(self, terms):
        return 2

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        field = _sgd_field(terms)
        if field is None:
            raise TypeError(
                f"ExponentialIntegrator needs an ODETerm of an SGDField, got {type(terms).__name__}"
            )
        h = t1 - t0
        eta0, eta_m, eta1 = field.learning_rate_step(t0, t1, args)
        r0, g0 = field.rate_gain(eta0, args)
        rm, _ = field.rate_gain(eta_m, args)
        r1, g1 = field.rate_gain(eta1, args)
        big_r = (h / 6.0) * (r0 + 4.0 * rm + r1)  # exact: r is quadratic in t

        lam, noise = args.eigenvalues, args.noise
        loss0 = sgd_loss(y0, lam, JAX)
        q0 = _safe_div(g0, r0) * (loss0 + noise)
        alpha1 = _safe_div(g1, r1)
        decay, w_start, w_end = _weights(big_r)
        w1 = w_end * alpha1
        base = decay * y0 + w_start * q0
        b = jnp.sum(lam * w1)
        loss1 = (jnp.sum(lam * base) + b * noise) / (1.0 - b)
        y1 = base + w1 * (loss1 + noise)
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
    extra = -(ts.size - 1) % multiple
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


def _checkpoints(n_steps: int, n_modes: int) -> int:
    """Reverse-mode checkpoints: every step while the states fit in ~64 MB."""
    return max(16, min(n_steps, (8 << 20) // max(n_modes, 1)))


def _loss_fn(t, y, args):
    return sgd_loss(y, args.eigenvalues, JAX)


@partial(
    jax.jit,
    static_argnames=(
        "parameterisation",
        "form",
        "solver",
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
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 200_000,
    checkpoints: int | None = None,
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
        rtol, atol, max_steps: Tsit5 controller tolerances and step limit.
        checkpoints: reverse-mode checkpoints (exponential solver; default: every step
            while ``n_steps * N`` floats fit in 64 MB).
    """
    field = SGDField(edges=edges, parameterisation=parameterisation, form=form)
    args = OdeArgs(values=values, batch_size=batch_size, eigenvalues=eigenvalues, noise=noise)
    saveat = diffrax.SaveAt(ts=save_ts, fn=_loss_fn)
    t0, t1 = ts[0], ts[-1]
    if solver == "exponential":
        n_steps = ts.shape[0] - 1
        y0_size = initial_error.shape[-1]
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            ExponentialIntegrator(),
            t0=t0,
            t1=t1,
            dt0=None,
            y0=initial_error,
            args=args,
            saveat=saveat,
            stepsize_controller=diffrax.StepTo(ts=ts),
            max_steps=n_steps,
            adjoint=diffrax.RecursiveCheckpointAdjoint(
                checkpoints=checkpoints if checkpoints is not None else _checkpoints(n_steps, y0_size)
            ),
            throw=False,
        )
    elif solver == "tsit5":
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            t0=t0,
            t1=t1,
            dt0=None,
            y0=initial_error,
            args=args,
            saveat=saveat,
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


def solve(
    model: Model,
    learning_rate,
    *,
    grid: ControlGrid | None = None,
    batch_size: float = 1.0,
    save_at=None,
    solver: str = "exponential",
    form: str = "plain",
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


def final_loss(model: Model, learning_rate, *, grid: ControlGrid | None = None, **options):
    """Final excess loss :math:`L_T` (kept modes + residual) of the ODE; ``inf`` where it diverged.

    Same arguments as :func:`solve`.
    """
    out = solve(model, learning_rate, grid=grid, **options).final_loss
    return float(out) if np.ndim(out) == 0 else out
