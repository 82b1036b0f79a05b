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
  the count to whole modes. Where they make the fitted loss at a constant pilot
  rate rise, which a network's does not, the fit is done again without them
  (:mod:`schedopt.calibration._rising`).

**The offset's floor** (``offset_floor``, default :data:`OFFSET_FLOOR`):
:math:`\ell_\infty \ge` ``offset_floor`` times the smallest fitted loss. Pilots
shorter than the run they plan for do not identify the irreducible loss: on the
five real tasks the fit error moved by less than 0.1 point between 0 and half the
smallest loss, and with the offset free four of the five fits took 0, a pure power
law that predicted every long run too low (``docs/calibration.md``). The floor is a
prior, not a measurement: when the offset sits on it, the fit says so in its notes; and when the pilots do not
identify the offset (on its floor, or a standard error of half the smallest loss or more: the fit may sit
anywhere along a valley the floor cuts), the fit is made again with the offset free. That refit is written with the fitted spec (``[network.free_offset]``,
:class:`~schedopt.problem.FreeOffsetFit`) and ``schedopt design`` takes the larger of the two fits'
plateaus: the floor is a prior that moves the plateau the design chooses (on the seventeenth and eighteenth
real tasks it put it 0.5x and 0.1x below the best peak), and priced on the tasks other than the one this
hedge was formed on, the larger of the two plateaus lost 0.27 nats less in sum than the floored fit's and no
task more than 0.02 more (``benchmarks/offset_hedge.py``). A refit that finds no response of the loss to the
learning rate cannot rank plateaus and is not recorded.

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
in the fitted coordinates, mapped to the parameters by the delta method. A
coordinate the pilots leave undetermined (``J`` singular with unit columns: the
null modes of a fit without noise have no effect) is held at its value: it, and
every parameter that depends on it, gets an infinite standard error, and the
others' are conditional on it. Loss curves are serially correlated, so these are
lower bounds; they serve to flag what the pilots cannot tell apart. A parameter is *identified* when its
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

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

# Names marked F401 are not used here: they stay importable from this module, as before the split
# into _checks, _holdout and _problem (schedopt.plots imports warmup_steps from here).
from schedopt._jax import float64
from schedopt.calibration._checks import (
    CONTRADICTION,  # noqa: F401
    SPIKE_RATIO,  # noqa: F401
    _before_spike,
    _bracket_above,
    _final_loss,
    _pilot_notes,
    _prefix_twins,
    _scatter,
    _spike,  # noqa: F401
    _top_pilot_ahead,
)
from schedopt.calibration._holdout import (
    _held_out,  # noqa: F401
    _holdout,
)
from schedopt.calibration._model import (
    FIT_PARAMETERS,
    MIN_LEARNING_RATE_EXPONENT,
    OFFSET_FLOOR,
    TERMS,
    _bounds,  # noqa: F401
    _early,
    _Layout,
    _run_index,
    flat_rate_response,
    warmup_steps,  # noqa: F401
)
from schedopt.calibration._problem import _problem, learning_rate_cap, predict_network_loss
from schedopt.calibration._rising import RISE_WINDOW, rising_loss
from schedopt.calibration._solve import (
    _IDENTIFIED_RATIO,  # noqa: F401
    _check_identifiable,
    _identification_notes,
    _identified,
    _phase_z,
    _relative_rms,
    _Solve,  # noqa: F401
    _solve,
    _uncertainties,
)
from schedopt.calibration.pilots import PilotRun
from schedopt.errors import FitError
from schedopt.problem import FreeOffsetFit, Problem
from schedopt.status import Status

__all__ = [
    "FIT_PARAMETERS",
    "OFFSET_FLOOR",
    "FitResult",
    "fit_pilots",
    "learning_rate_cap",
    "predict_network_loss",
]


#: Power-law modes of a fitted model by default: what every real-task measurement used
#: (benchmarks/realtasks.py); 1000 modes fitted the prose pilots to the same 0.45 % RMS at 5x the
#: CPU (200 against 37 CPU-s).
FIT_MODES = 200


@dataclass(frozen=True, eq=False)
class FitResult:
    """The fitted model, its uncertainties, fit and holdout errors, and the problem it defines.

    Attributes:
        parameters: fitted values by name (:data:`FIT_PARAMETERS`).
        std_errors: Gauss–Newton standard errors by name (``inf`` if unidentifiable).
        identified: whether each parameter is identified (see the module doc).
        at_bound: parameters that ended on a bound of the search box.
        fit_error: RMS relative error of the fitted curves, overall and by run, and each pilot's own scatter
            around a smooth curve (``scatter_by_run``: :func:`~schedopt.calibration._checks._scatter`, ``None``
            with too few values), fractions. A fit error near the scatter is the noise of the log, not a misfit.
        holdout: ``{"kind", "held_out", "rms_error", "by_run"}`` or ``None``.
        phase: ``easy`` (a > b) or ``hard``; ``phase_z``: (a − b) / its standard error
            (``nan`` when the fit has no standard errors: a singular Jacobian).
        problem: the fitted problem (a ``[network]`` map included) at the pilots' horizon.
        runs: the pilot files; ``n_points``: measurements fitted; ``n_modes``: model size.
        notes: warnings a user must see (unidentified parameters, bounds hit, ...).
        info: what the fit did that is not a warning (a seed twin compared, not fitted).
        free_offset: where the pilots did not identify the offset, the refit with the offset free: its ``parameters``
            and ``rms_error`` (``None``: no refit, or one that found no learning-rate response); the
            problem's ``network.free_offset`` holds the same model.
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
    info: tuple[str, ...] = field(default_factory=tuple)
    learning_rate_cap: Mapping[str, Any] = field(default_factory=dict)
    terms: tuple[str, ...] = ()
    min_step: int | str = 0
    message: str = ""
    offset_floor: float = 0.0
    free_offset: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.free_offset is not None:  # read-only all the way down, as the other mappings
            frozen = {
                k: MappingProxyType(dict(v)) if isinstance(v, Mapping) else v
                for k, v in self.free_offset.items()
            }
            object.__setattr__(self, "free_offset", MappingProxyType(frozen))
        for name in ("parameters", "std_errors", "identified", "fit_error", "learning_rate_cap"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def phase_text(self) -> str:
        """The phase and how sure the fit is of it, as the report and the fitted spec say it."""
        if math.isnan(self.phase_z):
            return f"{self.phase} (a - b has no standard error: the pilots do not determine it)"
        return f"{self.phase} (a - b = {self.phase_z:.2g} standard errors)"

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
            "offset_floor": self.offset_floor,
            "free_offset": None if self.free_offset is None else _plain(self.free_offset),
            "horizon": self.problem.horizon,
            "notes": list(self.notes),
            "info": list(self.info),
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
        lines.append(
            f"#   terms: {', '.join(self.terms) or 'none'}; fitted from step: {self.min_step}; "
            f"offset floor: {self.offset_floor:g} x the smallest loss"
        )
        lines.append(f"#   fit error (RMS relative): {100 * self.fit_error['rms_error']:.2f}%")
        if self.holdout is not None:
            lines.append(
                f"#   holdout ({self.holdout['kind']}: {self.holdout['held_out']}): "
                f"{100 * self.holdout['rms_error']:.2f}%"
            )
        lines.append(f"#   phase: {self.phase_text}")
        if self.free_offset is not None:
            lines.append(
                f"#   refitted with the offset free ([network.free_offset]): loss_offset = "
                f"{self.free_offset['parameters']['loss_offset']:.6g}, fit error "
                f"{100 * self.free_offset['rms_error']:.2f}%; `schedopt design` takes the larger of the two "
                "fits' plateaus"
            )
        lines += [f"#   note: {n}" for n in self.notes]
        lines += [f"#   info: {n}" for n in self.info]
        lines.append(
            f"# The learning-rate cap ([controls.learning_rate] max, model units) is network learning rate "
            f"{self.learning_rate_cap['network']:.6g}: {self.learning_rate_cap['rule']}."
        )
        # a file name may hold a newline or other control characters: escape them, or the comment ends early
        safe = ["".join(c if c.isprintable() else repr(c)[1:-1] for c in line) for line in lines]
        return "\n".join(safe) + "\n" + dump_problem(self.problem)


def _plain(value: Any) -> Any:
    """A mapping (nested mapping proxies included) as plain dicts, for JSON."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


MAX_OFFSET_FLOOR = 0.95
"""Largest ``offset_floor``: the offset's box ends at 0.999 of the smallest loss."""


def _check_arguments(runs, n_modes, learning_rate_scale, holdout, terms, min_step, offset_floor) -> None:
    """One :class:`FitError` naming the option for each bad argument of :func:`fit_pilots`."""
    if not runs:
        raise FitError("no pilot runs given")
    columns = {r.loss_column for r in runs}
    if len(columns) > 1:  # a train loss and a validation loss differ by more than a fit's error
        first = runs[0]
        other = next(r for r in runs if r.loss_column != first.loss_column)
        raise FitError(
            f"the pilots' losses come from different columns ({first.name}: {first.loss_column}; "
            f"{other.name}: {other.loss_column}): fit one kind of loss (read_pilots reads one column from all)"
        )
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
    if (
        isinstance(offset_floor, bool)
        or not isinstance(offset_floor, int | float)
        or not 0.0 <= offset_floor <= MAX_OFFSET_FLOOR
    ):
        raise FitError(f"--offset-floor: must be a number in [0, {MAX_OFFSET_FLOOR}], got {offset_floor!r}")


def _longest_pilot_rate(runs: Sequence[PilotRun], cap: float) -> tuple[float, str]:
    """The peak rate of the longest pilot at most ``cap`` (the lowest such rate on a tie): the one rate the
    pilots show training over the longest stretch, where the model's curve was fitted longest."""
    eligible = [r for r in runs if r.peak_learning_rate <= cap * (1 + 1e-9)] or list(runs)
    longest = max(r.horizon for r in eligible)
    rate = min(r.peak_learning_rate for r in eligible if r.horizon == longest)
    return rate, "the longest pilot's learning rate: the fit found no learning-rate response to choose by"


def _ahead(runs: Sequence[PilotRun], network_cap: float) -> float:
    """The top pilot's rate where it is still well ahead (:func:`_checks._top_pilot_ahead`) and no rule lowered
    the cap below it (a spike, seeds that disagree, a top pilot behind a longer one, ``--lr-cap``: their cap
    stands); else 0."""
    lead = _top_pilot_ahead(runs)
    if lead is None or network_cap < lead[0].peak_learning_rate * (1 - 1e-9):
        return 0.0
    return float(lead[0].peak_learning_rate)


def _scatter_by_run(runs) -> dict[str, float | None]:
    """Each fitted pilot's relative scatter around a smooth curve (:func:`_checks._scatter`)."""
    out = {}
    for run in runs:
        scatter = _scatter(run)
        out[run.name] = None if scatter is None else scatter[0]
    return out


@float64
def fit_pilots(
    runs: Sequence[PilotRun],
    *,
    n_modes: int = FIT_MODES,
    holdout: str = "auto",
    learning_rate_scale: float | None = None,
    name: str = "fitted",
    lr_cap: str | float = "max",
    terms: Sequence[str] = TERMS,
    min_step: int | str = "auto",
    offset_floor: float = OFFSET_FLOOR,
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
        offset_floor: lower bound of the irreducible ``loss_offset``, a fraction of the
            smallest fitted loss (:data:`OFFSET_FLOOR`; 0 leaves it free).

    Raises:
        FitError: no pilots, unidentifiable learning-rate scale, bad holdout, unknown term.
    """
    runs = list(runs)
    _check_arguments(runs, n_modes, learning_rate_scale, holdout, terms, min_step, offset_floor)
    checked, twins = runs, _prefix_twins(runs)  # twins are compared (notes, cap), not fitted
    runs = [r for r in runs if all(r is not twin for twin, _ in twins)]
    bracket = _bracket_above(runs)  # a pilot that diverged brackets too
    cut = [(r.name, _before_spike(r, min_step)) for r in runs]  # a spiked pilot up to its spike, or None
    unfitted = [name for name, fitted in cut if fitted is None]
    runs = [fitted for _, fitted in cut if fitted is not None]
    if not runs:
        raise FitError(
            "every pilot's loss spiked before it had 3 loss points past --min-step: nothing to fit"
        )
    _check_identifiable(runs, learning_rate_scale)
    fixed_kappa = learning_rate_scale
    layout = _Layout(
        n_modes=n_modes,
        fixed_kappa=fixed_kappa is not None,
        exponent="exponent" in terms and fixed_kappa is None,
        null_modes="null_modes" in terms,
        offset_floor=float(offset_floor),
    )
    network_cap, cap_rule = learning_rate_cap(checked, lr_cap)
    max_lr = max(r.peak_learning_rate for r in runs)
    early = _early(runs, min_step)
    counts = np.bincount(_run_index(runs)[~early], minlength=len(runs))
    if np.any(counts < 3):
        short = runs[int(np.argmin(counts))]
        raise FitError(
            f"{short.name}: fewer than 3 loss points after --min-step ({int(counts.min())}); "
            "log the loss more often or lower --min-step"
        )
    reference = 1.0 if layout.fixed_kappa else max_lr
    solve = _solve(runs, layout, fixed_kappa, max_lr, held_out=early)
    values, std, cov = _uncertainties(solve, layout.fixed)
    # a loss rising at a constant pilot rate (_rising): refit without the null modes, or say so
    rising = still = rising_loss(
        _problem(values, runs, n_modes, name, network_cap, reference), runs, network_cap
    )
    if rising is not None and layout.null_modes:
        plain = dataclasses.replace(layout, null_modes=False)
        refit = _solve(runs, plain, fixed_kappa, max_lr, held_out=early)
        refit_values, refit_std, refit_cov = _uncertainties(refit, plain.fixed)
        problem = _problem(refit_values, runs, n_modes, name, network_cap, reference)
        still = rising_loss(problem, runs, network_cap)
        if still is None or still[1] < rising[1]:
            layout, solve, values, std, cov = plain, refit, refit_values, refit_std, refit_cov
        else:  # the refit rises as much: keep the null modes
            still = rising
    dropped = rising if rising is not still else None
    fixed = layout.fixed
    rms, by_run = _relative_rms(solve, runs, ~early)
    identified, at_bound = _identified(solve, layout, values, std)
    info = [
        f"{twin.name}: the start of {pilot.name}'s schedule, compared with it and not fitted"
        for twin, pilot in twins
    ]
    info += [
        f"{name}: too few loss points before its spike to fit; compared, not fitted" for name in unfitted
    ]
    if bracket is not None:
        top, lower = bracket
        info.append(
            f"{top.name} (peak {top.peak_learning_rate:g}) ended at {_final_loss(top):.4g}, no lower than "
            f"{lower.name} (peak {lower.peak_learning_rate:g}, the same schedule) at {_final_loss(lower):.4g}: "
            "the best peak does not rise as the horizon grows, so the pilots bracket it from above, and a pilot above "
            f"{top.peak_learning_rate:g} would not tell more"
        )
    notes = [
        *_pilot_notes(checked),
        *_identification_notes(identified, at_bound, fixed),
    ]
    if dropped is not None:
        rate, rise, lowest, end = dropped
        notes.append(
            f"fitted with the null modes, the loss at a constant {rate:g} turned upward after update {lowest} "
            f"({rise:.1%} higher by update {end}, {RISE_WINDOW}x the longest pilot), which a network at a "
            "stable constant rate does not do: the null modes were dropped and the model refitted without them"
        )
    if still is not None:
        rate, rise, lowest, end = still
        notes.append(
            f"the fitted loss at a constant {rate:g} turns upward after update {lowest} ({rise:.1%} higher by "
            f"update {end}): if the pilots' own losses rise at that rate, training is unstable there; otherwise "
            "the model's predictions past the pilots are unreliable at high rates"
        )
    exponent = float(values[FIT_PARAMETERS.index("learning_rate_exponent")])
    if layout.exponent and flat_rate_response(exponent) and lr_cap == "max":
        network_cap, cap_rule = _longest_pilot_rate(runs, network_cap)
        notes.append(
            "the pilots show no response of the loss to the learning rate that the model can fit (its exponent "
            f"sits at the lower bound, {MIN_LEARNING_RATE_EXPONENT:g}; pilots that all end on one loss plateau do "
            f"this), so it cannot rank plateaus: the cap is {network_cap:g} ({cap_rule}), and `design` puts the "
            "plateau there; longer short pilots would show the response"
        )
    if values[FIT_PARAMETERS.index("noise_std")] < 1e-3:
        notes.append(
            "the pilots show no gradient noise the model can identify (noise_std near 0), "
            "so it sees little cost in a larger learning rate: the design's plateau is likely to sit at "
            f"the cap, {network_cap:g} ({cap_rule}), wherever the best peak is; if it does, read the "
            "design as WSD at that rate (benchmarks/README.md, real training: the fifth task)"
        )
    offset_fraction = float(solve.x[layout.coordinates.index("loss_offset")])
    if offset_floor > 0 and "loss_offset" in at_bound and offset_fraction < offset_floor + 0.01:
        notes.append(
            f"loss_offset sits at its floor, {offset_floor:g} x the smallest fitted loss: the pilots do not "
            "identify the irreducible loss, and the predictions past the pilots' horizon lean on that floor "
            "(--offset-floor; docs/calibration.md)"
        )
    refit = free_offset = None
    if offset_floor > 0 and not identified["loss_offset"]:  # the floor is a prior the pilots do not overrule
        refit = _free_offset_refit(
            checked,
            n_modes=n_modes,
            learning_rate_scale=learning_rate_scale,
            name=name,
            lr_cap=lr_cap,
            terms=terms,
            min_step=min_step,
        )
        if refit is None:
            info.append(
                "refitted with the offset free, the model found no response of the loss to the learning rate: "
                "the refit cannot rank plateaus and the design takes the floored fit's alone"
            )
        else:
            free_offset = {
                "parameters": dict(refit.parameters),
                "rms_error": float(refit.fit_error["rms_error"]),
            }
            info.append(
                f"refitted with the offset free (loss_offset {refit.parameters['loss_offset']:.4g}, fit "
                f"error {100 * free_offset['rms_error']:.2f}%): `schedopt design` takes the larger of the two "
                "fits' plateaus, since the pilots do not tell which offset is right"
            )
    holdout_report = _holdout(runs, holdout, layout, fixed_kappa, max_lr, early)
    bracketed_above = bracket[0].peak_learning_rate if bracket is not None else 0.0
    problem = _problem(
        values, runs, n_modes, name, network_cap, reference, bracketed_above, _ahead(checked, network_cap)
    )
    if refit is not None:
        problem = problem.replace(
            network=dataclasses.replace(problem.network, free_offset=_free_offset_record(refit))
        )
    return FitResult(
        parameters={n: float(v) for n, v in zip(FIT_PARAMETERS, values, strict=True)},
        std_errors={n: float(s) for n, s in zip(FIT_PARAMETERS, std, strict=True)},
        identified=identified,
        at_bound=at_bound,
        fit_error={"rms_error": rms, "by_run": by_run, "scatter_by_run": _scatter_by_run(runs)},
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
        info=tuple(info),
        learning_rate_cap={
            "network": float(problem.network.network_learning_rate(problem.learning_rate.max)),
            "model": problem.learning_rate.max,
            "rule": cap_rule,
        },
        terms=tuple(t for t in TERMS if t in terms and (t != "null_modes" or layout.null_modes)),
        min_step=min_step,
        offset_floor=float(offset_floor),
        free_offset=free_offset,
    )


#: the refit's parameters a fitted spec records (:class:`~schedopt.problem.FreeOffsetFit`)
FREE_OFFSET_PARAMETERS = tuple(f.name for f in dataclasses.fields(FreeOffsetFit))


def _free_offset_refit(runs, **options) -> FitResult | None:
    """The pilots fitted again with the offset free, or ``None`` where that fit finds no response of the loss to
    the learning rate (it then cannot rank plateaus, and its cap would be another)."""
    refit = fit_pilots(runs, holdout="none", offset_floor=0.0, **options)
    if "exponent" in refit.terms and flat_rate_response(refit.parameters["learning_rate_exponent"]):
        return None
    return refit


def _free_offset_record(refit: FitResult) -> FreeOffsetFit:
    """The spec's record of a refit: its parameters, and its null modes as its own problem counts them (whole)."""
    values = {k: refit.parameters[k] for k in FREE_OFFSET_PARAMETERS if k != "null_modes"}
    return FreeOffsetFit(**values, null_modes=refit.problem.model.null_modes)
