"""Real training: does the pilots' own forecast tell the sign and size of the model's error at the horizon?

The model's panel error on the twelve real tasks is mostly a bias of the whole panel, task by task (signed
medians from -20 % to +20 % at twice the horizon, ``realtasks.json``): the extrapolation in time. A user has
only the pilots. This script asks whether the pilots show that bias to the user, on the default plan
(``long60-wider``: a 0.6 T WSD pilot and two 0.2 T pilots):

- **forecast**: ``schedopt fit`` (the default model and call, as ``realtasks.fitted(..., "schedopt-floor")``)
  on the pilots with the long pilot cut at the short pilots' length (0.2 T), then the fitted model's
  prediction of the long pilot's final loss (0.6 T, after its cooldown) against what it reached: an
  extrapolation ×3 in time, as 0.6 T → 2 T is ×3.3;
- against the panel's signed median error at T and at 2T of the full fit (``realtasks.json``,
  ``schedopt-plan-floor``), per task.

Defined before it was run (2026-12-07): the forecast "tells" the bias if its sign agrees with the sign of the
2T panel median on at least 10 of the 12 tasks and Spearman's rank correlation between the two is at least
0.7. Then ``fit`` could report it (and a correction could be studied); otherwise it is recorded as a negative
result. Pilot seed 0; pilot seed 1 too where its pilots are cached (not part of the criterion).

No training. Usage: uv run python benchmarks/forecast_check.py [--task NAME ...]
Writes benchmarks/results/forecast-check.json (CPU and wall seconds and the load average of every fit).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import realtasks  # noqa: E402
from _clock import Clock  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt.calibration.fit import FIT_MODES, fit_pilots, predict_network_loss  # noqa: E402
from schedopt.calibration.pilots import PilotRun  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PROTOCOL = realtasks.DEFAULT_PROTOCOL
MODEL = "schedopt-floor"  # schedopt fit's default
PANEL = "schedopt-plan-floor"  # its panel in realtasks.json


def cut(run: PilotRun, steps: int) -> PilotRun:
    """The pilot as if it had stopped after ``steps`` updates."""
    keep = run.loss_steps <= steps
    return PilotRun(
        name=run.name,
        learning_rate=run.learning_rate[:steps],
        loss_steps=run.loss_steps[keep],
        losses=run.losses[keep],
        loss_column=run.loss_column,
    )


def forecast(runs: list[PilotRun]) -> dict:
    """Fit with the long pilot cut at the short pilots' length; predict the long pilot's last measurement."""
    short = min(r.horizon for r in runs)
    long_run = max(runs, key=lambda r: r.horizon)
    fitted_on = [cut(r, short) if r is long_run else r for r in runs]
    terms, floor = realtasks.MODELS[MODEL]
    with Clock() as clock:
        result = fit_pilots(fitted_on, n_modes=FIT_MODES, holdout="none", terms=terms, offset_floor=floor)
    curve = np.asarray(predict_network_loss(result.problem, long_run.learning_rate))
    actual = float(long_run.losses[-1])
    predicted = float(curve[int(long_run.loss_steps[-1])])
    at_cut = float(long_run.losses[long_run.loss_steps <= short][-1])
    return {
        "long_pilot": _relative(long_run.name),
        "fitted_up_to_step": short,
        "long_pilot_steps": long_run.horizon,
        "actual_last": actual,
        "predicted_last": predicted,
        "error_last": predicted / actual - 1,
        "actual_at_cut": at_cut,
        "status": str(result.status),
        "fit_error": result.fit_error["rms_error"],
        "fit_clock": clock.record(),
    }


def _relative(name: str) -> str:
    """A pilot's file name relative to the repository (results hold no path of this machine)."""
    path = Path(name)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else name


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", action="append", default=None)
    p.add_argument("--out", type=Path, default=RESULTS / "forecast-check.json")
    args = p.parse_args(argv)
    report = json.loads((RESULTS / "realtasks.json").read_text())["tasks"]
    names = args.task or list(report)
    out: dict = {"protocol": PROTOCOL, "model": MODEL, "tasks": {}}
    for name in names:
        task = TASKS[name]
        horizon = int(report[name]["horizon"])
        signed = report[name]["prediction"]["signed_median_error"][PANEL]
        entry = {
            "horizon": horizon,
            "panel_signed_median_at_T": signed[f"T{horizon}"],
            "panel_signed_median_at_2T": signed[f"T{2 * horizon}"],
            "forecast": {},
        }
        for seed in (0, 1):
            if not realtasks._piloted(task, PROTOCOL, seed):
                continue
            entry["forecast"][f"pilot-seed-{seed}"] = f = forecast(realtasks.pilot_runs(task, PROTOCOL, seed))
            print(
                f"{name} pilot seed {seed}: forecast {100 * f['error_last']:+.2f} % "
                f"(panel T {100 * entry['panel_signed_median_at_T']:+.2f} %, "
                f"2T {100 * entry['panel_signed_median_at_2T']:+.2f} %), {f['fit_clock']['cpu_s']:.0f} CPU-s",
                flush=True,
            )
        out["tasks"][name] = entry
    rows = [(e["forecast"]["pilot-seed-0"]["error_last"], e) for e in out["tasks"].values()]
    fc = np.array([f for f, _ in rows])
    for where in ("T", "2T"):
        panel = np.array([e[f"panel_signed_median_at_{where}"] for _, e in rows])
        out[f"against_panel_at_{where}"] = {
            "same_sign": int(np.sum(np.sign(fc) == np.sign(panel))),
            "tasks": len(rows),
            "spearman": float(spearmanr(fc, panel).statistic) if len(rows) > 2 else None,
        }
    crit = out["against_panel_at_2T"]
    out["criterion_met"] = bool(crit["same_sign"] >= 10 and (crit["spearman"] or 0) >= 0.7)
    out["python"] = platform.python_version()
    atomic_write_text(args.out, json_text(out))
    print(json.dumps({k: out[k] for k in ("against_panel_at_T", "against_panel_at_2T", "criterion_met")}))


if __name__ == "__main__":
    main()
