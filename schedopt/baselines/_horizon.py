"""Tuning at long horizons: the search at a shorter horizon, its optima carried to the horizon.

The tuning runs every candidate schedule through the exact recursion, work ``T·n`` each (``n``
the objective's modes: the compressed spectrum's 128 for a large plain-SGD model), and needs a
few hundred of them. The optimal parameters drift slowly and smoothly with ``log T``, so above
:data:`LONG_WORK` the grid and the local searches run at ``h = T // SHORTER_BY`` (at least
:data:`MIN_SEARCH_HORIZON` steps), and each distinct optimum found there within
:data:`POLISH_MARGIN` of the best is carried to ``T``: polished at the geometric mean
:math:`\\sqrt{hT}` (loosely: it only has to tell the drift), extrapolated linearly in
:math:`\\log T` to ``T``, and polished there by the same trust-region search on the exact
recursion. The result is an optimum at ``T`` to the search's tolerance, as before (measured
against the search at ``T`` in ``benchmarks/README.md``). Below :data:`LONG_WORK` the search runs
at ``T``, unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from schedopt import _validate as v
from schedopt.baselines._objective import _Objective
from schedopt.baselines._search import MERGE_DISTANCE, _refine, _Search
from schedopt.errors import ProblemError

#: Work of one schedule (steps × the objective's modes) above which the search runs at a shorter
#: horizon (``T`` above ~4e5 on the 128 modes of a compressed spectrum).
LONG_WORK = 5e7
#: The search's horizon is ``T // SHORTER_BY`` ...
SHORTER_BY = 100
#: ... but at least this many steps (a much shorter run may not have the landscape's shape).
MIN_SEARCH_HORIZON = 1000
#: Optima of the shorter horizon within this fraction of its best loss are carried to ``T`` too
#: (two basins of nearly equal loss may swap with the horizon).
POLISH_MARGIN = 0.01
#: First trust radius of the polishes, and the longest extrapolation step (scaled coordinates).
POLISH_RADIUS = 0.1


def shorter_horizon(obj: _Objective, horizon: int | None) -> int:
    """The horizon the search runs at: ``horizon`` if given (checked), else ``T // SHORTER_BY`` (at
    least :data:`MIN_SEARCH_HORIZON`) when a schedule's work exceeds :data:`LONG_WORK`, else ``T``."""
    full = obj.horizon
    if horizon is not None:
        horizon = v.positive_int("search_horizon", horizon)
        if horizon > full:
            raise ProblemError(
                f"`search_horizon` must be at most the horizon {full}, got {horizon}", field="search_horizon"
            )
        return horizon
    if float(full) * obj.n_modes <= LONG_WORK:
        return full
    return min(full, max(full // SHORTER_BY, MIN_SEARCH_HORIZON))


def _distinct(found: list[_Search]) -> list[_Search]:
    """The optima within :data:`POLISH_MARGIN` of the best, best first, one per basin (:data:`MERGE_DISTANCE`)."""
    finite = sorted((f for f in found if math.isfinite(f.loss)), key=lambda f: f.loss)
    starts: list[_Search] = []
    for f in finite:
        near = any(np.linalg.norm(f.u - s.u) < MERGE_DISTANCE for s in starts)
        if f.loss <= finite[0].loss * (1.0 + POLISH_MARGIN) and not near:
            starts.append(f)
    return starts


def _extrapolated(u0: np.ndarray, u1: np.ndarray, h0: int, h1: int, horizon: int) -> np.ndarray:
    """The optimum at ``horizon`` extrapolated linearly in ``log T`` from ``u0`` at ``h0`` and ``u1`` at
    ``h1``; the step at most :data:`POLISH_RADIUS` long, the point within the bounds."""
    step = (u1 - u0) * (math.log(horizon / h1) / math.log(h1 / h0))
    length = float(np.linalg.norm(step))
    if length > POLISH_RADIUS:
        step *= POLISH_RADIUS / length
    return np.clip(u1 + step, 0.0, 1.0)


def polish(
    obj: _Objective, short: _Objective, found: list[_Search], tol: float, max_iterations: int
) -> _Search:
    """The best optimum at ``obj``'s horizon reached from the optima ``found`` at ``short``'s.

    Each start (:func:`_distinct`) is polished at the geometric mean of the two horizons to
    ``sqrt(tol)``, extrapolated (:func:`_extrapolated`) and polished at the horizon to ``tol``.
    Both objectives pad their calls to the fewest rows (``fitted_batches``): at long horizons a
    row costs more than compiling a program. ``obj.evaluations`` counts the schedules run at the
    middle horizon too.
    """
    h0, horizon = short.horizon, obj.horizon
    h1 = round(math.sqrt(h0 * horizon))
    obj.fitted_batches = True
    middle = obj.at_horizon(h1) if h0 < h1 < horizon else None  # a copy: fitted batches too
    result = None
    for start in _distinct(found):
        u = start.u
        if middle is not None:
            mid = _refine(
                middle, start.u, None, POLISH_RADIUS, math.sqrt(tol), max_iterations, from_estimate=True
            )
            if math.isfinite(mid.loss):
                u = _extrapolated(start.u, mid.u, h0, h1, horizon)
        polished = _refine(obj, u, None, POLISH_RADIUS, tol, max_iterations, from_estimate=True)
        if result is None or polished.loss < result.loss:
            result = polished
    obj.evaluations += 0 if middle is None else middle.evaluations
    return result
