"""Design a schedule end to end: solve, tune the baselines on the same engine, report, write files.

This is what ``schedopt design`` runs; the CLI only parses options and prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schedopt._io import atomic_write_text
from schedopt.dynamics.recursion import loss_curve
from schedopt.errors import SolverError
from schedopt.problem import Problem
from schedopt.schedule import save_schedule, schedule_from_solution
from schedopt.solution import Solution
from schedopt.solvers import solve
from schedopt.theory import estimate_exponents, phase, predicted_exponents

__all__ = ["Design", "design", "write_design"]


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

    @property
    def problem(self) -> Problem:
        return self.solution.problem

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
            "noise_variance": self.problem.model.noise_variance,
            "loss_floor": self.problem.model.residual,
            "solver": sol.solver,
            "status": sol.status,
            "converged": sol.converged,
            "iterations": sol.iterations,
            "wall_time": sol.wall_time,
            "final_loss": best,
            "grid": {n: g.describe() for n, g in sol.grids.items()},
            "baselines": {
                name: {
                    "final_loss": tb.final_loss,
                    "ratio": tb.final_loss / best if best > 0 else float("inf"),
                    "params": dict(tb.params),
                }
                for name, tb in self.baselines.items()
            },
            "predictions": predicted_exponents(a, b),
            "files": dict(self.files),
        }


def design(
    problem: Problem,
    *,
    solver: str = "jax",
    baselines: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Design:
    """Solve ``problem`` and tune the baselines; never raises on non-convergence (see status).

    Args:
        baselines: names of baseline families to tune (default: all); ``()`` for none.
    """
    from schedopt.baselines import tune_baselines

    solution = solve(problem, solver=solver, throw=False, options=options)
    tuned = tune_baselines(problem, names=baselines) if baselines != () else {}
    return Design(
        solution=solution,
        baselines=tuned,
        phase=phase(problem.model),
        exponents=estimate_exponents(problem.model),
    )


def write_design(result: Design, out_dir: str | Path, *, force: bool = False, plot: bool = True) -> Design:
    """Write ``schedule.json``, ``schedule.csv``, ``design.json`` and ``design.png`` to ``out_dir``.

    A solve that did not converge is written only with ``force=True``; the files then
    say ``"converged": false``. Every file is written atomically.
    """
    sol = result.solution
    if not sol.converged and not force:
        raise SolverError(
            f"solver {sol.solver!r} stopped with status {sol.status!r}: {sol.message}; "
            "nothing written (use --force to write the unconverged schedule)"
        )
    out = Path(out_dir)
    files = {"schedule_json": str(out / "schedule.json"), "schedule_csv": str(out / "schedule.csv")}
    schedule = schedule_from_solution(sol)
    save_schedule(schedule, files["schedule_json"])
    save_schedule(schedule, files["schedule_csv"])
    if plot:
        files["plot"] = str(out / "design.png")
        _plot(result, files["plot"])
    files["report"] = str(out / "design.json")
    written = Design(sol, result.baselines, result.phase, result.exponents, files)
    atomic_write_text(files["report"], json.dumps(written.to_dict(), indent=1) + "\n")
    return written


def _plot(result: Design, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from schedopt.plots import plot_loss_curves, plot_schedules, save_figure

    sol = result.solution
    problem = sol.problem
    schedules = {f"optimal ({sol.solver})": sol.per_step("learning_rate")}
    schedules.update({name: tb.learning_rate for name, tb in result.baselines.items()})
    lr = np.stack(list(schedules.values()))
    curves = loss_curve(problem.model, lr, batch_size=problem.training.batch_size).loss
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    highlight = next(iter(schedules))
    plot_schedules(schedules, ax=ax1, highlight=highlight)
    plot_loss_curves(dict(zip(schedules, curves, strict=True)), ax=ax2, highlight=highlight)
    ax1.set_title(f"{problem.name}: learning rate ({result.phase} phase)")
    ax2.set_title(f"final loss {sol.final_loss:.4g} ({sol.status})")
    save_figure(fig, path)
