r"""Joint schedules: batch size and momentum next to the learning rate (THEORY §3-4).

Three studies, each a function returning a frozen record with ``to_dict()``:

* :func:`fewest_steps`, the **wall-clock objective** at a fixed sample budget
  :math:`D`: for a list of step counts :math:`T` solve the budget problem
  (learning rate and batch size, :math:`\sum_t m_t = D`, THEORY §3) and the
  fixed-batch problem (learning rate only, :math:`m = D/T`); the fewest steps
  that reach a target loss is the smallest :math:`T` whose optimum is at or below
  the target, refined by log-log interpolation of :math:`L^*(T)` between the two
  bracketing step counts. The default target is :math:`(1 + \text{slack})` times
  the best joint loss over the list (the largest :math:`T`, where the batch is
  smallest, is usually best). The step saving is
  :math:`T_{\text{fixed}} / T_{\text{joint}}` at the same target. "Lowest loss in
  a step budget" is the budget problem itself at that :math:`T`.
* :func:`fit_batch_ramp` (and :func:`wall_clock_ramp`, which first solves at the
  wall-clock step count): the batch ramp of a budget optimum against the
  easy-phase prediction :math:`m^*(t) \propto (1 - t/T)^{1/(2b) - 1}` (THEORY §4,
  at :math:`\eta = \eta_{\max}`, the wall-clock optimum), a least-squares
  power-law fit of :math:`m_t` against :math:`1 - t/T` over a stated range of
  :math:`t/T`.
* :func:`momentum_study`: optimal SGD and optimal heavy-ball schedules (learning
  rate and momentum jointly, :mod:`schedopt.solvers.jax`) across horizons,
  with the fitted loss exponents and THEORY §4's predictions.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt.errors import ProblemError
from schedopt.problem import ControlSpec, Problem, Training
from schedopt.solution import Solution
from schedopt.solvers import solve
from schedopt.solvers._common import control_grids
from schedopt.theory import PowerLawFit, estimate_exponents, fit_power_law, phase, predicted_exponents

__all__ = [
    "MomentumStudy",
    "RampFit",
    "WallClock",
    "fewest_steps",
    "fit_batch_ramp",
    "fixed_batch_problem",
    "momentum_problem",
    "momentum_study",
    "wall_clock_ramp",
    "with_sample_budget",
]

#: Default range of t/T over which the batch ramp is fitted: away from the warm-up
#: at the start and from the last blocks, where the batch cap or grid resolution bind.
RAMP_FIT_RANGE = (0.2, 0.9)


def _clip_blocks(spec: ControlSpec, horizon: int) -> ControlSpec:
    return dataclasses.replace(spec, blocks=min(spec.blocks, horizon)) if spec.grid != "custom" else spec


def with_sample_budget(
    problem: Problem,
    sample_budget: float,
    *,
    horizon: int | None = None,
    batch_min: float = 1.0,
    batch_max: float | None = None,
) -> Problem:
    """The problem with a batch-size control (same grid as the learning rate) and a sample budget.

    Args:
        problem: a problem with a learning-rate control (its other controls are kept).
        sample_budget: :math:`D = \\sum_t m_t`.
        horizon: number of steps (default: the problem's).
        batch_min, batch_max: batch bounds (default ``batch_max``: :math:`D` itself,
            i.e. no cap beyond the budget).
    """
    horizon = problem.horizon if horizon is None else int(horizon)
    lr = _clip_blocks(problem.learning_rate, horizon)
    spec = dataclasses.replace(
        lr, name="batch_size", min=float(batch_min), max=float(batch_max or sample_budget)
    )
    controls = {**dict(problem.controls), "learning_rate": lr, "batch_size": spec}
    return problem.replace(
        training=dataclasses.replace(problem.training, horizon=horizon),
        controls=controls,
        sample_budget=float(sample_budget),
    )


def _budget_problem_at(problem: Problem, horizon: int) -> Problem:
    """The same sample-budget problem (budget and batch bounds kept) over another number of steps."""
    batch = problem.controls["batch_size"]
    return with_sample_budget(
        problem.replace(controls={k: v for k, v in problem.controls.items() if k != "batch_size"}),
        problem.sample_budget,
        horizon=horizon,
        batch_min=batch.min,
        batch_max=batch.max,
    )


def fixed_batch_problem(problem: Problem, horizon: int | None = None) -> Problem:
    """The learning-rate-only problem at the budget's constant batch size :math:`D/T`."""
    if problem.sample_budget is None:
        raise ProblemError("`sample_budget` is required", field="sample_budget")
    horizon = problem.horizon if horizon is None else int(horizon)
    batch = problem.sample_budget / horizon
    return problem.replace(
        training=Training(horizon=horizon, batch_size=batch, momentum=problem.training.momentum),
        controls={"learning_rate": _clip_blocks(problem.learning_rate, horizon)},
        sample_budget=None,
    )


@dataclass(frozen=True, eq=False)
class WallClock:
    """Fewest steps to a target loss at a fixed sample budget, joint vs fixed batch.

    Attributes:
        sample_budget: :math:`D`.
        target_loss: the target.
        steps: step counts solved.
        joint_loss, fixed_loss: optimal final loss at each step count (learning
            rate + batch size under the budget; learning rate at :math:`m = D/T`).
        steps_joint, steps_fixed: fewest steps reaching the target (interpolated;
            ``None`` if no step count in the list reaches it).
        step_saving: ``steps_fixed / steps_joint``.
        joint_solutions, fixed_solutions: the solutions, by step count.
        wall_time: seconds.
    """

    sample_budget: float
    target_loss: float
    steps: tuple[int, ...]
    joint_loss: tuple[float, ...]
    fixed_loss: tuple[float, ...]
    steps_joint: float | None
    steps_fixed: float | None
    step_saving: float | None
    joint_solutions: tuple[Solution, ...] = field(repr=False)
    fixed_solutions: tuple[Solution, ...] = field(repr=False)
    wall_time: float = 0.0

    def joint_at(self, steps: float) -> Solution:
        """The joint solution at the listed step count closest to ``steps`` from above."""
        index = int(np.searchsorted(self.steps, steps - 1e-9))
        return self.joint_solutions[min(index, len(self.steps) - 1)]

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for T, lj, lf, sj in zip(
            self.steps, self.joint_loss, self.fixed_loss, self.joint_solutions, strict=True
        ):
            deg = sj.info.get("degeneracy", {})
            rows.append(
                {
                    "steps": T,
                    "joint_loss": lj,
                    "fixed_loss": lf,
                    "ratio_fixed_to_joint": lf / lj,
                    "joint_status": sj.status,
                    "mean_learning_rate": float(sj.per_step("learning_rate").mean()),
                    "flatness": deg.get("flatness"),
                    "degenerate": deg.get("degenerate"),
                    "steps_at_cap": deg.get("steps_at_cap"),
                }
            )
        return {
            "sample_budget": self.sample_budget,
            "target_loss": self.target_loss,
            "steps_joint": self.steps_joint,
            "steps_fixed": self.steps_fixed,
            "step_saving": self.step_saving,
            "rows": rows,
            "wall_time": self.wall_time,
        }


def _first_reaching(steps: np.ndarray, loss: np.ndarray, target: float) -> float | None:
    """Smallest step count with loss <= target, log-log interpolated between list entries."""
    hit = np.nonzero(loss <= target)[0]
    if hit.size == 0:
        return None
    j = int(hit[0])
    if j == 0 or not loss[j - 1] > target:
        return float(steps[j])
    x0, x1 = math.log(steps[j - 1]), math.log(steps[j])
    y0, y1 = math.log(loss[j - 1]), math.log(loss[j])
    if y1 == y0:
        return float(steps[j])
    return float(math.exp(x0 + (math.log(target) - y0) * (x1 - x0) / (y1 - y0)))


def _rescaled(previous: Solution, problem: Problem) -> dict[str, np.ndarray]:
    """A previous solution's controls mapped to another horizon in t/T (a warm start)."""
    out = {}
    for name, grid in control_grids(problem).items():
        if name not in previous.parameters:
            continue
        old = previous.grids[name]
        spec = problem.controls[name]
        values = np.interp(grid.knots / grid.horizon, old.knots / old.horizon, previous.parameters[name])
        if name == "batch_size":
            values = values * previous.problem.horizon / problem.horizon  # same budget, other T
        out[name] = np.clip(values, spec.min, spec.max)
    if "batch_size" in out and problem.sample_budget is not None:
        from schedopt.solvers.budget import budget_weights, project_budget

        spec = problem.controls["batch_size"]
        out["batch_size"] = project_budget(
            out["batch_size"],
            budget_weights(control_grids(problem)["batch_size"]),
            problem.sample_budget,
            spec.min,
            spec.max,
        )
    return out


def fewest_steps(
    problem: Problem,
    steps: Sequence[int],
    *,
    target_loss: float | None = None,
    target_slack: float = 0.01,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WallClock:
    """Wall-clock objective at a fixed sample budget (see the module docstring).

    Args:
        problem: a problem with a ``batch_size`` control and ``sample_budget``.
        steps: step counts to solve (each must allow the budget within the batch bounds).
        target_loss: the loss to reach (default: ``(1 + target_slack)`` x the best joint loss).
        target_slack: see ``target_loss``.
        options: options of solver ``jax``.
        progress: called with ``(done, total)`` after each step count.
    """
    if problem.sample_budget is None or "batch_size" not in problem.controls:
        raise ProblemError(
            "fewest_steps needs a batch_size control and a sample budget", field="sample_budget"
        )
    start = time.perf_counter()
    steps = sorted({int(s) for s in steps})
    joint, fixed = [], []
    previous: Solution | None = None
    for i, T in enumerate(steps):
        p = _budget_problem_at(problem, T)
        sol = solve(p, "jax", throw=False, options=options)
        if previous is not None:
            alt = solve(p, "jax", throw=False, options=options, initial=_rescaled(previous, p))
            if alt.final_loss < sol.final_loss:
                sol = alt
        joint.append(sol)
        fixed.append(solve(fixed_batch_problem(p), "jax", throw=False, options=options))
        previous = sol
        if progress is not None:
            progress(i + 1, len(steps))
    lj = np.array([s.final_loss for s in joint])
    lf = np.array([s.final_loss for s in fixed])
    target = float(target_loss) if target_loss is not None else float((1.0 + target_slack) * lj.min())
    arr = np.array(steps, dtype=float)
    tj, tf = _first_reaching(arr, lj, target), _first_reaching(arr, lf, target)
    return WallClock(
        sample_budget=float(problem.sample_budget),
        target_loss=target,
        steps=tuple(steps),
        joint_loss=tuple(float(x) for x in lj),
        fixed_loss=tuple(float(x) for x in lf),
        steps_joint=tj,
        steps_fixed=tf,
        step_saving=(tf / tj) if (tj and tf) else None,
        joint_solutions=tuple(joint),
        fixed_solutions=tuple(fixed),
        wall_time=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class RampFit:
    """A fitted batch ramp :math:`m_t \\propto (1 - t/T)^p` and the prediction.

    Attributes:
        exponent: fitted :math:`p`.
        predicted: :math:`1/(2b) - 1` (``None`` outside the easy phase).
        fit_range: range of :math:`t/T` fitted.
        residual: RMS residual of :math:`\\log m_t`.
        stderr: standard error of ``exponent`` (steps are correlated: a lower bound).
        points: number of steps fitted.
        mean_learning_rate_over_cap: mean :math:`\\eta_t/\\eta_{\\max}` over the range
            (the prediction assumes 1).
    """

    exponent: float
    predicted: float | None
    fit_range: tuple[float, float]
    residual: float
    stderr: float
    points: int
    mean_learning_rate_over_cap: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_batch_ramp(solution: Solution, *, fit_range: tuple[float, float] = RAMP_FIT_RANGE) -> RampFit:
    """Fit the batch schedule of a solution against :math:`(1 - t/T)` over ``fit_range`` of t/T."""
    lo, hi = (float(x) for x in fit_range)
    if not 0.0 <= lo < hi < 1.0:
        raise ProblemError(f"`fit_range` must satisfy 0 <= lo < hi < 1, got {fit_range!r}", field="fit_range")
    if "batch_size" not in solution.parameters:
        raise ProblemError("the solution has no batch-size control", field="batch_size")
    m = solution.per_step("batch_size")
    lr = solution.per_step("learning_rate")
    horizon = m.size
    u = (np.arange(horizon) + 0.5) / horizon
    keep = (u >= lo) & (u <= hi)
    fit: PowerLawFit = fit_power_law(1.0 - u[keep], m[keep])
    a, b = estimate_exponents(solution.problem.model)
    return RampFit(
        exponent=fit.exponent,
        predicted=predicted_exponents(a, b)["batch_ramp"],
        fit_range=(lo, hi),
        residual=fit.residual,
        stderr=fit.stderr,
        points=fit.points,
        mean_learning_rate_over_cap=float(np.mean(lr[keep]) / solution.problem.learning_rate.max),
    )


def wall_clock_ramp(
    wall_clock: WallClock,
    *,
    fit_range: tuple[float, float] = RAMP_FIT_RANGE,
    options: Mapping[str, Any] | None = None,
) -> tuple[Solution, RampFit]:
    r"""The batch ramp at the wall-clock optimum, where the learning rate sits at its cap.

    The best joint optimum of ``wall_clock`` (largest step counts: the flat part of
    :math:`L^*(T)`) fixes the per-sample schedule; its ``steps_at_cap``
    (:mod:`schedopt.solvers.budget`) is the fewest steps that realise it with
    :math:`\eta = \eta_{\max}`. The budget problem is solved at that step count
    (warm-started from the nearest listed solution) and its batch schedule fitted
    with :func:`fit_batch_ramp`.
    """
    best = min(wall_clock.joint_solutions, key=lambda s: s.final_loss)
    steps = int(best.info["degeneracy"]["steps_at_cap"])
    problem = best.problem
    p = _budget_problem_at(problem, steps)
    near = wall_clock.joint_at(steps)
    sol = solve(p, "jax", throw=False, options=options, initial=_rescaled(near, p))
    return sol, fit_batch_ramp(sol, fit_range=fit_range)


def momentum_problem(
    problem: Problem, beta_max: float, *, beta_min: float = 0.0, horizon: int | None = None
) -> Problem:
    """The problem with a momentum control on the learning rate's grid, bounds ``[beta_min, beta_max]``."""
    horizon = problem.horizon if horizon is None else int(horizon)
    lr = _clip_blocks(problem.learning_rate, horizon)
    spec = dataclasses.replace(lr, name="momentum", min=float(beta_min), max=float(beta_max))
    return problem.replace(
        training=dataclasses.replace(problem.training, horizon=horizon, momentum=0.0),
        controls={**dict(problem.controls), "learning_rate": lr, "momentum": spec},
    )


@dataclass(frozen=True, eq=False)
class MomentumStudy:
    """Optimal SGD vs optimal heavy-ball schedules across horizons.

    Attributes:
        setting: a label of the bounds (for reports).
        horizons: the horizons.
        beta_max: the momentum cap at each horizon.
        sgd, momentum: the solutions (learning rate only; learning rate and momentum).
        fits: power-law fits of the final excess loss above the floor, ``"sgd"`` and ``"momentum"``.
        predictions: THEORY §4 exponents (``sgd``; ``momentum_bound`` the hard-phase
            upper bound :math:`2(a-1)/b`).
        phase: ``easy``, ``hard`` or ``boundary``.
        wall_time: seconds.
    """

    setting: str
    horizons: tuple[int, ...]
    beta_max: tuple[float, ...]
    sgd: tuple[Solution, ...] = field(repr=False)
    momentum: tuple[Solution, ...] = field(repr=False)
    fits: Mapping[str, PowerLawFit] = field(default_factory=dict)
    predictions: Mapping[str, float | None] = field(default_factory=dict)
    phase: str = ""
    wall_time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for T, bmax, s, mo in zip(self.horizons, self.beta_max, self.sgd, self.momentum, strict=True):
            beta = mo.per_step("momentum")
            lr = mo.per_step("learning_rate")
            rows.append(
                {
                    "horizon": T,
                    "beta_max": bmax,
                    "sgd_loss": s.final_loss,
                    "momentum_loss": mo.final_loss,
                    "ratio_sgd_to_momentum": s.final_loss / mo.final_loss,
                    "sgd_status": s.status,
                    "momentum_status": mo.status,
                    "max_momentum": float(beta.max()),
                    "final_momentum": float(beta[-1]),
                    "max_effective_lr": float(np.max(lr / (1.0 - beta))),
                    "sgd_max_lr": float(s.per_step("learning_rate").max()),
                    "sgd_seconds": s.wall_time,
                    "momentum_seconds": mo.wall_time,
                }
            )
        return {
            "setting": self.setting,
            "phase": self.phase,
            "predictions": dict(self.predictions),
            "fits": {k: v.to_dict() for k, v in self.fits.items()},
            "rows": rows,
            "wall_time": self.wall_time,
        }


def momentum_study(
    problem: Problem,
    horizons: Sequence[int],
    *,
    beta_max: float | Callable[[int], float],
    setting: str = "",
    options: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MomentumStudy:
    """Solve optimal SGD and optimal heavy-ball schedules at each horizon; fit loss exponents.

    Args:
        problem: a learning-rate-only problem (fixed batch size, no momentum).
        horizons: horizons to solve.
        beta_max: the momentum cap, or a function of the horizon (e.g. ``lambda T: 1 - 1/T``).
        setting: label for reports.
        options: options of solver ``jax``.
        progress: called with ``(done, total)`` after each horizon.

    Each momentum solve starts from the SGD optimum with momentum 0 (feasible, and
    the same loss) and, from the second horizon on, also from the previous
    horizon's schedule rescaled in t/T; the better optimum is kept. L-BFGS-B never
    accepts an increase of the objective, so the momentum optimum is at most the
    SGD optimum at every horizon (up to rounding).
    """
    if set(problem.controls) != {"learning_rate"}:
        raise ProblemError("momentum_study needs a learning-rate-only problem", field="controls")
    start = time.perf_counter()
    horizons = sorted({int(T) for T in horizons})
    caps = [float(beta_max(T)) if callable(beta_max) else float(beta_max) for T in horizons]
    sgd, mom = [], []
    previous: Solution | None = None
    for i, (T, cap) in enumerate(zip(horizons, caps, strict=True)):
        p_sgd = problem.with_horizon(T).with_control(
            "learning_rate", blocks=min(problem.learning_rate.blocks, T)
        )
        s = solve(p_sgd, "jax", throw=False, options=options)
        p_mom = momentum_problem(p_sgd, cap)
        zero = np.zeros(control_grids(p_mom)["momentum"].n_params)
        candidates = [
            solve(
                p_mom,
                "jax",
                throw=False,
                options=options,
                initial={"learning_rate": np.asarray(s.parameters["learning_rate"]), "momentum": zero},
            )
        ]
        if previous is not None:
            candidates.append(
                solve(p_mom, "jax", throw=False, options=options, initial=_rescaled(previous, p_mom))
            )
        best = min(candidates, key=lambda c: c.final_loss if np.isfinite(c.final_loss) else np.inf)
        best = dataclasses.replace(best, wall_time=sum(c.wall_time for c in candidates))
        sgd.append(s)
        mom.append(best)
        previous = best
        if progress is not None:
            progress(i + 1, len(horizons))
    floor = problem.model.residual
    T = np.array(horizons, dtype=float)
    fits = {
        "sgd": fit_power_law(T, np.array([s.final_loss for s in sgd]) - floor),
        "momentum": fit_power_law(T, np.array([m.final_loss for m in mom]) - floor),
    }
    a, b = estimate_exponents(problem.model)
    pred = predicted_exponents(a, b)
    ph = phase(problem.model)
    predictions = {
        "sgd": pred["loss_optimal"],
        "momentum_bound": 2.0 * (a - 1.0) / b if ph == "hard" else pred["loss_optimal"],
    }
    return MomentumStudy(
        setting=setting,
        horizons=tuple(horizons),
        beta_max=tuple(caps),
        sgd=tuple(sgd),
        momentum=tuple(mom),
        fits=fits,
        predictions=predictions,
        phase=ph,
        wall_time=time.perf_counter() - start,
    )
