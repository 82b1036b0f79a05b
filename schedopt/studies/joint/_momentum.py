"""Optimal SGD against optimal heavy-ball schedules across horizons (THEORY §4)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.solvers import solve
from schedopt.solvers._common import control_grids
from schedopt.studies.joint._problems import momentum_problem
from schedopt.studies.joint._warm import _rescaled
from schedopt.theory import PowerLawFit, estimate_exponents, fit_power_law, phase, predicted_exponents


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
