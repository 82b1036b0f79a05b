"""Designed schedules in training loops: optax schedules and optimizers, PyTorch ``LambdaLR``.

:mod:`schedopt.export.optax` needs only optax (a dependency);
:mod:`schedopt.export.torch` imports torch lazily (the ``torch`` extra).
"""

from __future__ import annotations

from schedopt.export.optax import (
    BASES,
    batch_size_schedule,
    every_k_schedule,
    rescale_schedule,
    schedule_values,
    to_optax,
    to_optax_multisteps,
    to_optax_optimizer,
)
from schedopt.export.torch import TorchLambda, to_torch_lambda, to_torch_scheduler, torch_optimizer_lr

__all__ = [
    "BASES",
    "TorchLambda",
    "batch_size_schedule",
    "every_k_schedule",
    "rescale_schedule",
    "schedule_values",
    "to_optax",
    "to_optax_multisteps",
    "to_optax_optimizer",
    "to_torch_lambda",
    "to_torch_scheduler",
    "torch_optimizer_lr",
]
