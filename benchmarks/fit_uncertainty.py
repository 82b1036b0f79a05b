"""Real training: which parameters `schedopt fit` reports as identified, before and after its standard errors
hold the undetermined coordinates (issue 12).

Before, one coordinate the pilots leave undetermined (a singular ``J^T J``: e.g. the null modes of a fit whose
noise is near 0, which then have no effect) made every standard error infinite, and ``fit`` named every
parameter as not identified. Now such coordinates are held at their values and only they, and the parameters
that depend on them, get an infinite standard error (``_solve._determined``). This script refits each task's
default pilots (``long60-wider``, pilot seed 0, the fit's defaults) and compares the standard errors and the
identified parameters with the cached fit report made before (``benchmarks/results/realtasks/fits``); the
fitted parameters themselves must not move (the change is in the uncertainties only).

Usage: uv run python benchmarks/fit_uncertainty.py   (writes results/fit-uncertainty.json)
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import realtasks as rt  # noqa: E402

from examples.tasks import TASKS  # noqa: E402

MODEL = "schedopt-floor"


def main() -> None:
    from schedopt.calibration.fit import fit_pilots

    t0, c0 = time.perf_counter(), time.process_time()
    tasks = {}
    for name, task in TASKS.items():
        cached = rt.FITS / f"{name}{rt._tag(rt.DEFAULT_PROTOCOL)}-{MODEL}.json"
        if not cached.exists():
            continue
        before = json.loads(cached.read_text())
        terms, floor = rt.MODELS[MODEL]
        runs = rt.pilot_runs(task, rt.DEFAULT_PROTOCOL)
        after = fit_pilots(runs, n_modes=rt.FIT_MODES, holdout="none", terms=terms, offset_floor=floor)
        moved = max(
            abs(after.parameters[k] - v) / max(abs(v), 1e-300) for k, v in before["parameters"].items()
        )
        finite = {k: v is not None and math.isfinite(v) for k, v in before["std_errors"].items()}
        tasks[name] = {
            "parameters_max_relative_change": moved,
            "identified_before": sorted(k for k, v in before["identified"].items() if v),
            "identified_after": sorted(k for k, v in after.identified.items() if v),
            "finite_std_errors_before": sum(finite.values()),
            "finite_std_errors_after": sum(math.isfinite(v) for v in after.std_errors.values()),
            "std_errors_after": {k: (v if math.isfinite(v) else None) for k, v in after.std_errors.items()},
            "phase_z_after": after.phase_z if math.isfinite(after.phase_z) else None,
        }
        t = tasks[name]
        print(
            f"{name}: identified {len(t['identified_before'])} -> {len(t['identified_after'])} "
            f"({', '.join(t['identified_after'])}); finite SEs {t['finite_std_errors_before']} -> "
            f"{t['finite_std_errors_after']}; parameters moved {moved:.1e}",
            flush=True,
        )
    out = {
        "what": "standard errors and identified parameters of the default fit (long60-wider pilots, pilot seed 0), "
        "cached before the change against refitted after it",
        "tasks": tasks,
        "summary": {
            "fits": len(tasks),
            "all_infinite_before": sum(t["finite_std_errors_before"] == 0 for t in tasks.values()),
            "all_infinite_after": sum(t["finite_std_errors_after"] == 0 for t in tasks.values()),
            "parameters_max_relative_change": max(
                t["parameters_max_relative_change"] for t in tasks.values()
            ),
        },
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    (ROOT / "benchmarks" / "results" / "fit-uncertainty.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
