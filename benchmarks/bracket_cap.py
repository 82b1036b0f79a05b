"""Real training, offline: caps on the design from the pilots' own ranking of rates (issue 12).

Three rules, scored on the cached pilot sets without training: the short pilots' own best peak (measured, not
adopted), the same with the long pilot's loss as the middle point (``crossed_optimum``; measured, not adopted),
and the top pilot behind a longer one (``_checks._top_behind_longer``; adopted after this measurement: the
``behind`` entries and ``summary_behind``).

Once the pilots bracket the best peak from above (``_checks._bracket_above``: the top pilot ended no lower
than a pilot of its schedule at a lower rate), the design's learning rate could be capped at the vertex of
the parabola in log peak through the final losses of the best pilot of that schedule and its two neighbours
(:func:`bracketed_optimum`). This script measures what that cap would do on every pilot set of
``realtasks.py`` where it can fire (nothing is trained): for each set whose pilots all finished, the default
design (``designed-default``'s form: plateau-anneal, the flat tolerance, the 1-sqrt anneal) from the cached
``schedopt-floor`` fit with and without the cap, at the task's horizon, two ways: as the fit's cap (the model's
learning-rate bound, which also narrows the plateau tolerance's interval) and as a bound on the plateau
chosen (``plateau_min``). Each plateau is priced on the task's
measured seed-0 WSD curve (``plateau_rules.price``: WSD at that peak minus tuned WSD, a proxy whose seed noise
is ~0.003-0.005 nats). Where the uncapped design was trained, its measured difference to tuned WSD is given
beside it.

Pilot sets: the default plan (``long60-wider``) on pilot seeds 0 and 1, the follow-up pilot (``-up``), the
seed twin (``-twin``), and every protocol of the low-guess chains (``low4``, ``low4-up1`` ...), past the
bracket included.

*The top pilot behind a longer one*: where the top pilot ended, after its anneal, no lower than a longer pilot
at a lower rate at the same step before its anneal, ``schedopt fit`` caps the design halfway in log rate to the
next lower pilot rate. Scored from the fits cached before that rule (pilot sets without one are skipped): the
design with the cap against without, and whether the best WSD peak lay at or below the cap.

Usage: uv run python benchmarks/bracket_cap.py   (writes results/bracket-cap.json)
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import plateau_rules  # noqa: E402
import realtasks as rt  # noqa: E402

from examples.tasks import TASKS  # noqa: E402

MODEL = "schedopt-floor"


def _vertex(rates, losses) -> float | None:
    """The rate at the vertex of the parabola in log rate through three ``(rate, loss)`` points, clipped to the
    outer two; ``None`` if it does not open upward."""
    x = np.log(rates)
    curvature, slope, _ = np.polyfit(x, losses, 2)
    return float(np.exp(np.clip(-slope / (2 * curvature), x[0], x[2]))) if curvature > 0 else None


def bracketed_optimum(runs) -> tuple[float, tuple] | None:
    """``(rate, pilots)``: where the pilots bracket the best peak from above (``_checks._bracket_above``), the
    vertex of the parabola in log peak through the final losses of the best pilot of the top pilot's schedule
    and its two neighbours in peak (``pilots``, lowest first), clipped to those neighbours' peaks; ``None``
    when the best has no neighbour on one side. Runs at one peak (seeds) count by their mean; a pilot whose
    loss spiked is a cliff, not a point of a smooth response, and does not count."""
    from schedopt.calibration._checks import _bracket_above, _final_loss, _same_shape, _spike

    bracket = _bracket_above(runs)
    if bracket is None:
        return None
    by_peak: dict[float, list] = {}
    for run in runs:
        if _same_shape(run, bracket[0]) and _final_loss(run) is not None and _spike(run) is None:
            by_peak.setdefault(run.peak_learning_rate, []).append(run)
    peaks = sorted(by_peak)
    losses = [float(np.mean([_final_loss(r) for r in by_peak[p]])) for p in peaks]
    best = int(np.argmin(losses))
    if best == 0 or best == len(peaks) - 1:
        return None
    # three points with the least in the middle: the parabola opens upward unless all three are equal
    vertex = _vertex(peaks[best - 1 : best + 2], losses[best - 1 : best + 2])
    return None if vertex is None else (vertex, tuple(by_peak[p][0] for p in peaks[best - 1 : best + 2]))


def crossed_optimum(runs) -> tuple[float, tuple] | None:
    """``(rate, (low, long, high))`` for the plan's pilots: two short pilots of one schedule at rates either side
    of the long pilot's, the long pilot still at its constant rate at their length. Where the high short pilot
    ended (annealed) no lower than the long pilot's loss at that step (not annealed), the high rate did worse
    over that many updates than a lower one would have with an anneal: the pilots bracket the best peak from
    above across schedules. Where the low short pilot also ended no lower, the vertex of the parabola in log
    rate through the three (the long pilot's point an upper bound of its annealed loss) estimates the best
    peak at the short pilots' length, clipped to the short pilots' rates; else ``None``."""
    from schedopt.calibration._checks import _constant_until, _final_loss, _same_shape, _spike

    if any(_spike(r) is not None for r in runs):
        return None
    long = max(runs, key=lambda r: r.horizon)
    shorts = sorted(
        (r for r in runs if r is not long and _same_shape(r, runs[-1])), key=lambda r: r.peak_learning_rate
    )
    if len(shorts) != 2 or any(_final_loss(r) is None for r in shorts):
        return None
    low, high = shorts
    h = high.horizon
    if (
        not (low.peak_learning_rate < long.peak_learning_rate < high.peak_learning_rate)
        or _constant_until(long) < h
    ):
        return None
    at = np.interp(np.log(h), np.log(np.maximum(long.loss_steps, 1)), long.losses)
    if _final_loss(high) < at or _final_loss(low) < at:
        return None
    rates = [low.peak_learning_rate, long.peak_learning_rate, high.peak_learning_rate]
    vertex = _vertex(rates, [_final_loss(low), at, _final_loss(high)])
    return None if vertex is None else (vertex, (low, long, high))


def _protocols(task) -> list[tuple[str, int]]:
    """Every (protocol, pilot seed) of the task whose pilots all finished, among those this script scores."""
    names = [rt.DEFAULT_PROTOCOL, f"{rt.DEFAULT_PROTOCOL}-up", f"{rt.DEFAULT_PROTOCOL}-twin"]
    names += [p for p in rt.PILOT_PROTOCOLS if p.startswith("low4")]
    return [
        (p, s)
        for p in names
        for s in (0, *rt.PILOT_SEEDS)
        if p in rt.PILOT_PROTOCOLS and rt._piloted(task, p, s)
    ]


def pilot_sets():
    """``(key, task, protocol, seed, runs)`` for every pilot set :func:`_protocols` scores, of every task whose
    WSD grid finished (the curve each plateau is priced on)."""
    for name, task in TASKS.items():
        if not all(j.done() for j in rt.grid_jobs(task)):
            continue
        for protocol, seed in _protocols(task):
            key = f"{name}/{protocol}" + (f"@pilot-seed-{seed}" if seed else "")
            yield key, task, protocol, seed, rt.pilot_runs(task, protocol, seed)


def _design_plateau(task, problem, horizon: int | None = None) -> float:
    """The default design's plateau (network units) for the fitted ``problem`` at ``horizon`` (the task's)."""
    return _default_design(task, problem, horizon)[0]


def _default_design(task, problem, horizon: int | None = None):
    """``(plateau, result)``: the default design of the fitted ``problem`` at ``horizon`` (the task's), and its
    plateau in network units (the schedule's rate halfway through)."""
    horizon = task.horizon if horizon is None else horizon
    result = rt.design_result(task, problem, horizon, "plateau-anneal", "1-sqrt", rt.FLAT_TOLERANCE)
    lrs = problem.network.network_learning_rate(result.schedule().learning_rate)
    return float(np.asarray(lrs)[horizon // 2]), result


def _capped(problem, network_cap: float):
    """``problem`` with its learning-rate cap lowered to ``network_cap`` (network units), if that is lower."""
    control = problem.controls["learning_rate"]
    cap = min(control.max, float(problem.network.model_learning_rate(network_cap)))
    return dataclasses.replace(
        problem, controls={**problem.controls, "learning_rate": dataclasses.replace(control, max=cap)}
    )


#: the realtasks.py arm whose design (and runs) a pilot set gave, where it has one; the low-guess chains' sets
#: give the low-guess arm (``rt._low_guess_design``)
_ARMS = {
    rt.DEFAULT_PROTOCOL: "designed-default",
    f"{rt.DEFAULT_PROTOCOL}-up": "designed-followup",
    f"{rt.DEFAULT_PROTOCOL}-twin": "designed-twin",
}


def _jobs(task, protocol: str, seed: int):
    """The trained runs of the design from these pilots (``None`` if the set has no design arm)."""
    arm = _ARMS.get(protocol) if seed == 0 else None
    if arm is not None and arm in rt._arms(task):
        return rt._arm_jobs(task, arm, rt.WSD_SEEDS)
    if protocol.startswith("low4") and seed == 0:
        return rt._low_guess_design(task, protocol)
    return None


def _measured(task, jobs) -> dict | None:
    """The trained design minus tuned WSD (paired by run seed), where at least two seeds of it finished."""
    wsd = rt.tuned_wsd_by_seed(task)
    runs = [(j, r) for j, r in rt._finished(jobs) if j.seed in wsd]
    return rt._stats([r["final_val_loss"] - wsd[j.seed] for j, r in runs]) if len(runs) >= 2 else None


def _before(task, protocol: str, seed: int):
    """``(problem, cap, jobs, plateau)``: the cached fit of the pilot set, its network cap, the trained runs of
    its design (``None`` if it has no arm) and that design's plateau (the trained one where there is one)."""
    problem, _ = rt.fitted(task, MODEL, protocol, seed)
    cap = float(problem.network.network_learning_rate(problem.controls["learning_rate"].max))
    jobs = _jobs(task, protocol, seed)
    return problem, cap, jobs, float(jobs[0].meta["peak"]) if jobs else _design_plateau(task, problem)


def main() -> None:
    from schedopt.calibration._checks import _bracket_above, _top_behind_longer

    t0, c0 = time.perf_counter(), time.process_time()
    cases = {}
    for key, task, protocol, seed, runs in pilot_sets():
        name = task.name
        optimum = bracketed_optimum(runs)
        case = {
            "bracketed": _bracket_above(runs) is not None,
            "pilot_peaks": sorted({r.peak_learning_rate for r in runs}),
            "tuned_wsd_peak": rt.best_peaks(task)["wsd"],
        }
        cached = (rt.FITS / f"{name}{rt._tag(protocol, seed)}-{MODEL}.toml").exists()
        if optimum is not None and not cached:
            case["skipped"] = "no fit cached from before the rule (a fit made now is capped already)"
        elif optimum is not None:
            problem, cap, jobs, before = _before(task, protocol, seed)
            after = _design_plateau(task, _capped(problem, optimum[0])) if optimum[0] < cap else before
            case |= {
                "optimum": optimum[0],
                "parabola_through": [r.peak_learning_rate for r in optimum[1]],
                "cap": cap,
                "plateau": before,
                "plateau_capped": after,
                "plateau_min": min(before, optimum[0]),
                "priced": plateau_rules.price(task, before),
                "priced_capped": plateau_rules.price(task, after),
                "priced_min": plateau_rules.price(task, min(before, optimum[0])),
                "measured_design_minus_tuned_wsd": _measured(task, jobs) if jobs else None,
            }
            print(
                f"{key}: optimum {optimum[0]:.4g} (tuned WSD {case['tuned_wsd_peak']:.4g}), plateau "
                f"{before:.4g} -> {after:.4g}, priced {case['priced']:+.4f} -> {case['priced_capped']:+.4f}",
                flush=True,
            )
        crossed = crossed_optimum(runs) if protocol == rt.DEFAULT_PROTOCOL else None
        if crossed is not None:
            _, _, _, before = _before(task, protocol, seed)
            case["crossed"] = {
                "optimum": crossed[0],
                "plateau": before,
                "plateau_min": min(before, crossed[0]),
                "priced": plateau_rules.price(task, before),
                "priced_min": plateau_rules.price(task, min(before, crossed[0])),
            }
            print(
                f"{key}: crossed {crossed[0]:.4g} (tuned WSD {case['tuned_wsd_peak']:.4g}) plateau {before:.4g}, "
                f"priced {case['crossed']['priced']:+.4f} -> {case['crossed']['priced_min']:+.4f}",
                flush=True,
            )
        behind = _top_behind_longer(runs)
        if behind is not None and cached:
            problem, cap, jobs, before = _before(task, protocol, seed)
            after = _design_plateau(task, _capped(problem, behind[4])) if behind[4] < cap else before
            case["behind"] = {
                "top": behind[0].peak_learning_rate,
                "longer": behind[1].peak_learning_rate,
                "top_end": behind[2],
                "longer_there": behind[3],
                "cap": behind[4],
                "best_over_cap": case["tuned_wsd_peak"] / behind[4],
                "plateau": before,
                "plateau_capped": after,
                "priced": plateau_rules.price(task, before),
                "priced_capped": plateau_rules.price(task, after),
                "measured_design_minus_tuned_wsd": _measured(task, jobs) if jobs else None,
            }
            print(
                f"{key}: behind, cap {behind[4]:.4g} (tuned WSD {case['tuned_wsd_peak']:.4g}), plateau "
                f"{before:.4g} -> {after:.4g}, priced {case['behind']['priced']:+.4f} -> "
                f"{case['behind']['priced_capped']:+.4f}",
                flush=True,
            )
        elif behind is not None:
            case["behind"] = {"skipped": "no fit cached from before the rule", "cap": behind[4]}
        cases[key] = case
    # the pilot sets a user ends at: each low-guess chain's last (its notes followed), and the follow-up pilot's
    ends = {}
    for name, task in TASKS.items():
        if name in rt.LOW_GUESS_TASKS and rt._piloted(task, "low4"):
            ends[f"{name}/{rt.low_guess_chain(task)[0][-1]}"] = "chain end"
        if rt._piloted(task, f"{rt.DEFAULT_PROTOCOL}-up"):
            ends[f"{name}/{rt.DEFAULT_PROTOCOL}-up"] = "follow-up"
    for key, case in cases.items():
        case["role"] = ends.get(key)
    fired = {k: c for k, c in cases.items() if "optimum" in c}
    changed = {k: c for k, c in fired.items() if c["plateau_capped"] < c["plateau"] * (1 - 1e-6)}
    behinds = {k: c["behind"] for k, c in cases.items() if "behind" in c}
    behind_changed = {
        k: b for k, b in behinds.items() if "plateau" in b and b["plateau_capped"] < b["plateau"] * (1 - 1e-6)
    }
    out = {
        "what": "the default design with and without the cap at the short pilots' own best peak "
        "(bracketed_optimum), as the fit's cap and as a bound on the plateau (plateau_min), priced on the measured seed-0 WSD curves (a proxy; see the module doc)",
        "fit": f"{MODEL} (schedopt fit's defaults), cached in benchmarks/results/realtasks/fits",
        "cases": cases,
        "summary_behind": {
            "fired": len(behinds),
            "skipped": sum("skipped" in b for b in behinds.values()),
            "best_at_or_below_cap": sum(
                cases[k]["tuned_wsd_peak"] <= b["cap"] * (1 + 1e-6) for k, b in behinds.items()
            ),
            "changed": list(behind_changed),
            "priced_sum_changed": sum(b["priced"] for b in behind_changed.values()),
            "priced_capped_sum_changed": sum(b["priced_capped"] for b in behind_changed.values()),
        },
        "summary": {
            "pilot_sets": len(cases),
            "bracketed": sum(c["bracketed"] for c in cases.values()),
            "fired": len(fired),
            "skipped": sum("skipped" in c for c in cases.values()),
            "changed": len(changed),
            "priced_sum_changed": sum(c["priced"] for c in changed.values()),
            "priced_capped_sum_changed": sum(c["priced_capped"] for c in changed.values()),
            "better": sum(c["priced_capped"] < c["priced"] - 1e-3 for c in changed.values()),
            "worse": sum(c["priced_capped"] > c["priced"] + 1e-3 for c in changed.values()),
            **{
                f"{role}s": {
                    "fired": len(sub),
                    "priced_sum": sum(c["priced"] for c in sub),
                    "priced_capped_sum": sum(c["priced_capped"] for c in sub),
                    "priced_min_sum": sum(c["priced_min"] for c in sub),
                    "min_better": sum(c["priced_min"] < c["priced"] - 1e-3 for c in sub),
                    "min_worse": sum(c["priced_min"] > c["priced"] + 1e-3 for c in sub),
                }
                for role in ("chain end", "follow-up")
                for sub in [[c for c in fired.values() if c["role"] == role]]
            },
        },
        "cpu_s": round(time.process_time() - c0, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    path = ROOT / "benchmarks" / "results" / "bracket-cap.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
