"""Real training, offline: should the adaptive plan trade its low pilot on a smaller lead than 5 %? (issue 12)

``schedopt pilots --first-logs`` trains the x 8 pilot instead of the x 0.25 one where the x 4 pilot is more than
5 % (``_checks.CONTRADICTION``, the most seeds of one schedule differed by) ahead of the long one at the last update
both are at their peak. On three tasks the lead was positive but under 5 % (0.3 %, 3.8 % and 4.5 %) and the best WSD
peak was at or above the x 4 pilot's rate, so the question is whether any lead should trade. Here, on every task
whose planned pilots (``long60-wider``, pilot seed 0) have a lead in (0, 5 %] and whose x 8 pilot is cached (the
traded set, ``long60-traded``), the tool's design (``hedged_design._hedge``: today's fit and hedge) from the planned
and from the traded pilots, each plateau priced on the task's seed-0 WSD curve (``plateau_rules.price``).

Asked after the three tasks were seen, so not a test of a rule: a lower threshold would be adopted only if the
priced sum over these sets fell and no set got worse by more than 0.02 nats (``adaptive_pilots.py``'s rule).

Usage: uv run python benchmarks/trade_threshold.py   (writes results/trade-threshold.json; the fits are cached)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import adaptive_pilots  # noqa: E402
import hedged_design  # noqa: E402
import realtasks as rt  # noqa: E402
from _clock import Clock  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt.calibration._checks import CONTRADICTION, _top_pilot_lead  # noqa: E402

TRADED = "long60-traded"
#: a set whose priced plateau gets worse by more than this (nats) vetoes the lower threshold
VETO = 0.02


def _lead(task) -> float | None:
    """The x 4 pilot's lead over the long one, as ``schedopt pilots --first-logs`` reads it (on the pilots
    ``adaptive_pilots._ahead`` reads)."""
    runs = rt.pilot_runs(task, rt.DEFAULT_PROTOCOL)
    lead = _top_pilot_lead([runs[i] for i in adaptive_pilots.FIRST_STAGE[rt.DEFAULT_PROTOCOL]])
    return None if lead is None else lead[3]


def main() -> None:
    sets, leads = {}, {}
    with Clock() as clock:
        _score(sets, leads)
    _write(sets, leads, clock)


def _score(sets: dict, leads: dict) -> None:
    """Fill ``sets`` and ``leads`` (by task)."""
    for task in TASKS.values():
        if not (rt._piloted(task, rt.DEFAULT_PROTOCOL) and all(j.done() for j in rt.grid_jobs(task))):
            continue
        lead = leads[task.name] = _lead(task)
        if lead is None or not 0 < lead <= CONTRADICTION:
            continue
        if not rt._piloted(task, TRADED):
            sets[task.name] = {"lead": lead, "traded": None}
            print(f"{task.name}: lead {lead:+.3f}, no x 8 pilot cached", flush=True)
            continue
        plan, traded = hedged_design._hedge(task, rt.DEFAULT_PROTOCOL), hedged_design._hedge(task, TRADED)
        sets[task.name] = {"lead": lead, "plan": plan, "traded": traded}
        print(
            f"{task.name}: lead {lead:+.3f} | plan {plan['plateau_over_tuned_wsd']:.2f}x {plan['priced']:+.4f} | "
            f"traded {traded['plateau_over_tuned_wsd']:.2f}x {traded['priced']:+.4f}",
            flush=True,
        )


def _write(sets: dict, leads: dict, clock: Clock) -> None:
    scored = {k: s for k, s in sets.items() if s["traded"] is not None}
    plan_sum = sum(s["plan"]["priced"] for s in scored.values())
    traded_sum = sum(s["traded"]["priced"] for s in scored.values())
    worse = sorted(k for k, s in scored.items() if s["traded"]["priced"] > s["plan"]["priced"] + VETO)
    out = {
        "what": "the tool's design from the planned pilots and from the traded ones (x 8 for x 0.25) on the tasks "
        "whose x 4 pilot led the long one by less than the 5 % that trades, priced on the seed-0 WSD curves (see "
        "the module doc)",
        "leads": leads,
        "sets": sets,
        "summary": {
            "sets_scored": sorted(scored),
            "sets_without_an_x8_pilot": sorted(k for k, s in sets.items() if s["traded"] is None),
            "priced_sum_plan": plan_sum,
            "priced_sum_traded": traded_sum,
            "worse_by_more_than_veto": worse,
            "lower_threshold_adopted": bool(traded_sum < plan_sum and not worse),
        },
        "clock": clock.record(),
    }
    atomic_write_text(ROOT / "benchmarks" / "results" / "trade-threshold.json", json_text(out))
    print(json_text(out["summary"]))


if __name__ == "__main__":
    main()
