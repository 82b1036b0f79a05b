"""Dynamics benchmark: speed of the exact recursion and of the ODE, and the ODE's fidelity.

Measures (2-core CPU, float64):

* recursion (``schedopt.dynamics.recursion.final_loss_jax``): forward and
  forward + gradient w.r.t. the per-step learning rate (``jax.value_and_grad``)
  at N in {1e3, 1e4}, T in {1e4, 1e5};
* ODE (``schedopt.dynamics.ode.final_loss_jax``, exponential integrator):
  forward and forward + gradient w.r.t. the K + 1 = 101 control values at
  N = 1e4, T in {1e6, 1e7}; its final loss against the recursion on the same
  piecewise-linear schedule where N * T <= 1e9 (N=1e3: T=1e4, 1e6; N=1e4: T=1e5);
* compile time reported apart from run time (run = median of warm runs);
* ODE-vs-recursion gap of the final loss on the shipped problems
  (problems/easy-phase, hard-phase, boundary) for cosine, linear-to-zero and
  constant schedules at their learning-rate cap and at 1/2 and 1/4 of it;
* the gap versus eta * lambda_1 (constant eta, fixed intrinsic time eta * T = 100)
  at checkpoints eta * t = 1, 10 and at T, plain and matched forms;
* the integrator's own error against the exact constant-eta solution per grid,
  for the third-order (default) and the second-order scheme.

Usage: uv run python benchmarks/dynamics.py [--smoke]
Writes benchmarks/results/dynamics.json and dynamics.png (``--smoke``: tiny sizes,
writes dynamics-smoke.json, no PNG).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from schedopt._jax import jax  # x64 on
from schedopt.controls import ControlGrid, block_edges, grid_for
from schedopt.dynamics import ode, recursion
from schedopt.problem import Model
from schedopt.spec import load_problem

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROBLEMS = ("easy-phase", "hard-phase", "boundary")
RUNS = 3


def machine() -> dict:
    import diffrax

    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "diffrax": diffrax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "load_average_start": list(os.getloadavg()),
    }


def timed(fn, *args, runs: int = RUNS) -> tuple[dict, object]:
    """Compile ``jax.jit(fn)`` ahead of time, then time warm runs; return timings and the output."""
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t)
    return {"compile_s": compile_s, "run_s": statistics.median(times), "runs": runs}, out


def cosine(t, horizon, peak):
    return peak * 0.5 * (1 + np.cos(np.pi * np.asarray(t, float) / horizon))


def arrays(model: Model):
    return tuple(jnp.asarray(x) for x in (model.eigenvalues, model.initial_error, model.effective_noise))


def easy_model(n_modes: int) -> Model:
    """The easy-phase problem's model with another number of modes."""
    m = load_problem(ROOT / "problems" / "easy-phase.toml").model
    return Model.powerlaw(m.a, m.b, n_modes, noise_std=float(np.sqrt(m.noise_variance)))


PEAK = 0.175  # half the easy-phase cap (0.35) for the speed runs


def bench_recursion(sizes) -> list[dict]:
    rows = []
    for n_modes, horizon in sizes:
        model_args = arrays(easy_model(n_modes))
        lr = jnp.asarray(cosine(np.arange(horizon) + 0.5, horizon, PEAK))
        m = jnp.ones(horizon)

        def fwd(lr, lam, c0, noise, m):
            return recursion.final_loss_jax(lam, c0, noise, lr, m)

        f_time, value = timed(fwd, lr, *model_args, m)
        g_time, _ = timed(jax.value_and_grad(fwd), lr, *model_args, m)
        rows.append(
            {
                "n_modes": n_modes,
                "horizon": horizon,
                "forward": f_time,
                "forward_gradient": g_time,
                "final_loss": float(value),
            }
        )
        print(
            f"recursion N={n_modes} T={horizon}: fwd {f_time['run_s']:.3f}s grad {g_time['run_s']:.3f}s",
            flush=True,
        )
    return rows


#: Compare the ODE's final loss with the recursion when N * T is at most this (~10 s).
AFFORDABLE = 10**9


def bench_ode(sizes) -> list[dict]:
    """ODE speed at long horizons; final loss against the recursion (same schedule) where affordable."""
    rows = []
    for n_modes, horizon in sizes:
        lam, c0, noise = arrays(easy_model(n_modes))
        edges = block_edges(horizon, 100, "geometric-both")
        values = jnp.asarray(cosine(edges, horizon, PEAK))
        ts = ode.time_grid(horizon, edges)
        args = (lam, c0, noise, jnp.asarray(1.0), jnp.asarray(edges, float), jnp.asarray(ts))

        def fwd(v, lam, c0, noise, m, edges, ts):
            return ode.final_loss_jax(lam, c0, noise, v, m, edges, ts)

        f_time, value = timed(fwd, values, *args)
        g_time, _ = timed(jax.value_and_grad(fwd), values, *args)
        row = {
            "n_modes": n_modes,
            "horizon": horizon,
            "blocks": 100,
            "grid_steps": int(ts.size - 1),
            "forward": f_time,
            "forward_gradient": g_time,
            "final_loss": float(value),
        }
        if n_modes * horizon <= AFFORDABLE:
            grid = ControlGrid(edges=edges, parameterisation="linear")
            per_step = grid.interpolation().expand(np.asarray(values))
            rec = float(recursion.final_loss_jax(lam, c0, noise, jnp.asarray(per_step), jnp.ones(horizon)))
            row["recursion_final_loss"] = rec
            row["relative_gap"] = float(value) / rec - 1
        rows.append(row)
        gap = f" gap {row['relative_gap']:+.2e}" if "relative_gap" in row else ""
        print(
            f"ode N={n_modes} T={horizon} ({row['grid_steps']} steps): fwd {f_time['run_s']:.3f}s "
            f"grad {g_time['run_s']:.3f}s{gap}",
            flush=True,
        )
    return rows


def shipped_gaps(problems, fractions, horizons) -> list[dict]:
    rows = []
    for name in problems:
        problem = load_problem(ROOT / "problems" / f"{name}.toml")
        lam1 = float(problem.model.eigenvalues.max())
        cap = problem.learning_rate.max
        for horizon in horizons:
            grid = grid_for(problem.with_horizon(horizon).learning_rate, horizon)
            saves = _save_points(horizon, [], 48)
            x = grid.edges / horizon
            shapes = {"cosine": 0.5 * (1 + np.cos(np.pi * x)), "linear": 1 - x, "constant": np.ones_like(x)}
            for frac in fractions:
                for shape, unit in shapes.items():
                    values = cap * frac * unit
                    per_step = grid.interpolation().expand(values)
                    curve = recursion.loss_curve(problem.model, per_step).loss
                    rec = float(curve[-1])
                    row = {
                        "problem": name,
                        "horizon": horizon,
                        "schedule": shape,
                        "peak": cap * frac,
                        "peak_lr_lambda1": cap * frac * lam1,
                        "recursion": rec,
                    }
                    for form in ode.FORMS:
                        sol = ode.solve(problem.model, values, grid=grid, save_at=saves, form=form)
                        gap = sol.loss / curve[sol.ts.astype(int)] - 1
                        row[f"ode_{form}"] = float(sol.final_loss)
                        row[f"gap_{form}"] = float(gap[-1])
                        row[f"max_curve_gap_{form}"] = float(np.max(np.abs(gap)))
                        worst = int(np.argmax(np.abs(gap)))
                        row[f"max_curve_gap_step_{form}"] = int(sol.ts[worst])
                        late = sol.ts >= 100
                        row[f"max_curve_gap_after_100_{form}"] = float(np.max(np.abs(gap[late])))
                    rows.append(row)
        worst = max(abs(r["gap_plain"]) for r in rows if r["problem"] == name)
        print(f"shipped {name}: worst |gap| plain {worst:.2e}", flush=True)
    return rows


def _save_points(horizon: int, must: list[int], size: int) -> np.ndarray:
    """``size`` distinct integer steps in [1, T]: ``must``, a log-spaced set, then fillers.

    A fixed count keeps one compilation for all horizons of a grid-size bucket.
    """
    pts = set(must) | set(np.geomspace(1, horizon, size).round().astype(int).tolist())
    pts = sorted(p for p in pts if 1 <= p < horizon)[: size - 1]
    fill = (p for p in range(1, horizon) if p not in set(pts))
    while len(pts) < size - 1:
        pts.append(next(fill))
    return np.array(sorted(pts))


def gap_table(etas, tau: float = 100.0, size: int = 48) -> list[dict]:
    """Constant eta on the boundary problem's model, with its noise and without."""
    base = load_problem(ROOT / "problems" / "boundary.toml").model
    models = {"boundary": base, "boundary-noiseless": Model.powerlaw(base.a, base.b, base.n_modes)}
    rows = []
    for label, model in models.items():
        lam1 = float(model.eigenvalues.max())
        for eta in etas:
            horizon = round(tau / eta)
            checks = [max(1, round(1 / eta)), round(10 / eta), horizon]
            saves = _save_points(horizon, checks[:2], size)
            grid = ControlGrid(edges=np.array([0, horizon]), parameterisation="constant")
            curve = recursion.loss_curve(model, np.full(horizon, eta)).loss
            row = {"model": label, "lr_lambda1": eta * lam1, "horizon": horizon, "steps_at": checks}
            for form in ode.FORMS:
                sol = ode.solve(model, [eta], grid=grid, save_at=saves, form=form)
                gap = sol.loss / curve[sol.ts.astype(int)] - 1
                row[f"gap_{form}"] = [float(gap[np.searchsorted(sol.ts, c)]) for c in checks]
                row[f"max_gap_{form}"] = float(np.max(np.abs(gap)))
                row[f"max_gap_after_10_{form}"] = float(np.max(np.abs(gap[sol.ts >= 10])))
            rows.append(row)
        print(f"gap table {label}: done", flush=True)
    return rows


def integrator_error(n_modes: int, horizon: int) -> list[dict]:
    """Exponential integrator vs the exact constant-eta solution (eigh), per grid."""
    model = load_problem(ROOT / "problems" / "boundary.toml").model
    model = Model.powerlaw(model.a, model.b, n_modes, noise_std=float(np.sqrt(model.noise_variance)))
    eta = 0.4
    lam, c0, noise = model.eigenvalues, model.initial_error, model.effective_noise
    rate = 2 * eta * lam - 2 * eta**2 * lam**2
    a = -np.diag(rate) + eta**2 * np.outer(lam, lam)
    c_star = np.linalg.solve(-a, eta**2 * lam * noise)
    w, v = np.linalg.eigh(a)
    coef = v.T @ (c0 - c_star)
    checks = np.unique([1, 3, 10, 30, 100, horizon // 10, horizon // 2])
    exact = np.array([lam @ (v @ (np.exp(w * t) * coef) + c_star) for t in [*checks, horizon]])
    grid = ControlGrid(edges=np.array([0, horizon]), parameterisation="constant")
    rows = []
    grids = [(0.5, 1.2), (0.25, 1.1), (0.125, 1.05), (0.0625, 1.025)]
    for degree, (first_step, growth) in itertools.product((1, 2), grids):
        sol = ode.solve(
            model,
            [eta],
            grid=grid,
            save_at=checks,
            first_step=first_step,
            growth=growth,
            degree=degree,
            multiple=1,
        )
        err = np.abs(sol.loss / exact - 1)
        rows.append(
            {
                "degree": degree,
                "first_step": first_step,
                "growth": growth,
                "grid_steps": int(sol.grid.size - 1),
                "max_relative_error": float(err.max()),
                "final_relative_error": float(err[-1]),
            }
        )
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, label in zip(axes, ("boundary-noiseless", "boundary"), strict=True):
        rows = [r for r in result["gap_vs_lr"] if r["model"] == label]
        x = [r["lr_lambda1"] for r in rows]
        for form, style in (("plain", "-"), ("matched", "--")):
            for i, what in enumerate(("eta t = 1", "eta t = 10", "final (eta T = 100)")):
                y = [abs(r[f"gap_{form}"][i]) for r in rows]
                ax.loglog(x, y, style, marker="o", color=f"C{i}", label=f"{form}, {what}")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(r"$\eta\lambda_1$")
        ax.set_ylabel("|ODE / recursion - 1|")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    opts = parser.parse_args()
    started = time.perf_counter()
    if opts.smoke:
        rec_sizes, ode_sizes = [(100, 1000)], [(100, 1000), (100, 10**5)]
        problems, fractions, horizons, etas, conv = PROBLEMS[:1], [1.0], [1000], [0.2], (100, 1000)
    else:
        rec_sizes = [(1000, 10**4), (1000, 10**5), (10**4, 10**4), (10**4, 10**5)]
        ode_sizes = [(1000, 10**4), (10**4, 10**5), (1000, 10**6), (10**4, 10**6), (10**4, 10**7)]
        problems, fractions, horizons = PROBLEMS, [1.0, 0.5, 0.25], [10**4]
        etas, conv = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.025, 0.0125], (1000, 10**4)
    result = {"machine": machine(), "schedule_speed_runs": f"cosine, peak {PEAK}, easy-phase model"}
    result["recursion"] = bench_recursion(rec_sizes)
    result["ode"] = bench_ode(ode_sizes)
    result["shipped_problems"] = shipped_gaps(problems, fractions, horizons)
    result["gap_vs_lr"] = gap_table(etas)
    result["integrator_error"] = integrator_error(*conv)
    result["defaults"] = {"first_step": ode.FIRST_STEP, "growth": ode.GROWTH, "substeps": ode.SUBSTEPS}
    result["machine"]["load_average_end"] = list(os.getloadavg())
    result["total_s"] = time.perf_counter() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("dynamics-smoke.json" if opts.smoke else "dynamics.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    if not opts.smoke:
        plot(result, RESULTS / "dynamics.png")
    print(f"wrote {out} in {result['total_s']:.0f}s")


if __name__ == "__main__":
    main()
