"""CLI commands on schedule files: compare, export, plot (typer's test runner, tiny problems)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_cli import HORIZON, json_out, one_line_error, run, write_spec

import schedopt
from schedopt.baselines import baseline_schedule
from schedopt.schedule import Schedule, save_schedule

#: Relative agreement of CLI-reported losses with the library.
LOSS_RTOL = 1e-12


@pytest.fixture
def files(tmp_path):
    spec = write_spec(tmp_path)
    lr = baseline_schedule("linear", {"peak": 0.1}, HORIZON)
    path = save_schedule(Schedule(learning_rate=lr, provenance={"converged": True}), tmp_path / "lin.json")
    return spec, path, lr


def test_compare_reports_library_losses_best_first(files, tmp_path):
    spec, path, lr = files
    result = run("compare", spec, path, "-b", "constant", "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    report = json_out(result)
    entries = report["entries"]
    assert [e["final_loss"] for e in entries] == sorted(e["final_loss"] for e in entries)
    model = schedopt.load_problem(spec).model
    mine = next(e for e in entries if e["source"] == str(path))
    assert_allclose(mine["final_loss"], schedopt.final_loss(model, lr), rtol=LOSS_RTOL)
    assert entries[0]["ratio"] == 1.0
    for kind in ("report", "plot"):
        assert (tmp_path / "out").joinpath(report["files"][kind].rsplit("/", 1)[-1]).exists()


def test_compare_runs_at_the_files_horizon_unless_told_otherwise(files, tmp_path):
    """As ``simulate`` does: schedule files of another horizon than the spec's are compared at theirs
    (a design for ``--horizon 2T`` of a fitted spec); ``--horizon`` must then agree with them."""
    spec, path, _ = files
    short = np.full(50, 0.1)
    other = save_schedule(Schedule(learning_rate=short), tmp_path / "short.json")
    result = run("compare", spec, other, "-b", "constant", "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.output
    report = json_out(result)
    assert report["horizon"] == 50
    mine = next(e for e in report["entries"] if e["source"] == str(other))
    model = schedopt.load_problem(spec).model
    assert_allclose(mine["final_loss"], schedopt.final_loss(model, short), rtol=LOSS_RTOL)
    told = run("compare", spec, other, "--horizon", HORIZON, "--out", tmp_path / "p")
    assert told.exit_code == 2
    one_line_error(told, "50 steps", f"horizon is {HORIZON}")
    both = run("compare", spec, other, path, "--out", tmp_path / "q")
    assert both.exit_code == 2
    one_line_error(both, "different horizons", "short.json': 50", f"lin.json': {HORIZON}")
    assert not any((tmp_path / name).exists() for name in ("p", "q"))


def test_export_torch_factors_times_base_lr_give_the_schedule(files, tmp_path):
    _, path, lr = files
    out = tmp_path / "t.json"
    result = run("export", path, "--to", "torch", "--out-file", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert_allclose(np.array(data["factors"]) * data["base_lr"], lr, rtol=1e-15)
    assert json_out(result)["horizon"] == HORIZON


def test_export_rescales_peak_and_horizon(files, tmp_path):
    _, path, _ = files
    out = tmp_path / "r.json"
    result = run("export", path, "--to", "json", "--out-file", out, "--peak", "0.05", "--stretch-to", "400")
    assert result.exit_code == 0, result.output
    sched = schedopt.load_schedule(out)
    assert sched.horizon == 400
    assert_allclose(sched.learning_rate.max(), 0.05, rtol=1e-12)


def test_export_refuses_unconverged_without_force(tmp_path):
    path = save_schedule(
        Schedule(learning_rate=np.full(10, 0.1), provenance={"converged": False}), tmp_path / "u.json"
    )
    result = run("export", path, "--to", "csv", "--out-file", tmp_path / "u.csv")
    assert result.exit_code == 2
    one_line_error(result, "unconverged", "--force")
    assert not (tmp_path / "u.csv").exists()
    assert run("export", path, "--to", "csv", "--out-file", tmp_path / "u.csv", "--force").exit_code == 0


def test_export_unknown_format_exits_2(files, tmp_path):
    _, path, _ = files
    result = run("export", path, "--to", "onnx", "--out-file", tmp_path / "x")
    assert result.exit_code == 2
    one_line_error(result, "--to", "onnx")


def test_plot_writes_png_smoke(files, tmp_path):
    spec, path, _ = files
    out = tmp_path / "p.png"
    result = run("plot", path, "--spec", spec, "--out-file", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
