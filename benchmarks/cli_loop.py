"""The documented loop, end to end, through the command lines a user types (issue 12).

``realtasks.py`` drives the training loops and ``schedopt``'s fit from Python. This script does what the
README tells a user to do instead, in a fresh folder, one subprocess per command:

1. ``schedopt pilots --horizon T --budget 1 --peak GUESS --warmup W``;
2. ``python -m examples.tinygpt --schedule pilots/<each>.json --out runs/<each>.csv`` (no other option: the
   pilot runs for its own updates and logs as often as the loop's command line does by default);
3. ``schedopt fit runs/*.csv`` and ``schedopt design fitted.toml --horizon T --warmup W``;
4. the designed schedule on seeds 0-4, against WSD (20 % 1-sqrt cooldown, the same warmup) tuned on seven
   peaks x sqrt(2) around the guess (seed 0), its best on seeds 1-4 too.

The task is one the benchmark's twelve do not have: the tiny GPT's defaults (code, AdamW) at T = 600.
Writes ``benchmarks/results/cli-loop.json``: every command's wall and CPU seconds, the pilots' losses, the
fit's notes, the design's peak and predicted loss, every run's final validation loss, and the design minus
tuned WSD per seed.

Usage: uv run python benchmarks/cli_loop.py [--work DIR] [--horizon 600] [--guess 3e-3] (~10 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SEEDS = (0, 1, 2, 3, 4)
GRID = 7


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str], cwd: Path, log: list[dict]) -> str:
    """Run one command in ``cwd``; record its wall and CPU seconds; its standard output."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    cpu, wall = _children_cpu(), time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    entry = {
        "command": " ".join(Path(a).name if a == sys.executable else a for a in args),
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(_children_cpu() - cpu, 2),
        "exit_code": done.returncode,
    }
    log.append(entry)
    if done.returncode != 0:
        raise RuntimeError(f"{entry['command']} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def train(schedule: str, out: str, work: Path, log: list[dict], *extra: str) -> float:
    """One run of the loop's command line; a run whose log and sidecar are in ``work`` already is read back."""
    sidecar = (work / out).with_suffix(".json")
    if sidecar.exists() and (work / out).exists():
        log.append({"command": f"(resumed) {out}", "wall_s": 0.0, "cpu_s": 0.0, "exit_code": 0})
        return float(json.loads(sidecar.read_text())["final_val_loss"])
    text = run(
        [sys.executable, "-m", "examples.tinygpt", "--schedule", schedule, "--out", out, "--quiet", *extra],
        work,
        log,
    )
    return float(json.loads(text.strip().splitlines()[-1])["final_val_loss"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--work", type=Path, default=None, help="folder to work in, resumed (default: a temporary one)"
    )
    p.add_argument("--horizon", type=int, default=600)
    p.add_argument("--guess", type=float, default=3e-3)
    p.add_argument("--out", type=Path, default=RESULTS / "cli-loop.json")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="schedopt-cli-loop-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "examples").unlink(missing_ok=True)
    (work / "examples").symlink_to(ROOT / "examples")  # `python -m examples.tinygpt` from the user's folder
    horizon, warmup = args.horizon, args.horizon // 20
    schedopt = [sys.executable, "-m", "schedopt"]
    log: list[dict] = []
    started = time.time()
    plan = json.loads(
        run(
            [
                *schedopt,
                "pilots",
                "--horizon",
                str(horizon),
                "--peak",
                f"{args.guess:g}",
                "--warmup",
                str(warmup),
                "--json",
            ],
            work,
            log,
        )
    )
    pilots = {}
    for pilot in plan["pilots"]:
        name = Path(pilot["file"]).stem
        pilots[name] = train(pilot["file"], f"runs/{name}.csv", work, log)
    fit = json.loads(
        run(
            [
                *schedopt,
                "fit",
                *(f"runs/{n}.csv" for n in pilots),
                "--out-file",
                "fitted.toml",
                "--json",
                "--force",
            ],
            work,
            log,
        )
    )
    design = json.loads(
        run(
            [
                *schedopt,
                "design",
                "fitted.toml",
                "--horizon",
                str(horizon),
                "--warmup",
                str(warmup),
                "--json",
                "--no-baselines",
                "--force",
            ],
            work,
            log,
        )
    )
    schedule = "exports/fitted/schedule.json"
    designed = {
        seed: train(schedule, f"runs/designed-s{seed}.csv", work, log, "--seed", str(seed)) for seed in SEEDS
    }
    peaks = [float(f"{args.guess * 2 ** ((k - GRID // 2) / 2):.4g}") for k in range(GRID)]
    shape = ["--steps", str(horizon), "--warmup", str(warmup), "--cooldown", "0.2"]  # WSD, 20 % 1-sqrt
    grid = {
        peak: train("wsd", f"runs/wsd-{peak:g}-s0.csv", work, log, *shape, "--peak", f"{peak:g}")
        for peak in peaks
    }
    best = min(grid, key=grid.get)
    tuned = {0: grid[best]}
    for seed in SEEDS[1:]:
        tuned[seed] = train(
            "wsd",
            f"runs/wsd-{best:g}-s{seed}.csv",
            work,
            log,
            *shape,
            "--peak",
            f"{best:g}",
            "--seed",
            str(seed),
        )
    differences = np.array([designed[s] - tuned[s] for s in SEEDS])
    network = design["network"]
    result = {
        "task": "examples/tinygpt defaults (code, AdamW, 2x64, context 64, batch 16)",
        "horizon": horizon,
        "warmup": warmup,
        "guess": args.guess,
        "pilots": {
            **{n: {"final_val_loss": v} for n, v in pilots.items()},
            "eval_every": plan.get("eval_every"),
        },
        "fit": {
            "notes": fit.get("notes"),
            "info": fit.get("info"),
            "rms_error": fit["fit_error"]["rms_error"],
        },
        "design": {
            "peak": network["peak_learning_rate"],
            "predicted_final_loss": network["final_loss"],
            "per_seed": [designed[s] for s in SEEDS],
        },
        "wsd_grid_seed0": {f"{k:g}": v for k, v in grid.items()},
        "tuned_wsd": {"peak": best, "per_seed": [tuned[s] for s in SEEDS]},
        "design_minus_tuned_wsd": {
            "per_seed": differences.tolist(),
            "mean": float(differences.mean()),
            "stderr": float(differences.std(ddof=1) / np.sqrt(len(SEEDS))),
        },
        "full_length_runs": {"design": 0, "tuned_wsd": GRID + len(SEEDS) - 1},
        "commands": log,
        "cpu_s": round(sum(e["cpu_s"] for e in log), 1),
        "wall_s": round(time.time() - started, 1),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    d = result["design_minus_tuned_wsd"]
    print(
        f"design {network['peak_learning_rate']:.3g} vs tuned WSD {best:g}: {d['mean']:+.4f} +- {d['stderr']:.4f} nats"
    )


if __name__ == "__main__":
    main()
