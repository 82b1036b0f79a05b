"""Real training: which variant of the fitted model predicts the held-out runs, and can the pilots tell?

On each task of ``examples/tasks.py`` the model is fitted to one protocol's pilots (default
``realtasks.DEFAULT_PROTOCOL``, what ``schedopt pilots`` proposes; ``--protocol``) and scored on the task's held-out panel of full-length runs
exactly as ``realtasks.predictions()`` scores it (predicted / actual final validation loss
- 1; median and max of the absolute errors). Variants (``VARIANTS``):

1. ``default``: ``schedopt fit``'s default terms (exponent + null modes);
2. ``base``: no terms;
3. ``default+wd`` / 4. ``base+wd``: the same with the task's **known** decoupled weight decay
   (``task.config.weight_decay``) in the model's dynamics (:func:`wd_curve`); a task without
   weight decay has nothing to add, so these equal 1 and 2 there (recorded as such, not refitted);
5. ``default-b<=3``: the default terms with the spectrum exponent ``b`` capped at 3 instead of 8.
   A **sensitivity check, not a candidate**: the cap was chosen after seeing these panels.

A criterion computable from the pilots alone is scored next to the panel for variants 1-3:
**forecasting** (fit the short pilots and the long pilot up to the short pilots' horizon,
predict the long pilot's remaining measurements; RMS relative error and the last point's).

Usage: uv run python benchmarks/prediction_variants.py [--task NAME ...]
Writes benchmarks/results/prediction-variants.json (CPU and wall seconds and the load average
of every fit). The runs are read from benchmarks/results/realtasks/runs (committed).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import realtasks  # noqa: E402
from _clock import Clock  # noqa: E402

from examples.tasks import TASKS, Task  # noqa: E402
from schedopt._io import atomic_write_text, json_text  # noqa: E402
from schedopt._jax import jax  # noqa: E402
from schedopt.calibration import _model  # noqa: E402
from schedopt.calibration._model import (  # noqa: E402
    FIT_PARAMETERS,
    TERMS,
    _bounds,
    _data,
    _early,
    _Layout,
    _parameters,
    _physical,
    _starts,
)
from schedopt.calibration._solve import _least_squares, _solve, _status  # noqa: E402
from schedopt.calibration.fit import FIT_MODES, fit_pilots, predict_network_loss  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PROTOCOL = realtasks.DEFAULT_PROTOCOL
#: name -> (terms, known weight decay in the dynamics, cap on b or None, role)
VARIANTS = {
    "default": (TERMS, False, None, "candidate"),
    "base": ((), False, None, "candidate"),
    "default+wd": (TERMS, True, None, "candidate (needs the optimiser's weight decay)"),
    "base+wd": ((), True, None, "candidate (needs the optimiser's weight decay)"),
    "default-b<=3": (TERMS, False, 3.0, "sensitivity check, not a candidate (cap chosen on these panels)"),
}
FORECAST = ("default", "base", "default+wd")


# ---------------------------------------------------------------------------------------------
# The model with decoupled weight decay (an experiment: not part of schedopt)


def wd_curve(lam, initial, weights, noise, eta, delta):
    r"""Loss ``sum_k w_k c_k`` at steps ``0..T`` of the fitted model with decoupled weight decay.

    Per mode (eigenvalue lam, error w = theta - theta*, theta_0 = 0 so w_0 = -theta*, A = theta*^2),
    a step at model rate eta with the network's decay delta = wd * lr_net (AdamW's shrink) is
    theta' = theta - eta (lam w + xi) - delta theta, i.e. w' = (1 - delta - eta lam) w - delta theta* - eta xi,
    E[xi^2] = lam^2 c + lam (L + sigma^2). So the mean s = E[w] / w_0 obeys s' = (1 - delta - eta lam) s + delta
    (s_0 = 1) and c = E[w^2] obeys c' = (1-delta-eta lam)^2 c + eta^2 (lam^2 c + lam (L+sigma^2)) + delta^2 A
    + 2 (1-delta-eta lam) delta A s; delta = 0 is schedopt's recursion (batch 1, checked in the run).
    """

    def step(state, u):
        c, s = state
        e, d = u
        loss = jnp.sum(weights * c)
        keep = 1.0 - d
        c_next = (
            (keep**2 - 2 * keep * e * lam + 2 * e * e * lam * lam) * c
            + e * e * lam * (loss + noise)
            + (d * d + 2 * keep * d * s - 2 * e * d * lam * s) * initial
        )
        s_next = (keep - e * lam) * s + d
        return (c_next, s_next), jnp.sum(weights * c_next)

    _, losses = jax.lax.scan(step, (initial, jnp.ones_like(initial)), (eta, delta))
    return jnp.concatenate([jnp.sum(weights * initial)[None], losses])


def wd_predict(x, lr, layout, max_lr, min_loss, wd):
    """Network loss curves ``(R, T + 1)`` for network learning rates ``lr`` ``(R, T)`` (cf. ``_model._predict``)."""
    q = _physical(x, layout, max_lr, min_loss, 1.0)
    eta = q["learning_rate_scale"] * (lr / q["reference"]) ** q["learning_rate_exponent"]

    def one(rates, decay):
        return wd_curve(q["eigenvalues"], q["initial_error"], q["weights"], q["noise_std"] ** 2, rates, decay)

    return q["loss_offset"] + q["loss_scale"] * jax.vmap(one)(eta, wd * lr)


def _wd_residuals(x, lr, runs, steps, target, weight, max_lr, min_loss, wd, *, layout):
    pred = wd_predict(x, lr, layout, max_lr, min_loss, wd)[runs, steps]
    safe = jnp.where(jnp.isfinite(pred) & (pred > 0), pred, 1e30)
    return weight * (jnp.log(safe) - target)


_wd_residuals_jit = jax.jit(_wd_residuals, static_argnames=("layout",))
_wd_jacobian_jit = jax.jit(jax.jacfwd(_wd_residuals), static_argnames=("layout",))


class _WDObjective:
    """``_model._Objective``'s interface (what ``_solve._least_squares`` needs) for the decayed model."""

    def __init__(self, data, layout: _Layout, wd: float):
        self.data, self.layout, self.wd = data, layout, wd
        self.args = (*data.arguments(), float(wd))

    def fun(self, x):
        return np.asarray(_wd_residuals_jit(jnp.asarray(x), *self.args, layout=self.layout))

    def jac(self, x):
        return np.asarray(_wd_jacobian_jit(jnp.asarray(x), *self.args, layout=self.layout))

    def log_prediction(self, x) -> np.ndarray:
        lr, runs, steps, target, weight, *rest = self.args
        ratio = _wd_residuals_jit(
            jnp.asarray(x), lr, runs, steps, target, jnp.ones_like(weight), *rest, layout=self.layout
        )
        return self.data.log_loss + np.asarray(ratio)


# ---------------------------------------------------------------------------------------------
# Fits


def _layout(terms: Sequence[str]) -> _Layout:
    return _Layout(
        n_modes=FIT_MODES, fixed_kappa=False, exponent="exponent" in terms, null_modes="null_modes" in terms
    )


@contextlib.contextmanager
def fit_box(**bounds: tuple[float, float]):
    """``schedopt fit``'s search box with these coordinates' ``(low, high)`` bounds, for the block."""
    saved = dict(_model._BOUNDS)
    _model._BOUNDS.update(bounds)
    try:
        yield
    finally:
        _model._BOUNDS.clear()
        _model._BOUNDS.update(saved)


@contextlib.contextmanager
def _b_cap(b_max: float | None):
    """The fit's box with ``b <= b_max`` (and starts inside it) for the duration of the block."""
    if b_max is None:
        yield
        return
    starts = _model._STARTS
    _model._STARTS = tuple((a, min(b, b_max - 0.1)) for a, b in starts)
    try:
        with fit_box(b=(_model._BOUNDS["b"][0], b_max)):
            yield
    finally:
        _model._STARTS = starts


def _wd_fit(runs, terms, wd: float, held_out: np.ndarray):
    """Least squares of the decayed model, from ``schedopt fit``'s starts and box (the same solver)."""
    layout = _layout(terms)
    data = _data(runs, max(r.peak_learning_rate for r in runs), held_out)
    objective = _WDObjective(data, layout, wd)
    res = _least_squares(objective, _starts(runs, data, layout), _bounds(layout))
    return res.x, objective, str(_status(res.status))


def _rel(objective, x) -> np.ndarray:
    """Relative error of the predicted loss at every pilot measurement."""
    return np.expm1(objective.log_prediction(x) - objective.data.log_loss)


def fit_variant(runs, terms, wd: float, b_max: float | None):
    """``(predict final loss from network lrs, parameters, fit RMS error)`` of one variant."""
    early = _early(runs, "auto")
    if wd == 0:
        with _b_cap(b_max):
            # offset free (its floor came later: realtasks.py's schedopt-floor), as the results were measured
            result = fit_pilots(runs, n_modes=FIT_MODES, holdout="none", terms=terms, offset_floor=0.0)
        return (
            lambda lrs: float(predict_network_loss(result.problem, lrs)[-1]),
            dict(result.parameters),
            result.fit_error["rms_error"],
            {"status": str(result.status), "at_bound": list(result.at_bound)},
        )
    x, objective, status = _wd_fit(runs, terms, wd, early)
    d, layout = objective.data, objective.layout
    final = jax.jit(
        lambda lrs: wd_predict(jnp.asarray(x), lrs[None, :], layout, d.max_learning_rate, d.min_loss, wd)[
            0, -1
        ]
    )
    values = np.asarray(_parameters(jnp.asarray(x), layout, d.max_learning_rate, d.min_loss, 1.0))
    rel = _rel(objective, x)[~early]
    return (
        lambda lrs: float(final(jnp.asarray(lrs, dtype=jnp.float64))),
        {n: float(v) for n, v in zip(FIT_PARAMETERS, values, strict=True)},
        float(np.sqrt(np.mean(rel**2))),
        {"status": status},
    )


def forecast(runs, terms, wd: float) -> dict:
    """Fit the pilots up to the short pilots' horizon; error on the long pilot's later measurements."""
    early = _early(runs, "auto")
    cut = min(r.horizon for r in runs)
    later = np.concatenate([r.loss_steps > cut for r in runs])
    layout = _layout(terms)
    max_lr = max(r.peak_learning_rate for r in runs)
    if wd == 0:
        solve = _solve(runs, layout, None, max_lr, held_out=later | early)
        x, objective = solve.x, solve.objective
        # the decayed model at wd = 0 is schedopt's: same curves at the fitted point
        d = objective.data
        x, lr = jnp.asarray(x), jnp.asarray(d.learning_rate)
        mine = np.asarray(wd_predict(x, lr, layout, d.max_learning_rate, d.min_loss, 0.0))
        fresh = jnp.zeros(lr.shape, dtype=bool)  # one run a row: no run starts inside a row
        theirs = np.asarray(_model._predict(x, lr, fresh, layout, d.max_learning_rate, d.min_loss, 1.0))
        check = float(np.max(np.abs(mine / theirs - 1)))
    else:
        x, objective, _ = _wd_fit(runs, terms, wd, later | early)
        check = None
    rel = _rel(objective, x)
    where = later & ~early
    last = [
        int(np.flatnonzero(objective.data.run_index == i)[-1]) for i, r in enumerate(runs) if r.horizon > cut
    ]
    out = {
        "fitted_up_to_step": cut,
        "held_out_points": int(where.sum()),
        "rms_error": float(np.sqrt(np.mean(rel[where] ** 2))),
        "last_point_error": float(rel[last[0]]),
    }
    if check is not None:
        out["wd0_recursion_max_rel_difference"] = check
    return out


# ---------------------------------------------------------------------------------------------
# Scoring


def score(panel, predict) -> tuple[list[dict], dict, dict]:
    """Rows and summary as ``realtasks.predictions()`` computes them, and the signed median by horizon."""
    rows = []
    for label, seed, lrs, actual in panel:
        predicted = predict(lrs)
        rows.append(
            {
                "label": label,
                "seed": seed,
                "actual": actual,
                "predicted": predicted,
                "error": predicted / actual - 1,
            }
        )
    by_horizon: dict[str, list[float]] = {}
    for r in rows:
        by_horizon.setdefault(r["label"].rsplit("-", 1)[-1], []).append(r["error"])
    signed = {h: float(np.median(v)) for h, v in sorted(by_horizon.items())}
    return rows, realtasks._errors(rows, "error"), signed


def mpl_score(task: Task, protocol: str, panel) -> dict:
    """The Multi-Power Law fitted to the same pilots (``realtasks.mpl_law``), scored on the same panel."""
    law = realtasks.mpl_law(task, protocol)
    _, summary, signed = score(panel, law.final_loss)
    return {"summary": summary, "signed_median_error_by_horizon": signed, "rms_log_error": law.rms_log_error}


def run_task(task: Task, protocol: str = PROTOCOL, variants: Sequence[str] = tuple(VARIANTS)) -> dict:
    runs = realtasks.pilot_runs(task, protocol)
    panel = [(j.label, j.seed, np.asarray(j.lrs), r["final_val_loss"]) for j, r in realtasks._panel(task)]
    weight_decay = float(task.config.weight_decay)
    entry = {
        "about": task.about,
        "weight_decay": weight_decay,
        "pilots": [j.label for j in realtasks.pilot_jobs(task, protocol)],
        "panel_runs": len(panel),
        "variants": {},
        "forecast": {},
    }
    for name, (terms, with_wd, b_max, role) in VARIANTS.items():
        if name not in variants:
            continue
        wd = weight_decay if with_wd else 0.0
        if with_wd and wd == 0:
            same = name.removesuffix("+wd")
            entry["variants"][name] = {**entry["variants"][same], "same_as": same, "role": role}
            print(f"{task.name} {name}: no weight decay, = {same}", flush=True)
            continue
        with Clock() as clock:
            predict, params, fit_rms, extra = fit_variant(runs, terms, wd, b_max)
            clock.stop()  # the fit; scoring the panel below is not timed
        rows, summary, signed = score(panel, predict)
        entry["variants"][name] = {
            "role": role,
            "terms": list(terms),
            "weight_decay_in_model": wd,
            "b_max": b_max if b_max is not None else _model._BOUNDS["b"][1],
            "summary": summary,
            "signed_median_error_by_horizon": signed,
            "parameters": params,
            "fit_rms_error": fit_rms,
            **extra,
            "fit_clock": clock.record(),
            "runs": rows,
        }
        print(
            f"{task.name} {name}: {100 * summary['median_abs']:.1f} % / {100 * summary['max_abs']:.1f} % "
            f"(b {params['b']:.2f}, fit {100 * fit_rms:.2f} %, {clock.cpu:.0f} CPU-s, {clock.wall:.0f} s)",
            flush=True,
        )
    entry["mpl"] = mpl_score(task, protocol, panel)
    summary = entry["mpl"]["summary"]
    print(
        f"{task.name} mpl: {100 * summary['median_abs']:.1f} % / {100 * summary['max_abs']:.1f} %", flush=True
    )
    forecastable = [n for n in FORECAST if n in variants]
    for name in forecastable:
        terms, with_wd, _, _ = VARIANTS[name]
        wd = weight_decay if with_wd else 0.0
        if with_wd and wd == 0:
            same = name.removesuffix("+wd")
            entry["forecast"][name] = {**entry["forecast"][same], "same_as": same}
            continue
        with Clock() as clock:
            result = forecast(runs, terms, wd)
        entry["forecast"][name] = {**result, "fit_clock": clock.record()}
        print(
            f"{task.name} forecast {name}: rms {100 * result['rms_error']:.2f} %, "
            f"last {100 * result['last_point_error']:.2f} % ({clock.cpu:.0f} CPU-s)",
            flush=True,
        )
    if not forecastable:
        return entry
    panel_best = min(forecastable, key=lambda n: entry["variants"][n]["summary"]["median_abs"])
    forecast_best = min(forecastable, key=lambda n: entry["forecast"][n]["rms_error"])
    entry["selection"] = {
        "among": forecastable,
        "panel_best_median": panel_best,
        "forecast_best_rms": forecast_best,
        "forecast_selects_panel_best": panel_best == forecast_best,
    }
    return entry


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--protocol", choices=list(realtasks.PILOT_PROTOCOLS), default=PROTOCOL)
    p.add_argument("--variant", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument(
        "--out", type=Path, default=None, help="default: results/prediction-variants[-PROTOCOL].json"
    )
    args = p.parse_args(argv)
    if args.out is None:
        tag = "" if args.protocol == PROTOCOL else f"-{args.protocol}"
        args.out = RESULTS / f"prediction-variants{tag}.json"
    out = {
        "protocol": {
            "pilots": args.protocol,
            "n_modes": FIT_MODES,
            "variants": {
                n: {"terms": list(t), "known_weight_decay": w, "b_max": b, "role": r}
                for n, (t, w, b, r) in VARIANTS.items()
                if n in args.variant
            },
            "score": "predicted / actual final validation loss - 1 on the panel (realtasks.predictions)",
            "forecast": "fit short pilots + the long pilot up to the short pilots' horizon; "
            "relative error on the long pilot's later measurements",
        },
        "tasks": {},
        "python": platform.python_version(),
    }
    with Clock() as total, jax.enable_x64(True):
        for name in args.task:
            out["tasks"][name] = run_task(TASKS[name], args.protocol, args.variant)
    out["clock"] = total.record()
    atomic_write_text(args.out, json_text(out))
    print(
        f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}: "
        f"{total.cpu:.0f} CPU-s, {total.wall:.0f} s wall"
    )


if __name__ == "__main__":
    main()
