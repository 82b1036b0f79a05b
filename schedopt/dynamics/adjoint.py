r"""Final SGD loss with a hand-written adjoint (reverse mode) for fast gradients.

The Pontryagin sweep built on the same chunked forward pass is :func:`schedopt.solvers.pontryagin.sgd_sweep`.

Forward: the exact recursion of :mod:`schedopt.dynamics.sgd`. Reverse: the
adjoint of THEORY §3, with :math:`\nu_T = \bar g\,w` and
:math:`\nu_t = M_t^\top \nu_{t+1} = d_t \odot \nu_{t+1} + g_t\,w\,(\lambda^\top\nu_{t+1})`,
:math:`w` the loss readout (``loss_weights``; :math:`w = \lambda` for a model's own modes),
:math:`d_t = 1 - r_t`, :math:`g_t = \eta_t^2/m_t`, :math:`s_t = L_t + \sigma^2`:

.. math::

    \partial_{\eta_t} L_T &= \sum_k \nu_{t+1,k}\bigl(-2\lambda_k + 2(1+\tfrac1m)\eta\lambda_k^2\bigr)c_{t,k}
        + \tfrac{2\eta}{m} s_t\,\lambda^\top\nu_{t+1}, \\
    \partial_{m_t} L_T &= -\tfrac{\eta^2}{m^2}\Bigl(\sum_k \nu_{t+1,k}\lambda_k^2 c_{t,k} + s_t\,\lambda^\top\nu_{t+1}\Bigr), \\
    \partial_{\sigma^2} L_T &= \sum_t g_t\,\lambda^\top\nu_{t+1}, \qquad
    \partial_{c_0} L_T = \nu_0, \\
    \partial_{\lambda_j} L_T &= \bar g\,c_{T,j} + \sum_t \Bigl[\nu_{t+1,j}\bigl((-2\eta + 2(1+\tfrac1m)\eta^2\lambda_j)c_{t,j}
        + g_t s_t\bigr) + g_t(\lambda^\top\nu_{t+1})\,c_{t,j}\Bigr].

This costs about three forward passes (forward, recomputation, adjoint) where
generic reverse-mode through the scan costs about ten. States are kept only at
chunk boundaries (about :math:`\sqrt T` of them) and recomputed chunk by chunk,
so memory is :math:`O(\sqrt T N)`. The result equals autodiff of
:mod:`schedopt.dynamics.recursion` (tested). The readout has its own cotangent,
:math:`\partial_w L_T = \bar g\,c_T + \sum_t g_t(\lambda^\top\nu_{t+1})\,c_t`: the last terms of
:math:`\partial_\lambda L_T` above, which reach :math:`\lambda` when :math:`w = \lambda`.
"""

from __future__ import annotations

import contextlib
import math
import threading

import jax.numpy as jnp

from schedopt._jax import jax
from schedopt.dynamics.ops import JAX, TREE_WIDTH, tree_sum, tree_width
from schedopt.dynamics.sgd import sgd_loss

__all__ = ["WHOLE_LOOP_ENTRIES", "sgd_final_loss", "step_scan", "vmap_rows", "whole_loops", "whole_loops_for"]

_UNROLL = 1

#: The XLA metadata key (a trace-time context) of :func:`whole_loops`.
_WHOLE_LOOPS = "schedopt_whole_loops"
_kernel = threading.local()  # depth of :func:`step_scan` bodies being traced in this thread


#: Most per-step state entries (rows x modes) of a program whose chunk loops run as whole kernels on
#: a CPU, one row included (:func:`whole_loops_for`). One row, T = 1e3, value and gradient (ms, idle):
#: 16 modes 0.29 against 0.50 step by step, 128 modes 0.43 against 0.68 (T = 1e4: 2.6 against 5.0),
#: 1024 modes 2.99 against 3.24; above it XLA's loop runs a step's kernels on several threads and
#: wins (2048 modes: 7.5 against 6.9), and at ~4000 modes the whole-loop kernel does not compile.
#: The lockstep's pieces on a CPU hold at most this many (``_lockstep.CPU_ROW_ENTRIES``).
WHOLE_LOOP_ENTRIES = 1024


def whole_loops(on: bool = True):
    """Context for tracing a program of small per-step state: each :func:`step_scan` one kernel.

    XLA's CPU runtime runs a loop step by step, each of a step's 4-6 kernels (fusions, copies, the
    counter) dispatched on its own: at a piece's 8 rows of 128 modes about half of a row's cost.
    Inside this context every :func:`step_scan` (the loops over one chunk's steps) is a call that
    XLA's CPU backend compiles into a single kernel, loop and all (the call is tagged
    ``xla_cpu_small_call``, as XLA's own small-while-loop pass tags the loops it hoists, which its
    default threshold of 1 kB of buffers keeps from these loops): 8 rows cost 0.29-0.43 ms a row
    instead of 0.58-0.70 (benchmarks/README.md, "Batched solves"), one row of 128 modes 0.43 ms
    instead of 0.68. Which programs are traced inside it: :func:`whole_loops_for`. The rows of a
    multi-row program are those of the one-row program, bitwise in the solver's programs measured
    and otherwise to the last bit of a few gradient entries (``tests/test_batch.py``).

    The context is JAX's XLA metadata, which is part of JAX's trace context, so the nested jitted
    functions traced inside it (``recursion._run``, ``pontryagin.sgd_sweep``) are cached apart from
    their traces outside it. ``on`` false: a no-op.
    """
    if not on:
        return contextlib.nullcontext()
    from jax.experimental.xla_metadata import set_xla_metadata

    return set_xla_metadata(**{_WHOLE_LOOPS: "1"})


def whole_loops_for(rows: int, modes: int | None):
    """The :func:`whole_loops` context of a program of ``rows`` problems of ``modes`` state entries each.

    Several rows: always (on a CPU the lockstep cuts them into pieces of at most
    :data:`WHOLE_LOOP_ENTRIES`; elsewhere the tag is XLA's CPU backend's and changes nothing). One
    row: on a CPU when its state is at most :data:`WHOLE_LOOP_ENTRIES` (a one-by-one solve on a
    compressed spectrum); ``modes=None``: not known, off.
    """
    small = modes is not None and modes <= WHOLE_LOOP_ENTRIES and jax.default_backend() == "cpu"
    return whole_loops(rows > 1 or small)


def vmap_rows(f, modes=None):
    """``jax.vmap(f)`` over the leading axis of every argument (rows are problems), traced inside
    :func:`whole_loops_for` its rows and ``modes(*args)`` (a row's state entries; ``None``: not known)."""

    def rows(*args):
        with whole_loops_for(jnp.shape(args[0])[0], None if modes is None else modes(*args)):
            return jax.vmap(f)(*args)

    return rows


def _whole_loops() -> bool:
    from jax._src import config

    metadata = config.xla_metadata_context_manager.value
    return metadata is not None and _WHOLE_LOOPS in getattr(metadata, "val", {})


def in_kernel() -> bool:
    """Whether the trace is inside a :func:`step_scan` compiled as one kernel.

    There an expression ``a * b + c * d`` is written ``c * d + a * b``: LLVM contracts one of the two
    products into a fused multiply-add, and the kernel emitter of a whole loop and XLA's fusion
    emitter present the sum to LLVM in opposite orders, so the same order in the source contracts
    different products (1 ulp apart; L-BFGS-B then took 1-4 iterations more or fewer on 4 of 256
    problems). With the operands swapped the kernel contracts the product the fusion emitter does:
    the same numbers, bitwise (measured: every state, loss and gradient of 8-row pieces and
    every solve of a 256-problem batch). Not every program: a vmapped value and gradient of
    :func:`sgd_final_loss` itself (128 modes, T = 300) still differs by 1 ulp in a few gradient
    entries (``tests/test_batch.py``).
    """
    return getattr(_kernel, "depth", 0) > 0


def step_scan(f, init, xs, *, reverse=False, unroll=1):
    """``jax.lax.scan`` over the steps of one chunk; inside :func:`whole_loops` a single kernel."""
    if not _whole_loops() or in_kernel():
        return jax.lax.scan(f, init, xs, reverse=reverse, unroll=unroll)
    from jax.experimental.xla_metadata import set_xla_metadata

    def loop(init, xs):
        _kernel.depth = getattr(_kernel, "depth", 0) + 1
        try:
            return jax.lax.scan(f, init, xs, reverse=reverse, unroll=unroll)
        finally:
            _kernel.depth -= 1

    # a call XLA keeps (not inlined) and emits as one kernel: see whole_loops
    out = jax.jit(loop)(init, xs)
    return set_xla_metadata(out, xla_cpu_small_call="true", inlineable="false")


def _chunks(horizon: int) -> tuple[int, int]:
    """Chunk length ~sqrt(T) and chunk count: states are stored at chunk boundaries only."""
    chunk = max(1, int(math.ceil(math.sqrt(horizon))))
    return chunk, -(-horizon // chunk)


def _prepare(lr, batch):
    horizon = lr.shape[-1]
    chunk, n_chunks = _chunks(horizon)
    pad = chunk * n_chunks - horizon
    lr_p = jnp.pad(lr, (0, pad)).reshape(n_chunks, chunk)  # eta = 0: identity steps
    batch_p = jnp.pad(batch, (0, pad), mode="edge").reshape(n_chunks, chunk)
    return lr_p, batch_p, horizon


def _per_step(lr_p, batch_p):
    """``1/m`` and ``eta^2/m`` of every step, computed once outside the loops.

    Inside a step, a scalar division becomes a kernel of its own (XLA does not recompute a
    division for every mode); with it a step of 128 modes or more took more than 8 kernels,
    above which XLA's CPU runtime runs a loop body's kernels as a task graph on its thread pool
    instead of one after the other (~4x slower a step; benchmarks/README.md, issue 13's fifth pass).
    """
    return 1.0 / batch_p, lr_p * lr_p / batch_p


def _step(c, eta, inv_m, g, lam, noise, weights):
    """:func:`~schedopt.dynamics.sgd.sgd_step` given ``1/m`` and ``g = eta^2/m``: the same arithmetic, bitwise."""
    lr_lam = eta * lam
    rate = 2.0 * lr_lam - (1.0 + inv_m) * lr_lam * lr_lam
    loss = tree_sum(weights * c)
    forcing = g * lam * (loss + noise)
    if in_kernel():  # the same sum, its operands swapped: the same fused product (in_kernel)
        return forcing + (1.0 - rate) * c
    return (1.0 - rate) * c + forcing


def _replay(start, eta_c, inv_m_c, g_c, lam, noise, weights):
    """The states before each step of a chunk, from the chunk's starting state."""

    def replay(c, u):
        return _step(c, u[0], u[1], u[2], lam, noise, weights), c  # emit the state before each step

    _, states = step_scan(replay, start, (eta_c, inv_m_c, g_c), unroll=_UNROLL)
    return states


def _forward(lam, weights, c0, noise, lr_p, batch_p):
    inv_m, g = _per_step(lr_p, batch_p)

    def inner(c, xs):
        return _step(c, xs[0], xs[1], xs[2], lam, noise, weights), None

    def outer(c, xs):
        end, _ = step_scan(inner, c, xs, unroll=_UNROLL)
        return end, c  # save the state at the start of the chunk

    final, starts = jax.lax.scan(outer, c0, (lr_p, inv_m, g))
    return final, starts


def pad_modes(*arrays):
    """Arrays of modes (last axis) padded with zeros to :func:`~schedopt.dynamics.ops.tree_width`.

    A padded mode has eigenvalue, weight and state zero, so it stays zero and adds exact zeros
    to every sum: the same results, bitwise, without a pad inside every step of the loops.
    """
    n = arrays[0].shape[-1]
    width = tree_width(n)
    if width == n:
        return arrays
    return tuple(jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, width - n)]) for a in arrays)


def sgd_final_loss(lam, c0, noise, lr, batch, loss_weights=None):
    """:math:`L_T` (kept modes) of the exact SGD recursion; per-step ``lr`` and ``batch`` of shape ``(T,)``.

    ``loss_weights``: the loss readout (default ``lam``; see :mod:`schedopt.dynamics.sgd`).
    """
    lam_p, weights_p, c0_p = pad_modes(lam, lam if loss_weights is None else loss_weights, c0)
    return _final_loss(lam_p, weights_p, c0_p, noise, lr, batch)


@jax.custom_vjp
def _final_loss(lam, weights, c0, noise, lr, batch):
    lr_p, batch_p, _ = _prepare(lr, batch)
    final, _ = _forward(lam, weights, c0, noise, lr_p, batch_p)
    return sgd_loss(final, lam, JAX, weights)


def _fwd(lam, weights, c0, noise, lr, batch):
    lr_p, batch_p, _ = _prepare(lr, batch)
    final, starts = _forward(lam, weights, c0, noise, lr_p, batch_p)
    return sgd_loss(final, lam, JAX, weights), (lam, weights, noise, lr, batch, final, starts)


def _bwd_split(res, gbar):
    """The adjoint for up to :data:`~schedopt.dynamics.ops.TREE_WIDTH` modes (a compressed spectrum's 128); the loss readout ``weights`` gets its own cotangent (``lam``'s when they are one array).

    Per chunk of ~sqrt(T) steps: the states are replayed from the chunk's start, then the adjoint
    ``nu`` alone is run backwards (its one dot product ``lam . nu`` per step is all the recursion
    needs), and everything else (the per-step gradients and the spectrum's cotangents) is read off
    the chunk's stored states and adjoints at once, vectorised over its steps. A scan step that
    also took the other dot products and wrote two scalars cost ~4x one that writes ``nu`` alone
    (XLA's CPU loop; T = 1e4, 128 modes: value and gradient 9.4 -> 5.3 ms, gradient with respect
    to the controls bitwise the same; benchmarks/README.md).
    """
    lam, weights, noise, lr, batch, final, starts = res
    lr_p, batch_p, horizon = _prepare(lr, batch)
    inv_m_p, g_p = _per_step(lr_p, batch_p)
    lam2 = lam * lam

    def adjoint_step(nu, xs):
        eta, inv_m, g = xs
        lam_nu = tree_sum(lam * nu)
        d = 1.0 - 2.0 * eta * lam + (1.0 + inv_m) * eta * eta * lam2
        return d * nu + (g * lam_nu) * weights, nu  # emit nu_{t+1}, the adjoint after step t

    def chunk_adjoint(carry, xs):
        nu, g_noise, g_lam, g_weights = carry
        start, eta_c, m_c, inv_m_c, g_c = xs
        states = _replay(start, eta_c, inv_m_c, g_c, lam, noise, weights)
        nu, nus = step_scan(adjoint_step, nu, (eta_c, inv_m_c, g_c), reverse=True, unroll=_UNROLL)
        eta, m = eta_c[:, None], m_c[:, None]  # (chunk, 1) against (chunk, modes)
        curv = 1.0 + inv_m_c[:, None]
        g = g_c[:, None]  # eta^2 / m
        nu_c = nus * states
        # four tree sums over the modes, one per step as the scan took them (same rounding)
        lam_nu = tree_sum(lam * nus)[:, None]
        loss = tree_sum(weights * states)[:, None]
        nu_c_lam = tree_sum(nu_c * lam)[:, None]
        nu_c_lam2 = tree_sum(nu_c * lam2)[:, None]
        s = loss + noise
        grad_eta = -2.0 * nu_c_lam + 2.0 * curv * eta * nu_c_lam2 + 2.0 * eta / m * s * lam_nu
        grad_m = -(eta * eta) / (m * m) * (nu_c_lam2 + s * lam_nu)
        g_noise = g_noise + jnp.sum(g * lam_nu)
        g_lam = g_lam + jnp.sum(nu_c * (-2.0 * eta + 2.0 * curv * eta * eta * lam) + nus * (g * s), axis=0)
        g_weights = g_weights + jnp.sum((g * lam_nu) * states, axis=0)
        # one (chunk, 2) output, not two: a scan writing two arrays a step was slower (as above)
        return (nu, g_noise, g_lam, g_weights), jnp.concatenate([grad_eta, grad_m], axis=1)

    init = (gbar * weights, jnp.zeros_like(noise), jnp.zeros_like(lam), gbar * final)
    (nu0, g_noise, g_lam, g_weights), grads = jax.lax.scan(
        chunk_adjoint, init, (starts, lr_p, batch_p, inv_m_p, g_p), reverse=True
    )
    g_eta, g_m = grads[..., 0].reshape(-1)[:horizon], grads[..., 1].reshape(-1)[:horizon]
    return (g_lam, g_weights, nu0, g_noise, g_eta, g_m)


def _bwd_fused(res, gbar):
    """:func:`_bwd` for more than :data:`~schedopt.dynamics.ops.TREE_WIDTH` modes: one scan step
    takes every dot product of the step (there the split form was 1.5-2x slower: 200 modes, T = 1e4)."""
    lam, weights, noise, lr, batch, final, starts = res
    lr_p, batch_p, horizon = _prepare(lr, batch)
    lam2 = lam * lam

    def adjoint_step(carry, xs):
        nu, g_noise, g_lam, g_weights = carry
        c, eta, m = xs
        curv = 1.0 + 1.0 / m
        g = eta * eta / m
        nu_c = nu * c
        # four tree sums, not one over their stack: XLA fuses each product into its sum's first
        # level instead of writing and re-reading a stacked array (equal to rounding; benchmarks/README.md)
        lam_nu, loss, nu_c_lam, nu_c_lam2 = (
            tree_sum(lam * nu),
            tree_sum(weights * c),
            tree_sum(nu_c * lam),
            tree_sum(nu_c * lam2),
        )
        s = loss + noise
        grad_eta = -2.0 * nu_c_lam + 2.0 * curv * eta * nu_c_lam2 + 2.0 * eta / m * s * lam_nu
        grad_m = -(eta * eta) / (m * m) * (nu_c_lam2 + s * lam_nu)
        g_noise = g_noise + g * lam_nu
        g_lam = g_lam + nu_c * (-2.0 * eta + 2.0 * curv * eta * eta * lam) + nu * (g * s)
        g_weights = g_weights + (g * lam_nu) * c
        d = 1.0 - 2.0 * eta * lam + curv * eta * eta * lam2
        nu = d * nu + (g * lam_nu) * weights
        return (nu, g_noise, g_lam, g_weights), (grad_eta, grad_m)

    inv_m_p, g_p = _per_step(lr_p, batch_p)

    def chunk_adjoint(carry, xs):
        start, eta_c, m_c, inv_m_c, g_c = xs
        states = _replay(start, eta_c, inv_m_c, g_c, lam, noise, weights)
        carry, grads = jax.lax.scan(adjoint_step, carry, (states, eta_c, m_c), reverse=True, unroll=_UNROLL)
        return carry, grads

    init = (gbar * weights, jnp.zeros_like(noise), jnp.zeros_like(lam), gbar * final)
    (nu0, g_noise, g_lam, g_weights), (g_eta, g_m) = jax.lax.scan(
        chunk_adjoint, init, (starts, lr_p, batch_p, inv_m_p, g_p), reverse=True
    )
    return (g_lam, g_weights, nu0, g_noise, g_eta.reshape(-1)[:horizon], g_m.reshape(-1)[:horizon])


def _bwd(res, gbar):
    """The adjoint; the loss readout ``weights`` gets its own cotangent (``lam``'s when they are one array)."""
    modes = res[0].shape[-1]
    return _bwd_split(res, gbar) if modes <= TREE_WIDTH else _bwd_fused(res, gbar)


_final_loss.defvjp(_fwd, _bwd)
