r"""Fit the power-law model to the loss curves of real pilot runs (``schedopt fit``).

The network's loss under its recorded learning rates :math:`\eta^{net}_t` is modelled as

.. math::  \ell(t) = \ell_\infty + s\,L_t(a, b, \sigma;\ \eta_t = \kappa\,(\eta^{net}_t/\eta_{ref})^{p})

where :math:`L_t` is the exact SGD recursion of the power-law model
(:mod:`schedopt.dynamics.recursion`, batch 1, ``n_modes`` modes, initial loss
1) and :math:`\eta_{ref}` the largest pilot learning rate. Fitted: the exponents
``a`` and ``b``, the label noise ``noise_std`` :math:`\sigma`, the ``loss_scale``
:math:`s`, the irreducible ``loss_offset`` :math:`\ell_\infty`, the
``learning_rate_scale`` :math:`\kappa`, and two optional terms (``terms``):

* ``exponent``: the ``learning_rate_exponent`` :math:`p`. Real networks respond
  less than proportionally to their learning rate: on three tasks
  (``benchmarks/realtasks.py``) AdamW's stable-phase loss barely moves over a x4
  range of learning rates while an anneal's drop grows with it; fitted
  :math:`p` was 0.56 for AdamW and 0.33 for SGD with momentum.
* ``null_modes``: ``null_modes`` modes of eigenvalue ``null_eigenvalue`` with no
  initial error: directions the target does not use, which SGD noise fills at
  rate :math:`\eta^2\lambda(L+\sigma^2)` and empties only at rate
  :math:`2\eta\lambda`. They penalise a large learning rate in a way a short
  anneal does not undo; without them the model ranks every larger peak better
  (in-sample on the 20 full-length runs of ``code-adamw``: max error 6.1 %
  without, 3.1 % with). In the fit they are one node of weight ``null_modes``
  (:mod:`schedopt.dynamics.compression`'s loss readout); the written spec rounds
  the count to whole modes.

Measurements before ``min_step`` (``"auto"``: twice each pilot's warmup) are
not fitted: the start-up transient is not what a schedule design acts on.

**Objective.** Nonlinear least squares on log losses, each run weighted
equally (residuals of run ``i`` divided by :math:`\sqrt{n_i}`), by
``scipy.optimize.least_squares`` (trust-region reflective, box bounds) with the
exact Jacobian from ``jax.jacfwd`` through the recursion, from several
starting points. The model's learning rate is kept mean-square stable by
parameterising :math:`\kappa\max\eta^{net} = r\,\eta_{safe}(b)`, ``r < 1``, with
:math:`\eta_{safe} = 2/(\sum_k\lambda_k + 2)` a lower bound of the stability
threshold at batch 1 (from the secular condition of
:mod:`schedopt.dynamics.stability` with :math:`\lambda_k \le 1`).

**Uncertainties.** Gauss–Newton: :math:`\mathrm{cov} = \hat s^2 (J^\top J)^{-1}`
in the fitted coordinates, mapped to the parameters by the delta method. Loss
curves are serially correlated, so these are lower bounds; they serve to flag
what the pilots cannot tell apart. A parameter is *identified* when its
standard error is below half its value (``loss_offset``: below half the
smallest loss) and it is not at a bound; the result lists the others, and
``schedopt fit`` prints them.

**Holdout.** With three or more pilots the last one is held out: the model is
fitted to the others and its prediction of the held-out curve is scored. With
fewer, the last quarter of every curve is held out instead (prediction forward
in time). The parameters written are those of the fit to everything.

**The design's learning-rate cap** (:func:`learning_rate_cap`). By default the
largest pilot learning rate: the model is trusted where it was fitted, and its
own penalties (noise, null modes) choose the peak below that. The earlier rule
(``"best"``: the peak of the pilot that ended lowest) stood in for the missing
null modes; pilots without a warmup, as in ``benchmarks/transformer.py``, were
damaged at a large learning rate in their first 50 updates, which the model
cannot express and no schedule shape repairs: train with a warmup.

**Identifiability.** Pilots that all use one learning rate cannot separate
:math:`\kappa` from the other parameters: that is a :class:`FitError` unless
``learning_rate_scale`` is fixed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.optimize

from schedopt._jax import float64, jax
from schedopt.calibration.pilots import PilotRun
from schedopt.dynamics.recursion import loss_curve_jax
from schedopt.dynamics.stability import stability_threshold
from schedopt.errors import FitError
from schedopt.problem import ControlSpec, Model, NetworkUnits, Problem, Training
from schedopt.status import Status

__all__ = [
    "FIT_PARAMETERS",
    "FitResult",
    "fit_pilots",
    "learning_rate_cap",
    "predict_network_loss",
]

FIT_PARAMETERS = (
    "a",
    "b",
    "noise_std",
    "loss_scale",
    "loss_offset",
    "learning_rate_scale",
    "learning_rate_exponent",
    "null_eigenvalue",
    "null_modes",
)
"""The fitted parameters, in report order."""

TERMS = ("exponent", "null_modes")
"""Optional model terms: the learning-rate exponent :math:`p` and the null-mode block (see the module doc)."""

#: Bounds of the fitted coordinate that moves each parameter: a, b, log sigma, log s, the offset as a
#: fraction of the smallest measured loss, r = model peak learning rate / safe threshold, p, and the
#: logs of the null eigenvalue and of the null-mode count.
_BOUNDS = {
    "a": (1.05, 8.0),
    "b": (1.05, 8.0),
    "noise_std": (math.log(1e-4), math.log(10.0)),
    "loss_scale": (math.log(1e-4), math.log(1e4)),
    "loss_offset": (0.0, 0.999),
    "learning_rate_scale": (1e-4, 0.999),
    "learning_rate_exponent": (0.05, 2.0),
    "null_eigenvalue": (math.log(1e-6), 0.0),
    "null_modes": (0.0, math.log(1e4)),
}
_STARTS = ((1.5, 1.3), (2.5, 1.5), (2.0, 2.5), (4.0, 2.0), (1.3, 2.0))  # (a, b)
_TERM_STARTS = (  # (r, p, log null eigenvalue, log null modes)
    (0.3, 1.0, math.log(1e-3), math.log(100.0)),
    (0.1, 0.6, math.log(1e-2), math.log(300.0)),
    (0.6, 0.8, math.log(1e-4), math.log(1000.0)),
)
_IDENTIFIED_RATIO = 0.5
_SCOUT_EVALUATIONS = 50  # least-squares evaluations per start before the best is polished
_MAX_EVALUATIONS = 300


@dataclass(frozen=True)
class _Data:
    """Pilots as padded arrays: learning rates ``(R, T)`` and the gather indices of the measurements."""

    learning_rate: np.ndarray
    run_index: np.ndarray
    step_index: np.ndarray
    log_loss: np.ndarray
    weight: np.ndarray
    max_learning_rate: float
    min_loss: float


def _run_index(runs: Sequence[PilotRun]) -> np.ndarray:
    """The pilot each measurement belongs to, in the order the measurements are stacked."""
    return np.concatenate([np.full(r.losses.size, i) for i, r in enumerate(runs)])


def warmup_steps(run: PilotRun) -> int:
    """Updates before the pilot's learning rate first reaches its peak (0 without a warmup)."""
    return int(np.argmax(run.learning_rate >= run.peak_learning_rate * (1 - 1e-9)))


def _early(runs: Sequence[PilotRun], min_step: int | str) -> np.ndarray:
    """Measurements before each pilot's ``min_step`` (``"auto"``: twice its warmup): the start-up transient."""
    masks = []
    for run in runs:
        start = 2 * warmup_steps(run) if min_step == "auto" else int(min_step)
        masks.append(run.loss_steps < start)
    return np.concatenate(masks)


def _data(runs: Sequence[PilotRun], max_learning_rate: float, held_out: np.ndarray | None = None) -> _Data:
    """Stack the pilots; measurements flagged in ``held_out`` (held out or too early) get weight 0."""
    horizon = max(r.horizon for r in runs)
    lr = np.zeros((len(runs), horizon))
    for i, run in enumerate(runs):
        lr[i, : run.horizon] = run.learning_rate
    run_index = _run_index(runs)
    step_index = np.concatenate([r.loss_steps for r in runs])
    losses = np.concatenate([r.losses for r in runs])
    fitted = np.ones(losses.size, dtype=bool) if held_out is None else ~held_out
    counts = np.bincount(run_index[fitted], minlength=len(runs)).astype(np.float64)
    weight = np.where(fitted, 1.0 / np.sqrt(np.maximum(counts[run_index], 1.0)), 0.0)
    return _Data(
        lr, run_index, step_index, np.log(losses), weight, max_learning_rate, float(losses[fitted].min())
    )


@dataclass(frozen=True)
class _Layout:
    """Which coordinates the fit has: the six base ones, then the optional terms'."""

    n_modes: int
    fixed_kappa: bool
    exponent: bool
    null_modes: bool

    @property
    def coordinates(self) -> tuple[str, ...]:
        """The parameter each fitted coordinate moves, in coordinate order (that of :data:`FIT_PARAMETERS`)."""
        off = {
            "learning_rate_scale": self.fixed_kappa,
            "learning_rate_exponent": not self.exponent,
            "null_eigenvalue": not self.null_modes,
            "null_modes": not self.null_modes,
        }
        return tuple(n for n in FIT_PARAMETERS if not off.get(n, False))

    @property
    def fixed(self) -> tuple[str, ...]:
        """The parameters held at their fixed value (not fitted)."""
        return tuple(n for n in FIT_PARAMETERS if n not in self.coordinates)


def _physical(x, layout: _Layout, data_max_lr, min_loss, kappa_value):
    """Fitted coordinates -> parameters, decay eigenvalues, loss weights and initial error.

    The spectrum is ``n_modes`` power-law modes and, with the null-mode term, one
    node standing for ``null_modes`` modes of eigenvalue ``null_eigenvalue`` and no
    initial error (its loss weight is their count times the eigenvalue).
    """
    a, b = x[0], x[1]
    sigma = jnp.exp(x[2])
    scale = jnp.exp(x[3])
    offset = x[4] * min_loss
    i = 5
    k = jnp.arange(1, layout.n_modes + 1, dtype=jnp.float64)
    lam = k**-b
    power = k**-a
    c0 = power / lam / jnp.sum(power)
    weights = lam
    null_lam = jnp.asarray(1e-6)
    null_count = jnp.asarray(0.0)
    if layout.null_modes:
        null_lam = jnp.exp(x[-2])
        null_count = jnp.exp(x[-1])
        lam = jnp.concatenate([lam, null_lam[None]])
        weights = jnp.concatenate([weights, (null_count * null_lam)[None]])
        c0 = jnp.concatenate([c0, jnp.zeros(1)])
    if layout.fixed_kappa:
        kappa = jnp.asarray(kappa_value, dtype=jnp.float64)
    else:
        kappa = x[i] * 2.0 / (jnp.sum(weights) + 2.0)  # model lr at the largest pilot lr, below stability
        i += 1
    exponent = x[i] if layout.exponent else jnp.asarray(1.0)
    reference = jnp.asarray(1.0 if layout.fixed_kappa else data_max_lr, dtype=jnp.float64)
    return {
        "a": a,
        "b": b,
        "noise_std": sigma,
        "loss_scale": scale,
        "loss_offset": offset,
        "learning_rate_scale": kappa,
        "learning_rate_exponent": exponent,
        "null_eigenvalue": null_lam,
        "null_modes": null_count,
        "reference": reference,
        "eigenvalues": lam,
        "weights": weights,
        "initial_error": c0,
    }


def _predict(x, lr, layout, max_lr, min_loss, kappa_value):
    """Network loss curves ``(R, T + 1)`` for per-run network learning rates ``lr`` ``(R, T)``."""
    q = _physical(x, layout, max_lr, min_loss, kappa_value)
    ones = jnp.ones(lr.shape[-1])
    eta = q["learning_rate_scale"] * (lr / q["reference"]) ** q["learning_rate_exponent"]

    def one(rates):
        return loss_curve_jax(
            q["eigenvalues"], q["initial_error"], q["noise_std"] ** 2, rates, ones, loss_weights=q["weights"]
        )

    return q["loss_offset"] + q["loss_scale"] * jax.vmap(one)(eta)


def _parameters(x, layout, max_lr, min_loss, kappa_value):
    q = _physical(x, layout, max_lr, min_loss, kappa_value)
    return jnp.stack([q[name] for name in FIT_PARAMETERS])


def _residuals(x, lr, runs, steps, target, weight, max_lr, min_loss, kappa, *, layout):
    pred = _predict(x, lr, layout, max_lr, min_loss, kappa)[runs, steps]
    safe = jnp.where(jnp.isfinite(pred) & (pred > 0), pred, 1e30)
    return weight * (jnp.log(safe) - target)


_STATIC = ("layout",)
_residuals_jit = jax.jit(_residuals, static_argnames=_STATIC)
_jacobian_jit = jax.jit(jax.jacfwd(_residuals), static_argnames=_STATIC)


class _Objective:
    """Weighted log residuals and their Jacobian.

    The data are arguments of module-level jitted functions, so a holdout fit
    (the same arrays with some weights set to zero) reuses the compiled code.
    """

    def __init__(self, data: _Data, layout: _Layout, fixed_kappa: float | None):
        self.evaluations = 0  # residual evaluations, for the progress line
        self.data = data
        self.layout = layout
        self.fixed_kappa = fixed_kappa
        self.args = (
            jnp.asarray(data.learning_rate),
            jnp.asarray(data.run_index),
            jnp.asarray(data.step_index),
            jnp.asarray(data.log_loss),
            jnp.asarray(data.weight),
            data.max_learning_rate,
            data.min_loss,
            1.0 if fixed_kappa is None else float(fixed_kappa),
        )
        self.static = {"layout": layout}

    def fun(self, x):
        from schedopt._progress import report

        residuals = np.asarray(_residuals_jit(jnp.asarray(x), *self.args, **self.static))
        self.evaluations += 1
        report("fit", self.evaluations, 0.5 * float(residuals @ residuals))  # the least-squares cost
        return residuals

    def jac(self, x):
        return np.asarray(_jacobian_jit(jnp.asarray(x), *self.args, **self.static))

    def log_prediction(self, x) -> np.ndarray:
        """Predicted log losses at every measurement, held out (weight 0) or not."""
        lr, runs, steps, target, weight, *rest = self.args
        log_ratio = _residuals_jit(
            jnp.asarray(x), lr, runs, steps, target, jnp.ones_like(weight), *rest, **self.static
        )
        return self.data.log_loss + np.asarray(log_ratio)

    def _to_parameters(self, x):
        d = self.data
        kappa = 1.0 if self.fixed_kappa is None else float(self.fixed_kappa)
        return _parameters(x, self.layout, d.max_learning_rate, d.min_loss, kappa)

    def parameters(self, x):
        """The values of :data:`FIT_PARAMETERS` at fitted coordinates ``x``."""
        return np.asarray(self._to_parameters(jnp.asarray(x)))

    def parameter_jacobian(self, x):
        return np.asarray(jax.jacfwd(self._to_parameters)(jnp.asarray(x)))


def _bounds(layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = zip(*(_BOUNDS[name] for name in layout.coordinates), strict=True)
    return np.array(lo), np.array(hi)


def _starts(runs: Sequence[PilotRun], data: _Data, layout: _Layout) -> list[np.ndarray]:
    first = float(np.mean([r.losses[0] for r in runs]))
    offset = 0.5
    scale = max(first - offset * data.min_loss, 1e-3)
    out = []
    term_starts = _TERM_STARTS if (layout.exponent or layout.null_modes) else _TERM_STARTS[:1]
    for a, b in _STARTS:
        for r, p, log_lam, log_count in term_starts:
            start = {
                "a": a,
                "b": b,
                "noise_std": math.log(0.3),
                "loss_scale": math.log(scale),
                "loss_offset": offset,
                "learning_rate_scale": r,
                "learning_rate_exponent": p,
                "null_eigenvalue": log_lam,
                "null_modes": log_count,
            }
            out.append(np.array([start[name] for name in layout.coordinates]))
    return out


def _least_squares(objective: _Objective, starts, bounds):
    """A short run from every start, then the best one run to convergence."""

    def run(x0, budget):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return scipy.optimize.least_squares(
                objective.fun,
                x0,
                jac=objective.jac,
                bounds=bounds,
                method="trf",
                x_scale="jac",
                max_nfev=budget,
            )

    scouts = [run(x0, _SCOUT_EVALUATIONS) for x0 in starts]
    best = min(scouts, key=lambda r: r.cost)
    if best.status != 0:  # converged already
        return best
    final = run(best.x, _MAX_EVALUATIONS)
    final.nfev += sum(r.nfev for r in scouts)
    return final


def _check_identifiable(runs: Sequence[PilotRun], fixed_kappa: float | None) -> None:
    rates = np.unique(np.concatenate([r.learning_rate[r.learning_rate > 0] for r in runs]))
    if rates.size == 0:
        raise FitError(f"{runs[0].name}: learning_rate: every pilot has learning rate 0; nothing was trained")
    if fixed_kappa is None and rates.size < 2:
        names = ", ".join(r.name for r in runs)
        raise FitError(
            f"{names}: every pilot uses the single learning rate {rates[0]:g}, so the learning-rate scale "
            "cannot be identified; add pilots at other learning rates or fix learning_rate_scale "
            "(--lr-scale)"
        )


@dataclass(frozen=True, eq=False)
class _Solve:
    x: np.ndarray
    residuals: np.ndarray
    jacobian: np.ndarray
    status: Status
    message: str
    evaluations: int
    objective: _Objective


def _solve(runs, layout: _Layout, fixed_kappa, max_lr, held_out) -> _Solve:
    data = _data(runs, max_lr, held_out)
    objective = _Objective(data, layout, fixed_kappa)
    bounds = _bounds(layout)
    res = _least_squares(objective, _starts(runs, data, layout), bounds)
    return _Solve(
        x=res.x,
        residuals=objective.fun(res.x),
        jacobian=objective.jac(res.x),
        status=_status(res.status),
        message=str(res.message),
        evaluations=int(res.nfev),
        objective=objective,
    )


def _status(code: int) -> Status:
    """SciPy ``least_squares``' status code as schedopt's :class:`~schedopt.status.Status`."""
    if code > 0:  # 1-4: one of the tolerances was met
        return Status.CONVERGED
    return Status.MAX_ITERATIONS if code == 0 else Status.FAILED


@dataclass(frozen=True, eq=False)
class FitResult:
    """The fitted model, its uncertainties, fit and holdout errors, and the problem it defines.

    Attributes:
        parameters: fitted values by name (:data:`FIT_PARAMETERS`).
        std_errors: Gauss–Newton standard errors by name (``inf`` if unidentifiable).
        identified: whether each parameter is identified (see the module doc).
        at_bound: parameters that ended on a bound of the search box.
        fit_error: RMS relative error of the fitted curves, overall and by run (fractions).
        holdout: ``{"kind", "held_out", "rms_error", "by_run"}`` or ``None``.
        phase: ``easy`` (a > b) or ``hard``; ``phase_z``: (a − b) / its standard error.
        problem: the fitted problem (a ``[network]`` map included) at the pilots' horizon.
        runs: the pilot files; ``n_points``: measurements fitted; ``n_modes``: model size.
        notes: warnings a user must see (unidentified parameters, bounds hit, ...).
        status: how the least-squares solve ended (:class:`~schedopt.status.Status`, as
            solves and baseline tunings report it); ``message``: SciPy's own words.
    """

    parameters: Mapping[str, float]
    std_errors: Mapping[str, float]
    identified: Mapping[str, bool]
    at_bound: tuple[str, ...]
    fit_error: Mapping[str, Any]
    holdout: Mapping[str, Any] | None
    phase: str
    phase_z: float
    problem: Problem
    runs: tuple[str, ...]
    n_points: int
    n_modes: int
    status: Status
    evaluations: int
    fixed: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    learning_rate_cap: Mapping[str, Any] = field(default_factory=dict)
    terms: tuple[str, ...] = ()
    min_step: int | str = 0
    message: str = ""

    def __post_init__(self) -> None:
        for name in ("parameters", "std_errors", "identified", "fit_error", "learning_rate_cap"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def unidentified(self) -> tuple[str, ...]:
        return tuple(n for n in FIT_PARAMETERS if not self.identified[n] and n not in self.fixed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report (``schedopt fit --json``)."""
        return {
            "parameters": dict(self.parameters),
            "std_errors": {k: (None if not math.isfinite(v) else v) for k, v in self.std_errors.items()},
            "identified": dict(self.identified),
            "unidentified": list(self.unidentified),
            "fixed": list(self.fixed),
            "at_bound": list(self.at_bound),
            "fit_error": dict(self.fit_error),
            "holdout": None if self.holdout is None else dict(self.holdout),
            "phase": self.phase,
            "phase_z": self.phase_z if math.isfinite(self.phase_z) else None,
            "runs": list(self.runs),
            "n_points": self.n_points,
            "n_modes": self.n_modes,
            "status": str(self.status),
            "message": self.message,
            "evaluations": self.evaluations,
            "learning_rate_cap": dict(self.learning_rate_cap),
            "terms": list(self.terms),
            "min_step": self.min_step,
            "horizon": self.problem.horizon,
            "notes": list(self.notes),
        }

    def spec_text(self) -> str:
        """The fitted problem as spec text (``schedopt design`` reads it), with the fit summarised on top."""
        from schedopt.spec import dump_problem

        lines = ["# Fitted by `schedopt fit` to the pilot runs:"]
        lines += [f"#   {name}" for name in self.runs]
        for name in FIT_PARAMETERS:
            flag = "" if self.identified[name] else "  (NOT identified by these pilots)"
            if name in self.fixed:
                flag = "  (fixed)"
            lines.append(f"#   {name} = {self.parameters[name]:.6g} +- {self.std_errors[name]:.2g}{flag}")
        lines.append(f"#   terms: {', '.join(self.terms) or 'none'}; fitted from step: {self.min_step}")
        lines.append(f"#   fit error (RMS relative): {100 * self.fit_error['rms_error']:.2f}%")
        if self.holdout is not None:
            lines.append(
                f"#   holdout ({self.holdout['kind']}: {self.holdout['held_out']}): "
                f"{100 * self.holdout['rms_error']:.2f}%"
            )
        lines.append(f"#   phase: {self.phase} (a - b = {self.phase_z:.2g} standard errors)")
        lines += [f"#   note: {n}" for n in self.notes]
        lines.append(
            f"# The learning-rate cap ([controls.learning_rate] max, model units) is network learning rate "
            f"{self.learning_rate_cap['network']:.6g}: {self.learning_rate_cap['rule']}."
        )
        # a file name may hold a newline or other control characters: escape them, or the comment ends early
        safe = ["".join(c if c.isprintable() else repr(c)[1:-1] for c in line) for line in lines]
        return "\n".join(safe) + "\n" + dump_problem(self.problem)


def _relative_rms(solve: _Solve, runs, where: np.ndarray) -> tuple[float, dict[str, float]]:
    """RMS relative error of the predicted losses at the measurements in ``where``: overall and by run."""
    data = solve.objective.data
    rel = np.expm1(solve.objective.log_prediction(solve.x) - data.log_loss)
    by_run = {
        r.name: float(np.sqrt(np.mean(rel[where & (data.run_index == i)] ** 2)))
        for i, r in enumerate(runs)
        if np.any(where & (data.run_index == i))
    }
    return float(np.sqrt(np.mean(rel[where] ** 2))), by_run


def _uncertainties(solve: _Solve, fixed: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parameter values and Gauss–Newton standard errors."""
    x = solve.x
    values = np.asarray(solve.objective.parameters(jnp.asarray(x)))
    n, p = solve.jacobian.shape
    dof = max(n - p, 1)
    s2 = float(np.sum(solve.residuals**2)) / dof
    jtj = solve.jacobian.T @ solve.jacobian
    try:
        with np.errstate(all="ignore"):  # a singular or non-finite J^T J: no uncertainties, said below
            cov_x = s2 * np.linalg.inv(jtj)
            if not np.all(np.isfinite(cov_x)) or not np.linalg.cond(jtj) <= 1e14:
                raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov_x = np.full((p, p), np.inf)
    g = np.asarray(solve.objective.parameter_jacobian(jnp.asarray(x)))
    with np.errstate(invalid="ignore"):
        size = len(FIT_PARAMETERS)
        cov = g @ cov_x @ g.T if np.all(np.isfinite(cov_x)) else np.full((size, size), np.inf)
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    for name in fixed:
        std[FIT_PARAMETERS.index(name)] = 0.0
    return values, std, cov


def _phase_z(values, cov) -> float:
    block = cov[:2, :2]
    var = block[0, 0] + block[1, 1] - 2 * block[0, 1] if np.all(np.isfinite(block)) else math.inf
    if not np.isfinite(var) or var <= 0:
        return math.inf if values[0] != values[1] else 0.0
    return float((values[0] - values[1]) / math.sqrt(var))


def learning_rate_cap(runs: Sequence[PilotRun], rule: str | float = "max") -> tuple[float, str]:
    """The largest network learning rate a design may use, and how it was chosen.

    ``"max"`` (default): the largest pilot learning rate: the model is trusted up
    to every learning rate it was fitted on, and its own penalties (noise, the
    null modes) choose the peak below that. ``"best"``: the peak of the pilot with
    the lowest final loss (pilots of equal length only mean something here; the
    rule of the model without null modes, which had no penalty an anneal does not
    remove). A number: that cap, in the network's units.
    """
    if isinstance(rule, str):
        if rule == "max":
            return max(r.peak_learning_rate for r in runs), "largest pilot learning rate"
        if rule == "best":
            best = min(runs, key=lambda r: float(r.losses[-1]))
            return (
                best.peak_learning_rate,
                f"peak learning rate of the pilot with the lowest final loss ({best.name})",
            )
        raise FitError(f"--lr-cap: must be best, max or a positive number, got {rule!r}")
    if isinstance(rule, bool) or not isinstance(rule, int | float) or not math.isfinite(rule) or rule <= 0:
        raise FitError(f"--lr-cap: must be best, max or a positive number, got {rule!r}")
    return float(rule), "given (--lr-cap)"


def _problem(values, runs, n_modes, name, network_cap: float, reference: float) -> Problem:
    q = dict(zip(FIT_PARAMETERS, (float(v) for v in values), strict=True))
    null_modes = round(q["null_modes"]) if q["null_modes"] >= 0.5 else 0
    model = Model.powerlaw(
        q["a"],
        q["b"],
        n_modes,
        noise_std=q["noise_std"],
        initial_loss=1.0,
        null_modes=null_modes,
        null_eigenvalue=q["null_eigenvalue"] if null_modes else None,
    )
    units = NetworkUnits(
        learning_rate_scale=q["learning_rate_scale"],
        loss_scale=q["loss_scale"],
        loss_offset=q["loss_offset"],
        learning_rate_exponent=q["learning_rate_exponent"],
        learning_rate_reference=reference,
        pilot_warmup=max(warmup_steps(r) for r in runs),  # design's default --warmup
    )
    horizon = max(r.horizon for r in runs)
    cap = min(float(units.model_learning_rate(network_cap)), 0.95 * stability_threshold(model, 1.0))
    return Problem(
        name=name,
        model=model,
        training=Training(horizon=horizon),
        controls={
            "learning_rate": ControlSpec(
                "learning_rate", 0.0, cap, blocks=min(100, horizon), grid="geometric-both"
            )
        },
        network=units,
    )


def _held_out(runs: Sequence[PilotRun], holdout: str, fixed_kappa) -> tuple[str, str, np.ndarray] | None:
    """``(kind, description, mask of held-out measurements)`` or ``None`` for no holdout."""
    if holdout == "none":
        return None
    names = [r.name for r in runs]
    owner = _run_index(runs)
    target = None
    if holdout not in ("auto", "tail"):
        if holdout not in names:
            raise FitError(f"--holdout: {holdout!r} is not one of the pilots ({', '.join(names)})")
        target = names.index(holdout)
    elif holdout == "auto" and len(runs) >= 3:
        target = len(runs) - 1
    if target is not None:
        rest = [r for i, r in enumerate(runs) if i != target]
        if not rest:
            raise FitError("--holdout: holding out the only pilot leaves nothing to fit")
        try:
            _check_identifiable(rest, fixed_kappa)
            return "run", names[target], owner == target
        except FitError:
            if holdout not in ("auto", "tail"):
                raise
    mask = []
    for run in runs:
        cut = int(math.ceil(0.75 * run.losses.size))
        if cut < 5 or run.losses.size - cut < 1:
            raise FitError(
                f"{run.name}: too few loss points to hold out the last quarter (use --holdout none)"
            )
        mask.append(np.arange(run.losses.size) >= cut)
    return "tail", "last quarter of every pilot", np.concatenate(mask)


def _holdout(runs, holdout, layout, fixed_kappa, max_lr, early) -> dict[str, Any] | None:
    split = _held_out(runs, holdout, fixed_kappa)
    if split is None:
        return None
    kind, description, mask = split
    solve = _solve(runs, layout, fixed_kappa, max_lr, held_out=mask | early)
    rms, by_run = _relative_rms(solve, runs, mask & ~early)
    return {"kind": kind, "held_out": description, "rms_error": rms, "by_run": by_run}


@float64
def predict_network_loss(problem: Problem, learning_rate) -> np.ndarray:
    """The network loss curve ``(T + 1,)`` a fitted problem predicts for network learning rates."""
    if problem.network is None:
        raise FitError("the problem has no [network] map (it was not produced by `schedopt fit`)")
    from schedopt.dynamics.recursion import loss_curve

    eta = problem.network.model_learning_rate(np.asarray(learning_rate, dtype=np.float64))
    curve = loss_curve(problem.model, eta, batch_size=problem.training.batch_size).loss
    return problem.network.network_loss(np.asarray(curve))


SPIKE_RATIO = 1.5
"""A loss this many times the pilot's best loss so far (after the warmup) is a spike: diverged or unstable."""

CONTRADICTION = 0.05
"""Pilots with the same schedule whose losses differ by more than this (median relative) contradict each other."""


def _pilot_notes(runs: Sequence[PilotRun]) -> list[str]:
    """Warnings about pilots the fit cannot trust or that cannot show enough.

    A loss spike (a pilot that diverged or was unstable), two pilots with the
    same schedule and different losses (other data, other model or a bug), and
    a learning-rate range too narrow to show the network's response.
    """
    notes = []
    for run in runs:
        late = run.loss_steps >= 2 * warmup_steps(run)
        losses, steps = run.losses[late], run.loss_steps[late]
        if losses.size:
            best = np.minimum.accumulate(losses)
            spikes = np.flatnonzero(losses > SPIKE_RATIO * best)
            if spikes.size:
                i = int(spikes[0])
                notes.append(
                    f"{run.name}: the loss spikes to {losses[i]:.4g} at step {int(steps[i])} "
                    f"(best so far {best[i]:.4g}): a diverged or unstable pilot fits badly; drop or rerun it"
                )
    for i, first in enumerate(runs):
        for second in runs[i + 1 :]:
            if first.learning_rate.shape != second.learning_rate.shape or not np.array_equal(
                first.learning_rate, second.learning_rate
            ):
                continue
            common, a, b = np.intersect1d(first.loss_steps, second.loss_steps, return_indices=True)
            if common.size and np.median(np.abs(first.losses[a] / second.losses[b] - 1)) > CONTRADICTION:
                notes.append(
                    f"{first.name} and {second.name}: the same schedule with losses "
                    f"{100 * np.median(np.abs(first.losses[a] / second.losses[b] - 1)):.0f} % apart (median): "
                    "the pilots contradict each other (other data, model or code?)"
                )
    peaks = sorted({float(f"{r.peak_learning_rate:.6g}") for r in runs})
    if len(peaks) >= 2 and peaks[-1] / peaks[0] < 2.0:
        notes.append(
            f"the pilots' peak learning rates span only x{peaks[-1] / peaks[0]:.2g} ({peaks[0]:g} to "
            f"{peaks[-1]:g}): the learning-rate response and the design's peak are extrapolated; "
            "spread the pilots over x4 or more (schedopt pilots)"
        )
    return notes


@float64
def fit_pilots(
    runs: Sequence[PilotRun],
    *,
    n_modes: int = 1000,
    holdout: str = "auto",
    learning_rate_scale: float | None = None,
    name: str = "fitted",
    lr_cap: str | float = "max",
    terms: Sequence[str] = TERMS,
    min_step: int | str = "auto",
) -> FitResult:
    r"""Fit the model to pilot runs; see the module docstring for the method.

    Args:
        runs: the pilots (:func:`schedopt.calibration.pilots.read_pilot`).
        n_modes: power-law modes of the fitted model.
        holdout: ``"auto"``, ``"tail"``, ``"none"`` or the name of a pilot to hold out.
        learning_rate_scale: fix :math:`\kappa` (a linear map, no exponent) instead of fitting it.
        name: the fitted problem's name (its export folder).
        lr_cap: the design's learning-rate cap: ``"max"``, ``"best"`` or a network
            learning rate (see :func:`learning_rate_cap`).
        terms: optional model terms to fit, a subset of :data:`TERMS`.
        min_step: measurements before this step are not fitted; ``"auto"``: twice
            each pilot's warmup (the start-up transient no schedule design acts on).

    Raises:
        FitError: no pilots, unidentifiable learning-rate scale, bad holdout, unknown term.
    """
    runs = list(runs)
    if not runs:
        raise FitError("no pilot runs given")
    if not isinstance(n_modes, int) or isinstance(n_modes, bool) or not 10 <= n_modes <= 100_000:
        raise FitError(f"--n-modes: must be an integer in [10, 100000], got {n_modes!r}")
    if learning_rate_scale is not None and not (
        isinstance(learning_rate_scale, int | float)
        and math.isfinite(learning_rate_scale)
        and learning_rate_scale > 0
    ):
        raise FitError(f"--lr-scale: must be a positive number, got {learning_rate_scale!r}")
    if holdout not in ("auto", "tail", "none") and not isinstance(holdout, str):
        raise FitError(f"--holdout: must be auto, tail, none or a pilot's name, got {holdout!r}")
    unknown = [t for t in terms if t not in TERMS]
    if unknown:
        raise FitError(f"--terms: unknown term {unknown[0]!r} (known: {', '.join(TERMS)})")
    if min_step != "auto" and (isinstance(min_step, bool) or not isinstance(min_step, int) or min_step < 0):
        raise FitError(f"--min-step: must be auto or an integer >= 0, got {min_step!r}")
    _check_identifiable(runs, learning_rate_scale)
    fixed_kappa = learning_rate_scale
    layout = _Layout(
        n_modes=n_modes,
        fixed_kappa=fixed_kappa is not None,
        exponent="exponent" in terms and fixed_kappa is None,
        null_modes="null_modes" in terms,
    )
    network_cap, cap_rule = learning_rate_cap(runs, lr_cap)
    max_lr = max(r.peak_learning_rate for r in runs)
    early = _early(runs, min_step)
    counts = np.bincount(_run_index(runs)[~early], minlength=len(runs))
    if np.any(counts < 3):
        short = runs[int(np.argmin(counts))]
        raise FitError(
            f"{short.name}: fewer than 3 loss points after --min-step ({int(counts.min())}); "
            "log the loss more often or lower --min-step"
        )
    solve = _solve(runs, layout, fixed_kappa, max_lr, held_out=early)
    fixed = layout.fixed
    values, std, cov = _uncertainties(solve, fixed)
    data = solve.objective.data
    rms, by_run = _relative_rms(solve, runs, ~early)

    lo, hi = _bounds(layout)
    width = hi - lo
    hit = (solve.x - lo < 1e-4 * width) | (hi - solve.x < 1e-4 * width)
    at_bound = tuple(layout.coordinates[i] for i in np.flatnonzero(hit))
    identified = {}
    for i, pname in enumerate(FIT_PARAMETERS):
        ref = data.min_loss if pname == "loss_offset" else abs(values[i])
        identified[pname] = bool(
            pname in fixed
            or (np.isfinite(std[i]) and std[i] < _IDENTIFIED_RATIO * ref and pname not in at_bound)
        )
    notes = _pilot_notes(runs)
    missing = [n for n in FIT_PARAMETERS if not identified[n] and n not in fixed]
    if missing:
        notes.append(
            "not identified by these pilots (standard error >= half the value, or at a bound): "
            + ", ".join(missing)
        )
    if at_bound:
        notes.append("at a bound of the search box: " + ", ".join(at_bound))
    holdout_report = _holdout(runs, holdout, layout, fixed_kappa, max_lr, early)
    reference = 1.0 if layout.fixed_kappa else max_lr
    problem = _problem(values, runs, n_modes, name, network_cap, reference)
    return FitResult(
        parameters={n: float(v) for n, v in zip(FIT_PARAMETERS, values, strict=True)},
        std_errors={n: float(s) for n, s in zip(FIT_PARAMETERS, std, strict=True)},
        identified=identified,
        at_bound=at_bound,
        fit_error={"rms_error": rms, "by_run": by_run},
        holdout=holdout_report,
        phase="easy" if values[0] > values[1] else "hard",
        phase_z=_phase_z(values, cov),
        problem=problem,
        runs=tuple(r.name for r in runs),
        n_points=int(np.count_nonzero(~early)),
        n_modes=n_modes,
        status=solve.status,
        message=solve.message,
        evaluations=solve.evaluations,
        fixed=fixed,
        notes=tuple(notes),
        learning_rate_cap={
            "network": float(problem.network.network_learning_rate(problem.learning_rate.max)),
            "model": problem.learning_rate.max,
            "rule": cap_rule,
        },
        terms=tuple(t for t in TERMS if t in terms),
        min_step=min_step,
    )
