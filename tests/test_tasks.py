"""The real tasks of benchmarks/realtasks.py: their grids and the prose corpus."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from examples.tasks import TASKS
from examples.tinygpt.data import FORTUNES_DIR, load_prose_corpus

needs_fortunes = pytest.mark.skipif(
    not Path(FORTUNES_DIR).is_dir(), reason="Debian's fortunes package is not installed"
)


def test_every_grid_has_seven_peaks_spaced_sqrt2_around_the_guess():
    for task in TASKS.values():
        grid = np.asarray(task.peak_grid)
        assert grid.size == 7
        np.testing.assert_allclose(grid[1:] / grid[:-1], math.sqrt(2), rtol=2e-3)
        assert grid[3] == pytest.approx(task.guess, rel=1e-3)
        assert task.warmup < task.horizon // 4  # the pilots (a quarter of T) fit their warmup


@needs_fortunes
def test_prose_corpus_splits_by_entry_and_is_prose(tmp_path):
    corpus = load_prose_corpus()
    train, val = bytes(corpus.train), bytes(corpus.val)
    assert 1_000_000 < len(train) and 100_000 < len(val)
    entry = max(val.split(b"\n\n")[:50], key=len)  # a long entry: no chance substring of another
    assert entry and entry not in train  # an entry belongs to one split only
    letters = sum(chr(c).isalpha() or c == 32 for c in corpus.val[:20000]) / 20000
    assert letters > 0.8  # mostly words and spaces: prose, not code


def test_prose_corpus_without_the_package_says_how_to_install_it(tmp_path):
    with pytest.raises(ValueError, match="apt-get install fortunes"):
        load_prose_corpus(root=tmp_path)


def test_seed_floor_is_half_the_widest_relative_range_of_one_schedule_over_seeds():
    import sys
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import realtasks

    def run(label, loss):
        return SimpleNamespace(label=label), {"final_val_loss": loss}

    panel = [run("a", 2.0), run("a", 2.2), run("b", 1.0), run("b", 1.01), run("b", 1.0), run("c", 3.0)]
    floor = realtasks.seed_floor(panel)
    assert floor["schedules_with_seeds"] == 2  # "c" ran on one seed: no spread to see
    assert floor["least_max_abs_error"] == pytest.approx(0.2 / 4.2)  # the midpoint 2.1 is off by 0.1
    assert floor["least_max_abs_error_schedule"] == "a"
    assert floor["median_half_range"] == pytest.approx((0.2 / 4.2 + 0.01 / 2.01) / 2)
    assert realtasks.seed_floor([run("a", 1.0)]) == {"schedules_with_seeds": 0}


def test_the_twin_protocol_adds_the_highest_pilots_first_half_on_the_next_seed():
    """The benchmark's twin is what `schedopt pilots --twin` proposes: the x 4 pilot cut by twin_steps."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import realtasks

    from schedopt.calibration.plan import plan_pilots

    task = realtasks.TASKS["prose-adamw-b8"]
    *planned, twin = realtasks.pilot_jobs(task, "long60-wider-twin")
    assert [(j.label, j.seed) for j in planned] == [
        (j.label, j.seed) for j in realtasks.pilot_jobs(task, "long60-wider")
    ]
    top = max(planned, key=lambda j: j.meta["peak"])
    assert (twin.label, twin.seed) == (f"{top.label}-first120", 1)
    np.testing.assert_array_equal(twin.lrs, top.lrs[:120])
    proposed = plan_pilots(task.horizon, 1.0, task.guess, task.warmup, twin=True)[-1]
    assert proposed.steps == twin.lrs.size
    np.testing.assert_allclose(proposed.learning_rate, twin.lrs, rtol=1e-6)  # the loop's schedule is float32


def test_runs_of_one_schedule_in_one_batch_are_trained_once_and_copied(tmp_path, monkeypatch):
    """Two arms whose schedules are equal (same task, seed, learning rates) in one batch of jobs: one is
    trained, the other copies its run when it is done (it used to train it again beside it)."""
    import json
    import sys

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import runcache

    monkeypatch.setattr(runcache, "RUNS", tmp_path)
    lrs = np.full(10, 1e-3)
    jobs = [
        runcache.Job("t", "designed-default", lrs, 3),
        runcache.Job("t", "designed-twin", lrs.copy(), 3),
        runcache.Job("t", "designed-default", lrs, 4),  # another seed: its own run
        runcache.Job("t", "wsd", np.full(10, 2e-3), 3),
    ]
    train, copies = runcache._leaders(jobs)
    assert train == [jobs[0], jobs[2], jobs[3]] and copies == {id(jobs[0]): [jobs[1]]}
    leader, follower = jobs[0], jobs[1]
    leader.record.parent.mkdir(parents=True)
    leader.log.write_text("step,learning_rate,train_loss,val_loss\n0,0.001,5.0,5.0\n")
    record = {"label": leader.label, "log": leader.log.name, "seed": 3, "lr_digest": runcache.lr_digest(lrs)}
    leader.record.write_text(json.dumps({**record, "final_val_loss": 4.0}))
    assert not follower.done() and runcache._reuse(follower) and follower.done()
    copied = json.loads(follower.record.read_text())
    assert copied["copied_from"] == leader.stem.name and copied["final_val_loss"] == 4.0
