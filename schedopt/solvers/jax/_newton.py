r"""Second-order check (and Newton polish) of a ``jax`` solve with a momentum control.

Heavy ball at a slowly varying :math:`(\eta_t, \beta_t)` moves a slow mode like SGD at the
effective rate :math:`\eta_t / (1 - \beta_t)`; only the fast modes, where
:math:`\eta\lambda` is of order one, tell apart two schedules of equal effective rate. The
log loss thus has a long, nearly flat valley along that direction (reduced-Hessian
eigenvalues ~1e-7 of the largest on the shipped problems), along which L-BFGS-B creeps and
whose end a first-order stop (``ftol``, a small projected gradient) cannot vouch for.

The check: with the gradient :math:`g` and the reduced Hessian :math:`H` (free variables: not at
a bound, or within ``BOUND_RTOL`` of it, the gradient pushes against; columns by forward differences of the exact gradient,
one evaluation per variable, every stacked problem perturbed at once), a point passes when
:math:`H` has no eigenvalue below :math:`-\epsilon\,\|H\|` (``flat_rtol``: eigenvalues within it are
flat, numerically zero) and the Newton model's remaining decrease of the log loss,
:math:`\tfrac12 g^\top H^+ g` over the non-flat eigenvalues, is at most ``newton_rtol`` (a
relative decrease of the loss). A point that fails takes a projected Newton step
(eigenvalues replaced by their moduli, backtracking on the loss) and is checked again, at
most ``newton_steps`` times. Each check costs about ``n_params`` gradient evaluations.

References:
    D. P. Bertsekas, Projected Newton methods for optimization problems with simple
    constraints, SIAM J. Control Optim. 20 (1982).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Forward-difference step of a Hessian column, relative to ``max(1, |x_j|)`` (optimiser units).
FD_STEP = 1e-6
#: Armijo constant of the Newton step's backtracking.
ARMIJO = 1e-4
#: Halvings of the Newton step before it is given up.
MAX_HALVINGS = 30
#: A variable this close to a bound (relative to ``max(1, |bound|)``) counts as on it: L-BFGS-B
#: leaves variables an ulp inside their bounds, and a step out of the box is clipped to nothing.
BOUND_RTOL = 1e-9


def _hessian_columns(fun, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, free: np.ndarray):
    """Per-problem Hessians ``(count, n, n)`` by forward differences of the gradient (free columns only).

    Column ``j`` of every stacked problem comes from one evaluation (the problems are
    independent). ``None`` if a perturbed evaluation is not finite.
    """
    count, n = free.shape
    _, grads = fun.evaluate(x.reshape(-1))
    hess = np.zeros((count, n, n))
    for j in np.nonzero(free.any(axis=0))[0]:
        step = FD_STEP * np.maximum(1.0, np.abs(x[:, j]))
        step = np.where(x[:, j] + step > hi[:, j], -step, step)  # stay inside the box
        moved = x.copy()
        moved[:, j] += step
        values, moved_grads = fun.evaluate(moved.reshape(-1))
        if not (np.isfinite(values).all() and np.isfinite(moved_grads).all()):
            return None
        hess[:, :, j] = (moved_grads - grads) / step[:, None]
    return hess


def _model(hess: np.ndarray, grad: np.ndarray, free: np.ndarray, flat_rtol: float) -> dict[str, Any]:
    """Eigen-analysis of one problem's reduced Hessian and its Newton step (``direction``)."""
    idx = np.nonzero(free)[0]
    n = grad.size
    direction = np.zeros(n)
    report: dict[str, Any] = {"free": int(idx.size)}
    if idx.size == 0:
        report.update(min_eigenvalue=None, max_eigenvalue=None, flat_directions=0, newton_decrement=0.0)
        return {"report": report, "direction": direction, "softest": None}
    h = hess[np.ix_(idx, idx)]
    h = 0.5 * (h + h.T)
    eig, vec = np.linalg.eigh(h)
    scale = float(np.abs(eig).max())
    flat = np.abs(eig) <= flat_rtol * scale
    coeff = vec.T @ grad[idx]
    curved = ~flat
    step = -(vec[:, curved] @ (coeff[curved] / np.abs(eig[curved])))
    direction[idx] = step
    report.update(
        min_eigenvalue=float(eig[0]),
        max_eigenvalue=float(eig[-1]),
        flat_directions=int(flat.sum()),
        negative_directions=int((eig < -flat_rtol * scale).sum()),
        # the Newton model's decrease of the log loss (= relative loss), over the curved directions
        newton_decrement=float(0.5 * np.sum(coeff[curved] ** 2 / eig[curved]))
        if (eig[curved] > 0).all()
        else None,
    )
    softest = np.zeros(n)
    softest[idx] = vec[:, 0]
    return {"report": report, "direction": direction, "softest": softest}


def second_order(fun, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, opts) -> tuple[np.ndarray, list]:
    """Check ``x`` (flat, all stacked problems) and polish it by projected Newton steps until it passes.

    Returns the final point and, per problem, a report: ``passed``, ``newton_steps``,
    ``evaluations``, the reduced Hessian's eigenvalue range, ``flat_directions`` (within
    ``flat_rtol`` of zero), ``newton_decrement`` (the predicted relative loss gain still
    available) and ``softest_momentum_share`` (the weight of the momentum parameters in the
    softest eigenvector: near 1 along the effective-rate valley).
    """
    group = fun.group
    count, n = group.count, group.n_params
    lo2, hi2 = lo.reshape(count, n), hi.reshape(count, n)
    momentum = group.slices.get("momentum")
    start_evaluations = fun.evaluations
    x = x.reshape(count, n).copy()
    models: list[dict[str, Any]] = []
    steps = 0
    while True:
        values, grads = fun.evaluate(x.reshape(-1))
        at_lo = x <= lo2 + BOUND_RTOL * np.maximum(1.0, np.abs(lo2))
        at_hi = x >= hi2 - BOUND_RTOL * np.maximum(1.0, np.abs(hi2))
        pushed = (at_lo & (grads >= 0)) | (at_hi & (grads <= 0))
        free = ~pushed
        hess = _hessian_columns(fun, x, lo2, hi2, free)
        if hess is None:
            return x.reshape(-1), [
                {"passed": False, "reason": "a Hessian column's evaluation overflowed", "newton_steps": steps}
            ] * count
        models = [_model(hess[i], grads[i], free[i], opts.flat_rtol) for i in range(count)]
        passed = [
            m["report"]["negative_directions"] == 0
            and m["report"]["newton_decrement"] is not None
            and m["report"]["newton_decrement"] <= opts.newton_rtol
            if m["report"]["free"]
            else True
            for m in models
        ]
        if all(passed) or steps >= opts.newton_steps:
            break
        direction = np.stack([m["direction"] for m in models])
        predicted = -np.einsum("ij,ij->i", grads, direction)  # > 0: a descent direction
        alpha, accepted = 1.0, False
        for _ in range(MAX_HALVINGS):
            trial = np.clip(x + alpha * direction, lo2, hi2)
            new_values, _ = fun.evaluate(trial.reshape(-1))
            if (
                np.isfinite(new_values).all()
                and new_values.sum() <= values.sum() - ARMIJO * alpha * predicted.sum()
            ):
                accepted = True
                break
            alpha *= 0.5
        if not accepted:
            break
        x = trial
        steps += 1
    reports = []
    for i, m in enumerate(models):
        report = dict(m["report"])
        report["passed"] = bool(passed[i])
        report["newton_steps"] = steps
        report["evaluations"] = fun.evaluations - start_evaluations
        softest = m["softest"]
        report["softest_momentum_share"] = (
            float(np.sum(softest[momentum] ** 2)) if softest is not None and momentum is not None else None
        )
        report["newton_rtol"] = float(opts.newton_rtol)
        reports.append(report)
    return x.reshape(-1), reports
