"""Warmup: a ramp inside the horizon, a design that keeps it fixed, and exports that compose.

Numbers checked: the ramp's values (closed form), the full run's loss of a design with a
fixed warmup (the recursion from the model's initial state equals the solver's loss from
the state the ramp leaves), that designing after the ramp beats laying the ramp over the
no-warmup optimum, and ``optax.join_schedules`` of a warmup and an export, step by step.
"""

from __future__ import annotations

import json

import numpy as np
import optax
import pytest
from helpers import TINY_SPEC
from numpy.testing import assert_allclose, assert_array_equal

import schedopt
from schedopt.design import design, problem_after_warmup
from schedopt.errors import ExportError, ProblemError
from schedopt.export import to_optax
from schedopt.schedule import Schedule, warmup_values, with_warmup

#: Loss of the full run (ramp from the model's initial state) against the solver's loss.
RTOL_MARKOV = 1e-10
#: A few float64 roundings.
RTOL_ARITH = 1e-14
WARMUP = 20


@pytest.fixture(scope="module")
def tiny():
    return schedopt.parse_problem(TINY_SPEC)


def test_ramp_values():
    assert_allclose(warmup_values(4, 0.2), [0.05, 0.1, 0.15, 0.2], rtol=RTOL_ARITH)
    cosine = warmup_values(4, 0.2, "cosine")
    assert_allclose(cosine, 0.2 * 0.5 * (1 - np.cos(np.pi * np.arange(1, 5) / 4)), rtol=RTOL_ARITH)
    assert cosine[-1] == pytest.approx(0.2, rel=RTOL_ARITH) and cosine[0] > 0
    # optax's own linear warmup at steps 0..W-1 is the same ramp
    ramp = optax.linear_schedule(0.2 / 4, 0.2, 3)
    assert_allclose([float(ramp(t)) for t in range(4)], warmup_values(4, 0.2), rtol=1e-6)


def test_with_warmup_keeps_the_horizon_and_stretches_the_rest():
    lr = np.linspace(1.0, 0.1, 100)
    s = with_warmup(Schedule(learning_rate=lr, batch_size=np.full(100, 4.0)), 10)
    assert s.horizon == 100 and s.provenance["warmup"] == {
        "steps": 10,
        "shape": "linear",
        "peak": 1.0,
        "horizon": 100,
    }
    assert_allclose(s.learning_rate[:10], np.arange(1, 11) / 10, rtol=RTOL_ARITH)
    expected = np.interp(np.arange(90) * 100 / 90, np.arange(100), lr)
    assert_allclose(s.learning_rate[10:], expected, rtol=RTOL_ARITH)
    assert_array_equal(s.batch_size, 4.0)
    assert with_warmup(s, 0) is s


@pytest.mark.parametrize(
    ("steps", "match"),
    [(-1, ">= 0"), (2.5, "whole number"), (True, "whole number"), (100, "shorter than the horizon")],
)
def test_bad_warmup_is_named(steps, match):
    with pytest.raises(ExportError, match=f"`warmup`.*{match}"):
        with_warmup(Schedule(learning_rate=np.ones(100)), steps)


def test_a_design_with_a_fixed_warmup(tiny):
    """The solver optimises the steps after the ramp; the full run's loss is the solver's."""
    result = design(tiny, baselines=("cosine",), warmup=WARMUP)
    schedule = result.schedule()
    assert schedule.horizon == tiny.horizon and result.problem.horizon == tiny.horizon
    assert_allclose(
        schedule.learning_rate[:WARMUP], warmup_values(WARMUP, tiny.learning_rate.max), rtol=RTOL_ARITH
    )
    full = schedopt.loss_curve(tiny.model, schedule.learning_rate).final_loss
    assert_allclose(full, result.solution.final_loss, rtol=RTOL_MARKOV)
    # the baselines ran after the same ramp: their losses are full-run losses too
    tuned = result.baselines["cosine"]
    ramped = np.concatenate([schedule.learning_rate[:WARMUP], tuned.learning_rate])
    assert_allclose(schedopt.loss_curve(tiny.model, ramped).final_loss, tuned.final_loss, rtol=RTOL_MARKOV)
    # designing after the ramp is at least as good as laying the ramp over the no-warmup optimum
    plain = schedopt.schedule_from_solution(schedopt.solve(tiny))
    overlaid = with_warmup(plain, WARMUP, peak=tiny.learning_rate.max)
    assert result.solution.final_loss <= schedopt.loss_curve(tiny.model, overlaid.learning_rate).final_loss
    assert result.to_dict()["warmup"] == {
        "steps": WARMUP,
        "shape": "linear",
        "peak": 0.35,
        "peak_units": "model",
        "ramp_steps": WARMUP,
    }


def test_warmup_refuses_what_it_cannot_hold(tiny):
    with pytest.raises(ProblemError, match="`--warmup` with momentum"):
        problem_after_warmup(tiny.replace(training=tiny.training.__class__(horizon=200, momentum=0.5)), 10)
    with pytest.raises(ExportError, match="shorter than the horizon"):
        problem_after_warmup(tiny, 200)


def test_an_export_composes_with_optax_join_schedules():
    """optax passes ``count - W`` to the second schedule: the export runs from its own step 0."""
    s = Schedule(learning_rate=np.linspace(3e-4, 3e-5, 50))
    joined = optax.join_schedules([optax.linear_schedule(3e-4 / 10, 3e-4, 9), to_optax(s)], [10])
    got = np.array([float(joined(t)) for t in range(70)])
    assert_allclose(got[:10], warmup_values(10, 3e-4), rtol=1e-6)
    assert_allclose(got[10:60], s.learning_rate.astype(np.float32), rtol=1e-7)
    assert_allclose(got[60:], np.float32(s.learning_rate[-1]), rtol=1e-7)  # held past the end


@pytest.mark.filterwarnings("ignore:The epoch parameter:UserWarning")  # SequentialLR's own step(0)
def test_torch_sequential_lr_composes_with_the_export():
    torch = pytest.importorskip("torch")
    from schedopt.export.torch import to_torch_scheduler

    s = Schedule(learning_rate=np.linspace(3e-4, 3e-5, 50))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-4)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=9)
    designed = to_torch_scheduler(opt, s)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, designed], milestones=[10])
    seen = []
    for _ in range(60):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert_allclose(seen[:10], warmup_values(10, 3e-4), rtol=1e-6)
    assert_allclose(seen[10:60], s.learning_rate, rtol=1e-6)


# --- the commands


def _run(*args):
    from typer.testing import CliRunner

    from schedopt.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_design_export_and_transfer_take_warmup(tmp_path, tiny):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    done = _run("design", spec, "--warmup", WARMUP, "--no-baselines", "--out", tmp_path / "d", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["warmup"]["steps"] == WARMUP and report["horizon"] == tiny.horizon
    designed = schedopt.load_schedule(tmp_path / "d" / "schedule.json")
    assert_allclose(designed.learning_rate[:WARMUP], warmup_values(WARMUP, 0.35), rtol=RTOL_ARITH)
    full = schedopt.loss_curve(tiny.model, designed.learning_rate).final_loss
    assert_allclose(full, report["final_loss"], rtol=RTOL_MARKOV)

    plain = tmp_path / "plain.json"
    schedopt.save_schedule(Schedule(learning_rate=np.linspace(0.3, 0.03, 200)), plain)
    done = _run("export", plain, "--warmup", 10, "--warmup-shape", "cosine", "--json")
    assert done.exit_code == 0, done.output
    exported = schedopt.load_schedule(json.loads(done.output)["path"])
    assert exported.horizon == 200
    assert_allclose(exported.learning_rate[:10], warmup_values(10, 0.3, "cosine"), rtol=RTOL_ARITH)

    done = _run(
        "transfer", tmp_path / "d" / "schedule.json", "--horizon", 400, "--warmup", 40,
        "--no-reoptimise", "--out", tmp_path / "t", "--json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    written = schedopt.load_schedule(tmp_path / "t" / "schedule-T400.json")
    assert written.horizon == 400 and written.provenance["warmup"]["steps"] == 40
    loss = schedopt.loss_curve(tiny.model, written.learning_rate).final_loss
    assert_allclose(report["warmup"]["final_loss"], loss, rtol=RTOL_ARITH)


@pytest.mark.parametrize("command", ["design", "export", "transfer"])
def test_cli_bad_warmup_is_one_line_naming_the_option(tmp_path, command):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    plain = tmp_path / "plain.json"
    schedopt.save_schedule(Schedule(learning_rate=np.linspace(0.3, 0.03, 200)), plain)
    args = {
        "design": ["design", spec, "--out", tmp_path / "d"],
        "export": ["export", plain],
        "transfer": ["transfer", plain, "--horizon", 100, "--spec", spec, "--out", tmp_path / "t"],
    }[command]
    done = _run(*args, "--warmup", 500)
    assert done.exit_code == 2, done.output
    assert "--warmup" in done.output and "shorter than the horizon" in done.output
    assert len(done.output.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists() and not (tmp_path / "t").exists()
