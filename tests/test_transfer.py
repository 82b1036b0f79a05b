"""Horizon transfer (THEORY §4, LR-transfer row): the rules exactly, bad input, CLI, loss gaps.

The rules are checked exactly on synthetic schedules (no solve); the loss gaps
against re-optimising are measured on the shipped problems at reduced size,
transferring T -> 4T (slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import FITTED_SPEC as FITTED
from helpers import PROBLEMS, tiny_spec
from numpy.testing import assert_allclose, assert_array_equal
from typer.testing import CliRunner

import schedopt
from schedopt.cli import app
from schedopt.controls import block_edges
from schedopt.errors import ProblemError
from schedopt.problem import Model
from schedopt.schedule import Schedule, load_schedule, save_schedule
from schedopt.solvers import solve
from schedopt.spec import parse_problem
from schedopt.studies.transfer import (
    ANNEAL_LEVEL,
    problem_from_schedule,
    transfer_report,
    transfer_schedule,
)

#: Same arithmetic on the same numbers: only round-off differs.
EXACT = 1e-12
#: The transferred anneal starts within this many steps of (1 - f2) T2 (steps are discrete).
ANNEAL_STEPS = 2
#: Loss gap to re-optimising at 4T, easy phase (measured 0.75 % at N=200, T=1000 -> 4000).
EASY_GAP = 0.02
#: The naive stretch must be at least this much worse than the transfer, easy phase (measured 30 %).
EASY_STRETCH_EXCESS = 0.10
#: Loss gap to re-optimising at 4T, hard phase, phase rule and stretch (measured 1.3 % and
#: 1.0 % at N=200, T=1000 -> 4000; 0.86 % and 0.59 % at N=1000, T=4000 -> 16000).
HARD_GAP = 0.03

EASY, HARD, BOUNDARY = (2.5, 1.2), (1.5, 2.5), (2.0, 2.0)


def spec_text(exponents=EASY) -> str:
    return tiny_spec(*exponents)


def decaying(horizon: int, peak: float = 0.2) -> np.ndarray:
    s = (np.arange(horizon) + 0.5) / horizon
    return peak * (1.0 - s) ** 1.4 + 1e-3


def wsd(horizon: int, plateau: float, stable: int) -> np.ndarray:
    """Plateau until ``stable``, then linear to zero at the horizon (per-step midpoints)."""
    t = np.arange(horizon) + 0.5
    return np.where(t < stable, plateau, plateau * (horizon - t) / (horizon - stable))


def schedule_with_spec(lr: np.ndarray, text: str | None) -> Schedule:
    prov = {"spec": text, "status": "converged", "solver": "jax", "final_loss": 1.0} if text else {}
    return Schedule(learning_rate=lr, provenance=prov)


# --- the rules, exactly


def test_stretch_to_the_same_horizon_is_the_identity():
    problem = parse_problem(spec_text())
    lr = decaying(200)
    out = transfer_schedule(schedule_with_spec(lr, spec_text()), problem, 200, rule="stretch")
    assert_allclose(out.learning_rate, lr, rtol=EXACT)


def test_easy_phase_rule_is_the_stretch_times_the_predicted_factor():
    problem = parse_problem(spec_text(EASY))
    source = schedule_with_spec(decaying(200), spec_text(EASY))
    stretch = transfer_schedule(source, problem, 800, rule="stretch")
    moved = transfer_schedule(source, problem, 800)
    xi = 1.0 - EASY[1] / EASY[0]
    assert_allclose(moved.learning_rate, stretch.learning_rate * 4.0**-xi, rtol=EXACT)
    plan = moved.provenance["transfer"]
    assert plan["phase"] == "easy" and plan["clipped_steps"] == 0
    assert_allclose([plan["xi"], plan["lr_factor"]], [xi, 4.0**-xi], rtol=EXACT)
    # the reported loss is the loss of the written schedule at the new horizon
    loss = schedopt.final_loss(problem.model, moved.learning_rate)
    assert_allclose(moved.provenance["final_loss"], loss, rtol=EXACT)
    assert moved.horizon == 800 and moved.provenance["horizon"] == 800


def test_hard_phase_rule_keeps_the_plateau_and_rescales_the_anneal():
    problem = parse_problem(spec_text(HARD))
    T, T2 = 200, 800
    lr = wsd(T, 0.3, 120)
    moved = transfer_schedule(schedule_with_spec(lr, spec_text(HARD)), problem, T2)
    plan = moved.provenance["transfer"]
    exponent = (HARD[1] - HARD[0]) / (HARD[1] - 1.0)
    f1 = 1.0 - (np.flatnonzero(lr >= ANNEAL_LEVEL * 0.3)[-1] + 1) / T
    assert plan["phase"] == "hard" and plan["lr_factor"] == 1.0
    assert_allclose([plan["anneal_exponent"], plan["anneal_fraction_source"]], [exponent, f1], rtol=EXACT)
    assert_allclose(plan["anneal_fraction"], f1 * 4.0**-exponent, rtol=EXACT)
    out = moved.learning_rate
    assert_allclose(out.max(), 0.3, rtol=EXACT)  # plateau height kept
    start = np.flatnonzero(out >= ANNEAL_LEVEL * 0.3)[-1] + 1
    assert abs(start - (1.0 - plan["anneal_fraction"]) * T2) <= ANNEAL_STEPS
    # the anneal is the source's, compressed: the same values at the same distance fraction
    # of the anneal from its start
    stretch = transfer_schedule(schedule_with_spec(lr, spec_text(HARD)), problem, T2, rule="stretch")
    assert np.count_nonzero(out < 0.29) < np.count_nonzero(stretch.learning_rate < 0.29)


def test_boundary_rule_is_the_naive_stretch():
    problem = parse_problem(spec_text(BOUNDARY))
    source = schedule_with_spec(wsd(200, 0.3, 120), spec_text(BOUNDARY))
    moved = transfer_schedule(source, problem, 800)
    stretch = transfer_schedule(source, problem, 800, rule="stretch")
    assert moved.provenance["transfer"]["phase"] == "boundary"
    assert_array_equal(moved.learning_rate, stretch.learning_rate)


def test_values_above_the_cap_are_set_to_the_cap_and_counted():
    problem = parse_problem(spec_text(EASY))
    lr = decaying(800, peak=0.3)
    moved = transfer_schedule(schedule_with_spec(lr, spec_text(EASY)), problem, 200)
    factor = 0.25 ** -(1.0 - EASY[1] / EASY[0])
    expected = np.count_nonzero(
        factor * transfer_schedule(schedule_with_spec(lr, None), problem, 200, rule="stretch").learning_rate
        > problem.learning_rate.max
    )
    assert expected > 0
    assert moved.provenance["transfer"]["clipped_steps"] == expected
    assert moved.learning_rate.max() == problem.learning_rate.max


# --- rebuilding the problem from provenance


def test_problem_from_schedule_restores_the_design_grid():
    T = 200
    for kind, blocks in (("geometric-end", 7), ("uniform", 10)):
        edges = block_edges(T, blocks, kind).tolist()
        prov = {
            "spec": spec_text(),
            "grids": {"learning_rate": {"edges": edges, "parameterisation": "linear"}},
        }
        problem = problem_from_schedule(Schedule(learning_rate=decaying(T), provenance=prov))
        assert problem.horizon == T
        assert problem.learning_rate.grid == kind and problem.learning_rate.blocks == blocks
    odd = [0, 3, 50, 199, 200]
    prov = {"spec": spec_text(), "grids": {"learning_rate": {"edges": odd}}}
    problem = problem_from_schedule(Schedule(learning_rate=decaying(T), provenance=prov))
    assert problem.learning_rate.grid == "custom" and problem.learning_rate.edges == tuple(odd)
    # at another horizon the custom edges are rescaled in t/T
    assert problem.at_horizon(400).learning_rate.edges == (0, 6, 100, 398, 400)


# --- bad input names the field


@pytest.mark.parametrize("horizon", [0, -3, 2.5])
def test_non_positive_horizon_is_an_error_naming_the_field(horizon):
    problem = parse_problem(spec_text())
    with pytest.raises(ProblemError, match="`horizon` must be a positive integer") as info:
        transfer_schedule(schedule_with_spec(decaying(200), spec_text()), problem, horizon)
    assert info.value.field == "horizon"


def test_missing_provenance_spec_is_an_error_naming_the_field():
    with pytest.raises(ProblemError, match=r"provenance\.spec") as info:
        problem_from_schedule(schedule_with_spec(decaying(200), None))
    assert info.value.field == "provenance.spec"


def test_unknown_rule_is_an_error_naming_the_field():
    problem = parse_problem(spec_text())
    with pytest.raises(ProblemError) as info:
        transfer_schedule(schedule_with_spec(decaying(200), spec_text()), problem, 400, rule="magic")
    assert info.value.field == "rule"


# --- the command


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_transfer_writes_the_schedule_and_reports_its_loss(tmp_path):
    src = save_schedule(schedule_with_spec(decaying(200), spec_text()), tmp_path / "schedule.json")
    folder = tmp_path / "out"
    result = run("transfer", src, "--horizon", "800", "--out", folder, "--no-reoptimise", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"problem", "phase", "source_horizon", "horizon", "losses", "gaps", "transfer", "files"} <= set(
        out
    )
    assert (out["phase"], out["source_horizon"], out["horizon"]) == ("easy", 200, 800)
    losses = out["losses"]
    assert losses["reoptimised"] is None and out["gaps"] == {"transferred": None, "stretch": None}
    assert losses["transferred"] < losses["stretch"]  # easy phase: the lower learning rate helps
    written = load_schedule(out["files"]["schedule_json"])
    model = parse_problem(spec_text()).model
    assert_allclose(schedopt.final_loss(model, written.learning_rate), losses["transferred"], rtol=EXACT)
    assert_array_equal(load_schedule(out["files"]["schedule_csv"]).learning_rate, written.learning_rate)
    assert written.provenance["transferred_from"]["path"] == str(src)
    assert written.provenance["spec"] == spec_text()
    assert json.loads(Path(out["files"]["report"]).read_text(encoding="utf-8")) == out


def test_cli_transfer_without_spec_exits_2_naming_the_field(tmp_path):
    src = save_schedule(schedule_with_spec(decaying(200), None), tmp_path / "schedule.json")
    result = run("transfer", src, "--horizon", "800", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "provenance.spec" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("horizon", ["-3", "0", "2.5"])
def test_cli_transfer_bad_horizon_exits_2_naming_the_option(tmp_path, horizon):
    src = save_schedule(schedule_with_spec(decaying(200), spec_text()), tmp_path / "schedule.json")
    result = run("transfer", src, "--horizon", horizon, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "--horizon" in result.stderr


# --- loss gaps on the shipped problems (reduced size), T -> 4T


def shipped(name: str, n_modes: int, horizon: int, blocks: int):
    problem = schedopt.load_problem(PROBLEMS / f"{name}.toml")
    m = problem.model
    model = Model.powerlaw(m.a, m.b, n_modes, noise_std=np.sqrt(m.noise_variance), finite_size=m.residual > 0)
    cap = 0.9 * schedopt.stability_threshold(model, problem.training.batch_size)
    problem = problem.replace(model=model).with_control("learning_rate", blocks=blocks, max=cap)
    return problem.at_horizon(horizon)


OPTIONS = {"ftol": 1e-10, "gtol": 1e-6}


@pytest.fixture(scope="module")
def easy_report():
    problem = shipped("easy-phase", n_modes=200, horizon=1000, blocks=40)
    return transfer_report(solve(problem, options=OPTIONS), problem, 4000, options=OPTIONS)


@pytest.fixture(scope="module")
def hard_report():
    problem = shipped("hard-phase", n_modes=200, horizon=1000, blocks=40)
    return transfer_report(solve(problem, options=OPTIONS), problem, 4000, options=OPTIONS)


@pytest.mark.slow
def test_easy_phase_transfer_is_close_to_reoptimising_and_beats_the_stretch(easy_report):
    gaps = easy_report.gaps()
    assert easy_report.reoptimised.converged
    assert gaps["transferred"] < EASY_GAP
    assert gaps["stretch"] > gaps["transferred"] + EASY_STRETCH_EXCESS


@pytest.mark.slow
def test_hard_phase_transfer_is_close_to_reoptimising(hard_report):
    gaps = hard_report.gaps()
    assert hard_report.reoptimised.converged
    assert hard_report.transferred.provenance["transfer"]["lr_factor"] == 1.0
    assert gaps["transferred"] < HARD_GAP
    assert gaps["stretch"] < HARD_GAP


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="THEORY §4 anneal fraction T^-(b-a)/(b-1) = T^-0.67 is not reached at T <= 1.6e4: the "
    "re-optimised anneal fraction falls like T^-0.13 (1e3 -> 4e3) and T^-0.24 (4e3 -> 1.6e4), so the "
    "phase rule over-shortens the anneal and the naive stretch is better (gaps 1.0 % vs 1.3 % at "
    "1e3 -> 4e3, 0.58 % vs 0.88 % at 4e3 -> 1.6e4; benchmarks/scaling.py)",
)
def test_hard_phase_transfer_beats_the_stretch(hard_report):
    gaps = hard_report.gaps()
    assert gaps["transferred"] < gaps["stretch"]


def test_transfer_report_lays_the_warmup_and_scores_it_with_the_problems_momentum():
    """The written schedule carries the ramp; its loss is the recursion's with the problem's momentum."""
    from dataclasses import replace

    problem = parse_problem(spec_text())
    problem = problem.replace(training=replace(problem.training, momentum=0.5))
    source = Schedule(learning_rate=decaying(problem.horizon, peak=0.1))
    report = transfer_report(source, problem, 2 * problem.horizon, reoptimise=False, warmup=20)
    written = report.written
    assert written.horizon == 2 * problem.horizon and written.learning_rate[0] < written.learning_rate[25]
    assert_array_equal(written.learning_rate[20:], report.warmed.learning_rate[20:])
    with_momentum = schedopt.loss_curve(report.problem.model, written.learning_rate, momentum=0.5).final_loss
    without = schedopt.loss_curve(report.problem.model, written.learning_rate).final_loss
    entry = report.to_dict()["warmup"]
    assert entry["steps"] == 20 and entry["gap"] is None
    assert_allclose(entry["final_loss"], with_momentum, rtol=EXACT)
    assert abs(entry["final_loss"] / without - 1) > 1e-6  # the momentum counts
    plain = transfer_report(source, problem, 2 * problem.horizon, reoptimise=False)
    assert plain.written is plain.transferred and "warmup" not in plain.to_dict()


def test_a_fitted_design_transfers_in_the_networks_units(tmp_path):
    """The written schedule holds the network's learning rate (as design's file does, not the model's)
    and the report gives the network's losses next to the model's."""
    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED)
    runner = CliRunner()
    done = runner.invoke(app, ["design", str(spec), "--no-baselines", "--out", str(tmp_path / "d")])
    assert done.exit_code == 0, done.output
    source = tmp_path / "d" / "schedule.json"
    args = [
        "transfer",
        str(source),
        "--horizon",
        "240",
        "--no-reoptimise",
        "--out",
        str(tmp_path / "t"),
        "--json",
    ]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    written = json.loads((tmp_path / "t" / "schedule-T240.json").read_text())
    assert written["units"] == {"learning_rate": "network", "model_learning_rate": "model"}
    assert_allclose(
        np.asarray(written["learning_rate"]), np.asarray(written["model_learning_rate"]) / 60.0, rtol=EXACT
    )
    designed = json.loads(source.read_text())
    assert max(written["learning_rate"]) == pytest.approx(max(designed["learning_rate"]), rel=EXACT)
    network = report["network_losses"]
    assert network["transferred"] == pytest.approx(1.0 + 2.0 * report["losses"]["transferred"], rel=EXACT)
    assert network["source"] == pytest.approx(1.0 + 2.0 * report["source_loss"], rel=EXACT)
