"""The plateau–anneal form: how a schedule is designed for a network fitted from real runs.

A free-form optimum of a fitted model is a poor schedule for the network it was
fitted to. On every real task measured (``benchmarks/realtasks.py``, and the tiny
GPT before it) the free-form design lost to WSD run at the design's own peak:
the fitted model lets the learning rate sag through the middle of the run (its
noise and null-mode penalties grow with time spent at a high rate), where the
network would rather keep it up, and a model fitted to every run of a task's
sweep put a high rate just after the warmup that destabilised the network on one
seed. Those are extrapolations: no pilot ran such shapes.

So for a fitted problem the design keeps the shape the hard phase's optimum has
(``docs``: a plateau of order one, then an anneal; it is also the shape every
pilot ran) and lets the model choose what it was fitted to tell: the plateau's
height and the anneal's profile, one control block per stretch of a geometric
grid that is finest at the end. The anneal spans the pilots' fraction of the
horizon (``ANNEAL_FRACTIONS``: a fifth): longer anneals let the sag back in
(measured: with 0.2–0.5 allowed the model took 0.5 and spent it as a second,
lower plateau), and in the hard phase the optimal anneal fraction only shrinks
as the horizon grows past the pilots'.

Every candidate is an exact optimal-control solve of the fitted problem on the
restricted control grid; the best by the model's own final loss is returned with
the table of all candidates.

**The anneal's profile** (``anneal``). A model-shaped anneal (``"model"``) is the
optimum of the fitted model, and on real networks that is where the model is
weakest: its noise relaxes within about a hundred updates of a drop, the
networks' anneal gains accrue over the whole cooldown. Measured on the three
real tasks with three fitted-model variants (``benchmarks/realtasks.py``), the
model-shaped anneal lost to WSD's 1-sqrt cooldown run at the
same peak in 8 of 9 cases, by 0.005–0.022 nats. So for a network (``"auto"``
on a fitted spec) the anneal keeps the profile its pilots ran, ``"1-sqrt"``
over the anneal fraction, and the model chooses the plateau for that profile:
the one-dimensional minimum of its final loss at ``peak_horizon``, carried by
the phase rule. For a model problem (no ``[network]`` map) the model is the
system, and ``"auto"`` solves the anneal (``"model"``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from schedopt.controls import block_edges
from schedopt.errors import ProblemError
from schedopt.problem import Problem

__all__ = [
    "ANNEALS",
    "ANNEAL_BLOCKS",
    "ANNEAL_FRACTIONS",
    "PLATEAU_TOLERANCE",
    "FormChoice",
    "check_anneal",
    "check_plateau_tolerance",
    "plateau_anneal",
    "plateau_anneal_problem",
    "transferred_plateau",
]

ANNEAL_FRACTIONS = (0.2,)
"""Anneal lengths tried, as fractions of the horizon (the pilots of ``schedopt pilots`` anneal over 0.2)."""

ANNEAL_BLOCKS = 24
"""Control blocks of the anneal (geometric, finest at the end); the plateau is one block."""

ANNEALS = ("auto", "model", "1-sqrt")
"""Anneal profiles: solved on the model, or WSD's 1-sqrt; ``auto``: 1-sqrt for a fitted network, else model."""

#: log-spaced plateau levels over three decades below the cap, before the bounded refinement
_PLATEAU_GRID = 31

PLATEAU_TOLERANCE = 0.003
"""Default relative tolerance of the 1-sqrt plateau's choice (:func:`sqrt_plateau`).

Below the fitted models' own errors (0.4-0.9 % RMS on the real tasks), the model cannot rank
plateaus: where its final loss is flat near the cap it took the cap, 1.3-1.4x above the tuned
peak on two of five real tasks. Measured with new runs on all five (``benchmarks/README.md``):
the design minus tuned WSD summed +0.044 nats with the minimum, +0.009 with this tolerance.
"""

#: levels an octave of the fine grid a plateau tolerance is read on
_TOLERANCE_LEVELS = 16


def check_anneal(anneal: str) -> str:
    """``anneal`` if it is one of :data:`ANNEALS`; else a :class:`ProblemError` naming ``--anneal``."""
    if anneal not in ANNEALS:
        raise ProblemError(f"`--anneal` must be one of {', '.join(ANNEALS)}, got {anneal!r}", field="anneal")
    return anneal


def check_plateau_tolerance(tolerance: float) -> float:
    """``tolerance`` if it is a number in [0, 0.1]; else a :class:`ProblemError` naming ``--plateau-tolerance``."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0.0 <= tolerance <= 0.1:
        raise ProblemError(
            f"`--plateau-tolerance` must be a number in [0, 0.1], got {tolerance!r}",
            field="plateau_tolerance",
        )
    return float(tolerance)


def plateau_anneal_edges(
    horizon: int, anneal_fraction: float, blocks: int = ANNEAL_BLOCKS
) -> tuple[int, ...]:
    """Block edges: one plateau block ``[0, s)`` then ``blocks`` anneal blocks up to the horizon."""
    if not 0.0 < anneal_fraction < 1.0:
        raise ProblemError(
            f"anneal fraction must be in (0, 1), got {anneal_fraction!r}", field="anneal_fraction"
        )
    tail = int(round(anneal_fraction * horizon))
    if tail < 1 or tail >= horizon:
        raise ProblemError(
            f"anneal fraction {anneal_fraction:g} of horizon {horizon} leaves no plateau or no anneal",
            field="anneal_fraction",
        )
    blocks = min(blocks, tail)
    start = horizon - tail
    anneal = block_edges(tail, blocks, "geometric-end") + start
    return (0, *(int(e) for e in anneal))


def plateau_anneal_problem(problem: Problem, anneal_fraction: float, blocks: int = ANNEAL_BLOCKS) -> Problem:
    """The problem with its learning rate restricted to a constant plateau and a free anneal."""
    edges = plateau_anneal_edges(problem.horizon, anneal_fraction, blocks)
    return problem.with_control(
        "learning_rate", grid="custom", edges=edges, blocks=len(edges) - 1, parameterisation="constant"
    )


@dataclass(frozen=True, eq=False)
class FormChoice:
    """The plateau–anneal design and how it was chosen.

    Attributes:
        solution: the chosen solve. With a pinned plateau it is the solve of the
            anneal only (the steps after ``prefix``), from the state the plateau leaves.
        anneal_fraction: the chosen anneal length, as a fraction of the horizon.
        candidates: ``(anneal fraction, final model loss, status)`` of every solve.
        prefix: the pinned plateau's learning rates (model units), or ``None``.
        peak_horizon: the horizon the plateau height was chosen at, or ``None``.
        anneal: the anneal's profile, ``"model"`` (solved) or ``"1-sqrt"``.
        plateau_tolerance: the relative tolerance the 1-sqrt plateau was chosen with (:func:`sqrt_plateau`).
        offset_hedge: for a fitted spec with a refit whose offset is free, both fits' plateaus (network units)
            and which the design took (:mod:`schedopt.design._plateau`), else ``None``.
    """

    solution: object  # schedopt.solution.Solution
    anneal_fraction: float
    candidates: tuple[tuple[float, float, str], ...]
    prefix: np.ndarray | None = None
    peak_horizon: int | None = None
    notes: tuple[str, ...] = ()
    anneal: str = "model"
    plateau_tolerance: float = 0.0
    offset_hedge: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.offset_hedge is not None:
            object.__setattr__(self, "offset_hedge", MappingProxyType(dict(self.offset_hedge)))

    @property
    def plateau(self) -> float:
        """The plateau's learning rate (model units)."""
        if self.prefix is not None:
            return float(self.prefix[0])
        return float(np.asarray(self.solution.per_step("learning_rate"))[0])

    def to_dict(self) -> dict:
        return {
            "form": "plateau-anneal",
            "anneal_fraction": self.anneal_fraction,
            "anneal": self.anneal,
            "plateau_tolerance": self.plateau_tolerance,
            "plateau_model_learning_rate": self.plateau,
            "plateau_chosen_at_horizon": self.peak_horizon,
            "offset_hedge": None if self.offset_hedge is None else dict(self.offset_hedge),
            "notes": list(self.notes),
            "candidates": [
                {"anneal_fraction": f, "final_loss": loss if np.isfinite(loss) else None, "status": status}
                for f, loss, status in self.candidates
            ],
        }


def _after_plateau(problem: Problem, level: float, steps: int, blocks: int) -> Problem:
    """The anneal's problem: the steps after ``steps`` updates at ``level``, from the state they leave."""
    from schedopt.design import problem_after_prefix

    anneal = problem.with_control(
        "learning_rate",
        max=level,
        blocks=min(blocks, problem.horizon - steps),
        grid="geometric-end",
        parameterisation="constant",
    )
    return problem_after_prefix(anneal, np.full(steps, level))


def transferred_plateau(problem: Problem, level: float, peak_horizon: int) -> float:
    r"""A plateau chosen at ``peak_horizon`` carried to the problem's horizon by the phase rule.

    The optimal peak scales as :math:`T^{-\xi}` with :math:`\xi = 1 - b/a` in the easy
    phase and :math:`\xi = 0` in the hard phase (``docs``, §4), capped at the problem's
    learning-rate cap.
    """
    from schedopt.theory import estimate_exponents, predicted_exponents

    a, b = estimate_exponents(problem.model)
    xi = predicted_exponents(a, b)["xi"] or 0.0
    return float(min(level * (problem.horizon / peak_horizon) ** (-xi), problem.learning_rate.max))


def plateau_anneal(
    problem: Problem,
    *,
    fractions: Sequence[float] = ANNEAL_FRACTIONS,
    blocks: int = ANNEAL_BLOCKS,
    solver: str = "jax",
    options: Mapping[str, Any] | None = None,
    peak_horizon: int | None = None,
    anneal: str = "auto",
    elapsed: int = 0,
    plateau_tolerance: float | None = None,
    plateau_level: float | None = None,
) -> FormChoice:
    """Solve the problem in the plateau–anneal form for each anneal fraction; keep the best.

    With ``peak_horizon`` shorter than the horizon (a fitted spec's: its longest
    pilot), the plateau's height is the form's optimum at ``peak_horizon``, where the
    model was fitted, carried to the horizon by the phase rule
    (:func:`transferred_plateau`) and pinned; the model then shapes the anneal only.
    A fitted model extrapolated in time misplaces the peak more than it misplaces the
    anneal (``benchmarks/README.md``).

    With ``anneal="1-sqrt"`` (``"auto"`` on a fitted spec) nothing is left to solve
    after the plateau: the plateau is the model's best for a 1-sqrt anneal over each
    fraction (:func:`sqrt_plateau`), and the result is that fixed schedule, evaluated
    by the exact recursion (solver ``"fixed"``).

    ``plateau_tolerance`` (1-sqrt anneals; ``None``: :data:`PLATEAU_TOLERANCE`): see
    :func:`sqrt_plateau`. ``plateau_level`` (1-sqrt anneals): a plateau already chosen (model
    units, at the problem's horizon), kept as it is.

    ``elapsed``: steps the run has already taken before the problem starts (a warmup
    ramp); the anneal fractions are of the whole run, ``elapsed`` steps included, so
    that the anneal is as long as a WSD baseline's over the same run.

    Never raises on non-convergence: when no candidate converged, the one with the
    lowest loss is returned with its status.

    Raises:
        ProblemError: no fraction fits the horizon, or the problem designs more than the learning rate.
    """
    from schedopt.solvers import solve

    extra = [name for name in problem.controls if name != "learning_rate"]
    if extra:
        raise ProblemError(
            f"the plateau-anneal form designs the learning rate only; the spec also designs {extra[0]}",
            field="form",
        )
    if check_anneal(anneal) == "auto":
        anneal = "1-sqrt" if problem.network is not None else "model"
    if anneal == "1-sqrt":
        tolerance = (
            PLATEAU_TOLERANCE if plateau_tolerance is None else check_plateau_tolerance(plateau_tolerance)
        )
        return _sqrt_form(problem, fractions, peak_horizon, elapsed, tolerance, plateau_level)
    level = None
    if peak_horizon is not None and peak_horizon < problem.horizon:
        short = plateau_anneal(
            problem.at_horizon(int(peak_horizon)),
            fractions=fractions,
            blocks=blocks,
            solver=solver,
            options=options,
            anneal=anneal,
            elapsed=elapsed,
        )
        level = transferred_plateau(problem, short.plateau, int(peak_horizon))
    candidates, solutions, prefixes = [], [], []
    for fraction in fractions:
        local = _of_problem(float(fraction), problem.horizon, elapsed)
        if level is None:
            restricted, prefix = plateau_anneal_problem(problem, local, blocks), None
        else:
            start = plateau_anneal_edges(problem.horizon, local, blocks)[1]  # the plateau's end
            restricted, prefix = _after_plateau(problem, level, start, blocks), np.full(start, level)
        solution = solve(restricted, solver=solver, throw=False, options=options)
        loss = float(solution.final_loss)
        candidates.append((float(fraction), loss, str(solution.status)))
        solutions.append(solution)
        prefixes.append(prefix)
    pinned_at = None if level is None else int(peak_horizon)
    choice = _best_choice(problem, candidates, solutions, prefixes, pinned_at, "model")
    return (
        choice
        if level is None
        else _chosen_at_cap(choice, problem, problem.at_horizon(pinned_at), short.plateau)
    )


def _chosen_at_cap(choice: FormChoice, problem: Problem, chosen_at: Problem, level: float) -> FormChoice:
    """``choice`` with the cap note when its plateau ``level`` was chosen at the cap of ``chosen_at`` (the pilots'
    horizon), the choice itself having none: the phase rule (easy phase) carries such a plateau below the cap at a
    longer horizon, where :func:`_cap_notes`' own test of the plateau does not see it."""
    cap = chosen_at.learning_rate.max
    if choice.notes or level < cap * (1 - 1e-6):
        return choice
    return dataclasses.replace(choice, notes=_cap_notes(problem, cap))


def _best_choice(problem, candidates, solutions, prefixes, peak_horizon, anneal) -> FormChoice:
    """The converged candidate with the lowest loss (if none converged, the lowest), with its notes."""
    losses = [c[1] if np.isfinite(c[1]) else np.inf for c in candidates]
    converged = [i for i, s in enumerate(solutions) if s.converged and np.isfinite(losses[i])]
    best = min(converged, key=losses.__getitem__) if converged else int(np.argmin(losses))
    choice = FormChoice(
        solution=solutions[best],
        anneal_fraction=candidates[best][0],
        candidates=tuple(candidates),
        prefix=prefixes[best],
        peak_horizon=peak_horizon,
        anneal=anneal,
    )
    return dataclasses.replace(choice, notes=_cap_notes(problem, choice.plateau))


def _sqrt_shape(horizon: int, fraction: float) -> np.ndarray:
    """WSD's 1-sqrt profile (peak 1) over the last ``fraction`` of ``horizon`` steps, per step."""
    from schedopt.baselines import baseline_schedule

    return baseline_schedule("wsd_sqrt", {"peak": 1.0, "cooldown_fraction": fraction}, horizon)


def _profiled(problem: Problem, level: float, shape: np.ndarray) -> np.ndarray:
    """Per-step model learning rates of a plateau ``level`` (model units) times a profile.

    The profile is the network's: for a fitted network the map between the units is
    a power law, so ``level * shape`` in model units would be another profile there.
    """
    units = problem.network
    if units is None:
        return level * shape
    network = float(units.network_learning_rate(level)) * shape
    return np.asarray(units.model_learning_rate(network), dtype=np.float64)


def _anneal_loss(problem: Problem, fraction: float):
    """The model's final loss of a plateau ``level`` (model units) then a 1-sqrt anneal over ``fraction``,
    as a function of the level; ``inf`` where the run diverges."""
    from schedopt.dynamics.recursion import final_loss

    shape = _sqrt_shape(problem.horizon, fraction)
    batch = problem.training.batch_size

    def loss(level: float) -> float:
        value = float(final_loss(problem.model, _profiled(problem, level, shape), batch_size=batch))
        return value if math.isfinite(value) else math.inf

    return loss


def _compared(problem: Problem, losses: np.ndarray) -> np.ndarray:
    """Model final losses in the units plateaus are compared in: the network's for a fitted spec (its
    offset included: a fraction of the loss the network shows), else the model's; ``inf`` stays ``inf``."""
    if problem.network is None:
        return losses
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(losses), problem.network.network_loss(losses), np.inf)


def _flat_rate_response(problem: Problem) -> bool:
    """Whether ``problem`` is a fitted spec whose fit found no learning-rate response
    (:func:`~schedopt.calibration._model.flat_rate_response`): the model cannot rank plateaus."""
    from schedopt.calibration._model import flat_rate_response

    units = problem.network
    return units is not None and flat_rate_response(units.learning_rate_exponent)


def sqrt_plateau(problem: Problem, fraction: float, tolerance: float = 0.0) -> float:
    """The plateau (model units, at most the cap) whose 1-sqrt anneal over ``fraction`` ends lowest.

    The model's final loss over the plateau level: a log grid over three decades
    below the cap, then a bounded scalar minimisation between the best point's
    neighbours. A level whose run diverges scores as infinite.

    With ``tolerance > 0`` the model is not asked to rank levels whose final losses (the
    network's, for a fitted spec) differ by less than that fraction: on a grid of
    :data:`_TOLERANCE_LEVELS` levels an octave, the plateau is the geometric centre of the
    contiguous levels within ``tolerance`` of the minimum (:func:`_indifferent_centre`).

    A fitted spec whose fit found no response to the learning rate
    (:func:`~schedopt.calibration._model.flat_rate_response`) cannot rank levels: its plateau is the
    cap, which ``schedopt fit`` then sets to the longest pilot's rate. One whose top pilot was still well
    ahead (``top_pilot_ahead``) puts it no lower than that pilot's rate (within the cap): :func:`_ahead_floor`.
    """
    cap = float(problem.learning_rate.max)
    if _flat_rate_response(problem):
        return cap
    return max(_model_plateau(problem, fraction, tolerance), _ahead_floor(problem))


def _ahead_floor(problem: Problem) -> float:
    """The model rate of a fitted spec's ``top_pilot_ahead`` (at most the cap), else 0.

    Where the top pilot was still more than 5 % ahead of the next lower one at their peak and the pilots do
    not bracket the best peak from above, the network's loss still falls steeply at the top of the pilots'
    range, so a plateau below it contradicts what they show. On the cached pilot sets of the real tasks
    where that held (21), the best WSD peak was at or above the top rate on all but two, where it was that
    rate or a run above the tuning grid beat it (``benchmarks/top_ahead.py``).
    """
    units = problem.network
    if units is None or not units.top_pilot_ahead:
        return 0.0
    return min(float(units.model_learning_rate(units.top_pilot_ahead)), float(problem.learning_rate.max))


def _model_plateau(problem: Problem, fraction: float, tolerance: float) -> float:
    """:func:`sqrt_plateau`'s choice from the model's final losses alone."""
    import scipy.optimize

    cap = float(problem.learning_rate.max)
    of_level = _anneal_loss(problem, fraction)

    def loss(log_level: float) -> float:
        return of_level(math.exp(log_level))

    if tolerance > 0:
        return _indifferent_centre(problem, loss, cap, tolerance)
    grid = math.log(cap) + np.linspace(math.log(1e-3), 0.0, _PLATEAU_GRID)
    values = np.array([loss(g) for g in grid])
    best = int(np.argmin(values))
    if best == grid.size - 1 or not math.isfinite(values[best]):
        return cap
    low, high = grid[max(best - 1, 0)], grid[best + 1]
    refined = scipy.optimize.minimize_scalar(
        loss, bounds=(low, high), method="bounded", options={"xatol": 1e-4}
    )
    return float(math.exp(refined.x if refined.fun <= values[best] else grid[best]))


def _indifferent_centre(problem: Problem, loss, cap: float, tolerance: float) -> float:
    """Geometric centre of the plateau levels whose final loss is within ``tolerance`` of the best.

    Losses are compared as :func:`_compared` gives them. Levels run from the cap down
    three decades, :data:`_TOLERANCE_LEVELS` an octave; the interval is the contiguous run of
    levels around the minimum (a diverging level scores as infinite and ends it).
    """
    levels = math.log(cap) - math.log(2.0) * np.arange(0, 10 * _TOLERANCE_LEVELS + 1) / _TOLERANCE_LEVELS
    values = _compared(problem, np.array([loss(g) for g in levels]))
    best = int(np.argmin(values))
    if not math.isfinite(values[best]):
        return cap
    near = values <= values[best] * (1.0 + tolerance)
    high = low = best  # levels fall with the index: ``high`` is the larger rate
    while high > 0 and near[high - 1]:
        high -= 1
    while low < levels.size - 1 and near[low + 1]:
        low += 1
    return float(min(math.exp(0.5 * (levels[high] + levels[low])), cap))


def _sqrt_solution(
    problem: Problem, level: float, fraction: float, pin: bool
) -> tuple[object, np.ndarray | None]:
    """The fixed plateau-then-1-sqrt schedule as a solution, one control block per step.

    ``pin``: the plateau is a fixed prefix (returned) and the solution covers the steps
    after it, as a plateau carried from another horizon is; otherwise the solution
    covers every step and no prefix is returned.
    """
    from schedopt.controls import grid_for
    from schedopt.design import problem_after_prefix
    from schedopt.dynamics.recursion import final_loss
    from schedopt.solution import Solution
    from schedopt.status import Status

    values = _profiled(problem, level, _sqrt_shape(problem.horizon, fraction))
    start = plateau_anneal_edges(problem.horizon, fraction)[1] if pin else 0
    tail = problem.horizon - start
    after = problem
    if pin:
        head = problem.with_control(
            "learning_rate", max=level, blocks=min(problem.learning_rate.blocks, tail), grid="uniform"
        )
        after = problem_after_prefix(head, values[:start])
    after = after.with_control(
        "learning_rate", grid="custom", edges=tuple(range(tail + 1)), blocks=tail, parameterisation="constant"
    )
    anneal = values[start:]
    loss = float(final_loss(after.model, anneal, batch_size=after.training.batch_size))
    solution = Solution(
        problem=after,
        solver="fixed",
        status=Status.CONVERGED if math.isfinite(loss) else Status.DIVERGED,
        final_loss=loss,
        parameters={"learning_rate": anneal},
        grids={"learning_rate": grid_for(after.learning_rate, tail)},
        message=f"a 1-sqrt anneal over the last {fraction:.0%} of the steps from a plateau the model chose",
        info={"anneal": "1-sqrt"},
    )
    return solution, values[:start] if pin else None


def _of_problem(fraction: float, horizon: int, elapsed: int) -> float:
    """A fraction of the whole run (``elapsed`` steps, then ``horizon``) as a fraction of ``horizon``."""
    return fraction * (horizon + elapsed) / horizon


def _sqrt_form(
    problem: Problem,
    fractions: Sequence[float],
    peak_horizon: int | None,
    elapsed: int,
    tolerance: float,
    level_given: float | None = None,
) -> FormChoice:
    """The plateau-anneal form with 1-sqrt anneals: per fraction, the model's best plateau; the best fraction."""
    short = peak_horizon is not None and peak_horizon < problem.horizon
    candidates, solutions, prefixes, chosen = [], [], [], []
    for fraction in fractions:
        fraction = float(fraction)
        local = _of_problem(fraction, problem.horizon, elapsed)
        plateau_anneal_edges(problem.horizon, local)  # validates the fraction against the horizon
        if level_given is not None:  # a plateau already chosen (design's second pass, after its ramp)
            level = float(min(level_given, problem.learning_rate.max))
        elif short:
            at_peak = problem.at_horizon(int(peak_horizon))
            at_peak_fraction = _of_problem(fraction, at_peak.horizon, elapsed)
            level = sqrt_plateau(at_peak, at_peak_fraction, tolerance)
            chosen.append((at_peak, at_peak_fraction, level))
            level = transferred_plateau(problem, level, int(peak_horizon))
        else:
            level = sqrt_plateau(problem, local, tolerance)
            chosen.append((problem, local, level))
        solution, prefix = _sqrt_solution(problem, level, local, pin=short)
        candidates.append((fraction, float(solution.final_loss), str(solution.status)))
        solutions.append(solution)
        prefixes.append(prefix)
    pinned_at = int(peak_horizon) if short else None
    choice = _best_choice(problem, candidates, solutions, prefixes, pinned_at, "1-sqrt")
    if chosen and not choice.notes:
        where, local, level = chosen[[c[0] for c in candidates].index(choice.anneal_fraction)]
        choice = _chosen_at_cap(choice, problem, where, level)
        if not choice.notes and tolerance > 0 and _cap_within_tolerance(where, local, level, tolerance):
            choice = dataclasses.replace(choice, notes=_cap_notes(problem, None, tolerance))
    return dataclasses.replace(choice, plateau_tolerance=tolerance)


def _cap_within_tolerance(problem: Problem, fraction: float, level: float, tolerance: float) -> bool:
    """Whether the model scores a plateau at the cap within ``tolerance`` of ``level``'s final loss.

    Compared as :func:`_indifferent_centre` compares levels (:func:`_compared`): then the levels
    the model cannot tell apart reach the cap, and the centre it takes is below the cap
    only because the pilots stopped there.
    """
    cap = float(problem.learning_rate.max)
    if level >= cap * (1 - 1e-6):
        return False  # at the cap: the plain note says so
    loss = _anneal_loss(problem, fraction)
    at_cap, at_level = _compared(problem, np.array([loss(cap), loss(level)]))
    return bool(math.isfinite(at_level) and at_cap <= at_level * (1.0 + tolerance))


def _cap_notes(problem: Problem, plateau: float | None, tolerance: float = 0.0) -> tuple[str, ...]:
    """A plateau at the learning-rate cap says the best peak may lie above it: say so, in the units read.

    ``plateau=None``: the plateau is below the cap, but the model scores the cap within the plateau
    ``tolerance`` of it (:func:`_cap_within_tolerance`): the same doubt, said as such.
    """
    cap = problem.learning_rate.max
    if plateau is not None and plateau < cap * (1 - 1e-6):
        return ()
    units = problem.network
    if _flat_rate_response(problem):
        network = float(units.network_learning_rate(cap))
        return (
            f"the plateau is the learning-rate cap, {network:.4g}: the fit found no response of the loss to the "
            "learning rate (its exponent sits at the lower bound), so the model cannot rank plateaus and the cap "
            "is the longest pilot's rate; read the design as WSD at that rate",
        )
    where = (
        "the plateau sits at the learning-rate cap"
        if plateau is not None
        else f"the model scores a plateau at the learning-rate cap within {tolerance:.2%} of the one chosen"
    )
    if units is None:
        return (f"{where} ({cap:.4g}): the best peak may be higher",)
    network = float(units.network_learning_rate(cap))
    # the reference is the largest fitted pilot's rate, unless kappa was given (then p = 1 and reference 1)
    largest = units.learning_rate_reference
    fitted_map = units.learning_rate_exponent != 1.0 or largest != 1.0
    if fitted_map and network < largest * (1 - 1e-6):  # fit lowered the cap below the largest pilot's rate
        return (
            f"{where}, {network:.4g}, below the largest pilot's {largest:.4g}: fit lowered the cap (a pilot whose "
            "loss spiked, seeds that disagree at a rate, a top pilot that ended behind a longer one, or --lr-cap; the "
            "fitted spec's notes say which), so the "
            "pilots above it are no evidence that a higher plateau is safe",
        )
    bracket = units.bracketed_above
    # the pilot the note would ask for (twice the cap), or a lower one, ran and did no better than a lower rate
    if bracket and bracket <= 2 * network * (1 + 1e-6):
        return (
            f"{where}, the largest pilot's {network:.4g}; the pilot at {bracket:.4g} ended no lower than a pilot of "
            "its schedule at a lower rate: the pilots bracket the best peak from above (it does not rise as the horizon "
            f"grows, so it is at most {bracket:.4g} here), and a pilot above would not tell more",
        )
    if units.top_pilot_ahead and plateau is not None and units.top_pilot_ahead >= network * (1 - 1e-6):
        where += " (fit found the top pilot still well ahead of the next, so the plateau is not put below it)"
    return (
        f"{where}, the largest pilot's {network:.4g}: the pilots do not bracket the best peak from "
        f"above, and none ran that high for long; a pilot at {2 * network:.4g} would tell (`schedopt pilots` "
        "with the same options and --above one higher than before writes it, where a last pilot --first-logs "
        "traded is --above 1; add --twin where a stall would be costly)",
    )
