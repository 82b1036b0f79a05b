"""Designed schedules in training loops: optax schedules and optimizers, PyTorch ``LambdaLR``.

:mod:`schedopt.export.optax` needs only optax (a dependency);
:mod:`schedopt.export.torch` imports torch lazily (the ``torch`` extra);
:mod:`schedopt.export.files` writes the files of ``schedopt export`` (JSON, CSV, ``.torch.json``).
The names below load their module on first use, so ``schedopt export`` does not import optax.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_TORCH = {"TorchLambda", "to_torch_lambda", "to_torch_scheduler", "torch_optimizer_lr"}


def __getattr__(name: str):
    """Load a public name on first use (PEP 562) and cache it in the package."""
    if name not in __all__:
        raise AttributeError(f"module 'schedopt.export' has no attribute {name!r}")
    module = "schedopt.export.torch" if name in _TORCH else "schedopt.export.optax"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
