r"""Warmup: the first ``W`` steps of a horizon ramp up to the peak learning rate.

One meaning everywhere (``schedopt design|transfer|export --warmup W``): the horizon
``T`` *includes* the warmup. Steps ``t < W`` follow a fixed ramp to the peak
:math:`\eta_{peak}`, and the schedule proper runs the remaining ``T - W`` steps:

* ``linear``: :math:`\eta_t = \eta_{peak}\,(t + 1)/W` (optax's
  ``linear_schedule(peak / W, peak, W - 1)`` at steps ``0..W-1``);
* ``cosine``: :math:`\eta_t = \eta_{peak}\,\tfrac12\bigl(1 - \cos\frac{\pi (t + 1)}{W}\bigr)`.

Both reach the peak at step ``W - 1`` and never start at zero (a zero step wastes
an update). The peak is the schedule's maximum (``export``, ``transfer``) or the
problem's learning-rate cap (``design``, where the solver keeps the ramp fixed and
optimises the steps after it from the state the ramp leaves; see
:func:`problem_after_warmup`).

A schedule without warmup composes with a warmup of the user's own:
``optax.join_schedules([warmup, to_optax(schedule)], [W])`` (optax passes
``count - W`` to the second schedule) or torch's ``SequentialLR([LinearLR(...),
to_torch_scheduler(...)], milestones=[W])`` (torch restarts the second at step 0).
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np

from schedopt.errors import ExportError
from schedopt.schedule._record import Schedule

__all__ = ["WARMUP_SHAPES", "check_warmup", "prepend_warmup", "warmup_values", "with_warmup"]

WARMUP_SHAPES = ("linear", "cosine")


def check_warmup(steps, horizon: int | None = None, *, shape: str = "linear", field: str = "warmup") -> int:
    """``steps`` as a warmup length (a whole number >= 0, below ``horizon``); the shape checked too."""
    if isinstance(steps, bool) or not isinstance(steps, Integral | float):
        raise ExportError(f"`{field}` must be a whole number of steps >= 0, got {steps!r}")
    if isinstance(steps, float) and not (math.isfinite(steps) and steps.is_integer()):
        raise ExportError(f"`{field}` must be a whole number of steps >= 0, got {steps!r}")
    value = int(steps)
    if value < 0:
        raise ExportError(f"`{field}` must be a whole number of steps >= 0, got {steps!r}")
    if horizon is not None and value >= horizon:
        raise ExportError(f"`{field}` must be shorter than the horizon ({horizon} steps), got {value}")
    if shape not in WARMUP_SHAPES:
        raise ExportError(f"`{field}` shape must be one of {', '.join(WARMUP_SHAPES)}, got {shape!r}")
    return value


def warmup_values(steps: int, peak: float, shape: str = "linear") -> np.ndarray:
    """The ramp's learning rates at steps ``0..steps-1`` (see the module)."""
    steps = check_warmup(steps, shape=shape)
    if not (isinstance(peak, int | float) and math.isfinite(peak) and peak > 0):
        raise ExportError(f"the warmup's peak must be a positive finite number, got {peak!r}")
    frac = (np.arange(steps, dtype=np.float64) + 1.0) / max(steps, 1)
    if shape == "linear":
        return float(peak) * frac
    return float(peak) * 0.5 * (1.0 - np.cos(np.pi * frac))


def with_warmup(
    schedule: Schedule, steps: int, *, shape: str = "linear", peak: float | None = None
) -> Schedule:
    """``schedule`` time-stretched to ``T - steps`` steps after a ramp of ``steps`` steps to its peak.

    The horizon stays ``T``. Batch size and momentum (if any) take their first
    value during the ramp. ``peak`` (default: the schedule's maximum learning rate)
    is the ramp's end, in the schedule's own units. ``steps = 0`` returns the schedule.
    """
    horizon = schedule.horizon
    steps = check_warmup(steps, horizon, shape=shape)
    if steps == 0:
        return schedule
    top = float(schedule.learning_rate.max()) if peak is None else peak
    ramp = warmup_values(steps, top, shape)
    controls = {}
    for name, values in schedule.controls().items():
        rest = _stretch(np.asarray(values, dtype=np.float64), horizon - steps)
        head = ramp if name == "learning_rate" else np.full(steps, float(values[0]))
        controls[name] = np.concatenate([head, rest])
    provenance = dict(schedule.provenance)
    provenance["warmup"] = {"steps": steps, "shape": shape, "peak": top, "horizon": horizon}
    return Schedule(provenance=provenance, **controls)


def _stretch(values: np.ndarray, horizon: int) -> np.ndarray:
    """The shape time-stretched to ``horizon`` steps (linear interpolation; as ``schedopt export``)."""
    if horizon == values.size:
        return values
    pos = np.arange(horizon, dtype=np.float64) * values.size / horizon
    return np.interp(pos, np.arange(values.size, dtype=np.float64), values)


def prepend_warmup(schedule: Schedule, ramp: np.ndarray, *, shape: str, peak: float) -> Schedule:
    """``ramp`` (model units) followed by ``schedule``: a design whose first steps were a fixed warmup."""
    steps = int(ramp.size)
    controls = {}
    for name, values in schedule.controls().items():
        head = ramp if name == "learning_rate" else np.full(steps, float(values[0]))
        controls[name] = np.concatenate([head, values])
    provenance = dict(schedule.provenance)
    provenance["warmup"] = {"steps": steps, "shape": shape, "peak": peak, "horizon": steps + schedule.horizon}
    if isinstance(provenance.get("horizon"), int):
        provenance["horizon"] = steps + schedule.horizon
    grids = provenance.get("grids")
    if isinstance(grids, dict):  # the solver's blocks, shifted past the ramp (one more block: the ramp)
        provenance["grids"] = {name: _shifted(grid, steps) for name, grid in grids.items()}
    return Schedule(provenance=provenance, **controls)


def _shifted(grid, steps: int):
    if not isinstance(grid, dict) or not isinstance(grid.get("edges"), list):
        return grid
    edges = [0] + [steps + int(e) for e in grid["edges"]]
    out = {**grid, "edges": edges}
    if isinstance(grid.get("blocks"), int):
        out["blocks"] = len(edges) - 1
    return out
