"""The ``jax`` solver's basin search on the seed paper's problem and its neighbours (issue 17 item 8).

The seed paper's default problem (a = b = 2, sigma = 0.5, N = 500, batch 5, K = 100
piecewise-constant blocks, raw initial errors, T = 100) with the learning-rate cap at the
stability threshold (1.405686), and variants of it (cap, horizon, blocks, N, noise, batch,
parameterisation): the final loss of the default ``jax`` solve without the basin search
(``basin_search = "none"``) and with it (the default), its CPU time (``time.process_time``)
and wall time in this process after one solve of each has compiled, the point the search
kept, and CasADi's (IPOPT) final loss for reference.

Usage: uv run python benchmarks/basins.py [--no-casadi] [--json results/basins.json]
OpenBLAS runs one thread, as under the CLI (set ``OPENBLAS_NUM_THREADS`` to override).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the CLI's main() does, before NumPy loads

import numpy as np

import schedopt
from schedopt import Model, Problem
from schedopt.solvers import solve

THRESHOLD_CAP = 1.405686  # the stability threshold at batch 5 is 1.4056863

VARIANTS = [
    {"cap": THRESHOLD_CAP},
    *({"cap": cap} for cap in (1.3, 1.38, 1.4, 1.4056, 1.4057, 1.41, 1.45, 1.6, 2.0)),
    {"T": 50, "K": 50},
    {"T": 200, "K": 200},
    {"K": 50},
    {"N": 300},
    {"N": 1000},
    {"sigma": 0.25},
    {"sigma": 1.0},
    {"batch": 10},
    {"param": "linear"},
]


def problem(cap=THRESHOLD_CAP, N=500, T=100, K=100, sigma=0.5, batch=5, param="constant") -> Problem:
    model = Model.powerlaw(2.0, 2.0, N, noise_std=sigma, initial_loss="raw")
    lr = schedopt.ControlSpec("learning_rate", 0.0, cap, blocks=K, parameterisation=param)
    return Problem("seed-paper", model, schedopt.Training(horizon=T, batch_size=batch), {"learning_rate": lr})


def timed(p: Problem, solver: str, options=None):
    cpu, wall = time.process_time(), time.perf_counter()
    s = solve(p, solver, options=options, throw=False)
    return s, time.process_time() - cpu, time.perf_counter() - wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-casadi", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rows = []
    print("| variant | jax, no search | cpu s | jax (default) | cpu s | wall s | kept | casadi | cpu s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for variant in VARIANTS:
        p = problem(**variant)
        timed(p, "jax")  # compiles what both solves below run (a new shape, or the first row)
        local, local_cpu, local_wall = timed(p, "jax", {"basin_search": "none"})
        found, cpu, wall = timed(p, "jax")
        report = found.info.get("basin_search")
        row = {
            "variant": variant,
            "local_minimum": local.final_loss,
            "local_cpu": local_cpu,
            "local_wall": local_wall,
            "final_loss": found.final_loss,
            "status": str(found.status),
            "cpu": cpu,
            "wall": wall,
            "kept": report["chosen"] if report else "(no search)",
            "load": os.getloadavg()[0],
        }
        if not args.no_casadi:
            ref, ref_cpu, _ = timed(p, "casadi")
            row.update(casadi=ref.final_loss, casadi_cpu=ref_cpu, casadi_status=str(ref.status))
        rows.append(row)
        casadi = f"{row['casadi']:.9f} | {row['casadi_cpu']:.1f}" if "casadi" in row else "- | -"
        print(
            f"| {variant} | {local.final_loss:.9f} | {local_cpu:.2f} | {found.final_loss:.9f} | "
            f"{cpu:.2f} | {wall:.2f} | {row['kept']} | {casadi} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            machine = {
                "cpus": os.cpu_count(),
                "jax": importlib.metadata.version("jax"),
                "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
            json.dump({"machine": machine, "rows": rows}, f, indent=1)
    return 0 if np.isfinite([r["final_loss"] for r in rows]).all() else 1


if __name__ == "__main__":
    sys.exit(main())
