r"""Baseline learning-rate schedules and their tuning on the exact recursion.

Seven families, each a schedule shape times a peak learning rate ``peak``:

=============== ========================================================== =====================
name            learning rate at step ``t`` (``T`` = horizon)               shape parameter
=============== ========================================================== =====================
``constant``    :math:`\eta_t = \eta_0`                                     --
``power_law``   :math:`\eta_t = \eta_0 (t+1)^{-\chi}`                       ``exponent`` ∈ [0, 1.5]
``cosine``      :math:`\eta(s) = \eta_0[r + (1-r)\tfrac12(1+\cos(\pi s/T))]` -- (option ``final_ratio`` r = 0)
``linear``      :math:`\eta(s) = \eta_0 (1 - s/T)`                          --
``wsd_linear``  :math:`\eta_0` until :math:`(1-f)T`, then linear to 0 at T    ``cooldown_fraction`` f ∈ [1e-4, 1]
``wsd_sqrt``    :math:`\eta_0`, then :math:`\eta_0(1-\sqrt{(s-(1-f)T)/(fT)})`  ``cooldown_fraction`` f ∈ [1e-4, 1]
``exponential`` :math:`\eta_t = \eta_0\,\rho^{t/(T-1)}` (:math:`\gamma = \rho^{1/(T-1)}`) ``final_ratio`` ρ ∈ [1e-6, 1]
=============== ========================================================== =====================

**Step convention.** Step ``t = 0`` is the first update (optax count) and covers
the time interval ``[t, t+1)``. The step-count families (``constant``,
``power_law``, ``exponential``) are defined per step as in the table. The
continuous-time shapes :math:`\eta(s)` (``cosine``, ``linear``, ``wsd_*``) give
step ``t`` the **mean of** :math:`\eta(s)` **over** ``[t, t+1]``. Wherever the
shape is linear on a step this is the midpoint value :math:`\eta(t+\tfrac12)`
used by :mod:`schedopt.controls` (every step of ``linear``, every step of
``wsd_linear`` except the one containing the start of the cooldown); for
``cosine`` it differs from the midpoint value by a factor
:math:`\mathrm{sinc}(1/2T) = 1 - O(T^{-2})`. The mean makes the per-step values
continuously differentiable in the cooldown fraction: with midpoint sampling the
loss of ``wsd_sqrt`` has a spurious local minimum every step's worth of ``f``
(their depth reached 1e-3 relative at ``T = 2000``), which defeats any local
search.

**Tuning** (:func:`tune_baseline`) minimises the final loss :math:`L_T` over
the family's parameters on the exact recursion
(:func:`~schedopt.dynamics.recursion.final_loss_jax`) with the problem's model,
its fixed batch size (``sample_budget / T`` when there is a budget) and momentum.
The peak is bounded by the problem's learning-rate control,
``[max(min, max * peak_range), max]``; shape parameters by the family's bounds.
The search runs in scaled coordinates ``u ∈ [0, 1]`` per parameter: the peak on
a logit scale :math:`\log\eta - \log(\eta_c - \eta)` with :math:`\eta_c` the
stability threshold (the loss diverges like :math:`1/(\eta_c-\eta)`, which this
keeps near-quadratic), ``exponent`` linearly, ``final_ratio`` on a log scale and
``cooldown_fraction`` on a logit scale (both short and almost-full cooldowns
resolved). Then:

1. a coarse grid (``GRID`` = 8 peaks × 4 shape values), evaluated in vectorised calls;
2. from each of its local minima (at most ``starts``, best first) a bounded
   trust-region Newton method on :math:`\log L_T`: gradient and Hessian are
   central differences, all points of one iteration in one vectorised call;
   after a long step the difference step is a quarter of the step (a secant
   model of the region ahead), near the optimum ``1e-4`` (a derivative model).
   A start on a bound first optimises within that face (minima on the boundary
   are common: ``cooldown_fraction = 1``, ``peak = max``). A later start that
   runs into an optimum already found stops. The search stops when the predicted
   further decrease of :math:`\log L_T` is below ``tol`` (default ``1e-11``);
3. (``faces=True``) the peak is optimised on both bounds of the shape parameter
   and, where that comes within :data:`FACE_MARGIN` of the best loss, a full
   search starts from there: a minimum on a bound is often no local minimum of
   the coarse grid.

The families' landscapes are not always unimodal (``wsd_sqrt`` has a minimum at
``cooldown_fraction = 1`` and another inside, 0.3 % apart, on a noisy easy-phase
problem), hence the several starts. Checked against dense scans (161 × 81 points,
8 problems in both phases, with and without noise, N = 100, T = 1000 and
N = 50, T = 300): the tuned loss was never above the best scanned point.
A family's loss is only once differentiable in ``cooldown_fraction`` (see above),
so its optimum is found to ~1e-9 relative rather than ~1e-11.

Values only are used (no autodiff), so the tuner does not depend on how the
recursion is differentiated. All families share one compiled function per
``(N, T)`` and batch of 4 or 8 schedules: the family is a traced index into
``lax.switch`` and the problem's numbers are traced arguments, so other
problems and families with the same ``N`` and ``T`` do not recompile.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from schedopt import _validate as v
from schedopt._jax import jax
from schedopt.dynamics.compression import auto_compress
from schedopt.dynamics.recursion import DIVERGENCE_FACTOR, final_loss, final_loss_jax
from schedopt.dynamics.stability import momentum_stability_threshold, stability_threshold
from schedopt.errors import ProblemError, SolverError
from schedopt.problem import Problem

__all__ = [
    "BASELINES",
    "BaselineFamily",
    "Constant",
    "Cosine",
    "Exponential",
    "Linear",
    "Parameter",
    "PowerLaw",
    "TunedBaseline",
    "WSDLinear",
    "WSDSqrt",
    "baseline_schedule",
    "tune_baseline",
    "tune_baselines",
]

logger = logging.getLogger(__name__)

#: Default lower end of the peak search, as a fraction of the learning-rate cap.
PEAK_RANGE = 1e-6
#: Default coarse grid: points along ``peak`` and along the shape parameter.
GRID = (8, 4)
#: Default stopping tolerance: predicted further decrease of ``log L_T``.
TOL = 1e-11
#: Central-difference step in the scaled ``[0, 1]`` search coordinates.
FD_STEP = 1e-4
#: Steps (in scaled coordinates) longer than this get a secant model (difference
#: step a quarter of the step), shorter ones a derivative model.
SECANT_STEPS = 0.02
#: A search from a further start stops within this distance (scaled coordinates)
#: of an optimum already found.
MERGE_DISTANCE = 0.05
#: A bound of the shape parameter whose best peak gives a loss within this fraction
#: of the best loss found gets a full local search from there.
FACE_MARGIN = 0.05
#: Vectorised batch sizes (padded to these, so each compiles once per ``N, T``).
_BATCH = 8
_SMALL_BATCH = 4


#: Offset of the ``logit`` scale: :math:`z = \log x - \log(u(1+\epsilon) - x)` for upper bound ``u``.
LOGIT_EPS = 0.05
SCALES = ("linear", "log", "logit")
GRID_BIASES = ("uniform", "upper", "lower")


@dataclass(frozen=True)
class Parameter:
    r"""A parameter of a baseline family.

    Attributes:
        name: parameter name (a key of ``params``).
        lower, upper: closed bounds. ``peak`` has ``(0, inf)``: its bounds come
            from the problem's learning-rate control when tuning.
        scale: coordinate the tuner searches in: ``"linear"``, ``"log"``, or
            ``"logit"`` (log-like at both ends: :math:`\log x - \log(p - x)` with the
            ``pole`` :math:`p`, by default :math:`u(1+\epsilon)`, :math:`\epsilon` =
            :data:`LOGIT_EPS`: for fractions whose values near 1 matter too).
        description: one line for tables and ``--help``.
        grid_bias: where the tuner's coarse grid is denser in the scaled range:
            ``"upper"``, ``"lower"`` (quadratic spacing) or ``"uniform"``; where the
            optimum usually is.
        pole: singular point of the ``logit`` scale (above ``upper``).
    """

    name: str
    lower: float
    upper: float
    scale: str = "linear"
    description: str = ""
    grid_bias: str = "uniform"
    pole: float | None = None

    def __post_init__(self) -> None:
        v.one_of("scale", self.scale, SCALES)
        v.one_of("grid_bias", self.grid_bias, GRID_BIASES)

    @property
    def _pole(self) -> float:
        return self.upper * (1.0 + LOGIT_EPS) if self.pole is None else self.pole

    def to_scaled(self, x):
        """The search coordinate ``z`` of a value ``x`` (NumPy)."""
        x = np.asarray(x, dtype=np.float64)
        if self.scale == "log":
            return np.log(x)
        if self.scale == "logit":
            return np.log(x) - np.log(self._pole - x)
        return x

    def from_scaled(self, z):
        """The value ``x`` of a search coordinate ``z`` (NumPy)."""
        z = np.asarray(z, dtype=np.float64)
        if self.scale == "log":
            return np.exp(z)
        if self.scale == "logit":
            return self._pole / (1.0 + np.exp(-z))
        return z

    def scaled_slope(self, x):
        """:math:`dz/dx` at ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if self.scale == "log":
            return 1.0 / x
        if self.scale == "logit":
            return 1.0 / x + 1.0 / (self._pole - x)
        return np.ones_like(x)

    def grid(self, n: int) -> np.ndarray:
        """``n`` coarse-grid points in the scaled coordinate ``[0, 1]``."""
        x = np.linspace(0.0, 1.0, n)
        if self.grid_bias == "upper":
            return 1.0 - (1.0 - x) ** 2
        if self.grid_bias == "lower":
            return x**2
        return x


#: The peak learning rate. When tuning, its bounds come from the problem and it is
#: searched on a ``logit`` scale whose pole is the stability threshold (the loss
#: diverges there, like ``1 / (threshold - peak)``).
PEAK = Parameter("peak", 0.0, math.inf, "log", "peak (initial) learning rate")


@dataclass(frozen=True)
class BaselineFamily:
    """A family of learning-rate schedules: ``peak`` times a shape with at most one parameter.

    Subclasses define ``name``, ``shape_parameters`` and ``_shape``. Instances are
    immutable and hashable; options of a family (``Cosine.final_ratio``) are
    fields, fixed during tuning.
    """

    name: ClassVar[str] = ""
    shape_parameters: ClassVar[tuple[Parameter, ...]] = ()

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """``peak`` followed by the shape parameters."""
        return (PEAK, *self.shape_parameters)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def bounds(self) -> dict[str, tuple[float, float]]:
        """Closed bounds of each parameter (``peak``: set by the problem when tuning)."""
        return {p.name: (p.lower, p.upper) for p in self.parameters}

    @property
    def option(self) -> float:
        """The family's fixed option as one number (traced by the tuner); 0 if none."""
        return 0.0

    @staticmethod
    def _shape(theta, option, t, horizon: int):
        """Relative learning rate (peak 1) at steps ``t``; ``theta`` holds the shape parameter."""
        raise NotImplementedError

    def _vector(self, params) -> jnp.ndarray:
        names = self.param_names
        if isinstance(params, Mapping):
            missing = [n for n in names if n not in params]
            unknown = [k for k in params if k not in names]
            if missing or unknown:
                raise ProblemError(
                    f"`params` of {self.name} must have exactly the keys {list(names)}, got {sorted(params)}",
                    field="params",
                )
            items = [params[n] for n in names]
        else:
            items = list(params)
            if len(items) != len(names):
                raise ProblemError(
                    f"`params` of {self.name} must have {len(names)} values {list(names)}, got {len(items)}",
                    field="params",
                )
        return jnp.stack([jnp.asarray(x, dtype=jnp.float64) for x in items])

    def schedule(self, params, horizon: int) -> Callable:
        """An optax-style schedule: a jit-safe function of the step count.

        Counts past the horizon keep the last step's value (as optax decay
        schedules do); negative counts the first step's.
        """
        horizon = v.positive_int("horizon", horizon)
        theta = self._vector(params)
        option = self.option
        shape = type(self)._shape

        def fn(count):
            t = jnp.clip(jnp.asarray(count, dtype=jnp.float64), 0.0, horizon - 1.0)
            return theta[0] * shape(theta[1:], option, t, horizon)

        return fn

    def values(self, params, horizon: int) -> jnp.ndarray:
        """Per-step learning rates ``(horizon,)`` (jit-, vmap- and grad-safe in ``params``).

        Args:
            params: a mapping ``{name: value}`` or a sequence in :attr:`param_names` order.
            horizon: number of steps ``T`` (a Python integer).
        """
        horizon = v.positive_int("horizon", horizon)
        theta = self._vector(params)
        if type(self) in _KINDS:  # one compiled function for every built-in family
            padded = jnp.concatenate([theta, jnp.zeros(2 - theta.size)])
            return _schedule_values(_KINDS.index(type(self)), self.option, padded, horizon=horizon)
        t = jnp.arange(horizon, dtype=jnp.float64)
        return theta[0] * type(self)._shape(theta[1:], self.option, t, horizon)


@dataclass(frozen=True)
class Constant(BaselineFamily):
    r""":math:`\eta_t = \eta_0`."""

    name: ClassVar[str] = "constant"

    @staticmethod
    def _shape(theta, option, t, horizon):
        return jnp.ones_like(t)


@dataclass(frozen=True)
class PowerLaw(BaselineFamily):
    r""":math:`\eta_t = \eta_0 (t + 1)^{-\chi}` (``exponent`` :math:`\chi`)."""

    name: ClassVar[str] = "power_law"
    shape_parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("exponent", 0.0, 1.5, "linear", "decay exponent chi of (t + 1)^-chi", "lower"),
    )

    @staticmethod
    def _shape(theta, option, t, horizon):
        return jnp.power(t + 1.0, -theta[0])


@dataclass(frozen=True)
class Cosine(BaselineFamily):
    r"""Cosine decay from ``peak`` to ``final_ratio * peak`` at ``T``, step means.

    Step ``t``: :math:`r + (1-r)\tfrac12\bigl(1 + \cos(\pi(t+\frac12)/T)\,\mathrm{sinc}(1/2T)\bigr)`
    (the mean of the continuous cosine over ``[t, t+1]``).

    Attributes:
        final_ratio: final / peak learning rate ``r`` in [0, 1] (optax ``alpha``); fixed.
    """

    name: ClassVar[str] = "cosine"
    final_ratio: float = 0.0

    def __post_init__(self) -> None:
        r = v.nonnegative("final_ratio", self.final_ratio)
        if r > 1:
            raise ProblemError(
                f"`final_ratio` must be in [0, 1], got {self.final_ratio!r}", field="final_ratio"
            )
        object.__setattr__(self, "final_ratio", r)

    @property
    def option(self) -> float:
        return self.final_ratio

    @staticmethod
    def _shape(theta, option, t, horizon):
        mean_cos = jnp.cos(jnp.pi * (t + 0.5) / horizon) * jnp.sinc(0.5 / horizon)
        return option + (1.0 - option) * 0.5 * (1.0 + mean_cos)


@dataclass(frozen=True)
class Linear(BaselineFamily):
    r"""Linear decay to 0 at ``T``: :math:`\eta_t = \eta_0 (1 - (t + \frac12)/T)`."""

    name: ClassVar[str] = "linear"

    @staticmethod
    def _shape(theta, option, t, horizon):
        return 1.0 - (t + 0.5) / horizon


_COOLDOWN = Parameter("cooldown_fraction", 1e-4, 1.0, "logit", "fraction f of the horizon spent cooling down")


@dataclass(frozen=True)
class WSDLinear(BaselineFamily):
    r"""Warmup-free warmup-stable-decay: ``peak`` until :math:`s_0 = (1-f)T`, then linear to 0 at ``T``.

    Step ``t`` (mean over ``[t, t+1]``), with :math:`D = fT` and
    :math:`b = \mathrm{clip}(t + 1 - s_0, 0, 1)` the part of the step in the cooldown:
    :math:`(1 - b) + b\,(T - t - 1 + b/2)/D`.
    """

    name: ClassVar[str] = "wsd_linear"
    shape_parameters: ClassVar[tuple[Parameter, ...]] = (_COOLDOWN,)

    @staticmethod
    def _shape(theta, option, t, horizon):
        span = theta[0] * horizon
        start = horizon - span
        b = jnp.clip(t + 1.0 - start, 0.0, 1.0)
        return (1.0 - b) + b * (horizon - t - 1.0 + 0.5 * b) / span


@dataclass(frozen=True)
class WSDSqrt(BaselineFamily):
    r"""Warmup-stable-decay with the :math:`1-\sqrt{\cdot}` cooldown over the last fraction ``f``.

    Continuous shape :math:`1 - \sqrt{x(s)}`, :math:`x = \max(s - s_0, 0)/D`,
    :math:`D = fT`, :math:`s_0 = T - D`; step ``t`` takes its mean over ``[t, t+1]``:
    :math:`1 - \tfrac{2D}{3}\bigl(x(t+1)^{3/2} - x(t)^{3/2}\bigr)`.
    """

    name: ClassVar[str] = "wsd_sqrt"
    shape_parameters: ClassVar[tuple[Parameter, ...]] = (_COOLDOWN,)

    @staticmethod
    def _shape(theta, option, t, horizon):
        span = theta[0] * horizon
        start = horizon - span
        x0 = jnp.maximum(t - start, 0.0) / span
        x1 = jnp.maximum(t + 1.0 - start, 0.0) / span
        return 1.0 - (2.0 * span / 3.0) * (jnp.power(x1, 1.5) - jnp.power(x0, 1.5))


@dataclass(frozen=True)
class Exponential(BaselineFamily):
    r""":math:`\eta_t = \eta_0\gamma^t`, :math:`\gamma = \rho^{1/(T-1)}`: the last step has ``final_ratio * peak``."""

    name: ClassVar[str] = "exponential"
    shape_parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("final_ratio", 1e-6, 1.0, "log", "last / first learning rate rho", "upper"),
    )

    @staticmethod
    def _shape(theta, option, t, horizon):
        return jnp.exp(jnp.log(theta[0]) * t / max(horizon - 1, 1))


#: The built-in families by name, in the order tables list them.
BASELINES: Mapping[str, BaselineFamily] = MappingProxyType(
    {
        family.name: family
        for family in (Constant(), PowerLaw(), Cosine(), Linear(), WSDLinear(), WSDSqrt(), Exponential())
    }
)

_KINDS: tuple[type[BaselineFamily], ...] = tuple(type(f) for f in BASELINES.values())


def _family(name) -> BaselineFamily:
    if isinstance(name, BaselineFamily):
        if type(name) not in _KINDS:
            raise ProblemError(
                f"`name` must be a built-in baseline family, got {type(name).__name__}", field="name"
            )
        return name
    if not isinstance(name, str) or name not in BASELINES:
        raise ProblemError(
            "`name` must be one of " + ", ".join(repr(n) for n in BASELINES) + f", got {name!r}",
            field="name",
        )
    return BASELINES[name]


def _checked_params(family: BaselineFamily, params) -> dict[str, float]:
    if not isinstance(params, Mapping):
        raise ProblemError(
            f"`params` of {family.name} must be a mapping with keys {list(family.param_names)}",
            field="params",
        )
    family._vector(params)  # key check
    out = {}
    for p in family.parameters:
        value = v.real(p.name, params[p.name])
        if p.name == "peak":
            if value <= 0:
                raise ProblemError(f"`peak` must be a positive number, got {params[p.name]!r}", field="peak")
        elif not p.lower <= value <= p.upper:
            raise ProblemError(
                f"`{p.name}` of {family.name} must be in [{p.lower:g}, {p.upper:g}], got {params[p.name]!r}",
                field=p.name,
            )
        out[p.name] = value
    return out


def baseline_schedule(name, params: Mapping[str, float], horizon: int) -> np.ndarray:
    """Per-step learning rates of a baseline, ``(horizon,)`` float64 (validated).

    Args:
        name: a key of :data:`BASELINES` or a family instance (e.g. ``Cosine(final_ratio=0.1)``).
        params: ``{name: value}`` for every parameter of the family.
        horizon: number of steps ``T``.
    """
    family = _family(name)
    horizon = v.positive_int("horizon", horizon)
    checked = _checked_params(family, params)
    return np.asarray(family.values(checked, horizon), dtype=np.float64)


# --------------------------------------------------------------------------- engine


def _shape_any(kind, theta, option, t, horizon: int):
    """The shape of family number ``kind`` (a traced index into :data:`_KINDS`)."""
    branches = [partial(cls._shape, t=t, horizon=horizon) for cls in _KINDS]
    return jax.lax.switch(kind, branches, theta, option)


@partial(jax.jit, static_argnames=("horizon",))
def _schedule_values(kind, option, params, *, horizon):
    """Per-step learning rates of ``params = (peak, shape)`` for family number ``kind``."""
    t = jnp.arange(horizon, dtype=jnp.float64)
    return params[0] * _shape_any(kind, params[1:], option, t, horizon)


@partial(jax.jit, static_argnames=("horizon",))
def _batch_final_loss(kind, option, params, lam, c0, noise, batch_size, momentum, weights, *, horizon):
    """Kept-mode final loss of ``params[i] = (peak, shape)`` for one family; ``(S,)``.

    ``weights``: the loss readout of a compressed spectrum, or ``None``.
    """
    m = jnp.full((horizon,), batch_size)
    beta = None if momentum is None else jnp.full((horizon,), momentum)

    def one(p):
        lr = _schedule_values(kind, option, p, horizon=horizon)
        return final_loss_jax(lam, c0, noise, lr, m, beta, loss_weights=weights)

    return jax.vmap(one)(params)


class _Objective:
    """Final loss of a family on a problem, in scaled search coordinates ``u ∈ [0, 1]^P``."""

    def __init__(
        self,
        problem: Problem,
        family: BaselineFamily,
        peak_range: float,
        threshold: float | None = None,
        modes: str = "auto",
    ):
        model = problem.model
        lr = problem.learning_rate
        self.family = family
        self.horizon = problem.horizon
        self.kind = _KINDS.index(type(family))
        hi = lr.max
        lo = max(lr.min, hi * peak_range)
        # the loss diverges as the peak nears the stability threshold: searching in
        # log(peak) - log(threshold - peak) keeps it close to quadratic there
        pole = threshold if threshold is not None and threshold > hi else hi * (1.0 + LOGIT_EPS)
        peak = dataclasses.replace(PEAK, lower=lo, upper=hi, scale="logit", pole=pole)
        self.params = (peak, *family.shape_parameters)
        self.lower = np.array([p.lower for p in self.params])
        self.upper = np.array([p.upper for p in self.params])
        zl = np.array([float(p.to_scaled(p.lower)) for p in self.params])
        zu = np.array([float(p.to_scaled(p.upper)) for p in self.params])
        self.z_lower, self.z_width = zl, zu - zl
        # plain SGD on a large spectrum: the compressed one (same losses to ~5e-13, 1/8 the work at N = 1e3)
        spectrum = None
        if modes == "auto" and problem.training.momentum == 0.0:
            spectrum = auto_compress(model.eigenvalues, model.initial_error)
        self.compressed = spectrum is not None
        lam, c0, weights = model.eigenvalues, model.initial_error, None
        if spectrum is not None:
            lam, c0, weights = (
                spectrum.eigenvalues,
                spectrum.initial_error,
                jnp.asarray(spectrum.loss_weights),
            )
        self.args = (
            jnp.asarray(lam),
            jnp.asarray(c0),
            jnp.asarray(model.effective_noise),
            jnp.asarray(_fixed_batch_size(problem)),
            None if problem.training.momentum == 0.0 else jnp.asarray(problem.training.momentum),
            weights,
        )
        self.residual = model.residual
        self.limit = DIVERGENCE_FACTOR * (model.initial_loss + model.residual + model.effective_noise)
        self.evaluations = 0

    def fd_step(self, u: np.ndarray) -> np.ndarray:
        """Finite-difference step per scaled coordinate at ``u``.

        :data:`FD_STEP`, except for the cooldown fraction: the per-step values are
        only once differentiable in it (the curvature jumps each time the cooldown
        start crosses a step), so its step spans about two steps of the cooldown
        start and the Hessian sees the average curvature.
        """
        h = np.full(self.dim, FD_STEP)
        for j, p in enumerate(self.params):
            if p.name == "cooldown_fraction":
                f = self.natural(u)[j]
                per_step = float(p.scaled_slope(f)) / (self.horizon * self.z_width[j])  # u per step
                h[j] = min(max(FD_STEP, 2.0 * per_step), 0.02)
        return h

    @property
    def dim(self) -> int:
        return self.lower.size

    def natural(self, u: np.ndarray) -> np.ndarray:
        """Parameter values (``peak``, shape) from scaled coordinates, exactly within the bounds."""
        z = self.z_lower + np.clip(u, 0.0, 1.0) * self.z_width
        x = np.stack([p.from_scaled(z[..., j]) for j, p in enumerate(self.params)], axis=-1)
        return np.clip(x, self.lower, self.upper)

    def loss(self, u: np.ndarray) -> np.ndarray:
        """Final loss (kept modes + residual) of each row of ``u``; ``inf`` where it diverged."""
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        x = self.natural(u)
        if x.shape[1] == 1:
            x = np.concatenate([x, np.zeros_like(x)], axis=1)  # unused shape slot
        out = np.empty(len(x))
        size = _SMALL_BATCH if len(x) <= _SMALL_BATCH else _BATCH
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            padded = np.concatenate([chunk, np.repeat(chunk[:1], size - len(chunk), axis=0)])
            kept = _batch_final_loss(
                self.kind, self.family.option, jnp.asarray(padded), *self.args, horizon=self.horizon
            )
            out[start : start + len(chunk)] = np.asarray(kept)[: len(chunk)] + self.residual
        self.evaluations += len(x)
        return np.where(np.isfinite(out) & (out <= self.limit), out, np.inf)


def _check_stability(problem: Problem) -> float:
    """The stability threshold at the baselines' batch size and momentum; the cap must be below it.

    Baselines run at one batch size and momentum (not over the box of a batch-size
    or momentum control, as solvers do), so this is the threshold that matters.
    """
    m = _fixed_batch_size(problem)
    beta = problem.training.momentum
    if beta == 0.0:
        threshold = stability_threshold(problem.model, m)
    else:
        threshold = float(momentum_stability_threshold(problem.model, beta, m))
    cap = problem.learning_rate.max
    if cap >= threshold:
        raise ProblemError(
            f"`controls.learning_rate.max` = {cap:g} is at or above the stability threshold "
            f"{threshold:.6g} of the recursion at the baselines' batch_size = {m:g} and "
            f"momentum = {beta:g}; lower it below the threshold",
            field="max",
        )
    return threshold


def _fixed_batch_size(problem: Problem) -> float:
    """The constant batch size baselines run at: the budget's ``D / T`` if there is one."""
    if problem.sample_budget is None:
        return problem.training.batch_size
    m = problem.sample_budget / problem.horizon
    spec = problem.controls.get("batch_size")
    lo, hi = (spec.min, spec.max) if spec is not None else (1.0, math.inf)
    if not lo <= m <= hi:
        raise ProblemError(
            f"`sample_budget` / horizon = {m:g} is outside the batch-size bounds [{lo:g}, {hi:g}]; "
            "baselines run at a constant batch size",
            field="sample_budget",
        )
    return m


# --------------------------------------------------------------------------- search


class _Face:
    """An objective restricted to some coordinates, the others held where they are."""

    def __init__(self, obj: _Objective, base: np.ndarray, free: np.ndarray):
        self.obj, self.base, self.free = obj, base.copy(), np.asarray(free, dtype=bool)

    def full(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        out = np.array(np.broadcast_to(self.base, (*u.shape[:-1], self.base.size)))
        out[..., self.free] = u
        return out

    def loss(self, u: np.ndarray) -> np.ndarray:
        return self.obj.loss(self.full(np.atleast_2d(u)))

    def fd_step(self, u: np.ndarray) -> np.ndarray:
        return self.obj.fd_step(self.full(u))[self.free]


def _trust_region_step(g: np.ndarray, hess: np.ndarray, radius: float) -> np.ndarray:
    """Minimiser of ``g.s + s.H.s / 2`` subject to ``|s| <= radius`` (small dense problems)."""
    w, q = np.linalg.eigh(hess)
    gq = q.T @ g
    if w.min() > 0:
        s = -q @ (gq / w)
        if np.linalg.norm(s) <= radius:
            return s
    shift = max(0.0, -w.min())
    if np.linalg.norm(gq) <= 1e-300:  # hard case: move along the most negative curvature
        return radius * q[:, int(np.argmin(w))]
    lo, hi = shift, shift + np.linalg.norm(gq) / radius
    for _ in range(200):
        mu = 0.5 * (lo + hi)
        denom = w + mu
        if np.all(denom > 0) and np.linalg.norm(gq / denom) > radius:
            lo = mu
        else:
            hi = mu
        if hi - lo <= 1e-15 * hi:
            break
    return -q @ (gq / (w + hi))


def _interval_minimum(slope: float, curvature: float, a: float, b: float) -> list[float]:
    """Candidates for the minimum of ``slope*x + curvature*x^2/2`` on ``[a, b]``."""
    out = [a, b]
    if curvature > 0:
        out.append(min(max(-slope / curvature, a), b))
    return out


def _box_step(g: np.ndarray, hess: np.ndarray, radius: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Minimiser of the quadratic model on ``{|s| <= radius, lo <= s <= hi}`` (``lo <= 0 <= hi``).

    Exact for one parameter. For two, the best of: the trust-region step if it is
    inside the box, the minimum on each box face inside the ball, and 2048 points
    of the ball's boundary inside the box.
    """
    d = g.size
    if d == 1:
        xs = _interval_minimum(g[0], hess[0, 0], max(lo[0], -radius), min(hi[0], radius))
        cands = np.array(xs)[:, None]
    else:
        cands = [np.zeros(d)]
        s = _trust_region_step(g, hess, radius)
        if np.all(s >= lo) and np.all(s <= hi):
            cands.append(s)
        angle = np.linspace(0.0, 2.0 * np.pi, 2048, endpoint=False)
        ring = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        cands.extend(ring[np.all((ring >= lo) & (ring <= hi), axis=1)])
        for i in range(d):
            j = 1 - i
            for bound in (lo[i], hi[i]):
                if abs(bound) > radius:
                    continue
                reach = math.sqrt(radius**2 - bound**2)
                a, b = max(lo[j], -reach), min(hi[j], reach)
                if a > b:
                    continue
                for x in _interval_minimum(g[j] + hess[i, j] * bound, hess[j, j], a, b):
                    c = np.empty(d)
                    c[i], c[j] = bound, x
                    cands.append(c)
        cands = np.array(cands)
    values = cands @ g + 0.5 * np.einsum("ni,ij,nj->n", cands, hess, cands)
    return cands[int(np.argmin(values))]


def _stencil(center: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Points of a central-difference gradient and Hessian around ``center`` (steps ``h`` per axis)."""
    d = center.size
    step = np.diag(h)
    pts = [center]
    for i in range(d):
        pts += [center + step[i], center - step[i]]
    if d == 2:
        pts += [center + h, center - h]
    return np.array(pts)


def _model(f: np.ndarray, h: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of the values ``f`` on :func:`_stencil` points."""
    f0 = f[0]
    g = np.empty(d)
    hess = np.empty((d, d))
    for i in range(d):
        fp, fm = f[1 + 2 * i], f[2 + 2 * i]
        g[i] = (fp - fm) / (2 * h[i])
        hess[i, i] = (fp - 2 * f0 + fm) / h[i] ** 2
    if d == 2:
        both = f[5] + f[6] - 2 * f0 - hess[0, 0] * h[0] ** 2 - hess[1, 1] * h[1] ** 2
        hess[0, 1] = hess[1, 0] = both / (2 * h[0] * h[1])
    return g, hess


@dataclass
class _Search:
    u: np.ndarray
    loss: float  # final loss at u
    converged: bool = False
    iterations: int = 0


def _refine(
    obj: _Objective,
    u0: np.ndarray,
    loss0: float,
    radius: float,
    tol: float,
    max_iter: int,
    known: Sequence[np.ndarray] = (),
) -> _Search:
    """Bounded trust-region Newton on ``log L`` with a central-difference model.

    The difference step follows the length of the last step (a quarter of it, at
    least :meth:`_Objective.fd_step`, at most 0.05): far from the optimum the model
    is a secant fit over the region the next step will cover, near it a
    derivative. A rejected step still moves to the best point of its stencil when
    that is better than the current point. A search that comes within
    :data:`MERGE_DISTANCE` of a ``known`` optimum (found from another start) stops:
    it is in the same basin.
    """
    d = u0.size
    state = _Search(u=u0.copy(), loss=loss0)

    def model_at(u, scale):
        """Loss at u, gradient and Hessian of log loss at u, best stencil point and loss."""
        fine_h = obj.fd_step(u)
        h = np.clip(scale, fine_h, 0.05)
        # near a bound the stencil is shifted inwards and the model extrapolated back;
        # keep that extrapolation short
        h = np.where(np.minimum(u, 1.0 - u) < h, fine_h, h)
        center = np.clip(u, h, 1.0 - h)
        pts = _stencil(center, h)
        same = np.array_equal(center, u)
        vals = obj.loss(pts if same else np.vstack([u[None], pts]))
        loss_u, fs = (vals[0], vals) if same else (vals[0], vals[1:])
        i = int(np.argmin(fs))
        if not np.all(np.isfinite(fs)):
            return loss_u, None, None, pts[i], fs[i]
        g, hess = _model(np.log(fs), h, d)
        return loss_u, g + hess @ (u - center), hess, pts[i], fs[i]

    _, g, hess, _, _ = model_at(state.u, FD_STEP)
    if g is None:
        return state
    fine = True  # the current model is a derivative (not a secant) model
    last_predicted = math.inf
    for it in range(max_iter):
        state.iterations = it + 1
        step = _box_step(g, hess, radius, -state.u, 1.0 - state.u)
        candidate = np.clip(state.u + step, 0.0, 1.0)
        step = candidate - state.u
        length = float(np.linalg.norm(step))
        predicted = -(g @ step + 0.5 * step @ hess @ step)
        if predicted <= tol or length <= 1e-13:
            if fine:
                state.converged = True
                break
            # a secant model may miss a minimum closer than its step: look again up close
            _, g_new, hess_new, _, _ = model_at(state.u, FD_STEP)
            if g_new is None:
                break
            g, hess, fine = g_new, hess_new, True
            radius = max(radius, 0.01)
            continue
        newton = length < 0.99 * radius
        if fine and newton and predicted <= math.sqrt(tol) and predicted <= 1e-3 * last_predicted:
            # Newton converging quadratically (the predicted decrease fell by 1e3 or
            # more in one step): after this step it is ~predicted^2 < tol, so check the
            # value only and stop.
            loss_new = float(obj.loss(candidate[None])[0])
            if loss_new <= state.loss:
                state.u, state.loss, state.converged = candidate, loss_new, True
                break
            radius = 0.25 * length
            continue
        # secant model after a long step, derivative model near the optimum
        scale = 0.25 * length if length > SECANT_STEPS else FD_STEP
        loss_new, g_new, hess_new, best_pt, best_loss = model_at(candidate, scale)
        actual = math.log(state.loss) - math.log(loss_new) if loss_new > 0 else math.inf
        if g_new is not None and actual > 0:
            ratio = actual / predicted
            state.u, state.loss, g, hess = candidate, float(loss_new), g_new, hess_new
            fine = scale <= FD_STEP
            last_predicted = predicted
            if any(np.linalg.norm(state.u - k) < MERGE_DISTANCE for k in known):
                break
            if ratio > 0.75 and length > 0.9 * radius:
                radius *= 2.0
            elif ratio < 0.25:
                radius *= 0.5
            continue
        if g_new is not None and best_loss < state.loss:
            # the step overshot but its stencil found a better point: move there
            state.u, state.loss = best_pt.copy(), float(best_loss)
            g = g_new + hess_new @ (best_pt - candidate)
            hess, fine = hess_new, scale <= FD_STEP
            radius = 0.25 * length
        elif not fine:
            # a secant model that mispredicts: replace it by a derivative model and
            # retry at the same radius
            _, g_new, hess_new, _, _ = model_at(state.u, FD_STEP)
            if g_new is None:
                break
            g, hess, fine = g_new, hess_new, True
        else:
            radius = 0.25 * length
        if radius <= 1e-13:
            break
    return state


@dataclass(frozen=True, eq=False)
class TunedBaseline:
    """A baseline family tuned on a problem.

    Attributes:
        name: family name (a key of :data:`BASELINES`).
        params: the optimal parameters, ``{name: value}``.
        final_loss: final excess loss :math:`L_T` (kept modes + residual) of the
            tuned schedule on the exact recursion.
        learning_rate: per-step learning rates ``(T,)`` of the tuned schedule.
        evaluations: schedules run on the recursion (grid + refinement).
        wall_time: seconds spent (compilation included).
        converged: whether the local refinement met its tolerance.
        at_bounds: names of the parameters that ended on a bound of their search box.
    """

    name: str
    params: Mapping[str, float]
    final_loss: float
    learning_rate: np.ndarray
    evaluations: int
    wall_time: float
    converged: bool = True
    at_bounds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType({k: float(x) for k, x in self.params.items()}))
        lr = np.array(self.learning_rate, dtype=np.float64)
        lr.setflags(write=False)
        object.__setattr__(self, "learning_rate", lr)
        object.__setattr__(self, "at_bounds", tuple(self.at_bounds))

    @property
    def horizon(self) -> int:
        return int(self.learning_rate.size)


def _grid_points(family: BaselineFamily, grid: tuple[int, int]) -> np.ndarray:
    n_peak, n_shape = grid
    axes = [PEAK.grid(n_peak)] + [p.grid(n_shape) for p in family.shape_parameters]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _grid_minima(losses: np.ndarray, limit: int) -> list[int]:
    """Flat indices of the grid's local minima (no neighbour, diagonals included, is lower), best first."""
    padded = np.pad(losses, 1, constant_values=np.inf)
    is_min = np.isfinite(losses)
    for offset in np.ndindex(*(3,) * losses.ndim):
        if all(o == 1 for o in offset):
            continue
        window = tuple(slice(o, o + n) for o, n in zip(offset, losses.shape, strict=True))
        is_min &= losses <= padded[window]
    flat = np.flatnonzero(is_min.ravel())
    order = flat[np.argsort(losses.ravel()[flat], kind="stable")]
    return order[:limit].tolist() or [int(np.argmin(losses))]


def _check_grid(grid) -> tuple[int, int]:
    if grid is None:
        return GRID
    if isinstance(grid, int | np.integer):
        grid = (grid, grid)
    grid = tuple(grid)
    if len(grid) != 2:
        raise ProblemError(f"`grid` must be an integer or a pair of integers, got {grid!r}", field="grid")
    out = tuple(v.positive_int("grid", g) for g in grid)
    if min(out) < 2:
        raise ProblemError(f"`grid` needs at least 2 points per axis, got {grid!r}", field="grid")
    return out


def tune_baseline(
    problem: Problem,
    name,
    *,
    grid: int | Sequence[int] | None = None,
    peak_range: float = PEAK_RANGE,
    tol: float = TOL,
    starts: int = 3,
    faces: bool = True,
    max_iterations: int = 50,
    modes: str = "auto",
) -> TunedBaseline:
    """Tune one baseline family on a problem: minimise :math:`L_T` over its parameters.

    Args:
        problem: the problem (model, horizon, learning-rate bounds; batch size and
            momentum are held at their fixed values, or ``sample_budget / T``).
        name: a key of :data:`BASELINES` or a family instance.
        grid: coarse-grid points ``(peak, shape parameter)``; default :data:`GRID`.
        peak_range: lowest peak searched, as a fraction of the learning-rate cap
            (when the control's ``min`` is lower).
        tol: stop when the predicted further decrease of ``log L_T`` is below this.
        starts: refine from at most this many local minima of the coarse grid, best first.
        faces: also optimise the peak on both bounds of the shape parameter and
            search from there when that is within :data:`FACE_MARGIN` of the best
            (finds minima on a bound that the coarse grid misses; costs ~30 % more).
        max_iterations: refinement iterations before giving up (``converged=False``).
        modes: ``"auto"``: search on the compressed spectrum of a plain-SGD model of more than
            256 modes (:mod:`schedopt.dynamics.compression`); ``"exact"``: on its own modes. The
            reported loss is the full recursion's either way.

    Raises:
        ProblemError: bad option, or a learning-rate cap at or above the stability threshold.
        SolverError: every schedule of the coarse grid diverged.
    """
    start = time.perf_counter()
    family = _family(name)
    grid = _check_grid(grid)
    peak_range = v.positive("peak_range", peak_range)
    if peak_range >= 1:
        raise ProblemError(f"`peak_range` must be in (0, 1), got {peak_range!r}", field="peak_range")
    tol = v.positive("tol", tol)
    starts = v.positive_int("starts", starts)
    if not isinstance(faces, bool):
        raise ProblemError(f"`faces` must be true or false, got {faces!r}", field="faces")
    max_iterations = v.positive_int("max_iterations", max_iterations)
    modes = v.one_of("modes", modes, ("auto", "exact"))
    threshold = _check_stability(problem)
    obj = _Objective(problem, family, peak_range, threshold, modes)

    points = _grid_points(family, grid)
    losses = obj.loss(points)
    best = int(np.argmin(losses))
    if not np.isfinite(losses[best]):
        raise SolverError(f"every schedule of the {family.name} grid diverged on problem {problem.name!r}")
    radius = 1.0 / (min(grid) - 1)
    shape = (grid[0],) if obj.dim == 1 else grid
    search, known = None, []
    for i in _grid_minima(losses.reshape(shape), starts):
        u0, loss0 = points[i], float(losses[i])
        on_bound = (u0 <= 0.0) | (u0 >= 1.0)
        if on_bound.any() and not on_bound.all():
            # a start on a face: optimise within the face first, so that the search
            # does not leave a minimum on the boundary before it has found it
            face = _Face(obj, u0, ~on_bound)
            found = _refine(face, u0[~on_bound], loss0, radius, math.sqrt(tol), max_iterations)
            u0, loss0 = face.full(found.u), found.loss
        found = _refine(obj, u0, loss0, radius, tol, max_iterations, known)
        if search is None or found.loss < search.loss:
            search = found
        known.append(found.u)
    if faces and obj.dim == 2:
        # Minima on a bound of the shape parameter (wsd_sqrt at cooldown_fraction = 1)
        # often show as no local minimum of a coarse grid: optimise the peak on each
        # bound (cheap, one parameter) and search from there if it is competitive.
        table = losses.reshape(shape)
        for column in (0, grid[1] - 1):
            i = int(np.argmin(table[:, column])) * grid[1] + column
            if not np.isfinite(losses[i]) or any(np.array_equal(points[i], k) for k in known):
                continue
            face = _Face(obj, points[i], np.array([True, False]))
            on_face = _refine(face, points[i][:1], float(losses[i]), radius, math.sqrt(tol), max_iterations)
            if on_face.loss <= search.loss * (1.0 + FACE_MARGIN):
                found = _refine(obj, face.full(on_face.u), on_face.loss, radius, tol, max_iterations, known)
                if found.loss < search.loss:
                    search = found
                known.append(found.u)

    params_vec = obj.natural(search.u)
    params = dict(zip(family.param_names, params_vec.tolist(), strict=True))
    padded = np.concatenate([params_vec, np.zeros(2 - params_vec.size)])
    lr = np.asarray(
        _schedule_values(obj.kind, family.option, jnp.asarray(padded), horizon=problem.horizon),
        dtype=np.float64,
    )
    at_bounds = tuple(n for n, u in zip(family.param_names, search.u, strict=True) if u <= 0.0 or u >= 1.0)
    loss = search.loss
    if obj.compressed:  # report the full spectrum's loss of the tuned schedule (plain SGD)
        loss = float(final_loss(problem.model, lr, batch_size=_fixed_batch_size(problem)))
    tuned = TunedBaseline(
        name=family.name,
        params=params,
        final_loss=loss,
        learning_rate=lr,
        evaluations=obj.evaluations,
        wall_time=time.perf_counter() - start,
        converged=search.converged,
        at_bounds=at_bounds,
    )
    logger.debug(
        "tuned %s on %s: loss %.6g, params %s, %d evaluations, %d iterations, %.2f s",
        family.name,
        problem.name,
        tuned.final_loss,
        params,
        obj.evaluations,
        search.iterations,
        tuned.wall_time,
    )
    return tuned


def tune_baselines(
    problem: Problem,
    names: Iterable | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    **options,
) -> dict[str, TunedBaseline]:
    """Tune several baseline families (default: all of :data:`BASELINES`) on a problem.

    Args:
        problem: the problem.
        names: family names or instances; default every built-in family.
        progress: called with ``"tuning baseline i/n: name ..."`` before each family.
        **options: passed to :func:`tune_baseline`.

    Returns:
        ``{name: TunedBaseline}`` in the order given.
    """
    families = [_family(n) for n in (BASELINES if names is None else names)]
    tuned = {}
    for i, family in enumerate(families, start=1):
        if progress is not None:
            progress(f"tuning baseline {i}/{len(families)}: {family.name} ...")
        tuned[family.name] = tune_baseline(problem, family, **options)
    return tuned
