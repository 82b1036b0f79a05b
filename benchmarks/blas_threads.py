"""BLAS threads in the Python API (issue 13): warm in-process work with schedopt's scope on and off.

The ``schedopt`` command runs OpenBLAS on one thread (``OPENBLAS_NUM_THREADS=1`` before NumPy
loads); a library user's process has OpenBLAS at its default thread count, so schedopt
limits BLAS to one thread inside its own calls (``schedopt._blas``, through threadpoolctl,
restored on return). This script measures what that scope buys a library user: in ONE
process, each case is run warm (compiled by a first call with the scope on and off),
then ``--repeats`` times with the scope on and off, alternated (the order flips every
repeat, so that both see the same load). The switch is the internal flag
``schedopt._blas.enabled``; with it off, BLAS runs at the process's default thread count,
as the API did before.

Cases: ``schedopt.solve`` on problems/easy-phase.toml (T = 1e4) and on the authors' default
problem (benchmarks/authors-default.toml) at T = 1e2; ``tune_baselines`` (every family) on the
latter; ``fit_pilots`` on three synthetic constant-rate pilots (as tests/test_fit.py); and
``design`` with every baseline on the authors' problem (``--no-design`` leaves it out). Each run records CPU seconds (``time.process_time``:
every thread of this process, OpenBLAS's workers included), wall seconds and the 1-minute load
average; each case its medians, the ratio off / on, and whether the results are identical
(final loss and parameters bitwise; for a design, also each tuned baseline's loss).

Environment: the BLAS thread variables (``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS``,
``OMP_NUM_THREADS``) are removed before NumPy loads (the script re-executes itself without
them), because with one set schedopt keeps the user's count and there is nothing to compare.

Usage: uv run python benchmarks/blas_threads.py [--repeats 5] [--no-design]
Writes benchmarks/results/blas-threads.json (no absolute paths).
"""

from __future__ import annotations

import os
import sys

from schedopt._blas import BLAS_THREAD_VARIABLES  # loads no NumPy

if any(name in os.environ for name in BLAS_THREAD_VARIABLES):  # before NumPy loads: OpenBLAS reads them once
    env = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import argparse
import json
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from startup import _git_head

import schedopt
from schedopt import _blas

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _blas_libraries() -> list[dict]:
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "version", "num_threads", "threading_layer", "architecture")
    return [
        {"library": Path(i["filepath"]).name, **{k: i.get(k) for k in keep}}
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]


def _fingerprint(result) -> dict:
    """What must not change with the scope: final losses and schedule parameters (bitwise)."""
    from schedopt.calibration.fit import FitResult
    from schedopt.design import Design

    if isinstance(result, FitResult):
        return {
            "final_loss": None,
            "parameters": {k: float(v).hex() for k, v in sorted(result.parameters.items())},
            "std_errors": {k: float(v).hex() for k, v in sorted(result.std_errors.items())},
        }
    if isinstance(result, dict):  # tuned baselines by name
        return {
            "final_loss": None,
            "baselines": {
                name: [float(t.final_loss), np.asarray(t.learning_rate).tobytes().hex()]
                for name, t in sorted(result.items())
            },
        }
    if isinstance(result, Design):
        out = _fingerprint(result.solution)
        out["baselines"] = {
            name: [float(t.final_loss), np.asarray(t.learning_rate).tobytes().hex()]
            for name, t in sorted(result.baselines.items())
        }
        return out
    return {
        "final_loss": float(result.final_loss),
        "parameters": {k: np.asarray(v).tobytes().hex() for k, v in sorted(result.parameters.items())},
    }


def _pilots() -> list:
    """Three constant-rate pilots of a known model (as tests/test_fit.py), 0.5% noise."""
    from schedopt.calibration.pilots import PilotRun
    from schedopt.problem import Model

    model = Model.powerlaw(2.0, 1.4, 150, noise_std=0.4, initial_loss=1.0)
    rng = np.random.default_rng(0)
    horizon = 240
    steps = np.unique(np.r_[0, np.geomspace(1, horizon, 40).astype(int)])
    runs = []
    for lr in (1e-3, 3e-3, 6e-3):
        rates = np.full(horizon, lr)
        loss = 1.5 + 3.0 * np.asarray(schedopt.loss_curve(model, 40.0 * rates).loss)[steps]
        runs.append(
            PilotRun(
                f"lr{lr:g}", rates, steps, loss * np.exp(0.005 * rng.standard_normal(steps.size)), "val_loss"
            )
        )
    return runs


def _cases(design: bool) -> dict:
    from schedopt.baselines import tune_baselines
    from schedopt.calibration.fit import fit_pilots
    from schedopt.design import design as design_flow

    easy = schedopt.load_problem(ROOT / "problems/easy-phase.toml")
    authors = schedopt.load_problem(ROOT / "benchmarks/authors-default.toml").with_horizon(100)
    cases = {
        "solve easy-phase (T=1e4)": lambda: schedopt.solve(easy),
        "solve authors-default (T=1e2)": lambda: schedopt.solve(authors),
    }
    cases["tune_baselines authors-default (T=1e2), all families"] = lambda: tune_baselines(authors)
    pilots = _pilots()
    cases["fit_pilots (3 pilots, N=150, T=240)"] = lambda: fit_pilots(
        pilots, n_modes=150, terms=(), lr_cap="best"
    )
    if design:
        cases["design authors-default (T=1e2), all baselines"] = lambda: design_flow(authors)
    return cases


def _run(fn, scoped: bool) -> tuple[dict, object]:
    _blas.enabled = scoped
    load = os.getloadavg()[0]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        result = fn()
    finally:
        _blas.enabled = True
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu": round(cpu, 4), "wall": round(wall, 4), "load": round(load, 2)}, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-design", action="store_true", help="leave out the design with baselines")
    args = parser.parse_args()

    default_libraries = _blas_libraries()  # before any schedopt call: the process's defaults
    report: dict = {
        "commit": _git_head(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {n: version(n) for n in ("numpy", "scipy", "jax", "threadpoolctl")},
        "blas_libraries_at_start": default_libraries,
        "repeats": args.repeats,
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "cases": {},
    }
    for name, fn in _cases(not args.no_design).items():
        fingerprints = {}
        warm = {}
        for scoped in (True, False):  # compile, and the first call of each setting
            warm["on" if scoped else "off"], result = _run(fn, scoped)
            fingerprints.setdefault(scoped, _fingerprint(result))
        runs: dict[str, list[dict]] = {"on": [], "off": []}
        for r in range(args.repeats):
            for scoped in (r % 2 == 0, r % 2 == 1):
                timing, result = _run(fn, scoped)
                runs["on" if scoped else "off"].append(timing)
                assert _fingerprint(result) == fingerprints[scoped], f"{name}: a repeat differs"
        med = {
            key: {m: round(statistics.median(t[m] for t in runs[key]), 4) for m in ("cpu", "wall", "load")}
            for key in runs
        }
        entry = {
            "first_calls": warm,
            "runs": runs,
            "median": med,
            "ratio_off_over_on": {
                m: round(med["off"][m] / med["on"][m], 2) for m in ("cpu", "wall") if med["on"][m] > 0
            },
            "identical_results": fingerprints[True] == fingerprints[False],
            "final_loss": fingerprints[True].get("final_loss"),
        }
        report["cases"][name] = entry
        print(
            f"{name}: CPU s on {med['on']['cpu']:.2f} / off {med['off']['cpu']:.2f} "
            f"(x{entry['ratio_off_over_on'].get('cpu', float('nan')):.2f}), wall on {med['on']['wall']:.2f} / "
            f"off {med['off']['wall']:.2f}, load {med['on']['load']:.1f}/{med['off']['load']:.1f}, "
            f"identical: {entry['identical_results']}",
            flush=True,
        )
    report["blas_libraries_at_end"] = _blas_libraries()
    # every BLAS library back at the count the process started with (SciPy's loaded meanwhile)
    default = {lib["num_threads"] for lib in default_libraries}
    report["restored"] = all({lib["num_threads"]} == default for lib in report["blas_libraries_at_end"])
    report["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "blas-threads.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
