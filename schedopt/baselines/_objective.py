r"""The tuning objective: the final loss of a family on a problem, batched, in scaled coordinates.

Values only (no autodiff), so the tuner does not depend on how the recursion is
differentiated; the problem's numbers are traced arguments, so other problems and
families with the same ``N`` and ``T`` do not recompile. The search runs in
``u ∈ [0, 1]`` per parameter: the peak on a logit scale
:math:`\log\eta - \log(\eta_c - \eta)` with :math:`\eta_c` the stability threshold
(the loss diverges like :math:`1/(\eta_c-\eta)`, which this keeps near-quadratic).
"""

from __future__ import annotations

import copy
import dataclasses
import math

import jax.numpy as jnp
import numpy as np

from schedopt._jax import cached_jit, jax
from schedopt.baselines._families import _KINDS, LOGIT_EPS, PEAK, BaselineFamily, _schedule_values
from schedopt.baselines._search import FD_STEP
from schedopt.dynamics.compression import auto_compress, spectrum
from schedopt.dynamics.recursion import divergence_limit, final_loss_jax
from schedopt.dynamics.stability import cap_note, momentum_stability_threshold, stability_threshold
from schedopt.errors import ProblemError
from schedopt.problem import Problem

#: Vectorised batch size: every call is padded to it, so the objective is one program per ``N, T``
#: (a second, smaller size cost a fresh process more to trace and lower than its rows saved).
_BATCH = 8
#: Batch sizes of an objective with ``fitted_batches``: a call is padded to the smallest that holds
#: it. For the few calls at a long horizon, where a row costs more than a program's compilation.
_FITTED = (1, 2, 4, _BATCH)


@cached_jit(static_argnames=("horizon",))
def _batch_final_loss(kind, option, params, lam, c0, noise, batch_size, momentum, weights, *, horizon):
    """Kept-mode final loss of ``params[i] = (peak, shape)`` for one family; ``(S,)``.

    ``weights``: the loss readout of a compressed spectrum, or ``None``.
    """
    m = jnp.full((horizon,), batch_size)
    beta = None if momentum is None else jnp.full((horizon,), momentum)

    def one(p):
        lr = _schedule_values(kind, option, p, horizon=horizon)
        return final_loss_jax(lam, c0, noise, lr, m, beta, loss_weights=weights)

    return jax.vmap(one)(params)


class _Objective:
    """Final loss of a family on a problem, in scaled search coordinates ``u ∈ [0, 1]^P``."""

    def __init__(
        self,
        problem: Problem,
        family: BaselineFamily,
        peak_range: float,
        threshold: float | None = None,
        modes: str = "auto",
    ):
        model = problem.model
        lr = problem.learning_rate
        self.family = family
        self.horizon = problem.horizon
        self.kind = _KINDS.index(type(family))
        hi = lr.max
        lo = max(lr.min, hi * peak_range)
        # the loss diverges as the peak nears the stability threshold: searching in
        # log(peak) - log(threshold - peak) keeps it close to quadratic there
        pole = threshold if threshold is not None and threshold > hi else hi * (1.0 + LOGIT_EPS)
        peak = dataclasses.replace(PEAK, lower=lo, upper=hi, scale="logit", pole=pole)
        self.params = (peak, *family.shape_parameters)
        self.lower = np.array([p.lower for p in self.params])
        self.upper = np.array([p.upper for p in self.params])
        zl = np.array([float(p.to_scaled(p.lower)) for p in self.params])
        zu = np.array([float(p.to_scaled(p.upper)) for p in self.params])
        self.z_lower, self.z_width = zl, zu - zl
        # plain SGD on a large spectrum: the compressed one (same losses to ~5e-13, 1/8 the work at N = 1e3)
        compressed = None
        if modes == "auto" and problem.training.momentum == 0.0:
            compressed = auto_compress(model.eigenvalues, model.initial_error)
        self.compressed = compressed is not None
        lam, c0, weights = spectrum(model, compressed)
        self.args = (
            *jax.device_put((lam, c0, model.effective_noise, _fixed_batch_size(problem))),
            None if problem.training.momentum == 0.0 else jax.device_put(problem.training.momentum),
            None if weights is None else jax.device_put(weights),
        )
        self.residual = model.residual
        self.limit = divergence_limit(model)
        self.evaluations = 0
        self.fitted_batches = False

    def at_horizon(self, horizon: int) -> _Objective:
        """The same family and problem run for ``horizon`` steps instead (its own evaluation count).

        The batch size stays the problem's (``sample_budget / T`` with a budget): only the
        length of the schedules changes.
        """
        other = copy.copy(self)
        other.horizon, other.evaluations = int(horizon), 0
        return other

    def fd_step(self, u: np.ndarray) -> np.ndarray:
        """Finite-difference step per scaled coordinate at ``u``.

        :data:`FD_STEP`, except for the cooldown fraction: the per-step values are
        only once differentiable in it (the curvature jumps each time the cooldown
        start crosses a step), so its step spans about two steps of the cooldown
        start and the Hessian sees the average curvature.
        """
        h = np.full(self.dim, FD_STEP)
        for j, p in enumerate(self.params):
            if p.name == "cooldown_fraction":
                f = self.natural(u)[j]
                per_step = float(p.scaled_slope(f)) / (self.horizon * self.z_width[j])  # u per step
                h[j] = min(max(FD_STEP, 2.0 * per_step), 0.02)
        return h

    @property
    def n_modes(self) -> int:
        """Modes the recursion runs on (the compressed spectrum's when compressed)."""
        return int(self.args[0].shape[0])

    @property
    def dim(self) -> int:
        return self.lower.size

    def natural(self, u: np.ndarray) -> np.ndarray:
        """Parameter values (``peak``, shape) from scaled coordinates, exactly within the bounds."""
        z = self.z_lower + np.clip(u, 0.0, 1.0) * self.z_width
        x = np.stack([p.from_scaled(z[..., j]) for j, p in enumerate(self.params)], axis=-1)
        return np.clip(x, self.lower, self.upper)

    def loss(self, u: np.ndarray) -> np.ndarray:
        """Final loss (kept modes + residual) of each row of ``u``; ``inf`` where it diverged."""
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        x = self.natural(u)
        if x.shape[1] == 1:
            x = np.concatenate([x, np.zeros_like(x)], axis=1)  # unused shape slot
        out = np.empty(len(x))
        for start in range(0, len(x), _BATCH):
            chunk = x[start : start + _BATCH]
            size = next(b for b in _FITTED if b >= len(chunk)) if self.fitted_batches else _BATCH
            padded = np.concatenate([chunk, np.repeat(chunk[:1], size - len(chunk), axis=0)])
            kept = _batch_final_loss(
                self.kind, self.family.option, jax.device_put(padded), *self.args, horizon=self.horizon
            )
            out[start : start + len(chunk)] = np.asarray(kept)[: len(chunk)] + self.residual
        self.evaluations += len(x)
        return np.where(np.isfinite(out) & (out <= self.limit), out, np.inf)


def _check_stability(problem: Problem) -> tuple[float, str | None]:
    """The stability threshold at the baselines' batch size and momentum, and a note if the cap is at
    or above it (allowed: the peak search then crosses it, and a schedule that diverges scores ``inf``).

    Baselines run at one batch size and momentum (not over the box of a batch-size
    or momentum control, as solvers do), so this is the threshold that matters.
    """
    m = _fixed_batch_size(problem)
    beta = problem.training.momentum
    if beta == 0.0:
        threshold = stability_threshold(problem.model, m)
    else:
        threshold = float(momentum_stability_threshold(problem.model, beta, m))
    where = f"the baselines' batch_size = {m:g} and momentum = {beta:g}"
    return threshold, cap_note(problem.learning_rate.max, threshold, where, "their peak search crosses it")


def _fixed_batch_size(problem: Problem) -> float:
    """The constant batch size baselines run at: the budget's ``D / T`` if there is one."""
    m = problem.mean_batch_size
    if problem.sample_budget is None:
        return m
    spec = problem.controls.get("batch_size")
    lo, hi = (spec.min, spec.max) if spec is not None else (1.0, math.inf)
    if not lo <= m <= hi:
        raise ProblemError(
            f"`sample_budget` / horizon = {m:g} is outside the batch-size bounds [{lo:g}, {hi:g}]; "
            "baselines run at a constant batch size",
            field="sample_budget",
        )
    return m
