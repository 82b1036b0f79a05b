"""Tuning at long horizons: the search at a tenth of the horizon, the optimum polished at the horizon.

The tuning runs every candidate schedule through the exact recursion, work ``T·n`` each (``n``
the objective's modes: the compressed spectrum's 128 for a large plain-SGD model), and needs a
few hundred of them. The optimal parameters move slowly with ``T``
(peak and shape drift with ``log T``), so above :data:`LONG_WORK` the grid and the local searches
run at ``T // SHORTER_BY`` and each distinct optimum found there within :data:`POLISH_MARGIN` of the
best is polished at ``T`` by the same trust-region search, on the exact recursion: the result is
an optimum at ``T`` to the search's tolerance, as before (measured against the search at ``T`` in
``benchmarks/README.md``). Below :data:`LONG_WORK` the search runs at ``T``, unchanged.
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
#: The shorter horizon is ``T // SHORTER_BY``.
SHORTER_BY = 10
#: Optima of the shorter horizon within this fraction of its best loss are polished at ``T`` too
#: (two basins of nearly equal loss may swap with the horizon).
POLISH_MARGIN = 0.01
#: First trust radius of the polish (scaled coordinates; it doubles while steps succeed).
POLISH_RADIUS = 0.1


def shorter_horizon(obj: _Objective, horizon: int | None) -> int:
    """The horizon the search runs at: ``horizon`` if given (checked), else ``T // SHORTER_BY``
    when a schedule's work exceeds :data:`LONG_WORK`, else ``T``."""
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
    return max(full // SHORTER_BY, 1)


def polish(obj: _Objective, found: list[_Search], tol: float, max_iterations: int) -> _Search:
    """The best of the trust-region searches at ``obj``'s horizon from the optima ``found`` at a shorter one.

    Starts: the optima within :data:`POLISH_MARGIN` of the best, best first, one per basin
    (:data:`MERGE_DISTANCE` apart). The objective pads its calls to the fewest rows
    (``fitted_batches``): at a long horizon a row costs more than compiling a program.
    """
    finite = [f for f in found if math.isfinite(f.loss)]
    best = min(f.loss for f in finite)
    starts: list[_Search] = []
    for f in sorted(finite, key=lambda f: f.loss):
        near = any(np.linalg.norm(f.u - s.u) < MERGE_DISTANCE for s in starts)
        if f.loss <= best * (1.0 + POLISH_MARGIN) and not near:
            starts.append(f)
    obj.fitted_batches = True
    result = None
    for start in starts:
        polished = _refine(obj, start.u, None, POLISH_RADIUS, tol, max_iterations, from_estimate=True)
        if result is None or polished.loss < result.loss:
            result = polished
    return result
