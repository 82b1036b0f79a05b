"""`schedopt fit`: pilot CSVs, recovery of known parameters, identifiability, network units."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from schedopt.calibration.fit import fit_pilots, learning_rate_cap, predict_network_loss
from schedopt.calibration.pilots import PilotRun, PilotWarning, read_pilot, read_pilots
from schedopt.cli import app
from schedopt.dynamics.recursion import loss_curve
from schedopt.errors import ExportError, FitError
from schedopt.export.optax import to_optax
from schedopt.problem import ControlSpec, Model, NetworkUnits, Problem, Training
from schedopt.schedule import Schedule, load_schedule, save_schedule
from schedopt.spec import parse_problem

TRUE = {
    "a": 2.0,
    "b": 1.4,
    "noise_std": 0.4,
    "loss_scale": 3.0,
    "loss_offset": 1.5,
    "learning_rate_scale": 40.0,
}
N_MODES = 150
HORIZON = 240
RATES = (1e-3, 3e-3, 6e-3)


def _curve(lr: np.ndarray, params=TRUE, n_modes=N_MODES) -> np.ndarray:
    model = Model.powerlaw(params["a"], params["b"], n_modes, noise_std=params["noise_std"], initial_loss=1.0)
    excess = np.asarray(loss_curve(model, params["learning_rate_scale"] * lr).loss)
    return params["loss_offset"] + params["loss_scale"] * excess


def _pilots(noise: float, seed: int = 0, rates=RATES, params=TRUE) -> list[PilotRun]:
    rng = np.random.default_rng(seed)
    steps = np.unique(np.r_[0, np.geomspace(1, HORIZON, 40).astype(int)])
    runs = []
    for lr in rates:
        rates_t = np.full(HORIZON, lr)
        loss = _curve(rates_t, params)[steps] * np.exp(noise * rng.standard_normal(steps.size))
        runs.append(PilotRun(f"lr{lr:g}", rates_t, steps, loss, "val_loss"))
    return runs


def _write_csv(path, rows, header=("step", "learning_rate", "train_loss", "val_loss")):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def noisy_fit():
    """Fit to curves of the model itself with 0.5% multiplicative measurement noise."""
    return fit_pilots(_pilots(noise=0.005), n_modes=N_MODES, terms=(), lr_cap="best")


def _slope(result) -> float:
    """Model learning rate per unit of network learning rate (a linear map)."""
    return float(result.problem.network.model_learning_rate(1.0))


# --- recovery


def test_fit_recovers_known_parameters_within_tolerance_and_error_bars(noisy_fit):
    tolerance = {"a": 0.15, "b": 0.2, "noise_std": 0.08, "loss_scale": 0.15, "loss_offset": 0.05}
    for name, tol in tolerance.items():
        got, true, std = noisy_fit.parameters[name], TRUE[name], noisy_fit.std_errors[name]
        assert abs(got - true) < tol, (name, got, true)
        assert abs(got - true) < 4 * std + 1e-9, (name, got, true, std)
    assert abs(_slope(noisy_fit) / TRUE["learning_rate_scale"] - 1) < 0.1
    assert noisy_fit.parameters["learning_rate_exponent"] == 1.0 and noisy_fit.parameters["null_modes"] == 0
    assert set(noisy_fit.fixed) == {"learning_rate_exponent", "null_eigenvalue", "null_modes"}
    assert all(noisy_fit.identified.values()) and noisy_fit.unidentified == ()
    assert noisy_fit.phase == "easy" and noisy_fit.phase_z > 3
    assert noisy_fit.fit_error["rms_error"] < 0.01  # the measurement noise is 0.5%


def test_holdout_prediction_of_the_last_pilot_is_close(noisy_fit):
    holdout = noisy_fit.holdout
    assert holdout["kind"] == "run" and holdout["held_out"] == "lr0.006"
    assert holdout["rms_error"] < 0.03


def test_noiseless_curves_are_fitted_exactly():
    runs = _pilots(noise=0.0, rates=(2e-3, 5e-3))
    result = fit_pilots(runs, n_modes=N_MODES, holdout="tail", terms=(), min_step=0)
    for name in TRUE:
        if name != "learning_rate_scale":
            assert result.parameters[name] == pytest.approx(TRUE[name], rel=1e-4), name
    assert _slope(result) == pytest.approx(TRUE["learning_rate_scale"], rel=1e-4)
    assert result.holdout["kind"] == "tail" and result.holdout["rms_error"] < 1e-5


def test_fitted_problem_predicts_the_pilots_and_round_trips_as_a_spec(noisy_fit):
    problem = parse_problem(noisy_fit.spec_text())
    assert problem.network.to_dict() == pytest.approx(noisy_fit.problem.network.to_dict(), rel=1e-15)
    assert problem.model.a == noisy_fit.parameters["a"]
    best = min(_pilots(noise=0.005), key=lambda r: r.losses[-1]).peak_learning_rate
    assert noisy_fit.learning_rate_cap["network"] == pytest.approx(best, rel=1e-12)
    cap = _slope(noisy_fit) * best
    assert problem.learning_rate.max == pytest.approx(cap, rel=1e-12)
    lr = np.full(HORIZON, RATES[1])
    assert np.max(np.abs(predict_network_loss(problem, lr) / _curve(lr) - 1)) < 0.02


def test_learning_rate_cap_rules():
    runs = _pilots(noise=0.0)
    finals = {r.peak_learning_rate: r.losses[-1] for r in runs}
    assert learning_rate_cap(runs, "best")[0] == min(finals, key=finals.get)
    assert learning_rate_cap(runs, "max") == (max(RATES), "largest pilot learning rate")
    assert learning_rate_cap(runs, 2e-3) == (2e-3, "given (--lr-cap)")
    for bad in ("biggest", -1.0, float("nan"), True):
        with pytest.raises(FitError, match="--lr-cap"):
            learning_rate_cap(runs, bad)


# --- identifiability


def test_a_single_learning_rate_is_an_error_unless_the_scale_is_fixed():
    runs = _pilots(noise=0.0, rates=(3e-3,))
    with pytest.raises(FitError, match=r"single learning rate 0\.003.*--lr-scale"):
        fit_pilots(runs, n_modes=N_MODES)
    result = fit_pilots(runs, n_modes=N_MODES, learning_rate_scale=40.0, holdout="none", terms=())
    assert result.fixed[:2] == ("learning_rate_scale", "learning_rate_exponent")
    assert result.parameters["learning_rate_scale"] == 40.0
    assert result.parameters["a"] == pytest.approx(TRUE["a"], rel=1e-3)


def test_what_the_pilots_cannot_show_is_flagged():
    # noiseless target and short runs at small learning rates: the noise never shows
    params = {**TRUE, "noise_std": 0.0}
    runs = _pilots(noise=0.002, rates=(1e-4, 2e-4), params=params)
    result = fit_pilots(runs, n_modes=N_MODES, holdout="none", terms=())
    assert "noise_std" in result.unidentified
    assert any("noise_std" in note for note in result.notes)
    assert "NOT identified" in result.spec_text()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_modes": 5}, "--n-modes"),
        ({"learning_rate_scale": -1.0}, "--lr-scale"),
        ({"holdout": "nope"}, "--holdout: 'nope' is not one of the pilots"),
        ({"offset_floor": -0.1}, r"--offset-floor: must be a number in \[0, 0\.95\], got -0\.1"),
        ({"offset_floor": 0.99}, "--offset-floor: .*got 0.99"),
        ({"offset_floor": float("nan")}, "--offset-floor: .*got nan"),
        ({"offset_floor": True}, "--offset-floor: .*got True"),
        ({"offset_floor": "0.5"}, "--offset-floor: .*got '0.5'"),
    ],
)
def test_bad_fit_options_name_the_option(kwargs, match):
    with pytest.raises(FitError, match=match):
        fit_pilots(_pilots(noise=0.0, rates=(1e-3, 2e-3)), **kwargs)


def test_the_offset_floor_bounds_the_irreducible_loss_and_says_so():
    # a target the model reaches with no irreducible loss: free, the fit finds ~0; floored, the offset
    # sits at floor x the smallest loss, and the fit says the pilots did not set it
    params = {**TRUE, "loss_offset": 0.0}
    runs = _pilots(noise=0.0, rates=(2e-3, 5e-3), params=params)
    smallest = min(float(r.losses[r.loss_steps >= 0].min()) for r in runs)
    free = fit_pilots(runs, n_modes=N_MODES, holdout="none", terms=(), min_step=0, offset_floor=0.0)
    assert free.parameters["loss_offset"] < 1e-3 * smallest and free.offset_floor == 0.0
    assert not any("offset floor" in n or "sits at its floor" in n for n in free.notes)
    floored = fit_pilots(runs, n_modes=N_MODES, holdout="none", terms=(), min_step=0, offset_floor=0.3)
    assert floored.parameters["loss_offset"] == pytest.approx(0.3 * smallest, rel=1e-3)
    assert "loss_offset" in floored.at_bound and "loss_offset" in floored.unidentified
    assert any("loss_offset sits at its floor, 0.3 x the smallest fitted loss" in n for n in floored.notes)
    assert floored.to_dict()["offset_floor"] == 0.3 and "offset floor: 0.3 x" in floored.spec_text()
    assert floored.fit_error["rms_error"] > free.fit_error["rms_error"]  # the floor costs fit here
    # the offset is not identified, so the pilots are fitted again without the floor: the same fit as `free`
    assert free.free_offset is None and free.problem.network.free_offset is None
    for name, value in free.parameters.items():
        assert floored.free_offset["parameters"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert floored.free_offset["rms_error"] == pytest.approx(free.fit_error["rms_error"], rel=1e-9)
    with pytest.raises(TypeError):
        floored.free_offset["parameters"]["loss_offset"] = 0.0  # a record, read-only all the way down
    record = floored.problem.network.free_offset
    assert record.loss_offset == pytest.approx(free.parameters["loss_offset"], rel=1e-9, abs=1e-12)
    assert record.learning_rate_scale == pytest.approx(free.parameters["learning_rate_scale"], rel=1e-9)
    assert any("refitted with the offset free" in line for line in floored.info)
    report = json.loads(json.dumps(floored.to_dict(), allow_nan=False))
    assert report["free_offset"]["parameters"]["loss_offset"] == record.loss_offset
    text = floored.spec_text()
    assert "[network.free_offset]" in text and "refitted with the offset free ([network.free_offset])" in text
    assert parse_problem(text).network.free_offset == record  # round trip, every field


def test_offset_floor_defaults_agree_between_library_and_cli():
    import inspect

    from schedopt.calibration.fit import OFFSET_FLOOR
    from schedopt.cli.calibration import fit as fit_command

    assert inspect.signature(fit_pilots).parameters["offset_floor"].default == OFFSET_FLOOR
    assert inspect.signature(fit_command).parameters["offset_floor"].default == OFFSET_FLOOR


# --- pilot files


def _good_rows(n=20, lr=1e-3):
    return [
        [t, lr if t < n else "", 5.0 / (1 + t), 5.0 / (1 + t) if t % 2 == 0 else ""] for t in range(n + 1)
    ]


def test_read_pilot_follows_the_model_convention(tmp_path):
    run = read_pilot(_write_csv(tmp_path / "p.csv", _good_rows()))
    assert run.horizon == 20 and run.loss_column == "val_loss"
    assert run.loss_steps.tolist() == list(range(0, 21, 2))
    assert run.losses[1] == pytest.approx(5.0 / 3)
    # too few val_loss points: fall back to train_loss, and say so
    rows = [[t, 1e-3 if t < 8 else "", 1.0 / (1 + t), 1.0 if t == 0 else ""] for t in range(9)]
    with pytest.warns(PilotWarning, match="val_loss has 1 value"):
        assert read_pilot(_write_csv(tmp_path / "q.csv", rows)).loss_column == "train_loss"


def _sparse_val_rows(n=20, lr=1e-3, every=10):
    """Train loss at every step, validation loss at every ``every``-th step (3 values for n = 20, every = 10)."""
    return [
        [t, lr if t < n else "", 5.0 / (1 + t), 4.0 / (1 + t) if t % every == 0 else ""] for t in range(n + 1)
    ]


def test_read_pilots_fits_every_pilot_on_one_loss_column(tmp_path):
    dense = _write_csv(tmp_path / "dense.csv", _good_rows())
    sparse = _write_csv(tmp_path / "sparse.csv", _sparse_val_rows(lr=2e-3))
    assert [r.loss_column for r in read_pilots([dense, dense])] == ["val_loss", "val_loss"]
    # one pilot's val_loss too sparse: every pilot moves to train_loss (not that one alone), with a warning
    with pytest.warns(
        PilotWarning, match=r"sparse\.csv: val_loss has 3 value\(s\), fewer than 5, so every pilot"
    ):
        runs = read_pilots([dense, sparse])
    assert [r.loss_column for r in runs] == ["train_loss", "train_loss"]
    assert runs[0].losses[1] == pytest.approx(5.0 / 2)  # the train loss at step 1, not the val loss
    # a named column is used for all, and its absence in one file is that file's error
    assert [r.loss_column for r in read_pilots([dense, sparse], loss_column="train_loss")] == [
        "train_loss"
    ] * 2
    no_train = _write_csv(
        tmp_path / "nt.csv", [[r[0], r[1], r[3]] for r in _good_rows()], ("step", "lr", "val_loss")
    )
    with pytest.raises(FitError, match=r"nt\.csv: missing loss column 'train_loss'"):
        read_pilots([dense, no_train], loss_column="train_loss")
    # no shared column with enough values: one error naming the file and the count
    sparse_only = _write_csv(
        tmp_path / "so.csv", [[r[0], r[1], r[3]] for r in _sparse_val_rows()], ("step", "lr", "val_loss")
    )
    with pytest.raises(FitError, match=r"so\.csv: val_loss: too few loss points \(3\)"):
        read_pilots([dense, sparse_only])
    only_loss = _write_csv(
        tmp_path / "ol.csv", [[r[0], r[1], r[2]] for r in _good_rows()], ("step", "lr", "loss")
    )
    with pytest.raises(FitError, match=r"share no loss column .*ol\.csv: loss"):
        read_pilots([sparse_only, only_loss])


def test_fit_refuses_pilots_read_from_different_loss_columns(tmp_path):
    dense = read_pilot(_write_csv(tmp_path / "dense.csv", _good_rows()))
    train = read_pilot(_write_csv(tmp_path / "train.csv", _good_rows(lr=2e-3)), loss_column="train_loss")
    with pytest.raises(
        FitError, match=r"different columns \(.*dense\.csv: val_loss; .*train\.csv: train_loss\)"
    ):
        fit_pilots([dense, train])


@pytest.mark.filterwarnings("default::schedopt.calibration.pilots.PilotWarning")  # shown, as in a shell
def test_cli_fit_says_which_loss_column_every_pilot_is_fitted_on(tmp_path):
    dense = _write_csv(tmp_path / "dense.csv", _good_rows())
    sparse = _write_csv(tmp_path / "sparse.csv", _sparse_val_rows(lr=2e-3))
    out = tmp_path / "f.toml"
    result = CliRunner().invoke(
        app, ["fit", str(dense), str(sparse), "--out-file", str(out), "--n-modes", "10"]
    )
    assert result.exit_code == 0 and out.exists(), result.output
    assert "warning: " + str(sparse) + ": val_loss has 3 value(s)" in result.output
    assert "train_loss points" in result.output  # the table says which loss was fitted


def test_read_pilot_holds_a_sparsely_logged_learning_rate(tmp_path):
    rows = [
        [0, 1e-3, 2.0, ""],
        [5, 2e-3, 1.5, ""],
        [10, 3e-3, 1.2, ""],
        [15, 3e-3, 1.0, ""],
        [20, "", 0.9, ""],
    ]
    with pytest.warns(UserWarning, match="logged at 4 of 20 steps"):
        run = read_pilot(_write_csv(tmp_path / "p.csv", rows), loss_column="train_loss")
    assert run.learning_rate.tolist() == [1e-3] * 5 + [2e-3] * 5 + [3e-3] * 10


_ROWS = "".join(f"{t},0.001,{5 / (1 + t)}\n" for t in range(1, 10))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("step,train_loss\n0,1.0\n", "missing column 'learning_rate'"),
        ("step,learning_rate,accuracy\n0,0.1,0.5\n", "missing a loss column"),
        ("step,learning_rate,train_loss\n0,0.001,nan\n" + _ROWS, "line 2: train_loss: NaN"),
        ("step,learning_rate,train_loss\n0,0.001,inf\n" + _ROWS, "line 2: train_loss: infinite"),
        (
            "step,learning_rate,train_loss\n0,0.001,1\n2,0.001,0.9\n1,0.001,0.8\n",
            "line 4: step: steps must increase",
        ),
        (
            "step,learning_rate,train_loss\n1,0.001,1\n2,0.001,0.9\n",
            "line 2: step: the first step is 1, must be 0 .*subtract 1",
        ),
        (
            "step,learning_rate,train_loss\n0,0.001,1\n1.5,0.001,0.9\n",
            "line 3: step: not a whole number: 1.5",
        ),
        ("step,lr,learning_rate,train_loss\n0,0.001,0.001,1\n", "learning_rate and lr: give one"),
        ("step,learning_rate,train_loss\n0,0.001,1\n1,0.001,0.9\n2,,0.8\n", "too few loss points"),
        ("step,learning_rate,train_loss\n0,-0.001,1\n" + _ROWS, "step 0: learning_rate: must be >= 0"),
        ("step,learning_rate,train_loss\n0,0.001,0\n" + _ROWS, "step 0: train_loss: must be positive"),
        ("step,learning_rate,train_loss\n0,0.001,abc\n" + _ROWS, "line 2: train_loss: not a number: 'abc'"),
        ("step,learning_rate,train_loss\n0,0.001\n", "line 2: expected 3 fields, got 2"),
        ("step,learning_rate,train_loss\n", "no rows after the header"),
        ("", "empty file"),
    ],
)
def test_bad_pilot_files_name_the_file_and_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FitError, match=match) as info:
        read_pilot(path)
    assert str(path) in str(info.value)


def test_a_missing_pilot_file_is_named(tmp_path):
    with pytest.raises(FitError, match="no such pilot file"):
        read_pilot(tmp_path / "nope.csv")


# --- network units in schedules and exports


def _fitted_schedule(kappa=40.0) -> Schedule:
    problem = Problem(
        name="n",
        model=Model.powerlaw(2.0, 1.4, 20, noise_std=0.3),
        training=Training(horizon=10),
        controls={"learning_rate": ControlSpec("learning_rate", 0.0, 0.2, blocks=5)},
        network=NetworkUnits(kappa, 2.0, 1.0),
    )
    eta = np.linspace(0.2, 0.02, 10)
    return Schedule(
        learning_rate=eta, provenance={"problem": problem.name, "network": problem.network.to_dict()}
    )


def test_exports_carry_the_network_learning_rate(tmp_path):
    schedule = _fitted_schedule()
    fn = to_optax(schedule)
    assert float(fn(jnp.asarray(0))) == pytest.approx(0.2 / 40.0, rel=1e-15)
    network = schedule.for_network()
    assert network.for_network() is network  # converting twice is a no-op
    assert network.network is None and network.provenance["network_units"]["learning_rate_scale"] == 40.0
    save_schedule(schedule, tmp_path / "s.csv")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    # the network's learning rate first (what a person trains with), the model's beside it; each
    # column's name says its unit, the same names as an export's (below)
    assert lines[0] == "step,network_learning_rate,model_learning_rate"
    assert lines[1] == f"0,{0.2 / 40.0!r},0.2"
    back = load_schedule(tmp_path / "s.csv")
    assert back.network.learning_rate_scale == pytest.approx(40.0, rel=1e-12)
    assert_allclose(back.learning_rate, schedule.learning_rate, rtol=1e-15)
    save_schedule(schedule, tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["units"] == {"learning_rate": "network", "model_learning_rate": "model"}
    assert_allclose(data["learning_rate"], schedule.learning_rate / 40.0, rtol=1e-15)
    assert data["model_learning_rate"] == schedule.learning_rate.tolist()
    back = load_schedule(tmp_path / "s.json")
    assert back.network == schedule.network and back.learning_rate.tolist() == schedule.learning_rate.tolist()
    # an export (network units, no map) says so in both formats
    save_schedule(network, tmp_path / "n.csv")
    assert (tmp_path / "n.csv").read_text().splitlines()[0] == "step,network_learning_rate"
    assert load_schedule(tmp_path / "n.csv").learning_rate_units == "network"
    save_schedule(network, tmp_path / "n.json")
    assert json.loads((tmp_path / "n.json").read_text())["units"] == {"learning_rate": "network"}


def test_legacy_and_network_only_csv_files_load(tmp_path):
    """Old fitted CSVs read as before: (model, network) and (network, model) with a bare
    ``learning_rate``; a network column alone is a network schedule, a model column alone a model one."""
    previous = tmp_path / "previous.csv"  # schedopt's fitted CSV before the columns were named by unit
    previous.write_text("step,learning_rate,model_learning_rate\n0,0.005,0.2\n1,0.0025,0.1\n")
    back = load_schedule(previous)
    assert back.learning_rate.tolist() == [0.2, 0.1]
    assert back.network.learning_rate_scale == pytest.approx(40.0, rel=1e-12)
    model = tmp_path / "model.csv"
    model.write_text("step,model_learning_rate\n0,0.2\n1,0.1\n")
    back = load_schedule(model)
    assert back.learning_rate.tolist() == [0.2, 0.1] and back.learning_rate_units == "model"
    assert back.network is None and back.to_csv().splitlines()[0] == "step,model_learning_rate"
    three = tmp_path / "three.csv"
    three.write_text("step,learning_rate,network_learning_rate,model_learning_rate\n0,0.2,0.005,0.2\n")
    with pytest.raises(ExportError, match="at most two learning-rate columns"):
        load_schedule(three)
    legacy = tmp_path / "legacy.csv"
    legacy.write_text("step,learning_rate,network_learning_rate\n0,0.2,0.005\n1,0.1,0.0025\n")
    back = load_schedule(legacy)
    assert back.learning_rate.tolist() == [0.2, 0.1] and back.network.learning_rate_scale == pytest.approx(
        40.0
    )
    only = tmp_path / "only.csv"
    only.write_text("step,network_learning_rate\n0,0.005\n1,0.0025\n")
    back = load_schedule(only)
    assert back.learning_rate.tolist() == [0.005, 0.0025] and back.learning_rate_units == "network"
    assert back.network is None


def test_a_hand_edited_network_column_is_refused(tmp_path):
    data = json.loads(_fitted_schedule().to_json())
    data["learning_rate"][3] *= 1.5
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ExportError, match=r"s.json: learning_rate: step 3 .* must agree"):
        load_schedule(path)


def test_an_inconsistent_network_column_is_refused(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("step,learning_rate,network_learning_rate\n0,0.2,0.005\n1,0.1,0.005\n")
    with pytest.raises(
        ExportError,
        match="network_learning_rate: must map to the model's learning rate by one positive scale",
    ):
        load_schedule(path)


def test_a_bad_network_map_in_a_schedule_file_is_named(tmp_path):
    data = json.loads(_fitted_schedule().to_json())
    data["provenance"]["network"]["learning_rate_scale"] = -2
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ExportError, match=r"s.json: provenance.network: .*learning_rate_scale"):
        load_schedule(path)


# --- CLI


def test_cli_fit_writes_a_spec_that_design_accepts(tmp_path):
    paths = []
    for run in _pilots(noise=0.0, rates=(2e-3, 5e-3)):
        rows = []
        losses = dict(zip(run.loss_steps.tolist(), run.losses.tolist(), strict=True))
        for t in range(HORIZON + 1):
            lr = run.learning_rate[t] if t < HORIZON else ""
            rows.append([t, lr, "", losses.get(t, "")])
        paths.append(_write_csv(tmp_path / f"{run.name}.csv", rows))
    out = tmp_path / "fitted.toml"
    result = CliRunner().invoke(
        app,
        [
            "fit",
            *map(str, paths),
            "--out-file",
            str(out),
            "--n-modes",
            str(N_MODES),
            "--terms",
            "none",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["parameters"]["a"] == pytest.approx(2.0, rel=1e-3)
    assert report["holdout"]["kind"] == "tail" and report["files"]["spec"] == str(out)
    design = CliRunner().invoke(
        app,
        ["design", str(out), "--horizon", "480", "--out", str(tmp_path / "d"), "--json", "--no-baselines"],
    )
    assert design.exit_code == 0, design.output
    net = json.loads(design.output)["network"]
    assert net["learning_rate_scale"] / net["learning_rate_reference"] == pytest.approx(40.0, rel=1e-3)
    assert net["peak_learning_rate"] <= 5e-3 * (1 + 1e-9)  # capped at the largest pilot learning rate
    assert net["pilot_horizon"] == HORIZON  # the longest pilot's: the design is 480 / HORIZON past it
    assert net["prediction_evidence"]["extrapolation"] == pytest.approx(480 / HORIZON)
    exported = load_schedule(tmp_path / "d" / "schedule.json").for_network()
    assert exported.learning_rate.max() == pytest.approx(net["peak_learning_rate"], rel=1e-12)


def test_cli_fit_bad_input_writes_nothing(tmp_path):
    path = _write_csv(tmp_path / "p.csv", _good_rows())
    out = tmp_path / "f.toml"
    result = CliRunner().invoke(app, ["fit", str(path), "--out-file", str(out)])
    assert result.exit_code == 2 and "single learning rate" in result.output and not out.exists()
    result = CliRunner().invoke(app, ["fit", str(path), "--out", str(tmp_path / "f.txt")])
    assert result.exit_code == 2 and "--out" in result.output
    other = _write_csv(tmp_path / "q.csv", _good_rows(lr=2e-3))
    result = CliRunner().invoke(
        app, ["fit", str(path), str(other), "--out-file", str(out), "--offset-floor", "1.5"]
    )
    assert result.exit_code == 2 and "--offset-floor" in result.output and "1.5" in result.output
    assert not out.exists()
    assert math.isfinite(read_pilot(path).losses.sum())


def test_design_and_export_csv_name_the_network_column_alike(tmp_path):
    """A fitted design's schedule.csv and every export of it call the network's learning rate
    ``network_learning_rate`` (and the model's ``model_learning_rate``), with the same values; each
    file reads back to the same schedule, and the exported CSV is accepted as input."""
    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED_SPEC)
    out = tmp_path / "d"
    design = CliRunner().invoke(app, ["design", str(spec), "--out", str(out), "--no-baselines", "--json"])
    assert design.exit_code == 0, design.output
    with (out / "schedule.csv").open() as f:
        designed = list(csv.DictReader(f))
    assert list(designed[0]) == ["step", "network_learning_rate", "model_learning_rate"]
    exported = {}
    for name in ("schedule.json", "schedule.csv"):
        target = tmp_path / f"{name}.export.csv"
        done = CliRunner().invoke(app, ["export", str(out / name), "--to", "csv", "--out-file", str(target)])
        assert done.exit_code == 0, done.output
        with target.open() as f:
            exported[name] = list(csv.DictReader(f))
        assert list(exported[name][0]) == ["step", "network_learning_rate"], name
        assert [r["network_learning_rate"] for r in exported[name]] == [
            r["network_learning_rate"] for r in designed
        ]
        back = load_schedule(target)
        assert back.learning_rate_units == "network"
        assert_allclose(back.learning_rate, load_schedule(out / "schedule.json").for_network().learning_rate)
    data = json.loads((out / "schedule.json").read_text())  # JSON labels its keys' units instead
    assert data["units"] == {"learning_rate": "network", "model_learning_rate": "model"}
    assert [repr(v) for v in data["learning_rate"]] == [r["network_learning_rate"] for r in designed]
    assert [repr(v) for v in data["model_learning_rate"]] == [r["model_learning_rate"] for r in designed]
    a, b = load_schedule(out / "schedule.json"), load_schedule(out / "schedule.csv")
    assert a.learning_rate.tolist() == b.learning_rate.tolist() and b.network.learning_rate_scale == (
        pytest.approx(40.0, rel=1e-12)
    )


@pytest.mark.parametrize("column", ["network_learning_rate", "lr"])
def test_a_pilot_log_may_name_its_column_network_learning_rate_or_lr(tmp_path, column):
    """A pilot's log is in the network's units; the exports' column name and ``lr`` are accepted for it."""
    rows = "".join(f"{t},0.01,{2.0 / (1 + t)}\n" for t in range(8))
    plain, named = tmp_path / "plain.csv", tmp_path / "named.csv"
    plain.write_text("step,learning_rate,train_loss\n" + rows)
    named.write_text(f"step,{column},train_loss\n" + rows)
    a, b = read_pilot(plain), read_pilot(named)
    assert a.learning_rate.tolist() == b.learning_rate.tolist() and a.losses.tolist() == b.losses.tolist()
    both = tmp_path / "both.csv"
    both.write_text(f"step,learning_rate,{column},train_loss\n0,0.01,0.01,1\n")
    with pytest.raises(FitError, match=f"learning_rate and {column}: give one learning-rate column"):
        read_pilot(both)


def test_cli_export_writes_the_network_learning_rate(tmp_path):
    src = tmp_path / "s.json"
    save_schedule(_fitted_schedule(), src)
    out = tmp_path / "net.json"
    result = CliRunner().invoke(app, ["export", str(src), "--to", "json", "--out-file", str(out)])
    assert result.exit_code == 0, result.output
    exported = load_schedule(out)
    assert exported.network is None
    np.testing.assert_allclose(exported.learning_rate, np.linspace(0.2, 0.02, 10) / 40.0, rtol=1e-15)
    assert float(to_optax(out)(jnp.asarray(0))) == pytest.approx(0.2 / 40.0, rel=1e-15)  # not scaled twice


# --- the terms for real networks: learning-rate exponent and null modes

#: null modes that cost a large rate 2.5 % at the pilots' end and never make the loss at a constant rate rise
TERMS_TRUE = {"learning_rate_exponent": 0.6, "null_eigenvalue": 0.01, "null_modes": 60}
#: five times as many: the loss at 6e-3 turns upward after update 104 (2.3 % by 240, 11 % by 960)
RISING_NULL_MODES = 300


def _terms_truth(reference: float, null_modes: int | None = None) -> tuple[Model, NetworkUnits]:
    """The full model (the terms included) and its map to network units."""
    model = Model.powerlaw(
        TRUE["a"],
        TRUE["b"],
        N_MODES,
        noise_std=TRUE["noise_std"],
        initial_loss=1.0,
        null_modes=TERMS_TRUE["null_modes"] if null_modes is None else null_modes,
        null_eigenvalue=TERMS_TRUE["null_eigenvalue"],
    )
    units = NetworkUnits(
        learning_rate_scale=0.2,
        loss_scale=TRUE["loss_scale"],
        loss_offset=TRUE["loss_offset"],
        learning_rate_exponent=TERMS_TRUE["learning_rate_exponent"],
        learning_rate_reference=reference,
    )
    return model, units


def _terms_curve(lr: np.ndarray, reference: float, null_modes: int | None = None) -> np.ndarray:
    model, units = _terms_truth(reference, null_modes)
    return units.network_loss(np.asarray(loss_curve(model, units.model_learning_rate(lr)).loss))


PEAKS = (1.5e-3, 3e-3, 6e-3)


def _terms_pilots(null_modes: int | None = None) -> list[PilotRun]:
    """Noiseless WSD pilots at three peaks from the full model."""
    steps = np.arange(0, HORIZON + 1, 6)
    runs = []
    for peak in PEAKS:
        lr = np.where(np.arange(HORIZON) < 0.8 * HORIZON, peak, peak * np.linspace(1, 0, HORIZON))
        loss = _terms_curve(lr, max(PEAKS), null_modes)[steps]
        runs.append(PilotRun(f"wsd{peak:g}", lr, steps, loss, "val_loss"))
    return runs


def test_exponent_and_null_modes_are_recovered_and_predict_a_longer_schedule():
    """Noiseless curves of the full model (WSD pilots at three peaks): the terms come back, and the fit
    predicts a cosine run twice as long at another peak."""
    peaks = PEAKS
    result = fit_pilots(_terms_pilots(), n_modes=N_MODES, holdout="none", min_step=0)
    assert result.terms == ("exponent", "null_modes")
    assert result.parameters["learning_rate_exponent"] == pytest.approx(0.6, abs=0.05)
    assert result.fit_error["rms_error"] < 1e-3
    long = 4e-3 * 0.5 * (1 + np.cos(np.pi * np.arange(2 * HORIZON) / (2 * HORIZON)))
    predicted = predict_network_loss(result.problem, long)[-1]
    assert predicted == pytest.approx(_terms_curve(long, max(peaks))[-1], rel=5e-3)
    back = parse_problem(result.spec_text())
    assert back.model.null_modes == result.problem.model.null_modes >= 1
    assert back.network.learning_rate_exponent == result.parameters["learning_rate_exponent"]


def test_a_fit_whose_loss_rises_at_a_constant_rate_is_refitted_without_the_null_modes():
    """Pilots from a model whose null modes fill faster than its signal drains (the loss at 6e-3 turns
    upward after update 104): fitted with the null modes, the model's loss at a constant pilot rate rises,
    which a network's does not, so the fit drops them, says so, and its loss no longer rises."""
    from schedopt.calibration._rising import RISE_TOLERANCE, rising_loss

    runs = _terms_pilots(RISING_NULL_MODES)
    result = fit_pilots(runs, n_modes=N_MODES, holdout="none", min_step=0)
    assert result.terms == ("exponent",)
    assert "null_modes" in result.fixed and result.problem.model.null_modes == 0
    (note,) = [n for n in result.notes if "null modes were dropped" in n]
    assert "turned upward after update" in note
    first = float(note.split("(")[1].split("%")[0]) / 100  # the null-mode fit's rise
    still = rising_loss(result.problem, runs, max(PEAKS))  # the pilots rise too: the refit follows them, less
    assert still is not None and still[1] < first
    assert any(f"{still[1]:.1%} higher" in n for n in result.notes)
    assert result.to_dict()["terms"] == ["exponent"]
    # the same pilots without the term asked for: nothing to drop, nothing said
    plain = fit_pilots(runs, n_modes=N_MODES, holdout="none", min_step=0, terms=("exponent",))
    assert not [n for n in plain.notes if "null modes" in n]
    assert plain.parameters == pytest.approx(dict(result.parameters))
    assert list(plain.notes) == [n for n in result.notes if "null modes were dropped" not in n]
    assert RISE_TOLERANCE < 0.01


def test_rising_loss_reports_the_rate_and_the_rise_of_the_curve_it_finds():
    """Against the curve computed directly: the rate whose constant-rate loss rises most, the update of
    its lowest point and the rise from there to the window's end; none for a model without null modes."""
    from schedopt.calibration._rising import RISE_WINDOW, rising_loss

    runs = _terms_pilots()
    model, units = _terms_truth(max(PEAKS), RISING_NULL_MODES)
    problem = Problem(
        name="rising",
        model=model,
        training=Training(horizon=HORIZON),
        controls={"learning_rate": ControlSpec("learning_rate", 0.0, 1.0)},
        network=units,
    )
    rate, rise, lowest, end = rising_loss(problem, runs, max(PEAKS))
    assert end == RISE_WINDOW * HORIZON and rate == max(PEAKS)
    curve = _terms_curve(np.full(end, rate), max(PEAKS), RISING_NULL_MODES)
    assert lowest == int(np.argmin(curve)) == 104
    assert rise == pytest.approx(curve[-1] / curve.min() - 1, rel=1e-9)
    # under a cap below the top rate only the lower rates are checked
    below = rising_loss(problem, runs, 3e-3)
    assert below is not None and below[0] == 3e-3 and below[1] < rise
    flat = Model.powerlaw(TRUE["a"], TRUE["b"], N_MODES, noise_std=TRUE["noise_std"], initial_loss=1.0)
    assert rising_loss(dataclasses.replace(problem, model=flat), runs, max(PEAKS)) is None


def test_smoke_fit_plot_draws_only_the_fitted_window(tmp_path, noisy_fit):
    from schedopt.plots import plot_fit

    path = plot_fit(noisy_fit, _pilots(noise=0.005), tmp_path / "fit.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_spiking_and_contradicting_pilots_are_named_in_the_notes():
    runs = _pilots(noise=0.0, rates=(1e-3, 3e-3))
    spiky = runs[1].losses.copy()
    spiky[-5] *= 2.0
    twin = PilotRun("twin", runs[0].learning_rate, runs[0].loss_steps, runs[0].losses * 1.2, "val_loss")
    bad = [runs[0], PilotRun("spiky", runs[1].learning_rate, runs[1].loss_steps, spiky, "val_loss"), twin]
    result = fit_pilots(bad, n_modes=N_MODES, holdout="none", terms=())
    notes = " | ".join(result.notes)
    step = int(runs[1].loss_steps[-5])
    assert "spiky: the loss spikes to" in notes and f"at step {step}" in notes
    assert "lr0.001 and twin: the same schedule with losses 17 % apart" in notes
    clean = fit_pilots(runs, n_modes=N_MODES, holdout="none", terms=())
    assert not any("spikes" in n or "contradict" in n for n in clean.notes)


def test_a_pilot_that_spiked_is_fitted_up_to_its_spike_and_one_that_diverged_early_not_at_all():
    """A spike is any loss above 1.5x the best so far, from the first step on (a pilot that diverged as its
    warmup ended was missed when only steps past twice the warmup counted). Its losses from the spike on are
    not fitted: the fit is the fit of the pilot cut there. With fewer than 5 losses before it, the pilot is not
    fitted at all, and says so; it still counts as a bracket from above (it ended far above the next rate)."""
    from schedopt.calibration._checks import _spike

    runs = _pilots(noise=0.0, rates=(1e-3, 3e-3, 6e-3))
    top = runs[-1]
    late = top.losses.copy()
    late[-5:] *= 3.0
    spiked = PilotRun("spiked", top.learning_rate, top.loss_steps, late, "val_loss")
    assert _spike(spiked)[0] == int(top.loss_steps[-5])
    cut = PilotRun("spiked", top.learning_rate, top.loss_steps[:-5], top.losses[:-5], "val_loss")
    result = fit_pilots([*runs[:2], spiked], n_modes=N_MODES, holdout="none", terms=())
    assert (
        result.parameters
        == fit_pilots([*runs[:2], cut], n_modes=N_MODES, holdout="none", terms=()).parameters
    )
    assert "its losses from there on are not fitted" in " | ".join(result.notes)
    early = top.losses.copy()
    early[3:] = early[2] * np.linspace(2.0, 20.0, early.size - 3)  # diverges at its fourth measurement
    diverged = PilotRun("diverged", top.learning_rate, top.loss_steps, early, "val_loss")
    assert _spike(diverged)[0] == int(top.loss_steps[3])
    result = fit_pilots([*runs[:2], diverged], n_modes=N_MODES, holdout="none", terms=())
    assert result.runs == ("lr0.001", "lr0.003")
    assert result.parameters == fit_pilots(runs[:2], n_modes=N_MODES, holdout="none", terms=()).parameters
    assert "diverged: too few loss points before its spike to fit; compared, not fitted" in result.info
    assert result.problem.network.bracketed_above == pytest.approx(6e-3)
    assert result.learning_rate_cap["network"] == pytest.approx(3e-3, rel=1e-9)


def _minibatch_pilot(name, peak, horizon, noise, seed, warmup=10):
    """A WSD pilot logging a noisy minibatch loss at every update: one curve times lognormal noise."""
    t = np.arange(horizon)
    decay = np.clip((t - 0.8 * horizon) / (0.2 * horizon), 0, 1)
    rates = np.where(t < warmup, peak * (t + 1) / warmup, peak * (1 - np.sqrt(decay)))
    steps = np.arange(horizon + 1)
    curve = 2.0 + 3.0 / (1 + steps / 30) - 0.3 * np.clip((steps - 0.8 * horizon) / (0.2 * horizon), 0, 1)
    noisy = curve * np.exp(noise * np.random.default_rng(seed).standard_normal(steps.size))
    return PilotRun(name, rates, steps, noisy, "train_loss"), curve


def test_a_loss_logged_at_every_update_is_read_as_a_curve_by_the_checks():
    """A minibatch loss at every update (15 % lognormal noise: single values 2.4x apart) neither spikes nor
    makes two seeds of one schedule contradict each other; its final loss is read to 1 % (the raw last value is
    off by more); a real divergence in it is still found where it starts; a pilot logged at the planned cadence
    is read as logged (``pilots.smoothed_losses``, ``DENSE_LOG``)."""
    from schedopt.calibration._checks import CONTRADICTION, _final_loss, _spike, _twins
    from schedopt.calibration.pilots import smoothed_losses

    pilot, curve = _minibatch_pilot("dense", 4e-3, 1200, 0.15, seed=0)
    raw_best = np.minimum.accumulate(pilot.losses)
    assert np.any(pilot.losses > 1.5 * raw_best)  # read value by value, this log "spikes"
    assert _spike(pilot) is None
    assert _final_loss(pilot) == pytest.approx(curve[-1], rel=0.01)
    assert abs(pilot.losses[-1] / curve[-1] - 1) > 0.01
    twin, _ = _minibatch_pilot("twin", 4e-3, 1200, 0.15, seed=1)
    assert np.median(np.abs(pilot.losses / twin.losses - 1)) > CONTRADICTION  # value by value, they would
    assert _twins([pilot, twin])[0][3] < CONTRADICTION / 2
    diverged = pilot.losses.copy()
    diverged[700:] *= 4.0
    spike = _spike(PilotRun("diverged", pilot.learning_rate, pilot.loss_steps, diverged, "train_loss"))
    assert spike is not None and spike[0] == 700
    long, long_curve = _minibatch_pilot("long", 4e-3, 40_000, 0.15, seed=2)  # medians every 31st value
    assert _spike(long) is None
    assert _final_loss(long) == pytest.approx(long_curve[-1], rel=0.01)
    assert smoothed_losses(long)[20_000] == pytest.approx(long_curve[20_000], rel=0.01)
    planned = pilot.loss_steps[::60]
    sparse = PilotRun("sparse", pilot.learning_rate, planned, pilot.losses[::60], "val_loss")
    assert smoothed_losses(sparse) is sparse.losses
    assert _final_loss(sparse) == sparse.losses[-1]


def test_a_noisy_loss_logged_sparsely_gets_a_note_and_one_logged_densely_or_averaged_does_not(tmp_path):
    """Single minibatch losses (15 % scatter) at 20 steps past the warmup pin a curve to about 3-4 %: ``fit`` says so and what to log
    instead. The same loss at every update (0.4 %), or an averaged one (0.3 % scatter) at 21 steps, do not."""
    from schedopt.calibration._checks import NOISY_LOG, _pilot_notes, _scatter

    dense, _ = _minibatch_pilot("dense", 4e-3, 1200, 0.15, seed=0)
    sparse = PilotRun("sparse", dense.learning_rate, dense.loss_steps[::60], dense.losses[::60], "train_loss")
    averaged, _ = _minibatch_pilot("averaged", 4e-3, 1200, 0.003, seed=0)
    averaged = PilotRun(
        "averaged", averaged.learning_rate, averaged.loss_steps[::60], averaged.losses[::60], "val_loss"
    )
    spread, n = _scatter(sparse)
    assert spread == pytest.approx(0.15, rel=0.5) and n == 20  # the values past twice the warmup
    assert (
        spread / math.sqrt(n) > NOISY_LOG > max(s / math.sqrt(k) for s, k in map(_scatter, (dense, averaged)))
    )
    noted = [note for note in _pilot_notes([sparse, dense, averaged]) if "scatter" in note]
    assert len(noted) == 1 and noted[0].startswith("sparse: its train_loss values scatter by")
    assert "log a loss averaged over more batches, or the training loss at every update" in noted[0]
    fit = fit_pilots([dense], n_modes=N_MODES, holdout="none", terms=())  # the scatter, beside the fit error
    assert fit.fit_error["scatter_by_run"] == {"dense": pytest.approx(_scatter(dense)[0])}
    assert fit.fit_error["rms_error"] == pytest.approx(0.15, rel=0.3)  # the fit error is the log's noise
    rows = [
        (t, dense.learning_rate[t] if t < dense.horizon else "", loss) for t, loss in enumerate(dense.losses)
    ]
    log = _write_csv(tmp_path / "dense.csv", rows, header=("step", "learning_rate", "train_loss"))
    said = CliRunner().invoke(
        app, ["fit", str(log), "--out-file", str(tmp_path / "f.toml"), "--holdout", "none"]
    )
    assert said.exit_code == 0, said.output
    assert "the pilots' losses scatter by" in " ".join(said.output.split())


def test_a_pilot_that_spiked_does_not_raise_the_designs_cap():
    """The cap is the largest learning rate the pilots showed to be safe: a pilot whose loss spiked did not."""
    from schedopt.calibration.fit import learning_rate_cap

    runs = _pilots(noise=0.0, rates=(1e-3, 3e-3))
    spiky = runs[1].losses.copy()
    spiky[-5] *= 2.0
    bad = [runs[0], PilotRun("spiky", runs[1].learning_rate, runs[1].loss_steps, spiky, "val_loss")]
    assert learning_rate_cap(runs) == (3e-3, "largest pilot learning rate")
    cap, rule = learning_rate_cap(bad)
    assert cap == 1e-3 and "did not spike" in rule
    result = fit_pilots(bad, n_modes=N_MODES, holdout="none", terms=())
    assert result.learning_rate_cap["network"] == pytest.approx(1e-3, rel=1e-9)
    assert "does not count toward the design's cap" in " | ".join(result.notes)


def test_a_pilot_name_with_a_newline_cannot_break_the_fitted_spec():
    runs = _pilots(noise=0.0, rates=(1e-3, 3e-3))
    odd = PilotRun(
        'evil\n[network]\nx = "1"', runs[0].learning_rate, runs[0].loss_steps, runs[0].losses, "val_loss"
    )
    result = fit_pilots([odd, runs[1]], n_modes=N_MODES, holdout="none", terms=())
    problem = parse_problem(result.spec_text())
    assert problem.network == result.problem.network
    assert "evil\\n[network]" in result.spec_text()


# --- simulate and compare on a fitted spec read and report the network's units

FITTED_SPEC = """\
schema_version = 1
name = "fitted-tiny"

[model]
kind = "powerlaw"
a = 2.0
b = 1.4
n_modes = 20
noise_std = 0.3

[training]
horizon = 40

[controls.learning_rate]
min = 0.0
max = 0.2
blocks = 5

[network]
learning_rate_scale = 40.0
loss_scale = 2.0
loss_offset = 1.0
"""


def test_compare_on_a_fitted_spec_says_where_its_losses_extrapolate(tmp_path):
    """``compare`` on a fitted spec: a schedule peaking above the fitted cap (network 0.2 / 40 = 0.005) is named,
    with its peak and the ratio; a horizon past the longest pilot's is noted; the table's title gives the horizon
    compared, not the spec's. Within the cap and the pilots' length, no note."""
    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED_SPEC + "pilot_horizon = 40\n")

    def schedule(name, peak, steps):
        path = tmp_path / f"{name}.csv"
        path.write_text("step,learning_rate\n" + "".join(f"{t},{peak}\n" for t in range(steps)))
        return str(path)

    def compare(*files):
        result = CliRunner().invoke(
            app, ["compare", str(spec), *files, "--out", str(tmp_path / "c"), "--force"]
        )
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    inside = compare(schedule("low", 0.004, 40))
    assert "T=40" in inside and "note:" not in inside
    both = compare(schedule("low80", 0.004, 80), schedule("high80", 0.01, 80))
    assert "T=80" in both
    assert "note: high80: its peak learning rate, 0.01, is x2 the fitted cap, 0.005" in both
    assert "low80: its peak" not in both
    assert "note: the horizon, 80, is x2 the longest pilot's (40)" in both
    report = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert report["horizon"] == 80 and len(report["notes"]) == 2
    simulated = CliRunner().invoke(app, ["simulate", str(spec), "-s", "constant:0.01", "--horizon", "80"])
    assert simulated.exit_code == 0, simulated.output
    said = " ".join(simulated.output.split())
    assert "note: constant:0.01: its peak learning rate, 0.01, is x2 the fitted cap" in said
    assert "note: the horizon, 80, is x2 the longest pilot's (40)" in said
    within = CliRunner().invoke(app, ["simulate", str(spec), "-s", "constant:0.004", "--json"])
    assert json.loads(within.output)["notes"] == []


def test_cli_simulate_on_a_fitted_spec_takes_and_reports_network_units(tmp_path):
    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED_SPEC)
    result = CliRunner().invoke(app, ["simulate", str(spec), "-s", "constant:0.003", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    model = Model.powerlaw(2.0, 1.4, 20, noise_std=0.3)
    expected = loss_curve(model, np.full(40, 0.003 * 40.0)).final_loss  # network 0.003 -> model 0.12
    assert report["model_final_loss"] == pytest.approx(expected, rel=1e-12)
    assert report["final_loss"] == pytest.approx(1.0 + 2.0 * expected, rel=1e-12)
    assert report["units"]["learning_rate"] == "network" and report["units"]["loss"] == "network"
    table = CliRunner().invoke(app, ["simulate", str(spec), "-s", "constant:0.003"])
    assert "network loss" in table.output and "read as the network's" in " ".join(table.output.split())


def test_cli_compare_on_a_fitted_spec_reads_each_files_units(tmp_path):
    """A designed (model units + map), an exported (network) and a bare CSV (network) file agree."""
    spec = tmp_path / "fitted.toml"
    spec.write_text(FITTED_SPEC)
    eta = np.linspace(0.2, 0.02, 40)
    fitted = Schedule(
        learning_rate=eta,
        provenance={"network": {"learning_rate_scale": 40.0, "loss_scale": 2.0, "loss_offset": 1.0}},
    )
    save_schedule(fitted, tmp_path / "designed.json")
    save_schedule(fitted.for_network(), tmp_path / "exported.csv")
    (tmp_path / "bare.csv").write_text(
        "step,learning_rate\n" + "".join(f"{t},{float(v)!r}\n" for t, v in enumerate(eta / 40.0))
    )
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(spec),
            *(str(tmp_path / n) for n in ("designed.json", "exported.csv", "bare.csv")),
            "--out",
            str(tmp_path / "cmp"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)["entries"]
    expected = loss_curve(Model.powerlaw(2.0, 1.4, 20, noise_std=0.3), eta).final_loss
    for entry in entries:
        assert entry["model_final_loss"] == pytest.approx(expected, rel=1e-12), entry["name"]
        assert entry["final_loss"] == pytest.approx(1.0 + 2.0 * expected, rel=1e-12)


def test_fit_status_is_schedopts_status_with_scipys_words_beside():
    from schedopt.status import Status

    result = fit_pilots(_pilots(noise=0.0, rates=(2e-3, 5e-3)), n_modes=N_MODES, terms=())
    assert result.status is Status.CONVERGED
    report = result.to_dict()
    assert report["status"] == "converged" and "satisfied" in report["message"]


def test_the_cli_fits_as_many_modes_as_the_library_and_the_real_task_benchmark():
    import inspect

    from schedopt.calibration.fit import FIT_MODES
    from schedopt.cli.calibration import fit

    assert inspect.signature(fit).parameters["n_modes"].default == FIT_MODES
    assert inspect.signature(fit_pilots).parameters["n_modes"].default == FIT_MODES


def test_a_bad_pilot_row_is_named_by_its_line_in_the_file_comments_counted(tmp_path):
    from schedopt.calibration.pilots import read_pilot

    path = tmp_path / "pilot.csv"
    path.write_text("# logged by my loop\nstep,learning_rate,loss\n0,0.1,2.0\n# eval\n1,0.1,x\n")
    with pytest.raises(FitError, match=r"pilot\.csv: line 5: loss"):
        read_pilot(path)


def test_standard_errors_hold_only_the_coordinates_the_data_leave_undetermined():
    """A Jacobian with a column of zeros (a parameter without effect) and two proportional columns (an exact
    trade-off): those get infinite standard errors, and so does every parameter that depends on one; the others'
    are the closed form ``s^2 (J_k^T J_k)^-1`` over the kept columns, whatever the columns' scales (1e-9 to 1e9).
    A determined Jacobian keeps every coordinate: the plain Gauss-Newton covariance."""
    from types import SimpleNamespace

    from schedopt.calibration._model import FIT_PARAMETERS
    from schedopt.calibration._solve import _determined, _uncertainties

    rng = np.random.default_rng(3)
    p = len(FIT_PARAMETERS)
    jacobian = rng.standard_normal((60, p)) * np.logspace(-9, 9, p)
    jacobian[:, 2] = 0.0  # no effect
    jacobian[:, 7] = 3.0 * jacobian[:, 6]  # an exact trade-off
    residuals = 1e-3 * rng.standard_normal(60)
    g = np.eye(p)
    g[4, 7] = 0.5  # parameter 4 depends on coordinate 7 too
    solve = SimpleNamespace(
        x=np.ones(p),
        jacobian=jacobian,
        residuals=residuals,
        objective=SimpleNamespace(parameters=lambda x: np.asarray(x), parameter_jacobian=lambda x: g),
    )
    keep = _determined(jacobian)
    assert 2 not in keep and len({6, 7} & set(keep)) == 1 and len(keep) == p - 2
    _, std, _ = _uncertainties(solve, fixed=())
    s2 = np.sum(residuals**2) / (60 - p)
    closed = np.sqrt(np.diag(s2 * np.linalg.inv(jacobian[:, keep].T @ jacobian[:, keep])))
    held = (set(range(p)) - set(keep)) | ({4} if 7 not in keep else set())
    for i in range(p):
        if i in held:
            assert std[i] == np.inf, i
        else:
            assert std[i] == pytest.approx(closed[keep.index(i)], rel=1e-6), i
    full = rng.standard_normal((60, p))
    assert _determined(full) == list(range(p))
    solve.jacobian, solve.objective.parameter_jacobian = full, lambda x: np.eye(p)
    _, std, _ = _uncertainties(solve, fixed=())
    assert std == pytest.approx(np.sqrt(np.diag(s2 * np.linalg.inv(full.T @ full))), rel=1e-9)


def test_the_phase_z_score_of_a_fit_without_standard_errors_is_undetermined():
    """A singular fit (every standard error infinite) cannot say how sure its phase is: not 'inf' sigma."""
    import math

    from schedopt.calibration._solve import _phase_z

    values = np.array([1.9, 5.4])
    assert math.isnan(_phase_z(values, np.full((9, 9), np.inf)))
    exact = np.zeros((9, 9))
    assert _phase_z(values, exact) == -math.inf  # a < b exactly: hard, signed like the finite case
    cov = np.diag([0.01, 0.01, *[1.0] * 7])
    assert _phase_z(values, cov) == pytest.approx((1.9 - 5.4) / math.sqrt(0.02))


def test_pilots_without_gradient_noise_are_told_the_plateau_will_sit_at_the_cap(noisy_fit):
    """Noise-free curves: the fit finds no noise, and the notes say what that does to the design."""
    quiet = {**TRUE, "noise_std": 0.0}
    result = fit_pilots(_pilots(noise=0.0, params=quiet), n_modes=N_MODES, terms=())
    assert result.parameters["noise_std"] < 1e-3
    [note] = [n for n in result.notes if "no gradient noise" in n]
    assert "likely to sit at the cap, 0.006 (largest pilot learning rate)" in note
    assert not [n for n in noisy_fit.notes if "gradient noise" in n]  # curves with the model's noise


def test_cli_holdout_line_says_where_the_held_out_pilots_rate_lies():
    from types import SimpleNamespace

    from schedopt.cli.calibration import _holdout_text

    pilots = [
        SimpleNamespace(name=n, peak_learning_rate=lr)
        for n, lr in (("g", 4e-3), ("lo", 1e-3), ("hi", 1.6e-2))
    ]
    run = {"kind": "run", "rms_error": 0.0731}
    assert _holdout_text({**run, "held_out": "hi"}, pilots) == (
        "holdout (hi, peak 0.016, x4 above the others' largest rate: an extrapolation in learning rate), "
        "predicted from the others: 7.31% RMS"
    )
    assert "x4 below the others' smallest rate" in _holdout_text({**run, "held_out": "lo"}, pilots)
    assert "within the others' rates" in _holdout_text({**run, "held_out": "g"}, pilots)
    tail = {"kind": "tail", "held_out": "last quarter of every pilot", "rms_error": 0.01}
    assert (
        _holdout_text(tail, pilots)
        == "holdout (last quarter of every pilot), predicted from the rest: 1.00% RMS"
    )


def test_pilots_without_a_learning_rate_response_cap_the_design_at_the_longest_pilots_rate():
    """Three pilots that end on one loss curve whatever their rate (16x apart), as pilots that all end on a
    loss plateau do: the exponent goes to its lower bound, and the cap to the long pilot's rate."""
    from schedopt.calibration._model import MIN_LEARNING_RATE_EXPONENT

    steps = np.arange(0, 481, 12)
    runs = []
    for lr, horizon in ((1e-3, 480), (2.5e-4, 160), (4e-3, 160)):
        at = steps[steps <= horizon]
        loss = 1.5 + 3.0 * (1.0 + at / 40.0) ** -0.4
        runs.append(PilotRun(f"lr{lr:g}", np.full(horizon, lr), at, loss, "val_loss"))
    result = fit_pilots(runs, n_modes=40, holdout="none")
    assert result.parameters["learning_rate_exponent"] == pytest.approx(MIN_LEARNING_RATE_EXPONENT, rel=1e-3)
    assert result.learning_rate_cap["network"] == pytest.approx(1e-3)  # the longest pilot's, not 4e-3
    assert "longest pilot" in result.learning_rate_cap["rule"]
    assert any("no response of the loss to the learning rate" in note for note in result.notes)
    graded = fit_pilots(_pilots(0.0), n_modes=40, holdout="none")  # a response: the largest rate caps
    assert graded.learning_rate_cap["network"] == pytest.approx(max(RATES))


def test_seeds_that_disagree_at_the_highest_rate_cap_the_design_between_it_and_the_next():
    """Twin pilots (one schedule, the twin a prefix) that disagree show training unstable at that rate: the
    cap falls to the geometric mean of it and the next lower pilot rate; at the lowest rate (nothing lower
    to compare with) the disagreement is only reported."""
    runs = _pilots(noise=0.0)
    top = runs[-1]
    n = HORIZON // 2
    early = top.loss_steps <= n
    stalled = PilotRun(
        "top-seed1", top.learning_rate[:n], top.loss_steps[early], top.losses[early] * 1.1, "val_loss"
    )
    agreeing = PilotRun(
        "top-seed2", top.learning_rate[:n], top.loss_steps[early], top.losses[early] * 1.01, "val_loss"
    )
    assert learning_rate_cap([*runs, agreeing]) == (6e-3, "largest pilot learning rate")
    cap, rule = learning_rate_cap([*runs, stalled])
    assert cap == pytest.approx(np.sqrt(3e-3 * 6e-3)) and "disagree" in rule
    result = fit_pilots([*runs, stalled], n_modes=N_MODES, holdout="none", terms=())
    assert result.learning_rate_cap["network"] == pytest.approx(np.sqrt(3e-3 * 6e-3), rel=1e-9)
    notes = " | ".join(result.notes)
    assert (
        f"lr0.006 and top-seed1: the same schedule over the first {n} updates with losses 9 % apart" in notes
    )
    assert "unstable at 0.006" in notes and "lowered to 0.004243" in notes
    assert result.info[0] == "top-seed1: the start of lr0.006's schedule, compared with it and not fitted"
    assert result.info[1].startswith("lr0.006 (peak 0.006) ended at")  # above lr0.003 at this constant rate
    assert "not fitted" not in notes  # information, not a warning
    assert result.to_dict()["info"] == list(result.info) and "#   info: top-seed1" in result.spec_text()
    assert result.runs == tuple(r.name for r in runs)  # the twin is not fitted
    alone = fit_pilots(runs, n_modes=N_MODES, holdout="none", terms=())
    assert result.parameters == alone.parameters
    low = runs[0]
    twin = PilotRun("low-seed1", low.learning_rate, low.loss_steps, low.losses * 1.1, "val_loss")
    assert learning_rate_cap([*runs, twin]) == (6e-3, "largest pilot learning rate")
    assert "contradict each other" in " | ".join(
        fit_pilots([*runs, twin], n_modes=N_MODES, holdout="none", terms=()).notes
    )


def test_a_top_pilot_still_far_ahead_of_the_next_says_the_best_peak_may_lie_above_the_cap():
    """The planned pilots (WSD after a warmup of 10): the long one at the guess, short ones at x 0.25 and x 4.
    At the last step both top pilots are still at their peak, the x 4 one 12 % below the guess's: the note
    names both, that step and a pilot at twice the top rate; 3 % ahead (seed noise) says nothing, and a twin
    (the top pilot's first half on another seed) does not speak for its rate."""
    from schedopt.calibration._checks import _pilot_notes, _top_pilot_lead

    def wsd(peak, horizon, warmup=10):
        t = np.arange(horizon)
        decay = np.clip((t - 0.8 * horizon) / (0.2 * horizon), 0, 1)
        return np.where(t < warmup, peak * (t + 1) / warmup, peak * (1 - np.sqrt(decay)))

    def pilot(name, peak, horizon, scale):
        steps = np.arange(0, horizon + 1, 20)
        return PilotRun(name, wsd(peak, horizon), steps, scale * (2.0 + 3.0 / (1 + steps / 30)), "val_loss")

    guess = pilot("guess", 2e-3, 600, 1.0)
    low = pilot("low", 5e-4, 200, 1.2)
    for scale, fires in ((0.88, True), (0.97, False)):
        top = pilot("top", 8e-3, 200, scale)
        assert _top_pilot_lead([guess, low, top])[2:] == (
            160,
            pytest.approx(1 - scale),
        )  # 160: cooldown start
        notes = " | ".join(_pilot_notes([guess, low, top]))
        assert ("top (peak 0.008) is 12% below guess (peak 0.002) at step 160" in notes) == fires
        assert ("a pilot at 0.016 would tell" in notes) == fires
    twin = PilotRun("twin", top.learning_rate[:100], top.loss_steps[:6], top.losses[:6] * 0.5, "val_loss")
    assert _top_pilot_lead([guess, low, top, twin])[0] is top


def _wsd_pilot(name, peak, horizon, scale, warmup=10):
    """A WSD pilot (20 % 1-sqrt cooldown after ``warmup``) whose losses are ``scale`` times one curve."""
    t = np.arange(horizon)
    decay = np.clip((t - 0.8 * horizon) / (0.2 * horizon), 0, 1)
    rates = np.where(t < warmup, peak * (t + 1) / warmup, peak * (1 - np.sqrt(decay)))
    steps = np.arange(0, horizon + 1, 20)
    return PilotRun(name, rates, steps, scale * (2.0 + 3.0 / (1 + steps / 30)), "val_loss")


def test_a_top_pilot_that_ends_no_lower_than_one_of_its_schedule_below_brackets_the_best_peak():
    """The planned pilots and one above (``--above 1``), 20 % ahead of the x 4 pilot at the cooldown's start
    but ending 1 % above it: the pilots bracket the best peak from above. ``_bracket_above`` names the pair (a tie
    counts); a lower end, another length or an unmeasured end does not; and the top-pilot note, which would ask
    for a pilot higher still, is not given."""
    from schedopt.calibration._checks import _bracket_above, _pilot_notes, _top_pilot_lead

    guess = _wsd_pilot("guess", 2e-3, 600, 1.0)
    low = _wsd_pilot("low", 5e-4, 200, 1.2)
    top = _wsd_pilot("top", 8e-3, 200, 0.88)
    losses = top.losses * 0.8
    losses[-1] = top.losses[-1] * 1.01
    above = PilotRun("above", 2 * top.learning_rate, top.loss_steps, losses, "val_loss")
    pilots = [guess, low, top, above]
    assert _top_pilot_lead(pilots)[3] == pytest.approx(0.2)  # the note's test alone would ask for 0.032
    assert _bracket_above(pilots) == (above, top)
    assert not any("would tell" in note for note in _pilot_notes(pilots))
    assert _bracket_above([guess, low, top]) is None  # x 4 ends below x 0.25 (and the guess is longer)
    tie = PilotRun("tie", above.learning_rate, top.loss_steps, top.losses, "val_loss")
    assert _bracket_above([guess, low, top, tie]) == (tie, top)
    ahead = PilotRun("ahead", above.learning_rate, top.loss_steps, top.losses * 0.99, "val_loss")
    assert _bracket_above([guess, low, top, ahead]) is None
    longer = _wsd_pilot("longer", 1.6e-2, 240, 0.9)
    assert _bracket_above([guess, low, top, longer]) is None  # another length: another schedule
    unmeasured = PilotRun("unmeasured", above.learning_rate, top.loss_steps[:-1], losses[:-1], "val_loss")
    assert _bracket_above([guess, low, top, unmeasured]) is None


def test_a_top_pilot_that_ends_behind_a_longer_one_caps_the_design_halfway_to_the_next_rate():
    """The plan's pilots with the x 4 pilot ending, after its anneal, 1 % above the guess pilot's loss at the same
    step (200) before the guess pilot's anneal: the higher rate did worse over 200 updates even with an anneal.
    The cap falls to the geometric mean of the top rate and the next lower pilot rate, and a note says why. It
    does not fire when the top pilot ends below that loss, when the longer pilot is already annealing at that
    step, or for a twin (a prefix of the top pilot's schedule)."""
    from schedopt.calibration._checks import _pilot_notes, _top_behind_longer
    from schedopt.calibration._problem import learning_rate_cap

    guess = _wsd_pilot("guess", 2e-3, 600, 1.0)  # constant until 480
    low = _wsd_pilot("low", 5e-4, 200, 1.2)
    top = _wsd_pilot("top", 8e-3, 200, 1.01)
    found = _top_behind_longer([guess, low, top])
    assert found[:2] == (top, guess)
    assert found[2] == pytest.approx(1.01 * found[3]) and found[4] == pytest.approx(4e-3)
    cap, why = learning_rate_cap([guess, low, top])
    assert cap == pytest.approx(4e-3) and why.startswith("halfway in log rate from 0.008")
    [note] = [n for n in _pilot_notes([guess, low, top]) if "after its anneal" in n]
    assert "no lower than guess (peak 0.002) at the same step (200)" in note and "at most 0.004" in note
    between = _wsd_pilot("between", 6e-3, 200, 1.05)  # the next lower rate sets the cap
    assert learning_rate_cap([guess, low, between, top])[0] == pytest.approx(math.sqrt(8e-3 * 6e-3))
    assert _top_behind_longer([guess, low, _wsd_pilot("top", 8e-3, 200, 0.99)]) is None  # ended below it
    annealing = _wsd_pilot("annealing", 2e-3, 240, 1.0)  # its cooldown starts at 192, before step 200
    assert _top_behind_longer([annealing, low, top]) is None
    twin = PilotRun("twin", top.learning_rate[:100], top.loss_steps[:6], top.losses[:6] * 2.0, "val_loss")
    assert _top_behind_longer([guess, low, _wsd_pilot("top", 8e-3, 200, 0.99), twin]) is None
    result = fit_pilots([guess, low, top], n_modes=N_MODES, holdout="none", terms=())
    assert result.learning_rate_cap["network"] == pytest.approx(4e-3, rel=1e-9)


def test_fit_records_a_top_pilot_still_far_ahead_in_the_spec_unless_another_rule_lowered_the_cap():
    """The x 4 pilot 12 % ahead of the guess pilot at their last common step at peak: the fitted spec records its
    rate (``top_pilot_ahead``, read back as written) and the note says the design's plateau is not put below
    it. Only 3 % ahead, or with the cap lowered below that rate (``--lr-cap``), nothing is recorded."""
    from schedopt.spec import dump_problem

    guess = _wsd_pilot("guess", 2e-3, 600, 1.0)
    low = _wsd_pilot("low", 5e-4, 200, 1.2)
    ahead = fit_pilots(
        [guess, low, _wsd_pilot("top", 8e-3, 200, 0.88)], n_modes=N_MODES, holdout="none", terms=()
    )
    assert ahead.problem.network.top_pilot_ahead == pytest.approx(8e-3)
    assert "top_pilot_ahead = 0.008" in ahead.spec_text()
    assert parse_problem(dump_problem(ahead.problem)).network.top_pilot_ahead == pytest.approx(8e-3)
    assert any(
        "plateau is not put below 0.008 (unless fit lowered the cap below it)" in n for n in ahead.notes
    )
    level = fit_pilots(
        [guess, low, _wsd_pilot("top", 8e-3, 200, 0.97)], n_modes=N_MODES, holdout="none", terms=()
    )
    assert level.problem.network.top_pilot_ahead == 0.0 and "top_pilot_ahead" not in level.spec_text()
    capped = fit_pilots(
        [guess, low, _wsd_pilot("top", 8e-3, 200, 0.88)],
        n_modes=N_MODES,
        holdout="none",
        terms=(),
        lr_cap=4e-3,
    )
    assert capped.problem.network.top_pilot_ahead == 0.0


def test_fit_records_a_bracket_from_above_in_the_spec_and_says_it():
    """`fit` on pilots whose top one ended above the next of its schedule: the information line names both, the
    fitted spec records the top rate (``bracketed_above``, read back as written), and without the bracket the
    spec has no such key."""
    from schedopt.spec import dump_problem

    guess = _wsd_pilot("guess", 2e-3, 600, 1.0)
    low = _wsd_pilot("low", 5e-4, 200, 1.2)
    top = _wsd_pilot("top", 8e-3, 200, 0.88)
    above = PilotRun("above", 2 * top.learning_rate, top.loss_steps, top.losses * 1.02, "val_loss")
    result = fit_pilots([guess, low, top, above], n_modes=N_MODES, holdout="none", terms=())
    assert any(
        line.startswith("above (peak 0.016) ended at") and "no lower than top (peak 0.008" in line
        for line in result.info
    )
    assert result.problem.network.bracketed_above == pytest.approx(1.6e-2)
    assert "bracketed_above = 0.016" in result.spec_text()
    assert parse_problem(dump_problem(result.problem)).network.bracketed_above == pytest.approx(1.6e-2)
    plain = fit_pilots([guess, low, top], n_modes=N_MODES, holdout="none", terms=())
    assert plain.problem.network.bracketed_above == 0.0 and "bracketed_above" not in plain.spec_text()


def test_a_pilot_with_few_loss_values_is_named_with_the_interval_to_log_at():
    """Fewer than ``SPARSE_POINTS`` loss values: the note names the pilot, its count and column, and an interval
    of T / 20 updates; at ``SPARSE_POINTS`` it says nothing."""
    from schedopt.calibration._checks import SPARSE_POINTS, _pilot_notes

    guess = _wsd_pilot("guess", 2e-3, 600, 1.0)
    low = _wsd_pilot("low", 5e-4, 200, 1.2)  # 11 values: one every 20 updates

    def first(n):
        return PilotRun("sparse", low.learning_rate, low.loss_steps[:n], low.losses[:n], "val_loss")

    notes = " | ".join(_pilot_notes([guess, first(SPARSE_POINTS - 1)]))
    assert "sparse: 9 val_loss values, fewer than 10" in notes and "at least every 10 updates" in notes
    assert "values, fewer than" not in " | ".join(_pilot_notes([guess, first(SPARSE_POINTS)]))
