"""Could ``fit`` scout less? Each start's cost along its scout, and what keeping the early leaders would miss.

``fit`` runs 15 starts for up to 50 least-squares evaluations each (the scouts), then polishes the best. This
script fits each task's default pilots as ``schedopt fit`` does (``--holdout auto``: the holdout's search
too), records every scout's cost after each evaluation, and scores the rule "after *k* evaluations keep the
*m* starts with the lowest cost, run only those on": the searches (of 24: two a task) whose kept starts end
above the best scout's cost by more than 1e-4 (relative), the worst such ratio, and the evaluations the rule
spends against all scouts'. A kept start is taken to go on as it did (a prefix of its run is the run with a
smaller budget).

No training. Usage: uv run python benchmarks/scout_budget.py [--task NAME ...]   (~20 CPU s a task)
Writes ``benchmarks/results/scout-budget.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _offline  # noqa: E402
import realtasks  # noqa: E402

from schedopt.calibration import _solve  # noqa: E402
from schedopt.calibration.fit import fit_pilots  # noqa: E402

KEEP_AFTER = (5, 8, 10, 15, 20)
KEEP = (2, 3, 4, 5, 6)
MISS = 1e-4


def _recorded_scouts(task) -> list[list[dict]]:
    """Every search of the task's default fit (the fit's, the holdout's): each scout's costs and evaluations."""
    searches: dict[int, list[dict]] = {}
    plain = _solve._run_start

    def recording(objective, x0, bounds, budget):
        costs = []
        evaluate = objective.fun

        class Recorded:
            def fun(self, x):
                residuals = evaluate(x)
                costs.append(0.5 * float(residuals @ residuals))
                return residuals

            jac = staticmethod(objective.jac)

        result = plain(Recorded(), x0, bounds, budget)
        if budget == _solve._SCOUT_EVALUATIONS:  # a scout, not the polish
            owner = getattr(objective, "objective", objective)  # the threads' stoppable wrapper
            after = {k: costs[min(k, len(costs)) - 1] for k in KEEP_AFTER}
            searches.setdefault(id(owner), []).append(
                {"cost_after": after, "evaluations": len(costs), "cost": float(result.cost)}
            )
        return result

    _solve._run_start = recording
    try:
        terms, floor = realtasks.MODELS["schedopt-floor"]
        pilots = realtasks.pilot_runs(task, realtasks.DEFAULT_PROTOCOL)
        fit_pilots(pilots, n_modes=realtasks.FIT_MODES, holdout="auto", terms=terms, offset_floor=floor)
    finally:
        _solve._run_start = plain
    return list(searches.values())


def score(searches: list[list[dict]], k: int, m: int) -> dict:
    """The rule "keep the m lowest after k evaluations" on recorded searches."""
    misses, worst, spent, total = 0, 1.0, 0, 0
    for scouts in searches:
        final = np.array([s["cost"] for s in scouts])
        early = np.array([s["cost_after"][k] for s in scouts])
        kept = np.argsort(early, kind="stable")[:m]
        ratio = float(final[kept].min() / final.min())
        misses += ratio > 1 + MISS
        worst = max(worst, ratio)
        spent += sum(min(k, s["evaluations"]) for s in scouts)
        spent += sum(max(scouts[i]["evaluations"] - k, 0) for i in kept)
        total += sum(s["evaluations"] for s in scouts)
    return {
        "misses": int(misses),
        "searches": len(searches),
        "worst_ratio": worst,
        "evaluations": spent / total,
    }


def run_task(task) -> dict:
    searches = _recorded_scouts(task)
    print(f"{task.name}: {len(searches)} searches of {[len(s) for s in searches]} scouts", flush=True)
    return {"searches": searches}


def summary(tasks: dict) -> dict:
    searches = [s for row in tasks.values() for s in row["searches"]]
    rules = [{"keep_after": k, "keep": m, **score(searches, k, m)} for k in KEEP_AFTER for m in KEEP]
    for rule in rules:
        print(rule, flush=True)
    return {"rules": rules}


def main(argv=None) -> None:
    _offline.main(
        argv, __doc__, "scout-budget.json", run_task, fit=f"{_offline.FIT}, holdout auto", summary=summary
    )


if __name__ == "__main__":
    main()
