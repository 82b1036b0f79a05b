"""Sweeps on one machine and on a Ray cluster, and the throughput of batched solves (issue 14).

1. **Frontier.** The compute-optimal frontier of the optimal schedule
   (:func:`schedopt.studies.scaling.study_scaling`, ``schedules = ("optimal",)``, ``points``
   model sizes per compute) of ``problems/easy-phase.toml`` and ``problems/hard-phase.toml`` over
   the computes ``--compute`` (issue: 1e6..1e10, 9 per phase), once with the local backend and
   once on a local Ray cluster of ``--workers`` worker processes: wall time, CPU time (this
   process and its children: the cluster's raylet and workers) and whether the two frontiers
   are identical. ``--max-compute`` bounds the run: computes above it are listed as not run.
2. **Throughput.** Designs per second of :func:`schedopt.design_many` on ``B`` problems of one
   shape (T = 1e3, N = 1e3 on the compressed spectrum; noise sigma varies), B = 1, 2, 4, ..., 256,
   each timed warm (the same B run twice before; the median of ``--reps`` timed runs), next to
   one-by-one ``solve`` calls on the same
   problems (the first ``--one-by-one`` problems solved in turn, the clock read after each ``B``),
   and **side by side**: each timed batch followed at once by its first ``--one-by-one`` problems
   solved one by one, the ratio of the two per timed run and its median
   (``speedup_side_by_side``), which the machine's drift in speed between the two phases does not
   move.

Writes ``benchmarks/results/sweep.json``. The 1-minute load average is recorded with every
timing (the machine may be shared; CPU seconds are the steadier figure).

Usage: uv run python benchmarks/sweep.py [--compute 1e6:1e10:9] [--max-compute 1e8] [--points 5]
       [--workers 2] [--batches 1,2,4,...,256] [--skip-frontier] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

# One OpenBLAS thread, as the CLI sets (schedopt.cli._app._one_blas_thread) and as Ray gives its
# workers (OMP_NUM_THREADS=1): with OpenBLAS's default threads the host-side linear algebra
# rounded differently in the last bit, so the local backend's points differed from Ray's by
# 1 ulp (and the ODE-engine solves, which run ~1000 iterations, by up to 1e-7). Before NumPy loads.
if not any(os.environ.get(n) for n in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _clock import Clock

import schedopt
from schedopt.problem import Problem

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PHASES = ("easy-phase", "hard-phase")


def frontier_rows(study) -> list[dict]:
    keys = ("compute", "n_modes", "horizon", "loss", "interior", "discrete_n_modes", "scanned", "bound")
    return [{k: r[k] for k in keys} for r in study.frontiers["optimal"]]


def point_rows(study) -> list[dict]:
    """Every scanned point's optimal solve: its status, iterations, engine and start (the statuses behind the frontier)."""
    rows = []
    for pt in study.points:
        r = pt["results"]["optimal"]
        info = r["solution"].info
        rows.append(
            {
                "compute": pt["compute"],
                "n_modes": pt["n_modes"],
                "horizon": pt["horizon"],
                "loss": r["loss"],
                "status": r["status"],
                "iterations": r["iterations"],
                "engine": info.get("engine"),
                "start": r.get("start", "solver's own"),
                "wall_s": round(r["wall_time"], 3),
            }
        )
    return rows


def progress(label: str):
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        print(
            f"  {label}: {done}/{total} computes, {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    return report


def frontier(computes, points: int, workers: int, phases, save) -> dict:
    from schedopt.backends import LocalBackend, RayBackend
    from schedopt.studies.scaling import study_scaling

    out = {}
    for name in phases:
        problem = schedopt.load_problem(ROOT / "problems" / f"{name}.toml")
        entry = {}
        with Clock() as local:
            study_local = study_scaling(
                problem,
                computes,
                schedules=("optimal",),
                points=points,
                backend=LocalBackend(),
                progress=progress(f"{name} local"),
            )
        entry["local"] = {
            **local.record(),
            "frontier": frontier_rows(study_local),
            "points": point_rows(study_local),
        }
        with RayBackend(num_cpus=workers) as ray_backend:
            with Clock() as on_ray:
                study_ray = study_scaling(
                    problem,
                    computes,
                    schedules=("optimal",),
                    points=points,
                    backend=ray_backend,
                    progress=progress(f"{name} ray"),
                )
                on_ray.stop()  # before the cluster stops: its workers' CPU time is read from /proc
        entry["ray"] = {
            **on_ray.record(),
            "workers": workers,
            "frontier": frontier_rows(study_ray),
            "points": point_rows(study_ray),
        }
        entry["identical_frontiers"] = entry["local"]["frontier"] == entry["ray"]["frontier"]
        entry["statuses"] = dict(Counter(r["status"] for r in entry["local"]["points"]))
        entry["points_solved"] = len(study_local.points)
        entry["ray_wall_over_local"] = on_ray.wall / local.wall
        print(
            json.dumps(
                {name: {k: entry[k] for k in ("identical_frontiers", "points_solved", "ray_wall_over_local")}}
            ),
            flush=True,
        )
        out[name] = entry
        save(out)  # each phase as it completes
    return out


def throughput_problem(noise: float) -> Problem:
    """The throughput batch's problem: the accelerator benchmark's at T = 1e3, N = 1e3, this noise."""
    from accelerator import problem

    return problem(1000, 1000, noise).replace(name="throughput")


def _one_by_one(problems, checkpoints) -> tuple[list, dict[int, dict]]:
    """``solve`` on each problem in turn; the clock read after the first ``b`` of them, each ``b`` in
    ``checkpoints`` (so that a batch of ``b`` is compared with one-by-one solves of the same problems)."""
    schedopt.solve(problems[0])  # compiled
    singles, marks = [], {}
    with Clock() as c:
        for p in problems:
            singles.append(schedopt.solve(p, throw=False))
            if len(singles) in checkpoints:
                c.stop()
                marks[len(singles)] = {
                    "designs": len(singles),
                    **c.record(),
                    "designs_per_s": len(singles) / c.wall,
                    "designs_per_cpu_s": len(singles) / c.cpu,
                }
                del c.wall  # the clock runs on
    return singles, marks


def throughput(batches, one_by_one: int, reps: int = 1) -> dict:
    from schedopt.batch import design_many

    problems = [throughput_problem(float(s)) for s in np.linspace(0.25, 1.0, max(batches))]
    schedopt.solve(problems[0])  # the one-row programs compiled, before the side-by-side timings
    rows = []
    for b in batches:
        group = problems[:b]
        # compiles this batch size's programs, twice: on a CPU the lockstep's calls take the rows that
        # are ready (how many depends on the threads' timing), so a size first met in the timed run
        # would count its compilation (~1 s: B = 16 once took 1.3 s instead of ~0.6)
        for _ in range(2):
            design_many(group)
        # the median of `reps` timed runs: one run's wall time varies by +-15 % on this machine. Each
        # is followed by the same problems (at most `one_by_one` of them) solved one by one: the ratio
        # of the two, taken side by side, does not drift with the machine's speed over the minutes
        # between the batches and the one-by-one run below (it drifted by 30 % within minutes)
        timed, paired = [], []
        pair = group[:one_by_one]
        for _ in range(reps):
            with Clock() as c:
                solved = design_many(group)
            timed.append(c)
            with Clock() as alone_clock:
                for p in pair:
                    schedopt.solve(p, throw=False)
            paired.append(
                {
                    "batch_wall_s": round(c.wall, 4),
                    "batch_cpu_s": round(c.cpu, 3),
                    "one_by_one_wall_s": round(alone_clock.wall, 4),
                    "one_by_one_cpu_s": round(alone_clock.cpu, 3),
                    "one_by_one_designs": len(pair),
                    "speedup": (b / c.wall) / (len(pair) / alone_clock.wall),
                    "speedup_per_cpu_s": (b / c.cpu) / (len(pair) / alone_clock.cpu),
                }
            )
        c = sorted(timed, key=lambda t: t.wall)[len(timed) // 2]
        rows.append(
            {
                "batch": b,
                **c.record(),
                "designs_per_s": b / c.wall,
                "designs_per_cpu_s": b / c.cpu,
                "timed_runs_wall_s": [round(t.wall, 4) for t in timed],
                "side_by_side": paired,
                "side_by_side_speedup_median": float(np.median([r["speedup"] for r in paired])),
                "side_by_side_speedup_per_cpu_s_median": float(
                    np.median([r["speedup_per_cpu_s"] for r in paired])
                ),
                "statuses": sorted({s.status for s in solved}),
                "mean_iterations": float(np.mean([s.iterations for s in solved])),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    # One by one on the first `one_by_one` problems, the clock read after each batch size: the
    # problems differ in difficulty (the first, low-noise ones take ~1.6x the iterations of the
    # 256's mean), so a batch is compared with the same problems solved one by one.
    sample = problems[:one_by_one]
    singles, marks = _one_by_one(sample, {b for b in batches if b <= one_by_one} | {min(32, one_by_one)})
    for b, mark in sorted(marks.items()):
        print(json.dumps({"one_by_one": b, **mark}), flush=True)
    alone = marks[min(32, one_by_one)]
    batched = design_many(sample)
    same = {r["batch"]: r for r in rows if r["batch"] in marks}
    from schedopt.solvers import _lockstep

    return {
        "horizon": 1000,
        "n_modes": 1000,
        # how design_many ran the vectorised calls: threads (two a usable core) and rows x modes a piece
        "lockstep": {
            "workers": _lockstep.default_workers(),
            "usable_cores": _lockstep.usable_cores(),
            "cpu_row_entries": _lockstep.CPU_ROW_ENTRIES,
        },
        "modes": "auto (compressed: 128 of 1000)",
        "spectra": "one model spectrum, noise varied (design_many compresses it once per chunk)",
        "batches": rows,
        "one_by_one": alone,
        "one_by_one_same_problems": [marks[b] for b in sorted(marks)],
        "speedup_vs_one_by_one": {r["batch"]: r["designs_per_s"] / alone["designs_per_s"] for r in rows},
        # each timed batch against its problems (at most `one_by_one`) solved one by one right after it;
        # the median over the timed runs: the ratio measured side by side
        "speedup_side_by_side": {r["batch"]: r["side_by_side_speedup_median"] for r in rows},
        # CPU seconds are the steadier figure on a shared machine (wall time waits for the scheduler)
        "speedup_per_cpu_s_vs_one_by_one": {
            r["batch"]: r["designs_per_cpu_s"] / alone["designs_per_cpu_s"] for r in rows
        },
        # the batch against the same problems solved one by one (the first b of the one-by-one run)
        "speedup_per_cpu_s_vs_same_problems_one_by_one": {
            b: r["designs_per_cpu_s"] / marks[b]["designs_per_cpu_s"] for b, r in same.items()
        },
        "speedup_vs_same_problems_one_by_one": {
            b: r["designs_per_s"] / marks[b]["designs_per_s"] for b, r in same.items()
        },
        "max_relative_loss_difference_batched_vs_one_by_one": max(
            abs(x.final_loss / y.final_loss - 1.0) for x, y in zip(batched, singles, strict=True)
        ),
        "same_statuses": all(x.status == y.status for x, y in zip(batched, singles, strict=True)),
        "same_iterations": all(x.iterations == y.iterations for x, y in zip(batched, singles, strict=True)),
    }


def main() -> None:
    from schedopt.studies.scaling import parse_compute

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compute", default="1e6:1e10:9")
    parser.add_argument("--max-compute", type=float, default=None, help="run only the computes up to this")
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", default="1,2,4,8,16,32,64,128,256")
    parser.add_argument("--one-by-one", type=int, default=256, help="problems solved one by one")
    parser.add_argument("--reps", type=int, default=5, help="timed runs of each batch size (their median)")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma list of problems/<name>.toml")
    parser.add_argument("--skip-frontier", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    computes = parse_compute(args.compute)
    run = [c for c in computes if args.max_compute is None or c <= args.max_compute * (1 + 1e-9)]
    import jax

    result: dict = {
        "benchmark": "sweep",
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
        },
        "settings": {"compute": args.compute, "points": args.points, "workers": args.workers},
    }
    out = RESULTS / "sweep.json"
    RESULTS.mkdir(exist_ok=True)

    def write(section: str, value) -> None:
        """Merge one section into the file as it stands (several runs may fill it)."""
        current = json.loads(out.read_text()) if out.exists() else {}
        current.update({k: v for k, v in result.items() if k not in ("frontier", "throughput")})
        if section == "frontier":
            phases = {**current.get("frontier", {}).get("phases", {}), **value["phases"]}
            value = {**value, "phases": phases}
        current[section] = value
        out.write_text(json.dumps(current, indent=2) + "\n")

    if not args.skip_frontier:
        frontier_info = {
            "computes_asked": computes,
            "computes_run": run,
            "computes_not_run": [c for c in computes if c not in run],
            "bound": None
            if len(run) == len(computes)
            else f"--max-compute {args.max_compute:g} on this machine",
            "points_per_compute": args.points,
        }
        frontier(
            run,
            args.points,
            args.workers,
            args.phases.split(","),
            lambda phases: write("frontier", {**frontier_info, "phases": phases}),
        )
    if not args.skip_throughput:
        write("throughput", throughput([int(b) for b in args.batches.split(",")], args.one_by_one, args.reps))
    print("wrote benchmarks/results/sweep.json")


if __name__ == "__main__":
    main()
