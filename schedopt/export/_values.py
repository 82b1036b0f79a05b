"""What every exporter needs, in NumPy only: the schedule in network units and its per-step values.

:mod:`schedopt.export.optax` and :mod:`schedopt.export.torch` share these; keeping them free
of JAX and optax lets the PyTorch export run without importing either.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np

from schedopt.errors import ExportError
from schedopt.schedule import Schedule, load_schedule

CONTROLS = ("learning_rate", "batch_size", "momentum")
"""Controls a schedule may hold."""


def _as_schedule(schedule: Any) -> Schedule:
    """A Schedule (or one read from a file path) in the network's units; warns when not converged.

    A schedule designed from a fitted spec holds the model's learning rate; a
    training loop needs the network's, :meth:`Schedule.for_network`.
    """
    if isinstance(schedule, str | os.PathLike):
        schedule = load_schedule(schedule)
    if not isinstance(schedule, Schedule):
        raise ExportError(
            f"`schedule` must be a Schedule or the path of a schedule file, got {type(schedule).__name__}"
        )
    if not schedule.converged:
        status = schedule.provenance.get("status", "not converged")
        warnings.warn(
            f"exporting a schedule whose solve did not converge (status {status!r})",
            UserWarning,
            stacklevel=3,
        )
    return schedule.for_network()


def _check_control(control: Any) -> str:
    if not isinstance(control, str) or control not in CONTROLS:
        raise ExportError(f"`control` must be one of {', '.join(CONTROLS)}, got {control!r}")
    return control


def _fixed_value(schedule: Schedule, name: str) -> float | None:
    """The fixed (not designed) value of a control recorded in the provenance, if any."""
    fixed = schedule.provenance.get("fixed")
    if not isinstance(fixed, Mapping) or fixed.get(name) is None:
        return None
    value = fixed[name]
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ExportError(f"provenance.fixed.{name} must be a finite number, got {value!r}")
    return float(value)


def _check_horizon(horizon: Any) -> int | None:
    if horizon is None:
        return None
    if isinstance(horizon, bool) or not isinstance(horizon, Real):
        raise ExportError(f"`horizon` must be a positive integer, got {horizon!r}")
    if isinstance(horizon, Integral):
        value = int(horizon)
    elif math.isfinite(horizon) and float(horizon).is_integer():
        value = int(horizon)
    else:
        raise ExportError(f"`horizon` must be a positive integer, got {horizon!r}")
    if value < 1:
        raise ExportError(f"`horizon` must be a positive integer, got {horizon!r}")
    from schedopt._validate import MAX_HORIZON

    if value > MAX_HORIZON:
        raise ExportError(f"`horizon` must be at most {MAX_HORIZON} steps, got {horizon!r}")
    return value


def _rescale_peak(values: np.ndarray, peak: Any, control: str) -> np.ndarray:
    if peak is None:
        return values
    if isinstance(peak, bool) or not isinstance(peak, Real) or not math.isfinite(peak) or peak <= 0:
        raise ExportError(f"`peak` must be a positive finite number, got {peak!r}")
    peak = float(peak)
    top = float(values.max())
    if top <= 0:
        raise ExportError(f"`peak` cannot rescale `{control}`: the schedule is zero at every step")
    if control == "momentum" and peak >= 1:
        raise ExportError(f"`peak` of `momentum` must be < 1, got {peak!r}")
    # values / top is exactly 1.0 at the maximum, so the new maximum is exactly `peak`
    out = values / top * peak
    if control == "batch_size" and out.min() < 1:
        raise ExportError(f"`peak` = {peak!r} makes a batch size < 1 (smallest {out.min()!r})")
    return out


def _stretch(values: np.ndarray, horizon: int | None) -> np.ndarray:
    r"""Values at steps ``s = 0..T2-1`` of the shape time-stretched to horizon ``T2``.

    Step ``s`` takes the value at position :math:`p = s\,T/T_2` of the original
    schedule, linearly interpolated between designed steps (clipped to ``T - 1``).
    """
    size = values.size
    if horizon is None or horizon == size:
        return values
    pos = np.arange(horizon, dtype=np.float64) * size / horizon
    return _interp(values, pos, np)


def _interp(values, pos, xp):
    """Linear interpolation of ``values`` (indexed 0..T-1) at real positions ``pos``."""
    last = values.shape[0] - 1
    pos = xp.clip(pos, 0, last)
    lower = xp.floor(pos)
    frac = pos - lower
    i0 = lower.astype(np.int64 if xp is np else np.int32)
    i1 = xp.minimum(i0 + 1, last)
    v0 = values[i0]
    return v0 + frac * (values[i1] - v0)


def _values(schedule: Schedule, control: Any, peak: Any, horizon: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(original values after peak rescaling, values at steps 0..T2-1)``."""
    control = _check_control(control)
    horizon = _check_horizon(horizon)
    values = getattr(schedule, control)
    if values is None:
        fixed = _fixed_value(schedule, control)
        if fixed is None:
            raise ExportError(
                f"`control`: the schedule has no {control!r} (it holds {', '.join(schedule.controls())})"
            )
        values = np.full(schedule.horizon, fixed)
    values = _rescale_peak(np.asarray(values, dtype=np.float64), peak, control)
    table = _stretch(values, horizon)
    values.setflags(write=False)
    table.setflags(write=False)
    return values, table


def rescale_schedule(
    schedule: Schedule | str | os.PathLike,
    *,
    peak: float | None = None,
    horizon: int | None = None,
) -> Schedule:
    """A new :class:`Schedule` with a new peak learning rate and/or a time-stretched horizon.

    ``peak`` rescales the learning rate only (batch size and momentum keep
    their values); ``horizon`` stretches every control as in :func:`to_optax`.
    The provenance records the transform under ``rescaled``. ``to_optax`` of
    the result equals ``to_optax(schedule, peak=..., horizon=...)`` at every
    integer step.
    """
    schedule = _as_schedule(schedule)
    controls = {}
    for name in schedule.controls():
        controls[name] = _values(schedule, name, peak if name == "learning_rate" else None, horizon)[1]
    provenance = dict(schedule.provenance)
    provenance["rescaled"] = {
        "peak": None if peak is None else float(peak),
        "horizon": None if horizon is None else _check_horizon(horizon),
        "original_horizon": schedule.horizon,
        "original_peak": float(schedule.learning_rate.max()),
    }
    return Schedule(provenance=provenance, **controls)
