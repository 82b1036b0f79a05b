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
``optax.sgd`` and schedopt's model (:math:`v' = \beta v + g`, :math:`w' = w - \eta v'`).

A designed momentum *schedule* (one that varies by step) is driven by
:func:`to_torch_scheduler` too: before update ``t`` it sets every parameter
group's ``momentum`` to :math:`\beta_t` (``SGD``, which must have
``dampening=0`` and no Nesterov: anything else is another update than the one
designed) or the first of its ``betas`` (Adam, AdamW, NAdam, RAdam, Adamax:
:math:`b_{1,t} = \beta_t`, the mapping :mod:`schedopt.export.optax` uses, with
what it keeps and loses said there). Other optimizers are refused. The plain
:func:`to_torch_lambda` cannot drive it and warns. Batch sizes come from
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
    return TorchLambda(values / top, top)


def _momentum(schedule: Schedule, horizon: Any) -> np.ndarray | None:
    """The per-step momentum of a schedule that designs one (varies by step), else ``None``."""
    if schedule.momentum is None or np.ptp(schedule.momentum) == 0:
        return None
    return _values(schedule, "momentum", None, horizon)[1]


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
    schedule = _as_schedule(schedule)
    if _momentum(schedule, horizon) is not None:
        warnings.warn(
            "the schedule's momentum varies by step and a LambdaLR drives only the learning rate: "
            "use schedopt.export.torch.to_torch_scheduler, which drives the optimizer's momentum "
            "(SGD) or first beta (Adam family) as well",
            UserWarning,
            stacklevel=2,
        )
    return _lambda(schedule, peak, horizon)


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
    """A ``LambdaLR`` driving ``optimizer``'s learning rate (and a designed momentum) through the schedule.

    Sets every parameter group's ``lr`` to the schedule's peak (the base that
    :func:`to_torch_lambda`'s factors multiply), then builds the scheduler.
    Call ``scheduler.step()`` after each ``optimizer.step()``. A schedule whose
    momentum varies by step also sets each group's momentum before every update
    (module doc).

    Raises:
        ExportError: torch is not installed, ``optimizer`` is not a torch optimizer, or
            the schedule designs a momentum this optimizer cannot take as designed.
    """
    torch = _torch()
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ExportError(f"`optimizer` must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    schedule = _as_schedule(schedule)
    fn = _lambda(schedule, peak, horizon)
    momentum = _momentum(schedule, horizon)
    if momentum is not None:
        _check_momentum_groups(optimizer)
    for group in optimizer.param_groups:
        group["lr"] = fn.peak
        group.pop("initial_lr", None)
    if momentum is None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=fn)
    return _momentum_scheduler(torch)(optimizer, fn, momentum)


def _check_momentum_groups(optimizer: Any) -> None:
    """Refuse an optimizer whose update would not be the heavy ball (or Adam's first moment) designed."""
    name = type(optimizer).__name__
    for group in optimizer.param_groups:
        if "betas" in group:
            continue
        if "momentum" not in group or name != "SGD":
            raise ExportError(
                f"`optimizer`: {name} has no heavy-ball momentum or Adam betas to drive with the schedule's "
                "momentum; use torch.optim.SGD(dampening=0) or an Adam-family optimizer"
            )
        if group.get("dampening", 0) != 0:
            raise ExportError(
                f"`optimizer`: SGD with dampening={group['dampening']!r} is not the designed heavy ball; "
                "build it with dampening=0"
            )
        if group.get("nesterov", False):
            raise ExportError(
                "`optimizer`: SGD with nesterov=True is not the designed heavy ball; build it with nesterov=False"
            )


_SCHEDULER_CLASS = None


def _momentum_scheduler(torch):
    """``LambdaLR`` that also sets each group's momentum (SGD) or first beta (Adam family) per step."""
    global _SCHEDULER_CLASS
    if _SCHEDULER_CLASS is None:

        class MomentumLambdaLR(torch.optim.lr_scheduler.LambdaLR):
            """The schedule's learning rate by ``LambdaLR`` and its momentum ``beta[t]`` before update ``t``."""

            def __init__(self, optimizer, lr_lambda, momentum):
                self.momentum_values = np.asarray(momentum, dtype=np.float64)  # saved by state_dict()
                super().__init__(optimizer, lr_lambda=lr_lambda)

            def step(self, epoch=None):
                super().step() if epoch is None else super().step(epoch)
                t = min(max(int(self.last_epoch), 0), self.momentum_values.size - 1)
                beta = float(self.momentum_values[t])
                for group in self.optimizer.param_groups:
                    if "betas" in group:
                        group["betas"] = (beta, group["betas"][1])
                    else:
                        group["momentum"] = beta

        _SCHEDULER_CLASS = MomentumLambdaLR
    return _SCHEDULER_CLASS
