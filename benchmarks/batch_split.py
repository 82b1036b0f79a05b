"""Where a batched solve's CPU goes: the solves' host code, the lockstep's threads, XLA (issue 14).

The throughput batch of ``benchmarks/sweep.py`` (T = 1e3, N = 1e3 compressed to 128 modes,
noise varied) solved by :func:`schedopt.design_many` at ``--batch`` problems, warm, ``--reps``
times, with each thread's CPU read by ``time.thread_time``:

- **solve threads**: the host code of the solves (L-BFGS-B, the driver, the lockstep's
  ``submit``), which one solve at a time runs (the baton, :mod:`schedopt.solvers._lockstep`);
- **pool threads**: the lockstep's calls (stacking the rows' arguments, dispatching the
  compiled pieces, splitting their results), Python that needs the GIL too;
- **the rest**: the process's CPU minus both, mostly XLA's own threads running the compiled
  programs (and the caller's grouping of the batch).

Then the same problems one by one (``solve``), and the requests a design makes, by program.
The wall time of a batch cannot fall below the GIL-bound part (solve plus pool threads) nor
below the process CPU over the cores; the measured wall against those two bounds says how much
is lost to scheduling.

Writes ``benchmarks/results/batch-split.json``. The machine may be shared: the load average is
recorded with each timing, and CPU times are the steadier figure.

Usage: uv run python benchmarks/batch_split.py [--batch 32] [--reps 7]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import time
from pathlib import Path

if not any(os.environ.get(n) for n in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads, as the sweep benchmark

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _clock import Clock
from sweep import throughput_problem

import schedopt
from schedopt.batch import design_many
from schedopt.solvers import _lockstep

ROOT = Path(__file__).resolve().parent.parent


class Accounts:
    """Thread CPU of the solves and of the pool's calls, and the requests by program, while installed."""

    def __init__(self) -> None:
        self.solve_cpu = 0.0
        self.pool_cpu = 0.0
        self.requests: collections.Counter = collections.Counter()
        self._run, self._work, self._submit = (
            _lockstep.run,
            _lockstep.Lockstep._work,
            _lockstep.Lockstep.submit,
        )

    def clear(self) -> None:
        self.solve_cpu = self.pool_cpu = 0.0
        self.requests.clear()

    def install(self) -> None:
        accounts = self
        run, work, submit = self._run, self._work, self._submit

        def timed(task):
            def solve():
                start = time.thread_time()
                try:
                    return task()
                finally:
                    accounts.solve_cpu += time.thread_time() - start  # one solve at a time: no race

            return solve

        def run_timed(tasks, **options):
            return run([timed(t) for t in tasks], **options)

        def work_timed(lockstep, job):
            start = time.thread_time()
            try:
                return work(lockstep, job)
            finally:
                spent = time.thread_time() - start
                with lockstep._lock:
                    accounts.pool_cpu += spent

        def submit_counted(lockstep, request):
            accounts.requests[getattr(request.function, "__name__", "?")] += 1
            return submit(lockstep, request)

        _lockstep.run = run_timed
        _lockstep.Lockstep._work = work_timed
        _lockstep.Lockstep.submit = submit_counted


def _ms(value: float, designs: int) -> float:
    return round(1e3 * value / designs, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/batch-split.json")
    args = parser.parse_args()
    b = args.batch
    problems = [throughput_problem(float(s)) for s in np.linspace(0.25, 1.0, 256)][:b]
    accounts = Accounts()
    accounts.install()
    for _ in range(2):  # compiles this batch size's programs (see sweep.py)
        design_many(problems)
    batches = []
    for _ in range(args.reps):
        accounts.clear()
        with Clock() as c:
            solved = design_many(problems)
        host = accounts.solve_cpu + accounts.pool_cpu
        batches.append(
            {
                **c.record(),
                "wall_ms_per_design": _ms(c.wall, b),
                "cpu_ms_per_design": _ms(c.cpu, b),
                "solve_threads_cpu_ms_per_design": _ms(accounts.solve_cpu, b),
                "pool_threads_cpu_ms_per_design": _ms(accounts.pool_cpu, b),
                "rest_cpu_ms_per_design": _ms(c.cpu - host, b),
                # the two lower bounds of the wall time: the GIL-bound Python, the CPU over the cores
                "gil_bound_ms_per_design": _ms(host, b),
                "cores_bound_ms_per_design": _ms(c.cpu / _lockstep.usable_cores(), b),
            }
        )
        print(json.dumps(batches[-1]), flush=True)
    requests = {name: round(n / b, 1) for name, n in accounts.requests.most_common()}
    schedopt.solve(problems[0])  # compiled
    singles = []
    for _ in range(2):
        with Clock() as c:
            alone = [schedopt.solve(p, throw=False) for p in problems]
        singles.append(
            {**c.record(), "wall_ms_per_design": _ms(c.wall, b), "cpu_ms_per_design": _ms(c.cpu, b)}
        )
        print(json.dumps({"one_by_one": singles[-1]}), flush=True)
    keys = [k for k in batches[0] if k.endswith("_per_design")]
    median = {k: float(np.median([r[k] for r in batches])) for k in keys}
    best_alone = min(s["wall_ms_per_design"] for s in singles)
    out = {
        "problem": "benchmarks/sweep.py's throughput batch: T = 1e3, N = 1e3 (128 compressed modes)",
        "batch": b,
        "usable_cores": _lockstep.usable_cores(),
        "lockstep_workers": _lockstep.default_workers(),
        "batches": batches,
        "median": median,
        "one_by_one": singles,
        "requests_per_design": requests,
        "speedup_median_vs_one_by_one": round(best_alone / median["wall_ms_per_design"], 3),
        "same_results": all(
            x.status == y.status and x.iterations == y.iterations and x.final_loss == y.final_loss
            for x, y in zip(solved, alone, strict=True)
        ),
        "python": platform.python_version(),
        "load_average_at_end": list(os.getloadavg()),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    path = ROOT / args.out
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(median), f"-> {args.out}")


if __name__ == "__main__":
    main()
