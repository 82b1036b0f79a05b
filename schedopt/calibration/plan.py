r"""Which pilot runs to train before ``schedopt fit`` (``schedopt pilots``).

The fitted model must learn three things from the pilots: how the loss falls
with time (its exponents and scale), how much of it is noise that an anneal
removes, and how the network responds to its learning rate, including the
penalty of a too-large one (the learning-rate exponent and the null modes of
:mod:`schedopt.calibration.fit`). The plan spends the budget ``B`` (in runs of the target
horizon ``T``) on:

* one long pilot of ``0.6 B T`` updates at the guessed peak: the longest
  stretch of the loss curve, for the extrapolation in time;
* two short pilots of ``0.2 B T`` at a quarter of and four times the guess:
  the learning-rate response over a x 16 range, so that a guess off by up to
  about x 4 still has the best peak inside the pilots' range, the range the
  design's learning-rate cap allows.

Every pilot is a WSD schedule (constant, then a 1 - sqrt cooldown over its
last 20 %) after the same linear warmup, so that each shows both the
constant-learning-rate curve and an anneal's drop. ``fit`` ignores the losses
before twice the warmup, so a short pilot runs at least that plus a tenth of
the budget's updates: with a warmup above 5 % of the horizon (at budget 1)
the short pilots grow and the long one gives up the difference.

Why these lengths and rates (``benchmarks/realtasks.py``, four real tasks,
the fitted model scored on 48-65 held-out full-length runs each): the error
is mostly the extrapolation in time, so the long pilot gets most of the
budget, but the short ones must stay long enough to show the learning-rate
response past the warmup. Long pilot at 0.5 / 0.6 / 0.75 of the horizon gave
median errors of 2.1 / 2.2 / 4.5 % (code, AdamW), 19.2 / 3.4 / 4.3 % (prose,
AdamW) and 9.8 / 6.9 / 5.7 % (code, SGD): 0.6 is the only one with no task
above 7 %. The short pilots were at x 0.35 and x 2.8 first; on a fourth task
whose best peak was 4-5.7 x the guess the design then sat at the x 2.8 cap
and lost 0.047 nats to tuned WSD. At x 0.25 and x 4 the design's loss minus
tuned WSD's (5 seeds) went from +0.004 / -0.004 / +0.006 / +0.047 to
-0.003 / +0.014 / +0.003 / +0.003 (worst case x 3 smaller) for a median
prediction error of 2.3 / 3.9 / 4.2 / 4.9 % instead of 2.1 / 3.4 / 6.9 / 2.9 %,
still below the Multi-Power Law's on the same pilots on every task. Chosen
on the panels it is scored on; ``benchmarks/README.md`` has every number.

The same pilots trained on another seed moved those median errors by a factor
of 0.4-2.8 and the designed plateau by up to x 0.62; the x 4 pilot was the
noisiest (its final loss 6-9 % apart between seeds on two tasks of seven). A
long pilot at x 2 the guess was better on five tasks of seven over two seeds
and worse on code/AdamW at both: not adopted (the tasks' guesses are low).

The x 0.25 pilot can wait for the x 4 one, which ends long before the long pilot: where the x 4 pilot is still far
ahead of the long one, the last pilot is one at x 8 instead (:mod:`schedopt.calibration.adapt`,
``schedopt pilots --first-logs``).

``twin`` (``schedopt pilots --twin``) adds the x 4 pilot's first half (at least
twice the warmup: :func:`twin_steps`), to be trained on another seed, on top of
the budget (0.1 of a run at budget 1). Where the two disagree, training is
unstable at that rate: on the task where seeds disagreed most, a design at
0.95 x that rate stalled on 3 seeds of 10. ``fit`` then caps the design at the
geometric mean of that rate and the next lower pilot rate (the guess)
(:func:`~schedopt.calibration._problem.learning_rate_cap`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from schedopt.errors import ProblemError

__all__ = [
    "EVALUATIONS_PER_PILOT",
    "MAX_ABOVE",
    "PLAN",
    "PilotPlan",
    "evaluation_every",
    "evaluation_interval",
    "plan_pilots",
    "twin_steps",
    "wsd_learning_rates",
]

PLAN = ((0.6, 1.0), (0.2, 0.25), (0.2, 4.0))
"""(fraction of the budget's updates, peak / guess) of each pilot: the long one first."""

SHORT_FITTED = 0.1
"""A short pilot runs at least twice the warmup plus this fraction of the budget's updates."""

COOLDOWN = 0.2


@dataclass(frozen=True)
class PilotPlan:
    """One proposed pilot: its name, length, peak and per-update learning rates; ``above``: the k-th pilot
    above the plan's top rate (0: one of the plan's own); ``twin``: a seed twin's schedule."""

    name: str
    steps: int
    peak: float
    warmup: int
    learning_rate: np.ndarray
    above: int = 0
    twin: bool = False


def wsd_learning_rates(peak: float, steps: int, warmup: int, cooldown: float = COOLDOWN) -> np.ndarray:
    """Linear warmup over ``warmup`` updates, constant ``peak``, then 1 - sqrt to 0 over the last ``cooldown``."""
    t = np.arange(steps, dtype=np.float64)
    start = (1.0 - cooldown) * steps
    x = np.clip((t - start) / max(steps - start, 1e-300), 0.0, 1.0)
    lr = np.where(t < start, peak, peak * (1.0 - np.sqrt(x)))
    if warmup > 0:
        lr = np.where(t < warmup, np.minimum(lr, peak * (t + 1.0) / warmup), lr)
    return lr


EVALUATIONS_PER_PILOT = 20
"""Validation losses each pilot should log (besides step 0). ``fit`` needs 5 in every pilot, notes fewer than
10 and fits every pilot on one loss column, so a pilot logged too rarely moves all of them to the training
loss. The real tasks' pilots logged 11-61 (what fewer costs: ``benchmarks/eval_cadence.py``)."""


def evaluation_every(steps: int) -> int:
    """Updates between validation losses of a run of ``steps`` updates: :data:`EVALUATIONS_PER_PILOT` in it."""
    return max(1, steps // EVALUATIONS_PER_PILOT)


def evaluation_interval(plans) -> int:
    """Updates between validation losses in the shortest of ``plans`` (:func:`evaluation_every`)."""
    return evaluation_every(min(p.steps for p in plans))


def twin_steps(steps: int, warmup: int) -> int:
    """Updates of the twin of a pilot of ``steps`` updates: half of it, at least twice the warmup (the
    steps ``fit`` leaves out), at most all of it."""
    return min(steps, max(2 * warmup, steps // 2))


MAX_ABOVE = 4
"""Most follow-up pilots above the plan's top rate (``above``): x 8 to x 64 the guess."""


def plan_pilots(
    horizon: int, budget: float, peak: float, warmup: int = 0, twin: bool = False, above: int = 0
) -> list[PilotPlan]:
    """The pilots for a target ``horizon`` within ``budget`` full runs, around the guessed ``peak``.

    ``above``: that many more pilots, each as long as a short one at twice the rate of the one before
    (x 8, x 16, ... the guess; on top of the budget, 0.2 of a run each at budget 1): what ``fit`` asks
    for when its top pilot is still far ahead of the next (the best peak may lie above the pilots). The
    plan's own pilots are the same files with or without them.

    ``twin``: also the highest pilot's first :func:`twin_steps` updates, to be trained on another seed
    (named ``...-twin``, last; on top of the budget).

    Raises:
        ProblemError: an argument is out of range (named), or the warmup leaves no room for
            the pilots: each short one needs twice the warmup plus :data:`SHORT_FITTED` of the
            budget's updates (a long warmup takes them from the long pilot), and the long one
            at least as many.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= 10**9:
        raise ProblemError(f"`--horizon` must be an integer in [1, 1e9], got {horizon!r}", field="--horizon")
    if not isinstance(budget, int | float) or not math.isfinite(budget) or not 0 < budget <= 10:
        raise ProblemError(f"`--budget` must be in (0, 10] full runs, got {budget!r}", field="--budget")
    if not isinstance(peak, int | float) or not math.isfinite(peak) or peak <= 0:
        raise ProblemError(f"`--peak` must be a positive learning rate, got {peak!r}", field="--peak")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ProblemError(f"`--warmup` must be an integer >= 0, got {warmup!r}", field="--warmup")
    if isinstance(above, bool) or not isinstance(above, int) or not 0 <= above <= MAX_ABOVE:
        raise ProblemError(
            f"`--above` must be an integer in [0, {MAX_ABOVE}], got {above!r}", field="--above"
        )
    total = budget * horizon
    (_, long_factor), *shorts = PLAN
    # a short pilot's fitted part starts after twice the warmup (fit's --min-step): keep at least
    # SHORT_FITTED of the budget's updates there; a long warmup lengthens the short pilots at the
    # long one's expense
    short = max(int(round(shorts[0][0] * total)), 2 * warmup + int(round(SHORT_FITTED * total)))
    long = int(round(total)) - len(shorts) * short
    if short < 2 * warmup + 20 or long < short:
        raise ProblemError(
            f"`--budget`: {budget:g} x {horizon} updates leave no room for a long pilot with a warmup of "
            f"{warmup} (each short pilot needs 2 x warmup + {SHORT_FITTED:g} x budget x horizon = {short} "
            "updates, the long one at least as many); raise the budget or shorten the warmup",
            field="--budget",
        )
    plans = []
    top_factor = max(f for _, f in shorts)
    ups = tuple((short, top_factor * 2**k, k) for k in range(1, above + 1))
    for steps, factor, k in ((long, long_factor, 0), *((short, f, 0) for _, f in shorts), *ups):
        p = float(f"{peak * factor:.4g}")  # four significant digits, as a practitioner writes them
        name = f"pilot-wsd-lr{p:g}-T{steps}"
        plans.append(PilotPlan(name, steps, p, warmup, wsd_learning_rates(p, steps, warmup), above=k))
    if twin:
        top = max(plans, key=lambda plan: plan.peak)
        n = twin_steps(top.steps, warmup)
        plans.append(
            PilotPlan(f"{top.name}-twin", n, top.peak, warmup, top.learning_rate[:n].copy(), twin=True)
        )
    return plans
