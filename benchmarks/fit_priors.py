"""Real training, offline: two priors on ``schedopt fit`` that the pilots cannot check, scored on the panel.

Each is a change to the default fit (``realtasks.fitted(..., "schedopt-floor")``: exponent and null
modes, the irreducible loss at least ``OFFSET_FLOOR`` x the smallest pilot loss) on the planned pilots
(``realtasks.DEFAULT_PROTOCOL``), pilot seeds 0 and 1, seven tasks:

1. ``offset-fixed``: the irreducible loss **fixed** at the floor instead of free above it. On 28 fits
   (four protocols, two seeds) it leaves the floor only on prose-sgdm and code-adamw-deep, the fits in
   which no gradient noise is identified, and both predict too high there: is the offset the cause?
2. ``late-q``: later measurements weigh more: each measurement's log residual times
   ``(t / the pilot's horizon) ** q`` (q = 0.5, 1), every pilot's total weight kept. The predictions are
   at and past the pilots' horizon, so the fit might be made to follow the curves where they end.

Scored as ``realtasks.predictions`` scores the panel (median and max absolute error of the predicted
final validation loss, signed medians at ``T`` and beyond it) and by ``plateau_rules``' proxy for the
design: the plateau the default rule (``flat-0.003``) picks from the fit, priced on the task's measured
seed-0 WSD curve, minus tuned WSD.

Usage: uv run python benchmarks/fit_priors.py   (writes results/fit-priors.json; ~15 CPU-min)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import plateau_rules as pr  # noqa: E402
import realtasks as rt  # noqa: E402
from prediction_variants import fit_box  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt.calibration import _model, _solve  # noqa: E402
from schedopt.calibration._model import OFFSET_FLOOR, TERMS  # noqa: E402
from schedopt.calibration.fit import FIT_MODES, fit_pilots, predict_network_loss  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = ("default", "offset-fixed", "late-0.5", "late-1")


@contextlib.contextmanager
def _offset_fixed():
    """The offset's box shrunk to its floor (and every start moved into the box) for the block."""
    starts = _solve._starts

    def inside(runs, data, layout):
        lo, hi = _model._bounds(layout)
        return [np.clip(x, lo, hi) for x in starts(runs, data, layout)]

    _solve._starts = inside
    try:
        with fit_box(loss_offset=(0.0, OFFSET_FLOOR + 1e-6)):
            yield
    finally:
        _solve._starts = starts


@contextlib.contextmanager
def measurement_weights(reweight):
    """For the block, the fit's measurement weights are ``reweight(runs, data)``, ``data`` the pilots as the
    fit stacks them (``_solve._data``: weights, run and step indices)."""
    data = _solve._data

    def weighted(runs, max_learning_rate, held_out=None):
        d = data(runs, max_learning_rate, held_out)
        return dataclasses.replace(d, weight=reweight(runs, d))

    _solve._data = weighted
    try:
        yield
    finally:
        _solve._data = data


def _late_weights(q: float):
    """Measurement weights times ``(t / horizon) ** q``, each pilot's total weight kept, for the block."""

    def late(runs, d):
        horizon = np.concatenate([np.full(r.losses.size, r.horizon) for r in runs])
        w = d.weight * (np.maximum(d.step_index, 1) / horizon) ** q
        for i in range(len(runs)):
            mine = d.run_index == i
            if w[mine].sum() > 0:
                w[mine] *= d.weight[mine].sum() / w[mine].sum()
        return w

    return measurement_weights(late)


def _variant(name: str):
    if name == "default":
        return contextlib.nullcontext()
    if name == "offset-fixed":
        return _offset_fixed()
    return _late_weights(float(name.split("-", 1)[1]))


def score(task, runs, panel, problem) -> dict:
    errors = np.array(
        [float(predict_network_loss(problem, job.lrs)[-1]) / run["final_val_loss"] - 1 for job, run in panel]
    )
    at_horizon = np.array([job.label.endswith(f"-T{task.horizon}") for job, _ in panel])
    curve = pr.wsd_curve(task)
    tuned = min(curve, key=curve.get)
    plateau = pr.default_plateau(task, problem, runs)
    return {
        "median_abs": float(np.median(np.abs(errors))),
        "max_abs": float(np.max(np.abs(errors))),
        "signed_median_at_T": float(np.median(errors[at_horizon])),
        "signed_median_beyond_T": float(np.median(errors[~at_horizon])) if (~at_horizon).any() else None,
        "plateau_over_tuned_wsd_peak": plateau / tuned,
        "plateau_measured_minus_tuned": pr.price(task, plateau),
    }


def main() -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    tasks: dict = {}
    for name, task in TASKS.items():
        if not all(j.done() for j in rt.grid_jobs(task)):  # no measured WSD curve to price a plateau on
            continue
        panel = rt._panel(task)
        for seed in (0, *rt.PILOT_SEEDS):
            if not rt._piloted(task, rt.DEFAULT_PROTOCOL, seed):
                continue
            runs = rt.pilot_runs(task, rt.DEFAULT_PROTOCOL, seed)
            smallest = min(float(np.min(r.losses)) for r in runs)
            key = name if seed == 0 else f"{name}@pilot-seed-{seed}"
            tasks[key] = {"pilot_seed": seed, "panel_runs": len(panel), "variants": {}}
            for variant in VARIANTS:
                c = time.process_time()
                with _variant(variant):
                    result = fit_pilots(runs, n_modes=FIT_MODES, holdout="none", terms=TERMS)
                tasks[key]["variants"][variant] = {
                    **score(task, runs, panel, result.problem),
                    "fit_rms_error": result.fit_error["rms_error"],
                    "offset_over_smallest_loss": result.parameters["loss_offset"] / smallest,
                    "fit_cpu_s": round(time.process_time() - c, 1),
                }
            print(key, {v: round(r["median_abs"], 4) for v, r in tasks[key]["variants"].items()}, flush=True)
    sums = {
        f"pilot seed {seed}": {
            variant: {
                "mean_median_abs": float(
                    np.mean(
                        [
                            t["variants"][variant]["median_abs"]
                            for t in tasks.values()
                            if t["pilot_seed"] == seed
                        ]
                    )
                ),
                "plateau_measured_minus_tuned_sum": float(
                    sum(
                        t["variants"][variant]["plateau_measured_minus_tuned"]
                        for t in tasks.values()
                        if t["pilot_seed"] == seed
                    )
                ),
            }
            for variant in VARIANTS
        }
        for seed in sorted({t["pilot_seed"] for t in tasks.values()})
    }
    out = {
        "what": __doc__.splitlines()[0],
        "variants": VARIANTS,
        "tasks": tasks,
        "summary": sums,
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_average": list(os.getloadavg()),
    }
    atomic_write_text(RESULTS / "fit-priors.json", json_text(out))
    print(json.dumps(sums, indent=1))
    print("wrote benchmarks/results/fit-priors.json")


if __name__ == "__main__":
    main()
