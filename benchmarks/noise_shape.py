"""Real training, offline: do noise and anneal terms the default fit lacks predict held-out runs better?

``--kind gamma``: the fitted model's gradient noise enters mode ``k`` as ``eta^2 lam_k sigma^2`` (SGD on the
random-feature model: noise covariance proportional to the Hessian). An adaptive optimiser
whitens its update noise, so the noise it puts into a direction need not scale with that
direction's curvature. This variant injects ``eta^2 lam_k^gamma sigma^2`` (a per-mode
``noise_k = sigma^2 lam_k^(gamma - 1)`` in the same exact recursion) and fits ``gamma``: at
``gamma = 1`` it is schedopt's model; below 1 the slow modes hold a larger share of the noise,
which an anneal empties over the whole cooldown instead of ~100 updates.

``--kind noise-time`` / ``noise-progress`` fit ``rho``: the noise grows over training as
``(1 + t / 50)^rho`` (``t`` in updates), or as ``(1 + S / 50)^rho`` with ``S`` the progress in updates
at the reference rate (an effective batch size that falls as training goes on); ``rho = 0`` is
schedopt's model. Why: the networks' anneal gain at a fixed rate grows with the horizon (prose/SGD at
0.3: 0.078 nats after 720 updates, 0.205 after 1,200; ``anneal_gain.py``), the model's does not.

``--kind lr-noise`` fits instead ``q``: the noise grows as ``(lr / reference)^q`` beyond the model
rate's square (an effective batch size ``(lr / reference)^-q``); ``q = 0`` is schedopt's model.

``--kind anneal-drop`` fits ``(b, log tau, r)``: schedopt's curve minus a loss drop that an anneal realises
over its course (the Multi-Power Law's loss-drop term as one more state): every decrease of
``(lr / max lr)^r`` lowers the loss by ``b`` times the smallest fitted loss, as ``1 - exp(-A / tau)`` with
``A`` the area under ``lr / max lr`` since; ``b = 0`` is schedopt's model.

Every fit: schedopt fit's default terms and offset floor (``realtasks`` model ``schedopt-floor``),
the same least-squares solver and starts (times each start of the new coordinates), on the default
protocol's pilots; scored on the task's held-out panel as ``realtasks.predictions()`` scores it.

Usage: uv run python benchmarks/noise_shape.py [--kind gamma|lr-noise|noise-time|noise-progress|anneal-drop]
    [--task NAME ...]
Writes benchmarks/results/noise-shape-KIND.json.
"""

from __future__ import annotations

import argparse
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
from prediction_variants import score  # noqa: E402

from examples.tasks import TASKS  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt._jax import jax  # noqa: E402
from schedopt.calibration._model import _bounds, _data, _early, _Layout, _physical, _starts  # noqa: E402
from schedopt.calibration._solve import _least_squares, _status  # noqa: E402
from schedopt.calibration.fit import FIT_MODES, OFFSET_FLOOR  # noqa: E402
from schedopt.dynamics.recursion import loss_curve_jax  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
KIND = "gamma"
#: the extra coordinates of each variant: (their values in schedopt's model, bounds, starts)
EXTRA = {
    "gamma": ((1.0,), ((-0.5, 1.5),), ((1.0,), (0.3,))),
    "lr-noise": ((0.0,), ((-2.0, 3.0),), ((0.0,), (-0.5,))),
    "noise-time": ((0.0,), ((-1.0, 3.0),), ((0.0,), (1.0,))),
    "noise-progress": ((0.0,), ((-1.0, 3.0),), ((0.0,), (1.0,))),
    # (b, log tau, r): a drop of b * min loss per unit decrease of (lr / max lr)^r, realised as
    # 1 - exp(-A / tau) with A the area under lr / max lr since (the Multi-Power Law's loss-drop, as a state)
    "anneal-drop": (
        (0.0, math.log(100.0), 1.0),
        ((0.0, 1.0), (0.0, math.log(1e4)), (0.25, 2.0)),
        ((0.05, math.log(30.0), 0.5), (0.05, math.log(300.0), 1.0)),
    ),
}
#: the scale (updates, at the reference rate for ``noise-progress``) past which the noise grows
GROWTH_SCALE = 50.0
LAYOUT = _Layout(
    n_modes=FIT_MODES, fixed_kappa=False, exponent=True, null_modes=True, offset_floor=OFFSET_FLOOR
)


def predict(x, lr, max_lr, min_loss, layout=LAYOUT):
    """Network loss curves ``(R, T + 1)``; the last coordinates of ``x`` are the variant's, the rest schedopt's."""
    n_extra = len(EXTRA[KIND][0])
    q = _physical(x[:-n_extra], layout, max_lr, min_loss, 1.0)
    extra = x[-1]
    ratio = lr / q["reference"]
    eta = q["learning_rate_scale"] * ratio ** q["learning_rate_exponent"]
    if KIND == "gamma":
        noise = q["noise_std"] ** 2 * q["eigenvalues"] ** (extra - 1.0)
        batch = jnp.ones_like(eta)
    elif KIND == "anneal-drop":  # schedopt's curve, minus a drop that an anneal realises over its course
        noise = q["noise_std"] ** 2
        batch = jnp.ones_like(eta)
    elif KIND == "lr-noise":  # the noise grows as (lr / reference)^q beyond the model rate's square
        noise = q["noise_std"] ** 2
        batch = jnp.where(ratio > 0, jnp.maximum(ratio, 1e-30) ** (-extra), 1e30)
    else:  # the noise grows with training: (1 + t / t0)^rho in updates, or in progress at the reference rate
        noise = q["noise_std"] ** 2
        if KIND == "noise-time":
            clock = jnp.broadcast_to(jnp.arange(eta.shape[-1], dtype=eta.dtype), eta.shape)
        else:
            clock = jnp.cumsum(eta, axis=-1) / q["learning_rate_scale"] - eta / q["learning_rate_scale"]
        growth = (1.0 + clock / GROWTH_SCALE) ** extra

        def grown(rates, g):  # the forcing times g(t); the decay rate is the batch-1 model's
            return _grown_noise_curve(q["eigenvalues"], q["initial_error"], noise, rates, g, q["weights"])

        return q["loss_offset"] + q["loss_scale"] * jax.vmap(grown)(eta, growth)

    def one(rates, m):
        return loss_curve_jax(
            q["eigenvalues"], q["initial_error"], noise, rates, m, loss_weights=q["weights"]
        )

    curves = q["loss_offset"] + q["loss_scale"] * jax.vmap(one)(eta, batch)
    if KIND == "anneal-drop":
        curves = curves - min_loss * x[-3] * jax.vmap(lambda r: _drop(r / max_lr, *x[-2:]))(lr)
    return curves


def _drop(fraction, log_tau, r):
    """The realised loss drop after each update, ``(T + 1,)``, per unit of the drop's scale.

    Every decrease of ``fraction^r`` (``fraction`` = lr / max lr) is a drop that is realised as
    ``1 - exp(-area / tau)``, ``area`` the sum of ``fraction`` over the updates after it.
    """
    u = jnp.where(fraction > 0, jnp.maximum(fraction, 1e-30) ** r, 0.0)
    clock = fraction
    decrease = jnp.maximum(jnp.concatenate([jnp.zeros(1), u[:-1] - u[1:]]), 0.0)
    tau = jnp.exp(log_tau)

    def step(carry, x):
        total, pending = carry
        d, c = x
        pending = pending * jnp.exp(-c / tau) + d
        total = total + d
        return (total, pending), total - pending

    _, realised = jax.lax.scan(step, (jnp.zeros(()), jnp.zeros(())), (decrease, clock))
    return jnp.concatenate([jnp.zeros(1), realised])


def _grown_noise_curve(eigenvalues, initial_error, noise, rates, growth, weights):
    """schedopt's batch-1 SGD recursion (``sgd_parts``) with the forcing multiplied by ``growth[t]``."""

    def step(c, x):
        lr, g = x
        lr_lam = lr * eigenvalues
        rate = 2.0 * lr_lam - 2.0 * lr_lam * lr_lam
        forcing = g * lr * lr * eigenvalues * (jnp.sum(weights * c) + noise)
        c = (1.0 - rate) * c + forcing
        return c, jnp.sum(weights * c)

    _, losses = jax.lax.scan(step, initial_error, (rates, growth))
    return jnp.concatenate([jnp.sum(weights * initial_error)[None], losses])


def _residuals(x, lr, runs, steps, target, weight, max_lr, min_loss):
    pred = predict(x, lr, max_lr, min_loss)[runs, steps]
    safe = jnp.where(jnp.isfinite(pred) & (pred > 0), pred, 1e30)
    return weight * (jnp.log(safe) - target)


_res = jax.jit(_residuals)
_jac = jax.jit(jax.jacfwd(_residuals))


class Objective:
    def __init__(self, data, fixed_extra=None):
        self.data = data
        self.args = data.arguments()
        self.fixed_extra = fixed_extra

    def _x(self, x):
        x = jnp.asarray(x)
        return x if self.fixed_extra is None else jnp.concatenate([x, jnp.asarray(self.fixed_extra)])

    def fun(self, x):
        return np.asarray(_res(self._x(x), *self.args))

    def jac(self, x):
        j = np.asarray(_jac(self._x(x), *self.args))
        return j if self.fixed_extra is None else j[:, : -len(self.fixed_extra)]

    def log_prediction(self, x):
        lr, runs, steps, target, weight, *rest = self.args
        return self.data.log_loss + np.asarray(
            _res(self._x(x), lr, runs, steps, target, jnp.ones_like(weight), *rest)
        )


def fit(runs, fixed_extra=None):
    early = _early(runs, "auto")
    data = _data(runs, max(r.peak_learning_rate for r in runs), early)
    objective = Objective(data, fixed_extra)
    lo, hi = _bounds(LAYOUT)
    base = _starts(runs, data, LAYOUT)
    if fixed_extra is None:
        _, box, extra_starts = EXTRA[KIND]
        starts = [np.concatenate([s, g]) for g in extra_starts for s in base]
        lo, hi = np.concatenate([lo, [b[0] for b in box]]), np.concatenate([hi, [b[1] for b in box]])
    else:
        starts = base
    res = _least_squares(objective, starts, (lo, hi))
    x = objective._x(res.x)
    rel = np.expm1(objective.log_prediction(res.x) - data.log_loss)[~early]
    final = jax.jit(lambda lrs: predict(x, lrs[None, :], data.max_learning_rate, data.min_loss)[0, -1])
    return x, final, float(np.sqrt(np.mean(rel**2))), str(_status(res.status))


def _value(x):
    """The variant's fitted coordinate (a number) or coordinates (a list)."""
    n = len(EXTRA[KIND][0])
    values = [float(v) for v in x[-n:]]
    return values[0] if n == 1 else values


def _text(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else "(" + ", ".join(f"{v:.3g}" for v in value) + ")"


def run_task(task) -> dict:
    runs = realtasks.pilot_runs(task, realtasks.DEFAULT_PROTOCOL)
    panel = [(j.label, j.seed, np.asarray(j.lrs), r["final_val_loss"]) for j, r in realtasks._panel(task)]
    entry = {"about": task.about, "panel_runs": len(panel), "variants": {}}
    neutral = EXTRA[KIND][0]
    shown = _text(neutral[0] if len(neutral) == 1 else list(neutral))
    for name, fixed in ((f"{KIND}={shown} (schedopt)", neutral), (f"{KIND} fitted", None)):
        with Clock() as clock:
            x, final, rms, status = fit(runs, fixed)
            clock.stop()
        rows, summary, signed = score(
            panel, lambda lrs, f=final: float(f(jnp.asarray(lrs, dtype=jnp.float64)))
        )
        entry["variants"][name] = {
            KIND: _value(x),
            "x": [float(v) for v in x],
            "fit_rms_error": rms,
            "status": status,
            "summary": summary,
            "signed_median_error_by_horizon": signed,
            "fit_clock": clock.record(),
            "runs": rows,
        }
        print(
            f"{task.name} {name}: {KIND} {_text(_value(x))} panel {100 * summary['median_abs']:.1f} / "
            f"{100 * summary['max_abs']:.1f} %, fit {100 * rms:.2f} %, signed {signed} ({clock.cpu:.0f} CPU-s)",
            flush=True,
        )
    return entry


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--kind", choices=list(EXTRA), default="gamma")
    p.add_argument("--out", type=Path, default=None, help="default: results/noise-shape-KIND.json")
    args = p.parse_args(argv)
    global KIND
    KIND = args.kind
    args.out = args.out or RESULTS / f"noise-shape-{KIND}.json"
    out = {"protocol": realtasks.DEFAULT_PROTOCOL, "kind": KIND, "extra": EXTRA[KIND], "tasks": {}}
    with Clock() as total, jax.enable_x64(True):
        for name in args.task:
            out["tasks"][name] = run_task(TASKS[name])
    out["clock"] = total.record()
    out["python"] = platform.python_version()
    atomic_write_text(args.out, json_text(out))


if __name__ == "__main__":
    main()
