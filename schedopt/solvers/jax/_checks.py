"""After a ``jax`` solve: the ODE engine's recursion check, the full-spectrum polish, the budget tie-break."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from schedopt.dynamics.compression import (
    CompressedModes,
)
from schedopt.dynamics.recursion import final_loss
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers.jax._options import JaxOptions


def _ode_final_loss(
    problem: Problem,
    learning_rate: np.ndarray,
    kept: float,
    opts: JaxOptions,
    info,
    modes: CompressedModes | None = None,
) -> float:
    """Final loss of an ODE-engine schedule: the exact recursion's when ``T * N <= check_work``.

    ``kept``: the ODE's final loss of the kept modes (the full spectrum's). Beyond ``check_work``
    the recursion runs on the compressed spectrum ``modes`` when ``T * n`` is within it (its
    error against the full recursion is ~1e-12, :mod:`schedopt.dynamics.compression`).
    Records ``info["ode_final_loss"]`` and ``info["recursion_final_loss"]`` (``None`` and
    ``info["recursion_check"]`` saying why when the recursion was too long to run).
    """
    model = problem.model
    ode_loss = kept + model.residual if np.isfinite(kept) else np.inf
    info["ode_final_loss"] = float(ode_loss)
    work = float(problem.horizon) * model.n_modes
    if work <= opts.check_work:
        exact = float(final_loss(model, learning_rate, batch_size=problem.training.batch_size))
        where = "recursion"
    elif modes is not None and float(problem.horizon) * modes.n_modes <= opts.check_work:
        exact = float(final_loss(model, learning_rate, batch_size=problem.training.batch_size, modes=modes))
        where = f"recursion on the compressed spectrum ({modes.n_modes} of {model.n_modes} modes)"
    else:
        info["recursion_final_loss"] = None
        info["recursion_check"] = (
            f"not checked: T * N = {work:.3g} > check_work = {opts.check_work:.3g}; final_loss is the ODE's"
        )
        return float(ode_loss)
    info["recursion_final_loss"] = exact
    info["recursion_check"] = f"checked: ODE / {where} - 1 = {ode_loss / exact - 1.0:+.3g}"
    return exact


def _polished(solution: Solution, opts: JaxOptions) -> Solution:
    """A compressed solve whose result the full spectrum does not confirm, re-solved on the full spectrum.

    Kept as it is when ``|surrogate / full - 1| <= compression_rtol``; otherwise L-BFGS-B
    restarts from its parameters on the model's own modes (no warm start), and
    ``info["compression"]["polished"]`` says so.
    """
    from schedopt.solvers.jax._driver import _solve_group  # it calls back here

    report = solution.info.get("compression")
    if report is None or "relative_gap" not in report:
        return solution
    gap = report["relative_gap"]
    if gap is not None and abs(gap) <= opts.compression_rtol:
        return solution
    polished = _solve_group(
        [solution.problem],
        [solution.parameters],
        opts.replace(warm_start="none"),
        engine=solution.info["engine"],
        full_spectrum=True,
    )[0]
    info = dict(polished.info)
    info["evaluations"] = solution.info["evaluations"] + polished.info["evaluations"]
    info["warm_start_sweeps"] = solution.info["warm_start_sweeps"]
    info["compression"] = {
        **report,
        "polished": True,
        "polish_iterations": polished.iterations,
        "polish_evaluations": polished.info["evaluations"],
    }
    return dataclasses.replace(
        polished,
        iterations=solution.iterations + polished.iterations,
        wall_time=solution.wall_time + polished.wall_time,
        info=info,
    )


def _degeneracy_and_tie_break(solution: Solution, opts: JaxOptions) -> Solution:
    """Attach ``info["degeneracy"]``; apply the tie-break of :mod:`schedopt.solvers.budget` when flat."""
    from schedopt.solvers.budget import budget_weights, degeneracy_report, project_budget, tie_break_per_step
    from schedopt.solvers.jax._driver import _solve_group  # it calls back here

    problem = solution.problem
    lr_spec, batch_spec = problem.learning_rate, problem.controls["batch_size"]
    lr, batch = solution.per_step("learning_rate"), solution.per_step("batch_size")
    report = degeneracy_report(solution, flat_ratio=opts.flat_ratio)
    new_lr, new_batch, _ = tie_break_per_step(
        lr, batch, m_min=batch_spec.min, m_max=batch_spec.max, lr_min=lr_spec.min, lr_max=lr_spec.max
    )
    info = dict(solution.info)
    info["degeneracy"] = report
    if not report["degenerate"]:
        return _with_info(solution, info)
    if opts.tie_break != "auto":
        report["tie_break"] = "not applied (option tie_break = 'none')"
        return _with_info(solution, info)
    grids = solution.grids
    initial = {
        "learning_rate": grids["learning_rate"].interpolation().fit(new_lr, lr_spec.min, lr_spec.max),
        "batch_size": project_budget(
            grids["batch_size"].interpolation().fit(new_batch, batch_spec.min, batch_spec.max),
            budget_weights(grids["batch_size"]),
            float(problem.sample_budget),
            batch_spec.min,
            batch_spec.max,
        ),
    }
    for name in problem.controls:
        if name not in initial:
            initial[name] = np.asarray(solution.parameters[name])
    # the batch sizes of the tie-break point, with the learning rate re-optimised for them
    # (the grid cannot represent the rule's learning rate exactly once the batch is fitted)
    candidate = _solve_group([problem], [initial], opts.replace(warm_start="none"), pinned="batch_size")[0]
    loss = candidate.final_loss if candidate.status != "failed" else np.inf
    per_step = {name: candidate.per_step(name) for name in problem.controls}
    change = float(loss / solution.final_loss - 1.0)
    keep = bool(np.isfinite(loss) and change <= opts.tie_break_rtol)
    report["tie_break"] = {
        "rule": (
            "among (nearly) equal-loss schedules, the learning rate closest to its cap "
            "(constant where the step count leaves slack), batch size absorbing the rest"
        ),
        "applied": keep,
        "relative_loss_change": change,
        "per_step_relative_loss_change": float(
            final_loss(problem.model, new_lr, batch_size=new_batch, momentum=None) / solution.final_loss - 1.0
        )
        if "momentum" not in problem.controls and problem.training.momentum == 0
        else None,
        "learning_rate_spread_before": float(np.ptp(lr) / lr_spec.max),
        "learning_rate_spread_after": float(np.ptp(per_step["learning_rate"]) / lr_spec.max),
    }
    if not keep:
        report["tie_break"]["reason"] = (
            f"the tie-break schedule costs {change:+.3g} relative loss (> tie_break_rtol = "
            f"{opts.tie_break_rtol:g}): curvature (or the grid's resolution, see "
            "per_step_relative_loss_change) breaks the tie; the solver's optimum is kept"
        )
        return _with_info(solution, info)
    return dataclasses.replace(
        solution,
        final_loss=float(loss),
        parameters=candidate.parameters,
        grids=grids,
        iterations=solution.iterations + candidate.iterations,
        wall_time=solution.wall_time + candidate.wall_time,
        info=info,
    )


def _with_info(solution: Solution, info: Mapping[str, Any]) -> Solution:
    return dataclasses.replace(solution, info=info)
