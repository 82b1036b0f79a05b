"""Schedules given as short text on the command line: ``NAME:ARGS`` or ``file:PATH``.

``NAME`` is a baseline family (:mod:`schedopt.baselines`) and ``ARGS`` its
parameters in order, comma separated: ``constant:0.1``, ``cosine:0.3``,
``wsd_sqrt:0.3,0.2`` (peak, cooldown fraction), ``power_law:0.3,0.5`` (peak,
exponent). ``file:PATH`` reads a schedule file (JSON or CSV).
"""

from __future__ import annotations

import math

from schedopt.errors import ProblemError
from schedopt.schedule._files import load_schedule
from schedopt.schedule._record import Schedule

__all__ = ["parse_schedule_text"]


def parse_schedule_text(text: str, horizon: int) -> Schedule:
    """A :class:`Schedule` from ``NAME:ARGS`` (at ``horizon`` steps) or ``file:PATH``."""
    from schedopt.baselines import BASELINES, baseline_schedule

    name, sep, args = text.partition(":")
    name = name.strip()
    if not sep:
        raise ProblemError(
            f"`--schedule` must look like NAME:ARGS or file:PATH, got {text!r}", field="schedule"
        )
    if name == "file":
        return load_schedule(args)
    if name not in BASELINES:
        raise ProblemError(
            f"`--schedule` family must be one of file, {', '.join(BASELINES)}, got {name!r}", field="schedule"
        )
    family = BASELINES[name]
    parts = [p for p in args.split(",") if p.strip()]
    if len(parts) != len(family.param_names):
        raise ProblemError(
            f"`--schedule` {name} takes {len(family.param_names)} value(s) "
            f"({', '.join(family.param_names)}), got {args!r}",
            field="schedule",
        )
    params = {}
    for key, part in zip(family.param_names, parts, strict=True):
        try:
            value = float(part)
        except ValueError:
            raise ProblemError(
                f"`--schedule` {name}: {key} must be a number, got {part!r}", field="schedule"
            ) from None
        if not math.isfinite(value):
            raise ProblemError(f"`--schedule` {name}: {key} must be finite, got {part!r}", field="schedule")
        params[key] = value
    return Schedule(learning_rate=baseline_schedule(name, params, horizon), provenance={"source": text})
