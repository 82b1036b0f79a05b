"""`schedopt sweep`: variations of spec keys, per-point errors, and the designs of the valid points."""

from __future__ import annotations

import json

import pytest
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from schedopt.cli import app
from schedopt.errors import ProblemError
from schedopt.solvers import solve
from schedopt.spec import parse_problem
from schedopt.sweep import parse_variation, sweep_problems, variations

SPEC = """schema_version = 1
name = "tiny"
[model]
kind = "powerlaw"
a = 1.5
b = 1.5
n_modes = 24
noise_std = 0.3
[training]
horizon = 200
batch_size = 4
momentum = 0.0
[controls.learning_rate]
min = 0.0
max = 0.5
blocks = 20
grid = "uniform"
"""

#: A sweep point and the same spec edited by hand give the same problem: the same solve.
EXACT = 0.0


@pytest.mark.parametrize(
    "text", ["model.a", "model.a=1:2", "model.a=1:2:0", "model.a=1:2:2.5", "model.a=0:2:3:log", "x=1:2:3:lin"]
)
def test_malformed_variation_is_an_error_naming_it(text):
    with pytest.raises(ProblemError) as err:
        parse_variation(text)
    assert err.value.field == "vary" and repr(text) in str(err.value)


def test_key_missing_from_the_spec_is_an_error_naming_it():
    with pytest.raises(ProblemError, match=r"'model\.c' is not set in the spec"):
        variations(SPEC, ["model.c=1:2:3"])
    with pytest.raises(ProblemError, match="not a number"):
        variations(SPEC, ["model.kind=1:2:3"])


def test_values_are_linear_or_geometric_and_integers_stay_integers():
    (a,) = variations(SPEC, ["model.a=1.5:2.5:3"])
    assert a.values == (1.5, 2.0, 2.5)
    (h,) = variations(SPEC, ["training.horizon=100:10000:3:log"])
    assert h.values == (100, 1000, 10000)


def test_a_point_is_the_spec_with_its_values():
    points = sweep_problems(SPEC, variations(SPEC, ["model.a=1.5:2.5:2", "training.horizon=100:200:2"]))
    assert [values for values, _ in points] == [
        {"model.a": 1.5, "training.horizon": 100},
        {"model.a": 1.5, "training.horizon": 200},
        {"model.a": 2.5, "training.horizon": 100},
        {"model.a": 2.5, "training.horizon": 200},
    ]
    by_hand = parse_problem(SPEC.replace("a = 1.5", "a = 2.5").replace("horizon = 200", "horizon = 100"))
    swept = points[2][1]
    assert_allclose(solve(swept).final_loss, solve(by_hand).final_loss, rtol=EXACT)


def test_cli_sweep_reports_invalid_points_and_designs_the_others(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC, encoding="utf-8")
    # blocks = 300 exceeds the horizon (spec error); solver pontryagin refuses momentum 0.5 (solver error)
    args = ["sweep", str(spec), "--vary", "controls.learning_rate.blocks=20:300:2", "--solver", "pontryagin"]
    result = CliRunner().invoke(app, [*args, "--vary", "training.momentum=0:0.5:2", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "3 of 4 points invalid or not converged" in result.output
    report = json.loads((tmp_path / "sweep.json").read_text(encoding="utf-8"))
    rows = report["rows"]
    assert [r["status"] for r in rows] == ["converged", "invalid", "invalid", "invalid"]
    assert "blocks" in rows[2]["error"] and "pontryagin" in rows[1]["error"]
    expected = solve(parse_problem(SPEC), "pontryagin")
    assert rows[0]["final_loss"] == expected.final_loss
    assert rows[0]["parameters"]["learning_rate"] == expected.parameters["learning_rate"].tolist()


def test_cli_sweep_designs_a_cap_above_the_stability_threshold(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC, encoding="utf-8")
    args = ["sweep", str(spec), "--vary", "controls.learning_rate.max=0.5:3:2", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "sweep.json").read_text(encoding="utf-8"))["rows"]
    assert [r["status"] for r in rows] == ["converged", "converged"]
    assert rows[1]["final_loss"] <= rows[0]["final_loss"]


def test_cli_sweep_without_vary_is_an_error(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--vary" in result.output


def test_cli_max_batch_default_is_the_library_default():
    """``schedopt sweep --max-batch`` spells ``batch.MAX_BATCH`` as a literal (importing
    ``schedopt.batch`` would load it at ``schedopt --help``): the two must not drift apart."""
    import importlib
    import inspect

    from schedopt.batch import MAX_BATCH

    command = importlib.import_module("schedopt.cli.sweep").sweep  # the module, not the package's command
    default = inspect.signature(command).parameters["max_batch"].default
    assert default == MAX_BATCH
