"""The plateau–anneal form: how a schedule is designed for a network fitted from real runs.

A free-form optimum of a fitted model is a poor schedule for the network it was
fitted to. On every real task measured (``benchmarks/realtasks.py``, and the tiny
GPT before it) the free-form design lost to WSD run at the design's own peak:
the fitted model lets the learning rate sag through the middle of the run (its
noise and null-mode penalties grow with time spent at a high rate), where the
network would rather keep it up, and a model fitted to every run of a task's
sweep put a high rate just after the warmup that destabilised the network on one
seed. Those are extrapolations: no pilot ran such shapes.

So for a fitted problem the design keeps the shape the hard phase's optimum has
(``docs``: a plateau of order one, then an anneal; it is also the shape every
pilot ran) and lets the model choose what it was fitted to tell: the plateau's
height and the anneal's profile, one control block per stretch of a geometric
grid that is finest at the end. The anneal spans the pilots' fraction of the
horizon (``ANNEAL_FRACTIONS``: a fifth): longer anneals let the sag back in
(measured: with 0.2–0.5 allowed the model took 0.5 and spent it as a second,
lower plateau), and in the hard phase the optimal anneal fraction only shrinks
as the horizon grows past the pilots'.

Every candidate is an exact optimal-control solve of the fitted problem on the
restricted control grid; the best by the model's own final loss is returned with
the table of all candidates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from schedopt.controls import block_edges
from schedopt.errors import ProblemError
from schedopt.problem import Problem

__all__ = [
    "ANNEAL_BLOCKS",
    "ANNEAL_FRACTIONS",
    "FormChoice",
    "plateau_anneal",
    "plateau_anneal_problem",
    "transferred_plateau",
]

ANNEAL_FRACTIONS = (0.2,)
"""Anneal lengths tried, as fractions of the horizon (the pilots of ``schedopt pilots`` anneal over 0.2)."""

ANNEAL_BLOCKS = 24
"""Control blocks of the anneal (geometric, finest at the end); the plateau is one block."""


def plateau_anneal_edges(
    horizon: int, anneal_fraction: float, blocks: int = ANNEAL_BLOCKS
) -> tuple[int, ...]:
    """Block edges: one plateau block ``[0, s)`` then ``blocks`` anneal blocks up to the horizon."""
    if not 0.0 < anneal_fraction < 1.0:
        raise ProblemError(
            f"anneal fraction must be in (0, 1), got {anneal_fraction!r}", field="anneal_fraction"
        )
    tail = int(round(anneal_fraction * horizon))
    if tail < 1 or tail >= horizon:
        raise ProblemError(
            f"anneal fraction {anneal_fraction:g} of horizon {horizon} leaves no plateau or no anneal",
            field="anneal_fraction",
        )
    blocks = min(blocks, tail)
    start = horizon - tail
    anneal = block_edges(tail, blocks, "geometric-end") + start
    return (0, *(int(e) for e in anneal))


def plateau_anneal_problem(problem: Problem, anneal_fraction: float, blocks: int = ANNEAL_BLOCKS) -> Problem:
    """The problem with its learning rate restricted to a constant plateau and a free anneal."""
    edges = plateau_anneal_edges(problem.horizon, anneal_fraction, blocks)
    return problem.with_control(
        "learning_rate", grid="custom", edges=edges, blocks=len(edges) - 1, parameterisation="constant"
    )


@dataclass(frozen=True, eq=False)
class FormChoice:
    """The plateau–anneal design and how it was chosen.

    Attributes:
        solution: the chosen solve. With a pinned plateau it is the solve of the
            anneal only (the steps after ``prefix``), from the state the plateau leaves.
        anneal_fraction: the chosen anneal length, as a fraction of the horizon.
        candidates: ``(anneal fraction, final model loss, status)`` of every solve.
        prefix: the pinned plateau's learning rates (model units), or ``None``.
        peak_horizon: the horizon the plateau height was chosen at, or ``None``.
    """

    solution: object  # schedopt.solution.Solution
    anneal_fraction: float
    candidates: tuple[tuple[float, float, str], ...]
    prefix: np.ndarray | None = None
    peak_horizon: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def plateau(self) -> float:
        """The plateau's learning rate (model units)."""
        if self.prefix is not None:
            return float(self.prefix[0])
        return float(np.asarray(self.solution.per_step("learning_rate"))[0])

    def to_dict(self) -> dict:
        return {
            "form": "plateau-anneal",
            "anneal_fraction": self.anneal_fraction,
            "plateau_model_learning_rate": self.plateau,
            "plateau_chosen_at_horizon": self.peak_horizon,
            "notes": list(self.notes),
            "candidates": [
                {"anneal_fraction": f, "final_loss": loss if np.isfinite(loss) else None, "status": status}
                for f, loss, status in self.candidates
            ],
        }


def _after_plateau(problem: Problem, level: float, steps: int, blocks: int) -> Problem:
    """The anneal's problem: the steps after ``steps`` updates at ``level``, from the state they leave."""
    from schedopt.design import problem_after_prefix

    anneal = problem.with_control(
        "learning_rate",
        max=level,
        blocks=min(blocks, problem.horizon - steps),
        grid="geometric-end",
        parameterisation="constant",
    )
    return problem_after_prefix(anneal, np.full(steps, level))


def transferred_plateau(problem: Problem, level: float, peak_horizon: int) -> float:
    r"""A plateau chosen at ``peak_horizon`` carried to the problem's horizon by the phase rule.

    The optimal peak scales as :math:`T^{-\xi}` with :math:`\xi = 1 - b/a` in the easy
    phase and :math:`\xi = 0` in the hard phase (``docs``, §4), capped at the problem's
    learning-rate cap.
    """
    from schedopt.theory import estimate_exponents, predicted_exponents

    a, b = estimate_exponents(problem.model)
    xi = predicted_exponents(a, b)["xi"] or 0.0
    return float(min(level * (problem.horizon / peak_horizon) ** (-xi), problem.learning_rate.max))


def plateau_anneal(
    problem: Problem,
    *,
    fractions: Sequence[float] = ANNEAL_FRACTIONS,
    blocks: int = ANNEAL_BLOCKS,
    solver: str = "jax",
    options: Mapping[str, Any] | None = None,
    peak_horizon: int | None = None,
) -> FormChoice:
    """Solve the problem in the plateau–anneal form for each anneal fraction; keep the best.

    With ``peak_horizon`` shorter than the horizon (a fitted spec's: its longest
    pilot), the plateau's height is the form's optimum at ``peak_horizon``, where the
    model was fitted, carried to the horizon by the phase rule
    (:func:`transferred_plateau`) and pinned; the model then shapes the anneal only.
    A fitted model extrapolated in time misplaces the peak more than it misplaces the
    anneal (``benchmarks/README.md``).

    Never raises on non-convergence: when no candidate converged, the one with the
    lowest loss is returned with its status.

    Raises:
        ProblemError: no fraction fits the horizon, or the problem designs more than the learning rate.
    """
    from schedopt.solvers import solve

    extra = [name for name in problem.controls if name != "learning_rate"]
    if extra:
        raise ProblemError(
            f"the plateau-anneal form designs the learning rate only; the spec also designs {extra[0]}",
            field="form",
        )
    level = None
    if peak_horizon is not None and peak_horizon < problem.horizon:
        short = plateau_anneal(
            problem.at_horizon(int(peak_horizon)),
            fractions=fractions,
            blocks=blocks,
            solver=solver,
            options=options,
        )
        level = transferred_plateau(problem, short.plateau, int(peak_horizon))
    candidates, solutions, prefixes, best = [], [], [], None
    for fraction in fractions:
        if level is None:
            restricted, prefix = plateau_anneal_problem(problem, float(fraction), blocks), None
        else:
            start = plateau_anneal_edges(problem.horizon, float(fraction), blocks)[1]  # the plateau's end
            restricted, prefix = _after_plateau(problem, level, start, blocks), np.full(start, level)
        solution = solve(restricted, solver=solver, throw=False, options=options)
        loss = float(solution.final_loss)
        candidates.append((float(fraction), loss, str(solution.status)))
        solutions.append(solution)
        prefixes.append(prefix)
        if solution.converged and np.isfinite(loss) and (best is None or loss < candidates[best][1]):
            best = len(candidates) - 1
    if best is None:  # nothing converged: the candidate with the lowest loss, with its status
        best = int(np.argmin([c[1] if np.isfinite(c[1]) else np.inf for c in candidates]))
    choice = FormChoice(
        solution=solutions[best],
        anneal_fraction=candidates[best][0],
        candidates=tuple(candidates),
        prefix=prefixes[best],
        peak_horizon=None if level is None else int(peak_horizon),
    )
    return dataclasses.replace(choice, notes=_cap_notes(problem, choice.plateau))


def _cap_notes(problem: Problem, plateau: float) -> tuple[str, ...]:
    """A plateau at the learning-rate cap says the best peak may lie above it: say so, in the units read."""
    cap = problem.learning_rate.max
    if plateau < cap * (1 - 1e-6):
        return ()
    units = problem.network
    if units is None:
        return (f"the plateau sits at the learning-rate cap {cap:.4g}: the best peak may be higher",)
    network = float(units.network_learning_rate(cap))
    return (
        f"the plateau sits at the learning-rate cap, the largest pilot's {network:.4g}: the best peak "
        f"may be higher than any pilot tried; a pilot at {2 * network:.4g} would tell",
    )
