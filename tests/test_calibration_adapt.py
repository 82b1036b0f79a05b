"""`schedopt pilots --first-logs`: the plan's last pilot, chosen from the long pilot and the top one."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from schedopt.calibration.adapt import last_pilot
from schedopt.calibration.pilots import PilotRun
from schedopt.calibration.plan import plan_pilots, wsd_learning_rates
from schedopt.cli import app
from schedopt.errors import ProblemError

HORIZON, PEAK, WARMUP = 2000, 4e-3, 20  # the plan: 1200 updates at 4e-3, 400 at 1e-3 and at 1.6e-2


def _run(peak: float, steps: int, logged_until: int, scale: float, name: str) -> PilotRun:
    """A WSD pilot whose loss is ``scale`` x one curve at its peak (a loss every 20 updates up to
    ``logged_until``): the pilot at the lower ``scale`` is ahead by ``1 - scale`` of the other's loss."""
    rates = wsd_learning_rates(peak, steps, WARMUP)[:logged_until]
    at = np.arange(0, logged_until + 1, 20)
    return PilotRun(name, rates, at, scale * (1.5 + 3.0 / np.sqrt(1.0 + at)), "val_loss")


def _first(lead: float, long_until: int = 1200):
    return [_run(4e-3, 1200, long_until, 1.0, "long.csv"), _run(1.6e-2, 400, 400, 1.0 - lead, "top.csv")]


def test_a_top_pilot_far_ahead_trades_the_low_pilot_for_the_one_above():
    last = last_pilot(HORIZON, 1.0, PEAK, WARMUP, _first(0.13, long_until=400))
    up = plan_pilots(HORIZON, 1.0, PEAK, WARMUP, above=1)[3]  # what --above 1 writes
    assert last.traded and (last.pilot.name, last.pilot.peak, last.pilot.steps) == (up.name, 3.2e-2, 400)
    np.testing.assert_array_equal(last.pilot.learning_rate, up.learning_rate)
    assert last.instead_of.peak == 1e-3
    # the lead is read where both are at their peak: the top pilot's last update before its cooldown (320)
    assert last.step == 320 and last.lead == pytest.approx(0.13)


def test_a_top_pilot_not_far_ahead_keeps_the_planned_low_pilot():
    for lead in (0.04, -0.2):  # within what seeds differ by; behind
        last = last_pilot(HORIZON, 1.0, PEAK, WARMUP, _first(lead))
        assert not last.traded and (last.pilot.peak, last.pilot.steps) == (1e-3, 400)
        assert last.lead == pytest.approx(lead)


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (_first(0.1)[:1], "takes two logs"),
        ([_run(8e-3, 1200, 1200, 1.0, "odd.csv"), _first(0.1)[1]], "odd.csv ran at peak 0.008"),
        ([_first(0.1)[0], _first(0.1)[0]], "long.csv ran at peak 0.004"),  # the same pilot twice
        (_first(0.1, long_until=300), "long.csv \\(the long pilot\\) ends at update 300, before update 320"),
        (
            [_first(0.1)[0], _run(1.6e-2, 400, 200, 0.9, "top.csv")],
            "top.csv \\(the top pilot\\) ends at update 200",
        ),
    ],
)
def test_logs_that_cannot_decide_are_refused_by_name(first, message):
    with pytest.raises(ProblemError, match=message) as caught:
        last_pilot(HORIZON, 1.0, PEAK, WARMUP, first)
    assert caught.value.field == "--first-logs"


def _write(path, run: PilotRun):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("step", "learning_rate", "val_loss"))
        losses = dict(zip(run.loss_steps.tolist(), run.losses.tolist(), strict=True))
        for step in range(run.learning_rate.size):
            writer.writerow((step, repr(float(run.learning_rate[step])), losses.get(step, "")))
    return path


def test_cli_writes_the_last_pilot_and_says_why(tmp_path):
    args = ["pilots", "--horizon", str(HORIZON), "--peak", str(PEAK), "--warmup", str(WARMUP)]
    args += ["--out", str(tmp_path / "p")]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 0 and "pilot-wsd-lr0.001-T400 can wait" in plain.output
    assert (
        json.loads(CliRunner().invoke(app, [*args, "--json"]).output)["can_wait"] == "pilot-wsd-lr0.001-T400"
    )
    long, top = _first(0.13, long_until=400)
    logs = ["--first-logs", str(_write(tmp_path / "long.csv", long))]
    logs += ["--first-logs", str(_write(tmp_path / "top.csv", top))]
    result = CliRunner().invoke(app, [*args, *logs, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["traded"] and report["instead_of"] == "pilot-wsd-lr0.001-T400"
    assert report["pilot"]["name"] == "pilot-wsd-lr0.032-T400" and report["pilot"]["written"]
    assert report["top_pilot_lead"] == pytest.approx(0.13) and report["lead_step"] == 320
    # again: the same file is there, nothing written; in words, what to train instead of what
    again = CliRunner().invoke(app, [*args, *logs])
    assert again.exit_code == 0, again.output
    assert "Train pilot-wsd-lr0.032-T400 (peak 0.032, 400 updates) instead of pilot-wsd-lr0.001-T400" in (
        again.output
    )
    assert "(already there)" in again.output
    # with --above or --twin: refused, named
    refused = CliRunner().invoke(app, [*args, *logs, "--above", "1"])
    assert refused.exit_code != 0 and "--first-logs" in refused.output and "--above" in refused.output
