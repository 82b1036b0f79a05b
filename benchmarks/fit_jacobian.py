"""One Jacobian of ``schedopt fit``'s residuals, this tree's loss curves against another tree's, in one process.

The fit's cost is its Jacobians (forward mode, 9 tangents through every pilot update: 86 % of a fit's CPU,
``benchmarks/README.md``, "How long `fit` takes"). This times the jitted Jacobian of ``_model._residuals`` at
the first four of the fit's starts, on the pilots ``schedopt pilots --budget 1`` plans (``fit_time.py``'s
synthetic losses, a loss every update), with ``calibration._curves.loss_curves`` taken from this tree and, with
``--before TREE``, from that tree's ``schedopt/calibration/_curves.py`` (loaded from its file; the rest of the
fit is this tree's, so only the loss curves differ). The implementations are alternated repetition by
repetition, so they see the same load; each repetition's CPU and wall milliseconds a Jacobian are recorded,
with the largest difference between their Jacobians.

Usage: uv run python benchmarks/fit_jacobian.py [--horizons 2000,20000] [--repeats 15] [--before TREE]
Writes benchmarks/results/fit-jacobian.json (TREE by its commit).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fit_time import _commit, write_pilots  # noqa: E402

from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt._jax import jax  # noqa: E402
from schedopt.calibration import _curves, _model  # noqa: E402
from schedopt.calibration.fit import FIT_MODES, OFFSET_FLOOR  # noqa: E402
from schedopt.calibration.pilots import read_pilots  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
STARTS = 4


def _curves_of(tree: Path):
    """``loss_curves`` of another tree's ``_curves.py`` (its own imports resolve to this tree's modules)."""
    spec = importlib.util.spec_from_file_location("_curves_before", tree / "schedopt/calibration/_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.loss_curves


def _jacobian(curves, objective, x0):
    """The residuals' Jacobian with ``curves`` as the loss curves (traced, then compiled, here)."""
    saved = _model.loss_curves
    _model.loss_curves = curves
    try:
        jac = jax.jit(jax.jacfwd(_model._residuals), static_argnames=("layout",))
        jac(x0, *objective.args, **objective.static).block_until_ready()  # traced with ``curves``
    finally:
        _model.loss_curves = saved
    return jac


def measure(horizon: int, implementations: dict, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        runs = read_pilots(write_pilots(Path(folder), horizon, 1, 0.05))
    layout = _model._Layout(
        n_modes=FIT_MODES, fixed_kappa=False, exponent=True, null_modes=True, offset_floor=OFFSET_FLOOR
    )
    data = _model._data(runs, max(r.peak_learning_rate for r in runs), _model._early(runs, "auto"))
    objective = _model._Objective(data, layout, None)
    xs = [jax.numpy.asarray(x) for x in _model._starts(runs, data, layout)[:STARTS]]
    jacobians = {name: _jacobian(curves, objective, xs[0]) for name, curves in implementations.items()}
    values = {
        name: [np.asarray(jac(x, *objective.args, **objective.static)) for x in xs]
        for name, jac in jacobians.items()
    }
    first = next(iter(values.values()))
    difference = {
        name: max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(v, first, strict=True))
        for name, v in values.items()
    }
    times: dict[str, list] = {name: [] for name in jacobians}
    loads = [os.getloadavg()[0]]
    for _ in range(repeats):
        for name, jac in jacobians.items():
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for x in xs:
                jac(x, *objective.args, **objective.static).block_until_ready()
            times[name].append(
                [1e3 * (time.process_time() - cpu0) / len(xs), 1e3 * (time.perf_counter() - wall0) / len(xs)]
            )
    loads.append(os.getloadavg()[0])
    out = {
        "pilot_updates": [r.horizon for r in runs],
        "lanes": int(data.lane_learning_rate.shape[0]),
        "residuals": int(np.sum(data.weight > 0)),
        "max_relative_jacobian_difference_to_first": difference,
        "load_average_1min": [round(v, 2) for v in loads],
    }
    for name, t in times.items():
        t = np.asarray(t)
        out[name] = {
            "cpu_ms_median": round(float(np.median(t[:, 0])), 3),
            "wall_ms_median": round(float(np.median(t[:, 1])), 3),
            "cpu_ms": [round(v, 3) for v in t[:, 0]],
        }
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--horizons", default="2000,20000")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--before", type=Path, default=None, help="a checkout of the code before a change")
    p.add_argument("--out", type=Path, default=RESULTS / "fit-jacobian.json")
    args = p.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    implementations = {f"this ({_commit(ROOT)})": _curves.loss_curves}
    if args.before is not None:
        implementations[f"before ({_commit(args.before)})"] = _curves_of(args.before)
    results = {
        "what": __doc__.splitlines()[0],
        "starts_timed": STARTS,
        "repeats": args.repeats,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "horizons": {},
    }
    for horizon in (int(h) for h in args.horizons.split(",")):
        results["horizons"][str(horizon)] = entry = measure(horizon, implementations, args.repeats)
        print(
            horizon,
            {k: v["cpu_ms_median"] for k, v in entry.items() if isinstance(v, dict) and "cpu_ms" in v},
        )
    atomic_write_text(args.out, json_text(results))


if __name__ == "__main__":
    main()
