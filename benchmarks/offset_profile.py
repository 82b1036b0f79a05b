"""Real training, offline: can the pilots place the irreducible loss? A profile of ``schedopt fit`` over its floor.

``schedopt fit`` bounds the irreducible loss ``loss_offset`` below by ``OFFSET_FLOOR`` (0.5) x the smallest
pilot loss, and on seven tasks of nine the fit sits on that floor. Here the floor is raised (0.5, 0.65,
0.8, 0.9) and each task's planned pilots (``realtasks.DEFAULT_PROTOCOL``, pilot seed 0) are fitted again
with the default terms. For each floor: the fit's RMS error on the pilots (what a user can see), the panel's
errors as ``realtasks.predictions`` scores them (median / max absolute, signed medians at ``T`` and past it),
and the plateau the default rule picks, priced on the task's measured WSD curve (``fit_priors.score``).

The question: does the fit's own error rise where the panel's error rises, so that the pilots could choose
the floor (a profile likelihood), or is the offset a prior that no pilot statistic can set?

Usage: uv run python benchmarks/offset_profile.py [--task NAME ...]   (writes results/offset-profile.json;
about 20 CPU-s a fit, 36 fits)
"""

from __future__ import annotations

import argparse
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
from schedopt.calibration._model import TERMS  # noqa: E402
from schedopt.calibration.fit import FIT_MODES, fit_pilots  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FLOORS = (0.5, 0.65, 0.8, 0.9)


def profile(name: str) -> dict:
    """The task's fits and scores at every floor of :data:`FLOORS`."""
    task = TASKS[name]
    panel = rt._panel(task)
    runs = rt.pilot_runs(task, rt.DEFAULT_PROTOCOL, 0)
    smallest = min(float(np.min(r.losses)) for r in runs)
    rows = {}
    for floor in FLOORS:
        with Clock() as clock:
            result = fit_pilots(runs, n_modes=FIT_MODES, holdout="none", terms=TERMS, offset_floor=floor)
        rows[f"{floor:g}"] = {
            "fit_rms_error": result.fit_error["rms_error"],
            "offset_over_smallest_loss": result.parameters["loss_offset"] / smallest,
            **fit_priors.score(task, runs, panel, result.problem),
            "fit_clock": clock.record(),
        }
        print(name, floor, {k: v for k, v in rows[f"{floor:g}"].items() if k != "fit_clock"}, flush=True)
    best_fit = min(rows, key=lambda f: rows[f]["fit_rms_error"])
    best_panel = min(rows, key=lambda f: rows[f]["median_abs"])
    return {
        "panel_runs": len(panel),
        "floors": rows,
        "floor_the_pilots_prefer": best_fit,
        "floor_the_panel_prefers": best_panel,
        "fit_rms_ratio_at_the_panels_floor": rows[best_panel]["fit_rms_error"]
        / rows[best_fit]["fit_rms_error"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS))
    args = parser.parse_args(argv)
    with Clock() as clock:
        tasks = {name: profile(name) for name in args.task if rt._piloted(TASKS[name], rt.DEFAULT_PROTOCOL)}
    out = {
        "benchmark": "offset_profile",
        "protocol": rt.DEFAULT_PROTOCOL,
        "floors": FLOORS,
        "terms": list(TERMS),
        "tasks": tasks,
        "clock": clock.record(),
    }
    path = RESULTS / "offset-profile.json"
    atomic_write_text(path, json_text(out))
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
