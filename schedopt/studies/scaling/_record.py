"""The result of a scaling study: :class:`ScalingStudy` (frontiers, fits, multipliers, JSON) and
the frontier exponents the theory predicts."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt.problem import Problem
from schedopt.theory import PowerLawFit, phase

#: Schedules whose frontier is measured: the optimum and two tuned baselines.
SCHEDULES = ("optimal", "constant", "cosine")
#: Where each schedule's predicted frontier exponents come from.
PREDICTION_SOURCES = {
    "optimal": "THEORY §4 (compute-optimal row)",
    "constant": "derived: R_N ~ N^-(a-1) balanced against THEORY §4's best-constant loss T^-(a-1)/(a-1+b)",
    "cosine": "none",
}


def frontier_predictions(a: float, b: float) -> dict[str, dict[str, float | None]]:
    """Exponents :math:`p` of :math:`N^*, T^*, L^* \\propto C^p` per schedule (signed, as in ``C^p``).

    ``optimal``: THEORY §4. ``constant``: derived here from THEORY §4's best-constant
    loss exponent by the same balance :math:`R_N \\sim L_T` (see the package docstring).
    ``cosine``: the theory makes no prediction (``None``).
    """
    top = max(a, b)
    opt_n = 1.0 / (top + 1.0)
    const_n = 1.0 / (a + b)
    return {
        "optimal": {"model_size": opt_n, "horizon": 1.0 - opt_n, "loss": -(a - 1.0) / (top + 1.0)},
        "constant": {"model_size": const_n, "horizon": 1.0 - const_n, "loss": -(a - 1.0) / (a + b)},
        "cosine": {"model_size": None, "horizon": None, "loss": None},
    }


@dataclass(frozen=True, eq=False)
class ScalingStudy:
    """The compute-optimal frontier of each schedule, the fits and the predictions.

    Attributes:
        problem: the spec's problem (exponents, noise, batch size, grid).
        computes: the computes :math:`C` (modes x steps x batch size).
        points: every evaluated point, ``{compute, n_modes, horizon, residual,
            learning_rate_max, results: {schedule: {loss, status, wall_time, ...}}}``.
        frontiers: per schedule, one row per compute: ``{compute, n_modes, horizon,
            loss, interior, discrete_n_modes, discrete_loss, scanned, bound}`` (``bound``: what
            held a minimum at an end of the scan, ``None`` when interior).
        fits: per schedule, ``{model_size, horizon, loss}`` power-law fits in ``C``.
        settings: the scan's settings.
        wall_time: seconds per schedule kind and in total.
    """

    problem: Problem
    computes: tuple[float, ...]
    schedules: tuple[str, ...]
    points: tuple[dict[str, Any], ...]
    frontiers: Mapping[str, list[dict[str, Any]]]
    fits: Mapping[str, dict[str, PowerLawFit | None]]
    settings: Mapping[str, Any] = field(default_factory=dict)
    wall_time: Mapping[str, float] = field(default_factory=dict)

    @property
    def phase(self) -> str:
        return phase(self.problem.model)

    def predicted(self) -> dict[str, dict[str, float | None]]:
        return frontier_predictions(self.problem.model.a, self.problem.model.b)

    def measured(self) -> dict[str, dict[str, float | None]]:
        """Fitted exponents (signed, as in ``C^p``), ``None`` where a fit was impossible."""
        return {
            kind: {q: (None if f is None else f.exponent) for q, f in fits.items()}
            for kind, fits in self.fits.items()
        }

    def multipliers(self) -> dict[str, list[dict[str, Any]]]:
        """Per baseline: compute it needs to match the optimal frontier's loss, over C (package docstring)."""
        if "optimal" not in self.frontiers:
            return {}
        out = {}
        for kind in self.schedules:
            if kind == "optimal":
                continue
            rows = [r for r in self.frontiers[kind] if np.isfinite(r["loss"])]
            fit = self.fits[kind].get("loss")
            if len(rows) < 2:
                continue
            c = np.log([r["compute"] for r in rows])
            loss = np.log([r["loss"] for r in rows])
            order = np.argsort(loss)
            entries = []
            for target in self.frontiers["optimal"]:
                lt = math.log(target["loss"])
                inside = loss.min() <= lt <= loss.max()
                if inside:
                    needed = float(np.exp(np.interp(lt, loss[order], c[order])))
                elif fit is not None and fit.exponent < 0:
                    needed = float((target["loss"] / fit.prefactor) ** (1.0 / fit.exponent))
                else:
                    needed = float("nan")
                entries.append(
                    {
                        "compute": target["compute"],
                        "loss": target["loss"],
                        "compute_needed": needed,
                        "multiplier": needed / target["compute"],
                        "extrapolated": not inside,
                    }
                )
            out[kind] = entries
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object of ``schedopt scaling``."""
        a, b = self.problem.model.a, self.problem.model.b
        return {
            "problem": self.problem.name,
            "phase": self.phase,
            "a": a,
            "b": b,
            "noise_variance": self.problem.model.noise_variance,
            "batch_size": self.problem.training.batch_size,
            "computes": list(self.computes),
            "schedules": list(self.schedules),
            "settings": dict(self.settings),
            "frontiers": {k: [dict(r) for r in rows] for k, rows in self.frontiers.items()},
            "fits": {
                k: {q: (None if f is None else f.to_dict()) for q, f in fits.items()}
                for k, fits in self.fits.items()
            },
            "measured": self.measured(),
            "predicted": {k: self.predicted()[k] for k in self.schedules},
            "prediction_sources": {k: PREDICTION_SOURCES[k] for k in self.schedules},
            "multipliers": self.multipliers(),
            "points": [_point_json(p) for p in self.points],
            "wall_time": dict(self.wall_time),
        }


def _point_json(point: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: val for k, val in point.items() if k != "results"}
    out["results"] = {
        kind: {k: val for k, val in res.items() if k != "solution"} for kind, res in point["results"].items()
    }
    return out
