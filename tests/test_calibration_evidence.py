"""The measured prediction errors `design` quotes for a fitted spec (`schedopt.calibration.evidence`)."""

from __future__ import annotations

import math

import pytest

from schedopt.calibration.evidence import prediction_evidence
from schedopt.recommend import _data


def _measured():
    return _data()["evidence"]["prediction"]["tasks"]


def _ratios() -> list[float]:
    return sorted({float(r) for t in _measured().values() for r in t["by_extrapolation"]})


def test_the_errors_quoted_are_those_measured_at_the_nearest_extrapolation_at_least_as_far():
    near, far = _ratios()[0], _ratios()[-1]
    assert near == pytest.approx(2000 / 1200, rel=1e-3) and far == pytest.approx(4000 / 1200, rel=1e-3)
    for asked, quoted in ((0.5, near), (near, near), (near * 1.04, near), (near * 1.2, far), (far, far)):
        record = prediction_evidence(asked)
        assert record["measured_at"] == quoted and not record["beyond_measured"], asked
        rows = [t["by_extrapolation"][k] for t in _measured().values() for k in t["by_extrapolation"]
                if math.isclose(float(k), quoted)]  # fmt: skip
        assert record["tasks"] == len(rows) == len(_measured())
        assert record["max_abs"] == max(r["max_abs"] for r in rows)
        assert record["median_abs_by_task"] == [
            min(r["median_abs"] for r in rows),
            max(r["median_abs"] for r in rows),
        ]
        assert record["too_low_on"] + record["too_high_on"] <= record["tasks"]
        lo, hi = record["median_abs_by_task"]
        assert f"off by {100 * lo:.1f}-{100 * hi:.1f} % (each task's median)" in record["note"]


def test_past_every_measured_extrapolation_the_farthest_is_quoted_and_flagged():
    record = prediction_evidence(10.0)
    assert record["beyond_measured"] and record["measured_at"] == _ratios()[-1]
    assert "the farthest measured (this one reaches further)" in record["note"]


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_no_claim_for_an_extrapolation_that_is_not_a_positive_number(bad):
    assert prediction_evidence(bad) is None
