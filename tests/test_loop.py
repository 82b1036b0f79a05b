"""Smoke test of the whole loop on a tiny transformer: pilots -> fit -> design -> train the export."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from examples.tinygpt import TrainConfig, load_corpus
from examples.tinygpt.loop import close_the_loop
from schedopt.schedule import load_schedule
from schedopt.spec import load_problem

TINY = TrainConfig(
    d_model=16, n_layers=1, n_heads=2, context=16, batch_size=4, steps=48, eval_every=8, eval_batches=2
)


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    corpus = load_corpus(max_train_bytes=200_000, max_val_bytes=50_000)
    return close_the_loop(
        tmp_path_factory.mktemp("loop"),
        TINY,
        pilot_steps=16,
        pilot_peaks=(3e-3, 1e-2),
        pilot_eval_every=2,
        seeds=(0,),
        n_modes=50,
        corpus=corpus,
    )


def test_the_loop_writes_every_stage(loop):
    assert len(loop.pilot_logs) == 2 and all(p.exists() for p in loop.pilot_logs)
    problem = load_problem(loop.fitted_spec)
    assert problem.network is not None and problem.horizon == 16
    assert loop.fit.holdout is not None and set(loop.fit.parameters) >= {"a", "b", "learning_rate_scale"}
    assert loop.design.problem.horizon == TINY.steps
    assert loop.schedule_file.exists() and loop.run_logs[0].exists()


def test_the_long_run_follows_the_exported_schedule_in_network_units(loop):
    schedule = load_schedule(loop.schedule_file)
    network_lr = schedule.for_network().learning_rate
    # the design's cap is the largest pilot learning rate, in the network's units
    assert network_lr.max() <= 1e-2 * (1 + 1e-9)
    with open(loop.run_logs[0], newline="") as f:
        rows = list(csv.DictReader(f))
    logged = np.array([float(r["learning_rate"]) for r in rows[:-1]])
    np.testing.assert_allclose(logged, network_lr, rtol=1e-6)
    run = loop.runs[0]
    assert np.isfinite(run.final_val_loss) and run.final_val_loss < run.val_losses[0]
