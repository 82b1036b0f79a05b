"""Real training, offline: a floor under the design where the top pilot is still far ahead (issue 12).

``schedopt fit`` notes when the pilot at the highest rate is more than 5 % below the next lower one at the last
step both are still at their peak, and the pilots do not bracket the best peak from above
(``_checks._top_pilot_lead``, ``_bracket_above``): the loss is still falling steeply at the top of the pilots'
range, and the note asks for a pilot above it. The design itself today takes the model's plateau, which can sit
well below that top rate. The rule measured here: where the note fires, the plateau is at least the top pilot's
rate (``fit`` records it only where no other rule lowered the cap below it). Scored on every cached pilot set of
``realtasks.py`` without training, as ``bracket_cap.py`` scores its rules: the default design's plateau with and
without the floor, each priced on the task's measured seed-0 WSD curve (``plateau_rules.price``; flat beyond the
grid's ends, so a floor above the grid is priced at its edge), whether the best WSD peak lay at or above the top
rate, and the trained designs' measured difference to tuned WSD where there are some.

With ``--train``, the default plan's sets whose plateau the floor raises by more than :data:`MOVED` get the floored
design trained on the run seeds tuned WSD has (``realtasks.WSD_SEEDS``), as WSD at the floored plateau: the plateau
is the cap there, and the design's shape is WSD's (``realtasks._WSD_SHAPED``). Those runs are cached and resumed as
``realtasks.py``'s are, and reported beside the trained design of the unfloored plateau. A fit cached after the rule
(``fit_made_after_the_rule``: the held-out task's) has a floored design already, trained by ``realtasks.py``; there
the model's own plateau is the one computed (the fit without ``top_pilot_ahead``) and, with ``--train``, trained
the same way (pilot seed 0, the sets with a design arm).

Usage: uv run python benchmarks/top_ahead.py [--train]   (writes results/top-ahead.json)
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bracket_cap  # noqa: E402
import plateau_rules  # noqa: E402
import realtasks as rt  # noqa: E402

#: the floor's move of the plateau (a ratio) above which ``--train`` trains the floored design
MOVED = 1.1


def _floored_jobs(task, plateau: float) -> list:
    """WSD at the floored ``plateau`` (the task's warmup, 20 % 1-sqrt cooldown) on tuned WSD's run seeds."""
    return [rt._family_job(task, "wsd", plateau, seed) for seed in rt.WSD_SEEDS]


def main(argv: list[str] | None = None) -> None:
    import argparse

    from runcache import run_jobs

    from schedopt.calibration._checks import _top_pilot_ahead
    from schedopt.calibration._problem import learning_rate_cap
    from schedopt.calibration.fit import _ahead

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help="train the floored designs (see the module doc)")
    train = parser.parse_args(argv).train

    t0, c0 = time.perf_counter(), time.process_time()
    cases = {}
    for key, task, protocol, seed, runs in bracket_cap.pilot_sets():
        lead = _top_pilot_ahead(runs)
        if lead is None:
            continue
        problem, cap, jobs, before = bracket_cap._before(task, protocol, seed)
        top = lead[0].peak_learning_rate
        # the rule as fit applies it: recorded unless the pilots' cap is below the top rate, floored within the cap
        after = max(before, min(top, cap)) if _ahead(runs, learning_rate_cap(runs)[0]) else before
        made_after = bool(problem.network.top_pilot_ahead)
        if (
            made_after
        ):  # a fit cached after the rule: its design is floored already; the model's own is before
            after = before
            alone = dataclasses.replace(
                problem, network=dataclasses.replace(problem.network, top_pilot_ahead=0.0)
            )
            before = bracket_cap._design_plateau(task, alone)
        best = rt.best_peaks(task)["wsd"]
        cases[key] = {
            "top": top,
            "lead": lead[3],
            "fit_made_after_the_rule": made_after,
            "cap": cap,
            "tuned_wsd_peak": best,
            "best_at_or_above_top": best >= top * (1 - 1e-3),  # the grid's 4 digits: 0.01599 is 0.016
            "plateau": before,
            "plateau_floored": after,
            "priced": plateau_rules.price(task, before),
            "priced_floored": plateau_rules.price(task, after),
            "grid_top": max(plateau_rules.wsd_curve(task)),
            "measured_design_minus_tuned_wsd": bracket_cap._measured(task, jobs) if jobs else None,
        }
        if made_after and seed == 0 and jobs:  # the trained design is the floored one; WSD at the model's own
            unfloored = _floored_jobs(task, float(f"{before:.4g}"))
            if train:
                run_jobs([j for j in unfloored if not j.done()])
            cases[key]["measured_model_alone_minus_tuned_wsd"] = bracket_cap._measured(task, unfloored)
        elif protocol == rt.DEFAULT_PROTOCOL and seed == 0 and after > MOVED * before:
            floored = _floored_jobs(task, after)
            if train:
                run_jobs([j for j in floored if not j.done()])
            cases[key]["measured_floored_minus_tuned_wsd"] = bracket_cap._measured(task, floored)
        c = cases[key]
        print(
            f"{key}: lead {lead[3]:.3f} top {top:.4g} cap {cap:.4g} tuned WSD {best:.4g}; plateau {before:.4g} -> "
            f"{after:.4g}, priced {c['priced']:+.4f} -> {c['priced_floored']:+.4f}",
            flush=True,
        )
    changed = {k: c for k, c in cases.items() if c["plateau_floored"] > c["plateau"] * (1 + 1e-6)}
    out = {
        "what": "the default design's plateau with and without a floor at the top pilot's rate where fit's "
        "top-pilot note fires, priced on the measured seed-0 WSD curves (see the module doc)",
        "fit": f"{bracket_cap.MODEL} (schedopt fit's defaults), cached in benchmarks/results/realtasks/fits",
        "cases": cases,
        "summary": {
            "fired": len(cases),
            "best_at_or_above_top": sum(c["best_at_or_above_top"] for c in cases.values()),
            "changed": list(changed),
            "priced_sum_changed": sum(c["priced"] for c in changed.values()),
            "priced_floored_sum_changed": sum(c["priced_floored"] for c in changed.values()),
        },
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    (ROOT / "benchmarks" / "results" / "top-ahead.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
