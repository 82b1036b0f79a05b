r"""Designed learning-rate schedules for PyTorch (optional extra: ``pip install schedopt[torch]``).

PyTorch's ``LambdaLR`` multiplies each parameter group's *base* learning rate
by ``lr_lambda(step)``. :func:`to_torch_lambda` returns that factor relative to
the schedule's peak, so the optimizer must be built with
``lr = torch_optimizer_lr(schedule)`` (``= schedule.learning_rate.max()``, or
the ``peak=`` you rescale to); :func:`to_torch_scheduler` sets it for you::

    import torch, schedopt
    from schedopt.export.torch import to_torch_scheduler

    schedule = schedopt.load_schedule("exports/easy-phase/schedule.json")
    model = torch.nn.Linear(10, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)   # lr is replaced by the schedule's peak
    sched = to_torch_scheduler(opt, schedule)
    for t in range(schedule.horizon):
        loss = ...; loss.backward()
        opt.step()          # uses schedule.learning_rate[t]
        opt.zero_grad()
        sched.step()

Step ``t`` counts ``scheduler.step()`` calls, as optax counts updates: step 0
is the first update. The factor at integer steps is the one of
:func:`schedopt.export.optax.to_optax` divided by the peak, so the learning
rates agree step for step (to rounding). Past the horizon the last value is
held. ``torch.optim.SGD(momentum=beta, dampening=0)`` is the same heavy ball as
``optax.sgd`` and schedopt's model (:math:`v' = \beta v + g`, :math:`w' = w - \eta v'`),
but only the learning rate is scheduled here: a designed momentum *schedule*
is not driven (a warning says so); batch sizes come from
:func:`schedopt.export.optax.batch_size_schedule`.

torch is imported only when a function here is called; without it they raise
:class:`~schedopt.errors.ExportError` ("install the torch extra").
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from schedopt.errors import ExportError
from schedopt.export._values import _as_schedule, _values
from schedopt.schedule import Schedule

__all__ = ["TorchLambda", "to_torch_lambda", "to_torch_scheduler", "torch_optimizer_lr"]


def _torch():
    try:
        import torch
    except ImportError:
        raise ExportError(
            "PyTorch export needs torch: install the torch extra (pip install 'schedopt[torch]')"
        ) from None
    return torch


class TorchLambda:
    """``lr_lambda`` for ``LambdaLR``: the designed learning rate at a step over ``peak``.

    A callable object rather than a closure so that ``LambdaLR.state_dict()``
    saves it. Attributes: ``factors`` (per step), ``peak``.
    """

    def __init__(self, factors: np.ndarray, peak: float):
        self.factors = np.asarray(factors, dtype=np.float64)
        self.peak = float(peak)

    def __call__(self, step: int) -> float:
        last = self.factors.size - 1
        return float(self.factors[min(max(int(step), 0), last)])

    def __repr__(self) -> str:
        return f"TorchLambda(horizon={self.factors.size}, peak={self.peak!r})"


def _lambda(schedule: Schedule, peak: Any, horizon: Any) -> TorchLambda:
    values = _values(schedule, "learning_rate", peak, horizon)[1]
    top = float(values.max())
    if top <= 0:
        raise ExportError(
            "`schedule`: the learning rate is zero at every step; LambdaLR needs a positive peak"
        )
    if schedule.momentum is not None and np.ptp(schedule.momentum) > 0:
        warnings.warn(
            "the schedule's momentum varies by step but LambdaLR drives only the learning rate: set "
            "torch.optim.SGD(momentum=..., dampening=0) yourself (the same heavy ball; a varying "
            "momentum is exported to optax only: schedopt.export.to_optax_optimizer(base='sgd'))",
            UserWarning,
            stacklevel=3,
        )
    return TorchLambda(values / top, top)


def to_torch_lambda(
    schedule: Schedule | str | os.PathLike,
    *,
    peak: float | None = None,
    horizon: int | None = None,
) -> TorchLambda:
    """The ``lr_lambda`` of ``torch.optim.lr_scheduler.LambdaLR`` for a designed schedule.

    ``lr_lambda(t) = learning_rate[t] / max(learning_rate)``: the optimizer's
    base learning rate must be the peak, :func:`torch_optimizer_lr`. Needs no
    torch itself (a plain callable).

    Args:
        schedule: a :class:`~schedopt.schedule.Schedule` or a schedule file path.
        peak: a new peak learning rate (the factors are unchanged; only
            :func:`torch_optimizer_lr` changes).
        horizon: a new horizon (time-stretch, as in :func:`~schedopt.export.optax.to_optax`).
    """
    return _lambda(_as_schedule(schedule), peak, horizon)


def torch_optimizer_lr(schedule: Schedule | str | os.PathLike, *, peak: float | None = None) -> float:
    """The base learning rate to build the torch optimizer with: the schedule's peak (or ``peak``)."""
    return _lambda(_as_schedule(schedule), peak, None).peak


def to_torch_scheduler(
    optimizer: Any,
    schedule: Schedule | str | os.PathLike,
    *,
    peak: float | None = None,
    horizon: int | None = None,
):
    """A ``LambdaLR`` driving ``optimizer``'s learning rate through the schedule.

    Sets every parameter group's ``lr`` to the schedule's peak (the base that
    :func:`to_torch_lambda`'s factors multiply), then builds the scheduler.
    Call ``scheduler.step()`` after each ``optimizer.step()``.

    Raises:
        ExportError: torch is not installed, or ``optimizer`` is not a torch optimizer.
    """
    torch = _torch()
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ExportError(f"`optimizer` must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    fn = _lambda(_as_schedule(schedule), peak, horizon)
    for group in optimizer.param_groups:
        group["lr"] = fn.peak
        group.pop("initial_lr", None)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=fn)
