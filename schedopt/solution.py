"""The result of a solve: status, optimal control parameters, and what they give."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

import numpy as np

from schedopt.controls import ControlGrid
from schedopt.problem import Problem
from schedopt.status import STATUSES, Status

__all__ = ["STATUSES", "Solution", "Status"]


@dataclass(frozen=True, eq=False)
class Solution:
    """An optimised schedule and how it was found.

    Attributes:
        problem: the problem solved.
        solver: solver name (``jax``, ``casadi``, ``pontryagin``).
        status: a :class:`~schedopt.status.Status` (a string: ``"converged"``, ``"max_iterations"``,
            ``"failed"`` or ``"diverged"``; given as either).
        final_loss: final excess loss :math:`L_T` of the returned controls, evaluated
            by the exact recursion (or the ODE where the solve used it).
        parameters: control parameters by control name (block / knot values).
        grids: the control grid of each control.
        iterations: solver iterations.
        wall_time: seconds spent in the solve (compilation and the final checks of the result included).
        message: the solver's own words on how it stopped.
        info: solver-specific diagnostics (projected-gradient norm, engine, ...).
    """

    problem: Problem
    solver: str
    status: Status
    final_loss: float
    parameters: Mapping[str, np.ndarray]
    grids: Mapping[str, ControlGrid]
    iterations: int = 0
    wall_time: float = 0.0
    message: str = ""
    info: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        object.__setattr__(self, "status", Status(self.status))
        params = {}
        for name, value in self.parameters.items():
            arr = np.array(value, dtype=np.float64)
            arr.setflags(write=False)
            params[name] = arr
        object.__setattr__(self, "parameters", MappingProxyType(params))
        object.__setattr__(self, "grids", MappingProxyType(dict(self.grids)))
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))

    def __reduce__(self):
        """Pickled by its fields (read-only views cannot be): solutions return from Ray workers."""
        fields = (self.problem, self.solver, self.status, self.final_loss, dict(self.parameters))
        rest = (dict(self.grids), self.iterations, self.wall_time, self.message, dict(self.info))
        return (Solution, (*fields, *rest))

    @property
    def converged(self) -> bool:
        return self.status is Status.CONVERGED

    def per_step(self, name: str = "learning_rate") -> np.ndarray:
        """Per-step values of a control, ``(T,)``; fixed controls give their constant value."""
        if name in self.parameters:
            return self.grids[name].interpolation().expand(self.parameters[name])
        fixed = {
            "learning_rate": None,
            "batch_size": self.problem.training.batch_size,
            "momentum": self.problem.training.momentum,
        }
        if fixed.get(name) is None:
            raise KeyError(name)
        return np.full(self.problem.horizon, float(fixed[name]))

    @cached_property
    def loss_curve(self) -> np.ndarray:
        """Excess loss after every step by the exact recursion, ``(T + 1,)``."""
        from schedopt.dynamics.recursion import loss_curve

        momentum = self.per_step("momentum") if self._has_momentum else None
        return loss_curve(
            self.problem.model,
            self.per_step("learning_rate"),
            batch_size=self.per_step("batch_size"),
            momentum=momentum,
        ).loss

    @property
    def _has_momentum(self) -> bool:
        return "momentum" in self.parameters or self.problem.training.momentum > 0
