"""The compute-optimal frontier (THEORY §2.2, §4): machinery against a closed form, then the solvers.

The scan-refine-fit machinery is checked on a loss with a known frontier,
:math:`L(N, T) = N^{-3/2} + B N/T`, whose minimum at fixed :math:`C = NT` is
:math:`N^* = (3C/4B)^{2/7}`, :math:`L^* \\propto (C/B)^{-3/7}`: exactly the exponents
THEORY §4 predicts for ``a = 2.5``, and a baseline with ``B = 4`` needs 4x the
compute. The measured exponents of the real problem (slow) are pre-asymptotic;
their tolerances were set after measuring them (see the constants).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.special
from helpers import PROBLEMS
from numpy.testing import assert_allclose
from typer.testing import CliRunner

import schedopt
from schedopt.cli import app
from schedopt.errors import ProblemError
from schedopt.problem import Model
from schedopt.studies import scaling
from schedopt.studies.scaling import (
    frontier_predictions,
    parse_compute,
    scaling_problem,
    study_scaling,
)

EXACT = 1e-12
#: Closed-form frontier: the parabola refinement on a sqrt(2) grid recovers N* to ~1.2 %, L* to ~1 %.
N_STAR_RTOL = 0.02
L_STAR_RTOL = 0.015
#: ... and the fitted exponents to ~0.002 over 1e4..1e7.
CLOSED_FORM_EXPONENT = 0.005
#: ... and the compute multiplier (exactly B_baseline / B_optimal) to ~2 %.
MULTIPLIER_RTOL = 0.03

#: Measured with the solver (40 blocks, benchmarks/scaling.py and a spot check at 1e7): easy phase
#: N* exponent 0.291 vs 0.286 and L* -0.423 vs -0.429 over C in [1e4, 1e7] (local N* slope 0.305 at
#: 1e4 -> 0.285 at 1e7); hard phase N* 0.314 vs 0.286 and L* -0.158 vs -0.143, the deviations
#: shrinking with C (local slopes 0.329 -> 0.302 and -0.164 -> -0.153). Over the tested range
#: C in [1e4, 1e5] the deviations are 0.015 / 0.004 (easy) and 0.041 / 0.020 (hard): the
#: tolerances are those plus ~0.01, i.e. they pin today's pre-asymptotic numbers, not the limit.
EASY_TOLERANCE = {"model_size": 0.025, "loss": 0.02}
HARD_TOLERANCE = {"model_size": 0.05, "loss": 0.035}

B = {"optimal": 1.0, "constant": 4.0, "cosine": 2.0}


def per_point(evaluate):
    """A stand-in for ``scaling._evaluate._evaluate_many`` from one for a single point."""

    def many(jobs, *, solver, options, backend, initial=None):
        return [evaluate(problem, kinds, solver=solver, options=options) for problem, kinds in jobs]

    return many


def closed_form(problem, kinds, *, solver, options):
    """Stand-in for the solves: L = N^-1.5 + B N / T at the point's integer N and T."""
    n, t = problem.model.n_modes, problem.horizon
    return {k: {"loss": n**-1.5 + B[k] * n / t, "status": "converged", "wall_time": 0.0} for k in kinds}


@pytest.fixture
def easy():
    return schedopt.load_problem(PROBLEMS / "easy-phase.toml")


# --- parsing and the problems scanned


def test_parse_compute():
    assert_allclose(parse_compute("1e4:1e6:3"), [1e4, 1e5, 1e6], rtol=EXACT)
    assert parse_compute("3e5, 1e5") == [1e5, 3e5]


@pytest.mark.parametrize("text", ["1e6", "0:1e4:3", "1e6:1e4:3", "1e4:1e6:1", "1e4:1e6:2.5", "a,b", "-1,5"])
def test_bad_compute_is_an_error_naming_the_field(text):
    with pytest.raises(ProblemError, match="--compute") as info:
        parse_compute(text)
    assert info.value.field == "compute"


def test_scaling_problem_is_the_top_n_modes_of_the_infinite_power_law(easy):
    a, b = easy.model.a, easy.model.b
    p = scaling_problem(easy, 64, 500)
    assert (p.model.n_modes, p.horizon, p.learning_rate.blocks) == (64, 500, easy.learning_rate.blocks)
    # the frozen modes' loss is the normalised Hurwitz-zeta tail; kept + frozen = initial loss
    assert_allclose(p.model.residual, scipy.special.zeta(a, 65) / scipy.special.zeta(a), rtol=1e-10)
    assert_allclose(p.model.initial_loss + p.model.residual, 1.0, rtol=EXACT)
    assert_allclose(p.model.eigenvalues, np.arange(1, 65) ** -b, rtol=EXACT)
    # the cap keeps the spec's fraction of the stability threshold
    fraction = easy.learning_rate.max / schedopt.stability_threshold(easy.model)
    assert_allclose(p.learning_rate.max / schedopt.stability_threshold(p.model), fraction, rtol=EXACT)
    # blocks are capped at a short horizon, and can be overridden
    assert scaling_problem(easy, 64, 30).learning_rate.blocks == 30
    assert scaling_problem(easy, 64, 500, blocks=20).learning_rate.blocks == 20


def test_non_power_law_model_is_an_error_naming_the_field(easy):
    custom = easy.replace(model=Model(eigenvalues=[1.0, 0.5, 0.2], initial_error=[1.0, 1.0, 1.0]))
    with pytest.raises(ProblemError) as info:
        study_scaling(custom, [1e4, 1e5])
    assert info.value.field == "model.kind"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"schedules": ("optimal", "wsd")}, "schedules"),
        ({"points": 2}, "points"),
        ({"spacing": 1.0}, "spacing"),
        ({"computes": [1e4]}, "compute"),
        ({"computes": [10.0, 1e4]}, "compute"),  # too small for 3 model sizes with T >= 20
    ],
)
def test_bad_settings_are_errors_naming_the_field(easy, monkeypatch, kwargs, field):
    monkeypatch.setattr(scaling._evaluate, "_evaluate_many", per_point(closed_form))
    computes = kwargs.pop("computes", [1e4, 1e5])
    with pytest.raises(ProblemError) as info:
        study_scaling(easy, computes, **kwargs)
    assert info.value.field == field


# --- the machinery against a closed-form frontier


def test_frontier_of_a_closed_form_loss(easy, monkeypatch):
    monkeypatch.setattr(scaling._evaluate, "_evaluate_many", per_point(closed_form))
    study = study_scaling(easy, [1e4, 1e5, 1e6, 1e7])
    for kind in scaling.SCHEDULES:
        for row in study.frontiers[kind]:
            n_star = (1.5 * row["compute"] / (2.0 * B[kind])) ** (1 / 3.5)
            l_star = n_star**-1.5 + B[kind] * n_star**2 / row["compute"]
            assert row["interior"]
            assert_allclose(row["n_modes"], n_star, rtol=N_STAR_RTOL)
            assert_allclose(row["loss"], l_star, rtol=L_STAR_RTOL)
            assert_allclose(row["horizon"] * row["n_modes"], row["compute"], rtol=EXACT)
        measured = study.measured()[kind]
        assert_allclose(measured["model_size"], 1 / 3.5, atol=CLOSED_FORM_EXPONENT)
        assert_allclose(measured["loss"], -1.5 / 3.5, atol=CLOSED_FORM_EXPONENT)
        assert_allclose(measured["horizon"], 1.0 - measured["model_size"], rtol=EXACT)
    for kind, entries in study.multipliers().items():
        for entry in entries:
            assert_allclose(entry["multiplier"], B[kind] / B["optimal"], rtol=MULTIPLIER_RTOL)
        assert [e["extrapolated"] for e in entries] == [False, False, False, True]


def test_a_bad_first_guess_is_corrected_by_extending_the_grid(easy, monkeypatch):
    """With B = 1e-3 the minimum sits ~7x above the first guess C^(2/7)."""

    def far(problem, kinds, **kwargs):
        n, t = problem.model.n_modes, problem.horizon
        return {k: {"loss": n**-1.5 + 1e-3 * n / t, "status": "converged", "wall_time": 0.0} for k in kinds}

    monkeypatch.setattr(scaling._evaluate, "_evaluate_many", per_point(far))
    study = study_scaling(easy, [1e5, 1e6], schedules=("optimal",), max_extend=8)
    for row in study.frontiers["optimal"]:
        assert row["interior"]
        assert_allclose(row["n_modes"], (1.5 * row["compute"] / 2e-3) ** (1 / 3.5), rtol=N_STAR_RTOL)


def test_horizons_above_max_horizon_are_not_scanned(easy, monkeypatch):
    """At C = 1e10 the closed form's N* = 650 needs T* = 1.5e7 > MAX_HORIZON: the scan takes larger
    models instead, and its minimum at the smallest one is reported as bounded by the horizon cap."""
    from schedopt._validate import MAX_HORIZON

    monkeypatch.setattr(scaling._evaluate, "_evaluate_many", per_point(closed_form))
    study = study_scaling(easy, [3e9, 1e10], schedules=("optimal",))
    assert all(pt["horizon"] <= MAX_HORIZON for pt in study.points)
    first, last = study.frontiers["optimal"]
    assert first["interior"] and first["bound"] is None
    assert not last["interior"] and last["bound"].startswith("max_horizon")
    assert last["scanned"] >= 3
    assert (
        round(1e10 / last["discrete_n_modes"]) <= MAX_HORIZON < round(1e10 / (last["discrete_n_modes"] - 1))
    )


def test_ode_engine_points_start_from_the_neighbours_schedule_mapped_in_t_over_T(easy):
    """The start is the source's fraction of its cap at the same t / T; recursion points keep their own."""
    from schedopt.solvers._common import control_grids
    from schedopt.studies.scaling._start import mapped_start

    source_problem = scaling_problem(easy, 20, 300, blocks=10)
    solution = schedopt.solve(source_problem)
    source = {"results": {"optimal": {"solution": solution}}}
    values = solution.parameters["learning_rate"]
    assert mapped_start(source_problem, source, "jax", None) is None  # the recursion: its own start
    ode = {"engine": "ode"}
    same = mapped_start(source_problem, source, "jax", ode)["learning_rate"]
    assert_allclose(same, values, rtol=EXACT)
    target = scaling_problem(easy, 30, 600, blocks=10)
    mapped = mapped_start(target, source, "jax", ode)["learning_rate"]
    grid = control_grids(target)["learning_rate"]
    expected = np.interp(grid.knots / 600 * 300, solution.grids["learning_rate"].edges, values)
    assert_allclose(
        mapped, expected * target.learning_rate.max / source_problem.learning_rate.max, rtol=EXACT
    )
    assert mapped_start(target, None, "jax", ode) is None
    assert mapped_start(target, source, "pontryagin", ode) is None


def test_predictions_are_theory_section_4():
    for a, b in ((2.5, 1.2), (1.5, 2.5)):
        pred = frontier_predictions(a, b)["optimal"]
        theory = schedopt.predicted_exponents(a, b)
        assert_allclose(pred["model_size"], theory["model_size"], rtol=EXACT)
        assert_allclose(pred["loss"], -theory["loss_compute"], rtol=EXACT)
        assert_allclose(pred["horizon"], 1.0 - theory["model_size"], rtol=EXACT)


# --- the command


def test_cli_scaling_json_and_files(easy, monkeypatch, tmp_path):
    monkeypatch.setattr(scaling._evaluate, "_evaluate_many", per_point(closed_form))
    folder = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "scaling",
            str(PROBLEMS / "easy-phase.toml"),
            "--compute",
            "1e4:1e6:3",
            "--out",
            str(folder),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    keys = {"problem", "phase", "a", "b", "computes", "frontiers", "fits", "measured", "predicted"}
    assert keys | {"multipliers", "points", "wall_time", "settings", "files"} <= set(out)
    assert out["phase"] == "easy" and set(out["frontiers"]) == set(scaling.SCHEDULES)
    assert out["predicted"]["optimal"]["model_size"] == 1 / 3.5
    for path in out["files"].values():
        assert Path(path).is_file() and Path(path).parent == folder
    assert json.loads(Path(out["files"]["report"]).read_text(encoding="utf-8")) == out
    # the table form (smoke)
    result = CliRunner().invoke(
        app,
        [
            "scaling",
            str(PROBLEMS / "easy-phase.toml"),
            "--compute",
            "1e4,1e5",
            "--out",
            str(folder),
            "--no-plot",
            "--force",  # the first call wrote scaling.json there
        ],
    )
    assert result.exit_code == 0, result.output
    assert "compute multiplier of constant" in result.stdout


def test_cli_scaling_bad_compute_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["scaling", "--compute", "1e6", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--compute" in result.stderr


# --- the real problem: exponents against THEORY §4 (pre-asymptotic; see the tolerances)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "tolerance"), [("easy-phase", EASY_TOLERANCE), ("hard-phase", HARD_TOLERANCE)]
)
def test_frontier_exponents_match_theory(name, tolerance):
    problem = schedopt.load_problem(PROBLEMS / f"{name}.toml")
    study = study_scaling(problem, [1e4, 10**4.5, 1e5], schedules=("optimal",), points=3, blocks=40)
    rows = study.frontiers["optimal"]
    assert all(r["interior"] for r in rows)
    assert all(p["results"]["optimal"]["status"] == "converged" for p in study.points)
    measured, predicted = study.measured()["optimal"], study.predicted()["optimal"]
    for key, tol in tolerance.items():
        assert abs(measured[key] - predicted[key]) < tol, (key, measured[key], predicted[key])
    # the larger model wins at larger compute, and the loss falls
    assert np.all(np.diff([r["n_modes"] for r in rows]) > 0)
    assert np.all(np.diff([r["loss"] for r in rows]) < 0)
