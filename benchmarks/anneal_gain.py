"""Real training, offline: where the default fit's error on WSD runs comes from, the constant phase or the anneal.

For every WSD run of each task (the default pilots, the seed-0 tuning grid at the horizon T, and the
runs at 2T), the default fit (``realtasks`` model ``schedopt-floor`` on the ``long60-wider`` pilots)
predicts the validation loss at the cooldown's start (the last evaluation at or before it) and at the
end. The network's *anneal gain* is the drop between the two; the model's is the same drop in its
curve. If the model followed the constant phase and the anneal alike, its gain would match the
network's wherever its constant-phase loss does.

No training, no refit (the fits are ``realtasks``' cached ones). Usage::

    uv run python benchmarks/anneal_gain.py [--task NAME ...]

Writes ``benchmarks/results/anneal-gain.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _offline  # noqa: E402
import realtasks  # noqa: E402
from runcache import read_run  # noqa: E402

from examples.tasks import Task  # noqa: E402
from schedopt.calibration.fit import predict_network_loss  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def cooldown_start(lrs: np.ndarray) -> int:
    """The first update after the peak was reached whose rate is below the peak."""
    peak = lrs.max()
    reached = int(np.argmax(lrs >= peak))
    below = np.nonzero(lrs[reached:] < peak * (1 - 1e-9))[0]
    return reached + int(below[0]) if below.size else len(lrs)


def decompose(problem, lrs: np.ndarray, steps: np.ndarray, losses: np.ndarray) -> dict:
    """Measured and predicted loss at the cooldown's start and end, and both anneal gains."""
    predicted = predict_network_loss(problem, lrs)
    i = int(np.searchsorted(steps, cooldown_start(lrs), side="right")) - 1
    start, end = int(steps[i]), int(steps[-1])
    measured_gain = float(losses[i] - losses[-1])
    model_gain = float(predicted[start] - predicted[end])
    return {
        "cooldown_start_step": start,
        "final_step": end,
        "measured_at_start": float(losses[i]),
        "measured_final": float(losses[-1]),
        "error_at_start": float(predicted[start] / losses[i] - 1),
        "error_final": float(predicted[end] / losses[-1] - 1),
        "measured_gain": measured_gain,
        "model_gain": model_gain,
        "gain_ratio": measured_gain / model_gain if model_gain > 0 else None,
    }


def wsd_runs(task: Task):
    """(kind, label, learning rates, eval steps, losses): the default pilots, the seed-0 WSD grid, WSD at 2T."""
    for job in realtasks.pilot_jobs(task, realtasks.DEFAULT_PROTOCOL):
        run = read_run(job)
        yield "pilot", job.label, job.lrs, run["val_steps"], run["val_losses"]
    for job, run in realtasks._panel(task):
        if job.label.startswith("wsd-") and not job.label.startswith("wsd-at-") and job.seed == 0:
            kind = "T" if len(job.lrs) == task.horizon else "2T"
            yield kind, job.label, job.lrs, run["val_steps"], run["val_losses"]


def _median(rows, key):
    values = [r[key] for r in rows if r[key] is not None]
    return float(np.median(values)) if values else None


def run_task(task: Task) -> dict:
    problem, _ = realtasks.fitted(task, "schedopt-floor", realtasks.DEFAULT_PROTOCOL)
    rows = []
    for kind, label, lrs, steps, losses in wsd_runs(task):
        row = {"kind": kind, "label": label, "peak": float(np.max(lrs)), "horizon": len(lrs)}
        row.update(decompose(problem, np.asarray(lrs), np.asarray(steps), np.asarray(losses)))
        rows.append(row)
    summary = {}
    for kind in ("pilot", "T", "2T"):
        group = [r for r in rows if r["kind"] == kind]
        if group:
            summary[kind] = {
                "runs": len(group),
                "median_gain_ratio": _median(group, "gain_ratio"),
                "median_error_at_start": _median(group, "error_at_start"),
                "median_error_final": _median(group, "error_final"),
            }
    line = "  ".join(
        f"{k}: gain x{v['median_gain_ratio']:.2f}, start {100 * v['median_error_at_start']:+.1f} %, "
        f"end {100 * v['median_error_final']:+.1f} %"
        for k, v in summary.items()
    )
    print(f"{task.name}: {line}", flush=True)
    return {"about": task.about, "summary": summary, "runs": rows}


def main(argv=None):
    _offline.main(argv, __doc__, "anneal-gain.json", run_task)


if __name__ == "__main__":
    main()
