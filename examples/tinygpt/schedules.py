r"""Learning-rate schedules for the tiny GPT: the usual baselines and designed schedopt files.

Every schedule is an ``optax.Schedule``: a jit-safe closure of the update count
``t`` (update 0 is the first, as optax counts), written with ``jnp.where`` only.
With peak :math:`\eta`, horizon :math:`T`, warmup :math:`W` updates and floor
:math:`\eta_f`:

* warmup (every kind), :math:`t < W`: :math:`\eta (t + 1) / W` (update
  :math:`W - 1` runs at the peak);
* ``constant``: :math:`\eta`;
* ``cosine``: :math:`\eta_f + (\eta - \eta_f)\tfrac12(1 + \cos \pi p)` with
  :math:`p = (t - W)/(T - W)`, which reaches the floor (zero by default) at :math:`t = T`;
* ``linear``: :math:`\eta_f + (\eta - \eta_f)(1 - p)`;
* ``wsd``: :math:`\eta` until :math:`t_0 = (1 - c) T` (``cooldown`` fraction
  :math:`c`), then :math:`\eta_f + (\eta - \eta_f)(1 - \sqrt{(t - t_0)/(T - t_0)})`;
* ``wsd-linear``: the same with the linear cooldown :math:`1 - (t - t_0)/(T - t_0)`.

Past the horizon the value at :math:`t = T` is held (the floor for the decaying
kinds). Each returned function carries a JSON-ready ``description`` attribute
that :func:`~examples.tinygpt.train.train` records.

Importing this module imports schedopt, which turns on ``jax_enable_x64``; the
schedule values are therefore float64 and optax casts them to the parameters'
float32.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from schedopt.export.optax import to_optax

__all__ = [
    "KINDS",
    "learning_rate_table",
    "make_schedule",
    "schedule_from_file",
    "schedule_from_option",
    "schedule_values",
]

KINDS = ("constant", "cosine", "linear", "wsd", "wsd-linear")
"""Names :func:`make_schedule` accepts."""


def _check_peak(peak) -> float:
    if isinstance(peak, bool) or not isinstance(peak, Real) or not math.isfinite(peak) or peak <= 0:
        raise ValueError(f"`peak` must be a positive finite number, got {peak!r}")
    return float(peak)


def _check_horizon(horizon) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, Integral) or horizon < 1:
        raise ValueError(f"`horizon` must be a positive integer, got {horizon!r}")
    return int(horizon)


def make_schedule(
    kind: str,
    *,
    peak: float,
    horizon: int,
    warmup: int = 0,
    cooldown: float = 0.2,
    floor: float = 0.0,
) -> optax.Schedule:
    """A baseline learning-rate schedule (see the module docstring for the formulas).

    Args:
        kind: one of :data:`KINDS`.
        peak: the largest learning rate, > 0.
        horizon: the number of updates ``T`` the schedule is designed for.
        warmup: updates of linear warmup, ``0 <= warmup < horizon`` (and at
            most the start of the cooldown for ``wsd``/``wsd-linear``).
        cooldown: fraction of the horizon spent in the final decay of
            ``wsd``/``wsd-linear``, in ``[0, 1]``.
        floor: the value the decaying kinds reach at ``T``, ``0 <= floor < peak``.

    Raises:
        ValueError: an argument is out of range (the message names it and its value).
    """
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}")
    peak = _check_peak(peak)
    horizon = _check_horizon(horizon)
    if isinstance(warmup, bool) or not isinstance(warmup, Integral) or not 0 <= warmup < horizon:
        raise ValueError(f"`warmup` must be an integer in [0, horizon = {horizon}), got {warmup!r}")
    warmup = int(warmup)
    if isinstance(cooldown, bool) or not isinstance(cooldown, Real) or not 0 <= cooldown <= 1:
        raise ValueError(f"`cooldown` must be a number in [0, 1], got {cooldown!r}")
    cooldown = float(cooldown)
    if isinstance(floor, bool) or not isinstance(floor, Real) or not 0 <= floor < peak:
        raise ValueError(f"`floor` must be a number in [0, peak = {peak!r}), got {floor!r}")
    floor = float(floor)
    t0 = (1.0 - cooldown) * horizon  # start of the wsd cooldown
    if kind.startswith("wsd") and warmup > t0:
        raise ValueError(
            f"`warmup` must end before the cooldown starts (update {t0:g} = (1 - cooldown) * horizon), "
            f"got {warmup!r}"
        )

    def schedule(count):
        t = jnp.clip(jnp.asarray(count).astype(jnp.result_type(float)), 0, horizon)
        if kind == "constant":
            shape = jnp.ones_like(t)
        elif kind in ("cosine", "linear"):
            p = jnp.clip((t - warmup) / (horizon - warmup), 0.0, 1.0)
            shape = 0.5 * (1.0 + jnp.cos(jnp.pi * p)) if kind == "cosine" else 1.0 - p
        else:
            span = max(horizon - t0, 1e-300)  # cooldown = 0: never used, t < t0 always
            x = jnp.clip((t - t0) / span, 0.0, 1.0)
            decay = 1.0 - jnp.sqrt(x) if kind == "wsd" else 1.0 - x
            shape = jnp.where(t < t0, 1.0, decay)
        value = floor + (peak - floor) * shape
        if warmup > 0:
            value = jnp.where(t < warmup, peak * (t + 1.0) / warmup, value)
        return value

    schedule.__name__ = f"{kind.replace('-', '_')}_schedule"
    schedule.description = {
        "kind": kind,
        "peak": peak,
        "horizon": horizon,
        "warmup": warmup,
        "cooldown": cooldown,
        "floor": floor,
    }
    return schedule


def schedule_from_file(
    path: str | os.PathLike, horizon: int | None = None, peak: float | None = None
) -> optax.Schedule:
    """A schedopt schedule file (JSON or CSV) as an ``optax.Schedule``.

    Returns ``schedopt.export.optax.to_optax(schedule, horizon=horizon, peak=peak)``:
    the designed value at each integer update, time-stretched to ``horizon`` and
    rescaled to maximum ``peak`` when they are given; past the horizon the last
    value is held.

    Raises:
        ValueError: ``horizon`` or ``peak`` is invalid.
        schedopt.ExportError: the file is missing or not a valid schedule.
    """
    if horizon is not None:
        horizon = _check_horizon(horizon)
    if peak is not None:
        peak = _check_peak(peak)
    schedule = to_optax(path, horizon=horizon, peak=peak)
    schedule.description = {
        "kind": "file",
        "path": str(Path(path)),
        "horizon": horizon,
        "peak": peak,
    }
    return schedule


def schedule_values(schedule: optax.Schedule, horizon: int) -> np.ndarray:
    """``schedule`` evaluated at the integer updates ``0..horizon-1``, as float64 NumPy.

    Each value is what optax passes to the optimizer at that update (a scalar
    int32 count, as optax's own counter), before optax casts it to the
    parameters' dtype.
    """
    horizon = _check_horizon(horizon)
    steps = jnp.arange(horizon, dtype=jnp.int32)
    values = jax.vmap(schedule)(steps)
    return np.asarray(values, dtype=np.float64)


def learning_rate_table(schedule: optax.Schedule, horizon: int) -> np.ndarray:
    """:func:`schedule_values`, checked: every learning rate a training loop will use is finite and >= 0.

    Raises:
        ValueError: the first bad value, and its update.
    """
    lrs = schedule_values(schedule, horizon)
    if not np.all(np.isfinite(lrs)) or np.any(lrs < 0):
        bad = int(np.flatnonzero(~np.isfinite(lrs) | (lrs < 0))[0])
        raise ValueError(f"`schedule` must give finite learning rates >= 0, got {lrs[bad]!r} at update {bad}")
    return lrs


def is_schedule_file(text: str) -> bool:
    """Whether the examples' ``--schedule`` names a schedopt schedule file rather than a kind."""
    return text not in KINDS and (Path(text).suffix in (".json", ".csv") or Path(text).exists())


def schedule_file_horizon(path: str) -> int:
    """The number of updates a schedopt schedule file was written for (``ExportError`` if unreadable)."""
    from schedopt.schedule import load_schedule

    return int(load_schedule(path).horizon)


def schedule_from_option(
    text: str, *, peak: float | None, horizon: int, warmup: int, cooldown: float, floor: float
) -> optax.Schedule:
    """What the examples' ``--schedule`` takes: a kind of :data:`KINDS` (:func:`make_schedule`, ``peak``
    required) or the path of a schedopt schedule file (:func:`schedule_from_file`).

    Raises:
        ValueError: a kind without ``peak``, or a bad argument.
        schedopt.ExportError: the file is missing or not a valid schedule.
    """
    if is_schedule_file(text):
        return schedule_from_file(text, horizon=horizon, peak=peak)
    if peak is None:
        raise ValueError(f"--peak is required with --schedule {text}")
    return make_schedule(text, peak=peak, horizon=horizon, warmup=warmup, cooldown=cooldown, floor=floor)
