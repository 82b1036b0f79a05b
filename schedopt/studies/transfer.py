r"""Transfer a designed schedule to another horizon using the phase (THEORY §4, LR-transfer row).

A schedule designed at horizon :math:`T` is mapped to :math:`T_2` without solving
again. The source is read as a continuous-time learning rate :math:`u(t)` on
:math:`[0, T]` (the solver's block parameterisation when a :class:`Solution` is
given; linear interpolation between step midpoints for a per-step
:class:`Schedule`); target step :math:`j` takes
:math:`\eta_j = g\, u(\varphi(j + \tfrac12))` for a time map :math:`\varphi:[0,T_2]\to[0,T]`
and a factor :math:`g`:

* **easy phase** (:math:`a > b`): :math:`\varphi(t) = t\,T/T_2` (the shape is kept in
  :math:`t/T`) and :math:`g = (T_2/T)^{-\xi}`, :math:`\xi = 1 - b/a`: the optimal
  learning rate at fixed :math:`t/T` scales as :math:`T^{-\xi}`.
* **hard phase** (:math:`b > a`): :math:`g = 1` (the plateau is :math:`O(1)` in
  :math:`T`) and the anneal is rescaled: its fraction of the horizon :math:`f`
  follows :math:`f \propto T^{-(b-a)/(b-1)}`, so
  :math:`f_2 = f\,(T_2/T)^{-(b-a)/(b-1)}`. :math:`\varphi` is piecewise linear: the
  warm-up and plateau :math:`[0, (1-f_2)T_2]` map onto :math:`[0, (1-f)T]` and the
  anneal :math:`[(1-f_2)T_2, T_2]` onto :math:`[(1-f)T, T]`. The anneal starts where
  the learning rate last stands at :data:`ANNEAL_LEVEL` of its plateau (median
  over 10–50 % of the horizon; :func:`schedopt.theory.anneal_fraction`).
  :math:`f_2` is capped at :data:`ANNEAL_MAX` (only reachable when shrinking the horizon).
* **boundary** (:math:`a = b`): both rules reduce to the same map, since
  :math:`\xi = 0` and :math:`(b-a)/(b-1) = 0`: the schedule is stretched in
  :math:`t/T` with unchanged values. This is the documented choice at the boundary
  (the theory predicts only slow, logarithmic corrections there).

``rule="stretch"`` is the naive baseline in every phase: :math:`\varphi(t) = tT/T_2`,
:math:`g = 1`.

Values above the problem's learning-rate cap (possible when the easy-phase factor
is above 1, i.e. :math:`T_2 < T`) are set to the cap; the count of such steps is
recorded in the schedule's provenance and logged as a warning. Batch-size and
momentum schedules, if present, are stretched in :math:`t/T`.

:func:`transfer_report` measures the transferred schedule's final loss at
:math:`T_2` against the schedule re-optimised at :math:`T_2` and against the naive
stretch.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schedopt import _validate as v
from schedopt.controls import block_edges
from schedopt.dynamics.recursion import final_loss
from schedopt.errors import ProblemError
from schedopt.problem import GRID_KINDS, Problem
from schedopt.schedule import Schedule
from schedopt.solution import Solution
from schedopt.theory import anneal_fraction, estimate_exponents, phase

__all__ = [
    "ANNEAL_LEVEL",
    "ANNEAL_MAX",
    "TRANSFER_RULES",
    "TransferReport",
    "problem_from_schedule",
    "transfer_report",
    "transfer_schedule",
]

logger = logging.getLogger(__name__)

#: ``phase`` uses the phase's rule; ``stretch`` keeps values and shape in t/T (naive).
TRANSFER_RULES = ("phase", "stretch")
#: The hard-phase anneal starts where the learning rate last stands at this fraction of its plateau.
ANNEAL_LEVEL = 0.9
#: Largest anneal fraction a hard-phase transfer produces.
ANNEAL_MAX = 0.9


# --- problems at other horizons


def _grid_from_provenance(problem: Problem, described: Any, horizon: int) -> Problem:
    """Set the learning-rate grid to the one recorded in a schedule's provenance."""
    if not isinstance(described, Mapping) or "edges" not in described:
        return problem
    spec = problem.learning_rate
    try:
        edges = tuple(int(e) for e in described["edges"])
        parameterisation = str(described.get("parameterisation", spec.parameterisation))
    except (TypeError, ValueError):
        raise ProblemError(
            "`provenance.grids.learning_rate.edges` must be a list of integers", field="provenance.grids"
        ) from None
    blocks = len(edges) - 1
    for kind in (spec.grid, *GRID_KINDS):
        if kind == "custom" or blocks < 1 or blocks > horizon:
            continue
        if tuple(block_edges(horizon, blocks, kind).tolist()) == edges:
            return problem.with_control(
                "learning_rate", grid=kind, blocks=blocks, edges=None, parameterisation=parameterisation
            )
    return problem.with_control(
        "learning_rate", grid="custom", edges=edges, blocks=blocks, parameterisation=parameterisation
    )


def problem_from_schedule(schedule: Schedule) -> Problem:
    """Rebuild the problem a schedule was designed for, from the spec text in its provenance.

    The spec is parsed with :func:`schedopt.spec.parse_problem`; the horizon is the
    schedule's, and the learning-rate grid the one recorded in
    ``provenance.grids`` (so options such as ``schedopt design --blocks`` are kept).

    Args:
        schedule: a schedule written by ``schedopt design`` (or by :func:`transfer_schedule`).

    Raises:
        ProblemError: ``provenance.spec`` is missing (field ``provenance.spec``).
        SpecError: the spec text is invalid.
    """
    from schedopt.spec import parse_problem

    if not isinstance(schedule, Schedule):
        raise ProblemError(f"`schedule` must be a Schedule, got {type(schedule).__name__}", field="schedule")
    prov = schedule.provenance
    text = prov.get("spec")
    if not isinstance(text, str) or not text.strip():
        raise ProblemError(
            "`provenance.spec` is missing: the schedule does not carry the spec it was designed for "
            "(write it with `schedopt design`, or give the spec explicitly)",
            field="provenance.spec",
        )
    path = prov.get("spec_path")
    problem = parse_problem(text, path=path if isinstance(path, str) else None)
    problem = problem.at_horizon(schedule.horizon)
    grids = prov.get("grids")
    if isinstance(grids, Mapping):
        problem = _grid_from_provenance(problem, grids.get("learning_rate"), schedule.horizon)
    return problem


# --- the transfer itself


def _source_controls(source: Schedule | Solution) -> tuple[dict[str, Any], dict[str, Any]]:
    """Continuous-time controls ``u(t)`` on ``[0, T]`` by name, and facts about the source."""
    if isinstance(source, Solution):
        horizon = source.problem.horizon
        funcs = {}
        for name, grid in source.grids.items():
            funcs[name] = lambda t, g=grid, p=source.parameters[name]: g.evaluate(p, t)
        facts = {
            "horizon": horizon,
            "solver": source.solver,
            "status": source.status,
            "converged": source.converged,
            "final_loss": float(source.final_loss),
        }
        return funcs, facts
    if not isinstance(source, Schedule):
        raise ProblemError(
            f"`schedule` must be a Schedule or a Solution, got {type(source).__name__}", field="schedule"
        )
    horizon = source.horizon
    mid = np.arange(horizon, dtype=np.float64) + 0.5
    funcs = {name: (lambda t, y=values: np.interp(t, mid, y)) for name, values in source.controls().items()}
    prov = source.provenance
    facts = {
        "horizon": horizon,
        "solver": prov.get("solver"),
        "status": prov.get("status"),
        "converged": source.converged,
        "final_loss": prov.get("final_loss"),
        "created": prov.get("created"),
        "source": prov.get("source"),
        "spec_sha256": prov.get("spec_sha256"),
    }
    return funcs, facts


def _plan(
    problem: Problem, lr_source: np.ndarray, horizon: int, rule: str, anneal_exponent: float | None
) -> dict[str, Any]:
    """The time map and factor of a transfer, as JSON-ready facts."""
    source_horizon = lr_source.size
    ratio = horizon / source_horizon
    a, b = estimate_exponents(problem.model)
    kind = phase(problem.model)
    plan: dict[str, Any] = {
        "rule": rule,
        "phase": kind,
        "a": a,
        "b": b,
        "source_horizon": source_horizon,
        "horizon": horizon,
        "lr_factor": 1.0,
        "xi": None,
        "anneal_exponent": None,
        "anneal_fraction_source": None,
        "anneal_fraction": None,
        "knots": [[0.0, 0.0], [float(horizon), float(source_horizon)]],
    }
    if rule == "stretch" or kind == "boundary":
        return plan
    if kind == "easy":
        xi = 1.0 - b / a
        plan.update(xi=xi, lr_factor=float(ratio**-xi))
        return plan
    exponent = (b - a) / (b - 1.0) if anneal_exponent is None else anneal_exponent
    f1 = anneal_fraction(lr_source, level=ANNEAL_LEVEL)
    f2 = min(f1 * ratio**-exponent, max(f1, ANNEAL_MAX))
    plan.update(anneal_exponent=exponent, anneal_fraction_source=f1, anneal_fraction=f2)
    if 0.0 < f1 < 1.0:
        plan["knots"] = [
            [0.0, 0.0],
            [(1.0 - f2) * horizon, (1.0 - f1) * source_horizon],
            [float(horizon), float(source_horizon)],
        ]
    return plan


def _apply(funcs: Mapping[str, Any], plan: Mapping[str, Any], problem: Problem) -> tuple[dict, int]:
    knots = np.asarray(plan["knots"], dtype=np.float64)
    t_target = np.arange(plan["horizon"], dtype=np.float64) + 0.5
    t_source = np.interp(t_target, knots[:, 0], knots[:, 1])
    controls = {name: np.asarray(fn(t_source), dtype=np.float64) for name, fn in funcs.items()}
    lr = controls["learning_rate"] * plan["lr_factor"]
    cap = problem.learning_rate.max
    clipped = int(np.count_nonzero(lr > cap))
    if clipped:
        logger.warning(
            "transferred learning rate exceeds the cap %.6g at %d of %d steps; set to the cap",
            cap,
            clipped,
            lr.size,
        )
    controls["learning_rate"] = np.minimum(lr, cap)
    return controls, clipped


def _final_loss(problem: Problem, controls: Mapping[str, np.ndarray]) -> float:
    momentum = controls.get("momentum")
    if momentum is None and problem.training.momentum > 0:
        momentum = problem.training.momentum
    return float(
        final_loss(
            problem.model,
            controls["learning_rate"],
            batch_size=controls.get("batch_size", problem.training.batch_size),
            momentum=momentum,
        )
    )


def _provenance(problem: Problem, plan, facts, clipped: int, loss: float) -> dict[str, Any]:
    from schedopt import __version__

    source = problem.source
    return {
        "schedopt_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "problem": problem.name,
        "spec_path": source.path if source else None,
        "spec_sha256": source.sha256 if source else None,
        "spec": source.text if source else None,
        "solver": None,
        "status": "transferred",
        "converged": bool(facts.get("converged", True)),
        "final_loss": loss,
        "horizon": plan["horizon"],
        "fixed": {"batch_size": problem.training.batch_size, "momentum": problem.training.momentum},
        "transferred_from": {k: val for k, val in facts.items() if val is not None},
        "transfer": {**dict(plan), "clipped_steps": clipped},
        # a fitted problem's map: the files show the network's learning rate, as design's do
        **({"network": problem.network.to_dict()} if problem.network is not None else {}),
    }


def transfer_schedule(
    schedule_or_solution: Schedule | Solution,
    problem: Problem,
    horizon: int,
    *,
    rule: str = "phase",
    anneal_exponent: float | None = None,
    source_label: str | None = None,
) -> Schedule:
    """Map a schedule designed at horizon ``T`` to ``horizon`` by the phase's rule (module docstring).

    Args:
        schedule_or_solution: the designed schedule (a :class:`Schedule`, e.g. read
            with :func:`schedopt.load_schedule`) or a :class:`Solution`.
        problem: the problem the schedule was designed for (any horizon: its model,
            fixed batch size and learning-rate cap are used).
        horizon: the new horizon ``T2`` (steps).
        rule: ``"phase"`` or ``"stretch"`` (naive: shape in ``t/T``, same values).
        anneal_exponent: hard phase: the exponent :math:`e` of the anneal fraction
            :math:`f \\propto T^{-e}`; default THEORY's :math:`(b-a)/(b-1)`. At horizons
            up to ~1e4 the measured fraction falls more slowly (about T^-0.2).
        source_label: where the source came from (e.g. its file), recorded in provenance.

    Returns:
        The schedule at ``T2``; its provenance holds the spec text, the final loss at
        ``T2``, ``transferred_from`` (the source's horizon, solver, status, loss) and
        ``transfer`` (phase, factor, anneal fractions, time-map knots, clipped steps).

    Raises:
        ProblemError: non-positive ``horizon`` (field ``horizon``), unknown ``rule``,
            or a source that is neither a Schedule nor a Solution.
    """
    horizon = v.positive_int("horizon", horizon)
    v.one_of("rule", rule, TRANSFER_RULES)
    if anneal_exponent is not None:
        anneal_exponent = v.nonnegative("anneal_exponent", anneal_exponent)
    if not isinstance(problem, Problem):
        raise ProblemError(f"`problem` must be a Problem, got {type(problem).__name__}", field="problem")
    funcs, facts = _source_controls(schedule_or_solution)
    if source_label is not None:
        facts["path"] = str(source_label)
    source_horizon = facts["horizon"]
    mid = np.arange(source_horizon, dtype=np.float64) + 0.5
    plan = _plan(problem, np.asarray(funcs["learning_rate"](mid)), horizon, rule, anneal_exponent)
    target = problem.at_horizon(horizon)
    controls, clipped = _apply(funcs, plan, target)
    loss = _final_loss(target, controls)
    return Schedule(provenance=_provenance(target, plan, facts, clipped, loss), **controls)


@dataclass(frozen=True, eq=False)
class TransferReport:
    """A transferred schedule, the naive stretch and the re-optimised schedule at the new horizon.

    Attributes:
        problem: the problem at the new horizon.
        source_horizon: the horizon the schedule was designed for.
        transferred: the schedule transferred by the phase's rule.
        stretch: the naive time-stretch (same values, shape in ``t/T``).
        reoptimised: the solution of ``problem`` at the new horizon (``None`` if skipped).
        source_loss: final loss of the source schedule at its own horizon.
    """

    problem: Problem
    source_horizon: int
    transferred: Schedule
    stretch: Schedule
    reoptimised: Solution | None
    source_loss: float
    info: Mapping[str, Any] = field(default_factory=dict)
    warmed: Schedule | None = None

    @property
    def written(self) -> Schedule:
        """The schedule to write: the transferred one, with its warmup ramp when one was asked for."""
        return self.transferred if self.warmed is None else self.warmed

    @property
    def horizon(self) -> int:
        return self.problem.horizon

    def losses(self) -> dict[str, float | None]:
        """Final losses at the new horizon: transferred, stretch, re-optimised."""
        return {
            "transferred": float(self.transferred.provenance["final_loss"]),
            "stretch": float(self.stretch.provenance["final_loss"]),
            "reoptimised": None if self.reoptimised is None else float(self.reoptimised.final_loss),
        }

    def gaps(self) -> dict[str, float | None]:
        r"""Relative loss gaps to the re-optimised schedule, :math:`L/L_{\rm opt} - 1`."""
        losses = self.losses()
        best = losses["reoptimised"]
        if best is None:
            return {"transferred": None, "stretch": None}
        return {k: losses[k] / best - 1.0 for k in ("transferred", "stretch")}

    def _network_losses(self) -> dict[str, float | None] | None:
        """A fitted problem's losses in the network's units (``None`` without a ``[network]`` map)."""
        units = self.problem.network
        if units is None:
            return None
        shown = {"source": self.source_loss, **self.losses()}
        if self.warmed is not None:
            shown["warmup"] = self.info["warmup"]["final_loss"]
        return {k: None if v is None else float(units.network_loss(v)) for k, v in shown.items()}

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object of ``schedopt transfer``."""
        reopt = self.reoptimised
        losses = self.losses()
        return {
            "problem": self.problem.name,
            "phase": self.transferred.provenance["transfer"]["phase"],
            "source_horizon": self.source_horizon,
            "horizon": self.horizon,
            "source_loss": self.source_loss,
            "transfer": dict(self.transferred.provenance["transfer"]),
            "losses": losses,
            "gaps": self.gaps(),
            "stretch_over_transferred": losses["stretch"] / losses["transferred"],
            "network_losses": self._network_losses(),
            "reoptimised": None
            if reopt is None
            else {
                "solver": reopt.solver,
                "status": reopt.status,
                "converged": reopt.converged,
                "iterations": reopt.iterations,
                "wall_time": reopt.wall_time,
                "grid": reopt.grids["learning_rate"].describe(),
            },
            **dict(self.info),
        }


def transfer_report(
    schedule_or_solution: Schedule | Solution,
    problem: Problem,
    horizon: int,
    *,
    reoptimise: bool = True,
    solver: str = "jax",
    options: Mapping[str, Any] | None = None,
    anneal_exponent: float | None = None,
    source_label: str | None = None,
    warmup: int = 0,
    warmup_shape: str = "linear",
) -> TransferReport:
    """Transfer a schedule to ``horizon`` and measure it against re-optimising there and the naive stretch.

    Args:
        schedule_or_solution: the designed schedule or solution at its horizon ``T``.
        problem: the problem it was designed for.
        horizon: the new horizon ``T2``.
        reoptimise: solve ``problem`` at ``T2`` (its own grid and bounds) for the gap.
        solver, options: passed to :func:`schedopt.solvers.solve`.
        anneal_exponent: passed to :func:`transfer_schedule`.
        source_label: where the source came from, recorded in the schedules' provenance.
        warmup, warmup_shape: lay a warmup ramp of that many steps on the transferred schedule
            (:func:`schedopt.schedule.with_warmup`); its final loss and gap go in the report's
            ``warmup`` entry and :attr:`TransferReport.written` is the ramped schedule.
    """
    from schedopt.solvers import solve

    transferred = transfer_schedule(
        schedule_or_solution, problem, horizon, anneal_exponent=anneal_exponent, source_label=source_label
    )
    stretch = transfer_schedule(
        schedule_or_solution, problem, horizon, rule="stretch", source_label=source_label
    )
    funcs, facts = _source_controls(schedule_or_solution)
    source_problem = problem.at_horizon(facts["horizon"])
    mid = np.arange(facts["horizon"], dtype=np.float64) + 0.5
    source_loss = _final_loss(source_problem, {k: np.asarray(f(mid)) for k, f in funcs.items()})
    target = problem.at_horizon(horizon)
    reopt = solve(target, solver=solver, throw=False, options=options) if reoptimise else None
    info: dict[str, Any] = {}
    warmed = None
    if warmup:
        warmed, info["warmup"] = _warmed(transferred, target, warmup, warmup_shape, reopt)
    return TransferReport(
        problem=target,
        source_horizon=facts["horizon"],
        transferred=transferred,
        stretch=stretch,
        reoptimised=reopt,
        source_loss=source_loss,
        info=info,
        warmed=warmed,
    )


def _warmed(
    transferred: Schedule, problem: Problem, steps: int, shape: str, reopt: Solution | None
) -> tuple[Schedule, dict[str, Any]]:
    """The transferred schedule with a warmup ramp, and its final loss and gap to the re-optimised one."""
    from schedopt.compare import model_learning_rate
    from schedopt.schedule import with_warmup

    warmed = with_warmup(transferred, steps, shape=shape)
    controls = {**warmed.controls(), "learning_rate": model_learning_rate(warmed, problem)}
    loss = _final_loss(problem, controls)
    best = None if reopt is None else float(reopt.final_loss)
    gap = None if best is None else loss / best - 1.0
    return warmed, {"steps": steps, "shape": shape, "final_loss": loss, "gap": gap}
