"""Close the loop on a real transformer: designed schedule vs tuned cosine, WSD and linear.

The designed schedule comes from short constant-learning-rate pilots (a quarter
of the target horizon) through ``schedopt fit`` and ``schedopt design``, with
no run at the full length before it is evaluated. Each baseline's peak is
tuned on a grid at the full length (seed 0), and the best peak is then run on
the other seeds. Every method is evaluated on the same seeds; the table reports
the mean final validation loss, its standard error and how many full-length
runs each method spent (pilots counted in full-run equivalents).

Writes ``benchmarks/results/transformer.json`` and ``transformer.png``.

Usage::

    uv run python benchmarks/transformer.py              # the full benchmark (~30 min on 2 cores)
    uv run python benchmarks/transformer.py --quick      # a tiny model, minutes, to check the plumbing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.tinygpt import TrainConfig, load_corpus, make_schedule, schedule_values, train  # noqa: E402
from examples.tinygpt.loop import close_the_loop  # noqa: E402
from examples.tinygpt.schedules import schedule_from_file  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

FULL = {
    "config": TrainConfig(steps=2000, eval_every=100),
    "pilot_steps": 500,
    "pilot_eval_every": 20,
    "pilot_peaks": (1e-3, 3e-3, 1e-2),
    "peak_grid": (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
    "seeds": (0, 1, 2),
    "n_modes": 1000,
}
QUICK = {
    "config": TrainConfig(
        d_model=32, n_layers=1, n_heads=2, context=32, batch_size=8, steps=200, eval_every=20
    ),
    "pilot_steps": 50,
    "pilot_eval_every": 5,
    "pilot_peaks": (2e-3, 8e-3),
    "peak_grid": (2e-3, 8e-3),
    "seeds": (0, 1),
    "n_modes": 200,
}
BASELINES = {
    "cosine": {"kind": "cosine"},
    "wsd": {"kind": "wsd", "cooldown": 0.2},
    "linear": {"kind": "linear"},
}


def _stats(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return {"per_seed": arr.tolist(), "mean": float(arr.mean()), "stderr": se}


def _run(config, schedule, log, corpus):
    result = train(config, schedule, log_path=log, corpus=corpus)
    return {
        "final_val_loss": float(result.final_val_loss),
        "val_steps": np.asarray(result.val_steps).tolist(),
        "val_losses": np.asarray(result.val_losses).tolist(),
        "wall_time": float(result.wall_time),
        "steps_per_second": float(result.steps_per_second),
    }


def tune_baseline(name, options, setup, work, corpus, log) -> dict:
    """Grid-tune the peak at full length on the first seed, then run the best peak on the other seeds."""
    config = setup["config"]
    horizon = config.steps
    seeds = setup["seeds"]
    grid = {}
    for peak in setup["peak_grid"]:
        sched = make_schedule(peak=peak, horizon=horizon, **options)
        run = _run(
            dataclasses.replace(config, seed=seeds[0]),
            sched,
            work / name / f"peak{peak:g}-seed{seeds[0]}.csv",
            corpus,
        )
        grid[peak] = run
        log(f"{name} peak {peak:g} seed {seeds[0]}: {run['final_val_loss']:.4f} ({run['wall_time']:.0f} s)")
    best = min(grid, key=lambda p: grid[p]["final_val_loss"])
    runs = {seeds[0]: grid[best]}
    sched = make_schedule(peak=best, horizon=horizon, **options)
    for seed in seeds[1:]:
        runs[seed] = _run(
            dataclasses.replace(config, seed=seed),
            sched,
            work / name / f"peak{best:g}-seed{seed}.csv",
            corpus,
        )
        log(f"{name} peak {best:g} seed {seed}: {runs[seed]['final_val_loss']:.4f}")
    return {
        "options": options,
        "tuning": {f"{p:g}": grid[p]["final_val_loss"] for p in grid},
        "best_peak": best,
        "best_at_grid_edge": best in (min(grid), max(grid)),
        "final_val_loss": _stats([runs[s]["final_val_loss"] for s in seeds]),
        "full_length_runs": len(grid) + len(seeds) - 1,
        "curves": {str(s): {"steps": runs[s]["val_steps"], "loss": runs[s]["val_losses"]} for s in seeds},
        "learning_rate": schedule_values(sched, horizon).tolist(),
    }


def designed(setup, work, corpus, log, lr_cap="best") -> dict:
    config = setup["config"]
    start = time.perf_counter()
    loop = close_the_loop(
        work / f"designed-cap-{lr_cap}",
        config,
        pilot_steps=setup["pilot_steps"],
        pilot_peaks=setup["pilot_peaks"],
        pilot_eval_every=setup["pilot_eval_every"],
        seeds=setup["seeds"],
        n_modes=setup["n_modes"],
        lr_cap=lr_cap,
        corpus=corpus,
    )
    fit = loop.fit.to_dict()
    report = loop.design.to_dict()
    log(
        f"fit: a={fit['parameters']['a']:.3g} b={fit['parameters']['b']:.3g} phase {fit['phase']}, "
        f"error {100 * fit['fit_error']['rms_error']:.2f}%, holdout {100 * fit['holdout']['rms_error']:.2f}%"
    )
    finals = [float(r.final_val_loss) for r in loop.runs]
    log(f"designed: {finals}")
    horizon = config.steps
    return {
        "lr_cap": lr_cap,
        "fit": fit,
        "design": {
            "phase": report["phase"],
            "final_loss_model": report["final_loss"],
            "network": report["network"],
            "solver": report["solver"],
            "status": report["status"],
        },
        "pilots": {
            "steps": setup["pilot_steps"],
            "peaks": list(setup["pilot_peaks"]),
            "full_run_equivalents": len(setup["pilot_peaks"]) * setup["pilot_steps"] / horizon,
        },
        "final_val_loss": _stats(finals),
        "full_length_runs": 0,
        "curves": {
            str(s): {"steps": np.asarray(r.val_steps).tolist(), "loss": np.asarray(r.val_losses).tolist()}
            for s, r in zip(setup["seeds"], loop.runs, strict=True)
        },
        "learning_rate": schedule_values(schedule_from_file(loop.schedule_file), horizon).tolist(),
        "predicted_final_val_loss": report["network"]["final_loss"],
        "wall_time": time.perf_counter() - start,
    }


def wsd_at_designed_peak(setup, work, corpus, log, designed_method) -> dict:
    """Diagnostic, not a competitor: WSD (20 % 1-sqrt cooldown) at the designed schedule's peak.

    Separates what the design's peak (from the pilots) buys from what its anneal shape buys.
    """
    config = setup["config"]
    peak = float(np.max(designed_method["learning_rate"]))
    sched = make_schedule("wsd", peak=peak, horizon=config.steps, cooldown=0.2)
    finals = []
    for seed in setup["seeds"]:
        run = _run(
            dataclasses.replace(config, seed=seed),
            sched,
            work / "wsd" / f"peak{peak:g}-seed{seed}.csv",
            corpus,
        )
        finals.append(run["final_val_loss"])
        log(f"diagnostic: wsd at the designed peak {peak:g}, seed {seed}: {run['final_val_loss']:.4f}")
    return {"peak": peak, "final_val_loss": _stats(finals)}


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = results["methods"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    for i, (name, m) in enumerate(methods.items()):
        color = "black" if name == "designed" else ("0.5" if name.startswith("designed") else f"C{i}")
        lw = 2.2 if name.startswith("designed") else 1.2
        lr = np.asarray(m["learning_rate"])
        axes[0].plot(np.arange(lr.size), lr, color=color, lw=lw, label=name)
        curves = list(m["curves"].values())
        steps = np.asarray(curves[0]["steps"])
        mean = np.mean([c["loss"] for c in curves], axis=0)
        stats = m["final_val_loss"]
        axes[1].plot(
            steps, mean, color=color, lw=lw, label=f"{name}: {stats['mean']:.4f} ± {stats['stderr']:.4f}"
        )
        if "tuning" in m:
            peaks = [float(p) for p in m["tuning"]]
            axes[2].semilogx(peaks, list(m["tuning"].values()), "o-", color=color, label=name)
    main_design = next(m for m in methods if m.startswith("designed"))
    d = methods[main_design]["final_val_loss"]
    axes[2].axhspan(d["mean"] - d["stderr"], d["mean"] + d["stderr"], color="black", alpha=0.15)
    axes[2].axhline(d["mean"], color="black", lw=2, label=f"{main_design} (no tuning)")
    axes[0].set(xlabel="step", ylabel="learning rate", title="schedules (baselines at their tuned peak)")
    axes[1].set(xlabel="step", ylabel="validation loss (nats/byte)", title="validation loss, mean over seeds")
    lo = min(m["final_val_loss"]["mean"] for m in methods.values())
    axes[1].set_ylim(lo * 0.97, lo * 1.6)
    axes[2].set(
        xlabel="peak learning rate",
        ylabel="final validation loss (seed 0)",
        title="peak tuning at full length",
    )
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and horizons (plumbing check)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "transformer-benchmark", help="run logs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of transformer.json/png")
    parser.add_argument(
        "--lr-cap",
        default="best",
        choices=("best", "max"),
        help="the designed schedule's cap rule (schedopt fit)",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        help="take the other methods (tuned baselines, other designed variants) from this results file "
        "instead of rerunning them (same setup and seeds)",
    )
    args = parser.parse_args(argv)
    setup = QUICK if args.quick else FULL
    stem = "transformer-quick" if args.quick else "transformer"
    work = args.work / ("quick" if args.quick else "full")
    log_lines: list[str] = []

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        log_lines.append(line)

    start = time.perf_counter()
    load_before = os.getloadavg()
    corpus = load_corpus()
    name = "designed" if args.lr_cap == "best" else f"designed-cap-{args.lr_cap}"
    methods = {name: designed(setup, work, corpus, log, args.lr_cap)}
    if args.reuse is not None:
        previous = json.loads(args.reuse.read_text())
        if previous["seeds"] != list(setup["seeds"]) or previous["horizon"] != setup["config"].steps:
            raise SystemExit(f"--reuse: {args.reuse} has other seeds or horizon")
        for old, method in previous["methods"].items():
            if old.startswith("designed"):
                old = (
                    "designed"
                    if method.get("lr_cap", "max") == "best"
                    else f"designed-cap-{method.get('lr_cap', 'max')}"
                )
            methods.setdefault(old, method)
        log(f"reused from {args.reuse}: {', '.join(m for m in methods if m != name)}")
    else:
        for base, options in BASELINES.items():
            methods[base] = tune_baseline(base, options, setup, work, corpus, log)
    diagnostic = wsd_at_designed_peak(setup, work, corpus, log, methods[name])
    d_diag = np.asarray(methods[name]["final_val_loss"]["per_seed"]) - np.asarray(
        diagnostic["final_val_loss"]["per_seed"]
    )
    diagnostic["designed_minus_this"] = float(d_diag.mean())
    diagnostic["paired_stderr"] = (
        float(d_diag.std(ddof=1) / math.sqrt(d_diag.size)) if d_diag.size > 1 else None
    )
    comparison = {}
    for dname in [m for m in methods if m.startswith("designed")]:
        d = methods[dname]["final_val_loss"]
        for base in BASELINES:
            b = methods[base]["final_val_loss"]
            diff = np.asarray(d["per_seed"]) - np.asarray(b["per_seed"])  # same seeds: paired
            se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else float("nan")
            comparison[f"{dname} vs {base}"] = {
                "designed_minus_baseline": float(diff.mean()),
                "paired_stderr": se,
                "relative": float(diff.mean() / b["mean"]),
            }
    config = setup["config"]
    results = {
        "benchmark": "transformer",
        "quick": args.quick,
        "config": dataclasses.asdict(config),
        "horizon": config.steps,
        "seeds": list(setup["seeds"]),
        "peak_grid": list(setup["peak_grid"]),
        "corpus": {**corpus.describe(), "root": "<stdlib>"},  # no absolute path of this machine
        "methods": methods,
        "comparison": comparison,
        "diagnostic_wsd_at_designed_peak": diagnostic,
        "total_full_length_runs": {n: m["full_length_runs"] for n, m in methods.items()},
        "wall_time": time.perf_counter() - start,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "log": log_lines,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / f".{stem}.json.tmp"
    tmp.write_text(json.dumps(results, indent=1).replace(str(ROOT) + "/", "") + "\n")  # paths relative
    os.replace(tmp, args.out / f"{stem}.json")
    plot(results, args.out / f"{stem}.png")
    for pair, c in comparison.items():
        log(
            f"{pair}: {c['designed_minus_baseline']:+.4f} ± {c['paired_stderr']:.4f} ({100 * c['relative']:+.2f}%)"
        )


if __name__ == "__main__":
    main()
