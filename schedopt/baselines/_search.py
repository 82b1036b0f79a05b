"""A bounded trust-region Newton search on ``[0, 1]^d`` (``d`` = 1 or 2) with finite-difference models.

Generic: it needs an objective with ``loss(u) -> (n,)`` for a batch of points
``u`` of shape ``(n, d)`` and ``fd_step(u) -> (d,)``. The model of ``log loss`` is a
central-difference gradient and Hessian, all points of one iteration in one call;
after a long step the difference step is a quarter of the step (a secant model of
the region ahead), near the optimum :data:`FD_STEP` (a derivative model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FD_STEP = 1e-4
#: Steps (in scaled coordinates) longer than this get a secant model (difference
#: step a quarter of the step), shorter ones a derivative model.
SECANT_STEPS = 0.02
#: A search from a further start stops within this distance (scaled coordinates)
#: of an optimum already found.
MERGE_DISTANCE = 0.05


class _Face:
    """An objective restricted to some coordinates, the others held where they are."""

    def __init__(self, obj, base: np.ndarray, free: np.ndarray):
        self.obj, self.base, self.free = obj, base.copy(), np.asarray(free, dtype=bool)

    def full(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        out = np.array(np.broadcast_to(self.base, (*u.shape[:-1], self.base.size)))
        out[..., self.free] = u
        return out

    def loss(self, u: np.ndarray) -> np.ndarray:
        return self.obj.loss(self.full(np.atleast_2d(u)))

    def fd_step(self, u: np.ndarray) -> np.ndarray:
        return self.obj.fd_step(self.full(u))[self.free]


def _trust_region_step(g: np.ndarray, hess: np.ndarray, radius: float) -> np.ndarray:
    """Minimiser of ``g.s + s.H.s / 2`` subject to ``|s| <= radius`` (small dense problems)."""
    w, q = np.linalg.eigh(hess)
    gq = q.T @ g
    if w.min() > 0:
        s = -q @ (gq / w)
        if np.linalg.norm(s) <= radius:
            return s
    shift = max(0.0, -w.min())
    if np.linalg.norm(gq) <= 1e-300:  # hard case: move along the most negative curvature
        return radius * q[:, int(np.argmin(w))]
    lo, hi = shift, shift + np.linalg.norm(gq) / radius
    for _ in range(200):
        mu = 0.5 * (lo + hi)
        denom = w + mu
        if np.all(denom > 0) and np.linalg.norm(gq / denom) > radius:
            lo = mu
        else:
            hi = mu
        if hi - lo <= 1e-15 * hi:
            break
    return -q @ (gq / (w + hi))


def _interval_minimum(slope: float, curvature: float, a: float, b: float) -> list[float]:
    """Candidates for the minimum of ``slope*x + curvature*x^2/2`` on ``[a, b]``."""
    out = [a, b]
    if curvature > 0:
        out.append(min(max(-slope / curvature, a), b))
    return out


def _box_step(g: np.ndarray, hess: np.ndarray, radius: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Minimiser of the quadratic model on ``{|s| <= radius, lo <= s <= hi}`` (``lo <= 0 <= hi``).

    Exact for one parameter. For two, the best of: the trust-region step if it is
    inside the box, the minimum on each box face inside the ball, and 2048 points
    of the ball's boundary inside the box.
    """
    d = g.size
    if d == 1:
        xs = _interval_minimum(g[0], hess[0, 0], max(lo[0], -radius), min(hi[0], radius))
        cands = np.array(xs)[:, None]
    else:
        cands = [np.zeros(d)]
        s = _trust_region_step(g, hess, radius)
        if np.all(s >= lo) and np.all(s <= hi):
            cands.append(s)
        angle = np.linspace(0.0, 2.0 * np.pi, 2048, endpoint=False)
        ring = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        cands.extend(ring[np.all((ring >= lo) & (ring <= hi), axis=1)])
        for i in range(d):
            j = 1 - i
            for bound in (lo[i], hi[i]):
                if abs(bound) > radius:
                    continue
                reach = math.sqrt(radius**2 - bound**2)
                a, b = max(lo[j], -reach), min(hi[j], reach)
                if a > b:
                    continue
                for x in _interval_minimum(g[j] + hess[i, j] * bound, hess[j, j], a, b):
                    c = np.empty(d)
                    c[i], c[j] = bound, x
                    cands.append(c)
        cands = np.array(cands)
    values = cands @ g + 0.5 * np.einsum("ni,ij,nj->n", cands, hess, cands)
    return cands[int(np.argmin(values))]


def _stencil(center: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Points of a central-difference gradient and Hessian around ``center`` (steps ``h`` per axis)."""
    d = center.size
    step = np.diag(h)
    pts = [center]
    for i in range(d):
        pts += [center + step[i], center - step[i]]
    if d == 2:
        pts += [center + h, center - h]
    return np.array(pts)


def _model(f: np.ndarray, h: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of the values ``f`` on :func:`_stencil` points."""
    f0 = f[0]
    g = np.empty(d)
    hess = np.empty((d, d))
    for i in range(d):
        fp, fm = f[1 + 2 * i], f[2 + 2 * i]
        g[i] = (fp - fm) / (2 * h[i])
        hess[i, i] = (fp - 2 * f0 + fm) / h[i] ** 2
    if d == 2:
        both = f[5] + f[6] - 2 * f0 - hess[0, 0] * h[0] ** 2 - hess[1, 1] * h[1] ** 2
        hess[0, 1] = hess[1, 0] = both / (2 * h[0] * h[1])
    return g, hess


@dataclass
class _Search:
    u: np.ndarray
    loss: float  # final loss at u
    converged: bool = False
    iterations: int = 0


def _local_model(obj, u: np.ndarray, scale) -> tuple:
    """Loss at ``u``, gradient and Hessian of log loss at ``u``, the best stencil point and its loss.

    The stencil's half-width is ``scale`` clipped to [``obj.fd_step(u)``, 0.05]; near a
    bound the stencil is shifted inwards and the model extrapolated back, so there the
    width is the fine one (the extrapolation stays short). Gradient and Hessian are
    ``None`` when a stencil point is not finite.
    """
    fine_h = obj.fd_step(u)
    h = np.clip(scale, fine_h, 0.05)
    h = np.where(np.minimum(u, 1.0 - u) < h, fine_h, h)
    center = np.clip(u, h, 1.0 - h)
    pts = _stencil(center, h)
    same = np.array_equal(center, u)
    vals = obj.loss(pts if same else np.vstack([u[None], pts]))
    loss_u, fs = (vals[0], vals) if same else (vals[0], vals[1:])
    i = int(np.argmin(fs))
    if not np.all(np.isfinite(fs)):
        return loss_u, None, None, pts[i], fs[i]
    g, hess = _model(np.log(fs), h, u.size)
    return loss_u, g + hess @ (u - center), hess, pts[i], fs[i]


def _refine(
    obj,
    u0: np.ndarray,
    loss0: float | None,
    radius: float,
    tol: float,
    max_iter: int,
    known: Sequence[np.ndarray] = (),
    *,
    from_estimate: bool = False,
) -> _Search:
    """Bounded trust-region Newton on ``log L`` with a central-difference model.

    The difference step follows the length of the last step (a quarter of it, at
    least ``obj.fd_step``, at most 0.05): far from the optimum the model
    is a secant fit over the region the next step will cover, near it a
    derivative. A rejected step still moves to the best point of its stencil when
    that is better than the current point. A search that comes within
    :data:`MERGE_DISTANCE` of a ``known`` optimum (found from another start) stops:
    it is in the same basin.

    ``loss0`` ``None``: the loss at ``u0`` is read off its first model. ``from_estimate``: ``u0``
    is an optimum of another objective (a shorter horizon), so its first Newton step is not
    yet known to converge quadratically, and the stop on the value alone waits for a second.
    """
    state = _Search(u=u0.copy(), loss=loss0)
    loss_u, g, hess, _, _ = _local_model(obj, state.u, FD_STEP)
    if loss0 is None:
        state.loss = float(loss_u)
    if g is None:
        return state
    fine = True  # the current model is a derivative (not a secant) model
    last_predicted = 0.0 if from_estimate else math.inf
    for it in range(max_iter):
        state.iterations = it + 1
        step = _box_step(g, hess, radius, -state.u, 1.0 - state.u)
        candidate = np.clip(state.u + step, 0.0, 1.0)
        step = candidate - state.u
        length = float(np.linalg.norm(step))
        predicted = -(g @ step + 0.5 * step @ hess @ step)
        if predicted <= tol or length <= 1e-13:
            if fine:
                state.converged = True
                break
            # a secant model may miss a minimum closer than its step: look again up close
            _, g_new, hess_new, _, _ = _local_model(obj, state.u, FD_STEP)
            if g_new is None:
                break
            g, hess, fine = g_new, hess_new, True
            radius = max(radius, 0.01)
            continue
        newton = length < 0.99 * radius
        if fine and newton and predicted <= math.sqrt(tol) and predicted <= 1e-3 * last_predicted:
            # Newton converging quadratically (the predicted decrease fell by 1e3 or
            # more in one step): after this step it is ~predicted^2 < tol, so check the
            # value only and stop.
            loss_new = float(obj.loss(candidate[None])[0])
            if loss_new <= state.loss:
                state.u, state.loss, state.converged = candidate, loss_new, True
                break
            radius = 0.25 * length
            continue
        # secant model after a long step, derivative model near the optimum
        scale = 0.25 * length if length > SECANT_STEPS else FD_STEP
        loss_new, g_new, hess_new, best_pt, best_loss = _local_model(obj, candidate, scale)
        actual = math.log(state.loss) - math.log(loss_new) if loss_new > 0 else math.inf
        if g_new is not None and actual > 0:
            ratio = actual / predicted
            state.u, state.loss, g, hess = candidate, float(loss_new), g_new, hess_new
            fine = scale <= FD_STEP
            last_predicted = predicted
            if any(np.linalg.norm(state.u - k) < MERGE_DISTANCE for k in known):
                break
            if ratio > 0.75 and length > 0.9 * radius:
                radius *= 2.0
            elif ratio < 0.25:
                radius *= 0.5
            continue
        if g_new is not None and best_loss < state.loss:
            # the step overshot but its stencil found a better point: move there
            state.u, state.loss = best_pt.copy(), float(best_loss)
            g = g_new + hess_new @ (best_pt - candidate)
            hess, fine = hess_new, scale <= FD_STEP
            radius = 0.25 * length
        elif not fine:
            # a secant model that mispredicts: replace it by a derivative model and
            # retry at the same radius
            _, g_new, hess_new, _, _ = _local_model(obj, state.u, FD_STEP)
            if g_new is None:
                break
            g, hess, fine = g_new, hess_new, True
        else:
            radius = 0.25 * length
        if radius <= 1e-13:
            break
    return state
