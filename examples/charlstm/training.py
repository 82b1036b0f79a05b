r"""Train a byte-level LSTM in PyTorch with any learning-rate schedule and log the loss curve.

A second training loop, unlike :mod:`examples.tinygpt` in every part a schedule design could
depend on: the framework (PyTorch, not JAX), the architecture (a recurrent network, not
attention) and the optimiser as PyTorch ships it (``torch.optim.AdamW`` with its defaults:
betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on every parameter, biases included; or
``torch.optim.RMSprop`` as char-rnn used it: decay 0.95, eps 1e-8, no momentum). The data
and the log are the same: byte windows of :mod:`examples.tinygpt.data`, and schedopt's pilot CSV
with a JSON sidecar (:mod:`examples.runlog`), under the same conventions (the loss after ``t``
updates; update ``t`` uses the learning rate of row ``t``).

The schedule is any function of the update count (an optax schedule from
:func:`~examples.tinygpt.schedules.make_schedule` or
:func:`~examples.tinygpt.schedules.schedule_from_file`); it is tabulated once and each update
sets the optimiser's learning rate from the table.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from examples.charlstm.config import ADAMW, RMSPROP, SGD, VOCABULARY, LSTMConfig
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
from examples.tinygpt.schedules import learning_rate_table

__all__ = ["CharLSTM", "LSTMResult", "train"]


class CharLSTM(nn.Module):
    """Byte embedding, an LSTM, and a linear head to next-byte logits (PyTorch's default initialisation)."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.embed = nn.Embedding(VOCABULARY, config.embed)
        self.lstm = nn.LSTM(config.embed, config.hidden, config.n_layers, batch_first=True)
        self.head = nn.Linear(config.hidden, VOCABULARY)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(x))
        return self.head(out)


def _loss(model: CharLSTM, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    """Mean next-byte cross-entropy (nats) of windows ``x`` with targets ``y``."""
    logits = model(torch.from_numpy(x).long())
    return nn.functional.cross_entropy(logits.reshape(-1, VOCABULARY), torch.from_numpy(y).long().reshape(-1))


@torch.no_grad()
def _mean_loss(model: CharLSTM, batches_: list[tuple[np.ndarray, np.ndarray]]) -> float:
    return float(np.mean([float(_loss(model, x, y)) for x, y in batches_]))


def _optimizer(config: LSTMConfig, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """``torch.optim.AdamW`` with its defaults, ``torch.optim.RMSprop`` as char-rnn sets it, or Nesterov SGD."""
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=lr, **RMSPROP)
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, **SGD)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay, **ADAMW)


def _optimizer_record(config: LSTMConfig) -> dict[str, Any]:
    """The sidecar's record of the optimiser and its fixed settings."""
    if config.optimizer == "rmsprop":
        return {"name": "torch.optim.RMSprop", **RMSPROP}
    if config.optimizer == "sgd":
        return {"name": "torch.optim.SGD", **SGD}
    return {"name": "torch.optim.AdamW", "betas": list(ADAMW["betas"]), "eps": ADAMW["eps"]}


@dataclass(frozen=True, eq=False)
class LSTMResult:
    """A finished run: learning rates ``(T,)``, train losses ``(T + 1,)``, the validation curve, timings, and
    ``grad_norms`` ``(T,)``: each update's global gradient norm before clipping (where ``config.grad_clip`` is set,
    an update with a norm above it was clipped)."""

    learning_rates: np.ndarray
    train_losses: np.ndarray
    val_steps: np.ndarray
    val_losses: np.ndarray
    final_val_loss: float
    wall_time: float
    steps_per_second: float
    n_params: int
    config: LSTMConfig
    grad_norms: np.ndarray


def train(
    config: LSTMConfig,
    schedule: Callable[[Any], Any],
    *,
    log_path: str | os.PathLike | None = None,
    corpus: Corpus | None = None,
) -> LSTMResult:
    """Train a fresh :class:`CharLSTM` for ``config.steps`` updates with learning rates from ``schedule``.

    Args:
        config: the run's settings.
        schedule: a function of the update count (update 0 first) giving its learning rate;
            its ``description`` attribute, if any, is recorded in the sidecar.
        log_path: where to write the CSV log (and ``<stem>.json``); ``None`` writes nothing.
        corpus: the data (default: :func:`~examples.tinygpt.data.load_corpus`, Python source).

    Raises:
        ValueError: ``config`` is not an :class:`LSTMConfig`, ``schedule`` is not callable or gives a
            negative or non-finite learning rate, or ``log_path`` ends in ``.json``.
    """
    start = time.perf_counter()
    if not isinstance(config, LSTMConfig):
        raise ValueError(f"`config` must be an LSTMConfig, got {type(config).__name__}")
    if not callable(schedule):
        raise ValueError(f"`schedule` must be a function of the update count, got {schedule!r}")
    check_log_path(log_path)
    corpus = load_corpus() if corpus is None else corpus
    horizon = config.steps
    lrs = learning_rate_table(schedule, horizon)

    torch.manual_seed(config.seed)
    model = CharLSTM(config)
    optimizer = _optimizer(config, model, float(lrs[0]))
    stream = batches(corpus.train, config.batch_size, config.context, config.seed)
    val_set = validation_batches(corpus.val, config.eval_batches, config.batch_size, config.context)
    eval_at = {0, horizon, *range(config.eval_every, horizon, config.eval_every)}

    train_losses: list[float] = []
    grad_norms: list[float] = []
    val_losses: dict[int, float] = {}
    loop_start = time.perf_counter()
    for t in range(horizon):
        if t in eval_at:
            model.eval()
            val_losses[t] = _mean_loss(model, val_set)
            model.train()
        x, y = next(stream)
        loss = _loss(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is None:  # the global norm, measured only
            norm = nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
        else:  # clipped, and measured before clipping
            norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        grad_norms.append(float(norm))
        for group in optimizer.param_groups:
            group["lr"] = float(lrs[t])
        optimizer.step()
        train_losses.append(loss.item())
    loop_time = time.perf_counter() - loop_start
    model.eval()
    val_losses[horizon] = _mean_loss(model, val_set)
    train_losses.append(_mean_loss(model, [next(stream)]))

    train_arr = np.asarray(train_losses, dtype=np.float64)
    val_steps = np.array(sorted(val_losses), dtype=np.int64)
    val_arr = np.array([val_losses[int(t)] for t in val_steps], dtype=np.float64)
    steps_per_second = horizon / loop_time if loop_time > 0 else math.nan
    n_params = sum(p.numel() for p in model.parameters())
    wall_time = time.perf_counter() - start
    if log_path is not None:
        log_path = Path(log_path)
        atomic_write(
            log_path,
            csv_text(lrs, train_arr, {int(t): float(v) for t, v in zip(val_steps, val_arr, strict=True)}),
        )
        sidecar = {
            "kind": "examples.charlstm.run",
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "log": log_path.name,
            "csv_header": list(CSV_HEADER),
            "config": dataclasses.asdict(config),
            "optimizer": _optimizer_record(config),
            "schedule": schedule_description(schedule),
            "peak_learning_rate": float(lrs.max()),
            "corpus": corpus.describe(),
            "n_params": n_params,
            "final_val_loss": json_number(val_arr[-1]),
            "final_train_loss": json_number(train_arr[-1]),
            "wall_time": wall_time,
            "steps_per_second": json_number(steps_per_second),
            "torch_threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
        }
        atomic_write(sidecar_path(log_path), json.dumps(sidecar, indent=1, allow_nan=False) + "\n")
    return LSTMResult(
        learning_rates=lrs,
        train_losses=train_arr,
        val_steps=val_steps,
        val_losses=val_arr,
        final_val_loss=float(val_arr[-1]),
        wall_time=wall_time,
        steps_per_second=steps_per_second,
        n_params=n_params,
        config=config,
        grad_norms=np.asarray(grad_norms, dtype=np.float64),
    )
