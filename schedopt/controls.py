r"""Control grids and their parameterisations: from a few block values to per-step values.

A control (learning rate, batch size, momentum) is a function of continuous
time :math:`u(t)` on ``[0, T]``, parameterised by values on ``K`` blocks with
edges ``0 = e_0 < e_1 < ... < e_K = T`` (integers, in steps):

* ``constant``: ``K`` values, :math:`u(t) = v_j` on :math:`[e_j, e_{j+1})`;
* ``linear``: ``K + 1`` values at the edges, linear in between.

**The one place continuous time meets steps**: optimiser step ``t`` (``t = 0``
is the first update, as optax counts) covers :math:`[t, t+1)` and uses the value
at its midpoint, :math:`u_t = u(t + 1/2)`. Every per-step value is therefore a
fixed linear map of the parameters, :math:`u_t = (1-w_t) v_{i_t} + w_t v_{i_t+1}`,
held in :class:`Interpolation` and usable from NumPy, JAX and CasADi alike.

Grids (``K`` blocks in all cases):

* ``uniform``: equal blocks;
* ``geometric-end``: half the edges uniform, half log-spaced in the distance to
  the end (from ``T`` down to one step), so the final anneal is resolved;
* ``geometric-both``: a third uniform, a third log-spaced from the start (for a
  warm-up) and a third toward the end;
* ``custom``: edges given.

Duplicate edges from rounding are removed and the widest blocks split until
there are exactly ``K`` blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schedopt.errors import ProblemError
from schedopt.problem import ControlSpec

__all__ = ["ControlGrid", "Interpolation", "block_edges", "grid_for"]


def _log_from_start(horizon: int, n: int) -> np.ndarray:
    return np.geomspace(1.0, horizon, n + 1)[:-1] if n > 0 else np.empty(0)


def block_edges(horizon: int, blocks: int, grid: str, edges: tuple[int, ...] | None = None) -> np.ndarray:
    """Integer block edges ``0 = e_0 < ... < e_K = horizon`` for a grid kind."""
    if blocks < 1:
        raise ProblemError(f"`blocks` must be a positive integer, got {blocks!r}", field="blocks")
    if blocks > horizon:
        raise ProblemError(f"`blocks` ({blocks}) must not exceed the horizon ({horizon})", field="blocks")
    if grid == "custom":
        if edges is None:
            raise ProblemError('`edges` is required when grid = "custom"', field="edges")
        try:
            out = np.asarray(edges, dtype=np.float64)
        except (TypeError, ValueError):
            raise ProblemError(f"`edges` must be a list of integers, got {edges!r}", field="edges") from None
        if (
            out.ndim != 1
            or out.size < 2
            or out.size != blocks + 1
            or np.any(out != np.round(out))
            or out[0] != 0
            or out[-1] != horizon
            or np.any(np.diff(out) <= 0)
        ):
            raise ProblemError(
                f"`edges` must be {blocks + 1} integers increasing strictly from 0 to the horizon "
                f"{horizon}, got {list(np.atleast_1d(out).tolist())!r}",
                field="edges",
            )
        return out.astype(np.int64)
    if grid == "uniform":
        candidates = np.linspace(0, horizon, blocks + 1)
    elif grid == "geometric-end":
        n_log = blocks // 2
        candidates = np.concatenate(
            [np.linspace(0, horizon, blocks - n_log + 1), horizon - _log_from_start(horizon, n_log)]
        )
    elif grid == "geometric-both":
        n_log = blocks // 3
        candidates = np.concatenate(
            [
                np.linspace(0, horizon, blocks - 2 * n_log + 1),
                _log_from_start(horizon, n_log),
                horizon - _log_from_start(horizon, n_log),
            ]
        )
    else:
        raise ProblemError(
            f"`grid` must be one of 'uniform', 'geometric-end', 'geometric-both', 'custom', got {grid!r}",
            field="grid",
        )
    out = np.unique(np.clip(np.round(candidates), 0, horizon).astype(np.int64))
    out = np.unique(np.concatenate([[0, horizon], out]))
    while out.size - 1 > blocks:  # merge the narrowest block into its neighbour
        widths = np.diff(out)
        j = int(np.argmin(widths[1:-1])) + 1 if widths.size > 2 else 1
        out = np.delete(out, j)
    while out.size - 1 < blocks:  # split the widest block
        widths = np.diff(out)
        j = int(np.argmax(widths))
        out = np.insert(out, j + 1, out[j] + widths[j] // 2)
    return out


@dataclass(frozen=True, eq=False)
class Interpolation:
    r"""Per-step values as a fixed linear map of parameters: :math:`u_t = (1-w_t) v_{i_t} + w_t v_{i_t+1}`.

    Attributes:
        index: ``(T,)`` int array, the left parameter of each step.
        weight: ``(T,)`` float array in ``[0, 1)``; zero for piecewise-constant controls.
        n_params: number of parameters.
    """

    index: np.ndarray
    weight: np.ndarray
    n_params: int

    def expand(self, values, xp=np):
        """Per-step values from parameter values (``values[..., n_params]``); jit- and vmap-safe."""
        values = xp.asarray(values)
        nxt = np.minimum(self.index + 1, self.n_params - 1)
        return (1.0 - self.weight) * values[..., self.index] + self.weight * values[..., nxt]

    def matrix(self):
        """The ``(T, n_params)`` sparse matrix of the map (SciPy CSR; built once per interpolation,
        not to be modified)."""
        cached = self.__dict__.get("_matrix")
        if cached is not None:
            return cached
        self.__dict__["_matrix"] = matrix = self._matrix()
        return matrix

    def _matrix(self):
        import scipy.sparse

        t = np.arange(self.index.size)
        nxt = np.minimum(self.index + 1, self.n_params - 1)
        rows = np.concatenate([t, t])
        cols = np.concatenate([self.index, nxt])
        vals = np.concatenate([1.0 - self.weight, self.weight])
        keep = vals != 0.0
        return scipy.sparse.csr_matrix(
            (vals[keep], (rows[keep], cols[keep])), shape=(self.index.size, self.n_params)
        )

    def fit(self, per_step: np.ndarray, lower: float = -np.inf, upper: float = np.inf) -> np.ndarray:
        """Parameters in ``[lower, upper]`` whose expansion is closest to ``per_step`` (least squares).

        With bounds this is a bounded least-squares problem, not a fit clipped afterwards:
        where the map is not injective (a linear grid with one step per knot) the
        unbounded fit oscillates and clipping it can be far from the best bounded fit.

        Solved on the map's normal equations (:meth:`_normal`: tridiagonal, ``n_params``
        unknowns), exactly: a banded solve; with bounds, a diagonal system (piecewise-constant
        grids) is clipped and a tridiagonal one is the bounded least-squares problem of its
        Cholesky factor (``n_params`` rows instead of ``T``). Iterative least squares on the
        ``(T, n_params)`` map took 12 of the 23 CPU s of a scaling point's solve at T = 27 027.
        """
        target = np.asarray(per_step, float)
        normal = self._normal(target)
        if normal is None:  # a map whose normal equations are singular: the iterative solvers
            return self._fit_iterative(target, lower, upper)
        import scipy.linalg

        diag, off, rhs = normal
        diagonal = not np.any(off)
        banded = np.stack([np.concatenate([[0.0], off]), diag])
        try:
            # G = U^T U with U upper bidiagonal; |A v - y|^2 = |U v - z|^2 + const for U^T z = A^T y
            factor = None if diagonal else scipy.linalg.cholesky_banded(banded)
        except np.linalg.LinAlgError:  # not positive definite to rounding: the iterative solvers
            return self._fit_iterative(target, lower, upper)
        if diagonal:
            free = rhs / diag
        else:
            free = scipy.linalg.cho_solve_banded((factor, False), rhs)
        if np.all((free >= lower) & (free <= upper)):
            return free
        if diagonal:  # separable: each parameter's bounded minimum is its clipped free one
            return np.clip(free, lower, upper)
        import scipy.optimize

        upper_tri = np.diag(factor[1]) + np.diag(factor[0, 1:], 1)
        z = scipy.linalg.solve_triangular(upper_tri, rhs, trans="T")
        result = scipy.optimize.lsq_linear(
            upper_tri, z, bounds=(lower, upper), method="bvls", tol=1e-13, max_iter=10 * self.n_params
        )
        return np.clip(result.x, lower, upper)

    def _normal(self, target: np.ndarray):
        """``(diagonal, off-diagonal, A^T y)`` of the map's normal matrix ``A^T A`` (tridiagonal), or
        ``None`` where it is singular (a parameter no step reaches) or larger than a dense factor allows."""
        n = self.n_params
        if n > 4000 or n > self.index.size:  # (more parameters than steps: singular)
            return None
        index = np.asarray(self.index, dtype=np.int64)
        nxt = np.minimum(index + 1, n - 1)
        left, right = 1.0 - self.weight, np.asarray(self.weight, float)
        same = nxt == index  # the last parameter: both weights on it
        left, right = np.where(same, left + right, left), np.where(same, 0.0, right)
        diag = np.bincount(index, left * left, n) + np.bincount(nxt, right * right, n)
        off = np.bincount(index, left * right, n)[: n - 1]
        rhs = np.bincount(index, left * target, n) + np.bincount(nxt, right * target, n)
        if not np.all(diag > 0):
            return None
        return diag, off, rhs

    def _fit_iterative(self, target: np.ndarray, lower: float, upper: float) -> np.ndarray:
        """:meth:`fit` by iterative least squares on the ``(T, n_params)`` map itself."""
        import scipy.sparse.linalg

        matrix = self.matrix()
        free = scipy.sparse.linalg.lsqr(matrix, target, atol=_FIT_TOL, btol=_FIT_TOL)[0]
        if np.all((free >= lower) & (free <= upper)):
            return free
        return _bounded_fit(matrix, target, lower, upper)


#: LSQR's ``atol`` and ``btol`` in :meth:`Interpolation.fit` (its iterative fallback).
_FIT_TOL = 1e-14


def _bounded_fit(matrix, target: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """The bounded least-squares fit of :meth:`Interpolation.fit`."""
    import scipy.optimize

    result = scipy.optimize.lsq_linear(
        matrix,
        target,
        bounds=(lower, upper),
        method="trf",
        tol=1e-13,
        lsmr_tol="auto",
        max_iter=1000,
    )
    return np.clip(result.x, lower, upper)


@dataclass(frozen=True, eq=False)
class ControlGrid:
    """Block edges and parameterisation of one control over a horizon.

    Attributes:
        edges: integer block edges ``(K + 1,)``.
        parameterisation: ``"linear"`` or ``"constant"``.
    """

    edges: np.ndarray
    parameterisation: str = "linear"

    def __post_init__(self) -> None:
        e = np.array(self.edges, dtype=np.int64)
        if e.ndim != 1 or e.size < 2 or e[0] != 0 or np.any(np.diff(e) <= 0):
            raise ProblemError(f"`edges` must increase strictly from 0, got {e.tolist()!r}", field="edges")
        if self.parameterisation not in ("linear", "constant"):
            raise ProblemError(
                f"`parameterisation` must be 'linear' or 'constant', got {self.parameterisation!r}",
                field="parameterisation",
            )
        e.setflags(write=False)
        object.__setattr__(self, "edges", e)

    @property
    def horizon(self) -> int:
        return int(self.edges[-1])

    @property
    def blocks(self) -> int:
        return int(self.edges.size - 1)

    @property
    def n_params(self) -> int:
        return self.blocks + (1 if self.parameterisation == "linear" else 0)

    @property
    def knots(self) -> np.ndarray:
        """Time (in steps) each parameter refers to: the edges (linear) or block midpoints (constant)."""
        if self.parameterisation == "linear":
            return self.edges.astype(np.float64)
        return 0.5 * (self.edges[:-1] + self.edges[1:]).astype(np.float64)

    def interpolation(self) -> Interpolation:
        """The grid's :class:`Interpolation` (computed once per grid; its arrays are read-only)."""
        cached = self.__dict__.get("_interpolation")
        if cached is not None:
            return cached
        t_mid = np.arange(self.horizon, dtype=np.float64) + 0.5
        block = np.searchsorted(self.edges, t_mid, side="right") - 1
        if self.parameterisation == "constant":
            weight = np.zeros_like(t_mid)
        else:
            left = self.edges[block].astype(np.float64)
            weight = (t_mid - left) / np.diff(self.edges)[block]
        index = block.astype(np.int32)
        index.setflags(write=False)
        weight.setflags(write=False)
        out = Interpolation(index=index, weight=weight, n_params=self.n_params)
        self.__dict__["_interpolation"] = out  # a frozen record: not through __setattr__
        return out

    def evaluate(self, values, t):
        """The continuous-time control :math:`u(t)` at times ``t`` (NumPy)."""
        values = np.asarray(values, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        if self.parameterisation == "linear":
            return np.interp(t, self.edges, values)
        block = np.clip(np.searchsorted(self.edges, t, side="right") - 1, 0, self.blocks - 1)
        return values[block]

    def describe(self) -> dict:
        """A JSON-ready summary: blocks, parameterisation, edges, narrowest and widest block."""
        widths = np.diff(self.edges)
        return {
            "blocks": self.blocks,
            "parameterisation": self.parameterisation,
            "edges": self.edges.tolist(),
            "min_block_steps": int(widths.min()),
            "max_block_steps": int(widths.max()),
        }


def grid_for(spec: ControlSpec, horizon: int) -> ControlGrid:
    """The grid a control spec asks for at a horizon."""
    edges = block_edges(horizon, spec.blocks, spec.grid, spec.edges)
    return ControlGrid(edges=edges, parameterisation=spec.parameterisation)
