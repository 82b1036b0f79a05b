"""The plateau-anneal form after a warmup ramp, hedged over the irreducible loss the pilots do not identify.

:func:`plateau_anneal_after_warmup` is what :func:`schedopt.design.design` calls for the plateau-anneal form: the
choice of :func:`schedopt.calibration.form.plateau_anneal` made after the warmup ramp (which must end at the plateau),
for the fitted model and, where the spec carries one, for its refit with the offset free; the larger plateau wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from schedopt.design._prefix import Warmup, problem_after_warmup
from schedopt.problem import Problem

if TYPE_CHECKING:
    from schedopt.calibration.form import FormChoice

__all__ = ["plateau_anneal_after_warmup"]


def plateau_anneal_after_warmup(
    problem: Problem,
    ramp: Warmup | None,
    *,
    warmup: int,
    warmup_shape: str,
    **kwargs: Any,
) -> tuple[Problem, Warmup | None, FormChoice]:
    """The plateau-anneal form's choice (:func:`_one_plateau_anneal`), hedged over the irreducible loss.

    A fitted spec whose pilots did not identify the offset carries their refit with the offset free
    (``[network.free_offset]``; :func:`schedopt.calibration.fit.fit_pilots`). With a 1-sqrt anneal the
    refit's problem is designed the same way (its own warmup ramp, the same cap in network units), and the
    larger of the two plateaus, in the network's units, is the design's: the floored fit's model then
    shapes nothing else, and predicts the design's loss as before. ``offset_hedge`` in the choice's
    record gives both plateaus and which was taken.
    """
    from schedopt.calibration._problem import free_offset_problem

    solved, solved_ramp, choice = _one_plateau_anneal(
        problem, ramp, warmup=warmup, warmup_shape=warmup_shape, **kwargs
    )
    full = problem if ramp is None else ramp.problem
    free = free_offset_problem(full)
    if free is None or choice.anneal != "1-sqrt":
        return solved, solved_ramp, choice
    free_ramp = None
    if warmup:
        free, free_ramp = problem_after_warmup(free, warmup, warmup_shape)
    free_problem, _, free_choice = _one_plateau_anneal(
        free, free_ramp, warmup=warmup, warmup_shape=warmup_shape, **kwargs
    )
    floored = float(solved.network.network_learning_rate(choice.plateau))
    refit = float(free_problem.network.network_learning_rate(free_choice.plateau))
    hedge = {"floored_plateau": floored, "free_plateau": refit, "taken": "floored"}
    if refit <= floored * (1 + 1e-9):
        return solved, solved_ramp, dataclasses.replace(choice, offset_hedge=hedge)
    # the refit's plateau, in the floored model's units: at most its cap (the two share the network's)
    level = min(float(full.network.model_learning_rate(refit)), full.learning_rate.max)
    lowered, lowered_ramp = full, None
    if warmup:  # the ramp must end at the plateau: the cap is lowered to it, as for the floored fit's own
        lowered, lowered_ramp = problem_after_warmup(
            full.with_control("learning_rate", max=level), warmup, warmup_shape
        )
    from schedopt.calibration.form import plateau_anneal

    hedged = plateau_anneal(lowered, **_form_options(lowered_ramp, plateau_level=level, **kwargs))
    hedge["taken"] = "free"
    return lowered, lowered_ramp, dataclasses.replace(hedged, notes=free_choice.notes, offset_hedge=hedge)


def _form_options(
    ramp: Warmup | None,
    *,
    solver: str,
    options: Mapping[str, Any] | None,
    peak_horizon: int | None,
    anneal: str,
    plateau_tolerance: float | None = None,
    plateau_level: float | None = None,
) -> dict[str, Any]:
    """:func:`~schedopt.calibration.form.plateau_anneal`'s options after ``ramp`` (its steps count as elapsed, and
    the plateau's horizon is shortened by them)."""
    shift = 0 if ramp is None else ramp.steps
    return {
        "solver": solver,
        "options": options,
        "peak_horizon": None if peak_horizon is None else max(int(peak_horizon) - shift, 1),
        "anneal": anneal,
        "elapsed": shift,
        "plateau_tolerance": plateau_tolerance,
        "plateau_level": plateau_level,
    }


def _one_plateau_anneal(
    problem: Problem,
    ramp: Warmup | None,
    *,
    solver: str,
    options: Mapping[str, Any] | None,
    peak_horizon: int | None,
    anneal: str,
    warmup: int,
    warmup_shape: str,
    plateau_tolerance: float | None = None,
) -> tuple[Problem, Warmup | None, FormChoice]:
    """The plateau-anneal form's choice for one fitted model, with the problem and warmup ramp it was solved after.

    A warmup ramp goes to the cap and must end at the plateau: a plateau below the cap lowers
    the cap to it, and the ramp and the choice are made again (keeping the first choice's notes,
    which are of the plateau against the cap as given).
    """
    from schedopt.calibration.form import plateau_anneal

    kwargs = _form_options(
        ramp,
        solver=solver,
        options=options,
        peak_horizon=peak_horizon,
        anneal=anneal,
        plateau_tolerance=plateau_tolerance,
    )
    choice = plateau_anneal(problem, **kwargs)
    if ramp is not None and choice.plateau < problem.learning_rate.max * (1 - 1e-9):
        notes = choice.notes  # of the plateau against the cap as given
        lowered = ramp.problem.with_control("learning_rate", max=choice.plateau)
        problem, ramp = problem_after_warmup(lowered, warmup, warmup_shape)
        if choice.anneal == "1-sqrt":  # keep the plateau chosen (a tolerance would move it under the new cap)
            kwargs["plateau_level"] = choice.plateau
        choice = dataclasses.replace(plateau_anneal(problem, **kwargs), notes=notes)
    return problem, ramp, choice
