r"""Many independent designs at once: :func:`design_many`.

Problems of equal shape (solver, horizon, controls and their parameter counts, number of
modes, momentum, sample budget) form a *group*; a group is cut into *chunks* of at most
``max_batch`` problems (and at most ``max_work`` stored trajectory entries, ``B T N``),
and a chunk is solved in lockstep (:mod:`schedopt.solvers._lockstep`): every problem runs
its own one-problem solve (solver ``jax``), and their objective evaluations and warm-start
sweeps are stacked into compiled ``vmap``-ped calls (elsewhere one a step; on a CPU, pieces
whose per-step state stays in cache, run on two threads a core while other solves run their
host code); problems with one model spectrum share its compression. Each problem keeps its
own optimiser state, stopping test and status, so the results equal one-by-one solves to
rounding (``tests/test_batch.py`` checks it).

Chunks are the unit a backend (:mod:`schedopt.backends`) hands out: the local backend runs
them one after another in this process, the Ray backend on a cluster's workers. How a group
is cut does not depend on the backend, so every backend evaluates the same vectorised calls
and returns the same numbers.

Results come back in input order: a :class:`~schedopt.solution.Solution` with its own
status, or an :class:`InvalidDesign` for a problem the solver rejected (the error names
the field), while the valid ones complete. Solvers other than ``jax`` solve a chunk one
problem after another.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from schedopt import _validate as v
from schedopt import backends as _backends  # noqa: F401  (registers how problems pickle, for workers)
from schedopt.errors import ProblemError, SchedoptError
from schedopt.problem import Problem
from schedopt.solution import Solution

if TYPE_CHECKING:
    from schedopt.solvers._options import SolverOptions

__all__ = ["MAX_BATCH", "MAX_WORK", "InvalidDesign", "chunks", "design_many"]

#: Problems per vectorised solve (a chunk): 256 problems of one shape cost ~5 % less CPU a design in
#: one chunk than in four of 64 (``benchmarks/README.md``, batched solves); ``max_work`` still bounds memory.
MAX_BATCH = 256
#: Entries of the per-step state a chunk may hold for its gradients, :math:`B\,T\,N` summed
#: over the chunk (2**26 float64 values: 0.5 GB per stored array).
MAX_WORK = 2**26


@dataclass(frozen=True, eq=False)
class InvalidDesign:
    """A problem the solver rejected: its place in the results of :func:`design_many`.

    Attributes:
        problem: the problem.
        message: the one-line error, naming the field.
        field: the offending field, when the error names one.
    """

    problem: Problem
    message: str
    field: str | None = None
    status: str = "invalid"

    @property
    def converged(self) -> bool:
        return False


def _shape_key(problem: Problem, solver: str, sizes: dict[tuple, int]) -> tuple:
    """``sizes``: parameters of each control grid met so far, by :func:`grid_key` (a batch's problems
    mostly share their grids, and building one costs ~0.3 ms)."""
    from schedopt.controls import grid_for
    from schedopt.solvers._common import grid_key

    layout = []
    try:
        for name in sorted(problem.controls):
            spec = problem.controls[name]
            key = grid_key(spec, problem.horizon)
            if key not in sizes:
                sizes[key] = grid_for(spec, problem.horizon).n_params
            layout.append((name, sizes[key]))
    except SchedoptError:  # reported when the chunk solves it
        return ("invalid", id(problem))
    layout = tuple(layout)
    return (
        solver,
        problem.horizon,
        layout,
        problem.model.n_modes,
        problem.training.momentum > 0,
        problem.sample_budget is not None,
    )


def _work(problem: Problem, options: SolverOptions | Mapping[str, Any] | None) -> int:
    """Per-step state entries of one problem's gradient (``T`` x modes solved on), without solving
    anything: the compressed spectrum's size is known from the options (computing it costs an eigh)."""
    from schedopt.dynamics.compression import worth_compressing
    from schedopt.solvers.jax._options import JaxOptions, _engine

    opts = JaxOptions.coerce(options)
    try:
        steps = 1024 if _engine(problem, opts) == "ode" else problem.horizon  # the ODE's grid is short
    except SchedoptError:
        return 1
    n = problem.model.n_modes
    exact, nodes = opts.compressed_exact, opts.compressed_nodes
    plain = "momentum" not in problem.controls and problem.training.momentum == 0
    if plain and (
        opts.modes == "compressed"
        or (opts.modes == "auto" and worth_compressing(n, exact=exact, nodes=nodes))
    ):
        n = min(n, exact + nodes)
    return steps * n


def chunks(
    problems: Sequence[Problem],
    solver: str = "jax",
    *,
    options: SolverOptions | Mapping[str, Any] | None = None,
    max_batch: int = MAX_BATCH,
    max_work: int = MAX_WORK,
) -> list[list[int]]:
    """Indices of ``problems`` cut into the chunks :func:`design_many` solves (see module docstring).

    Groups keep the order of their first member; a group of ``n`` problems needing ``k``
    chunks is cut into ``k`` near-equal consecutive pieces.
    """
    groups: dict[tuple, list[int]] = {}
    sizes: dict[tuple, int] = {}
    for i, p in enumerate(problems):
        groups.setdefault(_shape_key(p, solver, sizes), []).append(i)
    out = []
    for key, members in groups.items():
        per = max_batch
        if solver == "jax" and key[0] != "invalid":
            per = max(1, min(max_batch, max_work // max(1, _work(problems[members[0]], options))))
        count = math.ceil(len(members) / per)
        size, extra = divmod(len(members), count)
        start = 0
        for c in range(count):
            stop = start + size + (1 if c < extra else 0)
            out.append(members[start:stop])
            start = stop
    return out


def solve_chunk(
    problems: Sequence[Problem],
    solver: str,
    options: SolverOptions | Mapping[str, Any] | None,
    initial: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[Solution | InvalidDesign]:
    """Solve one chunk (in lockstep for solver ``jax``); a rejected problem becomes an :class:`InvalidDesign`.

    BLAS runs on one thread for the whole chunk (:func:`~schedopt._blas.one_blas_thread`), not only
    inside each solve: with the solves' own scopes alone, BLAS went back to its default between chunks
    and batches, and B = 64 took 1.1-2.1 s instead of 0.9-1.1 (``benchmarks/README.md``).
    """
    from schedopt._blas import one_blas_thread

    with one_blas_thread():
        return _solve_chunk(problems, solver, options, initial)


def _solve_chunk(problems, solver, options, initial) -> list[Solution | InvalidDesign]:
    from schedopt.solvers import _lockstep, solve

    inits = list(initial) if initial is not None else [None] * len(problems)
    tasks = [
        partial(solve, p, solver, throw=False, initial=init, options=options)
        for p, init in zip(problems, inits, strict=True)
    ]
    if solver == "jax":
        results, _ = _lockstep.run(tasks)
    else:
        results = []
        for task in tasks:
            try:
                results.append(task())
            except SchedoptError as exc:
                results.append(exc)
    out: list[Solution | InvalidDesign] = []
    for p, r in zip(problems, results, strict=True):
        if isinstance(r, SchedoptError):
            out.append(InvalidDesign(problem=p, message=str(r), field=getattr(r, "field", None)))
        elif isinstance(r, BaseException):
            raise r
        else:
            out.append(r)
    return out


def _solve_task(task: tuple) -> list[Solution | InvalidDesign]:
    problems, solver, options, initial = task
    return solve_chunk(problems, solver, options, initial)


def design_many(
    problems: Sequence[Problem],
    solver: str = "jax",
    *,
    options: SolverOptions | Mapping[str, Any] | None = None,
    initial: Sequence[Mapping[str, Any] | None] | None = None,
    backend: Any = "local",
    max_batch: int = MAX_BATCH,
    max_work: int = MAX_WORK,
    progress: Callable[[int, int], None] | None = None,
) -> list[Solution | InvalidDesign]:
    """Design the optimal schedule of every problem; equal shapes share vectorised solves.

    Args:
        problems: the problems (any mix of shapes).
        solver: ``"jax"`` (vectorised), ``"casadi"`` or ``"pontryagin"`` (one by one).
        options: the solver's options (its record, such as :class:`~schedopt.solvers.JaxOptions`,
            or a mapping of its fields), the same for every problem.
        initial: starting parameters per problem (``None`` entries: the solver's default).
        backend: ``"local"``, ``"ray"``, or a backend from :func:`schedopt.backends.get_backend`.
        max_batch: problems per vectorised solve.
        max_work: bound on :math:`\\sum B\\,T\\,N` of a vectorised solve (memory of its gradients).
        progress: called with ``(designs done, designs)`` as chunks finish.

    Returns:
        One entry per problem, in input order: a :class:`~schedopt.solution.Solution`
        (its ``status`` says whether it converged) or an :class:`InvalidDesign`.

    Raises:
        ProblemError: an unknown solver, bad options or bad batch settings (the message names
            the field); errors of one problem are returned in its place instead.
    """
    from schedopt.backends import get_backend
    from schedopt.solvers import SOLVERS

    if solver not in SOLVERS:
        raise ProblemError(f"`solver` must be one of {', '.join(SOLVERS)}, got {solver!r}", field="solver")
    if solver == "jax":
        from schedopt.solvers.jax._options import JaxOptions

        JaxOptions.coerce(options)  # bad options: one error for the call, not one per problem
    max_batch = v.positive_int("max_batch", max_batch)
    max_work = v.positive_int("max_work", max_work)
    problems = list(problems)
    for i, p in enumerate(problems):
        if not isinstance(p, Problem):
            raise ProblemError(f"`problems[{i}]` must be a Problem, got {type(p).__name__}", field="problems")
    if initial is not None and len(initial) != len(problems):
        raise ProblemError(
            f"`initial` must have one entry per problem ({len(problems)}), got {len(initial)}",
            field="initial",
        )
    if not problems:
        return []
    pieces = chunks(problems, solver, options=options, max_batch=max_batch, max_work=max_work)
    tasks = [
        (
            [problems[i] for i in piece],
            solver,
            dict(options) if isinstance(options, Mapping) else options,
            [initial[i] for i in piece] if initial is not None else None,
        )
        for piece in pieces
    ]
    weights = [len(piece) for piece in pieces]
    if isinstance(backend, str):  # a backend started here is stopped here
        with get_backend(backend) as engine:
            solved = engine.map(_solve_task, tasks, weights=weights, progress=progress)
    else:
        solved = backend.map(_solve_task, tasks, weights=weights, progress=progress)
    out: list[Solution | InvalidDesign | None] = [None] * len(problems)
    for piece, results in zip(pieces, solved, strict=True):
        for i, r in zip(piece, results, strict=True):
            out[i] = r
    return out  # type: ignore[return-value]
