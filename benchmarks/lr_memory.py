"""Real training: does the networks' response to the learning rate have a memory? (issue 12, an experiment)

``schedopt fit`` maps a network learning rate to the model's by a power, ``eta = kappa (lr /
ref)^p``, with ``p`` fitted across pilots run at different peaks (0.2-0.7 on the real tasks:
doubling the peak far less than doubles the progress). The same power then applies *within* a
run: as a cosine decays, the model's rate falls only like ``lr^p``, so the model loses little
progress to an early anneal and ranks cosine above WSD where the networks rank it well below
(``code-sgdm``: cosine predicted 8 % too low at every peak, WSD 2 %). If the sublinearity comes
from something the network adapts to its learning rate slowly (its curvature, its
preconditioner), a run responds linearly to a change and adapts afterwards:

    eta(t) = kappa * (lr(t) / ref) * (m(t) / ref)^(p - 1),   m(t + 1) = m(t) + (lr(t) - m(t)) / tau,

``m`` an exponential average of the run's learning rate that starts at the run's peak (the warmup
does not count; at a constant rate eta is schedopt's map), ``tau`` its time scale in updates.
Variants, each fitted to the task's default pilots (``realtasks.DEFAULT_PROTOCOL``) with
``schedopt fit``'s terms, starts, box and offset floor, and scored on the task's held-out panel
exactly as ``realtasks.predictions()`` scores it:

* ``default``: ``schedopt fit``'s model (no memory: ``tau -> 0``);
* ``peak``: ``tau -> infinity`` (``m`` = the run's peak);
* ``memory``: ``tau`` fitted (``log tau`` in [log 5, log 1e5], started at 6 and at T / 5 from each of
  the fit's starts).

Not in ``schedopt``: a memory makes the map from network to model learning rates a causal
filter, which ``design``, the exports and the network cap would all have to carry; the numbers
here say whether that is worth doing. The panel is scored at the comparison's horizon T (the
issue's panel) and with the 2T transfer runs too.

**With a pilot that decays** (``--protocol long60-wider-decay``, added 2026-12-08): the plan's three pilots plus the
x 4 pilot again with a 1-sqrt decay over its last 70 % (from just past the warmup; 1.2 runs). The WSD-shaped pilots cannot tell the
map's response within a run from its response across runs; a gradual decay can. ``prediction_bias.py`` found the
largest error left on 10 tasks of 21 is cosine at 1.41-4x tuned WSD's peak, predicted too low. Decided before the
fits (rule): the memory is worth carrying into the tool if, on these pilots over the tasks, the ``memory`` variant's
maximum absolute error at T (median over tasks) is at least 2 points below the ``default`` variant's on the same
pilots, its median absolute error at T (median over tasks) is not above the default's by more than 0.3 point, and
``tau`` is not on its upper bound on most tasks (a memory the pilots identify).

Usage: uv run python benchmarks/lr_memory.py [--task NAME ...] [--protocol NAME] [--out FILE]
Writes benchmarks/results/lr-memory.json, or lr-memory-PROTOCOL.json for another protocol (CPU and wall seconds of
every fit, the load average).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import realtasks  # noqa: E402
from _clock import Clock  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt._jax import jax  # noqa: E402
from schedopt.calibration._model import (  # noqa: E402
    OFFSET_FLOOR,
    _bounds,
    _data,
    _early,
    _Layout,
    _physical,
    _starts,
)
from schedopt.calibration._solve import _least_squares  # noqa: E402
from schedopt.calibration.fit import FIT_MODES  # noqa: E402
from schedopt.dynamics.recursion import loss_curve_jax  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = ("default", "peak", "memory")
TAU_BOX = (math.log(5.0), math.log(1e5))


def model_rates(lr, kappa, ref, p, variant: str, tau):
    """Model learning rates ``(R, T)`` of network learning rates ``lr`` ``(R, T)``."""
    if variant == "default":
        return kappa * (lr / ref) ** p
    peak = jnp.max(lr, axis=-1)
    if variant == "peak":
        memory = jnp.broadcast_to(peak[:, None], lr.shape)
    else:

        def average(row, start):
            def step(m, value):
                m = m + (value - m) / tau
                return m, m

            return jax.lax.scan(step, start, row)[1]

        memory = jax.vmap(average)(lr, peak)
    return kappa * (lr / ref) * (memory / ref) ** (p - 1.0)


def predict(x, lr, layout, max_lr, min_loss, variant: str):
    """Network loss curves ``(R, T + 1)`` (cf. ``schedopt.calibration._model._predict``)."""
    tau = jnp.exp(x[-1]) if variant == "memory" else None
    q = _physical(x[:-1] if variant == "memory" else x, layout, max_lr, min_loss, 1.0)
    eta = model_rates(lr, q["learning_rate_scale"], q["reference"], q["learning_rate_exponent"], variant, tau)

    def one(rates):
        return loss_curve_jax(
            q["eigenvalues"],
            q["initial_error"],
            q["noise_std"] ** 2,
            rates,
            jnp.ones_like(rates),
            loss_weights=q["weights"],
        )

    return q["loss_offset"] + q["loss_scale"] * jax.vmap(one)(eta)


def _residuals(x, lr, runs, steps, target, weight, max_lr, min_loss, *, layout, variant):
    pred = predict(x, lr, layout, max_lr, min_loss, variant)[runs, steps]
    safe = jnp.where(jnp.isfinite(pred) & (pred > 0), pred, 1e30)
    return weight * (jnp.log(safe) - target)


_STATIC = ("layout", "variant")
_residuals_jit = jax.jit(_residuals, static_argnames=_STATIC)
_jacobian_jit = jax.jit(jax.jacfwd(_residuals), static_argnames=_STATIC)


class _Objective:
    """``_model._Objective``'s interface (what ``_solve._least_squares`` needs) for one variant."""

    def __init__(self, data, layout: _Layout, variant: str):
        self.data, self.layout, self.variant = data, layout, variant
        self.args = data.arguments()

    def fun(self, x):
        return np.asarray(
            _residuals_jit(jnp.asarray(x), *self.args, layout=self.layout, variant=self.variant)
        )

    def jac(self, x):
        return np.asarray(_jacobian_jit(jnp.asarray(x), *self.args, layout=self.layout, variant=self.variant))


def fit(runs, horizon: int, variant: str):
    """``(final loss of network learning rates, parameters, fit cost)`` of one variant."""
    layout = _Layout(
        n_modes=FIT_MODES, fixed_kappa=False, exponent=True, null_modes=True, offset_floor=OFFSET_FLOOR
    )
    data = _data(runs, max(r.peak_learning_rate for r in runs), _early(runs, "auto"))
    objective = _Objective(data, layout, variant)
    lo, hi = _bounds(layout)
    starts = list(_starts(runs, data, layout))
    if variant == "memory":
        lo, hi = np.append(lo, TAU_BOX[0]), np.append(hi, TAU_BOX[1])
        # short and long memories from each start: the model nests the default (tau -> 0), and a
        # long start alone can stop in another basin (it did on prose-adamw, cost 1.27 x the default's)
        starts = [np.append(s, log_tau) for s in starts for log_tau in (math.log(6.0), math.log(horizon / 5))]
    result = _least_squares(objective, starts, (lo, hi))
    x = jnp.asarray(result.x)
    final = jax.jit(
        lambda lrs: predict(x, lrs[None, :], layout, data.max_learning_rate, data.min_loss, variant)[0, -1]
    )
    names = dict(zip(layout.coordinates, np.asarray(result.x), strict=False))
    parameters = {"learning_rate_exponent": float(names["learning_rate_exponent"])}
    if variant == "memory":
        parameters["tau_updates"] = float(np.exp(result.x[-1]))
        parameters["tau_at_bound"] = bool(
            np.isclose(result.x[-1], TAU_BOX[0]) or np.isclose(result.x[-1], TAU_BOX[1])
        )
    cost = 0.5 * float(np.sum(objective.fun(result.x) ** 2))
    return (lambda lrs: float(final(jnp.asarray(lrs, dtype=jnp.float64)))), parameters, cost


def _summary(errors: list[float]) -> dict:
    a = np.abs(errors)
    return {"median_abs": float(np.median(a)), "max_abs": float(a.max()), "runs": len(errors)}


def run_task(
    name: str, protocol: str = realtasks.DEFAULT_PROTOCOL, variants: tuple[str, ...] = VARIANTS
) -> dict:
    task = TASKS[name]
    runs = realtasks.pilot_runs(task, protocol)
    panel = [(j.label, j.seed, np.asarray(j.lrs), r["final_val_loss"]) for j, r in realtasks._panel(task)]
    entry = {"horizon": task.horizon, "panel_runs": len(panel), "variants": {}}
    for variant in variants:
        with Clock() as clock:
            final, parameters, cost = fit(runs, task.horizon, variant)
            clock.stop()
        rows = [
            {"label": label, "seed": seed, "error": final(lrs) / actual - 1}
            for label, seed, lrs, actual in panel
        ]
        at_t = [r["error"] for r, (_, _, lrs, _) in zip(rows, panel, strict=True) if lrs.size == task.horizon]
        entry["variants"][variant] = {
            "at_horizon": _summary(at_t),
            "with_2T": _summary([r["error"] for r in rows]),
            "signed_median_at_horizon": float(np.median(at_t)),
            "parameters": parameters,
            "fit_cost": cost,
            "fit_clock": clock.record(),
            "worst": sorted(rows, key=lambda r: -abs(r["error"]))[:4],
        }
        s, w = entry["variants"][variant]["at_horizon"], entry["variants"][variant]["with_2T"]
        print(
            f"{name:14s} {variant:8s} T: {100 * s['median_abs']:.1f} / {100 * s['max_abs']:.1f} %"
            f"  with 2T: {100 * w['median_abs']:.1f} / {100 * w['max_abs']:.1f} %  {parameters}",
            flush=True,
        )
    return entry


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--protocol", choices=list(realtasks.PILOT_PROTOCOLS), default=realtasks.DEFAULT_PROTOCOL)
    p.add_argument("--out", help="results file name (default: lr-memory.json, or lr-memory-PROTOCOL.json)")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--merge", action="store_true", help="keep the other tasks of an existing results file")
    args = p.parse_args(argv)
    out = {
        "protocol": {
            "pilots": args.protocol,
            "n_modes": FIT_MODES,
            "offset_floor": OFFSET_FLOOR,
            "variants": list(args.variants),
            "score": "predicted / actual final validation loss - 1 (realtasks.predictions); "
            "at_horizon: the runs at T, with_2T: and the transfer runs",
        },
        "tasks": {},
        "python": platform.python_version(),
    }
    with Clock() as total, jax.enable_x64(True):
        for name in args.task:
            out["tasks"][name] = run_task(name, args.protocol, tuple(args.variants))
    out["clock"] = total.record()
    default = (
        "lr-memory.json" if args.protocol == realtasks.DEFAULT_PROTOCOL else f"lr-memory-{args.protocol}.json"
    )
    path = RESULTS / (args.out or default)
    if args.merge and path.exists():  # another process's tasks, fitted the same way, kept
        before = json.loads(path.read_text())
        if before["protocol"] == out["protocol"]:
            out["tasks"] = {**before["tasks"], **out["tasks"]}
            out["clock_of_the_merged_runs"] = [*before.get("clock_of_the_merged_runs", []), before["clock"]]
    atomic_write_text(path, json_text(out))
    print(f"wrote {path.relative_to(ROOT)}: {total.cpu:.0f} CPU-s, {total.wall:.0f} s wall")


if __name__ == "__main__":
    main()
