"""Solving the fit: least squares from several starts, Gauss–Newton uncertainties, what they identify."""

from __future__ import annotations

import contextvars
import math
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import scipy.optimize

from schedopt._jax import float64, jax
from schedopt.calibration._model import (
    AT_BOUND,
    FIT_PARAMETERS,
    _bounds,
    _data,
    _Layout,
    _Objective,
    _starts,
)
from schedopt.calibration.pilots import PilotRun
from schedopt.errors import FitError
from schedopt.solvers._lockstep import usable_cores
from schedopt.status import Status

_IDENTIFIED_RATIO = 0.5
_SCOUT_EVALUATIONS = 50  # least-squares evaluations per start before the best is polished
_MAX_EVALUATIONS = 300


def _run_start(objective: _Objective, x0, bounds, budget: int):
    """The fit's least squares from ``x0``, at most ``budget`` evaluations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return scipy.optimize.least_squares(
            objective.fun,
            x0,
            jac=objective.jac,
            bounds=bounds,
            method="trf",
            x_scale="jac",
            max_nfev=budget,
        )


def scout_threads(starts: int) -> int:
    """Threads running the scouts at once: one a usable core on a CPU (at most one a start), one on an
    accelerator (it runs one computation at a time)."""
    if jax.default_backend() != "cpu":
        return 1
    return max(1, min(starts, usable_cores()))


class _Stopped(Exception):
    """A scout stopped because another one failed or the caller was interrupted."""


class _Stoppable:
    """The objective as one scout's thread sees it: each evaluation first checks ``stop``."""

    def __init__(self, objective: _Objective, stop: threading.Event):
        self.objective, self.stop = objective, stop

    def fun(self, x):
        if self.stop.is_set():
            raise _Stopped
        return self.objective.fun(x)

    def jac(self, x):
        if self.stop.is_set():
            raise _Stopped
        return self.objective.jac(x)


def _scouts(objective: _Objective, starts, bounds) -> list:
    """A short run from every start, in start order; on threads when there are cores for them.

    Each start's run is the same whatever thread runs it (XLA's CPU results do not depend on it), so the
    fit is the same as one run start after start. A thread gets the caller's context (its progress line)
    and JAX's float64 scope, which is per thread. An interrupt (or a failed scout) stops the others at
    their next evaluation, and the starts not begun never begin.
    """
    threads = scout_threads(len(starts))
    if threads == 1:
        return [_run_start(objective, x0, bounds, _SCOUT_EVALUATIONS) for x0 in starts]
    run, stop = float64(_run_start), threading.Event()

    def scout(x0):
        try:
            return run(_Stoppable(objective, stop), x0, bounds, _SCOUT_EVALUATIONS)
        except BaseException:
            stop.set()  # before this thread takes the next start
            raise

    pool = ThreadPoolExecutor(threads, thread_name_prefix="schedopt-fit")
    futures = []
    try:
        futures = [pool.submit(contextvars.copy_context().run, scout, x0) for x0 in starts]
        return [f.result() for f in futures]
    except _Stopped:  # stopped by a scout that failed: raise what it raised
        pool.shutdown(wait=True, cancel_futures=True)  # the others stop at their next evaluation
        failed = next((e for f in futures if not f.cancelled() and _failed(e := f.exception())), None)
        if failed is None:
            raise
        raise failed from None
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _failed(error: BaseException | None) -> bool:
    return error is not None and not isinstance(error, _Stopped)


def _least_squares(objective: _Objective, starts, bounds):
    """A short run from every start, then the best one run to convergence."""
    scouts = _scouts(objective, starts, bounds)
    best = min(scouts, key=lambda r: r.cost)
    if best.status != 0:  # converged already
        return best
    final = _run_start(objective, best.x, bounds, _MAX_EVALUATIONS)
    final.nfev += sum(r.nfev for r in scouts)
    return final


def _check_identifiable(runs: Sequence[PilotRun], fixed_kappa: float | None) -> None:
    rates = np.unique(np.concatenate([r.learning_rate[r.learning_rate > 0] for r in runs]))
    if rates.size == 0:
        raise FitError(f"{runs[0].name}: learning_rate: every pilot has learning rate 0; nothing was trained")
    if fixed_kappa is None and rates.size < 2:
        names = ", ".join(r.name for r in runs)
        raise FitError(
            f"{names}: every pilot uses the single learning rate {rates[0]:g}, so the learning-rate scale "
            "cannot be identified; add pilots at other learning rates or fix learning_rate_scale "
            "(--lr-scale)"
        )


@dataclass(frozen=True, eq=False)
class _Solve:
    x: np.ndarray
    residuals: np.ndarray
    jacobian: np.ndarray
    status: Status
    message: str
    evaluations: int
    objective: _Objective


def _solve(runs, layout: _Layout, fixed_kappa, max_lr, held_out) -> _Solve:
    data = _data(runs, max_lr, held_out)
    objective = _Objective(data, layout, fixed_kappa)
    bounds = _bounds(layout)
    res = _least_squares(objective, _starts(runs, data, layout), bounds)
    return _Solve(
        x=res.x,
        residuals=objective.fun(res.x),
        jacobian=objective.jac(res.x),
        status=_status(res.status),
        message=str(res.message),
        evaluations=int(res.nfev),
        objective=objective,
    )


def _status(code: int) -> Status:
    """SciPy ``least_squares``' status code as schedopt's :class:`~schedopt.status.Status`."""
    if code > 0:  # 1-4: one of the tolerances was met
        return Status.CONVERGED
    return Status.MAX_ITERATIONS if code == 0 else Status.FAILED


def _relative_rms(solve: _Solve, runs, where: np.ndarray) -> tuple[float, dict[str, float]]:
    """RMS relative error of the predicted losses at the measurements in ``where``: overall and by run."""
    data = solve.objective.data
    rel = np.expm1(solve.objective.log_prediction(solve.x) - data.log_loss)
    by_run = {
        r.name: float(np.sqrt(np.mean(rel[where & (data.run_index == i)] ** 2)))
        for i, r in enumerate(runs)
        if np.any(where & (data.run_index == i))
    }
    return float(np.sqrt(np.mean(rel[where] ** 2))), by_run


#: Largest condition number of the column-scaled ``J`` whose coordinates all count as determined by the data:
#: ``J^T J``'s is its square, ``1e14``, the limit the inversion had before coordinates were held.
_MAX_CONDITION = 1e7


def _determined(jacobian: np.ndarray) -> list[int]:
    """The coordinates the data determine: all of them unless ``J`` (columns scaled to unit norm) is singular
    to :data:`_MAX_CONDITION`; then, one at a time, the coordinate with the largest weight in the direction
    the data determine least is held at its value (a parameter with no effect, e.g. the null modes of a fit
    without noise, or two coordinates that trade off exactly), until the rest are determined."""
    keep = [i for i in range(jacobian.shape[1]) if np.any(jacobian[:, i] != 0)]
    while keep:
        columns = jacobian[:, keep]
        scaled = columns / np.linalg.norm(columns, axis=0)
        _, singular, vt = np.linalg.svd(scaled, full_matrices=False)
        if not np.all(np.isfinite(singular)):
            return []
        if singular[-1] * _MAX_CONDITION > singular[0]:
            return keep
        keep.pop(int(np.argmax(np.abs(vt[-1]))))
    return keep


def _uncertainties(solve: _Solve, fixed: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parameter values and Gauss–Newton standard errors.

    Coordinates the pilots leave undetermined (:func:`_determined`) get an infinite standard error, and so does
    every parameter that depends on one; the others' are conditional on those held at their fitted values
    (before, one undetermined coordinate made every standard error infinite: on nine of the fourteen real
    tasks' default fits, ``benchmarks/fit_uncertainty.py``)."""
    x = solve.x
    values = np.asarray(solve.objective.parameters(jnp.asarray(x)))
    jacobian = np.asarray(solve.jacobian)
    n, p = jacobian.shape
    dof = max(n - p, 1)
    s2 = float(np.sum(solve.residuals**2)) / dof
    with np.errstate(all="ignore"):  # a non-finite J: no uncertainties, said below
        keep = _determined(jacobian)
    cov_x = np.full((p, p), np.inf)
    if keep:
        columns = jacobian[:, keep]
        norms = np.linalg.norm(columns, axis=0)  # inverted with unit columns: J^T J's scales can span 1e20
        scaled = columns / norms
        cov_x[np.ix_(keep, keep)] = s2 * np.linalg.inv(scaled.T @ scaled) / np.outer(norms, norms)
    g = np.asarray(solve.objective.parameter_jacobian(jnp.asarray(x)))
    held = [i for i in range(p) if i not in keep]
    size = len(FIT_PARAMETERS)
    cov = np.full((size, size), np.inf)
    with np.errstate(invalid="ignore"):
        cov_kept = g[:, keep] @ cov_x[np.ix_(keep, keep)] @ g[:, keep].T
    # the parameters that depend on determined coordinates only
    free = [j for j in range(size) if not np.any(g[j, held] != 0)]
    cov[np.ix_(free, free)] = cov_kept[np.ix_(free, free)]
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    for name in fixed:
        std[FIT_PARAMETERS.index(name)] = 0.0
    return values, std, cov


def _phase_z(values, cov) -> float:
    """(a − b) / its standard error: ``inf`` for an exact difference (a and b fixed), ``nan`` when
    the fit has no standard errors (a singular Jacobian: the pilots do not determine it)."""
    block = cov[:2, :2]
    if not np.all(np.isfinite(block)):
        return math.nan
    var = block[0, 0] + block[1, 1] - 2 * block[0, 1]
    if var <= 0:
        return math.copysign(math.inf, values[0] - values[1]) if values[0] != values[1] else 0.0
    return float((values[0] - values[1]) / math.sqrt(var))


def _identified(solve: _Solve, layout: _Layout, values, std) -> tuple[dict[str, bool], tuple[str, ...]]:
    """Whether each parameter is identified (see :mod:`schedopt.calibration.fit`); coordinates on a bound."""
    fixed = layout.fixed
    lo, hi = _bounds(layout)
    width = hi - lo
    hit = (solve.x - lo < AT_BOUND * width) | (hi - solve.x < AT_BOUND * width)
    at_bound = tuple(layout.coordinates[i] for i in np.flatnonzero(hit))
    identified = {}
    for i, pname in enumerate(FIT_PARAMETERS):
        ref = solve.objective.data.min_loss if pname == "loss_offset" else abs(values[i])
        identified[pname] = bool(
            pname in fixed
            or (np.isfinite(std[i]) and std[i] < _IDENTIFIED_RATIO * ref and pname not in at_bound)
        )
    return identified, at_bound


def _identification_notes(identified, at_bound, fixed) -> list[str]:
    """The notes a user must see about parameters the pilots could not pin down."""
    notes = []
    missing = [n for n in FIT_PARAMETERS if not identified[n] and n not in fixed]
    if missing:
        notes.append(
            "not identified by these pilots (standard error >= half the value, or at a bound): "
            + ", ".join(missing)
        )
    if at_bound:
        notes.append("at a bound of the search box: " + ", ".join(at_bound))
    return notes
