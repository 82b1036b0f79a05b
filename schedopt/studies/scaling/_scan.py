"""One compute of a scaling study: scan model sizes, extend past a minimum at an end, refine it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from schedopt._validate import MAX_HORIZON
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.studies.scaling._problem import scaling_problem
from schedopt.studies.scaling._start import mapped_start

#: ``(jobs, *, solver, options, backend) -> results``: evaluates ``(problem, kinds)`` jobs.
Evaluate = Callable[..., list[dict[str, Any]]]


@dataclass(frozen=True)
class ScanSettings:
    """How each compute is scanned (checked by :func:`~schedopt.studies.scaling.study_scaling`)."""

    kinds: tuple[str, ...]
    points: int
    spacing: float
    blocks: int | None
    max_extend: int
    min_horizon: int
    solver: str
    options: Any
    backend: Any


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


class _Scan:
    """The points scanned at one compute (by model size), evaluated a round at a time."""

    def __init__(
        self,
        problem: Problem,
        compute: float,
        settings: ScanSettings,
        evaluate: Evaluate,
        seed: dict[str, Any] | None = None,
    ):
        self.problem = problem
        self.compute = compute
        self.settings = settings
        self.evaluate_jobs = evaluate
        self.seed = seed  # the previous compute's optimal point (a start for ODE-engine solves)
        self.batch = problem.training.batch_size
        self.steps_modes = compute / self.batch
        self.points: dict[int, dict[str, Any]] = {}

    def horizon_of(self, n: int) -> int:
        return round(self.steps_modes / n)

    def valid(self, n: int) -> bool:
        """A model size whose horizon is at least ``min_horizon`` and at most :data:`MAX_HORIZON`."""
        return n >= 1 and self.settings.min_horizon <= self.horizon_of(n) <= MAX_HORIZON

    def _smallest_within_cap(self) -> int:
        """The smallest model size whose horizon is at most :data:`MAX_HORIZON`."""
        n = max(1, int(self.steps_modes // (MAX_HORIZON + 0.5)))
        while self.horizon_of(n) > MAX_HORIZON:
            n += 1
        return n

    def _source(self, n: int) -> dict[str, Any] | None:
        """The solved point nearest ``n`` in log size at this compute, else the previous compute's optimum."""
        solved = [m for m, pt in self.points.items() if "solution" in pt["results"].get("optimal", {})]
        if solved:
            return self.points[min(solved, key=lambda m: (abs(np.log(m / n)), m))]
        return self.seed

    def _point(self, n: int, p: Problem) -> dict[str, Any]:
        """The record of model size ``n`` (made on first use)."""
        point = self.points.get(n)
        if point is None:
            T = self.horizon_of(n)
            point = {
                "compute": self.compute,
                "n_modes": n,
                "horizon": T,
                "compute_actual": n * T * self.batch,
                "residual": p.model.residual,
                "learning_rate_max": p.learning_rate.max,
                "results": {},
            }
            self.points[n] = point
        return point

    def evaluate(self, requests: Mapping[int, Sequence[str]], wall: dict[str, float]) -> None:
        """Evaluate the schedules ``requests[n]`` at every model size ``n`` (one round, in parallel)."""
        s = self.settings
        jobs, starts, sources = [], [], []
        for n, needed in requests.items():
            p = scaling_problem(self.problem, n, self.horizon_of(n), blocks=s.blocks)
            point = self._point(n, p)
            todo = [k for k in needed if k not in point["results"]]
            if todo:
                jobs.append((n, p, todo))
                source = self._source(n) if "optimal" in todo else None
                starts.append(mapped_start(p, source, s.solver, s.options))
                sources.append(source)
        done = self.evaluate_jobs(
            [(p, todo) for _, p, todo in jobs],
            solver=s.solver,
            options=s.options,
            backend=s.backend,
            initial=starts,
        )
        for (n, _, _), res, start, source in zip(jobs, done, starts, sources, strict=True):
            for k, r in res.items():
                wall[k] += r["wall_time"]
            if start is not None:
                res["optimal"]["start"] = (
                    f"mapped in t/T from N = {source['n_modes']}, C = {source['compute']:g}"
                )
            self.points[n]["results"].update(res)

    def initial_grid(self, center: float) -> list[int]:
        """``points`` model sizes around ``center``, ratio ``spacing``, each with a long enough horizon."""
        s = self.settings
        offsets = np.arange(s.points) - (s.points - 1) / 2.0
        candidates = sorted({max(1, round(center * s.spacing**o)) for o in offsets})
        grid = [n for n in candidates if self.valid(n)]
        if any(self.horizon_of(n) > MAX_HORIZON for n in candidates):
            # horizons above MAX_HORIZON are not scanned: the smallest model within it takes
            # their place, and larger ones while fewer than 3 remain
            n = self._smallest_within_cap()
            grid = sorted({n, *grid}) if self.valid(n) else grid
            n = grid[-1] if grid else n
            while grid and len(grid) < 3:
                n = max(n + 1, round(n * s.spacing))
                if not self.valid(n):
                    break
                grid.append(n)
        if len(grid) < 3:
            raise ProblemError(
                f"compute {self.compute:g} has fewer than 3 model sizes with a horizon of at least "
                f"{s.min_horizon} and at most {MAX_HORIZON} steps",
                field="compute",
            )
        return grid

    def _sizes_and_losses(self, kind: str) -> tuple[list[int], list[float]]:
        ns = sorted(n for n, pt in self.points.items() if kind in pt["results"])
        return ns, [self.points[n]["results"][kind]["loss"] for n in ns]

    def extensions(self) -> dict[int, list[str]]:
        """The next model size of each schedule whose minimum sits at an end of its scan."""
        spacing = self.settings.spacing
        moves: dict[int, list[str]] = {}
        for k in self.settings.kinds:
            ns, losses = self._sizes_and_losses(k)
            i = int(np.argmin(losses))
            if i == 0:
                new = min(ns[0] - 1, round(ns[0] / spacing))
                if new >= 1 and self.horizon_of(new) > MAX_HORIZON:  # the smallest model within it
                    new = self._smallest_within_cap()
                    new = new if new < ns[0] else 0
            elif i == len(ns) - 1:
                new = max(ns[-1] + 1, round(ns[-1] * spacing))
            else:
                continue
            if self.valid(new):
                moves.setdefault(new, []).append(k)
        return moves

    def frontier_row(self, kind: str) -> dict[str, Any]:
        """The schedule's refined minimum at this compute."""
        ns_list, loss_list = self._sizes_and_losses(kind)
        ns, losses = np.array(ns_list, dtype=float), np.array(loss_list)
        n_star, l_star, interior = _refine(ns, losses)
        j = int(np.argmin(losses))
        return {
            "compute": self.compute,
            "n_modes": n_star,
            "horizon": self.steps_modes / n_star,
            "loss": l_star,
            "interior": interior,
            "discrete_n_modes": int(ns[j]),
            "discrete_loss": float(losses[j]),
            "scanned": int(ns.size),
            "bound": None if interior else self._bound(ns_list, j),
        }

    def _bound(self, ns: list[int], j: int) -> str:
        """Why the scan stopped with its minimum at an end: the next size's horizon, or ``max_extend``."""
        spacing = self.settings.spacing
        if j == 0:
            nxt = ns[0] - 1
            if nxt >= 1 and self.horizon_of(nxt) > MAX_HORIZON:
                return f"max_horizon: a smaller model needs more than {MAX_HORIZON} steps"
        else:
            nxt = max(ns[-1] + 1, round(ns[-1] * spacing))
            if self.horizon_of(nxt) < self.settings.min_horizon:
                return f"min_horizon: a larger model gets fewer than {self.settings.min_horizon} steps"
        return f"max_extend: {self.settings.max_extend} extensions"


def _frontier_at(
    problem: Problem,
    compute: float,
    center: float,
    wall: dict[str, float],
    settings: ScanSettings,
    evaluate: Evaluate,
    seed: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], float]:
    """One compute: scan model sizes around ``center``, extend the scan past a minimum at an end,
    refine each schedule's minimum. Returns the scanned points (by size), each schedule's frontier
    row, and the optimal schedule's N* (the next compute's centre); solver time accrues in ``wall``.
    ``seed``: the previous compute's best optimal point (:func:`mapped_start`).
    """
    scan = _Scan(problem, compute, settings, evaluate, seed)
    scan.evaluate(dict.fromkeys(scan.initial_grid(center), settings.kinds), wall)
    for _ in range(settings.max_extend):
        moves = scan.extensions()
        if not moves:
            break
        scan.evaluate(moves, wall)
    rows = {k: scan.frontier_row(k) for k in settings.kinds}
    best = rows["optimal"] if "optimal" in rows else rows[settings.kinds[0]]
    return [scan.points[n] for n in sorted(scan.points)], rows, best["n_modes"]
