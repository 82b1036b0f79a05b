r"""Designed schedules as optax schedules, optimizers and gradient-accumulation plans.

A :class:`~schedopt.schedule.Schedule` holds one value per optimiser step
``t = 0..T-1`` (step 0 is the first update, exactly as optax counts). This module
turns it into what an optax training loop consumes:

* :func:`to_optax`: an ``optax.Schedule`` (a jit-, vmap- and grad-safe closure of
  the step count) for one control;
* :func:`to_optax_optimizer`: an optimizer whose learning rate and momentum
  (``sgd``'s heavy-ball ``momentum``, or Adam's ``b1``) follow the schedule through
  ``optax.inject_hyperparams``, so the current values are visible in
  ``state.hyperparams``;
* :func:`batch_size_schedule`, :func:`every_k_schedule` and
  :func:`to_optax_multisteps`: a batch-size schedule as a plain callable (for a
  data loader) or as gradient accumulation with ``optax.MultiSteps``;
* :func:`rescale_schedule`: a new peak learning rate and/or a new horizon
  (time-stretch), materialised as a new :class:`Schedule`.

**Semantics of a schedule function** ``f = to_optax(schedule)``:

* integer step ``t`` in ``[0, T)``: ``f(t)`` is the designed value
  ``schedule.<control>[t]`` exactly (a gather, not an interpolation);
* ``t >= T`` (past the horizon): holds the last designed value; ``t < 0`` holds
  the first;
* float step: linear interpolation between neighbouring designed steps (equal to
  the designed value at whole numbers), so ``f`` is differentiable in the step.

**Heavy ball.** ``optax.sgd(learning_rate, momentum=beta)`` is
:math:`v_{t+1} = \beta_t v_t + g_t`, :math:`w_{t+1} = w_t - \eta_t v_{t+1}` with
:math:`v_0 = 0`: exactly the momentum model schedopt designs for, so a designed
``(learning_rate, momentum)`` pair is used as is (no ``1 - beta`` factor; keep
``nesterov=False``).

**Adam's b1.** For ``adam``, ``adamw``, ``nadam``, ``nadamw``, ``adabelief`` and ``lamb``
the designed momentum drives ``b1`` step by step, :math:`b_{1,t} = \beta_t`: the first
moment :math:`m_{t+1} = b_{1,t} m_t + (1 - b_{1,t}) g_t` averages the gradients over the
same window :math:`1/(1-\beta_t)` as the heavy ball. That is all the mapping keeps. The
heavy ball sums gradients (its step at a constant :math:`\beta` is :math:`\eta/(1-\beta)`
times a gradient), Adam averages them and divides by :math:`\sqrt{\hat v}`, so the
learning rate is exported as designed, not scaled by :math:`1-\beta`; and optax's bias
correction :math:`1 - b_1^{t}` uses the current :math:`b_{1,t}`. The design is exact for
``sgd``; for Adam it assumes the model's momentum acts through that averaging window
(a spec fitted to an Adam network's pilots calibrates the learning rate, not this).

**Batch size by gradient accumulation.** A designed batch size :math:`m_t`
(samples per optimiser step) is realised with a fixed micro-batch of ``b``
samples by accumulating :math:`k_t = m_t / b` micro-batch gradients before each
optimiser step. ``optax.MultiSteps(opt, every_k_schedule=k)`` calls ``k`` with
its count of *optimiser* steps and, with ``use_grad_mean=True`` (the default),
averages the ``k_t`` micro-batch mean gradients: the mean gradient over
:math:`k_t b` samples, as in the model. The inner optimizer's step count (hence
its learning-rate schedule) only advances on optimiser steps, so learning rate
and batch size stay aligned. Designed batch sizes are real numbers; they are
rounded to whole micro-batch counts (``rounding=``, default ``"nearest"``).

Example::

    import jax, jax.numpy as jnp, optax, schedopt
    from schedopt.export import to_optax_optimizer, to_optax_multisteps

    schedule = schedopt.load_schedule("exports/easy-phase/schedule.json")
    opt = to_optax_optimizer(schedule, base="sgd")      # lr (and momentum) per step
    params = jnp.zeros(10)
    state = opt.init(params)

    @jax.jit
    def train_step(params, state, x, y):
        grads = jax.grad(lambda w: 0.5 * jnp.mean((x @ w - y) ** 2))(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for t in range(schedule.horizon):
        x, y = next_batch()                             # schedule.batch_size[t] samples
        params, state = train_step(params, state, x, y)
        # state.hyperparams["learning_rate"] == schedule.learning_rate[t]

    # A batch-size schedule with micro-batches of 8 samples (call update once per micro-batch):
    opt = to_optax_multisteps(schedule, micro_batch_size=8, base="sgd")

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from functools import partial
from numbers import Integral
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from schedopt._jax import jax
from schedopt.errors import ExportError
from schedopt.export._values import (
    CONTROLS,
    _as_schedule,
    _fixed_value,
    _interp,
    _values,
    rescale_schedule,
)
from schedopt.schedule import Schedule

__all__ = [
    "BASES",
    "CONTROLS",
    "ROUNDINGS",
    "batch_size_schedule",
    "every_k_schedule",
    "rescale_schedule",
    "schedule_values",
    "to_optax",
    "to_optax_multisteps",
    "to_optax_optimizer",
]

BASES = ("sgd", "adam", "adamw", "nadam", "nadamw", "lion", "rmsprop", "adagrad", "adabelief", "lamb", "lars")
"""Names of the optax optimizers :func:`to_optax_optimizer` accepts as ``base``."""

ROUNDINGS = ("nearest", "floor", "ceil", "exact")
"""How a real batch size becomes a whole number (``exact``: refuse non-integers)."""

_MOMENTUM_BASES = ("sgd",)  # bases whose `momentum` is schedopt's heavy ball
_B1_BASES = ("adam", "adamw", "nadam", "nadamw", "adabelief", "lamb")  # b1: an average of gradients


def schedule_values(
    schedule: Schedule | str | os.PathLike,
    control: str = "learning_rate",
    *,
    peak: float | None = None,
    horizon: int | None = None,
) -> np.ndarray:
    """The per-step values a schedule function returns at steps ``0..horizon-1``, as NumPy.

    Args:
        schedule: a :class:`Schedule` or the path of a schedule file.
        control: ``learning_rate``, ``batch_size`` or ``momentum``. A control
            the schedule does not design but whose fixed value its provenance
            records (``provenance.fixed``) gives that constant.
        peak: rescale so that the maximum equals ``peak``.
        horizon: time-stretch to this many steps (see :func:`to_optax`).

    Raises:
        ExportError: an option is invalid or the schedule lacks ``control``.
    """
    schedule = _as_schedule(schedule)
    return _values(schedule, control, peak, horizon)[1]


# --- schedules


@jax.jit
def _gather(table, count):
    """``table[count]`` with the index clipped to ``[0, len(table))`` (one compiled kernel per shape)."""
    return table[jnp.clip(count, 0, table.shape[0] - 1)]


@partial(jax.jit, static_argnames=("original", "horizon"))
def _interpolate(values, count, original: int, horizon: int):
    """The value at a real step: clip to ``[0, horizon - 1]``, map to ``count * T / T2``, interpolate."""
    pos = jnp.clip(count.astype(jnp.result_type(float)), 0, horizon - 1)
    if horizon != original:
        pos = pos * original / horizon
    return _interp(values, pos, jnp)


def _schedule_function(values: np.ndarray, table: np.ndarray, name: str) -> optax.Schedule:
    original = values.size
    horizon = table.size

    def schedule_fn(count):
        # The caller's default float (float32 unless the caller turned x64 on), read at call
        # time: the designed float64 values are rounded once, to the caller's precision.
        dtype = jnp.result_type(float)
        count = jnp.asarray(count)
        if jnp.issubdtype(count.dtype, jnp.integer):  # a static dtype check, jit-safe
            return _gather(jnp.asarray(table, dtype=dtype), count)
        return _interpolate(jnp.asarray(values, dtype=dtype), count, original, horizon)

    schedule_fn.__name__ = f"schedopt_{name}"
    schedule_fn.__qualname__ = schedule_fn.__name__
    schedule_fn.__doc__ = (
        f"Designed {name} at optimiser step `count` ({horizon} steps; holds the last value past "
        "the horizon, the first before 0; float steps interpolate linearly)."
    )
    return schedule_fn


def to_optax(
    schedule: Schedule | str | os.PathLike,
    control: str = "learning_rate",
    *,
    peak: float | None = None,
    horizon: int | None = None,
) -> optax.Schedule:
    r"""An ``optax.Schedule`` returning the designed value of one control at each step.

    The result is a closure of the step count, safe under ``jax.jit``,
    ``jax.vmap`` (any array of steps) and ``jax.grad``:

    * an integer step ``t`` in ``[0, T)`` gives ``schedule.<control>[t]``
      exactly (a gather with a clipped index, no arithmetic);
    * past the horizon (``t >= T``) it **holds the last value**, and before
      step 0 it holds the first: a run longer than the design keeps training
      at the final, annealed value;
    * a float step interpolates linearly between the neighbouring designed
      steps (so the value is differentiable in the step).

    Args:
        schedule: a :class:`~schedopt.schedule.Schedule` or the path of a
            schedule file (JSON or CSV).
        control: ``learning_rate`` (default), ``momentum`` or ``batch_size``
            (as a float; see :func:`batch_size_schedule` for whole numbers). A
            fixed control recorded in ``provenance.fixed`` gives its constant.
        peak: rescale the values so that their maximum equals ``peak``
            (multiplies every step by ``peak / max``).
        horizon: a new horizon :math:`T_2`: time-stretch the shape, so that
            step ``s`` takes the original value at position :math:`s\,T/T_2`,
            linearly interpolated between designed steps. Past :math:`T_2` the
            value at :math:`T_2 - 1` is held. (A plain stretch; it ignores how
            the optimum changes with the horizon.)

    Returns:
        ``f(count) -> value`` in the caller's default float dtype: float32, or float64 when
        the caller turned on ``jax_enable_x64`` (schedopt leaves that setting alone). An
        integer step gives the designed value rounded once to that dtype.

    Raises:
        ExportError: the schedule lacks ``control`` or an option is invalid
            (the message names the option).
    """
    return _to_optax(_as_schedule(schedule), control, peak, horizon)


def _to_optax(schedule: Schedule, control: Any, peak: Any, horizon: Any) -> optax.Schedule:
    values, table = _values(schedule, control, peak, horizon)
    return _schedule_function(values, table, control)


# --- optimizers


def _base_factory(base: Any) -> tuple[str, Callable[..., optax.GradientTransformation]]:
    if callable(base):
        return getattr(base, "__name__", "custom"), base
    if not isinstance(base, str) or base not in BASES:
        raise ExportError(f"`base` must be one of {', '.join(BASES)} or an optax factory, got {base!r}")
    return base, getattr(optax, base)


def to_optax_optimizer(
    schedule: Schedule | str | os.PathLike,
    base: str | Callable[..., optax.GradientTransformation] = "sgd",
    *,
    peak: float | None = None,
    horizon: int | None = None,
    use_momentum: bool | None = None,
    hyperparam_dtype: Any = None,
    **kwargs: Any,
) -> optax.GradientTransformationExtraArgs:
    """An optax optimizer whose hyperparameters follow the schedule step by step.

    Built with ``optax.inject_hyperparams(<base>)``: the learning rate is
    :func:`to_optax` of the schedule and the schedule's momentum (or its fixed momentum
    from ``provenance.fixed`` when positive) drives ``sgd``'s heavy-ball ``momentum``
    (exact) or the ``b1`` of ``adam``, ``adamw``, ``nadam``, ``nadamw``, ``adabelief`` and
    ``lamb`` (``b1_t = beta_t``; what this keeps and what it does not: the module's "Adam's
    b1"). After ``opt.update`` at step ``t``, ``state.hyperparams`` holds the values used
    in that update, ``schedule.*[t]``.

    Args:
        schedule: a :class:`Schedule` or the path of a schedule file.
        base: ``sgd`` (default), ``adamw``, ``adam``, ``lion``, ... (see
            :data:`BASES`), or an optax factory taking ``learning_rate``.
        peak: a new peak learning rate (see :func:`to_optax`).
        horizon: a new horizon (time-stretch of every control, see :func:`to_optax`).
        use_momentum: drive ``momentum`` (``sgd``) or ``b1`` (Adam family) from the
            schedule. ``None`` (default): when the schedule has momentum. ``False``
            drops the schedule's momentum (needed with a base that has neither, such
            as ``lion`` or ``rmsprop``, or to set ``b1`` yourself); ``True`` requires it.
        hyperparam_dtype: passed to ``optax.inject_hyperparams``.
        **kwargs: further arguments of the base optimizer (``weight_decay``,
            ``b1``, ``nesterov``, ``mask``, ...), with the base optimizer's own meaning:
            numbers appear in ``state.hyperparams``, a callable (``mask=fn``) is passed
            unchanged (never treated as a schedule), and a keyword the base does not
            take is an :class:`ExportError` naming it.

    Raises:
        ExportError: unknown ``base``, a keyword the schedule already sets, or
            an argument the base optimizer does not take.
    """
    return _optimizer(_as_schedule(schedule), base, peak, horizon, use_momentum, hyperparam_dtype, kwargs)


def _optimizer(schedule, base, peak, horizon, use_momentum, hyperparam_dtype, kwargs):
    name, factory = _base_factory(base)
    if not (use_momentum is None or isinstance(use_momentum, bool)):
        raise ExportError(f"`use_momentum` must be None, True or False, got {use_momentum!r}")
    if "learning_rate" in kwargs:
        raise ExportError("`learning_rate` is set by the schedule; use `peak=` to rescale it")
    hyper: dict[str, Any] = {"learning_rate": _to_optax(schedule, "learning_rate", peak, horizon)}
    has_momentum = schedule.momentum is not None or (_fixed_value(schedule, "momentum") or 0.0) > 0
    if use_momentum is None:
        use_momentum = has_momentum
    if use_momentum:
        if not has_momentum:
            raise ExportError("`use_momentum` = True but the schedule has no momentum")
        builtin = factory is getattr(optax, name, None)
        if builtin and name in _MOMENTUM_BASES:
            key = "momentum"
        elif builtin and name in _B1_BASES:
            key = "b1"
        else:
            why = {
                "lion": " (its b1 interpolates the sign's argument and b2 tracks the gradients: neither "
                "is the heavy ball's beta)",
                "rmsprop": " (its momentum accumulates the normalised update, not the gradient)",
                "lars": " (its momentum accumulates the trust-ratio-scaled update, not the gradient)",
            }.get(name, "")
            raise ExportError(
                f"`base` = {name!r} has no parameter the schedule's momentum can drive{why}; use base='sgd' "
                f"(exact heavy ball) or an Adam-family base ({', '.join(_B1_BASES)}: b1 = beta), or pass "
                "use_momentum=False to drop the momentum"
            )
        if key in kwargs:
            raise ExportError(
                f"`{key}` is set by the schedule's momentum; pass use_momentum=False to set it yourself"
            )
        hyper[key] = _to_optax(schedule, "momentum", None, horizon)
    signature = inspect.signature(factory)
    try:
        signature.bind(**hyper, **kwargs)
    except TypeError as err:
        raise ExportError(f"`base` = {name!r} does not take these arguments: {err}") from None
    # A callable keyword reaches the base optimizer unchanged, as in optax (`mask=fn` is a mask,
    # not a schedule of the step count, which is what inject_hyperparams would make of it).
    static = tuple(sorted(k for k, value in kwargs.items() if callable(value) and k in signature.parameters))
    injected = optax.inject_hyperparams(factory, static_args=static, hyperparam_dtype=hyperparam_dtype)
    return injected(**hyper, **kwargs)


# --- batch size


def _check_rounding(rounding: Any) -> str:
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        raise ExportError(f"`rounding` must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    return rounding


def _round(values: np.ndarray, rounding: str, what: str) -> np.ndarray:
    if rounding == "exact":
        bad = np.flatnonzero(values != np.round(values))
        if bad.size:
            i = int(bad[0])
            raise ExportError(
                f"`rounding` = 'exact' but {what} is not a whole number at step {i}: {float(values[i])!r} "
                "(use rounding='nearest', 'floor' or 'ceil')"
            )
        out = values
    else:
        out = {"nearest": np.round, "floor": np.floor, "ceil": np.ceil}[rounding](values)
    if np.any(out < 1):
        i = int(np.flatnonzero(out < 1)[0])
        raise ExportError(f"{what} rounds to {out[i]:g} < 1 at step {i} (value {float(values[i])!r})")
    return out.astype(np.int64)


def _int_step_function(table: np.ndarray, name: str, dtype) -> Callable[[Any], Any]:
    horizon = table.size
    table.setflags(write=False)
    table_jax = jnp.asarray(table, dtype=dtype)

    def fn(step):
        if isinstance(step, Integral) and not isinstance(step, bool):  # a Python / NumPy integer
            return int(table[min(max(int(step), 0), horizon - 1)])
        step = jnp.asarray(step)
        if not jnp.issubdtype(step.dtype, jnp.integer):  # a float step: the step it falls in
            step = jnp.floor(step).astype(jnp.int32)
        return _gather(table_jax, step)

    fn.__name__ = f"schedopt_{name}"
    fn.__qualname__ = fn.__name__
    fn.table = table  # the whole-number values at steps 0..T-1, for inspection
    return fn


def _batch_table(schedule: Schedule, horizon: Any) -> np.ndarray:
    if schedule.batch_size is None and _fixed_value(schedule, "batch_size") is None:
        raise ExportError("`schedule` has no batch size (neither designed nor in provenance.fixed)")
    return _values(schedule, "batch_size", None, horizon)[1]


def batch_size_schedule(
    schedule: Schedule | str | os.PathLike,
    *,
    horizon: int | None = None,
    rounding: str = "nearest",
) -> Callable[[Any], Any]:
    """The batch size (samples per optimiser step) as a whole number per step.

    For a data loader: ``m = batch_size_schedule(schedule)`` then draw ``m(t)``
    samples for step ``t``. A Python or NumPy integer step gives a Python
    ``int``; a JAX array of steps gives a JAX integer array (jit- and
    vmap-safe). Past the horizon the last value is held. A schedule without a
    designed batch size gives its fixed one (``provenance.fixed.batch_size``).

    Args:
        schedule: a :class:`Schedule` or the path of a schedule file.
        horizon: time-stretch to a new horizon (see :func:`to_optax`).
        rounding: ``nearest`` (default), ``floor``, ``ceil``, or ``exact``
            (an :class:`ExportError` when a value is not a whole number).
            ``nearest`` rounds halves to even, as ``numpy.round``.

    Raises:
        ExportError: no batch size, or an invalid option.
    """
    schedule = _as_schedule(schedule)
    rounding = _check_rounding(rounding)
    table = _round(_batch_table(schedule, horizon), rounding, "the batch size")
    return _int_step_function(table, "batch_size", jnp.int32)


def every_k_schedule(
    schedule: Schedule | str | os.PathLike,
    micro_batch_size: int,
    *,
    horizon: int | None = None,
    rounding: str = "nearest",
) -> Callable[[Any], Any]:
    """``every_k_schedule`` for ``optax.MultiSteps``: micro-batches per optimiser step.

    Step ``t`` accumulates :math:`k_t = m_t / b` micro-batches of ``b =
    micro_batch_size`` samples, rounded as ``rounding`` says (at least 1), so
    the effective batch size is :math:`k_t b \\approx m_t`.

    Example::

        k = every_k_schedule(schedule, micro_batch_size=8)
        opt = optax.MultiSteps(to_optax_optimizer(schedule), every_k_schedule=k)
        # call opt.update once per micro-batch of 8 samples; k(t) calls make optimiser step t

    Raises:
        ExportError: no batch size, or an invalid option.
    """
    return _every_k(_as_schedule(schedule), micro_batch_size, horizon, rounding)


def _every_k(schedule: Schedule, micro_batch_size: Any, horizon: Any, rounding: Any):
    rounding = _check_rounding(rounding)
    if (
        isinstance(micro_batch_size, bool)
        or not isinstance(micro_batch_size, Integral)
        or micro_batch_size < 1
    ):
        raise ExportError(f"`micro_batch_size` must be a positive integer, got {micro_batch_size!r}")
    ratio = _batch_table(schedule, horizon) / int(micro_batch_size)
    table = _round(ratio, rounding, f"batch size / `micro_batch_size` ({micro_batch_size})")
    return _int_step_function(table, "every_k", jnp.int32)


def to_optax_multisteps(
    schedule: Schedule | str | os.PathLike,
    micro_batch_size: int,
    base: str | Callable[..., optax.GradientTransformation] = "sgd",
    *,
    rounding: str = "nearest",
    peak: float | None = None,
    horizon: int | None = None,
    accumulator_dtype: Any = None,
    **kwargs: Any,
) -> optax.MultiSteps:
    """:func:`to_optax_optimizer` wrapped in ``optax.MultiSteps`` that realises the batch schedule.

    Call ``update`` once per micro-batch of ``micro_batch_size`` samples; the
    wrapped optimizer steps after :func:`every_k_schedule` micro-batches, with
    the mean of their gradients. ``accumulator_dtype`` defaults to the caller's default
    float (float32, or float64 when the caller turned on x64).
    ``opt.has_updated(state)`` tells when an optimiser step happened.
    """
    schedule = _as_schedule(schedule)
    k = _every_k(schedule, micro_batch_size, horizon, rounding)
    inner = _optimizer(schedule, base, peak, horizon, None, None, kwargs)
    if accumulator_dtype is None:
        accumulator_dtype = jnp.result_type(float)
    return optax.MultiSteps(inner, every_k_schedule=k, accumulator_dtype=accumulator_dtype)
