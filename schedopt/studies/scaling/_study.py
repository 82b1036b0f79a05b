"""The driver of a scaling study: check the settings, scan the computes in order, fit the frontiers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from schedopt import _validate as v
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.studies.scaling import _evaluate
from schedopt.studies.scaling._problem import _cap_fraction, _check_problem
from schedopt.studies.scaling._record import SCHEDULES, ScalingStudy
from schedopt.studies.scaling._scan import ScanSettings, _frontier_at
from schedopt.theory import PowerLawFit, fit_power_law

if TYPE_CHECKING:
    from schedopt.solvers._options import SolverOptions

#: Default solver options: the frontier needs losses to ~1e-6 relative, not full convergence.
DEFAULT_OPTIONS = {"ftol": 1e-10, "gtol": 1e-6}
#: Smallest horizon (steps) of a scanned point.
MIN_HORIZON = 20


def _check_settings(
    schedules: Sequence[str],
    points: int,
    spacing: float,
    max_extend: int,
    min_horizon: int,
    computes: Sequence[float],
) -> tuple[tuple[str, ...], int, float, int, int, list[float]]:
    """The study's settings, checked; the computes sorted."""
    kinds = tuple(schedules)
    if not kinds or any(k not in SCHEDULES for k in kinds) or len(set(kinds)) != len(kinds):
        raise ProblemError(
            f"`schedules` must be distinct names among {', '.join(SCHEDULES)}, got {list(kinds)!r}",
            field="schedules",
        )
    points = v.positive_int("points", points)
    if points < 3:
        raise ProblemError(f"`points` must be at least 3, got {points!r}", field="points")
    spacing = v.greater_than("spacing", spacing, 1.0)
    max_extend = 0 if max_extend == 0 else v.positive_int("max_extend", max_extend)
    min_horizon = v.positive_int("min_horizon", min_horizon)
    comp = sorted(v.positive("compute", c) for c in computes)
    if len(comp) < 2:
        raise ProblemError(f"`compute` needs at least two values, got {list(computes)!r}", field="compute")
    return kinds, points, spacing, max_extend, min_horizon, comp


def _fit(x: Sequence[float], y: Sequence[float]) -> PowerLawFit | None:
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x_arr) & np.isfinite(y_arr) & (y_arr > 0)
    if keep.sum() < 2:
        return None
    return fit_power_law(x_arr[keep], y_arr[keep])


def _frontier_fits(frontiers: Mapping[str, list[dict[str, Any]]]) -> dict[str, dict[str, PowerLawFit | None]]:
    """Power laws in ``C`` of each schedule's ``N*``, ``T*`` and ``L*``, over its interior minima."""
    fits: dict[str, dict[str, PowerLawFit | None]] = {}
    for k, rows in frontiers.items():
        use = [r for r in rows if r["interior"]]
        c = [r["compute"] for r in use]
        fits[k] = {
            "model_size": _fit(c, [r["n_modes"] for r in use]),
            "horizon": _fit(c, [r["horizon"] for r in use]),
            "loss": _fit(c, [r["loss"] for r in use]),
        }
    return fits


def _scan_computes(
    problem: Problem,
    computes: Sequence[float],
    scan: ScanSettings,
    wall: dict[str, float],
    progress: Callable[[int, int], None] | None,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Scan each compute in order, centred on the guess from the previous one's ``N*``."""
    m = problem.training.batch_size
    a, b = problem.model.a, problem.model.b
    p_n = 1.0 / (max(a, b) + 1.0)
    all_points: list[dict[str, Any]] = []
    frontiers: dict[str, list[dict[str, Any]]] = {k: [] for k in scan.kinds}
    previous: tuple[float, float] | None = None  # (compute, N*) of the last compute
    seed: dict[str, Any] | None = None  # the last compute's best point of the optimal schedule
    for ci, compute in enumerate(computes):
        steps_modes = compute / m
        center = steps_modes**p_n if previous is None else previous[1] * (compute / previous[0]) ** p_n
        scanned, rows, best_n = _frontier_at(
            problem, compute, center, wall, scan, _evaluate._evaluate_many, seed
        )
        for k in scan.kinds:
            frontiers[k].append(rows[k])
        previous = (compute, best_n)
        if "optimal" in rows:
            seed = next(pt for pt in scanned if pt["n_modes"] == rows["optimal"]["discrete_n_modes"])
        all_points.extend(scanned)
        if progress is not None:
            progress(ci + 1, len(computes))
    return all_points, frontiers


def study_scaling(
    problem: Problem,
    computes: Sequence[float],
    *,
    schedules: Sequence[str] = SCHEDULES,
    points: int = 5,
    spacing: float = math.sqrt(2.0),
    blocks: int | None = None,
    max_extend: int = 4,
    min_horizon: int = MIN_HORIZON,
    solver: str = "jax",
    options: SolverOptions | Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    backend: Any = None,
) -> ScalingStudy:
    """Measure the compute-optimal frontier of each schedule (see the package docstring).

    Args:
        problem: a power-law problem (its ``n_modes`` and horizon are replaced).
        computes: computes :math:`C = N T m` (at least two for the fits).
        schedules: a subset of :data:`SCHEDULES`.
        points: model sizes scanned per compute before any extension (>= 3).
        spacing: ratio between neighbouring model sizes (> 1).
        blocks: learning-rate blocks of the optimal schedule (default: the spec's), capped at ``T``.
        max_extend: extra model sizes allowed per compute to bring each minimum inside the grid.
        min_horizon: smallest horizon scanned (steps).
        solver: solver of the optimal schedule.
        options: the solver's options, its record or a mapping (default :data:`DEFAULT_OPTIONS` for ``jax``).
        progress: called with ``(computes done, computes)``.
        backend: where the points of a compute run (:mod:`schedopt.backends`; default: this
            process). The computes run in order (each scan is centred on the previous optimum);
            the points of one scan, and of each extension, run in parallel. Results do not
            depend on the backend.

    Raises:
        ProblemError: a non-power-law model, a batch-size control, or bad settings
            (the message names the field).
    """
    from schedopt.backends import LocalBackend
    from schedopt.solvers._options import as_dict

    start_all = time.perf_counter()
    backend = LocalBackend() if backend is None else backend
    _check_problem(problem)
    kinds, points, spacing, max_extend, min_horizon, comp = _check_settings(
        schedules, points, spacing, max_extend, min_horizon, computes
    )
    if options is None and solver == "jax":
        options = DEFAULT_OPTIONS
    scan = ScanSettings(kinds, points, spacing, blocks, max_extend, min_horizon, solver, options, backend)
    wall: dict[str, float] = dict.fromkeys(kinds, 0.0)
    all_points, frontiers = _scan_computes(problem, comp, scan, wall, progress)
    fits = _frontier_fits(frontiers)
    wall["total"] = time.perf_counter() - start_all
    settings = {
        "points": points,
        "spacing": spacing,
        "blocks": blocks if blocks is not None else problem.learning_rate.blocks,
        "grid": problem.learning_rate.grid,
        "max_extend": max_extend,
        "min_horizon": min_horizon,
        "solver": solver,
        "options": as_dict(options),
        "cap_fraction_of_threshold": _cap_fraction(problem),
        "initial_loss_total": problem.model.initial_loss + problem.model.residual,
    }
    return ScalingStudy(
        problem=problem,
        computes=tuple(comp),
        schedules=kinds,
        points=tuple(all_points),
        frontiers=frontiers,
        fits=fits,
        settings=settings,
        wall_time=wall,
    )
