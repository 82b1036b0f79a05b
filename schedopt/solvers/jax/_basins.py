"""Basin search of the ``jax`` solver: a cheap learning-rate problem whose local minimum chatters at its cap.

With about one step per learning-rate block and a cap near the stability threshold, the
optimum alternates blocks at the cap with blocks below it (a large step for the slow modes,
a smaller one that damps the fast modes the large step nearly destabilises). Which blocks sit
at the cap is combinatorial: every arrangement is a local minimum of its own, and L-BFGS-B
stops at the first it meets. On the seed paper's default problem with the cap at the
threshold (a = b = 2, N = 500, batch 5, T = 100, one block per step) the local minimum from
the Pontryagin warm start has gaps of one and two blocks between its capped blocks, and a
strict alternation over the same stretch is a lower minimum than IPOPT's.

The search (option ``basin_search = "auto"``, :func:`with_basin_search`) runs when

* the problem is cheap and of the class whose moves are learning rates: a learning-rate
  control alone, plain SGD at a fixed batch size, no sample budget, the exact recursion, and
  ``T * N <= basin_work``; and
* the converged local minimum *chatters*: its blocks at the cap are not one contiguous
  stretch (a plateau at the cap followed by an anneal, the usual shape, does not trigger it,
  and costs nothing).

It then re-solves from the two strict alternations over the stretch from the block before
the first capped one to the block after the last (capped blocks on the even or on the odd
positions, the others at the local minimum's values interpolated across its capped blocks),
each an ordinary solve without warm start, and keeps the lowest converged loss if it beats
the local minimum by more than :data:`RTOL` (relative). ``info["basin_search"]`` reports the
trigger, every start's loss and status, which point was kept and a note saying so, which the
message carries (and a design's notes, when the search moved the point).
Single-block flips of the cap status (a greedy search, each flip re-solved) also climb out
of the first minimum, but one flip at a time through many intermediate minima, and from the
alternation's minimum they found nothing lower; the two alternation starts cost two solves
(measured in ``benchmarks/README.md``, ``benchmarks/basins.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from schedopt.solution import Solution
from schedopt.solvers.jax._options import JaxOptions
from schedopt.status import Status

#: A block counts as at the cap when within this (relative) of it.
CAP_RTOL = 1e-9

#: An alternation's minimum replaces the local minimum only if lower by more than this (relative).
RTOL = 1e-9


def eligible(solution: Solution, opts: JaxOptions) -> bool:
    """The problem class and size of the search (see the module docstring), and a converged start."""
    problem = solution.problem
    return (
        opts.basin_search == "auto"
        and solution.status == Status.CONVERGED
        and np.isfinite(solution.final_loss)
        and solution.info.get("engine") == "recursion"
        and set(problem.controls) == {"learning_rate"}
        and problem.training.momentum == 0
        and problem.sample_budget is None
        and float(problem.horizon) * problem.model.n_modes <= float(opts.basin_work)
    )


def capped_blocks(values: np.ndarray, cap: float) -> np.ndarray:
    """Indices of the learning-rate parameters at the cap."""
    return np.flatnonzero(values >= cap * (1.0 - CAP_RTOL))


def chatters(values: np.ndarray, cap: float) -> bool:
    """At least two blocks at the cap, with a block below it between them."""
    at = capped_blocks(values, cap)
    return at.size >= 2 and at[-1] - at[0] + 1 > at.size


def alternations(values: np.ndarray, cap: float) -> list[tuple[str, np.ndarray]]:
    """The two strict alternations over the chattering stretch of ``values`` (labels, parameters)."""
    at = capped_blocks(values, cap)
    n = values.size
    below = np.setdiff1d(np.arange(n), at)
    if below.size == 0:
        return []
    # the local minimum's values below the cap, interpolated across its capped blocks
    smooth = np.interp(np.arange(n), below, values[below])
    first, last = max(int(at[0]) - 1, 0), min(int(at[-1]) + 1, n - 1)
    starts = []
    for offset in (0, 1):
        start = smooth.copy()
        start[first + offset : last + 1 : 2] = cap
        label = f"cap on every other block of {first}..{last}, from {first + offset}"
        starts.append((label, start))
    return starts


def with_basin_search(solution: Solution, opts: JaxOptions, solve_from) -> Solution:
    """``solution``, or the lowest minimum of the alternation starts (``solve_from(problem, values)``)."""
    if not eligible(solution, opts):
        return solution
    problem = solution.problem
    cap = float(problem.learning_rate.max)
    values = np.asarray(solution.parameters["learning_rate"], dtype=np.float64)
    if not chatters(values, cap):
        return solution
    at = capped_blocks(values, cap)
    runs: list[dict[str, Any]] = [
        {
            "start": "local minimum",
            "final_loss": solution.final_loss,
            "status": str(solution.status),
            "iterations": solution.iterations,
        }
    ]
    best, chosen = solution, "local minimum"
    iterations, evaluations = solution.iterations, int(solution.info.get("evaluations", 0))
    for label, start in alternations(values, cap):
        candidate = solve_from(problem, start)
        iterations += candidate.iterations
        evaluations += int(candidate.info.get("evaluations", 0))
        runs.append(
            {
                "start": label,
                "final_loss": candidate.final_loss,
                "status": str(candidate.status),
                "iterations": candidate.iterations,
            }
        )
        if (
            candidate.status == Status.CONVERGED
            and np.isfinite(candidate.final_loss)
            and candidate.final_loss < best.final_loss * (1.0 - RTOL)
        ):
            best, chosen = candidate, label
    if best is solution:
        note = f"basin search: no alternation start beat the local minimum {solution.final_loss:.9g}"
    else:
        note = (
            f"basin search: the alternation start ({chosen}) lowered the loss from "
            f"{solution.final_loss:.9g} (local minimum) to {best.final_loss:.9g}"
        )
    report = {
        "trigger": f"{at.size} blocks at the cap between blocks {at[0]} and {at[-1]}, not contiguous",
        "chosen": chosen,
        "local_minimum_loss": solution.final_loss,
        "runs": runs,
        "note": note,
    }
    info = {**best.info, "basin_search": report, "evaluations": evaluations}
    if best is not solution:
        info["warm_start_sweeps"] = solution.info.get("warm_start_sweeps", 0)
    message = "; ".join(m for m in (best.message, note) if m)
    # wall_time: the caller times the whole solution, this search included (solve_jax_many)
    return dataclasses.replace(best, iterations=iterations, message=message, info=info)
