"""The driver of ``schedopt design``: :func:`design` solves a problem in the form asked for and tunes
the baselines after the same fixed prefix."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from schedopt.design._prefix import Warmup, fixed_prefix, problem_after_warmup
from schedopt.design._record import Design
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solvers import solve
from schedopt.theory import estimate_exponents, phase

if TYPE_CHECKING:
    from schedopt.calibration.form import FormChoice

__all__ = ["FORMS", "design"]

FORMS = ("auto", "free", "plateau-anneal")
"""Shapes a design may take (:func:`design`'s ``form``)."""


def design(
    problem: Problem,
    *,
    solver: str = "jax",
    baselines: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    warmup: int = 0,
    warmup_shape: str = "linear",
    form: str = "auto",
    peak_horizon: int | None = None,
    anneal: str = "auto",
    plateau_tolerance: float | None = None,
) -> Design:
    """Solve ``problem`` and tune the baselines; never raises on non-convergence (see status).

    Args:
        baselines: names of baseline families to tune (default: all); ``()`` for none.
        progress: called with a one-line message as each stage starts and ends.
        warmup: steps of a fixed warmup ramp at the start of the horizon (0: none). The
            solver optimises the steps after it, and the baselines are tuned after the
            same ramp, so every schedule compared shares it (:func:`problem_after_warmup`).
        warmup_shape: ``linear`` or ``cosine``.
        peak_horizon: with the plateau-anneal form, the horizon at which the plateau's
            height is chosen (a fitted spec's own horizon: its longest pilot), then carried
            to the horizon by the phase rule (:func:`schedopt.calibration.form.plateau_anneal`).
        form: ``free`` (any schedule the control grid allows), ``plateau-anneal``
            (:mod:`schedopt.calibration.form`: a constant plateau, then an anneal the
            model shapes), or ``auto``: plateau-anneal for a spec fitted to a real
            network (it has a ``[network]`` map), free otherwise.
        anneal: with the plateau-anneal form, ``model`` (solved), ``1-sqrt`` (WSD's
            cooldown from the plateau the model chooses) or ``auto`` (1-sqrt for a fitted
            network, model otherwise; :mod:`schedopt.calibration.form`).
        plateau_tolerance: with a 1-sqrt anneal, the relative difference of final losses below
            which the model does not rank plateau levels (``None``: the default,
            :data:`schedopt.calibration.form.PLATEAU_TOLERANCE`; :func:`~schedopt.calibration.form.sqrt_plateau`).
    """
    from schedopt.baselines import tune_baselines

    form = _resolve_form(problem, form, anneal)
    if plateau_tolerance is not None:  # checked before any work, whatever the form
        from schedopt.calibration.form import check_plateau_tolerance

        check_plateau_tolerance(plateau_tolerance)
    ramp = None
    if warmup:
        problem, ramp = problem_after_warmup(problem, warmup, warmup_shape)
    say = progress or (lambda message: None)
    start = time.perf_counter()
    say(f"solving with {solver} (T = {problem.horizon}, N = {problem.model.n_modes}) ...")
    choice = None
    if form == "plateau-anneal":
        problem, ramp, choice = _plateau_anneal(
            problem,
            ramp,
            solver=solver,
            options=options,
            peak_horizon=peak_horizon,
            anneal=anneal,
            warmup=warmup,
            warmup_shape=warmup_shape,
            plateau_tolerance=plateau_tolerance,
        )
        solution = choice.solution
        say(
            f"plateau-anneal form: {choice.anneal} anneal over the last {choice.anneal_fraction:.0%} of the steps"
        )
        if choice.prefix is not None:  # a pinned plateau: a fixed prefix, like the warmup ramp
            ramp = fixed_prefix(problem, ramp, choice.prefix)
    else:
        solution = solve(problem, solver=solver, throw=False, options=options)
    say(f"solved: {solution.status} after {solution.iterations} iterations, {solution.wall_time:.1f} s")
    tuned = tune_baselines(problem, names=baselines, progress=progress) if baselines != () else {}
    if tuned:
        say(f"done in {time.perf_counter() - start:.1f} s")
    full = problem if ramp is None else ramp.problem
    return Design(
        solution=solution,
        baselines=tuned,
        phase=phase(full.model),
        exponents=estimate_exponents(full.model),
        warmup=ramp,
        form=choice.to_dict() if choice is not None else {"form": "free"},
    )


def _resolve_form(problem: Problem, form: str, anneal: str) -> str:
    """``form`` checked and ``auto`` resolved (plateau-anneal for a fitted spec); ``anneal`` checked against it."""
    if form not in FORMS:
        raise ProblemError(f"`--form` must be one of {', '.join(FORMS)}, got {form!r}", field="form")
    if form == "auto":
        form = "plateau-anneal" if problem.network is not None else "free"
    from schedopt.calibration.form import check_anneal

    if check_anneal(anneal) not in ("auto", "model") and form != "plateau-anneal":
        raise ProblemError(
            f"`--anneal {anneal}` needs the plateau-anneal form, got --form {form}", field="anneal"
        )
    return form


def _plateau_anneal(
    problem: Problem,
    ramp: Warmup | None,
    *,
    warmup: int,
    warmup_shape: str,
    **kwargs: Any,
) -> tuple[Problem, Warmup | None, FormChoice]:
    """The plateau-anneal form's choice (:func:`_one_plateau_anneal`), hedged over the irreducible loss.

    A fitted spec whose offset sat on its floor carries the pilots' refit with the offset free
    (``[network.free_offset]``; :func:`schedopt.calibration.fit.fit_pilots`). With a 1-sqrt anneal the
    refit's problem is designed the same way (its own warmup ramp, the same cap in network units), and the
    larger of the two plateaus, in the network's units, is the design's: the floored fit's model then
    shapes nothing else, and predicts the design's loss as before. ``offset_hedge`` in the choice's
    record gives both plateaus and which was taken.
    """
    from schedopt.calibration._problem import free_offset_problem

    first = _one_plateau_anneal(problem, ramp, warmup=warmup, warmup_shape=warmup_shape, **kwargs)
    full = problem if ramp is None else ramp.problem
    free = free_offset_problem(full)
    if free is None or first[2].anneal != "1-sqrt":
        return first
    free_ramp = None
    if warmup:
        free, free_ramp = problem_after_warmup(free, warmup, warmup_shape)
    free_problem, _, free_choice = _one_plateau_anneal(
        free, free_ramp, warmup=warmup, warmup_shape=warmup_shape, **kwargs
    )
    floored = float(first[0].network.network_learning_rate(first[2].plateau))
    refit = float(free_problem.network.network_learning_rate(free_choice.plateau))
    hedge = {"floored_plateau": floored, "free_plateau": refit, "taken": "floored"}
    if refit <= floored * (1 + 1e-9):
        return first[0], first[1], dataclasses.replace(first[2], offset_hedge=hedge)
    # the refit's plateau, in the floored model's units: at most its cap (the two share the network's)
    level = min(float(full.network.model_learning_rate(refit)), full.learning_rate.max)
    lowered, lowered_ramp = full, None
    if warmup:  # the ramp must end at the plateau: the cap is lowered to it, as for the floored fit's own
        lowered, lowered_ramp = problem_after_warmup(
            full.with_control("learning_rate", max=level), warmup, warmup_shape
        )
    from schedopt.calibration.form import plateau_anneal

    choice = plateau_anneal(lowered, **_form_options(lowered_ramp, plateau_level=level, **kwargs))
    hedge["taken"] = "free"
    return lowered, lowered_ramp, dataclasses.replace(choice, notes=free_choice.notes, offset_hedge=hedge)


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
