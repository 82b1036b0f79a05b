r"""The exact discrete recursion, run in JAX: loss curves and final losses of schedules.

Runs the step functions of :mod:`schedopt.dynamics.sgd` and
:mod:`schedopt.dynamics.momentum` with ``jax.lax.scan`` in float64. Per-step
controls are arrays of length ``T`` (step ``t = 0`` is the first update); a
leading batch axis on them runs many schedules in one vectorised call.

Reverse-mode gradients are memory-bounded: the scan is split into chunks of
about :math:`\sqrt{T}` steps whose states are recomputed in the backward pass
(``jax.checkpoint``), so memory is :math:`O(\sqrt{T} N)` instead of
:math:`O(T N)`. Padding steps have learning rate 0, which leaves the error
:math:`c` (and the momentum :math:`A`) unchanged.

Cost: :math:`O(T N)` per pass. For horizons beyond ~10^5 use
:mod:`schedopt.dynamics.ode`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from schedopt._jax import cached_jit, float64, jax
from schedopt.dynamics.adjoint import _chunks, sgd_final_loss
from schedopt.dynamics.compression import CompressedModes, spectrum
from schedopt.dynamics.momentum import momentum_init, momentum_step
from schedopt.dynamics.momentum_adjoint import momentum_final_loss
from schedopt.dynamics.ops import JAX
from schedopt.dynamics.sgd import sgd_loss, sgd_step
from schedopt.errors import ProblemError
from schedopt.problem import Model

__all__ = [
    "DIVERGENCE_FACTOR",
    "Trajectory",
    "checkpoint_steps",
    "divergence_limit",
    "final_loss",
    "final_loss_jax",
    "loss_at",
    "loss_curve",
    "loss_curve_jax",
    "per_step",
]

#: A loss above this multiple of (initial loss + noise) counts as divergence.
DIVERGENCE_FACTOR = 1e6


def _pad(x, total: int):
    """Pad the last axis with zeros to ``total`` (learning rate 0 steps change nothing)."""
    pad = total - x.shape[-1]
    if pad == 0:
        return x
    widths = [(0, 0)] * (x.ndim - 1) + [(0, pad)]
    return jnp.pad(x, widths)


def _pad_edge(x, total: int):
    pad = total - x.shape[-1]
    if pad == 0:
        return x
    widths = [(0, 0)] * (x.ndim - 1) + [(0, pad)]
    return jnp.pad(x, widths, mode="edge")


def _scan_chunks(step, state, controls, horizon: int, emit=None):
    """Scan ``step(state, *per_step_controls)`` over ``horizon`` steps in checkpointed chunks.

    ``emit(state)`` (a scalar, the loss) is recorded after every step; the states are not.
    """
    chunk, n_chunks = _chunks(horizon)
    total = n_chunks * chunk
    lr = _pad(controls[0], total)
    rest = [_pad_edge(u, total) for u in controls[1:]]
    stacked = [u.reshape(n_chunks, chunk) for u in (lr, *rest)]

    def inner(state, xs):
        new = step(state, *xs)
        return new, (None if emit is None else emit(new))

    @jax.checkpoint
    def outer(state, xs):
        return jax.lax.scan(inner, state, xs)

    state, saved = jax.lax.scan(outer, state, tuple(stacked))
    return state, saved, total


def _sgd_run(eigenvalues, initial_error, noise, learning_rate, batch_size, record, loss_weights=None):
    weights = eigenvalues if loss_weights is None else loss_weights

    def step(c, lr, m):
        return sgd_step(c, lr, m, eigenvalues, noise, JAX, weights)

    def emit(c):
        return jnp.sum(c * weights)

    horizon = learning_rate.shape[-1]
    final, saved, _ = _scan_chunks(
        step, initial_error, (learning_rate, batch_size), horizon, emit if record else None
    )
    if not record:
        return sgd_loss(final, eigenvalues, JAX, weights)
    losses = saved.reshape(-1)[:horizon]
    return jnp.concatenate([jnp.sum(weights * initial_error)[None], losses])


def _momentum_run(
    eigenvalues, initial_error, noise, learning_rate, batch_size, momentum, record, loss_weights=None
):
    weights = eigenvalues if loss_weights is None else loss_weights

    def step(state, lr, m, beta):
        return momentum_step(state, lr, m, beta, eigenvalues, noise, JAX, weights)

    def emit(state):
        return jnp.sum(state[0] * weights)

    horizon = learning_rate.shape[-1]
    final, saved, _ = _scan_chunks(
        step,
        momentum_init(initial_error),
        (learning_rate, batch_size, momentum),
        horizon,
        emit if record else None,
    )
    if not record:
        return sgd_loss(final[0], eigenvalues, JAX, weights)
    losses = saved.reshape(-1)[:horizon]
    return jnp.concatenate([jnp.sum(weights * initial_error)[None], losses])


@cached_jit(static_argnames=("record",))
def _run(eigenvalues, initial_error, noise, learning_rate, batch_size, momentum, record, loss_weights=None):
    if momentum is None and not record:
        # hand-written adjoint: same values, gradients at ~1/3 the cost of autodiff
        return sgd_final_loss(eigenvalues, initial_error, noise, learning_rate, batch_size, loss_weights)
    if not record:
        # hand-written heavy-ball adjoint: same values, gradients ~2x faster than autodiff
        return momentum_final_loss(
            eigenvalues, initial_error, noise, learning_rate, batch_size, momentum, loss_weights
        )
    if momentum is None:
        return _sgd_run(eigenvalues, initial_error, noise, learning_rate, batch_size, record, loss_weights)
    return _momentum_run(
        eigenvalues, initial_error, noise, learning_rate, batch_size, momentum, record, loss_weights
    )


@cached_jit
def _run_at(
    eigenvalues, initial_error, noise, learning_rate, batch_size, momentum, steps, residual, limit, weights
):
    """Loss (kept modes + ``residual``) after ``steps[i]`` updates, and the first step above ``limit``.

    One scan that carries the state, a ``(K,)`` buffer and a counter, and emits nothing:
    O(N + K) memory whatever the horizon (the loss curve of :func:`_run` is O(T)).
    """
    if momentum is None:
        state = initial_error
        xs = (learning_rate, batch_size)

        def step(state, lr, m):
            return sgd_step(state, lr, m, eigenvalues, noise, JAX, weights)

        def kept(state):
            return jnp.sum(state * weights)

    else:
        state = momentum_init(initial_error)
        xs = (learning_rate, batch_size, momentum)

        def step(state, lr, m, beta):
            return momentum_step(state, lr, m, beta, eigenvalues, noise, JAX, weights)

        def kept(state):
            return jnp.sum(state[0] * weights)

    count = steps.shape[0]

    def is_bad(total):
        return ~jnp.isfinite(total) | (total > limit)

    total = kept(state) + residual
    out = jnp.where(steps == 0, total, jnp.nan)
    first = jnp.where(is_bad(total), 0, -1)
    k = jnp.sum(steps == 0)  # steps are strictly increasing: the next checkpoint to fill

    def body(carry, x):
        state, out, k, first, t = carry
        state = step(state, *x)
        t = t + 1
        total = kept(state) + residual
        first = jnp.where((first < 0) & is_bad(total), t, first)
        at = jnp.minimum(k, count - 1)
        hit = (k < count) & (steps[at] == t)
        out = out.at[at].set(jnp.where(hit, total, out[at]))
        return (state, out, k + hit, first, t), None

    carry = (state, out, k, first, jnp.zeros((), dtype=steps.dtype))
    (_, out, _, first, _), _ = jax.lax.scan(body, carry, xs)
    return out, first


def final_loss_jax(
    eigenvalues, initial_error, noise, learning_rate, batch_size, momentum=None, loss_weights=None
):
    """Final loss of the kept modes :math:`L_T - R_N`; jit-, grad- and vmap-safe.

    Args:
        eigenvalues, initial_error: ``(N,)`` arrays.
        noise: effective noise :math:`\\sigma^2 + R_N` (a traced scalar: no recompiles).
        learning_rate, batch_size: ``(T,)`` per-step arrays.
        momentum: ``(T,)`` per-step heavy-ball coefficients, or ``None`` for plain SGD.
        loss_weights: loss readout ``(N,)`` of a compressed spectrum
            (:class:`~schedopt.dynamics.compression.CompressedModes`); default the eigenvalues.
    """
    return _run(eigenvalues, initial_error, noise, learning_rate, batch_size, momentum, False, loss_weights)


def loss_curve_jax(
    eigenvalues, initial_error, noise, learning_rate, batch_size, momentum=None, loss_weights=None
):
    """Loss of the kept modes after each step, ``(T + 1,)`` with ``[0]`` the initial loss."""
    return _run(eigenvalues, initial_error, noise, learning_rate, batch_size, momentum, True, loss_weights)


def per_step(name: str, value, horizon: int) -> np.ndarray:
    """A per-step float64 array of length ``horizon`` from a scalar or an array (validated)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(horizon, float(arr))
    if arr.shape[-1] != horizon:
        raise ProblemError(
            f"`{name}` must have one value per step ({horizon}), got {arr.shape[-1]}", field=name
        )
    if not np.all(np.isfinite(arr)):
        raise ProblemError(f"`{name}` must be finite at every step", field=name)
    return arr


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A simulated loss curve.

    Attributes:
        loss: excess loss :math:`L_t` (kept modes + residual) for ``t = 0..T``, or at
            ``steps`` only (:func:`loss_at`); leading batch axes when schedules were batched.
        diverged: whether the loss exceeded ``DIVERGENCE_FACTOR`` x (initial loss + noise)
            or became non-finite (at any step, checkpoint or not).
        divergence_step: first step at which it did (``-1`` if never).
        steps: the steps of ``loss`` (``None``: every step ``0..T``).
    """

    loss: np.ndarray
    diverged: np.ndarray
    divergence_step: np.ndarray
    steps: np.ndarray | None = None

    @property
    def final_loss(self):
        return self.loss[..., -1]


def divergence_limit(model: Model) -> float:
    """Loss above which a run counts as diverged: :data:`DIVERGENCE_FACTOR` x (initial loss + residual + noise)."""
    return DIVERGENCE_FACTOR * (model.initial_loss + model.residual + model.effective_noise)


def _controls(model: Model, learning_rate, batch_size, momentum):
    lr = np.asarray(learning_rate, dtype=np.float64)
    if lr.ndim == 0:
        raise ProblemError("`learning_rate` must be a per-step array", field="learning_rate")
    horizon = lr.shape[-1]
    lr = per_step("learning_rate", lr, horizon)
    if np.any(lr < 0):
        raise ProblemError("`learning_rate` must be non-negative at every step", field="learning_rate")
    m = np.broadcast_to(per_step("batch_size", batch_size, horizon), lr.shape)
    if np.any(m < 1):
        raise ProblemError("`batch_size` must be >= 1 at every step", field="batch_size")
    beta = None
    if momentum is not None:
        beta = np.broadcast_to(per_step("momentum", momentum, horizon), lr.shape)
        if np.any((beta < 0) | (beta >= 1)):
            raise ProblemError("`momentum` must be in [0, 1) at every step", field="momentum")
    return lr, m, beta


def _batched(fn, lr, m, beta):
    """Apply ``fn`` over any leading batch axes of the per-step controls."""
    if lr.ndim == 1:
        return fn(lr, m, beta)
    lead = lr.shape[:-1]
    flat = [None if u is None else np.ascontiguousarray(u).reshape(-1, lr.shape[-1]) for u in (lr, m, beta)]
    out = jax.vmap(fn, in_axes=(0, 0, None if beta is None else 0))(*flat)
    return out.reshape(*lead, *out.shape[1:])


def _spectrum(model: Model, modes: CompressedModes | None):
    """``(eigenvalues, initial error, loss readout or None)`` as JAX arrays: the model's or ``modes``."""
    lam, c0, weights = spectrum(model, modes)
    # device_put, not jnp.asarray: the same arrays (same types), without a small program per
    # shape that a fresh process would trace, lower and fetch from the cache
    return jax.device_put((lam, c0, weights))


@float64
def loss_curve(model: Model, learning_rate, *, batch_size=1.0, momentum=None, modes=None) -> Trajectory:
    """Simulate the exact recursion; return the loss after every step.

    Args:
        model: the model.
        learning_rate: per-step learning rates ``(..., T)``.
        batch_size: scalar or per-step batch sizes.
        momentum: ``None`` (plain SGD) or scalar / per-step heavy-ball coefficients.
        modes: run on this compressed spectrum of the model
            (:func:`~schedopt.dynamics.compression.compress_modes`) instead of its own modes
            (~1e-12 relative, O(T n) instead of O(T N); heavy ball too).
    """
    lr, m, beta = _controls(model, learning_rate, batch_size, momentum)
    lam, c0, weights = _spectrum(model, modes)
    noise = jax.device_put(model.effective_noise)

    def fn(lr_, m_, beta_):
        return loss_curve_jax(lam, c0, noise, lr_, m_, beta_, weights)

    kept = np.asarray(_batched(fn, lr, m, beta))
    loss = kept + model.residual
    limit = divergence_limit(model)
    bad = ~np.isfinite(loss) | (loss > limit)
    diverged = bad.any(axis=-1)
    first = np.where(diverged, np.argmax(bad, axis=-1), -1)
    return Trajectory(loss=loss, diverged=diverged, divergence_step=first)


def checkpoint_steps(horizon: int, count: int = 200) -> np.ndarray:
    """Steps at which to report a loss curve: 0, about ``count`` log-spaced steps in ``[1, T]``, and ``T``."""
    logspaced = np.geomspace(1, horizon, max(2, count)).round().astype(np.int64)
    return np.unique(np.concatenate([[0], logspaced, [horizon]]))


@float64
def loss_at(
    model: Model, learning_rate, steps=None, *, batch_size=1.0, momentum=None, modes=None
) -> Trajectory:
    """The loss after ``steps`` updates only, in O(N + len(steps)) memory per schedule.

    The states are never stored (:func:`loss_curve` keeps one loss per step); divergence is
    still checked at every step. Use it for the loss curves of long horizons (plots, reports).

    Args:
        model, learning_rate, batch_size, momentum, modes: as :func:`loss_curve`.
        steps: strictly increasing integers in ``[0, T]`` (default :func:`checkpoint_steps`).

    Returns:
        A :class:`Trajectory` whose ``loss[..., i]`` is the loss after ``steps[i]`` updates.
    """
    lr, m, beta = _controls(model, learning_rate, batch_size, momentum)
    horizon = lr.shape[-1]
    steps = checkpoint_steps(horizon) if steps is None else np.asarray(steps)
    if (
        steps.ndim != 1
        or steps.size == 0
        or not np.issubdtype(steps.dtype, np.integer)
        or np.any(np.diff(steps) <= 0)
        or steps[0] < 0
        or steps[-1] > horizon
    ):
        raise ProblemError(
            f"`steps` must be strictly increasing integers in [0, {horizon}], got {steps!r}", field="steps"
        )
    steps = steps.astype(np.int64)
    lam, c0, weights = _spectrum(model, modes)
    args = (
        *jax.device_put((model.effective_noise, steps, model.residual, divergence_limit(model))),
        lam if weights is None else weights,
    )

    lead = lr.shape[:-1]
    if not lead:
        loss, first = _run_at(lam, c0, args[0], lr, m, beta, *args[1:])
    else:
        flat = [None if u is None else np.ascontiguousarray(u).reshape(-1, horizon) for u in (lr, m, beta)]
        loss, first = _run_at_many(lam, c0, args[0], *flat, *args[1:])
        loss, first = loss.reshape(*lead, -1), first.reshape(lead)
    first = np.asarray(first)
    return Trajectory(loss=np.asarray(loss), diverged=first >= 0, divergence_step=first, steps=steps)


@cached_jit
def _run_at_many(
    eigenvalues, initial_error, noise, learning_rate, batch_size, momentum, steps, residual, limit, weights
):
    """:func:`_run_at` of stacked schedules (rows of ``learning_rate``, ``batch_size``, ``momentum``)."""
    rows = (None, None, None, 0, 0, 0, None, None, None, None)
    return jax.vmap(_run_at, in_axes=rows)(
        eigenvalues,
        initial_error,
        noise,
        learning_rate,
        batch_size,
        momentum,
        steps,
        residual,
        limit,
        weights,
    )


@float64
def final_loss(model: Model, learning_rate, *, batch_size=1.0, momentum=None, modes=None):
    """Final excess loss :math:`L_T` (kept modes + residual); ``inf`` where it diverged.

    Arguments as :func:`loss_curve`.
    """
    lr, m, beta = _controls(model, learning_rate, batch_size, momentum)
    lam, c0, weights = _spectrum(model, modes)
    noise = jax.device_put(model.effective_noise)

    def fn(lr_, m_, beta_):
        return final_loss_jax(lam, c0, noise, lr_, m_, beta_, weights)

    out = np.asarray(_batched(fn, lr, m, beta)) + model.residual
    limit = divergence_limit(model)
    out = np.where(np.isfinite(out) & (out <= limit), out, np.inf)
    return float(out) if out.ndim == 0 else out
