"""A fitted loss that rises at a constant learning rate: the null modes outrunning the signal.

At a constant, stable learning rate a network's loss does not rise with more updates (one pass over
the data: more updates never hurt on average). The fitted model's can: its null modes start empty and
fill with noise, and where they fill faster than the signal modes drain, the modelled loss turns
upward. The pilots seldom show it (they end first); a design does, and then it ranks every high rate
badly at a long horizon. On the real tasks (``benchmarks/realtasks.py``, 92 cached fits) the loss of
88 fits never rises within four times their longest pilot, at any pilot's rate; the other four rise by
0.27-12 %, and refitted without the null modes three of them predicted the held-out runs better
(median error 6.5 -> 1.7, 7.8 -> 2.1, 2.6 -> 2.0 %; largest 21 -> 17, 728 -> 9, 58 -> 4 %) and one worse
(3.5 -> 9.7 %, largest 20.0 -> 20.5 %). ``fit_pilots`` therefore drops the null modes from a fit whose
loss rises (:func:`rising_loss`), and says so. Of 18 fits made after the rule, it fired on one (batch 8's
pilots around a guess four times too low): with the null modes kept the model predicted that task's 59
held-out runs with a 61.7 % median error (largest 10,376 %), without them 10.4 % (25.4 %).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from schedopt.calibration._model import warmup_steps
from schedopt.calibration._problem import predict_network_loss
from schedopt.calibration.pilots import PilotRun
from schedopt.problem import Problem

RISE_WINDOW = 4
"""How far the check looks: this many times the longest pilot's updates (the plan's pilots are 0.6 of
the target horizon, so 2.4 horizons: past the twice-the-horizon transfer)."""
RISE_TOLERANCE = 1e-3
"""A rise smaller than this (relative) is numerical: 0.1 %, below every fit's own error (0.1-1.5 %)."""


def rising_loss(
    problem: Problem, runs: Sequence[PilotRun], cap: float
) -> tuple[float, float, int, int] | None:
    """``(rate, rise, lowest, end)``: the pilot rate at most ``cap`` whose modelled loss rises most when held
    constant (after that pilot's warmup) for :data:`RISE_WINDOW` times the longest pilot, with its relative
    rise from the curve's lowest point (at update ``lowest``) to update ``end``; ``None`` if no rate's loss
    rises by more than :data:`RISE_TOLERANCE`."""
    end = RISE_WINDOW * max(r.horizon for r in runs)
    by_rate: dict[float, PilotRun] = {}
    for run in runs:
        rate = run.peak_learning_rate
        if rate <= cap * (1 + 1e-9) and (rate not in by_rate or run.horizon > by_rate[rate].horizon):
            by_rate[rate] = run
    worst = None
    for rate, run in sorted(by_rate.items()):
        learning_rate = np.full(end, rate)
        warmup = min(warmup_steps(run), end)
        learning_rate[:warmup] = run.learning_rate[:warmup]
        curve = predict_network_loss(problem, learning_rate)
        lowest = int(np.argmin(curve))
        rise = float(curve[-1] / curve[lowest] - 1.0)
        if rise > RISE_TOLERANCE and (worst is None or rise > worst[1]):
            worst = (float(rate), rise, lowest, end)
    return worst
