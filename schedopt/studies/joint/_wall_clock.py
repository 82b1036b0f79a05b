"""The wall-clock objective at a fixed sample budget: fewest steps to a target loss, joint vs fixed batch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers import solve
from schedopt.studies.joint._problems import _budget_problem_at, fixed_batch_problem
from schedopt.studies.joint._warm import _rescaled


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
