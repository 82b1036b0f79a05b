r"""Solve one problem across horizons and measure the exponents THEORY §4 predicts.

For each horizon :math:`T` the optimal schedule is solved and the best constant
and best power-law schedules are tuned. Then:

* ``xi``: the optimal learning rate at fixed fractions :math:`t/T` (median over
  :math:`t/T \in [0.2, 0.4]`) scales as :math:`T^{-\xi}`;
* ``delta``: on the longest horizon, :math:`\eta^*(t) \propto (1-t/T)^\delta` fitted over
  :math:`1 - t/T \in [0.02, 0.3]`;
* loss exponents of the optimum, best constant and best power law
  (:math:`L_T \propto T^{-p}`);
* hard phase: plateau height across :math:`T` and the anneal fraction's exponent.

Every fit reports its range and residual (:class:`schedopt.theory.PowerLawFit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solution import Solution
from schedopt.theory import (
    anneal_fraction,
    estimate_exponents,
    fit_power_law,
    phase,
    plateau_height,
    predicted_exponents,
)

__all__ = ["HorizonStudy", "parse_horizons", "study_horizons"]

#: Window of t/T over which the learning-rate level is measured for xi.
LEVEL_WINDOW = (0.2, 0.4)
#: Window of 1 - t/T over which delta is fitted.
DELTA_WINDOW = (0.02, 0.3)


def parse_horizons(text: str) -> list[int]:
    """``"1e2:1e5:7"`` → 7 log-spaced integer horizons from 100 to 100000; or ``"100,1000"``."""

    def integer(part: str) -> int:
        value = float(part)
        if not value.is_integer():
            raise ValueError(part)
        return int(value)

    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            count = integer(n)
            lo_v, hi_v = float(lo), float(hi)
            if count < 2 or lo_v < 1 or hi_v <= lo_v:
                raise ValueError
            values = np.unique(np.round(np.geomspace(lo_v, hi_v, count)).astype(int))
        else:
            values = np.unique([integer(x) for x in text.split(",") if x.strip()])
    except ValueError:
        raise ProblemError(
            f"`--horizons` must be LO:HI:COUNT (e.g. 1e2:1e5:7) or a comma list, got {text!r}",
            field="horizons",
        ) from None
    if values.size < 2 or values.min() < 1:
        raise ProblemError(
            f"`--horizons` must give at least two positive horizons, got {text!r}", field="horizons"
        )
    return [int(v) for v in values]


def _level(lr: np.ndarray) -> float:
    s = (np.arange(lr.size) + 0.5) / lr.size
    sel = (s >= LEVEL_WINDOW[0]) & (s <= LEVEL_WINDOW[1])
    return float(np.median(lr[sel]))


def _delta_fit(lr: np.ndarray):
    s = 1.0 - (np.arange(lr.size) + 0.5) / lr.size
    sel = (s >= DELTA_WINDOW[0]) & (s <= DELTA_WINDOW[1])
    return fit_power_law(s[sel], lr[sel])


@dataclass(frozen=True, eq=False)
class HorizonStudy:
    """Solutions across horizons and the fitted exponents next to the predicted ones."""

    problem: Problem
    horizons: tuple[int, ...]
    solutions: tuple[Solution, ...]
    baselines: tuple[dict[str, Any], ...]
    phase: str
    exponents: tuple[float, float]
    fits: dict[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per horizon."""
        rows = []
        for T, sol, base in zip(self.horizons, self.solutions, self.baselines, strict=True):
            lr = sol.per_step("learning_rate")
            rows.append(
                {
                    "horizon": T,
                    "status": sol.status,
                    "final_loss": sol.final_loss,
                    "constant_loss": base["constant"].final_loss,
                    "constant_lr": base["constant"].params["peak"],
                    "power_law_loss": base["power_law"].final_loss,
                    "peak_lr": float(lr.max()),
                    "level_lr": _level(lr),
                    "plateau_lr": plateau_height(lr),
                    "anneal_fraction": anneal_fraction(lr),
                    "wall_time": sol.wall_time,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        a, b = self.exponents
        return {
            "problem": self.problem.name,
            "phase": self.phase,
            "a": a,
            "b": b,
            "horizons": list(self.horizons),
            "rows": self.table(),
            "fits": {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in self.fits.items()},
            "predicted": predicted_exponents(a, b),
            "measured": self.measured(),
        }

    def measured(self) -> dict[str, float | None]:
        """Measured exponents with the sign convention of :func:`predicted_exponents`."""
        f = self.fits
        return {
            "xi": -f["level_lr"].exponent,
            "delta": f["delta"].exponent,
            "loss_optimal": -f["loss_optimal"].exponent,
            "loss_constant": -f["loss_constant"].exponent,
            "loss_power_law": -f["loss_power_law"].exponent,
            "constant_lr": -f["constant_lr"].exponent,
            "anneal_fraction": -f["anneal_fraction"].exponent if "anneal_fraction" in f else None,
            "plateau_change": f["plateau_change"],
        }


def _baselines_task(problem: Problem) -> dict[str, Any]:
    """The tuned constant and power-law baselines of one horizon (a backend task)."""
    from schedopt.baselines import tune_baseline

    return {name: tune_baseline(problem, name) for name in ("constant", "power_law")}


def study_horizons(
    problem: Problem,
    horizons: Sequence[int],
    *,
    solver: str = "jax",
    options: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    backend: Any = None,
) -> HorizonStudy:
    """Solve ``problem`` at each horizon and fit the exponents (see module docstring).

    The horizons are independent: their optimal schedules are designed by
    :func:`schedopt.design_many` and their baselines tuned as one task each, on ``backend``
    (:mod:`schedopt.backends`; default: this process). ``progress`` gets ``(done, total)``
    over both (``total`` = twice the horizons). Results do not depend on the backend.
    """
    from schedopt.backends import LocalBackend
    from schedopt.batch import InvalidDesign, design_many

    backend = LocalBackend() if backend is None else backend
    horizons = sorted(int(h) for h in horizons)
    problems = []
    for T in horizons:
        p = problem.with_horizon(T)
        for name, spec in p.controls.items():
            if spec.blocks > T:
                p = p.with_control(name, blocks=T)
        problems.append(p)
    n = len(problems)

    def solved(done: int, _total: int) -> None:
        if progress is not None:
            progress(done, 2 * n)

    def tuned(done: int, _total: int) -> None:
        if progress is not None:
            progress(n + done, 2 * n)

    solutions = design_many(problems, solver, options=options, backend=backend, progress=solved)
    for sol in solutions:
        if isinstance(sol, InvalidDesign):
            raise ProblemError(sol.message, field=sol.field)
    baselines = backend.map(_baselines_task, problems, progress=tuned)
    study = HorizonStudy(
        problem=problem,
        horizons=tuple(horizons),
        solutions=tuple(solutions),
        baselines=tuple(baselines),
        phase=phase(problem.model),
        exponents=estimate_exponents(problem.model),
    )
    rows = study.table()
    T = np.array(horizons, dtype=float)
    col = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0] if k != "status"}
    floor = problem.model.residual
    fits: dict[str, Any] = {
        "level_lr": fit_power_law(T, col["level_lr"]),
        "delta": _delta_fit(solutions[-1].per_step("learning_rate")),
        "loss_optimal": fit_power_law(T, col["final_loss"] - floor),
        "loss_constant": fit_power_law(T, col["constant_loss"] - floor),
        "loss_power_law": fit_power_law(T, col["power_law_loss"] - floor),
        "constant_lr": fit_power_law(T, col["constant_lr"]),
        "plateau_change": float(col["plateau_lr"].max() / col["plateau_lr"].min() - 1.0),
    }
    if np.all(col["anneal_fraction"] > 0):
        fits["anneal_fraction"] = fit_power_law(T, col["anneal_fraction"])
    return HorizonStudy(**{**study.__dict__, "fits": fits})
