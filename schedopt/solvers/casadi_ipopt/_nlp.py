"""The single-shooting NLP: one step from the project's step function, ``T`` steps as nested folds,
the per-step controls as a sparse linear map of the parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from schedopt.controls import ControlGrid
from schedopt.dynamics.momentum import momentum_init, momentum_step
from schedopt.dynamics.ops import CASADI
from schedopt.dynamics.sgd import sgd_step
from schedopt.problem import CONTROL_NAMES, Problem
from schedopt.solvers._common import control_grids, lower_upper
from schedopt.solvers.casadi_ipopt._options import _casadi

#: Steps per level of the nested fold (graph size ~ FOLD_BASE * log(T) call nodes).
FOLD_BASE = 10


def fold_steps(step, steps: int, base: int = FOLD_BASE):
    """``steps`` applications of ``step`` as a tower of nested folds.

    Args:
        step: a CasADi Function ``(state, u_1, ..., u_r) -> state_next`` whose inputs
            after the first are ``1 x w`` rows of per-step controls (``w`` steps per call).
        steps: how many times to apply it.
        base: calls per level of the tower.

    Returns:
        A Function ``(state, U_1, ..., U_r) -> state_final`` with ``U_i`` of shape
        ``1 x (steps * w)``. Its graph has ``O(base log(steps))`` nodes.
    """
    ca = _casadi()
    if steps <= base:
        return step.fold(steps) if steps > 1 else step
    q, r = divmod(steps, base)
    tower = fold_steps(step.fold(base), q, base)
    if r == 0:
        return tower
    rest = step.fold(r) if r > 1 else step
    width = step.size2_in(1)
    n_rows = step.n_in() - 1
    state = ca.MX.sym("state", step.sparsity_in(0))
    rows = [ca.MX.sym(f"u{i}", 1, steps * width) for i in range(n_rows)]
    split = q * base * width
    mid = tower(state, *[u[:, :split] for u in rows])
    end = rest(mid, *[u[:, split:] for u in rows])
    return ca.Function(f"fold_{steps}x{width}", [state, *rows], [end])


@dataclass(frozen=True, eq=False)
class CasadiNLP:
    r"""The single-shooting NLP of a problem.

    Attributes:
        names: the controls being designed, in the order of the decision vector.
        sizes: number of parameters of each control.
        grids: the control grid of each control.
        step: one optimiser step ``(state, lr, m[, beta]) -> state_next``.
        rollout: ``T`` steps ``(state0, lr_row, m_row[, beta_row]) -> state_T``.
        loss: ``x -> L_T - R_N`` (final loss of the kept modes) as a Function of the
            stacked parameters.
        x: the decision vector (MX symbol).
        objective: :math:`\log(L_T - R_N)` (MX).
        constraints: MX column of constraints or an empty one: the relative
            violation of the sample budget, :math:`\sum_t m_t / D - 1`.
        bounds_g: ``(lbg, ubg)`` of the constraints.
        lower, upper: box bounds of ``x``.
        momentum: whether the heavy-ball recursion is used.
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    grids: Mapping[str, ControlGrid]
    step: Any
    rollout: Any
    loss: Any
    x: Any
    objective: Any
    constraints: Any
    bounds_g: tuple[np.ndarray, np.ndarray]
    lower: np.ndarray
    upper: np.ndarray
    momentum: bool

    def split(self, x) -> dict[str, np.ndarray]:
        """Parameters by control name from a stacked vector."""
        x = np.asarray(x, dtype=np.float64).ravel()
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes, strict=True):
            out[name] = x[start : start + size].copy()
            start += size
        return out

    def stack(self, parameters: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(parameters[n], dtype=np.float64) for n in self.names])


def _uses_momentum(problem: Problem) -> bool:
    return "momentum" in problem.controls or problem.training.momentum > 0.0


def build_nlp(problem: Problem, grids: Mapping[str, ControlGrid] | None = None) -> CasadiNLP:
    """Build the CasADi NLP of ``problem`` (no solve)."""
    ca = _casadi()
    grids = dict(grids) if grids is not None else control_grids(problem)
    model = problem.model
    horizon = problem.horizon
    n = model.n_modes
    lam = ca.DM(model.eigenvalues)
    noise = float(model.effective_noise)
    momentum = _uses_momentum(problem)

    lr_s, m_s, beta_s = ca.MX.sym("lr"), ca.MX.sym("m"), ca.MX.sym("beta")
    if momentum:
        state = ca.MX.sym("state", 3 * n)
        parts = (state[:n], state[n : 2 * n], state[2 * n :])
        nxt = momentum_step(parts, lr_s, m_s, beta_s, lam, noise, CASADI)
        step = ca.Function("momentum_step", [state, lr_s, m_s, beta_s], [ca.vertcat(*nxt)])
        state0 = ca.DM(np.concatenate(momentum_init(model.initial_error)))
    else:
        state = ca.MX.sym("c", n)
        step = ca.Function("sgd_step", [state, lr_s, m_s], [sgd_step(state, lr_s, m_s, lam, noise, CASADI)])
        state0 = ca.DM(model.initial_error)
    rollout = fold_steps(step, horizon)

    names = tuple(name for name in CONTROL_NAMES if name in problem.controls)
    sizes = tuple(grids[name].n_params for name in names)
    x = ca.MX.sym("x", sum(sizes))
    rows, start = {}, 0
    for name, size in zip(names, sizes, strict=True):
        matrix = ca.DM(grids[name].interpolation().matrix().tocsc())
        rows[name] = ca.mtimes(matrix, x[start : start + size]).T
        start += size
    fixed = {"batch_size": problem.training.batch_size, "momentum": problem.training.momentum}
    for name, value in fixed.items():
        rows.setdefault(name, ca.DM.ones(1, horizon) * float(value))
    args = [rows["learning_rate"], rows["batch_size"]] + ([rows["momentum"]] if momentum else [])
    final = rollout(state0, *args)
    kept = ca.dot(lam, final[:n])
    loss = ca.Function("final_loss", [x], [kept], ["x"], ["loss"])

    constraints = ca.MX(0, 1)
    lbg = ubg = np.zeros(0)
    if problem.sample_budget is not None and "batch_size" in problem.controls:
        # relative violation of the sample budget: sum_t m_t / D - 1 = 0
        constraints = ca.sum2(rows["batch_size"]) / float(problem.sample_budget) - 1.0
        lbg = ubg = np.zeros(1)

    bounds = lower_upper(problem, grids)
    return CasadiNLP(
        names=names,
        sizes=sizes,
        grids=grids,
        step=step,
        rollout=rollout,
        loss=loss,
        x=x,
        objective=ca.log(kept),
        constraints=constraints,
        bounds_g=(lbg, ubg),
        lower=np.concatenate([bounds[name][0] for name in names]),
        upper=np.concatenate([bounds[name][1] for name in names]),
        momentum=momentum,
    )
