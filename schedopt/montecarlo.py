r"""Monte-Carlo simulation of real mini-batch SGD and heavy-ball SGD on Gaussian data.

This is the empirical ground truth the exact recursion of
:mod:`schedopt.dynamics` must reproduce in the mean (THEORY §2.1, §2.3). Each
seed is one independent training run of a linear student in the eigenbasis of
its features:

* features :math:`x \sim N(0, \mathrm{diag}(\lambda))`, ``N`` = ``model.n_modes``;
* a teacher :math:`w^*` with :math:`(w^*_k)^2 = c_k(0)` *exactly*; the student
  starts at :math:`w_0 = 0`, so :math:`\Delta_0 = w_0 - w^* = -w^*` and the
  initial loss is exactly ``model.initial_loss``. The signs of :math:`w^*_k` are
  drawn independently per seed and mode (``teacher_signs="random"``, the
  default) or all positive (``"positive"``). The second-moment recursion is exact
  for *any* fixed teacher (its diagonal closes whatever the off-diagonal
  :math:`E[\Delta_j\Delta_k]`), so both choices have the same mean loss curve;
  random signs only change the spread across seeds;
* labels :math:`y = x^\top w^* + \epsilon`, :math:`\epsilon \sim N(0, \sigma^2)`;
* step ``t`` (``t = 0..T-1``) draws a fresh batch of ``m_t`` samples and runs
  optax's heavy-ball update on the mean-squared-error gradient
  :math:`g_t = \frac1{m_t}\sum_i x_i (x_i^\top w_t - y_i)`:

  .. math::  v_{t+1} = \beta_t v_t + g_t, \qquad w_{t+1} = w_t - \eta_t v_{t+1}, \qquad v_0 = 0,

  which is plain SGD when :math:`\beta_t = 0` (``momentum=None``).

**Finite model size** (THEORY §2.2). When ``model.residual`` :math:`R_N > 0`
the teacher also has modes beyond ``N`` that the student cannot represent. Their
contribution :math:`x_{>N}^\top w^*_{>N}` to a label is Gaussian with variance
:math:`R_N`, independent of the kept features and fresh at every sample, so it
is simulated exactly as extra label noise: the label noise has variance
:math:`\sigma^2 + R_N` (``model.effective_noise``). The student's error on those
modes never changes, so they add the constant :math:`R_N` to the loss.

The returned loss of each seed is the excess test loss
:math:`\sum_k \lambda_k \Delta_{t,k}^2 + R_N` after every step, the same
quantity as :attr:`schedopt.dynamics.recursion.Trajectory.loss`.

Implementation: NumPy in float64, a loop over steps, vectorised over seeds
(each step draws a ``(seeds, m_t, N)`` array of features, so a varying batch
size needs no masking). NumPy's generator was measured ~3x faster than JAX's
threefry on CPU for these draws, which dominate the cost: about
``seeds * T * m * (N + 1)`` normals. All seeds share one generator, so a
result depends on ``rng``, the seed count and the shapes. Importing this module
has no side effects beyond those of importing :mod:`schedopt`.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schedopt import _validate as v
from schedopt.dynamics.recursion import per_step
from schedopt.errors import ProblemError
from schedopt.problem import Model

__all__ = ["TEACHER_SIGNS", "MonteCarloResult", "simulate_sgd"]

TEACHER_SIGNS = ("random", "positive")


@dataclass(frozen=True, eq=False)
class MonteCarloResult:
    """Loss curves of independent SGD runs.

    Attributes:
        loss: excess loss :math:`\\sum_k \\lambda_k \\Delta_{t,k}^2 + R_N` of every
            seed after every step, shape ``(seeds, T + 1)``; ``loss[:, 0]`` is the
            initial loss. Entries are ``inf``/``nan`` where a run overflowed.
    """

    loss: np.ndarray

    def __post_init__(self) -> None:
        loss = np.array(self.loss, dtype=np.float64)
        if loss.ndim != 2 or loss.shape[0] < 1 or loss.shape[1] < 1:
            raise ProblemError(f"`loss` must be a (seeds, T + 1) array, got shape {loss.shape}", field="loss")
        loss.setflags(write=False)
        object.__setattr__(self, "loss", loss)

    @property
    def seeds(self) -> int:
        return int(self.loss.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.loss.shape[1] - 1)

    @property
    def mean(self) -> np.ndarray:
        """Mean loss over seeds, ``(T + 1,)``."""
        return self.loss.mean(axis=0)

    @property
    def stderr(self) -> np.ndarray:
        """Standard error of :attr:`mean` (sample std with ``ddof=1`` over ``sqrt(seeds)``)."""
        if self.seeds < 2:
            return np.full(self.loss.shape[1], np.nan)
        return self.loss.std(axis=0, ddof=1) / np.sqrt(self.seeds)

    def zscore(self, expected) -> np.ndarray:
        """``(mean - expected) / stderr`` at every step (``expected`` broadcasts to ``(T + 1,)``).

        Steps where the standard error is zero (step 0, whose loss is the same for
        every seed) get ``0`` if the mean equals ``expected`` exactly, else ``±inf``.
        """
        diff = self.mean - np.asarray(expected, dtype=np.float64)
        se = self.stderr
        with np.errstate(divide="ignore", invalid="ignore"):
            z = diff / se
        exact = np.where(diff == 0, 0.0, np.copysign(np.inf, diff))
        return np.where(se == 0, exact, z)


def _integer_batch(batch_size, horizon: int) -> np.ndarray:
    m = per_step("batch_size", batch_size, horizon)
    if m.ndim != 1:
        raise ProblemError(
            f"`batch_size` must be a scalar or a (T,) array, got shape {m.shape}",
            field="batch_size",
        )
    if np.any(m < 1) or np.any(m != np.round(m)):
        bad = m[(m < 1) | (m != np.round(m))][0]
        raise ProblemError(
            f"`batch_size` must be a positive integer at every step, got {bad!r}",
            field="batch_size",
        )
    return m


def _simulate(rng, eigenvalues, initial_error, noise_std, residual, lr, m, beta, seeds, random_signs):
    n = eigenvalues.size
    horizon = lr.size
    sqrt_lam = np.sqrt(eigenvalues)
    if random_signs:
        signs = rng.choice(np.array([-1.0, 1.0]), size=(seeds, n))
    else:
        signs = np.ones((seeds, n))
    delta = -signs * np.sqrt(initial_error)  # w0 = 0, Delta0 = -w*
    vel = np.zeros((seeds, n))
    loss = np.empty((seeds, horizon + 1))
    loss[:, 0] = (delta * delta) @ eigenvalues
    # A diverging run overflows to inf / nan; that is reported in the result, not warned about.
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(horizon):
            m_t = int(m[t])
            x = rng.standard_normal((seeds, m_t, n))
            x *= sqrt_lam
            # prediction minus label: x.w - (x.w* + eps) = x.Delta - eps
            err = np.einsum("smn,sn->sm", x, delta)
            if noise_std > 0:
                err -= noise_std * rng.standard_normal((seeds, m_t))
            grad = np.einsum("smn,sm->sn", x, err) / m_t
            if beta[t] != 0:
                vel = beta[t] * vel + grad
            else:
                vel = grad
            delta -= lr[t] * vel
            loss[:, t + 1] = (delta * delta) @ eigenvalues
    loss += residual
    return loss


def simulate_sgd(
    model: Model,
    learning_rate,
    *,
    batch_size=1,
    momentum=None,
    seeds: int = 1000,
    rng=0,
    teacher_signs: str = "random",
) -> MonteCarloResult:
    """Run real mini-batch (heavy-ball) SGD on Gaussian data for many seeds.

    Args:
        model: spectrum :math:`\\lambda`, initial error :math:`c(0)` (the squared
            teacher weights), label noise :math:`\\sigma^2` and residual :math:`R_N`.
        learning_rate: per-step learning rates :math:`\\eta_t`, shape ``(T,)``.
        batch_size: integer batch size, scalar or per step ``(T,)``.
        momentum: ``None`` for plain SGD, or heavy-ball :math:`\\beta_t \\in [0, 1)`,
            scalar or per step (optax ``sgd(momentum=...)`` semantics).
        seeds: number of independent runs.
        rng: an integer seed or a :class:`numpy.random.Generator` (advanced in place).
        teacher_signs: ``"random"`` (independent signs of :math:`w^*_k` per seed)
            or ``"positive"`` (:math:`w^*_k = +\\sqrt{c_k(0)}`).

    Returns:
        The loss curve of every seed; see :class:`MonteCarloResult`.

    Raises:
        ProblemError: a control or option is invalid.
    """
    if not isinstance(model, Model):
        raise ProblemError(f"`model` must be a Model, got {type(model).__name__}", field="model")
    lr = np.asarray(learning_rate, dtype=np.float64)
    if lr.ndim != 1 or lr.size == 0:
        raise ProblemError(
            f"`learning_rate` must be a non-empty (T,) per-step array, got shape {lr.shape}",
            field="learning_rate",
        )
    horizon = lr.shape[0]
    lr = per_step("learning_rate", lr, horizon)
    if np.any(lr < 0):
        raise ProblemError("`learning_rate` must be non-negative at every step", field="learning_rate")
    m = _integer_batch(batch_size, horizon)
    if momentum is None:
        beta = np.zeros(horizon)
    else:
        beta = per_step("momentum", momentum, horizon)
        if beta.ndim != 1:
            raise ProblemError(
                f"`momentum` must be a scalar or a (T,) array, got shape {beta.shape}",
                field="momentum",
            )
        if np.any((beta < 0) | (beta >= 1)):
            raise ProblemError("`momentum` must be in [0, 1) at every step", field="momentum")
    n_seeds = v.positive_int("seeds", seeds)
    v.one_of("teacher_signs", teacher_signs, TEACHER_SIGNS)
    if not isinstance(rng, np.random.Generator):
        if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or rng < 0:
            raise ProblemError(
                f"`rng` must be a non-negative integer or a numpy Generator, got {rng!r}",
                field="rng",
            )
        rng = np.random.default_rng(int(rng))

    loss = _simulate(
        rng,
        model.eigenvalues,
        model.initial_error,
        float(np.sqrt(model.effective_noise)),
        model.residual,
        lr,
        m,
        beta,
        n_seeds,
        teacher_signs == "random",
    )
    return MonteCarloResult(loss=loss)
