"""Checks of the pilots themselves: a loss spike, two pilots that contradict each other, a top pilot still far
ahead, too narrow a range.

:func:`_pilot_notes` words the warnings :func:`~schedopt.calibration.fit.fit_pilots` reports;
:func:`_spike` also keeps a pilot that spiked out of the design's learning-rate cap, and
:func:`_unstable_rate` lowers the cap below a rate at which two runs of one schedule (seeds)
disagree (:func:`~schedopt.calibration._problem.learning_rate_cap`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from schedopt.calibration._model import warmup_steps
from schedopt.calibration.pilots import MIN_POINTS, PilotRun, last_loss, smoothed_losses
from schedopt.calibration.plan import evaluation_every

SPIKE_RATIO = 1.5
"""A loss this many times the pilot's best loss so far is a spike: diverged or unstable."""

CONTRADICTION = 0.05
"""Pilots with the same schedule whose losses differ by more than this (median relative) contradict each other."""

SPARSE_POINTS = 10
"""Fewest loss values a pilot should log. On the twelve real tasks the pilots logged 11-61; thinned to 5-7
values a short pilot, the design's plateau moved by up to x4.7 and the design lost 0.04-0.22 nats on three
tasks of twelve (priced on the measured WSD curves; ``benchmarks/eval_cadence.py``)."""


NOISY_LOG = 0.01
"""Largest uncertainty of a pilot's fitted curve from the scatter of its loss values (:func:`_scatter`) that
``fit`` takes without a note. On the twelve real tasks' default pilots, validation losses (averaged over many
batches) came to 0.01-0.53 % and minibatch training losses at every update to 0.09-0.56 % (on all 1,740
cached runs at most 0.69 % and 0.81 %); single training losses at the validation losses' steps only came to
0.40-6.4 %: above 1 % on eight tasks, which include all six on which those fits predicted 10-28 % off
(median) (``benchmarks/README.md``, "pilots that log only their training loss"; chosen on those same fits)."""


def _scatter(run: PilotRun) -> tuple[float, int] | None:
    """``(scatter, n)``: the relative scatter of a pilot's loss values around a smooth curve, and the ``n``
    values past twice its warmup (up to a spike) it is estimated from; ``None`` with fewer than 5, or for a
    pilot that spiked too early to be fitted (the spike's note says so).

    The scatter is the median absolute second difference of the log losses, scaled to a standard deviation
    (``/ 0.6745 / sqrt(6)``): a smooth curve's second differences are far smaller than noise's, and the
    median ignores a few outliers. ``scatter / sqrt(n)`` is about how closely those values pin a curve.
    """
    fitted = _before_spike(run, "auto")
    if fitted is None:
        return None
    y = np.log(fitted.losses[fitted.loss_steps >= 2 * warmup_steps(fitted)])
    if y.size < MIN_POINTS:
        return None
    second = y[2:] - 2 * y[1:-1] + y[:-2]
    return float(np.median(np.abs(second)) / 0.6745 / math.sqrt(6)), int(y.size)


def _spike(run: PilotRun) -> tuple[int, float, float] | None:
    """``(step, loss, best loss before it)`` of a pilot's first loss spike, or ``None``.

    A spike is a loss above ``SPIKE_RATIO`` times the best loss so far, both as the checks read the
    losses (:func:`~schedopt.calibration.pilots.smoothed_losses`): a run that diverged or came close. Any
    step counts, the warmup's too: a pilot that diverged as its warmup ended (one held-out low-guess pilot,
    3.4 -> 41 by twice its warmup) spikes there. Of the 1,773 runs the real-task benchmark has cached
    (pilots and full-length runs), this flags three, all pilots that diverged (that one and two at x 8 the
    guess), from their validation losses; from their minibatch training losses at every update, the same
    three, within 12 updates of where their validation losses spiked (value by value, 607 would have).
    """
    losses = smoothed_losses(run)
    best = np.minimum.accumulate(losses)
    spikes = np.flatnonzero(losses > SPIKE_RATIO * best)
    if not spikes.size:
        return None
    i = int(spikes[0])
    return int(run.loss_steps[i]), float(losses[i]), float(best[i])


def _before_spike(run: PilotRun, min_step: int | str) -> PilotRun | None:
    """The pilot as fitted: whole without a spike (:func:`_spike`); with one, its losses before it, or ``None``
    (not fitted) when fewer than 3 of them are past ``min_step`` (``"auto"``: twice its warmup) or fewer than
    :data:`~schedopt.calibration.pilots.MIN_POINTS` remain."""
    spike = _spike(run)
    if spike is None:
        return run
    before = run.loss_steps < spike[0]
    start = 2 * warmup_steps(run) if min_step == "auto" else int(min_step)
    if np.count_nonzero(before) < MIN_POINTS or np.count_nonzero(before & (run.loss_steps >= start)) < 3:
        return None
    return PilotRun(run.name, run.learning_rate, run.loss_steps[before], run.losses[before], run.loss_column)


def _same_start(first: PilotRun, second: PilotRun) -> int | None:
    """The updates of the shorter of two pilots when the longer one's schedule starts with its whole schedule
    (equal runs, or a twin), else ``None``."""
    n = min(first.learning_rate.size, second.learning_rate.size)
    return n if np.array_equal(first.learning_rate[:n], second.learning_rate[:n]) else None


def _twins(runs: Sequence[PilotRun]) -> list[tuple[PilotRun, PilotRun, int, float]]:
    """Pairs of pilots with one schedule over their common length (equal runs, or one a prefix of the other:
    ``schedopt pilots --twin``), each with that length and the median relative difference of their losses
    (as the checks read them: :func:`~schedopt.calibration.pilots.smoothed_losses`) at the steps both measured
    within it."""
    pairs = []
    for i, first in enumerate(runs):
        for second in runs[i + 1 :]:
            n = _same_start(first, second)
            if n is None:
                continue
            common, a, b = np.intersect1d(first.loss_steps, second.loss_steps, return_indices=True)
            a, b = a[common <= n], b[common <= n]
            if a.size:
                ratio = smoothed_losses(first)[a] / smoothed_losses(second)[b]
                pairs.append((first, second, n, float(np.median(np.abs(ratio - 1)))))
    return pairs


def _prefix_twins(runs: Sequence[PilotRun]) -> list[tuple[PilotRun, PilotRun]]:
    """``(twin, pilot)`` for each pilot whose schedule is a strict prefix of another's (``schedopt pilots
    --twin``): a second seed of the other's start, compared with it and not fitted (the longer run holds
    its schedule's information; a twin may have no loss point past the warmup the fit leaves out)."""
    out = []
    for twin in runs:
        for pilot in runs:
            if twin.learning_rate.size < pilot.learning_rate.size and _same_start(twin, pilot) is not None:
                out.append((twin, pilot))
                break
    return out


def _unstable_rate(
    runs: Sequence[PilotRun], pairs: list[tuple[PilotRun, PilotRun, int, float]] | None = None
) -> tuple[float, float, float] | None:
    """``(rate, lower, cap)``: the lowest peak learning rate at which two runs of one schedule disagree by
    more than :data:`CONTRADICTION`, when some pilot ran at a lower peak (``lower``, the largest such), and
    the design's cap it implies, their geometric mean; ``None`` if there is none.

    Two seeds of one schedule that end this far apart (6-9 % at the x 4 pilot on two real tasks of eight,
    at most 2.2 % at every other rate: ``benchmarks/README.md``) show a rate at which training is unstable:
    a long run there may stall on a plateau it does not leave (3 seeds of 10 on one of those tasks, designed
    at 0.95 x that pilot's rate). Agreement at a lower rate rules out other data or code. At the lowest
    pilot rate there is nothing to compare with, and the disagreement is only reported. ``pairs``: the
    runs' :func:`_twins`, when the caller has them.
    """
    found = None
    for first, _, _, difference in _twins(runs) if pairs is None else pairs:
        rate = first.peak_learning_rate
        lower = _next_lower_rate(runs, rate)
        if difference > CONTRADICTION and lower is not None and (found is None or rate < found[0]):
            found = (rate, lower, math.sqrt(rate * lower))
    return found


def _next_lower_rate(runs: Sequence[PilotRun], rate: float) -> float | None:
    """The largest pilot peak learning rate below ``rate`` (``None`` if there is none)."""
    lower = [r.peak_learning_rate for r in runs if r.peak_learning_rate < rate * (1 - 1e-9)]
    return max(lower) if lower else None


def _constant_until(run: PilotRun) -> int:
    """Updates before the pilot's first decay below its peak learning rate (its whole length if none)."""
    start = warmup_steps(run)
    below = np.flatnonzero(run.learning_rate[start:] < run.peak_learning_rate * (1 - 1e-9))
    return start + int(below[0]) if below.size else run.learning_rate.size


def _top_pilot_lead(runs: Sequence[PilotRun]) -> tuple[PilotRun, PilotRun, int, float] | None:
    """``(top, below, step, lead)``: how far the pilot at the highest peak learning rate is ahead of the one at the
    next lower peak, both still at their peak, at the last step both measured past twice their warmup
    (``lead = 1 - top's loss / below's loss``, as the checks read them:
    :func:`~schedopt.calibration.pilots.smoothed_losses`); ``None`` without two such pilots or a common step.

    Of several pilots at one peak (a twin: ``schedopt pilots --twin``), the longest speaks for that peak.
    """
    peaks = sorted({r.peak_learning_rate for r in runs}, reverse=True)
    if len(peaks) < 2:
        return None

    def longest_at(peak):
        return max((r for r in runs if r.peak_learning_rate == peak), key=lambda r: r.learning_rate.size)

    top, below = longest_at(peaks[0]), longest_at(peaks[1])
    start = 2 * max(warmup_steps(top), warmup_steps(below))
    end = min(_constant_until(top), _constant_until(below))
    common, a, b = np.intersect1d(top.loss_steps, below.loss_steps, return_indices=True)
    inside = (common >= start) & (common <= end)
    if not inside.any():
        return None
    i = int(np.flatnonzero(inside)[-1])
    return top, below, int(common[i]), float(1.0 - smoothed_losses(top)[a[i]] / smoothed_losses(below)[b[i]])


def _top_pilot_ahead(runs: Sequence[PilotRun]) -> tuple[PilotRun, PilotRun, int, float] | None:
    """:func:`_top_pilot_lead` where the top pilot is more than :data:`CONTRADICTION` ahead (beyond what seeds of
    one schedule differ by) and the pilots do not bracket the best peak from above (:func:`_bracket_above`): the
    loss still falls steeply at the top of the pilots' range. ``fit`` notes it and records the top rate
    (``top_pilot_ahead``), under which ``design`` does not put its plateau."""
    lead = _top_pilot_lead(runs)
    return lead if lead is not None and lead[3] > CONTRADICTION and _bracket_above(runs) is None else None


def _same_shape(first: PilotRun, second: PilotRun) -> bool:
    """Whether two pilots run one schedule at two peaks: the same length and the same learning rate relative
    to their peak at every update."""
    if first.peak_learning_rate <= 0 or second.peak_learning_rate <= 0:
        return False
    return first.learning_rate.size == second.learning_rate.size and np.allclose(
        first.learning_rate / first.peak_learning_rate,
        second.learning_rate / second.peak_learning_rate,
        rtol=1e-6,
        atol=1e-9,
    )


def _final_loss(run: PilotRun) -> float | None:
    """The pilot's loss after its last update (:func:`~schedopt.calibration.pilots.last_loss`), if it was
    measured."""
    return last_loss(run) if run.loss_steps[-1] == run.horizon else None


def _bracket_above(runs: Sequence[PilotRun]) -> tuple[PilotRun, PilotRun] | None:
    """``(top, lower)``: a pilot at the highest peak learning rate that ended no lower than ``lower``, a pilot of
    the same schedule (:func:`_same_shape`) at a lower peak (the highest such); ``None`` if there is none.

    The best peak of a schedule does not rise as its horizon grows, so a top rate that did no better than a
    lower one over a short run is no better over a longer one: the pilots bracket the best peak from above, and a
    pilot above them would not tell more. On the twelve real tasks of ``benchmarks/realtasks.py``
    (``bracket_check``), in all 18 cases of a pilot that ended no lower than a pilot of its schedule at a lower
    rate, the best WSD peak at the full horizon was at or below the higher rate (equal to it twice, where the two
    pilots ended 0.09 % and 0.25 % apart); 27 of 27 with the pilots trained since. (It is not reliably below the
    short pilots' own best rate: the claim is the upper bound only.)
    """
    top_peak = max(r.peak_learning_rate for r in runs)
    found = None
    for top in (r for r in runs if r.peak_learning_rate == top_peak):
        top_loss = _final_loss(top)
        if top_loss is None:
            continue
        for lower in runs:
            lower_loss = _final_loss(lower)
            if (
                lower.peak_learning_rate < top_peak * (1 - 1e-9)
                and lower_loss is not None
                and _same_shape(top, lower)
                and top_loss >= lower_loss
                and (found is None or lower.peak_learning_rate > found[1].peak_learning_rate)
            ):
                found = (top, lower)
    return found


def _top_behind_longer(runs: Sequence[PilotRun]) -> tuple[PilotRun, PilotRun, float, float, float] | None:
    """``(top, longer, top_end, longer_there, cap)``: the pilot at the highest peak learning rate ended (after its
    anneal) at ``top_end``, no lower than ``longer_there``, the loss of a longer pilot at a lower rate at the same
    step while it still ran at its peak (after the same warmup, before any decay); ``cap`` is the geometric mean
    of the top rate and the next lower pilot rate, as for seeds that disagree (:func:`_unstable_rate`). ``None``
    if no longer pilot shows this.

    Over the top pilot's length the higher rate then did worse even with an anneal than a lower one without, so
    the best peak at that length is below the top rate, and (it does not rise with the horizon) below it at any
    longer horizon. On every cached pilot set of the real tasks (``benchmarks/README.md``, "the top pilot behind
    a longer one") it fires on 19 of 116, in all of which the best WSD peak at the full horizon was at or below
    the cap (0.18-0.5x the top rate); on the planned pilots (fourteen tasks, pilot seeds 0 and 1: 23 sets), on 7.
    It was formed after the fourteenth task (Lion), where the design's plateau, 2.5x the best peak and above
    this cap, stalled on half the seeds. Prefix twins (``--twin``) are compared elsewhere.
    """
    twins = {id(twin) for twin, _ in _prefix_twins(runs)}
    pilots = [r for r in runs if id(r) not in twins]
    top_peak = max(r.peak_learning_rate for r in pilots)
    for top in (r for r in pilots if r.peak_learning_rate == top_peak):
        top_end = _final_loss(top)
        if top_end is None or _spike(top) is not None:
            continue
        for longer in pilots:
            steps = longer.loss_steps
            if (
                longer.peak_learning_rate >= top_peak * (1 - 1e-9)
                or longer.horizon <= top.horizon
                or warmup_steps(longer) != warmup_steps(top)
                or _constant_until(longer) < top.horizon
                or steps[0] > top.horizon
                or steps[-1] < top.horizon
            ):
                continue
            there = float(np.interp(top.horizon, steps, smoothed_losses(longer)))
            if top_end >= there:  # the longer pilot runs below top_peak: there is a next lower rate
                return top, longer, top_end, there, math.sqrt(top_peak * _next_lower_rate(pilots, top_peak))
    return None


def _pilot_notes(runs: Sequence[PilotRun]) -> list[str]:
    """Warnings about pilots the fit cannot trust or that cannot show enough.

    A loss spike (a pilot that diverged or was unstable), two pilots with the
    same schedule and different losses (other data, other model or a bug), a top
    pilot still well ahead of the next (:func:`_top_pilot_lead`: more than
    :data:`CONTRADICTION`, beyond what seeds of one schedule differ by; the pilots
    may not bracket the best peak), unless it ended no lower than a pilot of its
    schedule at a lower rate (:func:`_bracket_above`: then they do), a pilot with
    fewer than :data:`SPARSE_POINTS` loss values, one whose values are too noisy for their
    number (:data:`NOISY_LOG`), and a learning-rate range too narrow to show the network's
    response.
    """
    notes = []
    for run in runs:
        spike = _spike(run)
        if spike is not None:
            step, loss, best = spike
            notes.append(
                f"{run.name}: the loss spikes to {loss:.4g} at step {step} (best so far {best:.4g}): the pilot "
                "diverged or came close, its losses from there on are not fitted, and its learning rate does "
                "not count toward the design's cap; rerun it at a lower rate if the pilots need that range"
            )
    pairs = _twins(runs)
    unstable = _unstable_rate(runs, pairs)
    for first, second, n, difference in pairs:
        if difference <= CONTRADICTION:
            continue
        same = "the same schedule" + (
            "" if first.learning_rate.size == second.learning_rate.size else f" over the first {n} updates"
        )
        apart = f"{first.name} and {second.name}: {same} with losses {100 * difference:.0f} % apart (median)"
        if unstable is not None and first.peak_learning_rate == unstable[0]:
            rate, lower, cap = unstable
            notes.append(
                f"{apart}: seeds that disagree this much show training that is unstable at {rate:g}, where a "
                f"long run may stall; the design's cap is lowered to {cap:.4g}, between "
                f"it and the next pilot rate, {lower:g} (if these are not seeds of one setup, the pilots "
                "contradict each other: other data, model or code?)"
            )
        else:
            notes.append(f"{apart}: the pilots contradict each other (other data, model or code?)")
    lead = _top_pilot_ahead(runs)
    if lead is not None:
        top, below, step, ahead = lead
        notes.append(
            f"{top.name} (peak {top.peak_learning_rate:g}) is {ahead:.0%} below {below.name} (peak "
            f"{below.peak_learning_rate:g}) at step {step}, both at their peak: the loss still falls steeply at the "
            f"top of the pilots' range, so the design's plateau is not put below {top.peak_learning_rate:g} (unless "
            f"fit lowered the cap below it) and the best peak may lie above the cap; a pilot at "
            f"{2 * top.peak_learning_rate:g} would tell (`schedopt pilots` with the same options and "
            "--above one higher than before writes it beside the others; a last pilot --first-logs traded is --above 1)"
        )
    behind = _top_behind_longer(runs)
    if behind is not None:
        top, longer, top_end, there, cap = behind
        notes.append(
            f"{top.name} (peak {top.peak_learning_rate:g}) ended at {top_end:.4g} after its anneal, no lower than "
            f"{longer.name} (peak {longer.peak_learning_rate:g}) at the same step ({top.horizon}) before its own "
            f"({there:.4g}): the higher rate did worse over {top.horizon} updates even with an anneal, so the best "
            f"peak is below {top.peak_learning_rate:g}; the design's cap is at most {cap:.4g}, halfway (in log rate) to "
            "the next lower pilot rate"
        )
    for run in runs:
        if run.losses.size < SPARSE_POINTS:
            notes.append(
                f"{run.name}: {run.losses.size} {run.loss_column} values, fewer than {SPARSE_POINTS}: pilots "
                f"logged this rarely gave designs up to 0.22 nats worse on real tasks; log it at least every "
                f"{evaluation_every(run.horizon)} updates"
            )
    for run in runs:
        scatter = _scatter(run)
        if scatter is not None and scatter[0] / math.sqrt(scatter[1]) > NOISY_LOG:
            spread, n = scatter
            notes.append(
                f"{run.name}: its {run.loss_column} values scatter by {100 * spread:.1f} % around a smooth "
                f"curve, and {n} of them pin the fitted curve to about {100 * spread / math.sqrt(n):.1f} %: on "
                "six of eight real tasks whose pilots logged losses this noisy, the fits predicted 10-28 % off; log "
                "a loss averaged over more batches, or the training loss at every update"
            )
    peaks = sorted({float(f"{r.peak_learning_rate:.6g}") for r in runs})
    if len(peaks) >= 2 and peaks[-1] / peaks[0] < 2.0:
        notes.append(
            f"the pilots' peak learning rates span only x{peaks[-1] / peaks[0]:.2g} ({peaks[0]:g} to "
            f"{peaks[-1]:g}): the learning-rate response and the design's peak are extrapolated; "
            "spread the pilots over x4 or more (schedopt pilots)"
        )
    return notes
