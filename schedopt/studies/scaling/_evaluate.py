"""Evaluating scan points: optimal schedules by :func:`schedopt.design_many`, baselines as backend tasks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from schedopt.errors import ProblemError
from schedopt.problem import Problem


def _baseline_task(task: tuple) -> dict[str, Any]:
    """Tune one baseline at one point (a backend task)."""
    from schedopt.baselines import tune_baseline

    problem, kind = task
    start = time.perf_counter()
    tuned = tune_baseline(problem, kind)
    return {
        "loss": float(tuned.final_loss),
        "status": tuned.status,
        "params": dict(tuned.params),
        "at_bounds": list(tuned.at_bounds),
        "wall_time": time.perf_counter() - start,
    }


def _evaluate_many(
    jobs: Sequence[tuple[Problem, Sequence[str]]], *, solver: str, options, backend, initial=None
) -> list[dict[str, Any]]:
    """Results of every ``(problem, kinds)`` job: optimal schedules by :func:`schedopt.design_many`
    (``initial[i]``: job ``i``'s start, ``None`` for the solver's own), baselines as one backend
    task each; both spread over the backend's workers."""
    from schedopt.batch import InvalidDesign, design_many

    optimal = [i for i, (_, kinds) in enumerate(jobs) if "optimal" in kinds]
    starts = None
    if initial is not None and any(initial[i] is not None for i in optimal):
        starts = [initial[i] for i in optimal]
    solved = design_many(
        [jobs[i][0] for i in optimal], solver, options=options, backend=backend, initial=starts
    )
    tuning = [(i, kind) for i, (_, kinds) in enumerate(jobs) for kind in kinds if kind != "optimal"]
    tuned = backend.map(_baseline_task, [(jobs[i][0], kind) for i, kind in tuning])
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for i, sol in zip(optimal, solved, strict=True):
        if isinstance(sol, InvalidDesign):
            raise ProblemError(sol.message, field=sol.field)
        found[i, "optimal"] = {
            "loss": float(sol.final_loss),
            "status": sol.status,
            "iterations": int(sol.iterations),
            "solution": sol,
            "wall_time": sol.wall_time,
        }
    for (i, kind), res in zip(tuning, tuned, strict=True):
        found[i, kind] = res
    return [{kind: found[i, kind] for kind in kinds} for i, (_, kinds) in enumerate(jobs)]
