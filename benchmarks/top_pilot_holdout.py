"""Real training, offline: does the top pilot's holdout error flag a design whose plateau overshoots? (issue 12)

``schedopt fit --holdout auto`` refits the pilots without the highest-rate one and reports how well the rest
predict it. Where that error is large, the model's response above the guess pilot's rate rests on that one
pilot. This script gives, for each task's default pilots (``long60-wider``, seed 0): that holdout error, the
design's plateau over tuned WSD's peak (``realtasks.json``, the headline arm), and the plateau the default
rule picks (``plateau_rules.py``'s ``flat-0.003``) priced on the measured seed-0 WSD curve next to a cap at the
geometric mean of the two highest pilot rates (what ``--twin`` does when seeds disagree), priced alike.

No training. Usage: uv run python benchmarks/top_pilot_holdout.py   (~10 min CPU)
Writes ``benchmarks/results/top-pilot-holdout.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _offline  # noqa: E402
import plateau_rules  # noqa: E402
import realtasks  # noqa: E402
from _clock import Clock  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt.calibration.fit import fit_pilots  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def run_task(name: str, report: dict) -> dict:
    task = TASKS[name]
    pilots = realtasks.pilot_runs(task, realtasks.DEFAULT_PROTOCOL)
    terms, floor = realtasks.MODELS["schedopt-floor"]
    with Clock() as clock:
        result = fit_pilots(
            pilots, n_modes=realtasks.FIT_MODES, holdout="auto", terms=terms, offset_floor=floor
        )
    plateau = plateau_rules.default_plateau(task, result.problem, pilots)
    rates = sorted(r.peak_learning_rate for r in pilots)
    cap = float(np.sqrt(rates[-1] * rates[-2]))
    design = report["tasks"][name]["design"]
    row = {
        "holdout": result.holdout,
        "headline_plateau_over_tuned_wsd": design["designed-default"]["peak"] / design["tuned wsd"]["peak"],
        "headline_minus_tuned_wsd": design["tuned wsd"].get("designed-default_minus_this"),
        "plateau": plateau,
        "plateau_priced": plateau_rules.price(task, plateau),
        "capped_plateau": min(plateau, cap),
        "capped_priced": plateau_rules.price(task, min(plateau, cap)),
        "fit_clock": clock.record(),
    }
    print(
        f"{name}: holdout {100 * result.holdout['rms_error']:.1f} % ({Path(result.holdout['held_out']).name}), "
        f"headline plateau x{row['headline_plateau_over_tuned_wsd']:.2f} tuned; priced {row['plateau_priced']:+.4f} "
        f"-> capped at {cap:.3g}: {row['capped_priced']:+.4f}",
        flush=True,
    )
    return row


def main(argv=None):
    report = json.loads((RESULTS / "realtasks.json").read_text())
    _offline.main(
        argv,
        __doc__,
        "top-pilot-holdout.json",
        lambda task: run_task(task.name, report),
        fit=f"{_offline.FIT}, holdout auto",
    )


if __name__ == "__main__":
    main()
