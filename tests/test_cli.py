"""The command line (typer app): exit codes, one-line errors, and JSON that agrees with the library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_SPEC
from numpy.testing import assert_allclose, assert_array_equal
from typer.testing import CliRunner

import schedopt
import schedopt.design
from schedopt.baselines import baseline_schedule
from schedopt.cli import app
from schedopt.controls import grid_for
from schedopt.schedule import Schedule, load_schedule, save_schedule
from schedopt.solution import Solution
from schedopt.spec import load_problem
from schedopt.theory import predicted_exponents

LOSS_RTOL = 1e-12  # the CLI and the library run the same recursion on the same schedule
BASELINE_SLACK = 1e-9  # the optimum may tie a baseline up to solver round-off
EXIT_OK, EXIT_SOLVER, EXIT_USAGE = 0, 1, 2

HORIZON = 200


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_spec(tmp_path: Path, text: str = TINY_SPEC, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def json_out(result) -> dict:
    return json.loads(result.stdout)


def one_line_error(result, *fragments: str) -> str:
    """The CLI's error: exactly one line on stderr, ``error: ...``, naming every fragment."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def spec(tmp_path) -> Path:
    return write_spec(tmp_path)


# --- version


def test_version():
    result = run("--version")
    assert result.exit_code == EXIT_OK
    assert result.stdout.strip() == f"schedopt {schedopt.__version__}"


# --- simulate


def simulate_json(spec_path: Path, schedule: str, *extra: str) -> dict:
    result = run("simulate", spec_path, "--schedule", schedule, "--json", *extra)
    assert result.exit_code == EXIT_OK, result.output
    return json_out(result)


@pytest.mark.parametrize(
    ("text", "make_lr"),
    [
        ("constant:0.1", lambda: np.full(HORIZON, 0.1)),
        ("cosine:0.3", lambda: np.asarray(baseline_schedule("cosine", {"peak": 0.3}, HORIZON))),
    ],
)
def test_simulate_family_final_loss_matches_library(spec, text, make_lr):
    out = simulate_json(spec, text)
    model = load_problem(spec).model
    expected = schedopt.final_loss(model, make_lr())
    assert_allclose(out["final_loss"], expected, rtol=LOSS_RTOL)
    assert out["horizon"] == HORIZON
    assert out["diverged"] is False and out["divergence_step"] == -1
    assert out["loss_floor"] == 0.0
    steps = [c["step"] for c in out["checkpoints"]]
    assert steps[0] == 0 and steps[-1] == HORIZON and steps == sorted(set(steps))
    assert_allclose(out["checkpoints"][0]["loss"], model.initial_loss, rtol=LOSS_RTOL)
    assert_allclose(out["checkpoints"][-1]["loss"], out["final_loss"], rtol=LOSS_RTOL)


def test_simulate_file_schedule_sets_the_horizon(spec, tmp_path):
    # a schedule file of 150 steps, with momentum: the file's horizon and controls win
    lr = np.linspace(0.2, 0.01, 150)
    momentum = np.full(150, 0.5)
    path = save_schedule(Schedule(learning_rate=lr, momentum=momentum), tmp_path / "sched.json")
    out = simulate_json(spec, f"file:{path}")
    assert out["horizon"] == 150
    model = load_problem(spec).model
    expected = schedopt.final_loss(model, lr, momentum=momentum)
    assert_allclose(out["final_loss"], expected, rtol=LOSS_RTOL)
    assert expected != schedopt.final_loss(model, lr)  # momentum was used


def test_simulate_csv_file_schedule(spec, tmp_path):
    lr = np.linspace(0.3, 0.0, HORIZON)
    path = save_schedule(Schedule(learning_rate=lr), tmp_path / "sched.csv")
    out = simulate_json(spec, f"file:{path}")
    assert_allclose(out["final_loss"], schedopt.final_loss(load_problem(spec).model, lr), rtol=LOSS_RTOL)


def test_simulate_table_smoke(spec):
    result = run("simulate", spec, "-s", "constant:0.1", "--checkpoints", "4")
    assert result.exit_code == EXIT_OK, result.output
    assert "final loss L_T =" in result.stdout


def test_simulate_diverging_rate_exits_1(spec):
    result = run("simulate", spec, "--schedule", "constant:1.0", "--json")
    assert result.exit_code == EXIT_SOLVER
    one_line_error(result, "diverged")
    out = json_out(result)
    assert out["diverged"] is True
    assert 0 < out["divergence_step"] <= HORIZON


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("a = 2.5", "a = -1.0", "model.a"),
        ("horizon = 200", "horizn = 200", "training.horizn"),
        ("blocks = 10", "blocks = 500", "controls.learning_rate.blocks"),
        ("schema_version = 1", "schema_version = 9", "schema_version"),
    ],
)
def test_bad_spec_exits_2_with_one_line_naming_the_key(tmp_path, old, new, key):
    path = write_spec(tmp_path, TINY_SPEC.replace(old, new), name="bad.toml")
    result = run("simulate", path, "--schedule", "constant:0.1")
    assert result.exit_code == EXIT_USAGE
    one_line_error(result, str(path), key)


def test_missing_spec_file_exits_2(tmp_path):
    path = tmp_path / "nowhere.toml"
    result = run("simulate", path)
    assert result.exit_code == EXIT_USAGE
    one_line_error(result, str(path))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("zigzag:0.1", "'zigzag'"),
        ("cosine", "NAME:ARGS"),
        ("cosine:fast", "peak"),
        ("wsd_sqrt:0.3", "2 value(s)"),
        ("constant:nan", "finite"),
    ],
)
def test_bad_schedule_text_exits_2(spec, text, fragment):
    result = run("simulate", spec, "--schedule", text)
    assert result.exit_code == EXIT_USAGE
    one_line_error(result, "--schedule", fragment)


def test_bad_schedule_file_exits_2(spec, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"schema_version": 7}', encoding="utf-8")
    result = run("simulate", spec, "--schedule", f"file:{path}")
    assert result.exit_code == EXIT_USAGE
    one_line_error(result, str(path), "schema_version")


def test_bad_horizon_option_exits_2(spec):
    result = run("simulate", spec, "--horizon", "2.5")
    assert result.exit_code == EXIT_USAGE
    one_line_error(result, "--horizon", "2.5")


# --- design


def check_design(result, folder: Path, solver: str) -> dict:
    assert result.exit_code == EXIT_OK, result.output
    out = json_out(result)
    assert out["status"] == "converged" and out["converged"] is True
    assert out["solver"] == solver
    assert (out["problem"], out["phase"], out["horizon"], out["n_modes"]) == ("tiny", "easy", HORIZON, 50)
    assert out["predictions"] == predicted_exponents(2.5, 1.2)
    assert set(out["baselines"]) == set(schedopt.baselines.BASELINES)
    for name, entry in out["baselines"].items():
        assert out["final_loss"] <= entry["final_loss"] * (1 + BASELINE_SLACK), name
        assert_allclose(entry["ratio"], entry["final_loss"] / out["final_loss"], rtol=LOSS_RTOL)
    files = out["files"]
    assert set(files) == {"schedule_json", "schedule_csv", "plot", "report"}
    for path in files.values():
        assert Path(path).is_file() and Path(path).parent == folder
    sched = load_schedule(files["schedule_json"])
    assert sched.horizon == out["horizon"] == HORIZON
    assert sched.converged and sched.provenance["solver"] == solver
    # the written schedule gives the reported loss
    model = load_problem(folder.parent / "tiny.toml").model
    assert_allclose(schedopt.final_loss(model, sched.learning_rate), out["final_loss"], rtol=LOSS_RTOL)
    assert_array_equal(load_schedule(files["schedule_csv"]).learning_rate, sched.learning_rate)
    assert json.loads(Path(files["report"]).read_text(encoding="utf-8")) == out
    return out


def test_design_writes_files_and_beats_every_baseline(spec, tmp_path):
    folder = tmp_path / "out"
    result = run("design", spec, "--solver", "pontryagin", "--out", folder, "--json")
    check_design(result, folder, "pontryagin")


@pytest.mark.slow
def test_design_with_the_default_solver(spec, tmp_path):
    folder = tmp_path / "out"
    check_design(run("design", spec, "--out", folder, "--json"), folder, "jax")


def test_design_unknown_solver_exits_2(spec, tmp_path):
    result = run("design", spec, "--solver", "nope", "--out", tmp_path / "out")
    assert result.exit_code == EXIT_USAGE
    one_line_error(result, "solver", "'nope'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("solver", ["jax", "pontryagin"])
def test_design_learning_rate_above_stability_threshold_exits_0_with_a_note(tmp_path, solver):
    path = write_spec(tmp_path, TINY_SPEC.replace("max = 0.35", "max = 0.9"))
    threshold = schedopt.stability_threshold(schedopt.load_problem(path).model, 1.0)
    assert threshold < 0.9
    folder = tmp_path / "out"
    result = run("design", path, "--solver", solver, "--out", folder)
    assert result.exit_code == EXIT_OK, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1, result.stderr
    assert "`controls.learning_rate.max` = 0.9" in notes[0] and f"threshold {threshold:.6g}" in notes[0]
    report = json.loads((folder / "design.json").read_text(encoding="utf-8"))
    assert report["status"] == "converged"
    assert report["notes"] == [notes[0].removeprefix("note: ")]
    assert all(entry["status"] == "converged" for entry in report["baselines"].values())


FAKE_LR = 0.05  # the learning rate of every block in a faked solve


def fake_solver(monkeypatch, status: str) -> None:
    """Make every design solve return at once, with ``status`` and a constant schedule."""

    def fake_solve(problem, solver="jax", *, throw=True, initial=None, options=None):
        g = grid_for(problem.learning_rate, problem.horizon)
        params = np.full(g.n_params, FAKE_LR)
        return Solution(
            problem=problem,
            solver=solver,
            status=status,
            final_loss=schedopt.final_loss(problem.model, g.interpolation().expand(params)),
            parameters={"learning_rate": params},
            grids={"learning_rate": g},
            iterations=3,
            message="iteration limit reached",
        )

    monkeypatch.setattr(schedopt.design._run, "solve", fake_solve)


@pytest.fixture
def unconverged(monkeypatch):
    """Every design solve stops at its iteration limit (instantly)."""
    fake_solver(monkeypatch, "max_iterations")


def test_unconverged_design_exits_1_and_writes_nothing(spec, tmp_path, unconverged):
    folder = tmp_path / "out"
    result = run("design", spec, "--no-baselines", "--out", folder, "--json")
    assert result.exit_code == EXIT_SOLVER
    one_line_error(result, "did not converge", "max_iterations", "nothing written")
    assert not folder.exists()
    out = json_out(result)
    assert out["converged"] is False and out["status"] == "max_iterations"
    assert out["files"] == {}


def test_unconverged_design_with_force_writes_files_marked_unconverged(spec, tmp_path, unconverged):
    folder = tmp_path / "out"
    result = run("design", spec, "--no-baselines", "--out", folder, "--force", "--json")
    assert result.exit_code == EXIT_SOLVER
    one_line_error(result, "did not converge", "marked unconverged")
    out = json_out(result)
    assert out["converged"] is False
    sched = load_schedule(folder / "schedule.json")
    assert sched.provenance["converged"] is False and not sched.converged
    assert sched.provenance["status"] == "max_iterations"
    g = grid_for(load_problem(spec).learning_rate, HORIZON)
    assert_array_equal(sched.learning_rate, g.interpolation().expand(np.full(g.n_params, FAKE_LR)))
    report = json.loads((folder / "design.json").read_text(encoding="utf-8"))
    assert report["converged"] is False and report["status"] == "max_iterations"
    assert (folder / "schedule.csv").is_file() and (folder / "design.svg").is_file()


def test_design_options_override_the_spec(spec, tmp_path, monkeypatch):
    fake_solver(monkeypatch, "converged")
    folder = tmp_path / "out"
    result = run(
        "design", spec, "--horizon", "1e2", "--blocks", "5", "--grid", "geometric-end",
        "--no-baselines", "--out", folder, "--json",
    )  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    out = json_out(result)
    assert out["horizon"] == 100 and out["baselines"] == {}
    edges = schedopt.block_edges(100, 5, "geometric-end").tolist()
    assert out["grid"]["learning_rate"]["edges"] == edges
    sched = load_schedule(folder / "schedule.json")
    assert sched.horizon == 100
    assert sched.provenance["grids"]["learning_rate"]["edges"] == edges


# --- phase


def test_phase_bad_horizons_exits_2(spec, tmp_path):
    result = run("phase", spec, "--horizons", "1e4:1e2:3", "--out", tmp_path / "out")
    assert result.exit_code == EXIT_USAGE
    one_line_error(result, "--horizons", "1e4:1e2:3")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_phase_reports_measured_and_predicted_exponents(spec, tmp_path):
    folder = tmp_path / "out"
    result = run(
        "phase", spec, "--horizons", "100,200,400", "--solver", "pontryagin", "--out", folder, "--json"
    )
    assert result.exit_code == EXIT_OK, result.output
    out = json_out(result)
    assert out["horizons"] == [100, 200, 400]
    assert out["predicted"] == predicted_exponents(2.5, 1.2)
    assert set(out["measured"]) >= {"xi", "delta", "loss_optimal", "loss_constant", "constant_lr"}
    assert all(isinstance(v, float) for k, v in out["measured"].items() if k != "anneal_fraction")
    assert [r["horizon"] for r in out["rows"]] == [100, 200, 400]
    for row in out["rows"]:
        assert row["final_loss"] <= row["constant_loss"] * (1 + BASELINE_SLACK), row
    # the loss falls with the horizon: a positive measured loss exponent
    assert out["measured"]["loss_optimal"] > 0
    assert Path(out["files"]["plot"]).is_file()
    assert json.loads(Path(out["files"]["report"]).read_text(encoding="utf-8")) == out
