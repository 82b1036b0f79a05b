"""The design's hedge over the irreducible loss: a fitted spec's refit with the offset free (``[network.free_offset]``)
and ``design`` taking the larger of the two fits' plateaus."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from schedopt.calibration._problem import free_offset_problem
from schedopt.calibration.fit import FREE_OFFSET_PARAMETERS, fit_pilots
from schedopt.calibration.pilots import PilotRun
from schedopt.design import design
from schedopt.dynamics.recursion import loss_curve
from schedopt.errors import SpecError
from schedopt.problem import FreeOffsetFit, Model
from schedopt.spec import dump_problem, parse_problem

HORIZON, WARMUP, N_MODES = 240, 10, 120


def _wsd_pilot(peak: float, horizon: int) -> PilotRun:
    """A WSD pilot (linear warmup, 1-sqrt cooldown over the last fifth) of a model with no irreducible loss."""
    lr = np.full(horizon, peak)
    lr[:WARMUP] = peak * (np.arange(WARMUP) + 1) / WARMUP
    tail = horizon // 5
    lr[horizon - tail :] = peak * (1 - np.sqrt(np.arange(1, tail + 1) / tail))
    model = Model.powerlaw(
        1.8, 1.3, N_MODES, noise_std=0.5, initial_loss=1.0, null_modes=40, null_eigenvalue=0.3
    )
    loss = 0.1 + 2.0 * np.asarray(loss_curve(model, 10.0 * lr).loss)
    steps = np.unique(np.r_[0, np.linspace(0, horizon, 41).astype(int)])
    return PilotRun(f"wsd-{peak:g}-T{horizon}", lr, steps, loss[steps], "val_loss")


@pytest.fixture(scope="module")
def fits():
    """The same pilots fitted with the offset's floor (the default) and without it."""
    runs = [_wsd_pilot(4e-3, HORIZON), _wsd_pilot(1e-3, HORIZON // 3), _wsd_pilot(8e-3, HORIZON // 3)]
    floored = fit_pilots(runs, n_modes=N_MODES, holdout="none")
    free = fit_pilots(runs, n_modes=N_MODES, holdout="none", offset_floor=0.0)
    return floored, free


def _plateau(result) -> float:
    """A design's plateau in the network's units (the schedule's rate halfway through)."""
    rates = result.problem.network.network_learning_rate(np.asarray(result.schedule().learning_rate))
    return float(rates[rates.size // 2])


def _design(problem, horizon=2 * HORIZON):
    return design(
        problem.with_horizon(horizon),
        baselines=(),
        warmup=WARMUP,
        peak_horizon=problem.horizon,
        form="plateau-anneal",
    )


def _record(parameters) -> FreeOffsetFit:
    values = {k: parameters[k] for k in FREE_OFFSET_PARAMETERS}
    values["null_modes"] = round(values["null_modes"]) if values["null_modes"] >= 0.5 else 0
    return FreeOffsetFit(**values)


def test_the_refit_problem_shares_the_network_cap_and_everything_but_the_model(fits):
    floored, free = fits
    assert floored.problem.network.free_offset is not None, "the pilots do not identify the offset here"
    hedge = free_offset_problem(floored.problem)
    units, main = hedge.network, floored.problem.network
    assert units.loss_offset == pytest.approx(free.parameters["loss_offset"], rel=1e-9, abs=1e-12)
    assert units.free_offset is None and main.learning_rate_reference == units.learning_rate_reference
    assert units.network_learning_rate(hedge.learning_rate.max) == pytest.approx(
        main.network_learning_rate(floored.problem.learning_rate.max), rel=1e-9
    )
    assert hedge.horizon == floored.problem.horizon and hedge.model.n_modes == free.problem.model.n_modes
    # its curve is the free fit's own
    lr = np.full(HORIZON, 4e-3)
    from schedopt.calibration.fit import predict_network_loss

    np.testing.assert_allclose(
        predict_network_loss(hedge, lr), predict_network_loss(free.problem, lr), rtol=1e-9
    )
    assert free_offset_problem(free.problem) is None


def test_design_takes_the_larger_of_the_two_fits_plateaus_whichever_it_is(fits):
    floored, free = fits
    alone = {
        "floored": _plateau(
            _design(
                floored.problem.replace(
                    network=dataclasses.replace(floored.problem.network, free_offset=None)
                )
            )
        ),
        "free": _plateau(_design(free.problem)),
    }
    assert abs(np.log(alone["floored"] / alone["free"])) > 0.05, alone  # the two fits disagree: a test
    larger = max(alone.values())
    # the floored fit hedged by the free one, and the free fit hedged by the floored one: both take the larger
    swapped = free.problem.replace(
        network=dataclasses.replace(free.problem.network, free_offset=_record(floored.parameters))
    )
    for problem, other in ((floored.problem, "free"), (swapped, "floored")):
        result = _design(problem)
        hedge = result.form["offset_hedge"]
        mine = "floored" if other == "free" else "free"
        assert hedge["floored_plateau"] == pytest.approx(alone[mine], rel=1e-6)
        assert hedge["free_plateau"] == pytest.approx(alone[other], rel=1e-6)
        assert hedge["taken"] == ("free" if alone[other] > alone[mine] else "floored")
        assert _plateau(result) == pytest.approx(larger, rel=1e-6)
        # the warmup ramp ends at the plateau, and the anneal is WSD's 1-sqrt from it
        rates = np.asarray(result.schedule().learning_rate)
        assert rates[:WARMUP].max() <= rates[WARMUP] * (1 + 1e-9)


def test_a_plain_fitted_spec_designs_as_before_and_its_record_says_no_hedge(fits):
    floored, _ = fits
    plain = floored.problem.replace(network=dataclasses.replace(floored.problem.network, free_offset=None))
    result = _design(plain)
    assert result.form["offset_hedge"] is None


def test_the_refit_round_trips_through_a_spec_and_bad_values_name_their_key(fits):
    floored, _ = fits
    text = dump_problem(floored.problem)
    assert parse_problem(text).network.free_offset == floored.problem.network.free_offset
    table = text[text.index("[network.free_offset]") :]
    missing = text.replace(
        next(line for line in table.splitlines() if line.startswith("loss_scale")) + "\n", ""
    )
    with pytest.raises(SpecError, match=r"network\.free_offset.*loss_scale"):
        parse_problem(missing)
    bad = text.replace(next(line for line in table.splitlines() if line.startswith("a = ")), "a = -1.0")
    with pytest.raises(SpecError, match=r"network\.free_offset\.a.*-1"):
        parse_problem(bad)
    extra = text + "surprise = 1\n"
    with pytest.raises(SpecError, match=r"surprise"):
        parse_problem(extra)


def test_cli_fit_records_the_refit_and_design_says_when_it_takes_its_plateau(tmp_path, fits):
    import csv
    import json

    from typer.testing import CliRunner

    from schedopt.cli import app

    paths = []
    for run in (_wsd_pilot(4e-3, HORIZON), _wsd_pilot(1e-3, HORIZON // 3), _wsd_pilot(8e-3, HORIZON // 3)):
        losses = dict(zip(run.loss_steps.tolist(), run.losses.tolist(), strict=True))
        path = tmp_path / f"{run.name}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("step", "learning_rate", "val_loss"))
            for t in range(run.horizon + 1):
                writer.writerow((t, run.learning_rate[t] if t < run.horizon else "", losses.get(t, "")))
        paths.append(str(path))
    spec = tmp_path / "fitted.toml"
    fitted = CliRunner().invoke(app, ["fit", *paths, "--out-file", str(spec), "--n-modes", str(N_MODES)])
    assert fitted.exit_code == 0, fitted.output
    assert "refitted with the offset free" in fitted.output and "[network.free_offset]" in spec.read_text()
    args = ["design", str(spec), "--horizon", str(2 * HORIZON), "--warmup", str(WARMUP), "--no-baselines"]
    shown = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "d")])
    as_json = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "j"), "--json"])
    assert shown.exit_code == 0 and as_json.exit_code == 0, shown.output + as_json.output
    hedge = json.loads(as_json.output)["form"]["offset_hedge"]
    said = "the design takes the larger" in shown.output
    assert said == (hedge["taken"] == "free") and said == (hedge["free_plateau"] > hedge["floored_plateau"])
    peak = json.loads(as_json.output)["network"]["peak_learning_rate"]
    assert peak == pytest.approx(max(hedge["free_plateau"], hedge["floored_plateau"]), rel=1e-9)
    # the other way round (the free fit hedged by the floored one), the other branch is taken and said or not
    floored, free = fits
    swapped = free.problem.replace(
        network=dataclasses.replace(free.problem.network, free_offset=_record(floored.parameters))
    )
    other = tmp_path / "swapped.toml"
    other.write_text(dump_problem(swapped))
    args[1] = str(other)
    shown = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "d2")])
    as_json = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "j2"), "--json"])
    hedge_swapped = json.loads(as_json.output)["form"]["offset_hedge"]
    assert ("the design takes the larger" in shown.output) == (hedge_swapped["taken"] == "free") != said
