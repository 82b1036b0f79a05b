"""The result of a design: :class:`Design`, its notes and its stable ``--json`` object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt.design._prefix import Warmup
from schedopt.problem import Problem
from schedopt.schedule import schedule_from_solution
from schedopt.solution import Solution
from schedopt.theory import predicted_exponents

__all__ = ["RANKING_NOTE_RTOL", "Design"]

#: A baseline the model ranks this much (relative model loss) below a plateau-anneal design is noted.
RANKING_NOTE_RTOL = 1e-3


@dataclass(frozen=True, eq=False)
class Design:
    """An optimal schedule with its tuned baselines.

    Attributes:
        solution: the optimal-control solution.
        baselines: tuned baseline schedules by name (``TunedBaseline`` records).
        phase: ``easy``, ``hard`` or ``boundary``.
        exponents: ``(a, b)`` (fitted for custom spectra).
        files: paths written by :func:`write_design`, by kind.
    """

    solution: Solution
    baselines: Mapping[str, Any]
    phase: str
    exponents: tuple[float, float]
    files: Mapping[str, str] = field(default_factory=dict)
    warmup: Warmup | None = None
    form: Mapping[str, Any] = field(default_factory=lambda: {"form": "free"})

    @property
    def problem(self) -> Problem:
        """The problem as given (with a warmup: the full horizon, not the steps after it)."""
        return self.solution.problem if self.warmup is None else self.warmup.problem

    def schedule(self):
        """The designed :class:`~schedopt.schedule.Schedule` of the full horizon (warmup included)."""
        from schedopt.schedule._warmup import prepend_warmup

        schedule = schedule_from_solution(self.solution)
        if self.warmup is None:
            return schedule
        w = self.warmup
        return prepend_warmup(schedule, w.learning_rate, shape=w.shape, peak=w.peak)

    @property
    def notes(self) -> tuple[str, ...]:
        """Notes on the problem as solved: the stability threshold, when the learning-rate cap is at
        or above it (the solver's; else the baselines', at their batch size and momentum), and a
        baseline the model ranks below a plateau-anneal design (:meth:`_ranking_note`), and the
        ``jax`` solver's basin search when it moved the design off its first local minimum."""
        found = [self.solution.info.get("stability_note"), *(tb.note for tb in self.baselines.values())]
        search = self.solution.info.get("basin_search") or {}
        moved = (search["note"],) if search.get("chosen", "local minimum") != "local minimum" else ()
        return tuple(note for note in found if note)[:1] + moved + self._ranking_note()

    def _ranking_note(self) -> tuple[str, ...]:
        """A plateau chosen at the pilots' horizon that the model ranks below a baseline tuned at ``T``."""
        if self.form.get("plateau_chosen_at_horizon") is None or not self.baselines:
            return ()
        name, best = min(((n, tb.final_loss) for n, tb in self.baselines.items()), key=lambda item: item[1])
        if not best < self.solution.final_loss * (1.0 - RANKING_NOTE_RTOL):
            return ()
        gap = 1.0 - best / self.solution.final_loss
        return (
            f"the model ranks {name} {gap:.1%} (model loss) below the design at T = {self.problem.horizon}: "
            "the design keeps the plateau-anneal form (plateau chosen where the pilots ran and carried by "
            f"the phase rule, {self.form.get('anneal')} anneal over the last "
            f"{self.form.get('anneal_fraction', 0):.0%}), which measured better on real networks than the "
            "model's own choices past its pilots, where its extrapolation is least reliable "
            "(docs/calibration.md)",
        )

    def to_dict(self) -> dict[str, Any]:
        """The stable ``--json`` object of ``schedopt design`` (documented in README)."""
        sol = self.solution
        best = sol.final_loss
        a, b = self.exponents
        return {
            "problem": self.problem.name,
            "phase": self.phase,
            "a": a,
            "b": b,
            "horizon": self.problem.horizon,
            "n_modes": self.problem.model.n_modes,
            "batch_size": self.problem.training.batch_size,
            "sample_budget": self.problem.sample_budget,
            "controls": sorted(self.problem.controls),
            "baseline_batch_size": float(self.problem.mean_batch_size),  # what the baselines run at
            "noise_variance": self.problem.model.noise_variance,
            "loss_floor": self.problem.model.residual,
            "solver": sol.solver,
            "status": sol.status,
            "converged": sol.converged,
            "iterations": sol.iterations,
            "wall_time": sol.wall_time,
            "final_loss": best,
            "grid": {n: g.describe() for n, g in sol.grids.items()},
            "degeneracy": _degeneracy_summary(sol),
            "baselines": {
                name: {
                    "final_loss": tb.final_loss,
                    "ratio": tb.final_loss / best if best > 0 else float("inf"),
                    "params": dict(tb.params),
                    "status": tb.status,
                }
                for name, tb in self.baselines.items()
            },
            "predictions": predicted_exponents(a, b),
            "notes": list(self.notes),
            "warmup": None if self.warmup is None else self.warmup.to_dict(),
            "form": dict(self.form),
            "network": self._network_summary(),
            "files": dict(self.files),
        }

    def _network_summary(self) -> dict[str, Any] | None:
        """For a fitted spec: peak learning rates and final losses in the network's units."""
        units = self.problem.network
        if units is None:
            return None
        from schedopt.calibration.evidence import prediction_evidence

        lr = self.schedule().learning_rate
        reach = self.problem.horizon / units.pilot_horizon if units.pilot_horizon else None
        return {
            **units.to_dict(),
            "peak_learning_rate": float(units.network_learning_rate(lr.max())),
            "final_learning_rate": float(units.network_learning_rate(lr[-1])),
            "final_loss": float(units.network_loss(self.solution.final_loss)),
            # how far past the pilots the prediction reaches, and what such predictions measured on real
            # networks (None: a spec without its pilots' horizon)
            "prediction_evidence": None if reach is None else prediction_evidence(reach),
            "baselines": {
                name: {
                    "final_loss": float(units.network_loss(tb.final_loss)),
                    "peak_learning_rate": float(units.network_learning_rate(np.max(tb.learning_rate))),
                }
                for name, tb in self.baselines.items()
            },
        }


def _degeneracy_summary(solution: Solution) -> dict[str, Any] | None:
    """Flatness of a sample-budget optimum and whether the tie-break was applied (``None`` otherwise)."""
    report = solution.info.get("degeneracy")
    if not report:
        return None
    tie = report.get("tie_break")
    return {
        "flat_direction": report["flat_direction"],
        "flatness": report["flatness"],
        "degenerate": report["degenerate"],
        "steps_at_cap": report["steps_at_cap"],
        "tie_break_applied": bool(tie.get("applied")) if isinstance(tie, dict) else False,
    }
