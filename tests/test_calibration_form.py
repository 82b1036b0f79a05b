"""The plateau–anneal form: its grid, its solves, and that it never does worse than what it contains."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from schedopt.calibration.form import plateau_anneal, plateau_anneal_edges, plateau_anneal_problem
from schedopt.dynamics.recursion import final_loss
from schedopt.errors import ProblemError
from schedopt.spec import parse_problem
from tests.helpers import FITTED_SPEC as FITTED
from tests.helpers import tiny_spec


@pytest.fixture(scope="module")
def hard_problem():
    return parse_problem(tiny_spec(a=1.5, b=2.5))  # the hard phase: its optimum is a plateau, then an anneal


def test_edges_are_one_plateau_block_then_a_geometric_anneal():
    edges = plateau_anneal_edges(1000, 0.2, blocks=8)
    assert edges[0] == 0 and edges[1] == 800 and edges[-1] == 1000 and len(edges) == 10
    widths = np.diff(edges[1:])
    assert np.all(widths > 0) and widths[0] > widths[-1]  # finest at the end


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1e-6])
def test_a_fraction_that_leaves_no_plateau_or_no_anneal_is_refused(fraction):
    with pytest.raises(ProblemError, match="anneal fraction"):
        plateau_anneal_edges(200, fraction)


def test_the_form_holds_the_plateau_constant_and_beats_its_own_special_cases(hard_problem):
    choice = plateau_anneal(hard_problem, fractions=(0.2, 0.4), blocks=6)
    sol = choice.solution
    assert sol.converged and choice.anneal_fraction in (0.2, 0.4)
    lr = np.asarray(sol.per_step("learning_rate"))
    start = hard_problem.horizon - int(round(choice.anneal_fraction * hard_problem.horizon))
    assert np.ptp(lr[:start]) == 0.0  # one plateau value
    assert [c[0] for c in choice.candidates] == [0.2, 0.4]
    assert sol.final_loss == min(c[1] for c in choice.candidates)
    # constant at the cap is in the family: the form's optimum can only be lower
    cap = hard_problem.learning_rate.max
    constant = float(final_loss(hard_problem.model, np.full(hard_problem.horizon, cap)))
    assert sol.final_loss < constant
    # and so is WSD's shape on the form's grid (plateau at the cap, then a linear staircase to zero)
    restricted = plateau_anneal_problem(hard_problem, choice.anneal_fraction, blocks=6)
    edges = restricted.learning_rate.edges
    staircase = np.full(hard_problem.horizon, cap)
    for i, (lo, hi) in enumerate(itertools.pairwise(edges[1:])):
        staircase[lo:hi] = cap * (1 - (i + 1) / (len(edges) - 2))
    assert sol.final_loss <= float(final_loss(hard_problem.model, staircase)) * (1 + 1e-9)


def test_the_form_designs_the_learning_rate_only(hard_problem):
    with_batch = hard_problem.replace(
        controls={
            **hard_problem.controls,
            "batch_size": type(hard_problem.learning_rate)(name="batch_size", min=1.0, max=4.0, blocks=4),
        },
        sample_budget=400.0,
    )
    with pytest.raises(ProblemError, match="learning rate only"):
        plateau_anneal(with_batch)


@pytest.mark.parametrize(("form", "expected"), [("auto", "plateau-anneal"), ("free", "free")])
def test_design_of_a_fitted_spec_takes_the_plateau_anneal_form_by_default(tmp_path, form, expected):
    import json

    from typer.testing import CliRunner

    from schedopt.cli import app

    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED)
    out = tmp_path / form
    args = ["design", str(spec), "--no-baselines", "--json", "--out", str(out), "--form", form]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["form"]["form"] == expected
    schedule = json.loads((out / "schedule.json").read_text())
    assert schedule is not None
    if expected == "plateau-anneal":
        assert report["form"]["anneal_fraction"] == 0.2  # the pilots' (ANNEAL_FRACTIONS)
        assert [c["anneal_fraction"] for c in report["form"]["candidates"]] == [0.2]


def test_design_refuses_an_unknown_form(tmp_path):
    from typer.testing import CliRunner

    from schedopt.cli import app

    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED)
    result = CliRunner().invoke(
        app, ["design", str(spec), "--no-baselines", "--form", "wsd", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "--form" in result.output and "wsd" in result.output


def test_a_longer_horizon_pins_the_plateau_chosen_at_the_fitted_horizon(tmp_path):
    """``design --horizon 2T`` of a fitted spec: the plateau is the form's optimum at T (hard phase: xi = 0),
    pinned; the reported loss is the full schedule's, simulated from scratch."""
    import json

    from typer.testing import CliRunner

    from schedopt.cli import app
    from schedopt.dynamics.recursion import loss_curve
    from schedopt.problem import Model

    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED)
    out = tmp_path / "long"
    args = ["design", str(spec), "--horizon", "240", "--no-baselines", "--json", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    form = report["form"]
    assert form["plateau_chosen_at_horizon"] == 120
    short = plateau_anneal(parse_problem(FITTED))
    assert form["plateau_model_learning_rate"] == pytest.approx(short.plateau, rel=1e-12)
    schedule = json.loads((out / "schedule.json").read_text())
    lr = 60.0 * np.asarray(schedule["learning_rate"], dtype=np.float64)  # the file is in network units
    assert lr.size == 240
    start = 240 - int(round(form["anneal_fraction"] * 240))
    np.testing.assert_allclose(lr[:start], short.plateau, rtol=1e-12)
    assert np.all(lr[start:] <= short.plateau * (1 + 1e-12))
    model = Model.powerlaw(1.5, 2.5, 30, noise_std=0.3)
    assert report["final_loss"] == pytest.approx(loss_curve(model, lr).final_loss, rel=1e-9)


def test_with_a_warmup_the_ramp_ends_at_the_plateau(tmp_path):
    from schedopt.design import design

    problem = parse_problem(FITTED).with_control(
        "learning_rate", max=0.6
    )  # above the plateau the model wants
    result = design(problem, baselines=(), warmup=10, form="plateau-anneal")
    lr = np.asarray(result.schedule().learning_rate)
    plateau = result.form["plateau_model_learning_rate"]
    assert plateau < 0.6
    np.testing.assert_allclose(lr[9], plateau, rtol=1e-12)  # the ramp's last step
    assert np.all(np.diff(lr[:10]) > 0) and lr.max() == pytest.approx(plateau, rel=1e-12)


def test_a_fitted_spec_remembers_the_pilots_warmup_and_design_uses_it(tmp_path):
    import json

    from typer.testing import CliRunner

    from schedopt.cli import app
    from schedopt.spec import dump_problem

    with_warmup = FITTED.replace("loss_offset = 1.0", "loss_offset = 1.0\npilot_warmup = 12")
    problem = parse_problem(with_warmup)
    assert problem.network.pilot_warmup == 12
    assert parse_problem(dump_problem(problem)).network.pilot_warmup == 12  # written back as it was read
    spec = tmp_path / "fitted.toml"
    spec.write_text(with_warmup)
    for extra, steps in (([], 12), (["--warmup", "0"], None), (["--warmup", "5"], 5)):
        out = tmp_path / f"out{len(extra)}{steps}"
        args = ["design", str(spec), "--no-baselines", "--json", "--out", str(out), *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        warmup = json.loads(result.output)["warmup"]
        assert (warmup is None) if steps is None else (warmup["steps"] == steps), warmup


@pytest.mark.parametrize("bad", ["-1", "2.5", "1e9"])
def test_a_bad_pilot_warmup_names_the_key(bad):
    from schedopt.errors import SpecError

    with pytest.raises(SpecError, match=r"network\.pilot_warmup"):
        parse_problem(FITTED.replace("loss_offset = 1.0", f"loss_offset = 1.0\npilot_warmup = {bad}"))


@pytest.mark.parametrize("bad", ["-1e-3", '"high"', "nan"])
def test_a_bad_bracket_names_the_key(bad):
    from schedopt.errors import SpecError

    with pytest.raises(SpecError, match=r"network\.bracketed_above"):
        parse_problem(FITTED.replace("loss_offset = 1.0", f"loss_offset = 1.0\nbracketed_above = {bad}"))


@pytest.mark.parametrize("bad", ["-1e-3", '"high"', "inf"])
def test_a_bad_top_pilot_ahead_names_the_key(bad):
    from schedopt.errors import SpecError

    with pytest.raises(SpecError, match=r"network\.top_pilot_ahead"):
        parse_problem(FITTED.replace("loss_offset = 1.0", f"loss_offset = 1.0\ntop_pilot_ahead = {bad}"))


@pytest.mark.parametrize("bad", ["-1", "2.5", "1e9"])
def test_a_bad_pilot_horizon_names_the_key(bad):
    from schedopt.errors import SpecError

    with pytest.raises(SpecError, match=r"network\.pilot_horizon"):
        parse_problem(FITTED.replace("loss_offset = 1.0", f"loss_offset = 1.0\npilot_horizon = {bad}"))


def test_a_fitted_design_quotes_what_such_predictions_measured_on_real_networks(tmp_path):
    """A spec that knows its pilots' horizon (120): designed at 240, 2x past them, the report carries the errors
    measured on the real tasks at the nearest extrapolation at least as far, and the text says so; a spec
    without it claims nothing."""
    import json

    from typer.testing import CliRunner

    from schedopt.calibration.evidence import prediction_evidence
    from schedopt.cli import app
    from schedopt.spec import dump_problem

    known = FITTED.replace("loss_offset = 1.0", "loss_offset = 1.0\npilot_horizon = 120")
    assert parse_problem(dump_problem(parse_problem(known))).network.pilot_horizon == 120
    for text, expected in ((known, prediction_evidence(2.0)), (FITTED, None)):
        spec = tmp_path / "fitted.toml"
        spec.write_text(text)
        out = tmp_path / f"out{expected is None}"
        args = ["design", str(spec), "--horizon", "240", "--no-baselines", "--out", str(out)]
        result = CliRunner().invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["network"]["prediction_evidence"] == expected
        shown = CliRunner().invoke(app, [*args[:-1], str(out) + "-text"])
        assert shown.exit_code == 0, shown.output
        assert ("point estimate at 2x the longest pilot's length" in shown.output) == (expected is not None)
    assert expected is None


def test_a_plateau_at_the_cap_is_said_in_network_units(tmp_path):
    """The fitted spec's model wants a higher rate than its cap: the design says the pilots stopped short."""
    from typer.testing import CliRunner

    from schedopt.cli import app

    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED.replace("max = 0.3", "max = 0.05"))  # far below this model's best plateau
    choice = plateau_anneal(parse_problem(spec.read_text()))
    assert choice.plateau == pytest.approx(0.05) and len(choice.notes) == 1
    assert "largest pilot's 0.0008333" in choice.notes[0] and "0.001667" in choice.notes[0]
    assert "--above one higher" in choice.notes[0]  # the command that writes that pilot
    result = CliRunner().invoke(app, ["design", str(spec), "--no-baselines", "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "warning: the plateau sits at the learning-rate cap" in result.output


def test_a_plateau_chosen_at_the_cap_is_said_when_the_phase_rule_carries_it_below():
    """Easy phase (a > b): a plateau chosen at the cap at the pilots' horizon is carried by the phase rule to
    a lower rate at a longer horizon. The note that the pilots stopped short still comes, with either anneal
    (a held-out task's design sat there, 2.8x tuned WSD's peak, and said nothing)."""
    easy = (
        FITTED.replace("a = 1.5", "a = 2.5").replace("b = 2.5", "b = 1.5").replace("max = 0.3", "max = 0.05")
    )
    problem = parse_problem(easy).with_horizon(240)
    choice = plateau_anneal(problem, peak_horizon=120, plateau_tolerance=0.003)
    assert choice.plateau < 0.05 * (1 - 1e-3)  # below the cap at this horizon
    assert len(choice.notes) == 1 and "the plateau sits at the learning-rate cap" in choice.notes[0]
    wide = parse_problem(easy.replace("max = 0.05", "max = 0.9")).with_horizon(240)
    assert plateau_anneal(wide, peak_horizon=120, plateau_tolerance=0.003).notes == ()  # best below the cap
    modelled = plateau_anneal(problem, peak_horizon=120, anneal="model")  # the model-shaped anneal alike
    assert modelled.plateau < 0.05 * (1 - 1e-3)
    assert len(modelled.notes) == 1 and "the plateau sits at the learning-rate cap" in modelled.notes[0]


def test_a_plateau_tolerance_that_reaches_the_cap_is_said():
    """This model's best plateau is ~0.45. With the cap at 0.39 and a tolerance the plateau is the
    centre of the levels it cannot tell apart, below the cap; the cap is among them, so the design
    says the pilots do not bracket the best peak (a held-out task's design sat there silently). With
    the cap well above the best, no note; without a tolerance the plateau is the cap, said as before."""
    below = parse_problem(FITTED.replace("max = 0.3", "max = 0.39"))
    choice = plateau_anneal(below, plateau_tolerance=0.003)
    assert choice.plateau < 0.39 * (1 - 1e-3) and len(choice.notes) == 1
    assert "within 0.30% of the one chosen" in choice.notes[0] and "largest pilot's" in choice.notes[0]
    at_cap = plateau_anneal(below, plateau_tolerance=0.0)
    assert at_cap.plateau == pytest.approx(0.39) and "sits at the learning-rate cap" in at_cap.notes[0]
    above = plateau_anneal(parse_problem(FITTED.replace("max = 0.3", "max = 0.9")), plateau_tolerance=0.003)
    assert 0.3 < above.plateau < 0.6 and above.notes == ()


def _scan_best(problem, shape, levels):
    """The lowest model final loss of ``level * shape`` over a dense grid of levels (brute force)."""
    return min(float(final_loss(problem.model, lv * shape)) for lv in levels)


def test_a_fitted_network_gets_a_1_sqrt_anneal_from_the_plateau_the_model_prefers():
    """``auto`` on a fitted spec: WSD's 1-sqrt cooldown over the last fifth, from the model's best plateau
    for that profile; a brute-force scan of plateaus finds none that ends lower."""
    from schedopt.baselines import baseline_schedule

    problem = parse_problem(FITTED)
    choice = plateau_anneal(problem)
    assert choice.anneal == "1-sqrt" and choice.solution.solver == "fixed" and choice.solution.converged
    assert choice.prefix is None  # at the spec's own horizon the solution covers every step
    lr = np.asarray(choice.solution.per_step("learning_rate"))
    wsd = baseline_schedule("wsd_sqrt", {"peak": choice.plateau, "cooldown_fraction": 0.2}, problem.horizon)
    np.testing.assert_allclose(lr, wsd, rtol=1e-12)
    assert choice.solution.final_loss == pytest.approx(float(final_loss(problem.model, lr)), rel=1e-12)
    shape = wsd / choice.plateau
    cap = problem.learning_rate.max
    assert choice.solution.final_loss <= _scan_best(problem, shape, np.geomspace(cap / 50, cap, 400)) * (
        1 + 1e-9
    )
    assert choice.to_dict()["anneal"] == "1-sqrt"


def test_the_1_sqrt_profile_is_the_networks_under_a_power_law_map():
    """With a learning-rate exponent the model's rates are a power of the network's: the profile the
    network runs is 1-sqrt, so the model's is (1-sqrt)**p."""
    from schedopt.baselines import baseline_schedule

    spec = FITTED.replace(
        "loss_offset = 1.0", "loss_offset = 1.0\nlearning_rate_exponent = 0.5\nlearning_rate_reference = 0.01"
    )
    problem = parse_problem(spec)
    choice = plateau_anneal(problem)
    model_lr = np.asarray(choice.solution.per_step("learning_rate"))
    network = problem.network.network_learning_rate(model_lr)
    peak = float(network[0])
    wsd = baseline_schedule("wsd_sqrt", {"peak": peak, "cooldown_fraction": 0.2}, problem.horizon)
    np.testing.assert_allclose(network, wsd, rtol=1e-9, atol=1e-15)


def test_with_a_warmup_the_1_sqrt_anneal_spans_a_fifth_of_the_whole_run():
    from schedopt.baselines import baseline_schedule
    from schedopt.design import design

    problem = parse_problem(FITTED).with_control("learning_rate", max=0.6)
    result = design(problem, baselines=(), warmup=20, form="plateau-anneal")
    lr = np.asarray(result.schedule().learning_rate)
    plateau = result.form["plateau_model_learning_rate"]
    wsd = baseline_schedule("wsd_sqrt", {"peak": plateau, "cooldown_fraction": 0.2}, problem.horizon)
    np.testing.assert_allclose(lr[20:], wsd[20:], rtol=1e-12)  # the anneal starts at 0.8 T, not 0.8 (T - 20)
    assert lr[19] == pytest.approx(plateau, rel=1e-12) and np.all(np.diff(lr[:20]) > 0)
    assert result.form["anneal"] == "1-sqrt" and result.form["anneal_fraction"] == 0.2


def test_the_model_anneal_is_still_there_when_asked_for():
    choice = plateau_anneal(parse_problem(FITTED), anneal="model")
    assert choice.anneal == "model" and choice.solution.solver == "jax"
    sqrt = plateau_anneal(parse_problem(FITTED), anneal="1-sqrt")
    assert choice.solution.final_loss <= sqrt.solution.final_loss * (1 + 1e-9)  # the model's own optimum


def test_a_model_problem_solves_its_anneal_by_default(hard_problem):
    assert plateau_anneal(hard_problem, blocks=6).anneal == "model"


def test_a_bad_anneal_is_refused_naming_the_option(tmp_path):
    from typer.testing import CliRunner

    from schedopt.cli import app
    from schedopt.design import design

    with pytest.raises(ProblemError, match="--anneal"):
        plateau_anneal(parse_problem(FITTED), anneal="cosine")
    with pytest.raises(ProblemError, match="plateau-anneal form"):
        design(parse_problem(FITTED), baselines=(), form="free", anneal="1-sqrt")
    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED)
    result = CliRunner().invoke(
        app, ["design", str(spec), "--no-baselines", "--anneal", "cosine", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "--anneal" in result.output and "cosine" in result.output


def test_a_fitted_design_with_warmup_baselines_and_a_pinned_plateau_writes_every_file(tmp_path):
    """The path a practitioner takes (fitted spec, its pilots' warmup, a longer horizon, the baselines,
    the plot): the baselines share the warmup ramp only, not the design's pinned plateau."""
    import json

    from typer.testing import CliRunner

    from schedopt.cli import app

    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED.replace("loss_offset = 1.0", "loss_offset = 1.0\npilot_warmup = 12"))
    out = tmp_path / "long"
    args = ["design", str(spec), "--horizon", "240", "--json", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    warmup = report["warmup"]
    assert warmup["ramp_steps"] == 12 and warmup["steps"] > 12 and warmup["shape"] == "linear+plateau"
    assert report["baselines"] and sorted(report["files"]) == [
        "plot",
        "report",
        "schedule_csv",
        "schedule_json",
    ]
    assert (out / "design.svg").stat().st_size > 0
    text = CliRunner().invoke(app, ["design", str(spec), "--horizon", "240", "--out", str(tmp_path / "text")])
    assert text.exit_code == 0, text.output
    assert "designed" in text.output and "the first 12 steps ramp (linear)" in text.output


def test_the_ranking_note_names_a_baseline_the_model_prefers_by_more_than_its_tolerance():
    import dataclasses

    from schedopt.design import RANKING_NOTE_RTOL, design

    result = design(parse_problem(FITTED).with_horizon(240), baselines=("wsd_sqrt",), peak_horizon=120)
    assert result.form["plateau_chosen_at_horizon"] == 120
    own = result.solution.final_loss
    tuned = result.baselines["wsd_sqrt"]

    def with_baseline_at(loss):
        changed = dataclasses.replace(tuned, final_loss=loss)
        return dataclasses.replace(result, baselines={"wsd_sqrt": changed}).notes

    assert not any("ranks" in n for n in with_baseline_at(own * (1 - 0.5 * RANKING_NOTE_RTOL)))
    noted = [n for n in with_baseline_at(own * 0.98) if "ranks" in n]
    assert len(noted) == 1 and "wsd_sqrt 2.0%" in noted[0] and "1-sqrt anneal over the last 20%" in noted[0]


def _network_losses(problem, shape, levels):
    """The network's final loss of ``level * shape`` for each level (brute force, one recursion each)."""
    return np.array(
        [problem.network.network_loss(float(final_loss(problem.model, lv * shape))) for lv in levels]
    )


@pytest.mark.parametrize("tolerance", [0.002, 0.01])
def test_a_plateau_tolerance_takes_the_centre_of_the_levels_the_model_cannot_tell_apart(tolerance):
    """With a tolerance the plateau is the geometric centre of the contiguous levels whose network
    loss is within it of the best (checked by a brute-force scan on the same levels); it ends
    within the tolerance of the minimum, and a wider tolerance widens the interval around it."""
    from schedopt.baselines import baseline_schedule
    from schedopt.calibration.form import sqrt_plateau

    problem = parse_problem(FITTED)
    cap = problem.learning_rate.max
    shape = baseline_schedule("wsd_sqrt", {"peak": 1.0, "cooldown_fraction": 0.2}, problem.horizon)
    levels = cap * 2.0 ** (-np.arange(0, 161) / 16)
    losses = _network_losses(problem, shape, levels)
    inside = np.flatnonzero(losses <= losses.min() * (1 + tolerance))
    assert np.all(np.diff(inside) == 1)  # one contiguous run here
    expected = float(np.sqrt(levels[inside[0]] * levels[inside[-1]]))
    level = sqrt_plateau(problem, 0.2, tolerance)
    assert level == pytest.approx(expected, rel=1e-9)
    assert _network_losses(problem, shape, [level])[0] <= losses.min() * (1 + tolerance)
    assert sqrt_plateau(problem, 0.2) == sqrt_plateau(problem, 0.2, 0.0)  # 0: the minimum, as before
    choice = plateau_anneal(problem, plateau_tolerance=tolerance)
    assert choice.plateau == pytest.approx(level, rel=1e-12)
    assert choice.to_dict()["plateau_tolerance"] == tolerance


@pytest.mark.parametrize("bad", [-0.01, 0.2, float("nan"), True, "0.01"])
def test_a_bad_plateau_tolerance_is_refused_naming_the_option(bad, tmp_path):
    from schedopt.design import design

    with pytest.raises(ProblemError, match="--plateau-tolerance"):
        design(parse_problem(FITTED), baselines=(), plateau_tolerance=bad)


def test_the_cli_passes_the_plateau_tolerance(tmp_path):
    import json

    from typer.testing import CliRunner

    from schedopt.cli import app

    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED)
    args = ["design", str(spec), "--no-baselines", "--json", "--plateau-tolerance", "0.01"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["form"]["plateau_tolerance"] == 0.01
    bad = CliRunner().invoke(app, [*args[:-1], "0.5", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "--plateau-tolerance" in bad.output and not (tmp_path / "b").exists()


def test_a_fit_without_a_learning_rate_response_puts_the_plateau_at_the_cap_and_says_why():
    """A learning-rate exponent on the fit's lower bound: the model cannot rank plateaus, so the design
    holds the cap (which `schedopt fit` then sets to the longest pilot's rate); with the exponent above
    the bound the model chooses, here below the cap."""
    from schedopt.calibration._model import MIN_LEARNING_RATE_EXPONENT
    from schedopt.calibration.form import sqrt_plateau

    cap = 0.3
    flat = FITTED + f"learning_rate_exponent = {MIN_LEARNING_RATE_EXPONENT}\nlearning_rate_reference = 0.01\n"
    graded = FITTED + "learning_rate_exponent = 0.5\nlearning_rate_reference = 0.01\n"
    assert sqrt_plateau(parse_problem(flat), 0.2, tolerance=0.003) == cap
    assert sqrt_plateau(parse_problem(graded), 0.2, tolerance=0.003) < cap
    choice = plateau_anneal(parse_problem(flat), plateau_tolerance=0.003)
    assert choice.plateau == pytest.approx(cap)
    assert any("no response of the loss to the learning rate" in note for note in choice.notes)


def test_a_cap_fit_lowered_below_the_largest_pilot_is_not_called_the_largest_pilots():
    """With a fitted map (exponent, reference = the largest pilot's rate) and the cap below that rate (seed
    twins that disagreed, a spike, --lr-cap), the note does not ask for a pilot above the cap; nor does it where
    a pilot at the cap or at twice it ended no lower than a lower one (``bracketed_above``)."""
    spec = FITTED.replace("learning_rate_scale = 60.0", "learning_rate_scale = 0.2").replace(
        "loss_offset = 1.0", "loss_offset = 1.0\nlearning_rate_exponent = 0.5\nlearning_rate_reference = 0.01"
    )  # the largest pilot's rate, 0.01, is the model's 0.2, below the model's best plateau (~0.45)
    lowered = plateau_anneal(parse_problem(spec.replace("max = 0.3", "max = 0.15")), plateau_tolerance=0.0)
    assert (
        len(lowered.notes) == 1
        and "0.005625, below the largest pilot's 0.01: fit lowered" in lowered.notes[0]
    )
    assert "would tell" not in lowered.notes[0]
    at_largest = plateau_anneal(parse_problem(spec.replace("max = 0.3", "max = 0.2")), plateau_tolerance=0.0)
    assert (
        len(at_largest.notes) == 1
        and "the largest pilot's 0.01: the pilots do not bracket" in at_largest.notes[0]
    )
    bracketed = spec.replace(
        "learning_rate_reference = 0.01", "learning_rate_reference = 0.01\nbracketed_above = 0.01"
    )
    at_bracket = plateau_anneal(
        parse_problem(bracketed.replace("max = 0.3", "max = 0.2")), plateau_tolerance=0.0
    )
    assert at_bracket.plateau == pytest.approx(0.2) and len(at_bracket.notes) == 1
    assert (
        "the largest pilot's 0.01; the pilot at 0.01 ended no lower than a pilot of its"
        in at_bracket.notes[0]
    )
    assert "the pilots bracket the best peak from above" in at_bracket.notes[0]
    assert "would tell" not in at_bracket.notes[0] and "--above" not in at_bracket.notes[0]
    # a pilot at twice the cap that ended no lower (it diverged, say: not fitted) brackets too; one further up not
    at_cap = bracketed.replace("max = 0.3", "max = 0.2")
    twice = at_cap.replace("bracketed_above = 0.01", "bracketed_above = 0.02")
    twice_notes = plateau_anneal(parse_problem(twice), plateau_tolerance=0.0).notes
    assert "the pilot at 0.02 ended no lower" in twice_notes[0] and "would tell" not in twice_notes[0]
    far = at_cap.replace("bracketed_above = 0.01", "bracketed_above = 0.04")
    assert "a pilot at 0.02 would tell" in plateau_anneal(parse_problem(far), plateau_tolerance=0.0).notes[0]
    # a bracket above a cap fit lowered: the lowered cap's note, as without it
    lowered_bracketed = plateau_anneal(parse_problem(bracketed.replace("max = 0.3", "max = 0.15")))
    assert "below the largest pilot's 0.01: fit lowered" in lowered_bracketed.notes[0]


def test_a_top_pilot_still_far_ahead_floors_the_plateau_at_its_rate_within_the_cap():
    """The model's best plateau (~0.45 in model units) lies below the cap (0.9). A fitted spec whose top pilot
    was still well ahead at the cap's network rate (``top_pilot_ahead``) puts the plateau at the cap, and the
    design says the plateau sits there; a top rate below the model's choice, or none, changes nothing."""
    spec = FITTED.replace("learning_rate_scale = 60.0", "learning_rate_scale = 0.2").replace(
        "loss_offset = 1.0", "loss_offset = 1.0\nlearning_rate_exponent = 0.5\nlearning_rate_reference = 0.01"
    )
    spec = spec.replace("max = 0.3", "max = 0.9")  # the model's 0.9 is the network's 0.01 * (0.9 / 0.2) ** 2
    free = plateau_anneal(parse_problem(spec), plateau_tolerance=0.0)
    assert 0.3 < free.plateau < 0.6
    ahead = f"learning_rate_reference = 0.01\ntop_pilot_ahead = {0.01 * 4.5**2!r}"
    floored = plateau_anneal(
        parse_problem(spec.replace("learning_rate_reference = 0.01", ahead)), plateau_tolerance=0.0
    )
    assert floored.plateau == pytest.approx(0.9, rel=1e-9)
    assert (
        "the plateau sits at the learning-rate cap (fit found the top pilot still well ahead"
        in floored.notes[0]
    )
    assert "a pilot at 0.405 would tell" in floored.notes[0]
    low = spec.replace(
        "learning_rate_reference = 0.01", "learning_rate_reference = 0.01\ntop_pilot_ahead = 0.01"
    )
    assert plateau_anneal(parse_problem(low), plateau_tolerance=0.0).plateau == pytest.approx(free.plateau)
