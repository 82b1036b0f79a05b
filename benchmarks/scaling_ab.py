"""Scaling study before / after a change (issue 13): the same subset of the frontier, two checkouts, alternated.

``schedopt scaling``'s work on a subset of its computes: :func:`schedopt.studies.scaling.study_scaling`
of the optimal schedule (as ``sweep.py``'s frontier: ``schedules = ("optimal",)``, ``--points``
model sizes per compute, the study's default options) on ``problems/<phase>.toml``, once per
checkout in a fresh process each, the checkouts alternated set by set so that both see the same
load. Records each run's CPU seconds (user + system of the child, ``RUSAGE_CHILDREN`` deltas),
wall seconds, the 1-minute load average before and after, and every scanned point (size,
horizon, engine, iterations, status, loss), and for each set the largest relative difference of
the frontier's loss ``L*`` between the checkouts.

Usage: python benchmarks/scaling_ab.py --before TREE [--set hard-phase:1e6,3.16e6 ...] [--points 3]
TREE is a checkout of the code before the change (run as this interpreter with ``PYTHONPATH=TREE``).
Writes ``benchmarks/results/scaling-ab.json`` (no absolute paths). ``--after-only NAME``: this
checkout alone (e.g. the issue's whole range, ``--set easy-phase=1e6:1e10:9``; ``PHASE=LO:HI:COUNT`` or ``PHASE:C1,C2``), into ``results/NAME``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_SETS = ["hard-phase:1e6,3.1622776601683795e6", "hard-phase:1e9,3.1622776601683795e9,1e10"]

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import schedopt
from schedopt.studies.scaling import study_scaling
from schedopt.studies.scaling import parse_compute
phase, computes, points = sys.argv[1], parse_compute(sys.argv[2]), int(sys.argv[3])
problem = schedopt.load_problem(os.path.join(sys.argv[4], "problems", phase + ".toml"))
study = study_scaling(problem, computes, schedules=("optimal",), points=points)
rows = []
for p in study.points:
    r = p["results"]["optimal"]
    rows.append({"compute": p["compute"], "n_modes": p["n_modes"], "horizon": p["horizon"],
                 "engine": r["solution"].info.get("engine"), "iterations": r["iterations"],
                 "status": str(r["status"]), "loss": r["loss"], "wall_s": round(r["wall_time"], 3)})
frontier = [{"compute": f["compute"], "n_modes": f["n_modes"], "loss": f["loss"], "interior": f["interior"]}
            for f in study.frontiers["optimal"]]
print(json.dumps({"points": rows, "frontier": frontier}))
"""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _git_head(tree: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def run_set(tree: Path, phase: str, computes: str, points: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PYTHONPATH"] = str(tree)
    load0 = os.getloadavg()[0]
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, phase, computes, str(points), str(ROOT)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
    )
    entry = {
        "cpu_s": round(_children_cpu() - cpu0, 2),
        "wall_s": round(time.perf_counter() - wall0, 2),
        "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "exit_code": proc.returncode,
    }
    if proc.returncode == 0:
        entry.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    else:
        entry["stderr_tail"] = proc.stderr[-2000:]
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="TREE", help="checkout of the code before the change")
    parser.add_argument("--set", action="append", metavar="PHASE:COMPUTES", help="a phase and its computes")
    parser.add_argument("--points", type=int, default=3)
    parser.add_argument(
        "--after-only",
        metavar="NAME",
        help="run this checkout alone, into results/NAME (a full-range timing)",
    )
    args = parser.parse_args()
    if args.before is None and not args.after_only:
        parser.error("--before TREE is required unless --after-only NAME is given")
    trees = {"after": ROOT} if args.after_only else {"before": Path(args.before).resolve(), "after": ROOT}
    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
        },
        "commits": {label: _git_head(tree) for label, tree in trees.items()},
        "points_per_compute": args.points,
        "note": "each set: one fresh process per checkout (before first), CPU s = user + system of the child; "
        "the machine is shared (load average per run): compare CPU seconds",
        "sets": {},
    }
    out = RESULTS / (args.after_only or "scaling-ab.json")

    def save() -> None:
        text = json.dumps(report, indent=1)
        for secret in (*map(str, trees.values()), str(Path.home())):
            text = text.replace(secret, "<path>")
        out.write_text(text + "\n")

    for item in args.set or DEFAULT_SETS:
        phase, computes = item.split("=") if "=" in item else item.split(":", 1)
        row = {}
        for label, tree in trees.items():
            row[label] = run_set(tree, phase, computes, args.points)
            print(
                item,
                label,
                {k: row[label][k] for k in ("cpu_s", "wall_s", "load_1min", "exit_code")},
                flush=True,
            )
        if "before" in trees and all(row[label]["exit_code"] == 0 for label in trees):
            before = {f["compute"]: f["loss"] for f in row["before"]["frontier"]}
            row["frontier_loss_rel_diff_max"] = max(
                abs(f["loss"] / before[f["compute"]] - 1.0) for f in row["after"]["frontier"]
            )
            row["cpu_ratio_after_over_before"] = row["after"]["cpu_s"] / row["before"]["cpu_s"]
        report["sets"][item] = row
        save()
    print("wrote", out.relative_to(ROOT))


if __name__ == "__main__":
    main()
