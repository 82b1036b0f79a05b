"""Checks of the pilots themselves: a loss spike, two pilots that contradict each other, too narrow a range.

:func:`_pilot_notes` words the warnings :func:`~schedopt.calibration.fit.fit_pilots` reports;
:func:`_spike` also keeps a pilot that spiked out of the design's learning-rate cap
(:func:`~schedopt.calibration._problem.learning_rate_cap`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from schedopt.calibration._model import warmup_steps
from schedopt.calibration.pilots import PilotRun

SPIKE_RATIO = 1.5
"""A loss this many times the pilot's best loss so far (after the warmup) is a spike: diverged or unstable."""

CONTRADICTION = 0.05
"""Pilots with the same schedule whose losses differ by more than this (median relative) contradict each other."""


def _spike(run: PilotRun) -> tuple[int, float, float] | None:
    """``(step, loss, best loss before it)`` of a pilot's first loss spike after its warmup, or ``None``.

    A spike is a loss above ``SPIKE_RATIO`` times the best loss so far: a run that
    diverged or came close.
    """
    late = run.loss_steps >= 2 * warmup_steps(run)
    losses, steps = run.losses[late], run.loss_steps[late]
    if not losses.size:
        return None
    best = np.minimum.accumulate(losses)
    spikes = np.flatnonzero(losses > SPIKE_RATIO * best)
    if not spikes.size:
        return None
    i = int(spikes[0])
    return int(steps[i]), float(losses[i]), float(best[i])


def _pilot_notes(runs: Sequence[PilotRun]) -> list[str]:
    """Warnings about pilots the fit cannot trust or that cannot show enough.

    A loss spike (a pilot that diverged or was unstable), two pilots with the
    same schedule and different losses (other data, other model or a bug), and
    a learning-rate range too narrow to show the network's response.
    """
    notes = []
    for run in runs:
        spike = _spike(run)
        if spike is not None:
            step, loss, best = spike
            notes.append(
                f"{run.name}: the loss spikes to {loss:.4g} at step {step} (best so far {best:.4g}): a "
                "diverged or unstable pilot fits badly, and its learning rate does not count toward the "
                "design's cap; drop or rerun it"
            )
    for i, first in enumerate(runs):
        for second in runs[i + 1 :]:
            if first.learning_rate.shape != second.learning_rate.shape or not np.array_equal(
                first.learning_rate, second.learning_rate
            ):
                continue
            common, a, b = np.intersect1d(first.loss_steps, second.loss_steps, return_indices=True)
            if common.size and np.median(np.abs(first.losses[a] / second.losses[b] - 1)) > CONTRADICTION:
                notes.append(
                    f"{first.name} and {second.name}: the same schedule with losses "
                    f"{100 * np.median(np.abs(first.losses[a] / second.losses[b] - 1)):.0f} % apart (median): "
                    "the pilots contradict each other (other data, model or code?)"
                )
    peaks = sorted({float(f"{r.peak_learning_rate:.6g}") for r in runs})
    if len(peaks) >= 2 and peaks[-1] / peaks[0] < 2.0:
        notes.append(
            f"the pilots' peak learning rates span only x{peaks[-1] / peaks[0]:.2g} ({peaks[0]:g} to "
            f"{peaks[-1]:g}): the learning-rate response and the design's peak are extrapolated; "
            "spread the pilots over x4 or more (schedopt pilots)"
        )
    return notes
