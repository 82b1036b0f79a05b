"""Write ``schedopt/data/recommend.json``: the shapes and the evidence behind ``schedopt recommend``.

The shapes are the optimal schedules of the two shipped phase problems
(``problems/easy-phase.toml``, ``problems/hard-phase.toml``, T = 1e4), solved here and
stored as learning rate / peak at a few hundred steps (block edges, log- and
linearly-spaced steps; linear interpolation between them is within 1e-3 of the solve).
The evidence is copied, not retyped, from the measured results of other benchmarks:

* ``results/scaling.json`` ``transfer``: the gap to re-optimising at 4T of the phase
  rule's transfer and of the plain stretch in t/T, per phase;
* ``results/realtasks.json``: on the small real training tasks (tiny GPT, T = 1000-2000),
  the designed schedule's final loss minus tuned WSD's, and minus WSD at the designed
  peak (paired over seeds, mean and standard error); and the fitted model's errors in the
  final loss of the held-out WSD-shaped runs at the horizon and twice it, which ``schedopt
  design`` quotes beside a fitted spec's predicted final loss.

``tests/test_recommend.py`` checks the evidence against those files and (slow) the
shapes against a fresh solve.

    uv run python benchmarks/recommend.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import schedopt

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "schedopt" / "data" / "recommend.json"
PROBLEMS = {"easy": "easy-phase", "hard": "hard-phase"}
SAMPLES = 300


def knots(horizon: int, edges) -> np.ndarray:
    """Steps where the shape is stored: block edges and log/linear samples, within ``[0, T-1]``."""
    points = np.concatenate(
        [
            np.minimum(np.asarray(edges), horizon - 1),
            np.round(np.geomspace(1, horizon, SAMPLES)) - 1,
            np.round(np.linspace(0, horizon - 1, SAMPLES)),
            horizon - 1 - (np.round(np.geomspace(1, horizon, SAMPLES)) - 1),  # dense near the end
        ]
    )
    return np.unique(points.astype(int))


def shape(phase: str) -> dict:
    name = PROBLEMS[phase]
    problem = schedopt.load_problem(ROOT / "problems" / f"{name}.toml")
    start = time.perf_counter()
    solution = schedopt.solve(problem)
    seconds = time.perf_counter() - start
    lr = solution.per_step("learning_rate")
    steps = knots(problem.horizon, solution.grids["learning_rate"].describe()["edges"])
    factor = lr[steps] / lr.max()
    rebuilt = np.interp(np.arange(problem.horizon), steps, factor)
    return {
        "source": f"problems/{name}.toml",
        "a": problem.model.a,
        "b": problem.model.b,
        "horizon": problem.horizon,
        "status": solution.status,
        "solve_seconds": round(seconds, 1),
        "max_interpolation_error": float(np.max(np.abs(rebuilt - lr / lr.max()))),
        "steps": steps.tolist(),
        "factor": factor.tolist(),
    }


def evidence() -> dict:
    scaling = json.loads((RESULTS / "scaling.json").read_text())["transfer"]
    model = {
        key: {
            "phase": entry["phase"],
            "source_horizon": entry["source_horizon"],
            "horizon": entry["horizon"],
            "gap_transferred": entry["gaps"]["transferred"],
            "gap_stretch": entry["gaps"]["stretch"],
        }
        for key, entry in scaling.items()
    }
    results = json.loads((RESULTS / "realtasks.json").read_text())
    tasks, headline = results["tasks"], results["protocol"]["headline_arm"]
    real = {}
    for name, task in tasks.items():
        design = task["design"]
        real[name] = {  # what `schedopt pilots` -> fit -> `schedopt design` gives (the report's headline arm)
            "about": task["about"],
            "horizon": task["horizon"],
            "designed_mean": design[headline]["mean"],
            "tuned_wsd_mean": design["tuned wsd"]["mean"],
            "designed_minus_tuned_wsd": design["tuned wsd"][f"{headline}_minus_this"],
        }
        # the same design from the same pilots trained on another seed (another draw of the pilots); the
        # follow-up arm's draws ("followup, pilot seed N") are another design, not this one
        redrawn = {
            k: v
            for k, v in (task.get("design_by_pilot_seed") or {}).items()
            if k.startswith("pilot seed ") and k != "pilot seed 0"
        }
        if redrawn:
            real[name]["other_pilot_draws"] = {k: v["design_minus_tuned_wsd"] for k, v in redrawn.items()}
    return {
        "model_transfer": {"source": "benchmarks/results/scaling.json (transfer)", "runs": model},
        "real_tasks": {"source": "benchmarks/results/realtasks.json (tasks.*.design)", "tasks": real},
        "prediction": prediction_evidence(tasks),
    }


#: The fit whose predictions `schedopt design` quotes the measured errors of: what `schedopt pilots` plans
#: and `schedopt fit` fits by default (realtasks' ``schedopt-plan-floor``).
PREDICTION_MODEL = "schedopt-plan-floor"


def wsd_shaped(label: str) -> bool:
    """A panel run of the shape `schedopt design` writes for a fitted spec: a plateau, then WSD's 1-sqrt anneal
    (the WSD runs and the design arms ``realtasks`` counts as WSD-shaped; not cosine, linear or the free-form
    and model-annealed arms)."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from realtasks import _WSD_SHAPED

    return label.startswith(("wsd-", *(f"{arm}-T" for arm in _WSD_SHAPED)))


def prediction_evidence(tasks: dict) -> dict:
    """Per task and extrapolation (horizon / the longest pilot's): the fitted model's relative errors in the
    final loss of the held-out WSD-shaped runs (signed: predicted / measured - 1)."""
    out = {}
    for name, task in tasks.items():
        prediction = task["prediction"]
        pilot_horizon = prediction["fits"][PREDICTION_MODEL]["horizon"]
        by_ratio = {}
        for horizon in (task["horizon"], 2 * task["horizon"]):
            errors = [
                r[f"{PREDICTION_MODEL}_error"]
                for r in prediction["runs"]
                if r["label"].endswith(f"-T{horizon}") and wsd_shaped(r["label"])
            ]
            if errors:
                by_ratio[f"{horizon / pilot_horizon:.4g}"] = {
                    "horizon": horizon,
                    "runs": len(errors),
                    "median_abs": float(np.median(np.abs(errors))),
                    "max_abs": float(np.max(np.abs(errors))),
                    "signed_median": float(np.median(errors)),
                }
        out[name] = {"pilot_horizon": pilot_horizon, "by_extrapolation": by_ratio}
    return {
        "source": f"benchmarks/results/realtasks.json (tasks.*.prediction.runs, {PREDICTION_MODEL}, WSD-shaped runs)",
        "tasks": out,
    }


def main() -> None:
    data = {
        "kind": "schedopt.recommend",
        "schema_version": 1,
        "written_by": "benchmarks/recommend.py",
        "shapes": {phase: shape(phase) for phase in PROBLEMS},
        "evidence": evidence(),
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    for phase, entry in data["shapes"].items():
        print(phase, entry["status"], entry["solve_seconds"], "s", len(entry["steps"]), "knots",
              f"interpolation error {entry['max_interpolation_error']:.2e}")  # fmt: skip
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
