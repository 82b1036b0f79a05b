"""Real training, offline: pilots that log only their training loss, at every update.

Many training loops log the minibatch training loss at every update and evaluate rarely or never.
``schedopt fit`` then reads ``train_loss``: hundreds of noisy values a pilot instead of 11-61
validation losses. This script fits each task's default pilots (``long60-wider``, seed 0, the
default model ``schedopt-floor``) three ways and scores every fit as ``eval_cadence.py`` does (the
panel's median / max absolute error against the runs' final *validation* loss, and the plateau the
default rule picks, priced on the task's measured seed-0 WSD curve, minus tuned WSD, nats), and, for
every fit, the same errors against the panel runs' final *training* loss (each run's minibatch losses at
every update read as ``fit``'s checks read a dense log: a line through its last twentieth, at its last
step), the loss a fit on training losses models:

- ``val_loss``: the default (the validation loss every 20 updates);
- ``train_loss``: the minibatch training loss at every update;
- ``train_loss every 20``: the same, at the validation loss's steps only (the noise without the count);
- ``train_loss, value by value``: every update's, with ``fit``'s checks reading single values as they did
  before ``pilots.smoothed_losses`` (a spike, the top pilot's lead, twins, final losses, the smallest loss).

Beside each: the notes ``fit`` gives about the pilots (a spike, a top pilot still ahead, a bracket
from above), so that a check that reads single noisy values shows up as a note that differs.

No training. Usage::

    uv run python benchmarks/train_loss_pilots.py [--task NAME ...]

Writes ``benchmarks/results/train-loss-pilots.json``.
"""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _offline  # noqa: E402
import eval_cadence  # noqa: E402
import realtasks  # noqa: E402
from _clock import Clock  # noqa: E402

from examples.tasks import Task  # noqa: E402
from schedopt.calibration._checks import _final_loss  # noqa: E402
from schedopt.calibration.fit import fit_pilots, predict_network_loss  # noqa: E402
from schedopt.calibration.pilots import PilotRun, read_pilot, read_pilots  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def at_steps(run: PilotRun, steps: np.ndarray) -> PilotRun:
    """``run`` with its losses at ``steps`` only."""
    keep = np.isin(run.loss_steps, steps)
    return PilotRun(run.name, run.learning_rate, run.loss_steps[keep], run.losses[keep], run.loss_column)


def variants(task: Task) -> dict[str, list[PilotRun]]:
    logs = [j.log for j in realtasks.pilot_jobs(task, realtasks.DEFAULT_PROTOCOL)]
    val = read_pilots(logs, loss_column="val_loss")
    train = read_pilots(logs, loss_column="train_loss")
    return {
        "val_loss": val,
        "train_loss": train,
        "train_loss every 20": [at_steps(t, v.loss_steps) for t, v in zip(train, val, strict=True)],
    }


def train_errors(problem, panel, finals) -> dict:
    """Median / max absolute relative error of the predicted final loss against the final training losses."""
    errors = np.array(
        [
            float(predict_network_loss(problem, job.lrs)[-1]) / f - 1
            for (job, _), f in zip(panel, finals, strict=True)
        ]
    )
    return {
        "median_abs_error": float(np.median(np.abs(errors))),
        "max_abs_error": float(np.max(np.abs(errors))),
    }


@contextlib.contextmanager
def value_by_value():
    """``fit``'s checks reading every logged loss as it is: no log counts as dense (``pilots.DENSE_LOG``), so
    ``smoothed_losses`` and ``last_loss`` return the values as logged, wherever they are called from."""
    from schedopt.calibration import pilots

    saved = pilots.DENSE_LOG
    pilots.DENSE_LOG = math.inf
    try:
        yield
    finally:
        pilots.DENSE_LOG = saved


def run_task(task: Task) -> dict:
    panel = realtasks._panel(task)
    finals = [_final_loss(read_pilot(job.log, loss_column="train_loss")) for job, _ in panel]
    terms, floor = realtasks.MODELS["schedopt-floor"]
    entry = {}
    cases = variants(task)
    cases["train_loss, value by value"] = cases["train_loss"]
    for name, runs in cases.items():
        reading = value_by_value() if name.endswith("value by value") else contextlib.nullcontext()
        with Clock() as clock, reading:
            result = fit_pilots(
                runs, n_modes=realtasks.FIT_MODES, holdout="none", terms=terms, offset_floor=floor
            )
        row = {
            "points": [int(r.loss_steps.size) for r in runs],
            "fit_rms_error": result.fit_error["rms_error"],
            **eval_cadence.score(task, result.problem, runs, panel),
            "against_final_train_loss": train_errors(result.problem, panel, finals),
            "notes": list(result.notes),
            "info": list(result.info),
            "fit_clock": clock.record(),
        }
        entry[name] = row
        print(
            f"{task.name} {name}: points {row['points']}, panel {100 * row['median_abs_error']:.2f} / "
            f"{100 * row['max_abs_error']:.1f} % (train {100 * row['against_final_train_loss']['median_abs_error']:.2f} / "
            f"{100 * row['against_final_train_loss']['max_abs_error']:.1f} %), plateau {row['plateau']:.3g} ({row['priced_plateau']:+.4f} "
            f"nats), {len(row['notes'])} notes ({clock.cpu:.0f} CPU-s)",
            flush=True,
        )
    return entry


def main(argv=None):
    _offline.main(argv, __doc__, "train-loss-pilots.json", run_task)


if __name__ == "__main__":
    main()
