"""Real training, offline: how often must a pilot log its validation loss?

The real tasks' pilots log ``val_loss`` every 20 updates (10-20 points on a short pilot). A user's
loop may evaluate far less often. This script thins each task's default pilots (``long60-wider``,
seed 0) to every ``j``-th of their validation losses (and the last): ``j`` = 2, and the largest ``j``
that leaves a short pilot 5 points (the fewest ``schedopt fit`` accepts), then refits the default
model (``realtasks`` model ``schedopt-floor``) and scores each fit as ``offset_profile.py`` does: the
panel's median / max absolute error and the plateau the default rule picks (``plateau_rules.py``'s
``flat-0.003``), priced on the task's measured seed-0 WSD curve (minus tuned WSD, nats).

No training. Usage::

    uv run python benchmarks/eval_cadence.py [--task NAME ...]

Writes ``benchmarks/results/eval-cadence.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _offline  # noqa: E402
import fit_priors  # noqa: E402
import realtasks  # noqa: E402
from _clock import Clock  # noqa: E402

from examples.tasks import Task  # noqa: E402
from schedopt.calibration.fit import fit_pilots  # noqa: E402
from schedopt.calibration.pilots import PilotRun  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def _kept(size: int, j: int) -> np.ndarray:
    keep = np.arange(size) % j == 0
    keep[-1] = True
    return keep


def thinned(run: PilotRun, j: int) -> PilotRun:
    """``run`` with every ``j``-th of its losses (from step 0) and its last one only."""
    keep = _kept(run.loss_steps.size, j)
    return PilotRun(run.name, run.learning_rate, run.loss_steps[keep], run.losses[keep], run.loss_column)


def sparsest(runs) -> int:
    """The largest ``j`` that leaves every pilot at least 5 losses (``MIN_POINTS``)."""
    from schedopt.calibration.pilots import MIN_POINTS

    j = 1
    while all(_kept(r.loss_steps.size, j + 1).sum() >= MIN_POINTS for r in runs):
        j += 1
    return j


def score(task: Task, problem, pilots, panel) -> dict:
    """``fit_priors.score`` (as ``offset_profile.py`` scores), under this script's names, the plateau in rates."""
    scored = fit_priors.score(task, pilots, panel, problem)
    return {
        "median_abs_error": scored["median_abs"],
        "max_abs_error": scored["max_abs"],
        "plateau": scored["plateau_over_tuned_wsd_peak"] * realtasks.best_peaks(task)["wsd"],
        "priced_plateau": scored["plateau_measured_minus_tuned"],
    }


def run_task(task: Task) -> dict:
    pilots = realtasks.pilot_runs(task, realtasks.DEFAULT_PROTOCOL)
    panel = realtasks._panel(task)
    short = min(r.horizon for r in pilots)
    terms, floor = realtasks.MODELS["schedopt-floor"]
    entry = {"short_pilot": short, "cadences": {}}
    for j in sorted({1, 2, sparsest(pilots)}):
        every = j * realtasks.PILOT_EVAL_EVERY
        runs = [thinned(r, j) for r in pilots]
        with Clock() as clock:
            result = fit_pilots(
                runs, n_modes=realtasks.FIT_MODES, holdout="none", terms=terms, offset_floor=floor
            )
        row = {
            "every": every,
            "points": [int(r.loss_steps.size) for r in runs],
            "fit_rms_error": result.fit_error["rms_error"],
            **score(task, result.problem, runs, panel),
            "fit_clock": clock.record(),
        }
        entry["cadences"][f"every-{every}"] = row
        print(
            f"{task.name} every {every}: points {row['points']}, panel {100 * row['median_abs_error']:.2f} / "
            f"{100 * row['max_abs_error']:.1f} %, plateau {row['plateau']:.3g} ({row['priced_plateau']:+.4f} nats)",
            flush=True,
        )
    return entry


def main(argv=None):
    _offline.main(argv, __doc__, "eval-cadence.json", run_task)


if __name__ == "__main__":
    main()
