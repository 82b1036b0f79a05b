"""Solver timings on whatever devices JAX finds (issue 14): the same script on a CPU or a GPU.

1. **Warm single solves** (solver ``jax``, default options) of a power-law problem
   (a = 2.5, b = 1.2, sigma = 0.5, batch 1, K = 100 geometric linear blocks, cap 90 % of the
   stability threshold) at T = 1e3, 1e4, 1e5, 1e6 and N = 1e3, 1e4, on the compressed spectrum
   (``modes = "compressed"``: 32 exact modes + 96 Gauss nodes) and on all modes
   (``modes = "exact"``). The engine is the solver's ``auto`` choice (the ODE from T N = 1e8).
   "Warm": a probe solve of the same shapes (``max_iter = 1``) compiles everything first.
2. **A batch of 256 problems** (T = 1e3, N = 1e3, compressed; noise sigma from 0.25 to 1) by
   :func:`schedopt.design_many`, warm (the batch run once untimed first), against the same problems
   one by one (a sample of them).

**Bounded run.** Two warm probes (``max_iter`` = 1 and 4) give the fixed cost of a solve
(compression, warm start, final checks) and the cost of one L-BFGS-B iteration; a configuration
is solved only when fixed + ``ITERATIONS[engine]`` x per-iteration (the iterations measured on
this problem: ~20-40 on the recursion, 1000-3000 on the ODE engine) stays under ``--cap``
seconds (default 300); otherwise the row says ``skipped`` with the estimate. ``--n-modes``
re-runs some model sizes and keeps the file's other rows. The one-by-one side of the batch runs
``--one-by-one`` problems (default 32) and reports designs per second.

Every row has wall and CPU seconds (this process and its children) and the 1-minute load
average before and after (the machine may be shared). Writes
``benchmarks/results/accelerator-<platform>.json`` (platform: ``cpu``, ``gpu``, ``tpu``).

Usage: uv run python benchmarks/accelerator.py [--cap 300] [--one-by-one 32] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _clock import Clock

import schedopt
from schedopt.problem import ControlSpec, Model, Problem, Training

RESULTS = Path(__file__).resolve().parent / "results"
HORIZONS = (10**3, 10**4, 10**5, 10**6)
MODES = (10**3, 10**4)
#: L-BFGS-B iterations a full solve is expected to take, by engine (measured on this problem, N = 1e3).
ITERATIONS = {"recursion": 50, "ode": 3000}
BATCH = 256


def problem(horizon: int, n_modes: int, noise: float = 0.5) -> Problem:
    model = Model.powerlaw(2.5, 1.2, n_modes, noise_std=noise, initial_loss=1.0)
    cap = 0.9 * schedopt.stability_threshold(model, 1)
    lr = ControlSpec(
        name="learning_rate", min=0.0, max=cap, blocks=100, grid="geometric-both", parameterisation="linear"
    )
    return Problem(
        name="accelerator",
        model=model,
        training=Training(horizon=horizon, batch_size=1),
        controls={"learning_rate": lr},
    )


def devices() -> dict:
    import jax

    found = jax.devices()
    return {
        "platform": found[0].platform,
        "devices": [str(d) for d in found],
        "device_kinds": sorted({getattr(d, "device_kind", "?") for d in found}),
        "jax": jax.__version__,
    }


def single(horizon: int, n_modes: int, modes: str, cap: float) -> dict:
    p = problem(horizon, n_modes)
    row: dict = {"horizon": horizon, "n_modes": n_modes, "modes": modes}
    probe = {"modes": modes, "warm_sweeps": 1}
    with Clock() as cold:
        schedopt.solve(p, throw=False, options={**probe, "max_iter": 1})  # compiles the objective and sweep
    with Clock() as one:
        first = schedopt.solve(p, throw=False, options={**probe, "max_iter": 1})
    with Clock() as four:
        schedopt.solve(p, throw=False, options={**probe, "max_iter": 4})
    engine = first.info.get("engine")
    per_iteration = max(0.0, (four.wall - one.wall) / 3.0)
    estimate = one.wall + ITERATIONS[engine] * per_iteration
    row.update(
        probe_cold=cold.record(),
        probe_1_iteration=one.record(),
        probe_4_iterations=four.record(),
        engine=engine,
        estimated_s=round(estimate, 1),
    )
    if estimate > cap:
        row["skipped"] = (
            f"estimated {estimate:.0f} s ({one.wall:.2f} s fixed + {ITERATIONS[engine]} iterations x "
            f"{per_iteration:.3f} s) > cap {cap:g} s"
        )
        return row
    with Clock() as warm:
        sol = schedopt.solve(p, throw=False, options={"modes": modes})
    row.update(
        warm=warm.record(),
        status=sol.status,
        final_loss=sol.final_loss,
        iterations=sol.iterations,
        evaluations=sol.info.get("evaluations"),
        engine=sol.info.get("engine"),
        warm_start_sweeps=sol.info.get("warm_start_sweeps"),
    )
    return row


def batch(one_by_one: int) -> dict:
    from schedopt.batch import design_many

    noises = np.linspace(0.25, 1.0, BATCH)
    problems = [problem(10**3, 10**3, float(s)) for s in noises]
    # warm, as the single solves are: the batch once untimed compiles every program it runs (on a CPU the
    # lockstep's pieces of 1-8 rows, whichever arise; elsewhere the padded sizes up to 256), then the
    # one-by-one programs (timing only shapes 1 and 2 warm counted ~1 s of compilation a new piece size)
    design_many(problems)
    schedopt.solve(problems[0])
    with Clock() as many:
        solved = design_many(problems)
    sample = problems[:: max(1, BATCH // one_by_one)][:one_by_one]
    with Clock() as alone:
        singles = [schedopt.solve(p, throw=False) for p in sample]
    by_noise = {id(p): s for p, s in zip(problems, solved, strict=True)}
    diffs = [
        abs(by_noise[id(p)].final_loss / s.final_loss - 1.0) for p, s in zip(sample, singles, strict=True)
    ]
    same_status = all(by_noise[id(p)].status == s.status for p, s in zip(sample, singles, strict=True))
    rate_batched = BATCH / many.wall
    rate_alone = len(sample) / alone.wall
    return {
        "problems": BATCH,
        "horizon": 10**3,
        "n_modes": 10**3,
        "modes": "auto (compressed)",
        "batched": {**many.record(), "designs_per_s": rate_batched},
        "one_by_one": {**alone.record(), "designs": len(sample), "designs_per_s": rate_alone},
        "speedup_designs_per_s": rate_batched / rate_alone,
        "statuses": {s: sum(x.status == s for x in solved) for s in sorted({x.status for x in solved})},
        "max_relative_loss_difference_vs_one_by_one": max(diffs),
        "same_statuses_as_one_by_one": same_status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cap", type=float, default=300.0, help="seconds a single solve may take (estimated)"
    )
    parser.add_argument(
        "--one-by-one", type=int, default=32, help="problems solved one by one for the batch comparison"
    )
    parser.add_argument("--quick", action="store_true", help="T = 1e3, 1e4 and N = 1e3 only (a smoke run)")
    parser.add_argument(
        "--n-modes", default=None, help="comma list: re-run these model sizes, keep the file's other rows"
    )
    parser.add_argument("--skip-batch", action="store_true", help="keep the file's batch entry")
    args = parser.parse_args()
    info = devices()
    out = RESULTS / f"accelerator-{info['platform']}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    horizons = HORIZONS[:2] if args.quick else HORIZONS
    modes_n = MODES[:1] if args.quick else MODES
    if args.n_modes:
        modes_n = tuple(int(float(x)) for x in args.n_modes.split(","))
    rows = [r for r in previous.get("single_solves", []) if args.n_modes and r["n_modes"] not in modes_n]
    for n in modes_n:
        for t in horizons:
            for modes in ("compressed", "exact"):
                row = single(t, n, modes, args.cap)
                print(
                    json.dumps(
                        {
                            k: v
                            for k, v in row.items()
                            if k in ("horizon", "n_modes", "modes", "warm", "skipped")
                        }
                    ),
                    flush=True,
                )
                rows.append(row)
    result = {
        "benchmark": "accelerator",
        "machine": {**info, "python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
        "settings": {"cap_s": args.cap, "expected_iterations": ITERATIONS, "quick": args.quick},
        "single_solves": sorted(rows, key=lambda r: (r["n_modes"], r["horizon"], r["modes"])),
        "batch": previous.get("batch") if args.skip_batch else batch(args.one_by_one),
    }
    RESULTS.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            result,
            indent=2,
            default=lambda x: None if isinstance(x, float) and not math.isfinite(x) else str(x),
        )
        + "\n"
    )
    print(f"wrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out.name}")


if __name__ == "__main__":
    main()
