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
height, where the anneal starts, and the anneal's profile, one control block
per stretch of a geometric grid that is finest at the end. The anneal is never
shorter than ``min(ANNEAL_FRACTIONS)`` of the horizon: the pilots anneal over
a fifth of their length, and a shorter anneal would be a shape the fit never saw.

Every candidate is an exact optimal-control solve of the fitted problem on the
restricted control grid; the best by the model's own final loss is returned with
the table of all candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from schedopt.controls import block_edges
from schedopt.errors import ProblemError
from schedopt.problem import Problem

__all__ = ["ANNEAL_BLOCKS", "ANNEAL_FRACTIONS", "FormChoice", "plateau_anneal", "plateau_anneal_problem"]

ANNEAL_FRACTIONS = (0.2, 0.3, 0.4, 0.5)
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
    """The plateau–anneal design: the chosen solution, its anneal fraction, and every candidate's loss."""

    solution: object  # schedopt.solution.Solution
    anneal_fraction: float
    candidates: tuple[tuple[float, float, str], ...]  # (anneal fraction, final model loss, status)

    def to_dict(self) -> dict:
        return {
            "form": "plateau-anneal",
            "anneal_fraction": self.anneal_fraction,
            "candidates": [
                {"anneal_fraction": f, "final_loss": loss if np.isfinite(loss) else None, "status": status}
                for f, loss, status in self.candidates
            ],
        }


def plateau_anneal(
    problem: Problem,
    *,
    fractions: Sequence[float] = ANNEAL_FRACTIONS,
    blocks: int = ANNEAL_BLOCKS,
    solver: str = "jax",
    options: Mapping[str, Any] | None = None,
) -> FormChoice:
    """Solve the problem in the plateau–anneal form for each anneal fraction; keep the best.

    Raises:
        ProblemError: no fraction fits the horizon, or the problem designs more than the learning rate.
    Never raises on non-convergence: when no candidate converged, the one with the
    lowest loss is returned with its status.
    """
    from schedopt.solvers import solve

    extra = [name for name in problem.controls if name != "learning_rate"]
    if extra:
        raise ProblemError(
            f"the plateau-anneal form designs the learning rate only; the spec also designs {extra[0]}",
            field="form",
        )
    candidates, solutions, best = [], [], None
    for fraction in fractions:
        solution = solve(
            plateau_anneal_problem(problem, float(fraction), blocks),
            solver=solver,
            throw=False,
            options=options,
        )
        loss = float(solution.final_loss)
        candidates.append((float(fraction), loss, str(solution.status)))
        solutions.append(solution)
        if solution.converged and np.isfinite(loss) and (best is None or loss < best[1].final_loss):
            best = (float(fraction), solution)
    if best is None:  # nothing converged: the candidate with the lowest loss, with its status
        solutions = [s for s in solutions if s is not None]
        index = int(np.argmin([c[1] if np.isfinite(c[1]) else np.inf for c in candidates]))
        best = (candidates[index][0], solutions[index])
    return FormChoice(solution=best[1], anneal_fraction=best[0], candidates=tuple(candidates))
