"""How long ``schedopt fit`` takes, as a user feels it: a fresh process on the planned pilots of a horizon.

The pilots are the ones ``schedopt pilots --horizon T --budget 1 --peak 3e-3 --warmup T/40`` plans, with
synthetic losses (a power law in the progress ``sum(lr) / 3e-3`` plus a floor that grows with the rate):
logged at every update with 5 % lognormal scatter (a minibatch training loss), or 20 times a pilot with
0.3 % (an averaged validation loss). Each entry is one ``schedopt fit`` of the three pilots (every default:
terms, holdout, the rising check) in a fresh process with a warm compilation cache (the same command run
once before, untimed), its CPU seconds (children's rusage), wall seconds, peak RSS and the load average
(``startup.run``). Numbers the fit gives are not the point; its time and its status are.

``--before TREE`` (a checkout of the code before a change) also times the same command run from that tree
(``python -m schedopt`` with ``PYTHONPATH=TREE``; this checkout then runs the same way), the two
alternated entry by entry so that both see the same load, and gives their ratios.

Usage: uv run python benchmarks/fit_time.py [--horizons 2000,20000] [--logs 1,20] [--before TREE] [--out FILE]
Writes benchmarks/results/fit-time.json (paths relative to the repository; TREE by its commit).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from startup import run  # noqa: E402

from schedopt._io import atomic_write_text, json_text  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SCHEDOPT = str(Path(sys.executable).parent / "schedopt")  # the environment's console script
PEAK = 3e-3
LOGS = {"every update, 5 % scatter": (1, 0.05), "20 a pilot, 0.3 % scatter": (20, 0.003)}


def _losses(lr: np.ndarray, scatter: float, rng) -> np.ndarray:
    progress = np.cumsum(lr) / PEAK
    curve = 1.5 + 3.0 * (1 + progress / 50) ** -0.4 + 20 * lr
    return np.r_[4.5, curve] * np.exp(scatter * rng.standard_normal(lr.size + 1))


def write_pilots(folder: Path, horizon: int, every: int, scatter: float) -> list[Path]:
    """The planned pilots' schedules from ``schedopt pilots`` and synthetic logs of them, as CSV."""
    plan = folder / "plan"
    options = [
        "--horizon",
        str(horizon),
        "--budget",
        "1",
        "--peak",
        str(PEAK),
        "--warmup",
        str(horizon // 40),
    ]
    subprocess.run([SCHEDOPT, "pilots", *options, "--out", str(plan)], check=True, capture_output=True)
    rng = np.random.default_rng(0)
    logs = []
    for schedule in sorted(plan.glob("*.json")):
        lr = np.asarray(json.loads(schedule.read_text())["learning_rate"], dtype=np.float64)
        loss = _losses(lr, scatter, rng)
        interval = max(1, lr.size // 20) if every > 1 else 1
        path = folder / f"{schedule.stem}.csv"
        with path.open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["step", "learning_rate", "train_loss"])
            for t in range(lr.size + 1):
                logged = t % interval == 0 or t == lr.size
                out.writerow([t, lr[t] if t < lr.size else "", loss[t] if logged else ""])
        logs.append(path)
    return logs


def _commit(tree: Path) -> str:
    """The tree's commit, ``+ changes`` when its tracked files differ from it."""
    head = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" + changes" if dirty.stdout.strip() else "")


def _timed(command: list[str], env: dict[str, str], folder: Path) -> tuple[dict, dict]:
    """Run ``command`` once to fill the compilation cache, then time it: the entry and its JSON report."""
    run(command, env, folder)  # the timed run is warm
    entry = run(command, env, folder)
    report = json.loads(entry.pop("_stdout")) if entry["exit_code"] == 0 else {}
    return entry, report


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--horizons", default="2000,20000")
    p.add_argument("--logs", default="1,20", help="1: a loss every update; 20: 20 a pilot (both by default)")
    p.add_argument("--before", type=Path, default=None, help="a checkout of the code before a change")
    p.add_argument("--out", type=Path, default=RESULTS / "fit-time.json")
    args = p.parse_args(argv)
    trees = {"after": ROOT} if args.before is None else {"before": args.before.resolve(), "after": ROOT}
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for horizon in (int(h) for h in args.horizons.split(",")):
            for log, (every, scatter) in LOGS.items():
                if str(every) not in args.logs.split(","):
                    continue
                folder = Path(tmp) / f"T{horizon}-{every}"
                folder.mkdir()
                pilots = write_pilots(folder, horizon, every, scatter)
                entry = {"horizon": horizon, "log": log}
                for name, tree in trees.items():
                    cache = Path(tmp) / f"cache-{name}"  # each tree its own compilation cache
                    env = {**os.environ, "SCHEDOPT_CACHE_DIR": str(cache)}
                    if args.before is None:
                        launcher = [SCHEDOPT]
                    else:
                        env["PYTHONPATH"] = str(tree)
                        launcher = [sys.executable, "-m", "schedopt"]
                    command = [*launcher, "fit", *map(str, pilots), "--json"]
                    command += ["--out-file", str(folder / f"fitted-{name}.toml"), "--force"]
                    timed, report = _timed(command, env, folder)
                    timed.update(loss_values=report.get("n_points"), status=report.get("status"))
                    timed["parameters"] = report.get("parameters")
                    entry[name] = timed
                entry["pilot_updates"] = [int(sum(1 for _ in f.open()) - 2) for f in pilots]
                if args.before is not None:
                    before, after = entry["before"], entry["after"]
                    entry["cpu_ratio"] = round(before["cpu_s"] / after["cpu_s"], 2)
                    entry["wall_ratio"] = round(before["wall_s"] / after["wall_s"], 2)
                    if before["parameters"] and after["parameters"]:
                        entry["largest_parameter_change"] = max(
                            abs(after["parameters"][k] - before["parameters"][k])
                            / max(abs(before["parameters"][k]), 1e-300)
                            for k in before["parameters"]
                        )
                entries.append(entry)
                print(json.dumps(entry), flush=True)
    out = {
        "entries": entries,
        "trees": {name: _commit(tree) for name, tree in trees.items()},
        "usable_cores": len(os.sched_getaffinity(0)),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
    }
    atomic_write_text(args.out, json_text(out).replace(str(ROOT) + "/", ""))


if __name__ == "__main__":
    main()
