r"""A small GPT-style decoder-only transformer in equinox (float32, device-agnostic).

Token and learned position embeddings, ``n_layers`` pre-LayerNorm blocks
(causal multi-head self-attention, then a 4x MLP with GELU), a final LayerNorm
and an untied output head. Weights are drawn as in GPT-2: normal with standard
deviation 0.02, the two residual output projections of each block scaled by
:math:`1/\sqrt{2 L}`, biases zero, so the initial loss is close to
:math:`\ln 256 \approx 5.55` nats.

Every array is created with an explicit float32 dtype, so the model stays float32
even when ``jax_enable_x64`` is on (importing schedopt turns it on).

A module call maps one sequence of token ids ``(n,)`` with ``n <= context`` to
logits ``(n, vocab)``; :func:`loss_fn` vectorises it over a batch with ``jax.vmap``.
"""

from __future__ import annotations

import math
from numbers import Integral

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

__all__ = ["GPT", "loss_fn", "n_params"]

_DTYPE = jnp.float32
_INIT_STD = 0.02


def _normal(key, shape, std):
    return std * jax.random.normal(key, shape, dtype=_DTYPE)


def _layer_norm(x, weight, bias, eps=1e-5):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * weight + bias


class LayerNorm(eqx.Module):
    """LayerNorm over the last axis with a learned scale and shift."""

    weight: jax.Array
    bias: jax.Array

    def __init__(self, dim: int):
        self.weight = jnp.ones((dim,), _DTYPE)
        self.bias = jnp.zeros((dim,), _DTYPE)

    def __call__(self, x):
        return _layer_norm(x, self.weight, self.bias)


class Block(eqx.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    ln1: LayerNorm
    ln2: LayerNorm
    w_qkv: jax.Array  # (d, 3d)
    b_qkv: jax.Array
    w_proj: jax.Array  # (d, d)
    b_proj: jax.Array
    w_fc: jax.Array  # (d, 4d)
    b_fc: jax.Array
    w_out: jax.Array  # (4d, d)
    b_out: jax.Array
    n_heads: int = eqx.field(static=True)

    def __init__(self, d_model: int, n_heads: int, n_layers: int, *, key):
        k_qkv, k_proj, k_fc, k_out = jax.random.split(key, 4)
        residual_std = _INIT_STD / math.sqrt(2 * n_layers)
        self.ln1 = LayerNorm(d_model)
        self.ln2 = LayerNorm(d_model)
        self.w_qkv = _normal(k_qkv, (d_model, 3 * d_model), _INIT_STD)
        self.b_qkv = jnp.zeros((3 * d_model,), _DTYPE)
        self.w_proj = _normal(k_proj, (d_model, d_model), residual_std)
        self.b_proj = jnp.zeros((d_model,), _DTYPE)
        self.w_fc = _normal(k_fc, (d_model, 4 * d_model), _INIT_STD)
        self.b_fc = jnp.zeros((4 * d_model,), _DTYPE)
        self.w_out = _normal(k_out, (4 * d_model, d_model), residual_std)
        self.b_out = jnp.zeros((d_model,), _DTYPE)
        self.n_heads = n_heads

    def attention(self, x):
        n, d = x.shape
        h = self.n_heads
        qkv = x @ self.w_qkv + self.b_qkv  # (n, 3d)
        q, k, v = jnp.split(qkv.reshape(n, 3, h, d // h), 3, axis=1)  # each (n, 1, h, dh)
        q, k, v = (a[:, 0].transpose(1, 0, 2) for a in (q, k, v))  # (h, n, dh)
        scores = (q @ k.transpose(0, 2, 1)) * (1.0 / math.sqrt(d // h))  # (h, n, n)
        causal = jnp.tril(jnp.ones((n, n), dtype=bool))
        scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
        out = jax.nn.softmax(scores, axis=-1) @ v  # (h, n, dh)
        return out.transpose(1, 0, 2).reshape(n, d) @ self.w_proj + self.b_proj

    def __call__(self, x):
        x = x + self.attention(self.ln1(x))
        hidden = jax.nn.gelu(self.ln2(x) @ self.w_fc + self.b_fc)
        return x + hidden @ self.w_out + self.b_out


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return int(value)


class GPT(eqx.Module):
    """Decoder-only transformer over byte tokens.

    Args:
        vocab: vocabulary size (256 for bytes).
        d_model: width of the residual stream; a multiple of ``n_heads``.
        n_layers: number of transformer blocks.
        n_heads: attention heads per block.
        context: longest sequence (number of learned positions).
        key: a ``jax.random.PRNGKey`` for the initial weights.

    Raises:
        ValueError: a size is not a positive integer, or ``d_model`` is not a
            multiple of ``n_heads``.
    """

    token_embedding: jax.Array  # (vocab, d)
    position_embedding: jax.Array  # (context, d)
    blocks: tuple[Block, ...]
    ln_f: LayerNorm
    head: jax.Array  # (d, vocab)
    head_bias: jax.Array
    vocab: int = eqx.field(static=True)
    d_model: int = eqx.field(static=True)
    n_layers: int = eqx.field(static=True)
    n_heads: int = eqx.field(static=True)
    context: int = eqx.field(static=True)

    def __init__(
        self,
        vocab: int = 256,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        context: int = 64,
        *,
        key,
    ):
        for name, value in (
            ("vocab", vocab),
            ("d_model", d_model),
            ("n_layers", n_layers),
            ("n_heads", n_heads),
            ("context", context),
        ):
            _check_positive(name, value)
        if d_model % n_heads:
            raise ValueError(f"`d_model` must be a multiple of `n_heads` ({n_heads}), got {d_model!r}")
        k_tok, k_pos, k_head, *k_blocks = jax.random.split(key, 3 + n_layers)
        self.token_embedding = _normal(k_tok, (vocab, d_model), _INIT_STD)
        self.position_embedding = _normal(k_pos, (context, d_model), _INIT_STD)
        self.blocks = tuple(Block(d_model, n_heads, n_layers, key=k) for k in k_blocks)
        self.ln_f = LayerNorm(d_model)
        self.head = _normal(k_head, (d_model, vocab), _INIT_STD)
        self.head_bias = jnp.zeros((vocab,), _DTYPE)
        self.vocab, self.d_model, self.n_layers = int(vocab), int(d_model), int(n_layers)
        self.n_heads, self.context = int(n_heads), int(context)

    def __call__(self, tokens):
        """Logits ``(n, vocab)`` for one sequence of token ids ``(n,)``, ``n <= context``."""
        (n,) = tokens.shape
        if n > self.context:
            raise ValueError(f"sequence length {n} exceeds the model's `context` ({self.context})")
        x = self.token_embedding[tokens] + self.position_embedding[:n]
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.head + self.head_bias


def loss_fn(model: GPT, x, y):
    """Mean next-token cross-entropy in nats over a batch: ``x``, ``y`` are ``(batch, n)`` int token ids."""
    logits = jax.vmap(model)(x)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def n_params(model: GPT) -> int:
    """Number of trainable scalars."""
    return sum(a.size for a in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
