"""`schedopt pilots`: the proposed pilots, their schedules and their files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from schedopt.calibration.plan import EVALUATIONS_PER_PILOT, plan_pilots, wsd_learning_rates
from schedopt.cli import app
from schedopt.errors import ProblemError
from schedopt.schedule import load_schedule


def test_plan_spends_the_budget_around_the_guess():
    plans = plan_pilots(2000, 1.0, 4e-3, warmup=100)
    assert [(p.steps, p.peak) for p in plans] == [(1200, 4e-3), (400, 1e-3), (400, 1.6e-2)]
    assert sum(p.steps for p in plans) == 2000
    for p in plans:
        assert p.learning_rate.size == p.steps and p.learning_rate.max() == pytest.approx(p.peak)


def test_a_long_warmup_lengthens_the_short_pilots_at_the_long_ones_expense():
    # fit ignores losses before twice the warmup: a short pilot keeps a tenth of the budget past it
    plans = plan_pilots(2000, 1.0, 4e-3, warmup=200)
    assert [p.steps for p in plans] == [2000 - 2 * 600, 600, 600]
    assert plan_pilots(2000, 1.0, 4e-3, warmup=100)[1].steps == 400  # 5 %: the plan's own 0.2


def test_a_warmup_that_leaves_no_long_pilot_is_refused():
    with pytest.raises(ProblemError, match=r"--budget.*warmup of 300"):
        plan_pilots(2000, 1.0, 4e-3, warmup=300)  # short 800 each, long 400 < 800


def test_wsd_learning_rates_match_the_example_loops_schedule():
    from examples.tinygpt.schedules import make_schedule, schedule_values

    ours = wsd_learning_rates(3e-3, 500, 100)
    theirs = schedule_values(make_schedule("wsd", peak=3e-3, horizon=500, warmup=100, cooldown=0.2), 500)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12)  # the example computes in float32


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0, 1.0, 1e-3), "--horizon"),
        ((1000, 0.0, 1e-3), "--budget"),
        ((1000, 1.0, -1.0), "--peak"),
        ((1000, 0.1, 1e-3, 100), "--budget"),
    ],
)
def test_bad_plans_name_the_option(args, field):
    with pytest.raises(ProblemError, match=field):
        plan_pilots(*args)


def test_cli_writes_schedules_the_loops_can_run_and_refuses_to_overwrite_others(tmp_path):
    out = tmp_path / "p"
    args = ["pilots", "--horizon", "400", "--peak", "0.01", "--warmup", "10", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["updates"] == 400 and len(report["pilots"]) == 3
    first = load_schedule(report["pilots"][0]["file"])
    np.testing.assert_array_equal(first.learning_rate, wsd_learning_rates(0.01, 240, 10))
    again = CliRunner().invoke(app, args)  # the same files: nothing to overwrite, nothing written
    assert again.exit_code == 0 and not any(p["written"] for p in json.loads(again.output)["pilots"])
    # another warmup: other schedules under the same names
    other = CliRunner().invoke(app, [*args[:6], "20", *args[7:]])
    assert other.exit_code == 2 and "--force" in other.output


def test_cli_says_the_next_commands_with_the_warmup_given(tmp_path):
    args = ["pilots", "--horizon", "400", "--peak", "0.01", "--warmup", "10", "--out", str(tmp_path / "p")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "schedopt design fitted.toml --horizon 400 --warmup 10" in result.output
    # the shortest pilot (80 updates) logs 20 validation losses: every 4 updates
    assert "for its own number of updates" in result.output
    assert (
        "val_loss at least 20 times in each (every 4 updates in the shortest; without it, train_loss"
        in result.output
    )
    report = json.loads(CliRunner().invoke(app, [*args, "--json"]).output)
    assert report["eval_every"] == 4 == min(p["steps"] for p in report["pilots"]) // EVALUATIONS_PER_PILOT


def test_the_twin_is_the_highest_pilots_first_half_on_top_of_the_budget():
    plans = plan_pilots(2000, 1.0, 4e-3, warmup=100, twin=True)
    *planned, twin = plans
    assert [(p.steps, p.peak) for p in planned] == [(1200, 4e-3), (400, 1e-3), (400, 1.6e-2)]
    assert twin.name == "pilot-wsd-lr0.016-T400-twin" and (twin.steps, twin.peak) == (200, 1.6e-2)
    np.testing.assert_array_equal(
        twin.learning_rate, planned[2].learning_rate[:200]
    )  # no cooldown of its own
    # at least twice the warmup (the steps fit leaves out), at most the whole pilot
    assert plan_pilots(2000, 1.0, 4e-3, warmup=150, twin=True)[-1].steps == 300


def test_cli_writes_the_twin_and_says_to_train_it_on_another_seed(tmp_path):
    args = [
        "pilots",
        "--horizon",
        "400",
        "--peak",
        "0.01",
        "--warmup",
        "10",
        "--twin",
        "--out",
        str(tmp_path / "p"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 pilots, 440 updates (1.1 runs of 400)" in result.output
    assert "pilot-wsd-lr0.04-T80-twin on another seed" in result.output
    twin = load_schedule(tmp_path / "p" / "pilot-wsd-lr0.04-T80-twin.json")
    np.testing.assert_array_equal(twin.learning_rate, wsd_learning_rates(0.04, 80, 10)[:40])


def test_pilots_above_the_plan_double_the_top_rate_and_leave_the_plans_own_unchanged():
    plain = plan_pilots(2000, 1.0, 4e-3, warmup=100)
    plans = plan_pilots(2000, 1.0, 4e-3, warmup=100, above=2)
    for a, b in zip(plain, plans[:3], strict=True):
        assert (a.name, a.steps, a.peak) == (b.name, b.steps, b.peak)
        np.testing.assert_array_equal(a.learning_rate, b.learning_rate)
    ups = plans[3:]
    assert [(p.peak, p.steps) for p in ups] == [(3.2e-2, 400), (6.4e-2, 400)]
    assert [p.above for p in plans] == [0, 0, 0, 1, 2] and not any(p.twin for p in plans)
    np.testing.assert_array_equal(ups[0].learning_rate, wsd_learning_rates(3.2e-2, 400, 100))
    # with a twin, the twin is the highest pilot's first half, last
    twin = plan_pilots(2000, 1.0, 4e-3, warmup=100, twin=True, above=1)[-1]
    assert twin.name == "pilot-wsd-lr0.032-T400-twin" and twin.steps == 200 and twin.twin and twin.above == 0


@pytest.mark.parametrize("above", [-1, 5, 1.5, True])
def test_a_bad_above_is_named(above):
    with pytest.raises(ProblemError, match="--above"):
        plan_pilots(2000, 1.0, 4e-3, above=above)


def test_cli_adds_pilots_above_beside_the_plans_own_files_without_force(tmp_path):
    folder = tmp_path / "p"
    args = ["pilots", "--horizon", "400", "--peak", "0.01", "--warmup", "10", "--out", str(folder)]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    stamps = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    result = CliRunner().invoke(app, [*args, "--above", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [(p["peak"], p["written"]) for p in report["pilots"]] == [
        (0.01, False),
        (0.0025, False),
        (0.04, False),
        (0.08, True),
    ]
    for name, data in before.items():  # the plan's own files: not rewritten
        assert (folder / name).read_bytes() == data and (folder / name).stat().st_mtime_ns == stamps[name]
    up = load_schedule(folder / "pilot-wsd-lr0.08-T80.json")
    np.testing.assert_array_equal(up.learning_rate, wsd_learning_rates(0.08, 80, 10))
    assert up.provenance["plan"]["above"] == 1
    # another warmup into the same folder: the same names, other schedules: refused, nothing written
    other = CliRunner().invoke(app, [*args[:6], "20", *args[7:]])
    assert other.exit_code != 0 and "--force" in other.output
    assert sorted(f.name for f in folder.iterdir()) == sorted([*before, "pilot-wsd-lr0.08-T80.json"])
