"""Momentum as a control on the shipped problems (issue 16): iterations, CPU and wall time, gap to learning rate alone.

Each of ``problems/easy-phase.toml`` and ``problems/hard-phase.toml`` at T = 2000 with a momentum
control (20 linear blocks, 0 <= beta <= 0.95) is solved by the ``jax`` solver with its defaults
(compressed spectrum, near-full L-BFGS-B memory, second-order check), one solve at a time in a
fresh process's warm-up order (JIT compilation included), next to the learning-rate-only solve.
Writes ``results/momentum.json``. About 1.5 min on 2 busy cores.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

import schedopt
from schedopt.problem import ControlSpec
from schedopt.spec import load_problem

ROOT = Path(__file__).resolve().parent
HORIZON = 2000
MOMENTUM = ControlSpec("momentum", 0.0, 0.95, blocks=20)


def _timed(problem):
    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    sol = schedopt.solve(problem, "jax", throw=False)
    return sol, {
        "status": str(sol.status),
        "iterations": sol.iterations,
        "final_loss": sol.final_loss,
        "cpu_s": round(time.process_time() - cpu, 2),
        "wall_s": round(time.perf_counter() - wall, 2),
        "load_average_before": round(load, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    import jax
    import scipy

    out = {
        "machine": {
            "cores": os.cpu_count(),
            "jax": jax.__version__,
            "scipy": scipy.__version__,
            "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        },
        "horizon": HORIZON,
        "momentum": {"min": 0.0, "max": 0.95, "blocks": 20},
        "problems": {},
    }
    for name in ("easy-phase", "hard-phase"):
        base = load_problem(ROOT.parent / "problems" / f"{name}.toml").with_horizon(HORIZON)
        problem = base.replace(controls={**dict(base.controls), "momentum": MOMENTUM})
        sol, row = _timed(problem)
        row["second_order"] = sol.info.get("second_order")
        row["momentum_every_100_steps"] = np.round(sol.per_step("momentum")[::100], 3).tolist()
        _, lr_only = _timed(base)
        row["learning_rate_only"] = lr_only
        row["gap_to_learning_rate_only"] = row["final_loss"] / lr_only["final_loss"] - 1.0
        out["problems"][name] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "second_order"}))
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "momentum.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
