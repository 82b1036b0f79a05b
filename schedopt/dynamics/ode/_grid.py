"""The time grid of the ODE: block edges, sub-steps, geometric refinement toward ``t = 0`` and ``t = T``."""

from __future__ import annotations

import math

import numpy as np

from schedopt.errors import ProblemError

#: Default grid: first step (in optimiser steps) and growth factor of the
#: geometric refinement from ``t = 0`` and toward ``t = T``.
FIRST_STEP = 0.125
GROWTH = 1.05
#: Default number of equal sub-steps every control block is split into.
SUBSTEPS = 2


# --------------------------------------------------------------------------- #
# time grid                                                                   #
# --------------------------------------------------------------------------- #


def _graded(length: float, first: float, growth: float) -> np.ndarray:
    """Offsets ``0 < s_1 < ... < length`` with spacing ``max(first, (growth - 1) * s)``."""
    switch = first / (growth - 1.0)
    uniform = np.arange(first, min(switch, length), first)
    start = max(switch, first)
    if start >= length:
        return uniform
    n = int(math.ceil(math.log(length / start) / math.log(growth)))
    return np.concatenate([uniform, start * growth ** np.arange(n)])


def time_grid(
    horizon: int,
    edges=None,
    *,
    first_step: float = FIRST_STEP,
    growth: float = GROWTH,
    substeps: int = SUBSTEPS,
    refine_edges: bool = False,
    include=None,
    multiple: int = 1,
) -> np.ndarray:
    """Integration times ``0 = t_0 < ... < t_n = horizon`` for the exponential integrator.

    The union of: the block edges (required: the learning rate is linear between
    grid points); ``substeps`` equal parts of every block; a geometric sequence
    ``first_step * growth**i`` from ``t = 0`` (the loss moves fast early) and the
    same toward ``t = horizon`` (the final anneal); with ``refine_edges`` the same
    sequence after every block edge (for piecewise-constant learning rates with
    large jumps); and the times in ``include`` (save times). Optional points
    closer than ``first_step / 4`` to a required point or to each other are dropped.

    Args:
        horizon: ``T`` in steps.
        edges: block edges (default ``[0, T]``).
        first_step: smallest grid step near ``0`` and ``T``, in steps.
        growth: ratio of consecutive geometric steps (> 1).
        substeps: minimum number of grid steps per block.
        refine_edges: refine geometrically after every block edge too.
        include: extra required times in ``[0, T]``.
        multiple: pad the number of steps up to a multiple of this by halving the
            widest steps, so that grids of nearby horizons share one compilation.
    """
    horizon = float(horizon)
    if not horizon > 0:
        raise ProblemError(f"`horizon` must be positive, got {horizon!r}", field="horizon")
    if not first_step > 0:
        raise ProblemError(f"`first_step` must be positive, got {first_step!r}", field="first_step")
    if not growth > 1:
        raise ProblemError(f"`growth` must be > 1, got {growth!r}", field="growth")
    for name, value in (("substeps", substeps), ("multiple", multiple)):
        if int(value) != value or value < 1:
            raise ProblemError(f"`{name}` must be a positive integer, got {value!r}", field=name)
    e = np.array([0.0, horizon] if edges is None else edges, dtype=np.float64)
    required = [e, [0.0, horizon]]
    if include is not None:
        inc = np.asarray(include, dtype=np.float64).ravel()
        if np.any((inc < 0) | (inc > horizon)):
            raise ProblemError(f"`include` times must lie in [0, {horizon:g}]", field="include")
        required.append(inc)
    req = np.unique(np.concatenate(required))
    geo = _graded(horizon, first_step, growth)
    optional = [geo, horizon - geo]
    widths = np.diff(e)
    if substeps > 1:
        frac = np.arange(1, substeps) / substeps
        optional.append((e[:-1, None] + widths[:, None] * frac).ravel())
    if refine_edges:
        optional.extend(a + _graded(w, first_step, growth) for a, w in zip(e[:-1], widths, strict=True))
    opt = np.unique(np.concatenate(optional))
    opt = opt[(opt > 0) & (opt < horizon)]
    points = np.concatenate([req, opt])
    is_req = np.concatenate([np.ones(req.size, bool), np.zeros(opt.size, bool)])
    order = np.argsort(points, kind="stable")
    points, is_req = points[order], is_req[order]
    return _pad(_thin(points, is_req, first_step / 4), int(multiple))


def _pad(ts: np.ndarray, multiple: int) -> np.ndarray:
    """Halve the widest steps until the number of steps is a multiple of ``multiple``."""
    return pad_grid(ts, ts.size - 1 + (-(ts.size - 1) % multiple))


def pad_grid(ts, n_steps: int) -> np.ndarray:
    """Halve the widest steps of a grid until it has ``n_steps`` steps (grids of one shape share a compile).

    Raises:
        ProblemError: ``ts`` has more than ``n_steps`` steps already.
    """
    ts = np.asarray(ts, dtype=np.float64)
    extra = int(n_steps) - (ts.size - 1)
    if extra < 0:
        raise ProblemError(f"`n_steps` ({n_steps}) is below the grid's {ts.size - 1} steps", field="n_steps")
    while extra > 0:
        widths = np.diff(ts)
        k = min(extra, widths.size)
        widest = np.argpartition(-widths, k - 1)[:k]
        ts = np.sort(np.concatenate([ts, ts[widest] + 0.5 * widths[widest]]))
        extra -= k
    return ts


def _thin(points: np.ndarray, is_req: np.ndarray, tol: float) -> np.ndarray:
    """Drop optional points within ``tol`` of a kept point (greedy, left to right)."""
    nxt_req = np.full(points.size, np.inf)
    req_pos = np.flatnonzero(is_req)
    idx = np.searchsorted(req_pos, np.arange(points.size))
    has = idx < req_pos.size
    nxt_req[has] = points[req_pos[idx[has]]]
    keep = np.zeros(points.size, bool)
    last = -np.inf
    for i, (t, req) in enumerate(zip(points.tolist(), is_req.tolist(), strict=True)):
        if req or (t - last >= tol and nxt_req[i] - t >= tol):
            if not (req and t == last):
                keep[i] = True
                last = t
    return points[keep]
