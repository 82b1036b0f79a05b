"""Real training: does gradient clipping make a short pilot at a high rate look better than a long run there is?

On the held-out ``prose-lstm-sgd`` (SGD with Nesterov momentum on an LSTM, gradients clipped at norm 1) the pilot at
x 8 the guess trained well over its 200 updates, the fitted model then put the design's plateau near that rate, and
WSD there lost about 0.03 nats to WSD at x 4, the best peak. A mechanism the model lacks: with clipping, an update
moves the weights by ``lr * min(1, clip / |g|)``, so where the gradient norm ``|g|`` is above the clip (early in
training, and more so at a high rate) the effective rate is below the nominal one. If the clip acts mostly early,
a short pilot at a high rate is damped for much of its length and a long run at that rate is not: the pilot
overstates how well the rate trains for long.

Here, each task's WSD run of the full horizon (the task's warmup, 20 % 1-sqrt cooldown, seed 0) at its three pilot
rates (the guess, x 4 and x 8: the adaptive plan's pilots where it trades), trained again with the gradient norm
logged before clipping (``examples.charlstm``'s ``grad_norms``), on the PyTorch tasks that clip. Reported per
window of a tenth of the horizon: the share of updates clipped and the mean factor ``min(1, clip / |g|)``; and
the mean factor over the short pilot's constant phase (after the warmup, to 0.16 T) against the long run's plateau
after it (0.16 T to 0.8 T). The cached seed-0 run of the same schedule, where there is one, must be equal to the
new run's validation losses (logging the norm changes nothing): ``same_as_cached``.

A diagnostic, not a rule: no default changes with it. Usage:
uv run python benchmarks/clipping.py [--task NAME ...]   (writes results/clipping.json; six or nine runs of ~40 CPU-s)
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import realtasks as rt  # noqa: E402
from _clock import Clock  # noqa: E402
from runcache import Job, train_job  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402

#: the PyTorch tasks that clip: the two SGD LSTMs (the trade helped on code, hurt on prose) and an Adam one
DEFAULT_TASKS = ("prose-lstm-sgd", "code-lstm-sgd", "prose-lstm-adam")
#: the pilot rates as multiples of the guess: the long pilot's, the x 4 one's and the traded x 8 one's
MULTIPLES = (1.0, 4.0, 8.0)
WINDOWS = 10
#: where a short pilot (0.2 T, 20 % cooldown) stops running at its peak, and where a WSD run of T does
SHORT_END, LONG_END = 0.16, 0.8


def _cached(task, peak: float, lrs: np.ndarray) -> list[float] | None:
    """The validation losses of the cached seed-0 WSD run with this very table, if there is one."""
    from schedopt.calibration.pilots import read_pilot

    for grid_peak in rt.family_grid(task, "wsd"):
        job = rt._family_job(task, "wsd", grid_peak, 0)
        if job.done() and np.array_equal(job.lrs, lrs):
            return read_pilot(job.log).losses.tolist()
    return None


def _peak(task, multiple: float) -> float:
    """``multiple`` x the guess, or the WSD grid's peak within 0.1 % of it (its four digits: 3.999 for 4)."""
    peak = task.guess * multiple
    near = [p for p in rt.family_grid(task, "wsd") if abs(p / peak - 1) <= 1e-3]
    return near[0] if near else float(f"{peak:.4g}")


def _factors(result, clip: float) -> dict:
    """The clip's effective-rate factor ``min(1, clip / |g|)`` by window, and over the short and long plateaus."""
    norms = result.grad_norms
    factor = np.minimum(1.0, clip / norms)
    horizon = norms.size
    warmup_end = int(np.argmax(result.learning_rates)) + 1
    edges = np.linspace(0, horizon, WINDOWS + 1).astype(int)
    short = slice(warmup_end, int(SHORT_END * horizon))
    long = slice(int(SHORT_END * horizon), int(LONG_END * horizon))
    return {
        "windows": [
            {
                "updates": [int(a), int(b)],
                "clipped_share": float(np.mean(norms[a:b] > clip)),
                "mean_factor": float(np.mean(factor[a:b])),
                "median_grad_norm": float(np.median(norms[a:b])),
            }
            for a, b in itertools.pairwise(edges)
        ],
        "mean_factor_short_pilot_plateau": float(np.mean(factor[short])),
        "mean_factor_long_run_plateau_after_it": float(np.mean(factor[long])),
    }


def run_task(task) -> dict:
    clip = task.config.grad_clip
    rows = {}
    for multiple in MULTIPLES:
        peak = _peak(task, multiple)
        lrs = rt.baseline_lrs("wsd", peak, task.horizon, cooldown=0.2, warmup=task.warmup)
        with Clock() as clock:
            result = train_job(Job(task.name, f"clipping-wsd-{peak:.4g}", lrs, 0))  # seed 0, unlogged
            clock.stop()
        cached = _cached(task, peak, lrs)
        row = {
            "peak": peak,
            "final_val_loss": float(result.final_val_loss),
            **_factors(result, clip),
            "same_as_cached": None
            if cached is None
            else bool(np.allclose(cached, result.val_losses, atol=0, rtol=0)),
            "clock": clock.record(),
        }
        rows[f"x{multiple:g}"] = row
        print(
            f"{task.name} x{multiple:g} ({peak:g}): final {row['final_val_loss']:.4f}, factor short "
            f"{row['mean_factor_short_pilot_plateau']:.3f} long {row['mean_factor_long_run_plateau_after_it']:.3f}"
            f", same as cached {row['same_as_cached']}",
            flush=True,
        )
    return {"clip": clip, "horizon": task.horizon, "warmup": task.warmup, "guess": task.guess, "runs": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", nargs="+", default=list(DEFAULT_TASKS), choices=sorted(TASKS))
    names = parser.parse_args(argv).task
    for name in names:
        if TASKS[name].loop != "charlstm" or TASKS[name].config.grad_clip is None:
            parser.error(f"--task {name}: not a PyTorch task that clips its gradients")
    out = {
        "what": "each task's WSD run of the horizon at its pilot rates, trained again with the gradient norm logged "
        "before clipping: the share of updates clipped and the effective-rate factor min(1, clip / |g|) by window, "
        "and over a short pilot's plateau against the long run's after it (see the module doc)",
        "tasks": {},
        "python": platform.python_version(),
    }
    with Clock() as total:
        for name in names:
            out["tasks"][name] = run_task(TASKS[name])
    out["clock"] = total.record()
    atomic_write_text(ROOT / "benchmarks" / "results" / "clipping.json", json_text(out))
    print(
        json.dumps(
            {
                n: {k: r["mean_factor_short_pilot_plateau"] for k, r in t["runs"].items()}
                for n, t in out["tasks"].items()
            }
        )
    )


if __name__ == "__main__":
    main()
