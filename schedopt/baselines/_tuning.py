r"""Tuning a baseline family on a problem: minimise the final loss :math:`L_T` over its parameters.

On the exact recursion with the problem's model, its fixed batch size (``sample_budget / T``
when there is a budget) and momentum; the peak bounded by the learning-rate control,
shape parameters by the family's bounds. Then:

1. a coarse grid (:data:`GRID` = 8 peaks × 4 shape values), evaluated in vectorised calls;
2. from each of its local minima (at most ``starts``, best first) the bounded
   trust-region search of :mod:`schedopt.baselines._search`; a start on a bound first
   optimises within that face; a later start that runs into an optimum already found stops;
3. (``faces=True``) the peak is optimised on both bounds of the shape parameter and,
   within :data:`FACE_MARGIN` of the best loss, a full search starts from there: a
   minimum on a bound is often no local minimum of the coarse grid.

At long horizons steps 1-3 run at a shorter horizon and their optima are then carried to the
horizon and polished there (:mod:`schedopt.baselines._horizon`).

The landscapes are not always unimodal, hence the several starts (the dense-scan
check is in ``benchmarks/README.md``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from schedopt import _validate as v
from schedopt._jax import float64, jax
from schedopt.baselines._families import BASELINES, PEAK, BaselineFamily, _family, _schedule_values
from schedopt.baselines._horizon import polish, shorter_horizon
from schedopt.baselines._objective import _check_stability, _fixed_batch_size, _Objective
from schedopt.baselines._search import _Face, _refine, _Search
from schedopt.dynamics.recursion import final_loss
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.status import Status

__all__ = ["TunedBaseline", "tune_baseline", "tune_baselines"]

logger = logging.getLogger(__name__)

#: Default lower end of the peak search, as a fraction of the learning-rate cap.
PEAK_RANGE = 1e-6
#: Default coarse grid: points along ``peak`` and along the shape parameter.
GRID = (8, 4)
#: Default stopping tolerance: predicted further decrease of ``log L_T``.
TOL = 1e-11
#: A bound of the shape parameter whose best peak gives a loss within this fraction
#: of the best loss found gets a full local search from there.
FACE_MARGIN = 0.05
#: A tuned schedule searched on a compressed spectrum has its loss reported from the full
#: spectrum while ``T·N`` is at most this; beyond it (a run costs more than the search) from the
#: compressed one, within ~1e-12 relative (:mod:`schedopt.dynamics.compression`), as the ``jax``
#: solver's check does beyond its ``check_work``.
FULL_CHECK_WORK = 2e9


@dataclass(frozen=True, eq=False)
class TunedBaseline:
    """A baseline family tuned on a problem.

    Attributes:
        name: family name (a key of :data:`BASELINES`).
        params: the optimal parameters, ``{name: value}``.
        final_loss: final excess loss :math:`L_T` (kept modes + residual) of the
            tuned schedule on the exact recursion (on the compressed spectrum searched on
            when ``T·N`` exceeds :data:`FULL_CHECK_WORK`).
        learning_rate: per-step learning rates ``(T,)`` of the tuned schedule.
        evaluations: schedules run on the recursion (grid + refinement; at long horizons most
            of them at a shorter one, :mod:`schedopt.baselines._horizon`).
        wall_time: seconds spent (compilation included).
        status: ``converged`` when the local refinement met its tolerance, ``diverged`` when
            every schedule of the coarse grid diverged (then ``final_loss`` is ``inf`` and the
            parameters are the grid's lowest), else ``failed`` (:class:`~schedopt.status.Status`;
            :attr:`converged` says which).
        at_bounds: names of the parameters that ended on a bound of their search box.
        note: set when the learning-rate cap is at or above the stability threshold at the
            baselines' batch size and momentum: the threshold (the peak search crosses it).
    """

    name: str
    params: Mapping[str, float]
    final_loss: float
    learning_rate: np.ndarray
    evaluations: int
    wall_time: float
    status: Status = Status.CONVERGED
    at_bounds: tuple[str, ...] = ()
    note: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType({k: float(x) for k, x in self.params.items()}))
        lr = np.array(self.learning_rate, dtype=np.float64)
        lr.setflags(write=False)
        object.__setattr__(self, "learning_rate", lr)
        object.__setattr__(self, "at_bounds", tuple(self.at_bounds))
        object.__setattr__(self, "status", Status(self.status))

    @property
    def converged(self) -> bool:
        return self.status is Status.CONVERGED

    @property
    def horizon(self) -> int:
        return int(self.learning_rate.size)


def _grid_points(family: BaselineFamily, grid: tuple[int, int]) -> np.ndarray:
    n_peak, n_shape = grid
    axes = [PEAK.grid(n_peak)] + [p.grid(n_shape) for p in family.shape_parameters]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _grid_minima(losses: np.ndarray, limit: int) -> list[int]:
    """Flat indices of the grid's local minima (no neighbour, diagonals included, is lower), best first."""
    padded = np.pad(losses, 1, constant_values=np.inf)
    is_min = np.isfinite(losses)
    for offset in np.ndindex(*(3,) * losses.ndim):
        if all(o == 1 for o in offset):
            continue
        window = tuple(slice(o, o + n) for o, n in zip(offset, losses.shape, strict=True))
        is_min &= losses <= padded[window]
    flat = np.flatnonzero(is_min.ravel())
    order = flat[np.argsort(losses.ravel()[flat], kind="stable")]
    return order[:limit].tolist() or [int(np.argmin(losses))]


def _check_grid(grid) -> tuple[int, int]:
    if grid is None:
        return GRID
    if isinstance(grid, int | np.integer):
        grid = (grid, grid)
    grid = tuple(grid)
    if len(grid) != 2:
        raise ProblemError(f"`grid` must be an integer or a pair of integers, got {grid!r}", field="grid")
    out = tuple(v.positive_int("grid", g) for g in grid)
    if min(out) < 2:
        raise ProblemError(f"`grid` needs at least 2 points per axis, got {grid!r}", field="grid")
    return out


def _check_settings(grid, peak_range, tol, starts, faces, max_iterations, modes):
    """The tuning's settings, checked: ``(grid, peak_range, tol, starts, max_iterations, modes)``."""
    grid = _check_grid(grid)
    peak_range = v.positive("peak_range", peak_range)
    if peak_range >= 1:
        raise ProblemError(f"`peak_range` must be in (0, 1), got {peak_range!r}", field="peak_range")
    tol = v.positive("tol", tol)
    starts = v.positive_int("starts", starts)
    if not isinstance(faces, bool):
        raise ProblemError(f"`faces` must be true or false, got {faces!r}", field="faces")
    max_iterations = v.positive_int("max_iterations", max_iterations)
    modes = v.one_of("modes", modes, ("auto", "exact"))
    return grid, peak_range, tol, starts, max_iterations, modes


@dataclass(frozen=True, eq=False)
class _Coarse:
    """The coarse grid's points (scaled coordinates), their losses, its shape and the search radius."""

    points: np.ndarray
    losses: np.ndarray
    grid: tuple[int, int]
    shape: tuple[int, ...]
    radius: float


def _coarse_grid(obj: _Objective, family: BaselineFamily, grid: tuple[int, int]) -> _Coarse:
    """Evaluate the coarse grid (vectorised); losses are ``inf`` where a schedule diverged."""
    points = _grid_points(family, grid)
    losses = obj.loss(points)
    shape = (grid[0],) if obj.dim == 1 else grid
    return _Coarse(points, losses, grid, shape, 1.0 / (min(grid) - 1))


def _search_from_minima(obj: _Objective, coarse: _Coarse, starts: int, tol: float, max_iterations: int):
    """Local searches from the coarse grid's best local minima; the best result and every search's result."""
    search, found = None, []
    for i in _grid_minima(coarse.losses.reshape(coarse.shape), starts):
        u0, loss0 = coarse.points[i], float(coarse.losses[i])
        on_bound = (u0 <= 0.0) | (u0 >= 1.0)
        if on_bound.any() and not on_bound.all():
            # a start on a face: optimise within the face first, so that the search
            # does not leave a minimum on the boundary before it has found it
            face = _Face(obj, u0, ~on_bound)
            result = _refine(face, u0[~on_bound], loss0, coarse.radius, math.sqrt(tol), max_iterations)
            u0, loss0 = face.full(result.u), result.loss
        result = _refine(obj, u0, loss0, coarse.radius, tol, max_iterations, [f.u for f in found])
        if search is None or result.loss < search.loss:
            search = result
        found.append(result)
    return search, found


def _search_from_faces(
    obj: _Objective, coarse: _Coarse, search, found: list, tol: float, max_iterations: int
):
    """Minima on a bound of the shape parameter (wsd_sqrt at cooldown_fraction = 1) often show as
    no local minimum of a coarse grid: optimise the peak on each bound (cheap, one parameter) and
    search from there if it is competitive. Returns the better search; ``found`` grows."""
    points, losses, grid, radius = coarse.points, coarse.losses, coarse.grid, coarse.radius
    table = losses.reshape(coarse.shape)
    for column in (0, grid[1] - 1):
        i = int(np.argmin(table[:, column])) * grid[1] + column
        if not np.isfinite(losses[i]) or any(np.array_equal(points[i], f.u) for f in found):
            continue
        face = _Face(obj, points[i], np.array([True, False]))
        on_face = _refine(face, points[i][:1], float(losses[i]), radius, math.sqrt(tol), max_iterations)
        if on_face.loss <= search.loss * (1.0 + FACE_MARGIN):
            known = [f.u for f in found]
            result = _refine(obj, face.full(on_face.u), on_face.loss, radius, tol, max_iterations, known)
            if result.loss < search.loss:
                search = result
            found.append(result)
    return search


def _search(
    obj: _Objective, family: BaselineFamily, grid, starts: int, faces: bool, tol: float, max_iterations: int
) -> tuple[_Search | None, list[_Search]]:
    """The coarse grid, the local searches from its minima and (``faces``) from the shape parameter's
    bounds: the best result and every search's result; ``(None, [])`` when every schedule of the
    coarse grid diverged."""
    coarse = _coarse_grid(obj, family, grid)
    if not np.isfinite(coarse.losses).any():
        return None, []
    search, found = _search_from_minima(obj, coarse, starts, tol, max_iterations)
    if faces and obj.dim == 2:
        search = _search_from_faces(obj, coarse, search, found, tol, max_iterations)
    return search, found


def _tuned(
    problem: Problem, family: BaselineFamily, obj: _Objective, search, start: float, note: str | None
) -> TunedBaseline:
    """The result of a search: parameters, per-step schedule and its loss on the full spectrum.

    ``search`` is ``None`` when every schedule of the coarse grid diverged: the result is then
    the grid's first point (lowest peak and shape values) with status ``diverged``.
    """
    params_vec = obj.natural(np.zeros(obj.dim) if search is None else search.u)
    params = dict(zip(family.param_names, params_vec.tolist(), strict=True))
    padded = np.concatenate([params_vec, np.zeros(2 - params_vec.size)])
    lr = np.asarray(
        _schedule_values(obj.kind, family.option, jax.device_put(padded), horizon=problem.horizon),
        dtype=np.float64,
    )
    if search is None:
        at_bounds, loss, status = tuple(family.param_names), math.inf, Status.DIVERGED
    else:
        at_bounds = tuple(
            n for n, x in zip(family.param_names, search.u, strict=True) if x <= 0.0 or x >= 1.0
        )
        loss = search.loss
        if obj.compressed and float(problem.horizon) * problem.model.n_modes <= FULL_CHECK_WORK:
            # report the full spectrum's loss of the tuned schedule (plain SGD)
            loss = float(final_loss(problem.model, lr, batch_size=_fixed_batch_size(problem)))
        status = Status.CONVERGED if search.converged else Status.FAILED
        if not (math.isfinite(loss) and loss <= obj.limit):
            loss, status = math.inf, Status.DIVERGED
    return TunedBaseline(
        name=family.name,
        params=params,
        final_loss=loss,
        learning_rate=lr,
        evaluations=obj.evaluations,
        wall_time=time.perf_counter() - start,
        status=status,
        at_bounds=at_bounds,
        note=note,
    )


@float64
def tune_baseline(
    problem: Problem,
    name,
    *,
    grid: int | Sequence[int] | None = None,
    peak_range: float = PEAK_RANGE,
    tol: float = TOL,
    starts: int = 3,
    faces: bool = True,
    max_iterations: int = 50,
    modes: str = "auto",
    search_horizon: int | None = None,
) -> TunedBaseline:
    """Tune one baseline family on a problem: minimise :math:`L_T` over its parameters.

    Args:
        problem: the problem (model, horizon, learning-rate bounds; batch size and
            momentum are held at their fixed values, or ``sample_budget / T``).
        name: a key of :data:`BASELINES` or a family instance.
        grid: coarse-grid points ``(peak, shape parameter)``; default :data:`GRID`.
        peak_range: lowest peak searched, as a fraction of the learning-rate cap
            (when the control's ``min`` is lower).
        tol: stop when the predicted further decrease of ``log L_T`` is below this.
        starts: refine from at most this many local minima of the coarse grid, best first.
        faces: also optimise the peak on both bounds of the shape parameter and
            search from there when that is within :data:`FACE_MARGIN` of the best
            (finds minima on a bound that the coarse grid misses; costs ~30 % more).
        max_iterations: refinement iterations before giving up (status ``failed``).
        modes: ``"auto"``: search on the compressed spectrum of a plain-SGD model of more than
            256 modes (:mod:`schedopt.dynamics.compression`); ``"exact"``: on its own modes. The
            reported loss is the full recursion's while ``T·N`` is at most :data:`FULL_CHECK_WORK`,
            beyond it the compressed one's (~1e-12 relative).
        search_horizon: run the coarse grid and the local searches at this horizon (at most
            ``T``) and carry their optima to ``T`` (:mod:`schedopt.baselines._horizon`). Default:
            ``T // 100`` (at least 1000) when one schedule's work (``T`` times the modes searched
            on) exceeds :data:`schedopt.baselines._horizon.LONG_WORK`, else ``T``.

    A learning-rate cap at or above the stability threshold (at the baselines' batch size
    and momentum) is allowed: the peak search crosses it, schedules that diverge score
    ``inf``, and the result is the best stable one, with a ``note`` of the threshold; if
    every schedule of the coarse grid diverges, the status is ``diverged`` (no error).

    Raises:
        ProblemError: bad option.
    """
    start = time.perf_counter()
    family = _family(name)
    grid, peak_range, tol, starts, max_iterations, modes = _check_settings(
        grid, peak_range, tol, starts, faces, max_iterations, modes
    )
    threshold, note = _check_stability(problem)
    obj = _Objective(problem, family, peak_range, threshold, modes)
    horizon = shorter_horizon(obj, search_horizon)
    at = obj if horizon == obj.horizon else obj.at_horizon(horizon)
    search, found = _search(at, family, grid, starts, faces, tol, max_iterations)
    if at is not obj and search is not None:
        polished = polish(obj, at, found, tol, max_iterations)
        if math.isfinite(polished.loss):
            search = polished
        else:  # the shorter horizon's optima diverge at T (not seen): search at T
            search, _ = _search(obj, family, grid, starts, faces, tol, max_iterations)
    if at is not obj:
        obj.evaluations += at.evaluations
    tuned = _tuned(problem, family, obj, search, start, note)
    if search is None:
        logger.debug("tuning %s on %s: every schedule of the coarse grid diverged", family.name, problem.name)
        return tuned
    logger.debug(
        "tuned %s on %s: loss %.6g, params %s, %d evaluations, %d iterations, %.2f s",
        family.name,
        problem.name,
        tuned.final_loss,
        dict(tuned.params),
        obj.evaluations,
        search.iterations,
        tuned.wall_time,
    )
    return tuned


@float64
def tune_baselines(
    problem: Problem,
    names: Iterable | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    **options,
) -> dict[str, TunedBaseline]:
    """Tune several baseline families (default: all of :data:`BASELINES`) on a problem.

    Args:
        problem: the problem.
        names: family names or instances; default every built-in family.
        progress: called with ``"tuning baseline i/n: name ..."`` before each family.
        **options: passed to :func:`tune_baseline`.

    Returns:
        ``{name: TunedBaseline}`` in the order given.
    """
    families = [_family(n) for n in (BASELINES if names is None else names)]
    tuned = {}
    for i, family in enumerate(families, start=1):
        if progress is not None:
            progress(f"tuning baseline {i}/{len(families)}: {family.name} ...")
        tuned[family.name] = tune_baseline(problem, family, **options)
    return tuned
