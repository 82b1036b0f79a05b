"""The theory's asymptotics at long horizons (issue 13, item 6): do the measured exponents converge?

``schedopt phase`` on ``problems/easy-phase.toml`` and ``problems/hard-phase.toml`` over
horizons ``--horizons`` (default 1e2..1e6, two a decade), with a model large enough that its
size does not cap the hard phase (``--n-modes``, default 10⁴: the hard phase's finite-size floor
moves below the optimal loss's trend over the range). Besides the study's own fits over the
whole range, the exponents are measured **locally**, between neighbouring horizons, so that
their drift with ``T`` shows whether they approach THEORY §4's predictions:

* ``loss_optimal``: ``-d log(L*_T - floor) / d log T`` (the floor: the finite model's residual);
* ``xi``: ``-d log(level learning rate) / d log T`` (easy phase);
* ``anneal_fraction``: ``-d log f_T / d log T`` (hard phase; ``f`` the fraction of steps
  below half the plateau).

Usage: uv run python benchmarks/phase_long.py [--horizons 1e2:1e6:9] [--n-modes 10000]
Writes benchmarks/results/phase-long.json and phase-long.png (CPU and wall seconds, load).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _clock import Clock  # noqa: E402

import schedopt  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt.problem import Model  # noqa: E402
from schedopt.studies.phase import parse_horizons, study_horizons  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PROBLEMS = ("easy-phase", "hard-phase")
#: quantity of the study's rows -> its predicted exponent's key (sign: X ~ T^-p)
LOCAL = {"excess_loss": "loss_optimal", "level_lr": "xi", "anneal_fraction": "anneal_fraction"}


def resized(name: str, n_modes: int) -> schedopt.Problem:
    """A shipped problem with ``n_modes`` modes of the same power law (noise and finite size kept)."""
    problem = schedopt.load_problem(ROOT / "problems" / f"{name}.toml")
    m = problem.model
    model = Model.powerlaw(
        m.a, m.b, n_modes, noise_std=float(np.sqrt(m.noise_variance)), finite_size=m.residual > 0
    )
    return problem.replace(model=model)


def local_exponents(rows: list[dict], key: str) -> list[dict]:
    """``-d log X / d log T`` between neighbouring horizons (where both values are positive)."""
    out = []
    for left, right in itertools.pairwise(rows):
        x0, x1 = left.get(key), right.get(key)
        if x0 is None or x1 is None or not (x0 > 0 and x1 > 0):
            continue
        slope = -np.log(x1 / x0) / np.log(right["horizon"] / left["horizon"])
        out.append({"from": left["horizon"], "to": right["horizon"], "exponent": float(slope)})
    return out


def run(name: str, horizons: list[int], n_modes: int) -> dict:
    problem = resized(name, n_modes)
    with Clock() as clock:
        study = study_horizons(problem, horizons)
    report = study.to_dict()
    for row in report["rows"]:  # the loss above the finite model's floor, as the study's own fit
        row["excess_loss"] = row["final_loss"] - problem.model.residual
    predicted = report["predicted"]
    local = {}
    for key, exponent in LOCAL.items():
        if exponent == "xi" and study.phase != "easy":
            continue
        if exponent == "anneal_fraction" and study.phase != "hard":
            continue
        local[exponent] = {
            "predicted": predicted.get(exponent),
            "between": local_exponents(report["rows"], key),
        }
    return {
        "problem": name,
        "n_modes": n_modes,
        "phase": study.phase,
        "rows": report["rows"],
        "fits_whole_range": report["fits"],
        "measured_whole_range": report["measured"],
        "predicted": predicted,
        "local": local,
        **clock.record(),
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, key) for name, r in results.items() for key in r["local"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8))
    for ax, (name, key) in zip(np.atleast_1d(axes), panels, strict=True):
        entry = results[name]["local"][key]
        mids = [np.sqrt(b["from"] * b["to"]) for b in entry["between"]]
        ax.semilogx(mids, [b["exponent"] for b in entry["between"]], "o-", label="measured, local")
        if entry["predicted"] is not None:
            ax.axhline(entry["predicted"], color="k", ls="--", label=f"THEORY §4: {entry['predicted']:.3g}")
        ax.set_title(f"{name}: {key}")
        ax.set_xlabel("horizon T (geometric mean of the pair)")
        ax.set_ylabel("exponent p of X ~ T^-p")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", default="1e2:1e6:9")
    parser.add_argument("--n-modes", type=int, default=10_000)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    parser.add_argument("--out", default=str(RESULTS / "phase-long.json"))
    args = parser.parse_args(argv)
    horizons = parse_horizons(args.horizons)
    results = {}
    for name in args.problems:
        print(f"{name}: horizons {horizons}, N = {args.n_modes}", file=sys.stderr, flush=True)
        results[name] = run(name, horizons, args.n_modes)
        print(f"  {results[name]['cpu_s']:.0f} CPU-s, {results[name]['wall_s']:.0f} s", file=sys.stderr)
    out = Path(args.out)
    record = {
        "benchmark": "phase-long",
        "horizons": horizons,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "results": results,
    }
    atomic_write_text(out, json_text(record))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}", file=sys.stderr)


if __name__ == "__main__":
    main()
