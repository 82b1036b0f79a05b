"""Real training tasks: does the fitted model predict held-out runs, and does the design beat tuned WSD?

For each task of ``examples/tasks.py`` (three corpora/optimisers of the tiny GPT):

Every schedule starts with the task's linear warmup (100 updates).

* **pilots**: four WSD runs (20 % 1-sqrt cooldown) of a quarter of the horizon
  at peaks ``guess * 2**(-1.5, -0.5, 0.5, 1.5)``: one full-run equivalent of
  compute, placed around the practitioner's guess, never on the tuning grid's
  results;
* **grid**: cosine, linear and WSD (20 % 1-sqrt cooldown) at the full horizon on
  7 peaks spaced x sqrt(2) (seed 0); **seeds**: each family's best peak on seeds 1 and 2;
* **predict**: ``schedopt fit`` on the pilots, then its predicted final loss for
  every full-length run (the panel), next to the Multi-Power Law fitted on the
  same pilots (``benchmarks/mpl.py``);
* **design**: the designed schedule, WSD at the designed peak and the
  MPL-optimised schedule, on seeds 0-2; **transfer**: both designs at twice the
  horizon against WSD at the peak tuned at the horizon (one seed).

Runs are cached (``benchmarks/runcache.py``), so every stage resumes.
Writes ``benchmarks/results/realtasks.json`` and ``realtasks.png``.

Usage::

    uv run python benchmarks/realtasks.py runs --stage pilots grid seeds   # training runs (hours)
    uv run python benchmarks/realtasks.py report                          # fit, predict, design, write
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from runcache import Job, read_run, run_jobs  # noqa: E402

from examples.tasks import TASKS, Task  # noqa: E402

FAMILIES = {
    "cosine": {"kind": "cosine"},
    "linear": {"kind": "linear"},
    "wsd": {"kind": "wsd", "cooldown": 0.2},
}
PILOT_PROTOCOLS = {
    # (fraction of the horizon, log2 of peak / guess) per pilot; each protocol costs one full run
    "long-short": ((0.5, 0.0), (0.25, -1.0), (0.25, 1.0)),
    "quarters": ((0.25, -1.5), (0.25, -0.5), (0.25, 0.5), (0.25, 1.5)),
}
PILOT_EVAL_EVERY = 20
SEEDS = (0, 1, 2)


def baseline_lrs(kind: str, peak: float, horizon: int, **options) -> np.ndarray:
    """The per-update learning rates of a baseline family (``examples.tinygpt.schedules``)."""
    from examples.tinygpt.schedules import make_schedule, schedule_values

    return schedule_values(make_schedule(kind, peak=peak, horizon=horizon, **options), horizon)


def _label(family: str, peak: float, horizon: int) -> str:
    return f"{family}-{peak:.4g}-T{horizon}"


def pilot_jobs(task: Task, protocol: str = "long-short") -> list[Job]:
    jobs = []
    for fraction, offset in PILOT_PROTOCOLS[protocol]:
        steps = int(round(fraction * task.horizon))
        peak = float(f"{task.guess * 2.0**offset:.4g}")
        lrs = baseline_lrs("wsd", peak, steps, cooldown=0.2, warmup=task.warmup)
        jobs.append(
            Job(task.name, "pilot-" + _label("wsd", peak, steps), lrs, 0, PILOT_EVAL_EVERY, {"peak": peak})
        )
    return jobs


def grid_jobs(task: Task, seed: int = 0) -> list[Job]:
    jobs = []
    for family, options in FAMILIES.items():
        for peak in task.peak_grid:
            extra = {k: v for k, v in options.items() if k != "kind"}
            lrs = baseline_lrs(options["kind"], peak, task.horizon, warmup=task.warmup, **extra)
            jobs.append(Job(task.name, _label(family, peak, task.horizon), lrs, seed, meta={"peak": peak}))
    return jobs


def best_peaks(task: Task) -> dict[str, float]:
    """Each family's peak with the lowest seed-0 final loss on the grid (the grid must be finished)."""
    out = {}
    for family in FAMILIES:
        runs = [j for j in grid_jobs(task) if j.label.startswith(family + "-")]
        losses = [read_run(j)["final_val_loss"] for j in runs]
        out[family] = runs[int(np.nanargmin(losses))].meta["peak"]
    return out


def seed_jobs(task: Task) -> list[Job]:
    best = best_peaks(task)
    jobs = []
    for family, options in FAMILIES.items():
        extra = {k: v for k, v in options.items() if k != "kind"}
        lrs = baseline_lrs(options["kind"], best[family], task.horizon, warmup=task.warmup, **extra)
        label = _label(family, best[family], task.horizon)
        jobs += [Job(task.name, label, lrs, s, meta={"peak": best[family]}) for s in SEEDS[1:]]
    return jobs


def _centre_first(n: int) -> list[int]:
    """Indices ``0..n-1`` of a family-major grid of 7 peaks, each family's centre peaks first."""
    grid = len(next(iter(TASKS.values())).peak_grid)
    rank = sorted(range(grid), key=lambda i: abs(i - (grid - 1) / 2))
    return sorted(range(n), key=lambda i: (rank.index(i % grid) if n % grid == 0 else 0, i))


STAGES = {"pilots": pilot_jobs, "grid": grid_jobs, "seeds": seed_jobs}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("runs", help="run (or resume) the training runs of some stages")
    r.add_argument("--stage", nargs="+", choices=list(STAGES), required=True)
    r.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS))
    r.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.command == "runs":
        for stage in args.stage:
            per_task = [STAGES[stage](TASKS[name]) for name in args.task]
            order = _centre_first(max(len(j) for j in per_task))
            jobs = [
                js[i] for i in order for js in per_task if i < len(js)
            ]  # interleaved, centre of grids first
            print(f"stage {stage}: {len(jobs)} runs", file=sys.stderr, flush=True)
            run_jobs(jobs, workers=args.workers)


if __name__ == "__main__":
    main()
