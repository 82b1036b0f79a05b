"""Joint schedules benchmark (issue 5, items 1-2): batch-size ramp and wall-clock step saving,
loss exponents of optimal SGD vs optimal heavy-ball schedules.

Batch size (easy phase a = 2.5, b = 1.2, sigma = 0.5, N = 1000, D = 2e4 samples,
eta in [0, 0.3] (threshold 0.389 at batch 1), batch in [1, D], 30 linear blocks
geometric toward the end): the wall-clock objective of schedopt.studies.joint.fewest_steps
over T in STEPS (target: 1 % above the best joint loss), the batch ramp at the
wall-clock optimum (schedopt.studies.joint.wall_clock_ramp) fitted against
m*(t) ~ (1 - t/T)^(1/(2b) - 1), and the degeneracy indicator at every T. The
prediction needs the kernel K(x) ~ x^-(2 - 1/b) over the remaining intrinsic time
x <= eta_max T ~ 100, i.e. 1/lambda_N >> 100: N = 1000 (1/lambda_N = 4000). A
finite-size check repeats the wall-clock ramp at N = 100 (1/lambda_N = 250, cap 0.4).

Momentum (schedopt.studies.joint.momentum_study, horizons 1e2, 3e2, 1e3; learning rate
and momentum on the same 30-block geometric-end grid; eta in [0, 0.9 x the SGD
threshold at the batch size], the same bounds for SGD and heavy ball, with the
solver's joint heavy-ball stability cap; beta in [0, beta_max]):

* hard phase (a = 2, b = 4, N = 256): batch 1 with label noise sigma = 0.5 and
  beta_max = 1 - 1/T; batch 1e6 without label noise (the deterministic limit) with
  beta_max = 0.99 fixed and with beta_max = 1 - 1/T;
* easy phase (a = 2.5, b = 1.2, N = 256): batch 1, sigma = 0.5, beta_max = 1 - 1/T.

N = 256 with b = 4 keeps every horizon's learnable modes (k ~ (eta T^2)^(1/b) <= 45
with heavy ball) far from the end of the spectrum, so finite N does not fake a
steeper exponent. Solver options: ftol = 1e-10 for momentum (loss within ~1e-7 of a
1e-14 solve), 1e-12 for the budget problems. Times are wall-clock on a shared
machine: they include JIT compilation and are noisy.

Usage: uv run python benchmarks/joint.py [--smoke] [--quick]
Writes benchmarks/results/joint.json and joint.png (--smoke: tiny sizes, writes
joint-smoke.json, no PNG; --quick: the batch part and the two hard-phase
momentum settings at batch 1e6 only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import schedopt
from schedopt._io import atomic_write_text
from schedopt.problem import ControlSpec, Model, Problem, Training
from schedopt.studies.joint import (
    fewest_steps,
    fit_batch_ramp,
    momentum_study,
    wall_clock_ramp,
    with_sample_budget,
)

RESULTS = Path(__file__).resolve().parent / "results"
RAMP_RANGES = [(0.1, 0.9), (0.2, 0.9), (0.2, 0.8), (0.3, 0.95)]


class Timer:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def to_dict(self) -> dict:
        return {"wall_seconds": round(self.wall, 2), "cpu_seconds": round(self.cpu, 2)}


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "schedopt": schedopt.__version__,
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }


def lr_problem(a, b, n_modes, *, noise_std, batch, cap_fraction=None, cap=None, blocks=30, horizon=100):
    model = Model.powerlaw(a, b, n_modes, noise_std=noise_std)
    if cap is None:
        cap = cap_fraction * schedopt.stability_threshold(model, batch)
    spec = ControlSpec("learning_rate", 0.0, cap, blocks=blocks, grid="geometric-end")
    return Problem(
        f"joint-a{a:g}-b{b:g}", model, Training(horizon=horizon, batch_size=batch), {"learning_rate": spec}
    )


def finite_size_ramp(n_modes: int, budget: float, cap: float, blocks: int, flat_steps: int) -> dict:
    """Wall-clock ramp at another N: a flat-region solve gives steps_at_cap, then solve there and fit."""
    base = lr_problem(2.5, 1.2, n_modes, noise_std=0.5, batch=1, cap=cap, blocks=blocks)
    with Timer() as timer:
        flat = schedopt.solve(with_sample_budget(base, budget, horizon=flat_steps), "jax", throw=False)
        steps = int(flat.info["degeneracy"]["steps_at_cap"])
        sol = schedopt.solve(with_sample_budget(base, budget, horizon=steps), "jax", throw=False)
    return {
        "n_modes": n_modes,
        "learning_rate_max": cap,
        "steps": steps,
        "status": sol.status,
        "fits_by_range": {
            f"{lo:g}-{hi:g}": fit_batch_ramp(sol, fit_range=(lo, hi)).to_dict() for lo, hi in RAMP_RANGES
        },
        "time": timer.to_dict(),
    }


def batch_part(smoke: bool) -> tuple[dict, dict]:
    if smoke:
        n_modes, budget, steps, blocks, cap = 40, 4e3, [40, 60, 100, 160], 10, 0.4
    else:
        n_modes, budget, steps, blocks, cap = 1000, 2e4, [100, 150, 200, 300, 450, 700], 30, 0.3
    base = lr_problem(2.5, 1.2, n_modes, noise_std=0.5, batch=1, cap=cap, blocks=blocks)
    problem = with_sample_budget(base, budget)
    out: dict = {
        "problem": {
            "a": 2.5,
            "b": 1.2,
            "n_modes": n_modes,
            "noise_variance": 0.25,
            "sample_budget": budget,
            "learning_rate_max": cap,
            "stability_threshold_batch1": schedopt.stability_threshold(problem.model, 1.0),
            "batch_bounds": [1.0, budget],
            "blocks": blocks,
            "grid": "geometric-end",
        }
    }
    with Timer() as t_wall:
        wall = fewest_steps(
            problem, steps, options={"ftol": 1e-12}, progress=lambda i, n: print(f"  T {i}/{n}", flush=True)
        )
    out["wall_clock"] = {**wall.to_dict(), "time": t_wall.to_dict()}
    with Timer() as t_ramp:
        ramp_solution, fit = wall_clock_ramp(wall, options={"ftol": 1e-12})
    out["ramp"] = {
        "steps": ramp_solution.problem.horizon,
        "status": ramp_solution.status,
        "final_loss": ramp_solution.final_loss,
        "fit": fit.to_dict(),
        "fits_by_range": {
            f"{lo:g}-{hi:g}": fit_batch_ramp(ramp_solution, fit_range=(lo, hi)).to_dict()
            for lo, hi in RAMP_RANGES
        },
        "degeneracy": {k: v for k, v in ramp_solution.info["degeneracy"].items() if k != "flat_direction"},
        "time": t_ramp.to_dict(),
    }
    # the ramp at every listed T whose learning rate sits at its cap over the fit range
    out["ramp_by_steps"] = []
    for sol in wall.joint_solutions:
        f = fit_batch_ramp(sol)
        out["ramp_by_steps"].append(
            {
                "steps": sol.problem.horizon,
                "exponent": f.exponent,
                "mean_lr_over_cap": f.mean_learning_rate_over_cap,
            }
        )
    if not smoke:
        print("  finite-size check of the ramp at N = 100 ...", flush=True)
        out["ramp_finite_size_check"] = finite_size_ramp(100, budget, 0.4, blocks, steps[-1])
    fixed_at = wall.fixed_solutions[-1]
    curves = {
        "ramp": (ramp_solution.per_step("batch_size"), fit),
        "wall": wall,
        "fixed_batch_example": fixed_at,
    }
    return out, curves


def momentum_settings(smoke: bool, quick: bool) -> list[dict]:
    n_hard = 40 if smoke else 256

    def horizon_cap(T):
        return 1.0 - 1.0 / T

    settings = [
        {
            "name": "hard, batch 1, label noise, beta_max = 1 - 1/T",
            "problem": {"a": 2.0, "b": 4.0, "n_modes": n_hard, "noise_std": 0.5, "batch": 1.0},
            "beta_max": horizon_cap,
            "beta_rule": "1 - 1/T",
        },
        {
            "name": "hard, batch 1e6, no label noise, beta_max = 0.99",
            "problem": {"a": 2.0, "b": 4.0, "n_modes": n_hard, "noise_std": 0.0, "batch": 1e6},
            "beta_max": 0.99,
            "beta_rule": "0.99",
        },
        {
            "name": "hard, batch 1e6, no label noise, beta_max = 1 - 1/T",
            "problem": {"a": 2.0, "b": 4.0, "n_modes": n_hard, "noise_std": 0.0, "batch": 1e6},
            "beta_max": horizon_cap,
            "beta_rule": "1 - 1/T",
        },
        {
            "name": "easy, batch 1, label noise, beta_max = 1 - 1/T",
            "problem": {"a": 2.5, "b": 1.2, "n_modes": n_hard, "noise_std": 0.5, "batch": 1.0},
            "beta_max": horizon_cap,
            "beta_rule": "1 - 1/T",
        },
    ]
    if quick:
        settings = settings[1:3]
    return settings


def momentum_part(smoke: bool, quick: bool) -> tuple[list[dict], list]:
    horizons = [50, 100, 200] if smoke else [100, 300, 1000]
    blocks = 10 if smoke else 30
    out, studies = [], []
    for setting in momentum_settings(smoke, quick):
        spec = setting["problem"]
        problem = lr_problem(
            spec["a"],
            spec["b"],
            spec["n_modes"],
            noise_std=spec["noise_std"],
            batch=spec["batch"],
            cap_fraction=0.9,
            blocks=blocks,
        )
        print(f"momentum: {setting['name']} ...", flush=True)
        with Timer() as timer:
            study = momentum_study(
                problem,
                horizons,
                beta_max=setting["beta_max"],
                setting=setting["name"],
                options={"ftol": 1e-10},
            )
        d = study.to_dict()
        d["problem"] = {**spec, "learning_rate_max": problem.learning_rate.max}
        d["beta_rule"] = setting["beta_rule"]
        d["time"] = timer.to_dict()
        fits = d["fits"]
        print(
            f"  exponent SGD {-fits['sgd']['exponent']:.3f}, momentum {-fits['momentum']['exponent']:.3f} "
            f"(theory SGD {d['predictions']['sgd']:.3f}, bound {d['predictions']['momentum_bound']:.3f}); "
            f"{timer.wall:.0f} s",
            flush=True,
        )
        out.append(d)
        studies.append(study)
    return out, studies


def plot(batch_curves: dict, studies: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from schedopt.plots import save_figure

    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = axes[0, 0]
    m, fit = batch_curves["ramp"]
    T = m.size
    u = (np.arange(T) + 0.5) / T
    ax.loglog(
        1 - u,
        m,
        label=f"optimal batch, T = {T} (mean eta/eta_max {fit.mean_learning_rate_over_cap:.3f} in the fit range)",
    )
    x = np.array(fit.fit_range)
    keep = (u >= x[0]) & (u <= x[1])
    ref = m[keep][0] * ((1 - u[keep]) / (1 - u[keep][0])) ** fit.predicted
    ax.loglog(1 - u[keep], ref, "k--", label=f"predicted slope {fit.predicted:.3f}")
    ax.set_xlabel("1 - t/T")
    ax.set_ylabel("batch size")
    ax.set_title(f"wall-clock batch ramp: fitted {fit.exponent:.3f} over t/T in {fit.fit_range}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")

    ax = axes[0, 1]
    wall = batch_curves["wall"]
    ax.loglog(wall.steps, wall.joint_loss, "o-", label="learning rate + batch size (budget)")
    ax.loglog(wall.steps, wall.fixed_loss, "s-", label="learning rate, fixed batch D/T")
    ax.axhline(wall.target_loss, color="k", ls=":", label="target")
    for value, style in ((wall.steps_joint, "C0"), (wall.steps_fixed, "C1")):
        if value:
            ax.axvline(value, color=style, ls="--", lw=0.8)
    ax.set_xlabel("steps T")
    ax.set_ylabel("optimal final loss")
    saving = f"{wall.step_saving:.2f}x" if wall.step_saving else "n/a"
    ax.set_title(f"fixed sample budget D = {wall.sample_budget:g}: step saving {saving}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")

    ax = axes[1, 0]
    for i, study in enumerate(studies):
        Ts = np.array(study.horizons)
        floor = study.sgd[0].problem.model.residual
        sgd = np.array([s.final_loss for s in study.sgd]) - floor
        mom = np.array([s.final_loss for s in study.momentum]) - floor
        ax.loglog(Ts, sgd, "s--", color=f"C{i}", lw=0.8)
        ax.loglog(
            Ts,
            mom,
            "o-",
            color=f"C{i}",
            label=f"{study.setting}: "
            f"{-study.fits['sgd'].exponent:.2f} -> {-study.fits['momentum'].exponent:.2f}",
        )
    ax.set_xlabel("horizon T")
    ax.set_ylabel("optimal final loss (dashed SGD, solid heavy ball)")
    ax.set_title("loss exponents: SGD -> heavy ball")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, which="both")

    ax = axes[1, 1]
    for i, study in enumerate(studies):
        mom = study.momentum[-1]
        t = (np.arange(mom.problem.horizon) + 0.5) / mom.problem.horizon
        ax.semilogy(t, 1 - mom.per_step("momentum"), color=f"C{i}", label=study.setting)
    ax.set_xlabel("t / T (largest horizon)")
    ax.set_ylabel("1 - beta_t")
    ax.set_title("optimal momentum schedules")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3, which="both")
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; writes joint-smoke.json, no PNG")
    parser.add_argument("--quick", action="store_true", help="batch part + two momentum settings")
    args = parser.parse_args()
    results: dict = {"machine": machine(), "smoke": args.smoke, "quick": args.quick}
    with Timer() as total:
        print("batch size: wall-clock objective and ramp ...", flush=True)
        with Timer() as t_batch:
            results["batch"], batch_curves = batch_part(args.smoke)
        results["batch"]["time"] = t_batch.to_dict()
        w, r = results["batch"]["wall_clock"], results["batch"]["ramp"]
        print(
            f"  steps joint {w['steps_joint']}, fixed {w['steps_fixed']}, saving {w['step_saving']}; "
            f"ramp {r['fit']['exponent']:.3f} vs {r['fit']['predicted']:.3f} at T = {r['steps']}",
            flush=True,
        )
        results["momentum"], studies = momentum_part(args.smoke, args.quick)
    results["time"] = total.to_dict()
    name = "joint-smoke.json" if args.smoke else "joint.json"
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / name, json.dumps(results, indent=1, default=float) + "\n")
    if not args.smoke:
        plot(batch_curves, studies, RESULTS / "joint.png")
    print(f"wrote {RESULTS / name} ({total.wall:.0f} s wall, {total.cpu:.0f} s CPU)")


if __name__ == "__main__":
    main()
