"""Real training, offline: two ways the fit could have told a better story, measured (issue 12, not in the tool).

1. **The pilots' last points.** ``schedopt fit`` weighs every pilot equally, its points alike, and leaves
   the long pilot's final (annealed) loss predicted too high on most tasks. Here each pilot's last fitted
   point gets ``k`` times the weight of the rest of its run together (``k`` = 0: the fit as shipped, 0.5,
   1): is a fit that honours the measured end of an anneal better at the panel's final losses?
2. **Fits of near-equal cost.** The fit keeps the best of its starts. Here the ``STARTS_KEPT`` best scouts
   are each polished to convergence: do fits that explain the pilots about as well disagree about the
   plateau, so that a design over them (a decision under the fit's ambiguity) would differ from the best
   fit's?

Each task's planned pilots (``realtasks.DEFAULT_PROTOCOL``, pilot seed 0), the default terms and offset
floor; every variant scored by ``fit_priors.score`` (the panel's median / max / signed errors, and the
default rule's plateau priced on the task's measured WSD curve).

Usage: uv run python benchmarks/fit_robustness.py [--task NAME ...]   (writes results/fit-robustness.json;
about 20 CPU-s a fit, 40 fits)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import fit_priors  # noqa: E402
import realtasks as rt  # noqa: E402
from _clock import Clock  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt.calibration import _solve  # noqa: E402
from schedopt.calibration._model import OFFSET_FLOOR, TERMS  # noqa: E402
from schedopt.calibration.fit import FIT_MODES, fit_pilots  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
END_WEIGHTS = (0.0, 0.5, 1.0)
STARTS_KEPT = 8


def end_weight(k: float):
    """Within the block the fit gives each pilot's last fitted point ``k`` x the weight of the rest of its run."""

    def last_points(runs, data):
        weight, run_index = np.array(data.weight), np.asarray(data.run_index)
        for i in range(len(runs)):
            fitted = np.flatnonzero((run_index == i) & (weight > 0))
            if k and fitted.size:  # a point's weight enters the cost squared: sqrt(n) points' worth
                weight[fitted[-1]] *= k * np.sqrt(fitted.size)
        return weight

    return fit_priors.measurement_weights(last_points)


@contextlib.contextmanager
def polished_start(rank: int, cache: dict):
    """Within the block the fit returns the ``rank``-th best of its :data:`STARTS_KEPT` best scouts, each
    polished to convergence (``cache``: the polished fits of this task, computed once)."""
    plain = _solve._least_squares

    def ranked(objective, starts, bounds):
        if "fits" not in cache:
            scouts = sorted(
                (_solve._run_start(objective, x0, bounds, _solve._SCOUT_EVALUATIONS) for x0 in starts),
                key=lambda r: r.cost,
            )
            fits = [
                s if s.status != 0 else _solve._run_start(objective, s.x, bounds, _solve._MAX_EVALUATIONS)
                for s in scouts[:STARTS_KEPT]
            ]
            cache["fits"] = sorted(fits, key=lambda r: r.cost)
        return cache["fits"][rank]

    _solve._least_squares = ranked
    try:
        yield
    finally:
        _solve._least_squares = plain


def _fit(runs):
    return fit_pilots(runs, n_modes=FIT_MODES, holdout="none", terms=TERMS, offset_floor=OFFSET_FLOOR)


def _pilot_end_errors(runs, problem) -> list[float]:
    from schedopt.calibration.fit import predict_network_loss

    return [float(predict_network_loss(problem, r.learning_rate)[-1]) / float(r.losses[-1]) - 1 for r in runs]


def task_rows(name: str) -> dict:
    task = TASKS[name]
    panel = rt._panel(task)
    runs = rt.pilot_runs(task, rt.DEFAULT_PROTOCOL, 0)
    ends = {}
    for k in END_WEIGHTS:
        with end_weight(k), Clock() as clock:
            result = _fit(runs)
        ends[f"{k:g}"] = {
            **fit_priors.score(task, runs, panel, result.problem),
            "pilot_end_errors": _pilot_end_errors(runs, result.problem),
            "fit_clock": clock.record(),
        }
        print(
            name, "end weight", k, {x: y for x, y in ends[f"{k:g}"].items() if x != "fit_clock"}, flush=True
        )
    cache: dict = {}
    starts = []
    for rank in range(STARTS_KEPT):
        with polished_start(rank, cache):
            result = _fit(runs)
        cost = float(cache["fits"][rank].cost / cache["fits"][0].cost)
        starts.append({"cost_over_best": cost, **fit_priors.score(task, runs, panel, result.problem)})
        print(name, "start", rank, starts[-1], flush=True)
    plateaus = [s["plateau_over_tuned_wsd_peak"] for s in starts if s["cost_over_best"] <= 1.01]
    return {
        "panel_runs": len(panel),
        "end_weights": ends,
        "starts": starts,
        "plateau_spread_within_1pct_cost": [min(plateaus), max(plateaus)],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS))
    args = parser.parse_args(argv)
    with Clock() as clock:
        tasks = {name: task_rows(name) for name in args.task if rt._piloted(TASKS[name], rt.DEFAULT_PROTOCOL)}
    out = {
        "benchmark": "fit_robustness",
        "protocol": rt.DEFAULT_PROTOCOL,
        "end_weights": END_WEIGHTS,
        "starts_kept": STARTS_KEPT,
        "tasks": tasks,
        "clock": clock.record(),
    }
    path = RESULTS / "fit-robustness.json"
    atomic_write_text(path, json_text(out))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
