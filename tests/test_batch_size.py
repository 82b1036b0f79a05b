"""Batch size as a control under a sample budget: the constraint, the joint optimum against
the learning-rate-only one, the degeneracy indicator, the tie-break and the wall-clock ramp."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import schedopt
from schedopt.controls import ControlGrid
from schedopt.errors import ProblemError
from schedopt.problem import ControlSpec, Model, Problem, Training
from schedopt.solvers import solve
from schedopt.solvers.budget import budget_weights, project_budget, sample_time_remap, tie_break_per_step
from schedopt.studies.joint import fewest_steps, fit_batch_ramp, fixed_batch_problem, with_sample_budget

#: The budget sum_t m_t = D must hold to this relative accuracy (issue: 1e-9).
BUDGET_RTOL = 1e-9
#: The joint optimum may exceed the learning-rate-only optimum by rounding only.
JOINT_VS_LR_ONLY_RTOL = 1e-9
#: Fitted batch-ramp exponent vs 1/(2b) - 1 (issue: 0.15), over RAMP_RANGE of t/T.
RAMP_TOLERANCE = 0.15
RAMP_RANGE = (0.2, 0.9)
#: Flatness (across / flat curvature of log L_T) above which the optimum is degenerate,
#: and below which curvature clearly pins it.
FLAT_LARGE = 1e3
FLAT_SMALL = 1e2


def budget_problem(n_modes, horizon, budget, lr_max, *, blocks=20, grid="geometric-end", a=2.5, b=1.2):
    """Easy phase (a > b) with label noise sigma^2 = 0.25; batch in [1, D]."""
    model = Model.powerlaw(a, b, n_modes, noise_std=0.5)
    lr = ControlSpec("learning_rate", 0.0, lr_max, blocks=blocks, grid=grid)
    base = Problem("budget-test", model, Training(horizon=horizon), controls={"learning_rate": lr})
    return with_sample_budget(base, budget)


@pytest.fixture(scope="module")
def ramp_case():
    """Curvature matters: eta_max lambda_1 = 0.3, and T = 200 steps for D = 2e4 samples is
    below the wall-clock minimum (~300), so the learning rate sits at its cap: the ramp regime.
    N = 400 keeps the kernel K(x) ~ x^-(2 - 1/b) a power law over the remaining intrinsic
    time x <= 60 (1/lambda_N = 1300); with N = 100 the cutoff bends the ramp (-0.67..-0.81)."""
    problem = budget_problem(400, 200, 2e4, 0.3)
    assert problem.learning_rate.max < schedopt.stability_threshold(problem.model, 1.0)
    joint = solve(problem, "jax")
    lr_only = solve(fixed_batch_problem(problem), "jax")
    return problem, joint, lr_only


def test_budget_holds_and_joint_beats_lr_only(ramp_case):
    problem, joint, lr_only = ramp_case
    batch = joint.per_step("batch_size")
    assert_allclose(batch.sum(), problem.sample_budget, rtol=BUDGET_RTOL)
    assert joint.info["budget_violation"] <= BUDGET_RTOL
    assert batch.min() >= 1.0 - 1e-12
    assert lr_only.problem.training.batch_size == pytest.approx(100.0)  # D / T
    assert joint.final_loss <= lr_only.final_loss * (1 + JOINT_VS_LR_ONLY_RTOL)
    # and the batch schedule buys a real gain here
    print(f"joint {joint.final_loss:.5g}, learning rate only at m = D/T {lr_only.final_loss:.5g}")
    assert lr_only.final_loss / joint.final_loss > 1.05


def test_batch_ramp_exponent_matches_prediction(ramp_case):
    _, joint, _ = ramp_case
    fit = fit_batch_ramp(joint, fit_range=RAMP_RANGE)
    assert fit.predicted == pytest.approx(1 / (2 * 1.2) - 1)
    assert fit.mean_learning_rate_over_cap > 0.99  # the prediction is at eta = eta_max
    print(f"ramp exponent {fit.exponent:.3f} vs {fit.predicted:.3f} over t/T in {RAMP_RANGE}")
    assert abs(fit.exponent - fit.predicted) <= RAMP_TOLERANCE


def test_degeneracy_is_small_when_curvature_matters(ramp_case):
    _, joint, _ = ramp_case
    report = joint.info["degeneracy"]
    assert report["max_curvature_number"] == pytest.approx(0.3)
    assert report["flatness"] < FLAT_SMALL
    assert not report["degenerate"]


def test_degeneracy_is_large_when_curvature_is_negligible():
    """eta_max lambda_1 = 0.01: per sample only eta/m matters; the indicator says so."""
    problem = budget_problem(30, 3000, 1e4, 0.01, blocks=10, grid="uniform")
    solution = solve(problem, "jax")
    report = solution.info["degeneracy"]
    print({k: report[k] for k in ("flatness", "curvature_flat", "curvature_across", "learning_rate_slack")})
    assert report["flatness"] > FLAT_LARGE
    assert "eta/m" in report["flat_direction"]
    assert np.all(np.abs(report["curvature_flat"]) < np.abs(report["curvature_across"]) / FLAT_LARGE * 3)
    assert_allclose(solution.per_step("batch_size").sum(), 1e4, rtol=BUDGET_RTOL)


def test_tie_break_point_has_the_same_loss_when_curvature_is_negligible():
    """Moving along the flat family (same eta/m per sample) from a constant batch to a constant
    learning rate keeps the loss when eta lambda_1 is small (measured: 2e-4 relative at 0.01)."""
    model = Model.powerlaw(2.5, 1.2, 30, noise_std=0.5)
    horizon, lr_max = 2000, 0.01
    t = np.arange(horizon)
    lr = lr_max * (1 - t / horizon) ** 1.4  # an annealing schedule at a constant batch
    m = np.full(horizon, 5.0)
    new_lr, new_m, steps_at_cap = tie_break_per_step(lr, m, m_min=1.0, m_max=1e4, lr_min=0.0, lr_max=lr_max)
    assert_allclose(new_m.sum(), m.sum(), rtol=1e-13)
    assert_allclose(new_lr.sum(), lr.sum(), rtol=1e-12)  # same intrinsic time
    assert np.ptp(new_lr) <= 1e-9 * lr_max  # constant learning rate ...
    assert new_m[-1] / new_m[0] > 10  # ... and the batch absorbs the anneal
    assert steps_at_cap == int(np.ceil(lr.sum() / lr_max))
    base = schedopt.final_loss(model, lr, batch_size=m)
    change = abs(schedopt.final_loss(model, new_lr, batch_size=new_m) / base - 1)
    print(f"relative loss change along the flat family: {change:.2e}")
    assert change < 1e-3


def test_sample_time_remap_is_the_identity_for_the_same_batches():
    rng = np.random.default_rng(0)
    lr, m = 0.1 * rng.random(50), 1 + 5 * rng.random(50)
    assert_allclose(sample_time_remap(lr, m, m), lr, rtol=1e-12, atol=1e-15)
    # and keeps the total intrinsic time for any batches with the same total
    other = np.full(50, m.mean())
    assert_allclose(sample_time_remap(lr, m, other).sum(), lr.sum(), rtol=1e-12)


def test_project_budget_is_exact_and_within_bounds():
    grid = ControlGrid(np.array([0, 3, 10, 30, 31, 60]), "linear")
    a = budget_weights(grid)
    assert_allclose(a.sum(), 60.0, rtol=1e-15)
    rng = np.random.default_rng(1)
    for budget in (61.0, 900.0, 5999.0):
        p = project_budget(100 * rng.random(6), a, budget, 1.0, 100.0)
        assert np.all((p >= 1.0) & (p <= 100.0))
        assert_allclose(a @ p, budget, rtol=1e-14)
        assert_allclose(grid.interpolation().expand(p).sum(), budget, rtol=1e-13)


def test_infeasible_budget_is_rejected_naming_the_field():
    problem = budget_problem(20, 100, 50.0, 0.3, blocks=5)  # 100 steps need at least 100 samples
    with pytest.raises(ProblemError, match="sample_budget") as err:
        solve(problem, "jax")
    assert err.value.field == "sample_budget"


def test_budget_without_batch_control_is_rejected():
    problem = budget_problem(20, 100, 500.0, 0.3, blocks=5)
    bad = problem.replace(controls={"learning_rate": problem.learning_rate})
    with pytest.raises(ProblemError, match="batch_size control") as err:
        solve(bad, "jax")
    assert err.value.field == "sample_budget"


@pytest.mark.slow
def test_wall_clock_ramp_saves_steps_over_a_fixed_batch():
    """Fewest steps to within 1 % of the best loss at D = 1e4: the ramp needs fewer steps."""
    problem = budget_problem(60, 100, 1e4, 0.4, blocks=12, grid="uniform")
    result = fewest_steps(problem, [60, 100, 160, 250, 400], options={"ftol": 1e-12})
    print(result.to_dict())
    assert result.steps_joint is not None and result.steps_fixed is not None
    assert result.step_saving > 1.3
    for lj, lf in zip(result.joint_loss, result.fixed_loss, strict=True):
        assert lj <= lf * (1 + JOINT_VS_LR_ONLY_RTOL)


def test_designed_batch_schedule_is_exported(ramp_case):
    from schedopt.schedule import schedule_from_solution

    _, joint, _ = ramp_case
    schedule = schedule_from_solution(joint)
    assert_allclose(schedule.batch_size, joint.per_step("batch_size"), rtol=0, atol=0)
    assert_allclose(schedule.batch_size.sum(), joint.problem.sample_budget, rtol=BUDGET_RTOL)


@pytest.mark.slow
def test_tie_break_is_applied_on_a_degenerate_optimum():
    """eta_max lambda_1 = 0.02 with slack (T = 4000 steps > the ~3970 the learning rate needs at
    its cap): the optimum is degenerate; with a loose tolerance the tie-break replaces it."""
    problem = budget_problem(50, 4000, 2e4, 0.02, blocks=20, grid="uniform")
    rtol = 1e-2
    solution = solve(problem, "jax", options={"tie_break_rtol": rtol})
    report = solution.info["degeneracy"]
    tie = report["tie_break"]
    print(report["flatness"], tie)
    assert report["degenerate"]
    assert tie["applied"]
    assert tie["relative_loss_change"] <= rtol
    assert tie["learning_rate_spread_after"] < tie["learning_rate_spread_before"]
    assert_allclose(solution.per_step("batch_size").sum(), 2e4, rtol=BUDGET_RTOL)


def test_design_reports_the_budget_and_its_degeneracy(tmp_path):
    """`schedopt design` on the shipped batch-ramp problem: the JSON names the budget, the batch the
    baselines run at (D/T) and the flatness of the eta/m direction; the files carry the batch ramp."""
    from typer.testing import CliRunner

    from schedopt.cli import app
    from schedopt.schedule import load_schedule

    spec = Path(__file__).parent.parent / "problems" / "batch-ramp.toml"
    result = CliRunner().invoke(
        app, ["design", str(spec), "--out", str(tmp_path), "--json", "--no-baselines"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["sample_budget"] == 20000 and report["baseline_batch_size"] == 100
    assert report["controls"] == ["batch_size", "learning_rate"]
    deg = report["degeneracy"]
    assert set(deg) == {"flat_direction", "flatness", "degenerate", "steps_at_cap", "tie_break_applied"}
    assert deg["flatness"] > 0
    schedule = load_schedule(tmp_path / "schedule.json")
    assert schedule.batch_size.sum() == pytest.approx(20000, rel=1e-6)
    assert schedule.batch_size[-1] > 3 * schedule.batch_size[len(schedule.batch_size) // 2]  # the ramp
