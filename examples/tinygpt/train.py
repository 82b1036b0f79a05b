r"""Train the tiny GPT with an optax learning-rate schedule and log the loss curve.

Conventions (those of schedopt's model: :math:`L_t` is the loss after :math:`t`
updates, :math:`\eta_t` the learning rate used by update :math:`t`, update 0
being the first, as optax counts). The CSV log has the header
``step,learning_rate,train_loss,val_loss`` and one row per ``t = 0..T``:

* ``learning_rate``: the learning rate used by update ``t`` (empty at ``t = T``);
* ``train_loss``: the minibatch loss of the parameters after ``t`` updates, on the
  batch that update ``t`` then uses (at ``t = T``, on one more batch);
* ``val_loss``: the loss of the parameters after ``t`` updates on the fixed
  validation set, at ``t = 0``, every ``eval_every`` updates and at ``t = T``;
  empty otherwise.

Losses are mean next-byte cross-entropies in nats. The CSV and a JSON sidecar
(``<log stem>.json``: config, corpus fingerprints, schedule, timings, final
losses) are written atomically.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from examples._checks import check_grad_clip, check_positive_ints, check_seed, check_weight_decay
from examples.runlog import (
    CSV_HEADER,
    atomic_write,
    check_log_path,
    csv_text,
    json_number,
    schedule_description,
    sidecar_path,
)
from examples.tinygpt.data import Corpus, batches, load_corpus, validation_batches
from examples.tinygpt.model import GPT, loss_fn, n_params
from examples.tinygpt.schedules import learning_rate_table

__all__ = ["CSV_HEADER", "OPTIMIZERS", "TrainConfig", "TrainResult", "make_optimizer", "train"]

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd", "lion")
"""``adamw``: ``optax.adamw`` (b1 0.9, b2 0.95); ``sgd``: ``optax.sgd(lr, momentum=0.9)`` (heavy ball);
``lion``: ``optax.lion`` (b1 0.9, b2 0.99: the sign of an interpolated momentum, every coordinate moved by
the learning rate)."""

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.95, 1e-8
LION_B1, LION_B2 = 0.9, 0.99
SGD_MOMENTUM = 0.9


@dataclass(frozen=True)
class TrainConfig:
    """Model size, data and optimiser settings of one run (validated at construction).

    Attributes:
        d_model, n_layers, n_heads, context: the :class:`~examples.tinygpt.model.GPT` size.
        batch_size: sequences per update.
        steps: number of updates ``T``.
        optimizer: ``adamw``, ``sgd`` (heavy ball, momentum 0.9) or ``lion``.
        weight_decay: decoupled weight decay of ``adamw`` or ``lion`` on the weight matrices
            (embeddings, projections, head; not biases or LayerNorms); must be 0 for ``sgd``.
        grad_clip: maximum global gradient norm (``optax.clip_by_global_norm``),
            or ``None`` for no clipping.
        eval_every: updates between validation losses.
        eval_batches: validation batches (of ``batch_size`` windows) per evaluation.
        seed: seeds the initial weights and the training batches.
    """

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    context: int = 64
    batch_size: int = 16
    steps: int = 2000
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    eval_every: int = 100
    eval_batches: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_ints(
            self,
            (
                "d_model",
                "n_layers",
                "n_heads",
                "context",
                "batch_size",
                "steps",
                "eval_every",
                "eval_batches",
            ),
        )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"`d_model` must be a multiple of `n_heads` ({self.n_heads}), got {self.d_model!r}"
            )
        check_seed(self.seed)
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        check_weight_decay(self.weight_decay)
        if self.optimizer == "sgd" and self.weight_decay != 0:
            raise ValueError(
                f"`weight_decay` must be 0 with optimizer 'sgd' (it applies to adamw and lion), got {self.weight_decay!r}"
            )
        check_grad_clip(self.grad_clip)


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a run produced.

    Attributes:
        steps: ``(T + 1,)`` the rows ``t = 0..T``.
        learning_rates: ``(T,)`` the learning rate of update ``t = 0..T-1``.
        train_losses: ``(T + 1,)`` minibatch loss after ``t`` updates (see the module docstring).
        val_steps: the ``t`` at which the validation loss was measured.
        val_losses: the validation losses at ``val_steps``.
        final_val_loss: the validation loss after ``T`` updates.
        wall_time: seconds for the whole call (corpus, compilation, training, evaluation, files).
        compile_time: seconds for the first evaluation and the first update (mostly compilation).
        steps_per_second: updates per second after the first update (evaluations included).
        model: the trained model.
        config: the run's configuration.
    """

    steps: np.ndarray
    learning_rates: np.ndarray
    train_losses: np.ndarray
    val_steps: np.ndarray
    val_losses: np.ndarray
    final_val_loss: float
    wall_time: float
    compile_time: float
    steps_per_second: float
    model: GPT
    config: TrainConfig


def _is_matrix(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(config: TrainConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
    """The run's optimizer: gradient clipping (optional), then adamw, heavy-ball SGD or lion driven by ``schedule``."""
    return _optimizer(config.optimizer, float(config.weight_decay), config.grad_clip, schedule)


def _optimizer(
    name: str, weight_decay: float, grad_clip: float | None, schedule
) -> optax.GradientTransformation:
    if name == "adamw":
        base = optax.adamw(
            schedule, b1=ADAM_B1, b2=ADAM_B2, eps=ADAM_EPS, weight_decay=weight_decay, mask=_is_matrix
        )
    elif name == "lion":
        base = optax.lion(schedule, b1=LION_B1, b2=LION_B2, weight_decay=weight_decay, mask=_is_matrix)
    else:
        base = optax.sgd(schedule, momentum=SGD_MOMENTUM)
    if grad_clip is None:
        return base
    return optax.chain(optax.clip_by_global_norm(float(grad_clip)), base)


@functools.lru_cache(maxsize=1)
def _default_corpus() -> Corpus:
    return load_corpus()


@functools.lru_cache(maxsize=16)
def _step_function(name: str, weight_decay: float, grad_clip: float | None):
    """The jitted update for one optimizer setting, shared by every run (and schedule) that uses it.

    The learning rates enter as the table ``lrs`` (update ``t`` uses ``lrs[t]``,
    the schedule's own value), so a new schedule of the same length reuses the
    compiled update.
    """

    @eqx.filter_jit
    def step(model, opt_state, x, y, lrs):
        optimizer = _optimizer(
            name, weight_decay, grad_clip, lambda count: lrs[jnp.clip(count, 0, lrs.shape[0] - 1)]
        )
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        new = eqx.apply_updates(model, updates)
        # keep every parameter in its own dtype (float32), whatever optax promoted to
        new = jax.tree.map(lambda n, o: n.astype(o.dtype) if eqx.is_array(o) else n, new, model)
        return new, opt_state, loss

    return step


_init_model = eqx.filter_jit(GPT)  # one compiled initialisation per model size instead of one op at a time


@eqx.filter_jit
def _mean_loss(model, xs, ys):
    """Mean of the per-batch losses over stacked batches ``(n_batches, batch, n)``."""
    return jnp.mean(jax.lax.map(lambda xy: loss_fn(model, *xy), (xs, ys)))


def train(
    config: TrainConfig,
    schedule: optax.Schedule | Callable[[Any], Any],
    *,
    log_path: str | os.PathLike | None = None,
    progress: bool = False,
    corpus: Corpus | None = None,
) -> TrainResult:
    """Train a fresh :class:`GPT` for ``config.steps`` updates with learning rates from ``schedule``.

    Args:
        config: the run's settings.
        schedule: an ``optax.Schedule`` (update count -> learning rate), e.g. from
            :func:`~examples.tinygpt.schedules.make_schedule` or
            :func:`~examples.tinygpt.schedules.schedule_from_file`. Its
            ``description`` attribute, if any, is recorded in the sidecar.
        log_path: where to write the CSV log (and ``<stem>.json``); ``None`` writes nothing.
        progress: log one INFO line per evaluation (logger ``examples.tinygpt.train``).
        corpus: the data (default: :func:`load_corpus` with its default caps, loaded once).

    Raises:
        ValueError: ``config`` is not a :class:`TrainConfig`, ``schedule`` is not
            callable, or ``log_path`` ends in ``.json``.
    """
    start = time.perf_counter()
    if not isinstance(config, TrainConfig):
        raise ValueError(f"`config` must be a TrainConfig, got {type(config).__name__}")
    if not callable(schedule):
        raise ValueError(f"`schedule` must be an optax schedule (a callable of the step), got {schedule!r}")
    check_log_path(log_path)
    corpus = _default_corpus() if corpus is None else corpus
    horizon = config.steps
    lrs = learning_rate_table(schedule, horizon)

    model = _init_model(
        256,
        config.d_model,
        config.n_layers,
        config.n_heads,
        config.context,
        key=jax.random.PRNGKey(config.seed),
    )
    opt_state = make_optimizer(config, schedule).init(eqx.filter(model, eqx.is_array))
    clip = None if config.grad_clip is None else float(config.grad_clip)
    step = _step_function(config.optimizer, float(config.weight_decay), clip)
    lr_table = jnp.asarray(lrs)
    stream = batches(corpus.train, config.batch_size, config.context, config.seed)
    val_set = validation_batches(corpus.val, config.eval_batches, config.batch_size, config.context)
    val_x = jnp.asarray(np.stack([x for x, _ in val_set]))
    val_y = jnp.asarray(np.stack([y for _, y in val_set]))
    eval_at = {0, horizon, *range(config.eval_every, horizon, config.eval_every)}

    train_losses: list[jax.Array] = []
    val_losses: dict[int, jax.Array] = {}
    loop_start = compile_time = None
    for t in range(horizon):
        if t in eval_at:
            val_losses[t] = _mean_loss(model, val_x, val_y)
        x, y = next(stream)
        model, opt_state, loss = step(model, opt_state, x, y, lr_table)
        train_losses.append(loss)
        if t == 0:
            jax.block_until_ready(loss)
            loop_start = time.perf_counter()
            compile_time = loop_start - start
        if progress and t in eval_at:
            logger.info(
                "update %d/%d  lr %.3g  train %.4f  val %.4f",
                t,
                horizon,
                lrs[t],
                float(loss),
                float(val_losses[t]),
            )
    jax.block_until_ready(model)
    loop_time = time.perf_counter() - loop_start
    steps_per_second = (horizon - 1) / loop_time if horizon > 1 and loop_time > 0 else math.nan
    val_losses[horizon] = _mean_loss(model, val_x, val_y)
    x, y = next(stream)
    train_losses.append(_mean_loss(model, x[None], y[None]))

    train_arr = np.asarray(jnp.stack(train_losses), dtype=np.float64)
    val_steps = np.array(sorted(val_losses), dtype=np.int64)
    val_arr = np.array([float(val_losses[int(t)]) for t in val_steps], dtype=np.float64)
    final_val = float(val_arr[-1])
    if progress:
        logger.info("update %d/%d  train %.4f  val %.4f", horizon, horizon, train_arr[-1], final_val)

    if log_path is not None:
        log_path = Path(log_path)
        val_map = {int(t): float(v) for t, v in zip(val_steps, val_arr, strict=True)}
        atomic_write(log_path, csv_text(lrs, train_arr, val_map))
    wall_time = time.perf_counter() - start
    if log_path is not None:
        sidecar = {
            "kind": "examples.tinygpt.run",
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "log": log_path.name,
            "csv_header": list(CSV_HEADER),
            "config": dataclasses.asdict(config),
            "optimizer": {
                "name": config.optimizer,
                **(
                    {"b1": ADAM_B1, "b2": ADAM_B2, "eps": ADAM_EPS}
                    if config.optimizer == "adamw"
                    else {"momentum": SGD_MOMENTUM}
                ),
            },
            "schedule": schedule_description(schedule),
            "peak_learning_rate": float(lrs.max()),
            "corpus": corpus.describe(),
            "n_params": n_params(model),
            "final_val_loss": json_number(final_val),
            "final_train_loss": json_number(float(train_arr[-1])),
            "wall_time": wall_time,
            "compile_time": compile_time,
            "steps_per_second": json_number(steps_per_second),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "backend": jax.default_backend(),
            "jax_version": jax.__version__,
            "python": platform.python_version(),
        }
        atomic_write(sidecar_path(log_path), json.dumps(sidecar, indent=1, allow_nan=False) + "\n")

    return TrainResult(
        steps=np.arange(horizon + 1),
        learning_rates=lrs,
        train_losses=train_arr,
        val_steps=val_steps,
        val_losses=val_arr,
        final_val_loss=final_val,
        wall_time=wall_time,
        compile_time=float(compile_time),
        steps_per_second=float(steps_per_second),
        model=model,
        config=config,
    )
