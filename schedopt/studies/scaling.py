r"""Compute-optimal model size and horizon: the frontier :math:`N^*(C)`, :math:`T^*(C)`, :math:`L^*(C)`.

The model is the top :math:`N` modes of an infinite power law (THEORY §2.2,
``Model.powerlaw(..., finite_size=True)``): the modes beyond :math:`N` are frozen,
their loss :math:`R_N \sim N^{-(a-1)}` is a floor and feeds the SGD noise. At a
fixed compute :math:`C = N\,T\,m` (modes x steps x batch size) a larger model has
a lower floor but fewer steps. For each :math:`C`:

1. :math:`N` is scanned on a log grid (``points`` values, ratio ``spacing``)
   centred on a guess: :math:`C^{1/(\max(a,b)+1)}` for the first compute, then the
   previous optimum times :math:`(C/C_{\rm prev})^{1/(\max(a,b)+1)}`;
   :math:`T = \mathrm{round}(C/(N m))` (so :math:`NTm = C` within :math:`1/(2T)`).
2. At each :math:`(N, T)` the optimal schedule is solved (``solve``, the problem's
   own learning-rate grid, blocks capped at :math:`T`) and the baselines are
   tuned (``tune_baseline``: best constant, cosine).
3. Where a schedule's smallest loss sits at an end of the scanned grid, the grid
   is extended on that side (at most ``max_extend`` points) until the minimum is
   interior.
4. The minimum is refined by a parabola in :math:`(\log N, \log L)` through the
   discrete minimum and its two neighbours: :math:`N^*`, :math:`L^*`, and
   :math:`T^* = C/(N^* m)`.

Then :math:`N^*`, :math:`T^*` and :math:`L^*` are fitted as power laws of :math:`C`
(:func:`schedopt.theory.fit_power_law`, range and residual reported) and set next
to THEORY §4: :math:`N^* \sim C^{1/(\max(a,b)+1)}`,
:math:`L^* \sim C^{-(a-1)/(\max(a,b)+1)}`, hence :math:`T^* \sim C^{\max(a,b)/(\max(a,b)+1)}`.
For the best constant schedule the same balance with THEORY's constant-schedule
loss :math:`T^{-(a-1)/(a-1+b)}` gives (derived here) :math:`N^* \sim C^{1/(a+b)}`,
:math:`L^* \sim C^{-(a-1)/(a+b)}`.

**Compute multiplier** of a baseline: the compute it needs to reach the optimal
schedule's frontier loss :math:`L^*_{\rm opt}(C)`, divided by :math:`C`. It is read
off the baseline's measured frontier (log-log interpolation), or its fitted power
law outside the measured range (flagged ``extrapolated``).

**Learning-rate cap.** The stability threshold depends on :math:`N` (it falls as
modes are added). Each model size gets the cap
:math:`\eta_{\max}(N) = \rho\,\eta_c(N)` where :math:`\eta_c` is the threshold at the
problem's batch size and :math:`\rho` the fraction of its own threshold at which the
spec puts ``controls.learning_rate.max``; the cap of every point is reported.

**Cost.** One recursion pass costs :math:`O(NT) = O(C/m)` at every point of a
fixed-compute scan, so a frontier costs about (points per compute) x (sum of the
computes) x (passes per solve), plus one JAX compilation per point (every point
has its own shapes, so the solves cannot be stacked into one vectorised call).
Computes up to ~1e6 take minutes on one CPU core (a point costs ~5 s, mostly
compilation, up to ~20 s at 1e6); a point at 1e7 costs 2–3 CPU minutes, and
each further decade ten times more. Each solve starts from the solver's own
Pontryagin warm start: starting instead from the neighbouring model size's
schedule mapped in :math:`t/T` was measured slower (hard phase, :math:`C = 10^6`:
105 vs 59 and 330 vs 127 L-BFGS iterations), so it is not used.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt import _validate as v
from schedopt.dynamics.stability import stability_threshold
from schedopt.errors import ProblemError
from schedopt.problem import Model, Problem
from schedopt.theory import PowerLawFit, fit_power_law, phase

__all__ = [
    "SCHEDULES",
    "ScalingStudy",
    "frontier_predictions",
    "parse_compute",
    "scaling_problem",
    "study_scaling",
]

#: Schedules whose frontier is measured: the optimum and two tuned baselines.
SCHEDULES = ("optimal", "constant", "cosine")
#: Default solver options: the frontier needs losses to ~1e-6 relative, not full convergence.
DEFAULT_OPTIONS = {"ftol": 1e-10, "gtol": 1e-6}
#: Where each schedule's predicted frontier exponents come from.
PREDICTION_SOURCES = {
    "optimal": "THEORY §4 (compute-optimal row)",
    "constant": "derived: R_N ~ N^-(a-1) balanced against THEORY §4's best-constant loss T^-(a-1)/(a-1+b)",
    "cosine": "none",
}
#: Smallest horizon (steps) of a scanned point.
MIN_HORIZON = 20


def parse_compute(text: str) -> list[float]:
    """``"1e6:1e10:9"`` → 9 log-spaced computes from 1e6 to 1e10; or a comma list ``"1e5,1e6"``."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            count = float(n)
            if not count.is_integer() or count < 2:
                raise ValueError
            lo_v, hi_v = float(lo), float(hi)
            if not (math.isfinite(lo_v) and math.isfinite(hi_v)) or lo_v <= 0 or hi_v <= lo_v:
                raise ValueError
            values = np.geomspace(lo_v, hi_v, int(count))
        else:
            values = np.unique([float(x) for x in text.split(",") if x.strip()])
            if values.size < 2 or not np.all(np.isfinite(values)) or values.min() <= 0:
                raise ValueError
    except ValueError:
        raise ProblemError(
            f"`--compute` must be LO:HI:COUNT (e.g. 1e6:1e10:9, COUNT >= 2) or a comma list of at "
            f"least two positive numbers, got {text!r}",
            field="compute",
        ) from None
    return [float(x) for x in values]


def _check_problem(problem: Problem) -> None:
    if not problem.model.is_powerlaw:
        raise ProblemError(
            'compute-optimal scaling needs a power-law model (model.kind = "powerlaw"): the model '
            "size N is the number of modes kept from an infinite power law",
            field="model.kind",
        )
    if problem.model.a <= 1:
        raise ProblemError(
            f"`model.a` must be > 1 for a finite-size model (finite R_N), got {problem.model.a!r}",
            field="model.a",
        )
    if "batch_size" in problem.controls or problem.sample_budget is not None:
        raise ProblemError(
            "compute-optimal scaling holds the batch size fixed; remove `controls.batch_size`",
            field="controls.batch_size",
        )


def _cap_fraction(problem: Problem) -> float:
    return problem.learning_rate.max / stability_threshold(problem.model, problem.training.batch_size)


def scaling_problem(problem: Problem, n_modes: int, horizon: int, *, blocks: int | None = None) -> Problem:
    """``problem`` with the top ``n_modes`` of its infinite power law, at ``horizon`` steps.

    Same exponents, noise and total initial loss (kept + frozen modes); the
    learning-rate cap keeps the spec's fraction of the stability threshold (module
    docstring); ``blocks`` (default: the spec's) is capped at the horizon.
    """
    _check_problem(problem)
    n_modes = v.positive_int("n_modes", n_modes)
    m = problem.model
    total = m.initial_loss + m.residual
    model = Model.powerlaw(
        m.a, m.b, n_modes, noise_std=math.sqrt(m.noise_variance), initial_loss=total, finite_size=True
    )
    cap = _cap_fraction(problem) * stability_threshold(model, problem.training.batch_size)
    base = problem.replace(model=model).with_control("learning_rate", max=cap)
    if blocks is not None:
        blocks = v.positive_int("blocks", blocks)
        if base.learning_rate.grid == "custom":
            raise ProblemError("`blocks` cannot override a custom grid (its edges are given)", field="blocks")
        # raise the horizon first so that the new block count is valid, then set the target horizon
        base = base.at_horizon(max(base.horizon, blocks)).with_control("learning_rate", blocks=blocks)
    return base.at_horizon(horizon)


def frontier_predictions(a: float, b: float) -> dict[str, dict[str, float | None]]:
    """Exponents :math:`p` of :math:`N^*, T^*, L^* \\propto C^p` per schedule (signed, as in ``C^p``).

    ``optimal``: THEORY §4. ``constant``: derived here from THEORY §4's best-constant
    loss exponent by the same balance :math:`R_N \\sim L_T` (see module docstring).
    ``cosine``: the theory makes no prediction (``None``).
    """
    top = max(a, b)
    opt_n = 1.0 / (top + 1.0)
    const_n = 1.0 / (a + b)
    return {
        "optimal": {"model_size": opt_n, "horizon": 1.0 - opt_n, "loss": -(a - 1.0) / (top + 1.0)},
        "constant": {"model_size": const_n, "horizon": 1.0 - const_n, "loss": -(a - 1.0) / (a + b)},
        "cosine": {"model_size": None, "horizon": None, "loss": None},
    }


# --- evaluating one (N, T) point


def _baseline_task(task: tuple) -> dict[str, Any]:
    """Tune one baseline at one point (a backend task)."""
    from schedopt.baselines import tune_baseline

    problem, kind = task
    start = time.perf_counter()
    tuned = tune_baseline(problem, kind)
    return {
        "loss": float(tuned.final_loss),
        "status": tuned.status,
        "params": dict(tuned.params),
        "at_bounds": list(tuned.at_bounds),
        "wall_time": time.perf_counter() - start,
    }


def _evaluate_many(
    jobs: Sequence[tuple[Problem, Sequence[str]]], *, solver: str, options, backend
) -> list[dict[str, Any]]:
    """Results of every ``(problem, kinds)`` job: optimal schedules by :func:`schedopt.design_many`,
    baselines as one backend task each; both spread over the backend's workers."""
    from schedopt.batch import InvalidDesign, design_many

    optimal = [i for i, (_, kinds) in enumerate(jobs) if "optimal" in kinds]
    solved = design_many([jobs[i][0] for i in optimal], solver, options=options, backend=backend)
    tuning = [(i, kind) for i, (_, kinds) in enumerate(jobs) for kind in kinds if kind != "optimal"]
    tuned = backend.map(_baseline_task, [(jobs[i][0], kind) for i, kind in tuning])
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for i, sol in zip(optimal, solved, strict=True):
        if isinstance(sol, InvalidDesign):
            raise ProblemError(sol.message, field=sol.field)
        found[i, "optimal"] = {
            "loss": float(sol.final_loss),
            "status": sol.status,
            "iterations": int(sol.iterations),
            "solution": sol,
            "wall_time": sol.wall_time,
        }
    for (i, kind), res in zip(tuning, tuned, strict=True):
        found[i, kind] = res
    return [{kind: found[i, kind] for kind in kinds} for i, (_, kinds) in enumerate(jobs)]


def _refine(ns: np.ndarray, losses: np.ndarray) -> tuple[float, float, bool]:
    """Parabola in (log N, log L) through the discrete minimum and its neighbours.

    Returns ``(N*, L*, interior)``; at an end of the grid the discrete minimum.
    """
    order = np.argsort(ns)
    x, y = np.log(ns[order]), np.log(losses[order])
    i = int(np.argmin(y))
    if i == 0 or i == x.size - 1:
        return float(np.exp(x[i])), float(np.exp(y[i])), False
    xs, ys = x[i - 1 : i + 2], y[i - 1 : i + 2]
    c2, c1, c0 = np.polyfit(xs, ys, 2)
    if c2 <= 0:
        return float(np.exp(x[i])), float(np.exp(y[i])), True
    x_star = float(np.clip(-c1 / (2.0 * c2), xs[0], xs[-1]))
    y_star = float(np.polyval([c2, c1, c0], x_star))
    return float(np.exp(x_star)), float(np.exp(y_star)), True


@dataclass(frozen=True, eq=False)
class ScalingStudy:
    """The compute-optimal frontier of each schedule, the fits and the predictions.

    Attributes:
        problem: the spec's problem (exponents, noise, batch size, grid).
        computes: the computes :math:`C` (modes x steps x batch size).
        points: every evaluated point, ``{compute, n_modes, horizon, residual,
            learning_rate_max, results: {schedule: {loss, status, wall_time, ...}}}``.
        frontiers: per schedule, one row per compute: ``{compute, n_modes, horizon,
            loss, interior, discrete_n_modes, discrete_loss}``.
        fits: per schedule, ``{model_size, horizon, loss}`` power-law fits in ``C``.
        settings: the scan's settings.
        wall_time: seconds per schedule kind and in total.
    """

    problem: Problem
    computes: tuple[float, ...]
    schedules: tuple[str, ...]
    points: tuple[dict[str, Any], ...]
    frontiers: Mapping[str, list[dict[str, Any]]]
    fits: Mapping[str, dict[str, PowerLawFit | None]]
    settings: Mapping[str, Any] = field(default_factory=dict)
    wall_time: Mapping[str, float] = field(default_factory=dict)

    @property
    def phase(self) -> str:
        return phase(self.problem.model)

    def predicted(self) -> dict[str, dict[str, float | None]]:
        return frontier_predictions(self.problem.model.a, self.problem.model.b)

    def measured(self) -> dict[str, dict[str, float | None]]:
        """Fitted exponents (signed, as in ``C^p``), ``None`` where a fit was impossible."""
        return {
            kind: {q: (None if f is None else f.exponent) for q, f in fits.items()}
            for kind, fits in self.fits.items()
        }

    def multipliers(self) -> dict[str, list[dict[str, Any]]]:
        """Per baseline: compute it needs to match the optimal frontier's loss, over C (module docstring)."""
        if "optimal" not in self.frontiers:
            return {}
        out = {}
        for kind in self.schedules:
            if kind == "optimal":
                continue
            rows = [r for r in self.frontiers[kind] if np.isfinite(r["loss"])]
            fit = self.fits[kind].get("loss")
            if len(rows) < 2:
                continue
            c = np.log([r["compute"] for r in rows])
            loss = np.log([r["loss"] for r in rows])
            order = np.argsort(loss)
            entries = []
            for target in self.frontiers["optimal"]:
                lt = math.log(target["loss"])
                inside = loss.min() <= lt <= loss.max()
                if inside:
                    needed = float(np.exp(np.interp(lt, loss[order], c[order])))
                elif fit is not None and fit.exponent < 0:
                    needed = float((target["loss"] / fit.prefactor) ** (1.0 / fit.exponent))
                else:
                    needed = float("nan")
                entries.append(
                    {
                        "compute": target["compute"],
                        "loss": target["loss"],
                        "compute_needed": needed,
                        "multiplier": needed / target["compute"],
                        "extrapolated": not inside,
                    }
                )
            out[kind] = entries
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object of ``schedopt scaling``."""
        a, b = self.problem.model.a, self.problem.model.b
        return {
            "problem": self.problem.name,
            "phase": self.phase,
            "a": a,
            "b": b,
            "noise_variance": self.problem.model.noise_variance,
            "batch_size": self.problem.training.batch_size,
            "computes": list(self.computes),
            "schedules": list(self.schedules),
            "settings": dict(self.settings),
            "frontiers": {k: [dict(r) for r in rows] for k, rows in self.frontiers.items()},
            "fits": {
                k: {q: (None if f is None else f.to_dict()) for q, f in fits.items()}
                for k, fits in self.fits.items()
            },
            "measured": self.measured(),
            "predicted": {k: self.predicted()[k] for k in self.schedules},
            "prediction_sources": {k: PREDICTION_SOURCES[k] for k in self.schedules},
            "multipliers": self.multipliers(),
            "points": [_point_json(p) for p in self.points],
            "wall_time": dict(self.wall_time),
        }


def _point_json(point: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: val for k, val in point.items() if k != "results"}
    out["results"] = {
        kind: {k: val for k, val in res.items() if k != "solution"} for kind, res in point["results"].items()
    }
    return out


def _fit(x: Sequence[float], y: Sequence[float]) -> PowerLawFit | None:
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x_arr) & np.isfinite(y_arr) & (y_arr > 0)
    if keep.sum() < 2:
        return None
    return fit_power_law(x_arr[keep], y_arr[keep])


def _frontier_at(
    problem: Problem,
    compute: float,
    center: float,
    wall: dict[str, float],
    *,
    kinds: Sequence[str],
    points: int,
    spacing: float,
    blocks: int | None,
    max_extend: int,
    min_horizon: int,
    solver: str,
    options,
    backend,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], float]:
    """One compute: scan model sizes around ``center``, extend the scan past a minimum at an end,
    refine each schedule's minimum. Returns the scanned points (by size), each schedule's frontier
    row, and the optimal schedule's N* (the next compute's centre); solver time accrues in ``wall``.
    """
    m = problem.training.batch_size
    steps_modes = compute / m
    scanned: dict[int, dict[str, Any]] = {}

    def horizon_of(n: int, steps_modes: float = steps_modes) -> int:
        return round(steps_modes / n)

    def valid(n: int, horizon_of=horizon_of) -> bool:
        return n >= 1 and horizon_of(n) >= min_horizon

    def evaluate(requests: Mapping[int, Sequence[str]]) -> None:
        """Evaluate the schedules ``requests[n]`` at every model size ``n`` (one round, in parallel)."""
        jobs = []
        for n, needed in requests.items():
            T = horizon_of(n)
            p = scaling_problem(problem, n, T, blocks=blocks)
            point = scanned.get(n)
            if point is None:
                point = {
                    "compute": compute,
                    "n_modes": n,
                    "horizon": T,
                    "compute_actual": n * T * m,
                    "residual": p.model.residual,
                    "learning_rate_max": p.learning_rate.max,
                    "results": {},
                }
                scanned[n] = point
            todo = [k for k in needed if k not in point["results"]]
            if todo:
                jobs.append((n, p, todo))
        done = _evaluate_many(
            [(p, todo) for _, p, todo in jobs], solver=solver, options=options, backend=backend
        )
        for (n, _, _), res in zip(jobs, done, strict=True):
            for k, r in res.items():
                wall[k] += r["wall_time"]
            scanned[n]["results"].update(res)

    offsets = np.arange(points) - (points - 1) / 2.0
    grid = sorted({max(1, round(center * spacing**o)) for o in offsets})
    grid = [n for n in grid if valid(n)]
    if len(grid) < 3:
        raise ProblemError(
            f"compute {compute:g} is too small: fewer than 3 model sizes give a horizon of at "
            f"least {min_horizon} steps",
            field="compute",
        )
    evaluate(dict.fromkeys(grid, kinds))
    # extend the grid where a minimum sits at an end
    for _ in range(max_extend):
        moves: dict[int, list[str]] = {}
        for k in kinds:
            ns = sorted(n for n, pt in scanned.items() if k in pt["results"])
            losses = [scanned[n]["results"][k]["loss"] for n in ns]
            i = int(np.argmin(losses))
            if i == 0:
                new = min(ns[0] - 1, round(ns[0] / spacing))
            elif i == len(ns) - 1:
                new = max(ns[-1] + 1, round(ns[-1] * spacing))
            else:
                continue
            if valid(new):
                moves.setdefault(new, []).append(k)
        if not moves:
            break
        evaluate(moves)
    # refine each schedule's minimum
    best_n = None
    rows: dict[str, dict[str, Any]] = {}
    for k in kinds:
        ns = np.array(sorted(n for n, pt in scanned.items() if k in pt["results"]), dtype=float)
        losses = np.array([scanned[int(n)]["results"][k]["loss"] for n in ns])
        n_star, l_star, interior = _refine(ns, losses)
        j = int(np.argmin(losses))
        rows[k] = {
            "compute": compute,
            "n_modes": n_star,
            "horizon": steps_modes / n_star,
            "loss": l_star,
            "interior": interior,
            "discrete_n_modes": int(ns[j]),
            "discrete_loss": float(losses[j]),
            "scanned": int(ns.size),
        }
        if best_n is None or k == "optimal":
            best_n = n_star
    return [scanned[n] for n in sorted(scanned)], rows, best_n


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
    options: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    backend: Any = None,
) -> ScalingStudy:
    """Measure the compute-optimal frontier of each schedule (see module docstring).

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
        options: solver options (default :data:`DEFAULT_OPTIONS` for ``jax``).
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

    start_all = time.perf_counter()
    backend = LocalBackend() if backend is None else backend
    _check_problem(problem)
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
    if options is None and solver == "jax":
        options = DEFAULT_OPTIONS
    m = problem.training.batch_size
    a, b = problem.model.a, problem.model.b
    p_n = 1.0 / (max(a, b) + 1.0)

    all_points: list[dict[str, Any]] = []
    frontiers: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    wall: dict[str, float] = dict.fromkeys(kinds, 0.0)
    scan = {
        "kinds": kinds,
        "points": points,
        "spacing": spacing,
        "blocks": blocks,
        "max_extend": max_extend,
        "min_horizon": min_horizon,
        "solver": solver,
        "options": options,
        "backend": backend,
    }
    previous: tuple[float, float] | None = None  # (compute, N*) of the last compute
    for ci, compute in enumerate(comp):
        steps_modes = compute / m
        center = steps_modes**p_n if previous is None else previous[1] * (compute / previous[0]) ** p_n
        scanned, rows, best_n = _frontier_at(problem, compute, center, wall, **scan)
        for k in kinds:
            frontiers[k].append(rows[k])
        previous = (compute, best_n)
        all_points.extend(scanned)
        if progress is not None:
            progress(ci + 1, len(comp))

    fits: dict[str, dict[str, PowerLawFit | None]] = {}
    for k, rows in frontiers.items():
        use = [r for r in rows if r["interior"]]
        c = [r["compute"] for r in use]
        fits[k] = {
            "model_size": _fit(c, [r["n_modes"] for r in use]),
            "horizon": _fit(c, [r["horizon"] for r in use]),
            "loss": _fit(c, [r["loss"] for r in use]),
        }
    wall["total"] = time.perf_counter() - start_all
    settings = {
        "points": points,
        "spacing": spacing,
        "blocks": blocks if blocks is not None else problem.learning_rate.blocks,
        "grid": problem.learning_rate.grid,
        "max_extend": max_extend,
        "min_horizon": min_horizon,
        "solver": solver,
        "options": dict(options or {}),
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
