"""Does today's ``fit`` give the cached fits? Every fit the real-task benchmark cached, refitted and compared.

``realtasks.py`` caches each ``schedopt fit`` it ran (``results/realtasks/fits/<task>[-<protocol>][-pilot-s<seed>]-
<model>.json``: every pilot protocol, pilot seed and model variant). This script refits each from its cached
pilot logs with the same call (``holdout="none"``, the model's terms and offset floor) and records the largest
relative change of a fitted parameter, the change of the fit's RMS error and of the design's cap, and the
fit's CPU and wall seconds. A change of the fit's code that should change no fit (a speed-up) is checked by it.

No training. Usage: uv run python benchmarks/fit_reproduce.py [--out FILE]   (the 157 cached fits: ~25 min
CPU; the fit's scouts run on both cores of this machine, ~15 min wall). Writes
``benchmarks/results/fit-reproduce.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import realtasks  # noqa: E402
from _clock import Clock  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt.calibration.fit import fit_pilots  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
#: Cached model names, longest first (``schedopt`` is a suffix of the others).
MODELS = sorted(realtasks.MODELS, key=len, reverse=True)


def cached_fits() -> list[tuple[Path, str, str, int, str]]:
    """``(report, task, protocol, pilot seed, model)`` of every cached fit, by file name."""
    tasks = sorted(TASKS, key=len, reverse=True)
    out = []
    for report in sorted(realtasks.FITS.glob("*.json")):
        model = next((m for m in MODELS if report.stem.endswith("-" + m)), None)
        if model is None:
            continue  # a design or a Multi-Power Law fit
        head = report.stem[: -len(model) - 1]
        task = next(t for t in tasks if head == t or head.startswith(t + "-"))
        rest, seed = head[len(task) :], 0
        if "-pilot-s" in rest:
            rest, number = rest.split("-pilot-s")
            seed = int(number)
        out.append((report, task, rest[1:] or "long-short", seed, model))
    return out


def refit(report: Path, task: str, protocol: str, seed: int, model: str) -> dict:
    cached = json.loads(report.read_text())
    runs = realtasks.pilot_runs(TASKS[task], protocol, seed)
    terms, floor = realtasks.MODELS[model]
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit_pilots(runs, n_modes=realtasks.FIT_MODES, holdout="none", terms=terms, offset_floor=floor)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    new, old = result.parameters, cached["parameters"]
    return {
        "task": task,
        "protocol": protocol,
        "pilot_seed": seed,
        "model": model,
        "largest_parameter_change": max(abs(new[k] - old[k]) / max(abs(old[k]), 1e-300) for k in old),
        "rms_error_change": result.fit_error["rms_error"] / cached["fit_error"]["rms_error"] - 1,
        "cap_change": result.learning_rate_cap["network"] / cached["learning_rate_cap"]["network"] - 1,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=RESULTS / "fit-reproduce.json")
    args = p.parse_args(argv)
    fits = {}
    with Clock() as clock:
        for job in cached_fits():
            fits[job[0].name] = row = refit(*job)
            print(f"{job[0].name}: {row['largest_parameter_change']:.1e} ({row['cpu_s']} CPU s)", flush=True)
    by_model = {}
    for model in MODELS:
        rows = [r for r in fits.values() if r["model"] == model]
        if rows:
            change = np.array([r["largest_parameter_change"] for r in rows])
            by_model[model] = {
                "fits": len(rows),
                "largest_parameter_change": {"max": float(change.max()), "median": float(np.median(change))},
                "above_1e-6": int(np.sum(change > 1e-6)),
                "largest_rms_error_change": max(abs(r["rms_error_change"]) for r in rows),
                "largest_cap_change": max(abs(r["cap_change"]) for r in rows),
                "cpu_s": round(sum(r["cpu_s"] for r in rows), 1),
            }
    record = {
        "summary": by_model,
        "fits": fits,
        "clock": clock.record(),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
    }
    atomic_write_text(args.out, json_text(record).replace(str(ROOT) + "/", ""))


if __name__ == "__main__":
    main()
