"""The driver of ``schedopt design``: :func:`design` solves a problem in the form asked for and tunes
the baselines after the same fixed prefix."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from schedopt.design._plateau import plateau_anneal_after_warmup
from schedopt.design._prefix import fixed_prefix, problem_after_warmup
from schedopt.design._record import Design
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solvers import solve
from schedopt.theory import estimate_exponents, phase

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
        problem, ramp, choice = plateau_anneal_after_warmup(
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
