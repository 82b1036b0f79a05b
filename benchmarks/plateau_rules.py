"""Real training, offline: how would other rules for the design's plateau have done? (issue 12)

``schedopt design`` puts a fitted network's plateau at the minimum of the model's final loss for
a WSD run at the pilots' horizon. Where that loss is flat (prose-adamw, prose-sgdm), the minimum
sits at the cap. This script scores plateau rules without training anything: each rule picks a
peak from the fitted model (``realtasks.fitted``, the default ``schedopt-floor`` fit of the planned
pilots), and the peak is scored by the task's **measured** WSD curve at the horizon (the seed-0
runs of WSD's tuning grid, quadratic in log peak through the three nearest grid points) minus the
tuned WSD's seed-0 loss. A proxy: a grid point's seed noise is ~0.003-0.005 nats, and a design's
own runs can differ from WSD at the same peak by as much (``realtasks.json``).

Rules: ``argmin`` (what ``design`` does; on a finer grid here: 16 levels an octave) and
``flat-<eps>``: the geometric centre of the contiguous peaks whose model loss is within ``eps``
(relative) of the minimum: the model cannot rank peaks its fit error (0.4-0.9 % RMS on these
tasks) does not separate; ``flat-0.003x<c>``: the default's plateau times ``c`` (a plateau kept
below or above the model's choice).

Each task is scored from its seed-0 pilots and, where ``realtasks.py``'s ``pilot-seeds`` stage ran,
from its pilots on the other seeds (``name@pilot-seed-s``): a rule that holds on both is less
likely to be fitted to one set of pilots. Sums are per pilot seed.

Usage: uv run python benchmarks/plateau_rules.py   (writes results/plateau-rules.json; ~10 CPU-s)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import realtasks as rt  # noqa: E402

from examples.tasks import TASKS  # noqa: E402

EPSILONS = (0.001, 0.002, 0.003, 0.005, 0.01, 0.02)
LEVELS_PER_OCTAVE = 16
#: the default rule's plateau (``flat-0.003``) scaled by these: would a plateau kept below (or above)
#: the model's choice do better, the loss being steeper on one side of the best peak than the other?
SCALES = (0.8, 0.9, 1.1, 1.25)


def wsd_curve(task) -> dict[float, float]:
    """Seed-0 final losses of the WSD tuning grid at the task's horizon, by peak."""
    jobs = [rt._family_job(task, "wsd", peak) for peak in rt.family_grid(task, "wsd")]
    return {job.meta["peak"]: rt.read_run(job)["final_val_loss"] for job in jobs}


def measured_at(curve: dict[float, float], peak: float) -> float:
    """The WSD curve at ``peak``: quadratic in log peak through the three nearest grid points."""
    peaks, losses = np.array(list(curve)), np.array(list(curve.values()))
    if peak <= peaks[0] or peak >= peaks[-1]:
        return float(np.interp(np.log(peak), np.log(peaks), losses))
    i = int(np.clip(np.searchsorted(peaks, peak) - 1, 0, len(peaks) - 3))
    coef = np.polyfit(np.log(peaks[i : i + 3]), losses[i : i + 3], 2)
    return float(np.polyval(coef, np.log(peak)))


def model_wsd_losses(task, problem, pilots) -> tuple[np.ndarray, np.ndarray]:
    """Peaks from the smallest pilot rate up to the fit's cap (:data:`LEVELS_PER_OCTAVE` an octave), and the
    fitted model's final loss of a WSD run (20 % 1-sqrt cooldown, the task's warmup) at each, at the
    pilots' horizon (where ``design`` chooses the plateau)."""
    from schedopt.calibration.fit import predict_network_loss

    horizon = max(r.horizon for r in pilots)
    cap = float(problem.network.network_learning_rate(problem.learning_rate.max))
    low = min(r.peak_learning_rate for r in pilots)
    peaks = low * 2 ** (np.arange(200) / LEVELS_PER_OCTAVE)
    peaks = peaks[peaks <= cap * (1 + 1e-9)]
    lrs = (rt.baseline_lrs("wsd", p, horizon, cooldown=0.2, warmup=task.warmup) for p in peaks)
    return peaks, np.array([float(predict_network_loss(problem, lr)[-1]) for lr in lrs])


def default_plateau(task, problem, pilots) -> float:
    """The peak the default rule (``flat-`` :data:`realtasks.FLAT_TOLERANCE`) picks from the fitted model."""
    peaks, model_loss = model_wsd_losses(task, problem, pilots)
    return rules(peaks, model_loss)[f"flat-{rt.FLAT_TOLERANCE:g}"]["peak"]


def price(task, peak: float) -> float:
    """WSD at ``peak`` on the task's measured seed-0 curve (:func:`measured_at`) minus tuned WSD there."""
    curve = wsd_curve(task)
    return measured_at(curve, peak) - min(curve.values())


def rules(peaks: np.ndarray, model_loss: np.ndarray) -> dict[str, dict]:
    best = int(np.argmin(model_loss))
    out = {"argmin": {"peak": float(peaks[best])}}
    for eps in EPSILONS:
        near = model_loss <= model_loss[best] * (1 + eps)
        lo = hi = best
        while lo > 0 and near[lo - 1]:
            lo -= 1
        while hi < len(peaks) - 1 and near[hi + 1]:
            hi += 1
        out[f"flat-{eps:g}"] = {
            "peak": float(np.sqrt(peaks[lo] * peaks[hi])),
            "indifferent": [float(peaks[lo]), float(peaks[hi])],
        }
    for scale in SCALES:
        out[f"flat-0.003x{scale:g}"] = {"peak": out["flat-0.003"]["peak"] * scale}
    return out


def main() -> None:

    t0, c0 = time.perf_counter(), time.process_time()
    tasks = {}
    pairs = [
        (n, s)
        for s in (0, *rt.PILOT_SEEDS)
        for n, t in TASKS.items()
        if rt._piloted(t, rt.DEFAULT_PROTOCOL, s) and all(j.done() for j in rt.grid_jobs(t))
    ]
    for name, seed in pairs:
        task = TASKS[name]
        problem, report = rt.fitted(task, "schedopt-floor", rt.DEFAULT_PROTOCOL, seed)
        pilots = rt.pilot_runs(task, rt.DEFAULT_PROTOCOL, seed)
        cap = float(problem.network.network_learning_rate(problem.learning_rate.max))
        peaks, model_loss = model_wsd_losses(task, problem, pilots)
        curve = wsd_curve(task)
        tuned = min(curve, key=curve.get)
        chosen = rules(peaks, model_loss)
        for rule in chosen.values():
            rule["measured_minus_tuned"] = measured_at(curve, rule["peak"]) - curve[tuned]
        key = name if seed == 0 else f"{name}@pilot-seed-{seed}"
        tasks[key] = {
            "pilot_seed": seed,
            "tuned_wsd_peak": tuned,
            "tuned_wsd_seed0_loss": curve[tuned],
            "cap": cap,
            "fit_rms_error": report["fit_error"]["rms_error"],
            "rules": chosen,
        }
        print(key, {k: round(v["measured_minus_tuned"], 4) for k, v in chosen.items()}, flush=True)
    totals = {
        f"pilot seed {seed}": {
            rule: sum(
                t["rules"][rule]["measured_minus_tuned"] for t in tasks.values() if t["pilot_seed"] == seed
            )
            for rule in next(iter(tasks.values()))["rules"]
        }
        for seed in sorted({t["pilot_seed"] for t in tasks.values()})
    }
    out = {
        "what": "plateau rules scored on the measured seed-0 WSD curves (a proxy; see the module doc)",
        "fit": "schedopt-floor on the long60-wider pilots, pilot seed 0 (task name) and the others "
        "(name@pilot-seed-s; benchmarks/results/realtasks/fits)",
        "tasks": tasks,
        "sum_measured_minus_tuned": totals,
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_average": list(os.getloadavg()),
    }
    path = ROOT / "benchmarks" / "results" / "plateau-rules.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    for seed, sums in totals.items():
        print("sums,", seed, {k: round(v, 4) for k, v in sums.items()})


if __name__ == "__main__":
    main()
