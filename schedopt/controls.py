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
        """
        import scipy.sparse.linalg

        target = np.asarray(per_step, float)
        matrix = self.matrix()
        free = scipy.sparse.linalg.lsqr(matrix, target, atol=_FIT_TOL, btol=_FIT_TOL)[0]
        if np.all((free >= lower) & (free <= upper)):
            return free
        return _bounded_fit(matrix, target, lower, upper)

    def fit_many(self, per_step: np.ndarray, lower: float = -np.inf, upper: float = np.inf) -> np.ndarray:
        """:meth:`fit` of every row of ``per_step`` ``(rows, T)``: the same numbers, row by row, with
        LSQR's iterations run for all rows at once (:func:`_lsqr_rows`; a batch's warm starts)."""
        targets = np.asarray(per_step, float)
        matrix = self.matrix()
        free = _lsqr_rows(matrix, targets, atol=_FIT_TOL, btol=_FIT_TOL)
        for k, row in enumerate(free):
            if not np.all((row >= lower) & (row <= upper)):
                free[k] = _bounded_fit(matrix, targets[k], lower, upper)
        return free


#: LSQR's ``atol`` and ``btol`` in :meth:`Interpolation.fit`.
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


def _sym_ortho(a: float, b: float) -> tuple[float, float, float]:
    """SciPy's ``lsqr._sym_ortho`` (a stable Givens rotation), on one row's scalars."""
    from math import sqrt

    if b == 0:
        return np.sign(a), 0.0, abs(a)
    if a == 0:
        return 0.0, np.sign(b), abs(b)
    if abs(b) > abs(a):
        tau = a / b
        s = np.sign(b) / sqrt(1 + tau * tau)
        return s * tau, s, b / s
    tau = b / a
    c = np.sign(a) / sqrt(1 + tau * tau)
    return c, c * tau, a / c


def _norms(rows: np.ndarray) -> np.ndarray:
    """The 2-norm of each row, as ``np.linalg.norm`` of one row computes it (``sqrt(x . x)``)."""
    return np.sqrt(np.array([r.dot(r) for r in rows]))


def _lsqr_rows(matrix, targets: np.ndarray, atol: float, btol: float, conlim: float = 1e8) -> np.ndarray:
    """``scipy.sparse.linalg.lsqr(matrix, b, atol=atol, btol=btol, conlim=conlim)[0]`` for every row
    ``b`` of ``targets`` (no damping, no start), bitwise: SciPy's recurrences row by row, the sparse
    products for all rows still iterating at once (a CSR/CSC product with several vectors adds the
    same terms in the same order as with one), each row stopping on SciPy's own tests. The products
    and SciPy's per-call overhead were most of a warm start's fit (~140 products a fit)."""
    eps = np.finfo(np.float64).eps
    targets = np.asarray(targets, dtype=np.float64)
    rows, n = targets.shape[0], matrix.shape[1]
    adjoint = matrix.T.conj()  # what SciPy's LinearOperator applies in rmatvec
    iter_lim, ctol = 2 * n, (1 / conlim if conlim > 0 else 0)
    anorm, ddnorm, xxnorm, z, sn2 = (np.zeros(rows) for _ in range(5))
    cs2 = -np.ones(rows)
    u = targets.copy()
    bnorm = _norms(u)
    beta = bnorm.copy()
    x, v = np.zeros((rows, n)), np.zeros((rows, n))
    alfa = np.zeros(rows)
    live = beta > 0
    if live.any():
        u[live] = (1 / beta[live])[:, None] * u[live]
        v[live] = np.ascontiguousarray((adjoint @ u[live].T).T)
        alfa[live] = _norms(v[live])
    positive = alfa > 0
    v[positive] = (1 / alfa[positive])[:, None] * v[positive]
    w = v.copy()
    rhobar, phibar = alfa.copy(), beta.copy()
    active = alfa * beta != 0  # SciPy returns x = 0 at once otherwise
    itn = 0
    while itn < iter_lim and active.any():
        itn += 1
        idx = np.flatnonzero(active)
        ua, va, al, an = u[idx], v[idx], alfa[idx].copy(), anorm[idx]
        ua = np.ascontiguousarray((matrix @ va.T).T) - al[:, None] * ua
        be = _norms(ua)
        ok = be > 0
        if ok.any():
            ua[ok] = (1 / be[ok])[:, None] * ua[ok]
            an[ok] = np.sqrt(an[ok] ** 2 + al[ok] ** 2 + be[ok] ** 2)
            vv = np.ascontiguousarray((adjoint @ ua[ok].T).T) - be[ok][:, None] * va[ok]
            al_ok = _norms(vv)
            positive = al_ok > 0
            vv[positive] = (1 / al_ok[positive])[:, None] * vv[positive]
            va[ok], al[ok] = vv, al_ok
        rotations = [_sym_ortho(a, b) for a, b in zip(rhobar[idx], be, strict=True)]
        cs, sn, rho = (np.array(col) for col in zip(*rotations, strict=True))
        theta = sn * al
        pb = phibar[idx]
        phi = cs * pb
        pb = sn * pb
        tau = sn * phi
        wa = w[idx]
        dk = (1 / rho)[:, None] * wa
        xa = x[idx] + (phi / rho)[:, None] * wa
        wa = va + (-theta / rho)[:, None] * wa
        dd = ddnorm[idx] + _norms(dk) ** 2
        gambar = -cs2[idx] * rho
        rhs = phi - sn2[idx] * rho * z[idx]
        xnorm = np.sqrt(xxnorm[idx] + (rhs / gambar) ** 2)
        gamma = np.sqrt(gambar**2 + theta**2)
        zz = rhs / gamma
        xx = xxnorm[idx] + zz**2
        acond = an * np.sqrt(dd)
        rnorm = np.sqrt(pb**2 + 0.0)
        test1 = rnorm / bnorm[idx]
        test2 = al * np.abs(tau) / (an * rnorm + eps)
        test3 = 1 / (acond + eps)
        t1 = test1 / (1 + an * xnorm / bnorm[idx])
        rtol = btol + atol * an * xnorm / bnorm[idx]
        stop = (itn >= iter_lim) | (1 + test3 <= 1) | (1 + test2 <= 1) | (1 + t1 <= 1)
        stop |= (test3 <= ctol) | (test2 <= atol) | (test1 <= rtol)
        u[idx], v[idx], alfa[idx], anorm[idx], rhobar[idx], phibar[idx] = ua, va, al, an, -cs * al, pb
        w[idx], x[idx], ddnorm[idx], z[idx], xxnorm[idx] = wa, xa, dd, zz, xx
        cs2[idx], sn2[idx] = gambar / gamma, theta / gamma
        active[idx[stop]] = False
    return x


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
