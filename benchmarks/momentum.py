"""Momentum as a control on the shipped problems (issue 16): iterations, CPU and wall time, gap to learning rate alone.

Each of ``problems/easy-phase.toml`` and ``problems/hard-phase.toml`` at T = 2000 with a momentum
control (20 linear blocks, 0 <= beta <= 0.95) is solved by the ``jax`` solver with its defaults
(compressed spectrum, near-full L-BFGS-B memory, second-order check) in a fresh process of its own,
as a user's first solve is (JIT compilation included, no compilation cache), then solved again in
that process (warm: the difference is what compilation cost), next to the learning-rate-only solve;
then in two more fresh processes sharing a compilation cache (``schedopt``'s commands keep one): the
second one's solve (``cached``) is what a user's later runs cost.
CPU seconds are the solving process's own; wall seconds are what the machine's load leaves of
them, so the load average (1 min) is recorded before and after each solve, and at the start.
Writes ``results/momentum.json`` (``--out`` elsewhere). About 3 min on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
HORIZON = 2000
PROBLEMS = ("easy-phase", "hard-phase")


def _timed(problem):
    import schedopt

    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    sol = schedopt.solve(problem, "jax", throw=False)
    return sol, {
        "status": str(sol.status),
        "iterations": sol.iterations,
        "final_loss": sol.final_loss,
        "cpu_s": round(time.process_time() - cpu, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "load_average_before": round(load, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def _cached_first_solve(name: str, cache: str) -> dict:
    """The momentum solve in this fresh process with the compilation cache at ``cache`` (as ``schedopt``'s
    commands run: on by default); a second such process finds every program there."""
    from schedopt._jax import enable_cache

    enable_cache(cache)
    _, row = _timed(_momentum_problem(name)[1])
    return row


def _momentum_problem(name: str):
    from schedopt.problem import ControlSpec
    from schedopt.spec import load_problem

    momentum = ControlSpec("momentum", 0.0, 0.95, blocks=20)
    base = load_problem(ROOT.parent / "problems" / f"{name}.toml").with_horizon(HORIZON)
    return base, base.replace(controls={**dict(base.controls), "momentum": momentum})


def _worker(name: str) -> dict:
    """One problem in this (fresh) process: the momentum solve cold and warm, then learning rate only."""
    import numpy as np

    base, problem = _momentum_problem(name)
    sol, row = _timed(problem)  # cold: compiles what it runs
    warm_sol, warm = _timed(problem)
    assert warm_sol.final_loss == sol.final_loss and warm_sol.iterations == sol.iterations, (
        "not deterministic"
    )
    row["warm"] = {k: warm[k] for k in ("cpu_s", "wall_s", "load_average_before", "load_average_after")}
    row["compile_cpu_s"] = round(row["cpu_s"] - warm["cpu_s"], 2)
    row["second_order"] = sol.info.get("second_order")
    row["momentum_every_100_steps"] = np.round(sol.per_step("momentum")[::100], 3).tolist()
    _, lr_only = _timed(base)
    row["learning_rate_only"] = lr_only
    row["gap_to_learning_rate_only"] = row["final_loss"] / lr_only["final_loss"] - 1.0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    row["process_cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)  # imports and all three solves
    return row


def _run_worker(name: str, cache: str | None = None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
    done = subprocess.run(
        command + ([] if cache is None else ["--cache", cache]), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{name}: worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "results" / "momentum.json",
        help="result file (default results/momentum.json)",
    )
    parser.add_argument(
        "--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS), help="shipped problems"
    )
    parser.add_argument("--worker", choices=PROBLEMS, help=argparse.SUPPRESS)  # one problem, row on stdout
    parser.add_argument("--cache", help=argparse.SUPPRESS)  # with --worker: the cached first solve only
    args = parser.parse_args()
    if args.worker:
        row = _worker(args.worker) if args.cache is None else _cached_first_solve(args.worker, args.cache)
        print(json.dumps(row))
        return

    import jax
    import scipy

    out = {
        "machine": {
            "cores": os.cpu_count(),
            "jax": jax.__version__,
            "scipy": scipy.__version__,
            "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "nice": os.nice(0),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "horizon": HORIZON,
        "momentum": {"min": 0.0, "max": 0.95, "blocks": 20},
        "problems": {},
    }
    for name in args.problems:
        wall = time.perf_counter()
        row = _run_worker(name)
        row["process_wall_s"] = round(time.perf_counter() - wall, 2)
        with tempfile.TemporaryDirectory() as cache:
            _run_worker(name, cache)  # fills the cache
            row["cached"] = _run_worker(name, cache)  # a second process: every program from the cache
        out["problems"][name] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "second_order"}), flush=True)
    out["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
