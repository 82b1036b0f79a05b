"""Real training: the tool's design as it stands, with the hedge over the irreducible loss (issue 12).

``schedopt fit`` now refits the pilots with the offset free where they do not identify it, and ``schedopt design``
takes the larger of the two fits' plateaus (``[network.free_offset]``; the rule ``offset_hedge.py`` measured). Here,
on every task, from the plan ``schedopt pilots`` proposes (the adaptive plan: the x 8 pilot instead of the x 0.25 one
where the x 4 pilot is still far ahead of the long one, ``adaptive_pilots._ahead``):

* the check: on each task's planned pilots (``long60-wider``), the tool's plateau against ``offset-hedge.json``'s
  larger of the floored and free fits' plateaus (what was measured; the two differ where the tool does not refit
  because the pilots identify the offset);
* the tool's design: its fit (``realtasks.MODELS["schedopt-hedged"]``, cached apart from the fits made before the
  hedge), its default design's plateau and which fit gave it, priced on the seed-0 WSD curve
  (``plateau_rules.price``), and measured as ``adaptive_pilots.py`` measures a design: WSD at the plateau (the
  design's shape) on tuned WSD's run seeds, paired by seed: its own runs where they are cached (WSD at tuned WSD's
  own peak is tuned WSD); else, where the plateau is within ``adaptive_pilots.SAME`` of the adaptive plan's trained
  one (``adaptive-pilots.json``), those runs stand for it; else it is trained with ``--train`` (on the tasks named,
  or all). At twice the horizon likewise, against WSD at 2T at the peak tuned at T,
  on three seeds, where ``--train-2t`` names the task; elsewhere, for a task that did not trade and whose plateau is
  within ``SAME`` of the peak of ``realtasks.py``'s headline design at 2T (its runs' records), its transfer pair (5 seeds)
  stands for it.

Usage: uv run python benchmarks/hedged_design.py [--train [TASK ...]] [--train-2t TASK ...]
(writes results/hedged-design.json; about 40 CPU-s a task for its fits)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import adaptive_pilots  # noqa: E402
import bracket_cap  # noqa: E402
import plateau_rules  # noqa: E402
import realtasks as rt  # noqa: E402
from runcache import run_jobs  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402

MODEL = "schedopt-hedged"
TRADED = "long60-traded"


def _hedge(task, protocol: str) -> dict:
    """The tool's fit of a pilot set: its default design's plateau (network units), and the hedge's record."""
    problem, report = rt.fitted(task, MODEL, protocol)
    plateau, result = bracket_cap._default_design(task, problem)
    hedge = result.form.get("offset_hedge")
    return {
        "plateau": plateau,
        "plateau_over_tuned_wsd": plateau / rt.best_peaks(task)["wsd"],
        "priced": plateau_rules.price(task, plateau),
        "refitted": report.get("free_offset") is not None,
        "offset_hedge": hedge,
    }


def _headline_twice(task, trained: dict, plateau: float, traded: bool) -> dict:
    """Where the tool's 2T design is not measured here: ``realtasks.py``'s transfer pair of its headline design
    (``designed-default`` at 2T against WSD at 2T at the peak tuned at T, 5 seeds) stands for it if the tool did not
    trade and its plateau is within ``adaptive_pilots.SAME`` of the peak those 2T runs trained at (read from their
    records: an arm's recorded plateau can predate a rule its 2T runs were trained after); else nothing."""
    pair = trained.get("transfer", {}).get("headline_seeds")
    if traded or not pair:
        return {}
    runs = [
        j for j in rt.transfer_jobs(task) + rt.transfer_seed_jobs(task) if j.label == pair["design_label"]
    ]
    peaks = {json.loads(j.record.read_text())["schedule"]["peak"] for j in runs if j.done()}
    if len(peaks) != 1 or abs(plateau / peaks.pop() - 1) > adaptive_pilots.SAME:
        return {}
    return {
        "measured_2T_minus_wsd_tuned_at_T": rt._stats(pair["difference_per_seed"]),
        "measured_2T_as": f"{pair['design_label']} (realtasks.json, transfer headline_seeds)",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--train", nargs="*", help="train the designs not yet measured (of these tasks; none: all)"
    )
    parser.add_argument("--train-2t", nargs="*", default=[], help="train the 2T design of these tasks")
    args = parser.parse_args(argv)
    t0, c0 = time.perf_counter(), time.process_time()
    measured_rule = json.loads((rt.RESULTS / "offset-hedge.json").read_text())["tasks"]
    adaptive = json.loads((rt.RESULTS / "adaptive-pilots.json").read_text())["sets"]
    trained = json.loads((rt.RESULTS / "realtasks.json").read_text())["tasks"]
    tasks = {}
    for task in TASKS.values():
        if not (all(j.done() for j in rt.grid_jobs(task)) and rt._piloted(task, rt.DEFAULT_PROTOCOL)):
            continue
        row = {}
        planned = _hedge(task, rt.DEFAULT_PROTOCOL)
        if task.name in measured_rule:
            larger = measured_rule[task.name]["larger"]["plateau"]
            row["check_planned_pilots"] = {
                "tool_plateau": planned["plateau"],
                "offset_hedge_larger": larger,
                "ratio": planned["plateau"] / larger,
                "refitted": planned["refitted"],
            }
        lead = adaptive_pilots._ahead(task, rt.DEFAULT_PROTOCOL)
        traded = lead is not None and rt._piloted(task, TRADED)
        tool = _hedge(task, TRADED) if traded else planned
        row["chosen"] = TRADED if traded else rt.DEFAULT_PROTOCOL
        row["tool"] = tool
        before = adaptive.get(f"{task.name}/{rt.DEFAULT_PROTOCOL}", {}).get("adaptive", {})
        jobs = adaptive_pilots._wsd_jobs(task, tool["plateau"])
        tool["measured"] = bracket_cap._measured(task, jobs)  # its own runs, where they are cached
        if tool["measured"] is None and before.get("measured"):
            if abs(tool["plateau"] / before["plateau"] - 1) <= adaptive_pilots.SAME:
                tool["measured"] = before["measured"]
                tool["measured_as"] = (
                    f"the adaptive plan's design at {before['plateau']:.4g} (adaptive-pilots.json)"
                )
        if (
            tool["measured"] is None
            and args.train is not None
            and (not args.train or task.name in args.train)
        ):
            run_jobs([j for j in jobs if not j.done()])
            tool["measured"] = bracket_cap._measured(task, jobs)
        if task.name in args.train_2t or before.get("plateau_2T") is not None:
            problem, _ = rt.fitted(task, MODEL, row["chosen"])
            twice = bracket_cap._design_plateau(task, problem, 2 * task.horizon)
            twice_jobs = adaptive_pilots._twice_jobs(task, twice)
            if task.name in args.train_2t:
                run_jobs([j for j in twice_jobs if not j.done()])
            tool["plateau_2T"] = twice
            tool["measured_2T_minus_wsd_tuned_at_T"] = adaptive_pilots._twice_measured(task, twice_jobs)
        if tool.get("measured_2T_minus_wsd_tuned_at_T") is None:
            tool.update(_headline_twice(task, trained.get(task.name, {}), tool["plateau"], traded))
        tasks[task.name] = row
        m = tool.get("measured")
        shown = "-" if not m else f"{m['mean']:+.4f} +- {m['stderr']:.4f}"
        print(
            f"{task.name}: {row['chosen']} plateau {tool['plateau']:.4g} ({tool['plateau_over_tuned_wsd']:.2f}x) "
            f"priced {tool['priced']:+.4f} hedge {(tool['offset_hedge'] or {}).get('taken')} "
            f"measured {shown}",
            flush=True,
        )
    measured = {n: t["tool"].get("measured") for n, t in tasks.items()}
    twice = {n: t["tool"].get("measured_2T_minus_wsd_tuned_at_T") for n, t in tasks.items()}
    checks = [t["check_planned_pilots"] for t in tasks.values() if "check_planned_pilots" in t]
    summary = {
        "tasks": len(tasks),
        "priced_sum": float(sum(t["tool"]["priced"] for t in tasks.values())),
        "hedge_took_the_free_fit": sorted(
            n for n, t in tasks.items() if (t["tool"]["offset_hedge"] or {}).get("taken") == "free"
        ),
        "check_within_1pct_of_the_measured_rule": sum(abs(c["ratio"] - 1) <= 0.01 for c in checks),
        "check_tasks": len(checks),
        "design_met_within_one_se": sorted(n for n, m in measured.items() if m and m["mean"] <= m["stderr"]),
        "design_missed": sorted(n for n, m in measured.items() if m and m["mean"] > m["stderr"]),
        "design_not_measured": sorted(n for n, m in measured.items() if not m),
        "twice_met_within_one_se": sorted(n for n, m in twice.items() if m and m["mean"] <= m["stderr"]),
        "twice_missed": sorted(n for n, m in twice.items() if m and m["mean"] > m["stderr"]),
    }
    out = {
        "what": "the tool's design as it stands (adaptive plan, offset hedge): plateau, price, and measured "
        "difference to tuned WSD by task; and the hedge checked against offset-hedge.json (see the module doc)",
        "model": MODEL,
        "tasks": tasks,
        "summary": summary,
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    atomic_write_text(ROOT / "benchmarks" / "results" / "hedged-design.json", json_text(out))
    print(json_text(summary))


if __name__ == "__main__":
    main()
