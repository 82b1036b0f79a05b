r"""Baseline schedule families: a shape times a peak learning rate ``peak``.

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
``[t, t+1)``. The step-count families (``constant``, ``power_law``, ``exponential``)
are defined per step as in the table; the continuous-time shapes (``cosine``,
``linear``, ``wsd_*``) give step ``t`` the **mean** of :math:`\eta(s)` over
``[t, t+1]``, which makes the per-step values continuously differentiable in the
cooldown fraction (midpoint sampling puts a spurious local minimum at every step's
worth of ``f``, which defeats a local search).

All built-in families share one compiled function per ``(T, batch)``: the family is
a traced index into ``lax.switch``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from schedopt import _validate as v
from schedopt._jax import cached_jit, float64, jax
from schedopt.errors import ProblemError

__all__ = [
    "BASELINES",
    "BaselineFamily",
    "Constant",
    "Cosine",
    "Exponential",
    "Linear",
    "Parameter",
    "PowerLaw",
    "WSDLinear",
    "WSDSqrt",
    "baseline_schedule",
]

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
        return jnp.stack([jnp.asarray(x, dtype=jnp.result_type(float)) for x in items])

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
            # the caller's default float (float32 unless x64 is on), as optax's schedules
            t = jnp.clip(jnp.asarray(count, dtype=jnp.result_type(float)), 0.0, horizon - 1.0)
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
        t = jnp.arange(horizon, dtype=jnp.result_type(float))
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


@float64
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


@cached_jit(static_argnames=("horizon",))
def _schedule_values(kind, option, params, *, horizon):
    """Per-step learning rates of ``params = (peak, shape)`` for family number ``kind``."""
    t = jnp.arange(horizon, dtype=jnp.float64)
    return params[0] * _shape_any(kind, params[1:], option, t, horizon)
