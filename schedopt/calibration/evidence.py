"""What a fitted model's predicted final loss was worth on real networks: the measured errors ``design`` quotes.

A fitted spec predicts the network's final loss at any horizon, but the pilots end at
``pilot_horizon`` and the prediction past them is an extrapolation whose error no pilot
statistic shows (``docs/calibration.md``). ``benchmarks/realtasks.py`` measured it: the
model fitted to the planned pilots (``schedopt pilots`` → ``schedopt fit``), against the
final validation loss of held-out runs of the shape ``design`` writes (a plateau, then
WSD's 1−√ anneal) at 1.67× and 3.33× the longest pilot, on every real task. Those numbers
are copied into ``schedopt/data/recommend.json`` (``benchmarks/recommend.py``; checked by
``tests/test_recommend.py``) and quoted here for the extrapolation at hand.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["prediction_evidence"]

#: An extrapolation within this factor of a measured one is quoted as that one (1.7x is the plan's 1.67x).
_SAME = 1.05


def _measured() -> dict[str, Any]:
    from schedopt.recommend import _data

    return _data()["evidence"]["prediction"]


def prediction_evidence(extrapolation: float) -> dict[str, Any] | None:
    """The measured errors of predictions that reached as far past the pilots as ``extrapolation``.

    ``extrapolation``: the design's horizon over the longest pilot's. The errors quoted are those
    measured at the smallest extrapolation at least as far (within :data:`_SAME`); past every measured
    one, the farthest, flagged ``beyond_measured``. ``None`` for a non-finite or non-positive value.
    """
    if not (math.isfinite(extrapolation) and extrapolation > 0):
        return None
    measured = _measured()
    ratios = sorted({float(r) for task in measured["tasks"].values() for r in task["by_extrapolation"]})
    if not ratios:
        return None
    at_least = [r for r in ratios if r * _SAME >= extrapolation]
    ratio = at_least[0] if at_least else ratios[-1]
    rows = [
        entry
        for task in measured["tasks"].values()
        for key, entry in task["by_extrapolation"].items()
        if math.isclose(float(key), ratio, rel_tol=1e-9)
    ]
    medians = [e["median_abs"] for e in rows]
    signed = [e["signed_median"] for e in rows]
    record = {
        "extrapolation": extrapolation,
        "measured_at": ratio,
        "beyond_measured": not at_least,
        "tasks": len(rows),
        "runs": sum(e["runs"] for e in rows),
        "median_abs_by_task": [min(medians), max(medians)],
        "max_abs": max(e["max_abs"] for e in rows),
        "too_low_on": sum(s < 0 for s in signed),
        "too_high_on": sum(s > 0 for s in signed),
        "source": measured["source"],
    }
    measured_at = (
        f"{ratio:.3g}x, the farthest measured (this one reaches further)" if not at_least else f"{ratio:.3g}x"
    )
    record["note"] = (
        f"the predicted final loss is the fitted model's point estimate at {extrapolation:.3g}x the longest "
        f"pilot's length; on {len(rows)} real tasks, predicted final losses of runs of this shape at "
        f"{measured_at} were off by {100 * min(medians):.1f}-{100 * max(medians):.1f} % (each task's median), "
        f"up to {100 * record['max_abs']:.0f} %; too low on {record['too_low_on']} tasks, too high on "
        f"{record['too_high_on']} (docs/calibration.md)"
    )
    return record
