"""What a fit defines: the design's learning-rate cap (:func:`learning_rate_cap`), the fitted problem and
the network loss it predicts (:func:`predict_network_loss`).

:func:`_problem` turns fitted values into a :class:`~schedopt.problem.Problem` with a ``[network]``
map, its learning rate capped at the network cap (in model units) and below the stability threshold.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from schedopt._jax import float64
from schedopt.calibration._checks import _spike, _top_behind_longer, _unstable_rate
from schedopt.calibration._model import FIT_PARAMETERS, warmup_steps
from schedopt.calibration.pilots import PilotRun, last_loss
from schedopt.dynamics.stability import stability_threshold
from schedopt.errors import FitError
from schedopt.problem import ControlSpec, Model, NetworkUnits, Problem, Training


def learning_rate_cap(runs: Sequence[PilotRun], rule: str | float = "max") -> tuple[float, str]:
    """The largest network learning rate a design may use, and how it was chosen.

    ``"max"`` (default): the largest pilot learning rate: the model is trusted up
    to every learning rate it was fitted on, and its own penalties (noise, the
    null modes) choose the peak below that (``fit_pilots`` lowers it to the longest
    pilot's rate when the fit finds no learning-rate response to choose by). A pilot
    whose loss spiked does not count; where two runs of one schedule disagree (seeds:
    training unstable there, :func:`~schedopt.calibration._checks._unstable_rate`), the cap
    is the geometric mean of that rate and the next lower pilot rate, if that is lower; where the top pilot ended,
    after its anneal, no lower than a longer pilot at a lower rate at the same step before its anneal, at most the
    geometric mean of the top rate and the next lower pilot rate (:func:`~schedopt.calibration._checks._top_behind_longer`). ``"best"``: the peak of the pilot with
    the lowest final loss (pilots of equal length only mean something here; the
    rule of the model without null modes, which had no penalty an anneal does not
    remove). A number: that cap, in the network's units.
    """
    if isinstance(rule, str):
        if rule == "max":
            stable = [r for r in runs if _spike(r) is None]
            if stable and len(stable) < len(runs):  # a pilot whose loss spiked is no evidence a rate is safe
                cap, why = (
                    max(r.peak_learning_rate for r in stable),
                    "largest learning rate of a pilot whose loss did not spike",
                )
            else:
                cap, why = max(r.peak_learning_rate for r in runs), "largest pilot learning rate"
            unstable = _unstable_rate(runs)
            if unstable is not None and unstable[2] < cap:
                rate, lower, cap = unstable
                why = (
                    f"geometric mean of {lower:g} and {rate:g}, where two runs of one schedule disagree "
                    "(training unstable there)"
                )
            behind = _top_behind_longer(runs)
            if behind is not None and behind[4] < cap:
                top, longer, _, _, cap = behind
                why = (
                    f"halfway in log rate from {top.peak_learning_rate:g} to the next lower pilot rate: {top.name} "
                    f"ended no lower than {longer.name} at the same step before its anneal"
                )
            return cap, why
        if rule == "best":
            best = min(runs, key=last_loss)
            return (
                best.peak_learning_rate,
                f"peak learning rate of the pilot with the lowest final loss ({best.name})",
            )
        raise FitError(f"--lr-cap: must be best, max or a positive number, got {rule!r}")
    if isinstance(rule, bool) or not isinstance(rule, int | float) or not math.isfinite(rule) or rule <= 0:
        raise FitError(f"--lr-cap: must be best, max or a positive number, got {rule!r}")
    return float(rule), "given (--lr-cap)"


def _fitted_model(q, n_modes: int) -> Model:
    """The power-law model of fitted values ``q`` (by name: ``a``, ``b``, ``noise_std``, ``null_modes``,
    ``null_eigenvalue``) with ``n_modes`` power-law modes; null modes rounded to whole ones (under a half: none)."""
    null_modes = round(q["null_modes"]) if q["null_modes"] >= 0.5 else 0
    return Model.powerlaw(
        q["a"],
        q["b"],
        n_modes,
        noise_std=q["noise_std"],
        initial_loss=1.0,
        null_modes=null_modes,
        null_eigenvalue=q["null_eigenvalue"] if null_modes else None,
    )


def _model_cap(model: Model, units: NetworkUnits, network_cap: float, batch_size: float = 1.0) -> float:
    """The design's cap in model units: the network cap through the map, kept below the stability threshold."""
    return min(float(units.model_learning_rate(network_cap)), 0.95 * stability_threshold(model, batch_size))


def _problem(
    values,
    runs,
    n_modes,
    name,
    network_cap: float,
    reference: float,
    bracketed_above: float = 0.0,
    top_pilot_ahead: float = 0.0,
) -> Problem:
    q = dict(zip(FIT_PARAMETERS, (float(v) for v in values), strict=True))
    model = _fitted_model(q, n_modes)
    units = NetworkUnits(
        learning_rate_scale=q["learning_rate_scale"],
        loss_scale=q["loss_scale"],
        loss_offset=q["loss_offset"],
        learning_rate_exponent=q["learning_rate_exponent"],
        learning_rate_reference=reference,
        pilot_warmup=max(warmup_steps(r) for r in runs),  # design's default --warmup
        pilot_horizon=max(r.horizon for r in runs),
        bracketed_above=bracketed_above,
        top_pilot_ahead=top_pilot_ahead,
    )
    horizon = units.pilot_horizon
    cap = _model_cap(model, units, network_cap)
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


def free_offset_problem(problem: Problem) -> Problem | None:
    """The problem of a fitted spec's refit with the irreducible loss free (``[network.free_offset]``), or ``None``.

    Everything but the model and its network map is ``problem``'s: horizon, controls, and the learning-rate
    cap in the network's units (the refit's own map gives it in model units, kept below its stability
    threshold as :func:`_problem` keeps a fit's).
    """
    units = problem.network
    if units is None or units.free_offset is None:
        return None
    refit = units.free_offset
    # the power-law modes are the fit's (its null ones are appended to them)
    model = _fitted_model(refit.to_dict(), problem.model.n_modes - problem.model.null_modes)
    free_units = dataclasses.replace(
        units,
        learning_rate_scale=refit.learning_rate_scale,
        loss_scale=refit.loss_scale,
        loss_offset=refit.loss_offset,
        learning_rate_exponent=refit.learning_rate_exponent,
        free_offset=None,
    )
    network_cap = float(units.network_learning_rate(problem.learning_rate.max))
    cap = _model_cap(model, free_units, network_cap, problem.training.batch_size)
    free = dataclasses.replace(problem, model=model, network=free_units)
    return free.with_control("learning_rate", max=cap)


@float64
def predict_network_loss(problem: Problem, learning_rate) -> np.ndarray:
    """The network loss curve ``(T + 1,)`` a fitted problem predicts for network learning rates."""
    if problem.network is None:
        raise FitError("the problem has no [network] map (it was not produced by `schedopt fit`)")
    from schedopt.dynamics.recursion import loss_curve

    eta = problem.network.model_learning_rate(np.asarray(learning_rate, dtype=np.float64))
    curve = loss_curve(problem.model, eta, batch_size=problem.training.batch_size).loss
    return problem.network.network_loss(np.asarray(curve))
