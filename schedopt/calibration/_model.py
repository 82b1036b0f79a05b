"""The fitted model of :mod:`schedopt.calibration.fit`: its coordinates, loss curves and objective.

The pilots become padded arrays (:class:`_Data`); a :class:`_Layout` says which
coordinates the fit has; :func:`_physical` maps coordinates to the model's
parameters and spectrum, :func:`_predict` to network loss curves, and
:class:`_Objective` gives SciPy the weighted log residuals and their Jacobian.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from schedopt._jax import jax
from schedopt.calibration._curves import loss_curves
from schedopt.calibration.pilots import PilotRun, smoothed_losses

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

OFFSET_FLOOR = 0.5
"""Default lower bound of the irreducible ``loss_offset``, as a fraction of the smallest fitted loss.

The pilots do not identify the offset (on the five real tasks of ``benchmarks/realtasks.py`` the
fit error moves by less than 0.1 point between 0 and half the smallest loss), and with it free the
fits took 0, a pure power law that predicted every long run too low (``docs/calibration.md``).
"""

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

AT_BOUND = 1e-4
"""A fitted coordinate within this fraction of its box's width from an edge sits on the bound."""

MIN_LEARNING_RATE_EXPONENT = _BOUNDS["learning_rate_exponent"][0]
"""The fit's smallest learning-rate exponent :math:`p`. A fit on it found (almost) no response of the loss to
the network's learning rate: the model's rate moves by ``16 ** 0.05 = 1.15x`` across a 16x range of pilot
rates, so the model cannot rank plateaus (:func:`flat_rate_response`)."""


def flat_rate_response(exponent: float | None) -> bool:
    """Whether a fitted learning-rate exponent (``None``: not a fitted spec) sits on
    :data:`MIN_LEARNING_RATE_EXPONENT`: the pilots showed no learning-rate response the model could fit."""
    low, high = _BOUNDS["learning_rate_exponent"]
    return exponent is not None and exponent - low < AT_BOUND * (high - low)


_TERM_STARTS = (  # (r, p, log null eigenvalue, log null modes)
    (0.3, 1.0, math.log(1e-3), math.log(100.0)),
    (0.1, 0.6, math.log(1e-2), math.log(300.0)),
    (0.6, 0.8, math.log(1e-4), math.log(1000.0)),
)


@dataclass(frozen=True)
class _Data:
    """Pilots as padded arrays: learning rates ``(R, T)`` and the gather indices of the measurements,
    and the same pilots packed into lanes (:func:`_lanes`), which the fit's objective runs."""

    learning_rate: np.ndarray
    run_index: np.ndarray
    step_index: np.ndarray
    log_loss: np.ndarray
    weight: np.ndarray
    max_learning_rate: float
    min_loss: float
    lane_learning_rate: np.ndarray  # (lanes, T): the pilots' rates, one after another in a lane
    lane_reset: np.ndarray  # (lanes, T): the update that starts a pilot afresh (its state the initial one)
    lane_index: np.ndarray  # the lane of each measurement
    lane_step: np.ndarray  # its position in the lane

    def arguments(self) -> tuple:
        """One run a row: the learning rates, the measurements' run and step indices, then
        :meth:`_measured` (as the benchmarks' own residuals take them)."""
        rows = (self.learning_rate, self.run_index, self.step_index)
        return (*map(jnp.asarray, rows), *self._measured())

    def lane_arguments(self) -> tuple:
        """What the fit's jitted residuals take: the lanes' learning rates and resets, the measurements'
        lanes and positions in them, then :meth:`_measured`."""
        lanes = (self.lane_learning_rate, self.lane_reset, self.lane_index, self.lane_step)
        return (*map(jnp.asarray, lanes), *self._measured())

    def _measured(self) -> tuple:
        """The log losses and weights (on the device), the largest pilot learning rate, the smallest fitted loss."""
        return (jnp.asarray(self.log_loss), jnp.asarray(self.weight), self.max_learning_rate, self.min_loss)


def _lanes(horizons: Sequence[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Pack runs into lanes as long as the longest run: ``(lane of each run, its offset, lanes)``.

    A run of ``h`` updates takes ``h + 1`` positions of a lane (its initial state, then one per update);
    the update into a run's first position resets the state. First fit, longest runs first: the
    planned pilots (0.6, 0.2 and 0.2 of the horizon) take two lanes instead of three, and a step of
    the fit's Jacobian costs about as much a lane whatever the lane holds (``benchmarks/README.md``).
    """
    width = max(horizons) + 1
    lane, offset, ends = np.zeros(len(horizons), int), np.zeros(len(horizons), int), []
    for i in sorted(range(len(horizons)), key=lambda i: -horizons[i]):
        need = horizons[i] + 1
        home = next((k for k, end in enumerate(ends) if end + need <= width), len(ends))
        if home == len(ends):
            ends.append(0)
        lane[i], offset[i] = home, ends[home]
        ends[home] += need
    return lane, offset, len(ends)


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
    # the smallest fitted loss as the checks read a log (a noisy minibatch loss's lowest value is an outlier)
    read = np.concatenate([smoothed_losses(r) for r in runs])
    lane, offset, n_lanes = _lanes([r.horizon for r in runs])
    lane_lr = np.zeros((n_lanes, horizon))
    reset = np.zeros((n_lanes, horizon), dtype=bool)
    for i, run in enumerate(runs):
        lane_lr[lane[i], offset[i] : offset[i] + run.horizon] = run.learning_rate
        if offset[i] > 0:
            reset[lane[i], offset[i] - 1] = True
    return _Data(
        lr,
        run_index,
        step_index,
        np.log(losses),
        weight,
        max_learning_rate,
        float(read[fitted].min()),
        lane_lr,
        reset,
        lane[run_index],
        offset[run_index] + step_index,
    )


@dataclass(frozen=True)
class _Layout:
    """Which coordinates the fit has: the six base ones, then the optional terms'."""

    n_modes: int
    fixed_kappa: bool
    exponent: bool
    null_modes: bool
    offset_floor: float = 0.0  # lower bound of the loss offset, a fraction of the smallest fitted loss

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


def _predict(x, lr, reset, layout, max_lr, min_loss, kappa_value):
    """Network loss curves ``(R, T + 1)`` for lanes of network learning rates ``lr`` ``(R, T)`` (``reset``
    where a pilot starts afresh: :func:`_lanes`)."""
    q = _physical(x, layout, max_lr, min_loss, kappa_value)
    eta = q["learning_rate_scale"] * (lr / q["reference"]) ** q["learning_rate_exponent"]
    curves = loss_curves(q["eigenvalues"], q["initial_error"], q["weights"], q["noise_std"] ** 2, eta, reset)
    return q["loss_offset"] + q["loss_scale"] * curves


def _parameters(x, layout, max_lr, min_loss, kappa_value):
    q = _physical(x, layout, max_lr, min_loss, kappa_value)
    return jnp.stack([q[name] for name in FIT_PARAMETERS])


def _residuals(x, lr, reset, lanes, steps, target, weight, max_lr, min_loss, kappa, *, layout):
    pred = _predict(x, lr, reset, layout, max_lr, min_loss, kappa)[lanes, steps]
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
        self._counting = threading.Lock()  # the scouts evaluate on several threads
        self.data = data
        self.layout = layout
        self.fixed_kappa = fixed_kappa
        self.args = (*data.lane_arguments(), 1.0 if fixed_kappa is None else float(fixed_kappa))
        self.static = {"layout": layout}

    def fun(self, x):
        from schedopt._progress import report

        residuals = np.asarray(_residuals_jit(jnp.asarray(x), *self.args, **self.static))
        with self._counting:
            self.evaluations += 1
            count = self.evaluations
        report("fit", count, 0.5 * float(residuals @ residuals))  # the least-squares cost
        return residuals

    def jac(self, x):
        return np.asarray(_jacobian_jit(jnp.asarray(x), *self.args, **self.static))

    def log_prediction(self, x) -> np.ndarray:
        """Predicted log losses at every measurement, held out (weight 0) or not."""
        lr, reset, lanes, steps, target, weight, *rest = self.args
        log_ratio = _residuals_jit(
            jnp.asarray(x), lr, reset, lanes, steps, target, jnp.ones_like(weight), *rest, **self.static
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
    box = {**_BOUNDS, "loss_offset": (layout.offset_floor, _BOUNDS["loss_offset"][1])}
    lo, hi = zip(*(box[name] for name in layout.coordinates), strict=True)
    return np.array(lo), np.array(hi)


def _starts(runs: Sequence[PilotRun], data: _Data, layout: _Layout) -> list[np.ndarray]:
    first = float(np.mean([r.losses[0] for r in runs]))
    offset = max(0.5, layout.offset_floor + 0.05)  # inside the box, clear of its floor
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
