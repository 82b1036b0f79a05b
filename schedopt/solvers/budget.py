r"""Batch size as a control under a sample budget: the constraint, its degeneracy, the tie-break.

**The budget.** With batch sizes :math:`m_t` a fixed linear map of the batch
parameters :math:`p` (:mod:`schedopt.controls`), the budget
:math:`\sum_t m_t = D` is one linear equality :math:`a^\top p = D`, where
:math:`a_j` is the number of steps parameter :math:`j` contributes to (the
column sums of the interpolation matrix; :math:`\sum_j a_j = T`). It is feasible
iff :math:`T m_{\min} \le D \le T m_{\max}`. :func:`project_budget` projects
parameters onto :math:`\{a^\top p = D\} \cap [m_{\min}, m_{\max}]` exactly.

**Sample time and the degeneracy** (THEORY §3-4). Step :math:`t` consumes the
samples :math:`[S_t, S_{t+1})`, :math:`S_t = \sum_{\tau<t} m_\tau`. One step
:math:`(\eta, m)` and :math:`m` steps :math:`(\eta/m, 1)` give the same decay
:math:`2\eta\lambda` and the same noise :math:`\frac{\eta^2}{m}\lambda(L+\sigma^2)`
up to terms of order :math:`(\eta\lambda)^2` (the curvature term
:math:`(1+\frac1m)\eta^2\lambda^2` and the difference between one step and
:math:`m`). So when :math:`\eta\lambda_1 \ll 1` the loss depends on the schedule
only through the per-sample learning rate :math:`\kappa(s) = \eta/m`, or
equivalently through the intrinsic time as a function of samples,
:math:`\sigma(s) = \int_0^s \kappa`, known at step boundaries as
:math:`\sigma(S_t) = \sum_{\tau<t}\eta_\tau`. At a fixed budget and step count,
every way of cutting :math:`[0, D]` into :math:`T` steps (within the batch
bounds), each step taking :math:`\eta_t = \sigma(S_{t+1}) - \sigma(S_t)`, gives
(nearly) the same loss: the optimum is a :math:`(T-1)`-dimensional singular arc.

:func:`degeneracy` measures it at a schedule. For smooth budget-neutral profiles
:math:`w^{(j)}(s) = \cos(j\pi s/D) - \text{mean}` (:math:`j = 1..3`) it takes the
central second difference of :math:`\log L_T` along

* the **flat** direction: :math:`m_t \to m_t(1 + \epsilon w_t)` (budget kept
  exactly) with :math:`\eta_t` re-derived from :math:`\sigma` (a C² cubic spline
  through the step boundaries), i.e. :math:`\eta` and :math:`m` scaled together
  with the sample-time shift compensated;
* the **across** direction: :math:`\eta_t \to \eta_t(1 + \epsilon w_t)` at fixed
  :math:`m`, which changes :math:`\kappa` by the same relative amount.

The ratio across/flat of the summed absolute curvatures is the flatness: large
(:math:`\gtrsim 10^3`) means the optimum is degenerate and the solver's point on
the arc is arbitrary; of order 1-10 means curvature (or the learning-rate cap)
pins the batch schedule.

**Tie-break** (:func:`tie_break_per_step`). Among the schedules with the same
:math:`\sigma(s)`, take the learning rate closest to its cap, the batch size
absorbing the rest: with :math:`T` steps the total intrinsic time
:math:`\tau = \sigma(D) = \sum_t \eta_t` is fixed, so this is the constant
:math:`\bar\eta = \tau / T \le \eta_{\max}` (it minimises
:math:`\sum_t (1 - \eta_t/\eta_{\max})^2` at fixed :math:`\sum_t \eta_t`), with
step boundaries at :math:`\sigma(S_t) = t\bar\eta`, i.e. :math:`m_t \propto 1/\kappa`.
:math:`\bar\eta = \eta_{\max}` exactly when :math:`T` is the wall-clock minimum
:math:`\lceil \tau/\eta_{\max}\rceil` for this :math:`\sigma` (reported as
``steps_at_cap``): the learning rate at its cap, the batch size absorbing the
rest. Batch bounds are respected by clipping (the learning rate then absorbs the
difference). This is a convention, not a consequence of the dynamics: the
curvature terms do not favour it in general (one large step contracts the top
modes more than many small ones), which is why the solver only adopts it when its
loss is within a tolerance of the optimum (:mod:`schedopt.solvers.jax`).

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from schedopt._jax import float64
from schedopt.controls import ControlGrid
from schedopt.dynamics.recursion import final_loss_jax
from schedopt.errors import ProblemError
from schedopt.problem import Problem

__all__ = [
    "FLAT_DIRECTION",
    "FLAT_RATIO",
    "SLACK_TOLERANCE",
    "budget_weights",
    "check_budget",
    "degeneracy",
    "degeneracy_report",
    "project_budget",
    "sample_time_remap",
    "tie_break_per_step",
]

FLAT_DIRECTION = (
    "batch redistribution at a fixed per-sample learning rate eta/m: eta_t and m_t scaled "
    "together, the sample-time shift compensated (same intrinsic time per sample)"
)
#: Relative step of the second differences in :func:`degeneracy`.
CURVATURE_STEP = 1e-2
#: Flatness at or above which a budget optimum counts as degenerate.
FLAT_RATIO = 1e3
#: A budget optimum whose mean learning rate is within this fraction of its cap has no
#: room to move along the flat family (it is the unique wall-clock point).
SLACK_TOLERANCE = 1e-3


def budget_weights(grid: ControlGrid) -> np.ndarray:
    """:math:`a_j`: steps each batch parameter contributes to, so that :math:`\\sum_t m_t = a^\\top p`."""
    return np.asarray(grid.interpolation().matrix().sum(axis=0)).ravel()


def check_budget(problem: Problem) -> float:
    """The sample budget ``D`` of a problem with a batch-size control; error if infeasible."""
    budget = problem.sample_budget
    spec = problem.controls.get("batch_size")
    if budget is None or spec is None:
        raise ProblemError(
            "a sample budget needs a batch_size control and `sample_budget`", field="sample_budget"
        )
    lo, hi = problem.horizon * spec.min, problem.horizon * spec.max
    if not lo <= budget <= hi:
        raise ProblemError(
            f"`sample_budget` = {budget:g} cannot be met in {problem.horizon} steps with batch sizes "
            f"in [{spec.min:g}, {spec.max:g}]: it must lie in [{lo:g}, {hi:g}]",
            field="sample_budget",
        )
    return float(budget)


def project_budget(values, weights, budget: float, lo, hi) -> np.ndarray:
    """Euclidean projection of ``values`` onto :math:`\\{a^\\top p = D\\} \\cap [lo, hi]`.

    The projection is :math:`\\mathrm{clip}(p + s a, lo, hi)` with the scalar :math:`s`
    found by bisection (the budget is increasing in :math:`s`); exact to rounding.
    """
    p = np.asarray(values, dtype=np.float64)
    a = np.asarray(weights, dtype=np.float64)
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), p.shape)
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), p.shape)

    def total(s: float) -> float:
        return float(a @ np.clip(p + s * a, lo, hi))

    if not a @ lo <= budget <= a @ hi:
        raise ProblemError(
            f"`sample_budget` = {budget:g} is outside the reachable range", field="sample_budget"
        )
    s_lo, s_hi = -1.0, 1.0
    while total(s_lo) > budget:
        s_lo *= 2.0
    while total(s_hi) < budget:
        s_hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (s_lo + s_hi)
        if total(mid) < budget:
            s_lo = mid
        else:
            s_hi = mid
        if s_hi - s_lo <= 1e-17 * max(abs(s_lo), abs(s_hi), 1e-300):
            break
    out = np.clip(p + s_hi * a, lo, hi)
    # remove the last rounding residue on the free components
    free = (out > lo) & (out < hi)
    if np.any(free):
        out[free] += (budget - a @ out) / a[free].sum() * np.ones(int(free.sum()))
        out = np.clip(out, lo, hi)
    return out


def _boundaries(lr: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples :math:`S_t` and intrinsic time :math:`\\sigma(S_t)` at the ``T + 1`` step boundaries."""
    samples = np.concatenate([[0.0], np.cumsum(batch)])
    intrinsic = np.concatenate([[0.0], np.cumsum(lr)])
    return samples, intrinsic


def sample_time_remap(lr, batch, new_batch) -> np.ndarray:
    """Learning rates that keep the intrinsic time per sample when the batch sizes change.

    :math:`\\eta'_t = \\sigma(S'_{t+1}) - \\sigma(S'_t)` with :math:`\\sigma` the C² cubic
    spline through :math:`(S_t, \\sum_{\\tau<t}\\eta_\\tau)`. ``new_batch`` must use the
    same total number of samples; ``new_batch = batch`` returns ``lr``.
    """
    lr = np.asarray(lr, dtype=np.float64)
    samples, intrinsic = _boundaries(lr, np.asarray(batch, dtype=np.float64))
    new_samples = np.concatenate([[0.0], np.cumsum(np.asarray(new_batch, dtype=np.float64))])
    new_samples[-1] = samples[-1]
    import scipy.interpolate

    spline = scipy.interpolate.CubicSpline(samples, intrinsic)
    return np.diff(spline(new_samples))


def _profiles(batch: np.ndarray, count: int) -> list[np.ndarray]:
    """Smooth budget-neutral profiles :math:`\\cos(j\\pi s/D)` (mean over samples removed)."""
    samples = np.concatenate([[0.0], np.cumsum(batch)])
    mid = 0.5 * (samples[:-1] + samples[1:]) / samples[-1]
    out = []
    for j in range(1, count + 1):
        w = np.cos(j * math.pi * mid)
        w -= (batch @ w) / batch.sum()
        out.append(w / np.abs(w).max())
    return out


@float64
def degeneracy(problem: Problem, lr, batch, *, modes: int = 3, step: float = CURVATURE_STEP) -> dict:
    """Flat versus across curvature of :math:`\\log L_T` at a schedule (see the module docstring).

    Args:
        problem: the problem (its model).
        lr, batch: per-step learning rates and batch sizes ``(T,)``.
        modes: number of smooth profiles :math:`w^{(j)}` probed.
        step: relative perturbation :math:`\\epsilon` of the central differences.

    Returns:
        A JSON-ready dict: ``flat_direction`` (words), ``curvature_flat`` and
        ``curvature_across`` (per profile), ``flatness`` (sum of absolute across
        over sum of absolute flat curvatures), ``noise_floor`` (the curvature that
        rounding alone can produce) and ``max_curvature_number`` :math:`\\max_t \\eta_t\\lambda_1`.
    """
    lr = np.asarray(lr, dtype=np.float64)
    batch = np.asarray(batch, dtype=np.float64)
    model = problem.model
    lam, c0 = jnp.asarray(model.eigenvalues), jnp.asarray(model.initial_error)
    noise = jnp.asarray(model.effective_noise)

    def log_loss(eta, m) -> float:
        return float(jnp.log(final_loss_jax(lam, c0, noise, jnp.asarray(eta), jnp.asarray(m))))

    base = log_loss(lr, batch)
    flat, across = [], []
    for w in _profiles(batch, modes):
        values = []
        for eps in (step, -step):
            m_new = batch * (1.0 + eps * w)
            values.append(
                (log_loss(sample_time_remap(lr, batch, m_new), m_new), log_loss(lr * (1 + eps * w), batch))
            )
        flat.append((values[0][0] - 2 * base + values[1][0]) / step**2)
        across.append((values[0][1] - 2 * base + values[1][1]) / step**2)
    flat_sum = float(np.sum(np.abs(flat)))
    across_sum = float(np.sum(np.abs(across)))
    floor = 4.0 * np.finfo(float).eps * max(abs(base), 1.0) / step**2
    return {
        "flat_direction": FLAT_DIRECTION,
        "curvature_flat": [float(x) for x in flat],
        "curvature_across": [float(x) for x in across],
        "flatness": across_sum / max(flat_sum, floor),
        "noise_floor": float(floor),
        "max_curvature_number": float(np.max(lr) * float(np.max(model.eigenvalues))),
    }


def degeneracy_report(solution, *, flat_ratio: float = FLAT_RATIO) -> dict:
    r""":func:`degeneracy` of a sample-budget solution, with its verdict (any solver).

    Adds ``steps_at_cap`` (:func:`tie_break_per_step`), ``learning_rate_slack``
    (:math:`1 - \overline{\eta}/\eta_{\max}`), ``degenerate`` (flatness at least
    ``flat_ratio`` *and* slack above :data:`SLACK_TOLERANCE`: with the learning rate
    at its cap at every step the flat family leaves the bounds, and the optimum is
    the unique wall-clock point) and ``tie_break`` (a reason string; a solver that
    applies the tie-break replaces it with its record).
    """
    problem = solution.problem
    lr_spec, batch_spec = problem.learning_rate, problem.controls["batch_size"]
    lr, batch = solution.per_step("learning_rate"), solution.per_step("batch_size")
    report = degeneracy(problem, lr, batch)
    _, _, steps_at_cap = tie_break_per_step(
        lr, batch, m_min=batch_spec.min, m_max=batch_spec.max, lr_min=lr_spec.min, lr_max=lr_spec.max
    )
    slack = 1.0 - float(lr.mean()) / lr_spec.max
    flat = report["flatness"] >= flat_ratio
    report["steps_at_cap"] = steps_at_cap
    report["learning_rate_slack"] = slack
    report["degenerate"] = bool(flat and slack > SLACK_TOLERANCE)
    if not report["degenerate"]:
        reason = "not degenerate" if not flat else "learning rate at its cap at every step: unique point"
        report["tie_break"] = f"not applied ({reason})"
    return report


def tie_break_per_step(lr, batch, *, m_min: float, m_max: float, lr_min: float, lr_max: float):
    """The tie-break point of the flat family through a schedule (see the module docstring).

    Returns:
        ``(lr', batch')``, per step: constant learning rate :math:`\\bar\\eta` where the
        batch bounds allow, batch sizes with the same total, and ``steps_at_cap``
        :math:`\\lceil\\sigma(D)/\\eta_{\\max}\\rceil`.
    """
    lr = np.asarray(lr, dtype=np.float64)
    batch = np.asarray(batch, dtype=np.float64)
    horizon = lr.size
    samples, intrinsic = _boundaries(lr, batch)
    tau = float(intrinsic[-1])
    eta_bar = tau / horizon
    # boundaries at equal intrinsic time; sigma is non-decreasing, so invert it piecewise linearly
    keep = np.concatenate([[True], np.diff(intrinsic) > 0])
    new_samples = np.interp(eta_bar * np.arange(horizon + 1), intrinsic[keep], samples[keep])
    new_samples[0], new_samples[-1] = 0.0, samples[-1]
    new_batch = np.diff(new_samples)
    if np.any(new_batch < m_min) or np.any(new_batch > m_max):
        ones = np.ones(horizon)
        new_batch = project_budget(new_batch, ones, float(samples[-1]), m_min, m_max)
    # kappa is constant within a step, so sigma is exactly piecewise linear in samples
    new_boundaries = np.concatenate([[0.0], np.cumsum(new_batch)])
    new_boundaries[-1] = samples[-1]
    new_lr = np.clip(np.diff(np.interp(new_boundaries, samples, intrinsic)), lr_min, lr_max)
    steps_at_cap = int(math.ceil(tau / lr_max * (1 - 1e-12)))
    return new_lr, new_batch, steps_at_cap
