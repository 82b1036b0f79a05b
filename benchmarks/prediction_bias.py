"""Real training, offline: how much of the prediction error is one level per task, and how much is run by run?

``realtasks.json`` scores the default fit (``schedopt-plan-floor``: the planned pilots, ``schedopt fit``'s defaults)
on each task's held-out panel. Here, on the runs at the horizon ``T`` (the design comparison; the 2T transfer runs
apart), each task's errors are split into its **level**, the median signed relative error (what one number per task,
say a single long run's, could correct), and the **rest**, each run's error minus that level (what depends on the
run's peak and shape). Reported per task and as medians over tasks: the median and largest absolute error, and the
same after the level is taken out; and per task the run whose error is largest once the level is out (how many of
those are cosine at 1.41x tuned WSD's peak or more). No fitting, no training: a reading of ``realtasks.json``.

Usage: uv run python benchmarks/prediction_bias.py   (writes results/prediction-bias.json)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from schedopt._io import atomic_write_text, json_text  # noqa: E402

MODEL = "schedopt-plan-floor"
PEER = "mpl-plan"


def _runs_at_horizon(task: dict, model: str) -> list[dict]:
    """The task's panel runs at its horizon (not the 2T runs) that the model predicted (a finite error)."""
    twice = f"T{2 * task['horizon']}"
    key = f"{model}_error"
    return [
        r
        for r in task["prediction"]["runs"]
        if r.get(key) is not None and twice not in r["label"] and r[key] == r[key]
    ]


def _worst_run(task: dict, model: str, runs: list[dict], level: float) -> dict:
    """Of ``runs`` (:func:`_runs_at_horizon`), the one with the largest error once the task's ``level`` is taken out:
    its label, seed, error less the level, and its peak over tuned WSD's peak (for a baseline of the tuning grids)."""
    key = f"{model}_error"
    worst = max(runs, key=lambda r: abs(r[key] - level))
    family, _, rest = worst["label"].partition("-")
    peak = rest.split("-T")[0] if family in ("cosine", "linear", "wsd") else None
    return {
        "label": worst["label"],
        "seed": worst["seed"],
        "error_less_level": worst[key] - level,
        "family": family if peak is not None else None,
        "peak_over_tuned_wsd": None if peak is None else float(peak) / task["design"]["tuned wsd"]["peak"],
    }


def split(errors: list[float]) -> dict:
    """Level (median signed error), and the median and largest absolute error with and without it."""
    level = statistics.median(errors)
    rest = [abs(e - level) for e in errors]
    return {
        "runs": len(errors),
        "level": level,
        "median_abs": statistics.median(abs(e) for e in errors),
        "max_abs": max(abs(e) for e in errors),
        "median_abs_without_level": statistics.median(rest),
        "max_abs_without_level": max(rest),
    }


def main() -> None:
    tasks = json.loads((ROOT / "benchmarks" / "results" / "realtasks.json").read_text())["tasks"]
    out = {"what": __doc__.split("\n\n")[0], "model": MODEL, "peer": PEER, "tasks": {}, "over_tasks": {}}
    for name, task in tasks.items():
        runs = {model: _runs_at_horizon(task, model) for model in (MODEL, PEER)}
        if not runs[MODEL]:
            continue
        out["tasks"][name] = {
            model: split([r[f"{model}_error"] for r in rows]) for model, rows in runs.items() if rows
        }
        ours = out["tasks"][name][MODEL]
        ours["worst_run"] = _worst_run(task, MODEL, runs[MODEL], ours["level"])
    for model in (MODEL, PEER):
        rows = [t[model] for t in out["tasks"].values() if model in t]
        out["over_tasks"][model] = {
            key: statistics.median(r[key] for r in rows)
            for key in ("median_abs", "max_abs", "median_abs_without_level", "max_abs_without_level")
        } | {
            "median_abs_level": statistics.median(abs(r["level"]) for r in rows),
            "tasks": len(rows),
            "tasks_median_without_level_at_most_1pct": sum(
                r["median_abs_without_level"] <= 0.01 for r in rows
            ),
            "tasks_max_without_level_at_most_3pct": sum(r["max_abs_without_level"] <= 0.03 for r in rows),
        }
    worst = [t[MODEL]["worst_run"] for t in out["tasks"].values()]
    high_cosine = [w for w in worst if w["family"] == "cosine" and w["peak_over_tuned_wsd"] >= 1.41]
    out["over_tasks"][MODEL]["worst_run_cosine_at_1_41x_tuned_wsd_peak_or_more"] = len(high_cosine)
    out["over_tasks"][MODEL]["of_those_predicted_too_low"] = sum(
        w["error_less_level"] < 0 for w in high_cosine
    )
    atomic_write_text(ROOT / "benchmarks" / "results" / "prediction-bias.json", json_text(out))
    print(json.dumps(out["over_tasks"], indent=1))


if __name__ == "__main__":
    main()
