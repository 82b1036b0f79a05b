"""Design a schedule end to end: solve, tune the baselines on the same engine, report, write files.

This is what ``schedopt design`` runs; the CLI only parses options and prints.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schedopt._io import atomic_write_text, json_text, output_set
from schedopt.dynamics.compression import auto_compress
from schedopt.dynamics.recursion import checkpoint_steps, loss_at
from schedopt.errors import ProblemError, SolverError
from schedopt.problem import Problem
from schedopt.schedule import save_schedule, schedule_from_solution
from schedopt.solution import Solution
from schedopt.solvers import solve
from schedopt.theory import estimate_exponents, phase, predicted_exponents

__all__ = [
    "DESIGN_FILES",
    "FORMS",
    "Design",
    "Warmup",
    "design",
    "problem_after_prefix",
    "problem_after_warmup",
    "write_design",
]

FORMS = ("auto", "free", "plateau-anneal")
"""Shapes a design may take (:func:`design`'s ``form``)."""


@dataclass(frozen=True, eq=False)
class Warmup:
    """A fixed warmup prefix of a design: ``learning_rate`` (model units) at steps ``0..steps-1``.

    ``problem`` is the full problem (horizon ``T``); the design's solution is of the
    steps after the ramp, from the state the ramp leaves (:func:`problem_after_warmup`).
    The prefix may end with the design's pinned plateau (the plateau-anneal form): only
    its first ``ramp_steps`` steps (the warmup ramp) precede the baselines too.
    """

    steps: int
    shape: str
    peak: float  # the ramp's end, in the units a person reads (the network's for a fitted spec)
    learning_rate: np.ndarray
    problem: Problem
    ramp_steps: int | None = None  # the warmup ramp's steps, shared with the baselines (None: all)

    @property
    def shared(self) -> np.ndarray:
        """The part of the prefix every schedule compared starts with: the warmup ramp."""
        return self.learning_rate if self.ramp_steps is None else self.learning_rate[: self.ramp_steps]

    def to_dict(self) -> dict[str, Any]:
        units = "network" if self.problem.network is not None else "model"
        ramp = self.steps if self.ramp_steps is None else self.ramp_steps
        return {
            "steps": self.steps,
            "shape": self.shape,
            "peak": self.peak,
            "peak_units": units,
            "ramp_steps": ramp,
        }


def problem_after_warmup(problem: Problem, steps: int, shape: str = "linear") -> tuple[Problem, Warmup]:
    r"""The problem of the steps after a fixed warmup ramp, and the ramp.

    The ramp goes to the learning-rate cap (``controls.learning_rate.max``; for a fitted
    spec the ramp is linear in the network's learning rate). It runs from the model's
    initial state with the fixed batch size; the per-mode errors :math:`c_k(W)` it
    leaves are the initial errors of a problem with horizon ``T - W``. Its optimum is
    the best schedule for those steps given the ramp, and its final loss is the full
    run's (the dynamics are Markov in :math:`c`). Designed batch sizes, momentum and
    sample budgets are refused (their state or budget would span the ramp).
    """
    from schedopt.schedule._warmup import check_warmup, warmup_values

    steps = check_warmup(steps, problem.horizon, shape=shape, field="--warmup")
    for name in ("batch_size", "momentum"):
        if name in problem.controls:
            raise ProblemError(f"`--warmup` with a designed {name} is not supported", field="warmup")
    if problem.training.momentum > 0:
        raise ProblemError(
            "`--warmup` with momentum (training.momentum > 0) is not supported", field="warmup"
        )
    if problem.sample_budget is not None:
        raise ProblemError("`--warmup` with a sample budget is not supported", field="warmup")
    if steps > problem.horizon - problem.learning_rate.blocks:
        raise ProblemError(
            f"`--warmup` {steps} leaves fewer steps than the {problem.learning_rate.blocks} control blocks",
            field="warmup",
        )
    cap = problem.learning_rate.max
    units = problem.network
    peak = float(cap if units is None else units.network_learning_rate(cap))
    ramp = warmup_values(steps, peak, shape)
    if units is not None:
        ramp = np.minimum(units.model_learning_rate(ramp), cap)
    return problem_after_prefix(problem, ramp), Warmup(steps, shape, peak, ramp, problem)


def problem_after_prefix(problem: Problem, learning_rate: np.ndarray) -> Problem:
    """The problem of the steps after a fixed prefix of learning rates (model units), from the state it leaves.

    The prefix runs from the model's initial state at the fixed batch size; the per-mode
    errors it leaves are the initial errors of a problem with the remaining horizon (the
    dynamics are Markov in :math:`c`, so that problem's final loss is the full run's).
    """
    from schedopt.dynamics.ops import NUMPY
    from schedopt.dynamics.sgd import sgd_step

    model = problem.model
    c = np.array(model.initial_error, dtype=np.float64)
    batch = float(problem.training.batch_size)
    for lr in learning_rate:
        c = sgd_step(c, float(lr), batch, model.eigenvalues, model.effective_noise, NUMPY)
    return problem.with_horizon(problem.horizon - len(learning_rate)).replace(
        model=dataclasses.replace(model, initial_error=np.maximum(c, 0.0))
    )


@dataclass(frozen=True, eq=False)
class Design:
    """An optimal schedule with its tuned baselines.

    Attributes:
        solution: the optimal-control solution.
        baselines: tuned baseline schedules by name (``TunedBaseline`` records).
        phase: ``easy``, ``hard`` or ``boundary``.
        exponents: ``(a, b)`` (fitted for custom spectra).
        files: paths written by :func:`write_design`, by kind.
    """

    solution: Solution
    baselines: Mapping[str, Any]
    phase: str
    exponents: tuple[float, float]
    files: Mapping[str, str] = field(default_factory=dict)
    warmup: Warmup | None = None
    form: Mapping[str, Any] = field(default_factory=lambda: {"form": "free"})

    @property
    def problem(self) -> Problem:
        """The problem as given (with a warmup: the full horizon, not the steps after it)."""
        return self.solution.problem if self.warmup is None else self.warmup.problem

    def schedule(self):
        """The designed :class:`~schedopt.schedule.Schedule` of the full horizon (warmup included)."""
        from schedopt.schedule._warmup import prepend_warmup

        schedule = schedule_from_solution(self.solution)
        if self.warmup is None:
            return schedule
        w = self.warmup
        return prepend_warmup(schedule, w.learning_rate, shape=w.shape, peak=w.peak)

    @property
    def notes(self) -> tuple[str, ...]:
        """Notes on the problem as solved: the stability threshold, when the learning-rate cap is at
        or above it (the solver's; else the baselines', at their batch size and momentum), and a
        baseline the model ranks below a plateau-anneal design (:meth:`_ranking_note`)."""
        found = [self.solution.info.get("stability_note"), *(tb.note for tb in self.baselines.values())]
        return tuple(note for note in found if note)[:1] + self._ranking_note()

    def _ranking_note(self) -> tuple[str, ...]:
        """A plateau chosen at the pilots' horizon that the model ranks below a baseline tuned at ``T``."""
        if self.form.get("plateau_chosen_at_horizon") is None or not self.baselines:
            return ()
        name, best = min(((n, tb.final_loss) for n, tb in self.baselines.items()), key=lambda item: item[1])
        if not best < self.solution.final_loss * (1.0 - RANKING_NOTE_RTOL):
            return ()
        gap = 1.0 - best / self.solution.final_loss
        return (
            f"the model ranks {name} {gap:.1%} (model loss) below the design at T = {self.problem.horizon}: "
            "the design keeps the plateau-anneal form (plateau chosen where the pilots ran and carried by "
            f"the phase rule, {self.form.get('anneal')} anneal over the last "
            f"{self.form.get('anneal_fraction', 0):.0%}), which measured better on real networks than the "
            "model's own choices past its pilots, where its extrapolation is least reliable "
            "(docs/calibration.md)",
        )

    def to_dict(self) -> dict[str, Any]:
        """The stable ``--json`` object of ``schedopt design`` (documented in README)."""
        sol = self.solution
        best = sol.final_loss
        a, b = self.exponents
        return {
            "problem": self.problem.name,
            "phase": self.phase,
            "a": a,
            "b": b,
            "horizon": self.problem.horizon,
            "n_modes": self.problem.model.n_modes,
            "batch_size": self.problem.training.batch_size,
            "sample_budget": self.problem.sample_budget,
            "controls": sorted(self.problem.controls),
            "baseline_batch_size": _baseline_batch_size(self.problem),
            "noise_variance": self.problem.model.noise_variance,
            "loss_floor": self.problem.model.residual,
            "solver": sol.solver,
            "status": sol.status,
            "converged": sol.converged,
            "iterations": sol.iterations,
            "wall_time": sol.wall_time,
            "final_loss": best,
            "grid": {n: g.describe() for n, g in sol.grids.items()},
            "degeneracy": _degeneracy_summary(sol),
            "baselines": {
                name: {
                    "final_loss": tb.final_loss,
                    "ratio": tb.final_loss / best if best > 0 else float("inf"),
                    "params": dict(tb.params),
                    "status": tb.status,
                }
                for name, tb in self.baselines.items()
            },
            "predictions": predicted_exponents(a, b),
            "notes": list(self.notes),
            "warmup": None if self.warmup is None else self.warmup.to_dict(),
            "form": dict(self.form),
            "network": self._network_summary(),
            "files": dict(self.files),
        }

    def _network_summary(self) -> dict[str, Any] | None:
        """For a fitted spec: peak learning rates and final losses in the network's units."""
        units = self.problem.network
        if units is None:
            return None
        lr = self.schedule().learning_rate
        return {
            **units.to_dict(),
            "peak_learning_rate": float(units.network_learning_rate(lr.max())),
            "final_learning_rate": float(units.network_learning_rate(lr[-1])),
            "final_loss": float(units.network_loss(self.solution.final_loss)),
            "baselines": {
                name: {
                    "final_loss": float(units.network_loss(tb.final_loss)),
                    "peak_learning_rate": float(units.network_learning_rate(np.max(tb.learning_rate))),
                }
                for name, tb in self.baselines.items()
            },
        }


def _baseline_batch_size(problem: Problem) -> float:
    """The batch size the baselines run at: ``D / T`` under a sample budget, else the fixed one."""
    if problem.sample_budget is not None:
        return float(problem.sample_budget) / problem.horizon
    return float(problem.training.batch_size)


def _degeneracy_summary(solution: Solution) -> dict[str, Any] | None:
    """Flatness of a sample-budget optimum and whether the tie-break was applied (``None`` otherwise)."""
    report = solution.info.get("degeneracy")
    if not report:
        return None
    tie = report.get("tie_break")
    return {
        "flat_direction": report["flat_direction"],
        "flatness": report["flatness"],
        "degenerate": report["degenerate"],
        "steps_at_cap": report["steps_at_cap"],
        "tie_break_applied": bool(tie.get("applied")) if isinstance(tie, dict) else False,
    }


def design(
    problem: Problem,
    *,
    solver: str = "jax",
    baselines: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    warmup: int = 0,
    warmup_shape: str = "linear",
    form: str = "auto",
    peak_horizon: int | None = None,
    anneal: str = "auto",
) -> Design:
    """Solve ``problem`` and tune the baselines; never raises on non-convergence (see status).

    Args:
        baselines: names of baseline families to tune (default: all); ``()`` for none.
        progress: called with a one-line message as each stage starts and ends.
        warmup: steps of a fixed warmup ramp at the start of the horizon (0: none). The
            solver optimises the steps after it, and the baselines are tuned after the
            same ramp, so every schedule compared shares it (:func:`problem_after_warmup`).
        warmup_shape: ``linear`` or ``cosine``.
        peak_horizon: with the plateau-anneal form, the horizon at which the plateau's
            height is chosen (a fitted spec's own horizon: its longest pilot), then carried
            to the horizon by the phase rule (:func:`schedopt.calibration.form.plateau_anneal`).
        form: ``free`` (any schedule the control grid allows), ``plateau-anneal``
            (:mod:`schedopt.calibration.form`: a constant plateau, then an anneal the
            model shapes), or ``auto``: plateau-anneal for a spec fitted to a real
            network (it has a ``[network]`` map), free otherwise.
        anneal: with the plateau-anneal form, ``model`` (solved), ``1-sqrt`` (WSD's
            cooldown from the plateau the model chooses) or ``auto`` (1-sqrt for a fitted
            network, model otherwise; :mod:`schedopt.calibration.form`).
    """
    from schedopt.baselines import tune_baselines

    if form not in FORMS:
        raise ProblemError(f"`--form` must be one of {', '.join(FORMS)}, got {form!r}", field="form")
    if form == "auto":
        form = "plateau-anneal" if problem.network is not None else "free"
    from schedopt.calibration.form import check_anneal

    if check_anneal(anneal) not in ("auto", "model") and form != "plateau-anneal":
        raise ProblemError(
            f"`--anneal {anneal}` needs the plateau-anneal form, got --form {form}", field="anneal"
        )

    ramp = None
    if warmup:
        problem, ramp = problem_after_warmup(problem, warmup, warmup_shape)
    say = progress or (lambda message: None)
    start = time.perf_counter()
    say(f"solving with {solver} (T = {problem.horizon}, N = {problem.model.n_modes}) ...")
    choice = None
    if form == "plateau-anneal":
        from schedopt.calibration.form import plateau_anneal

        shift = 0 if ramp is None else ramp.steps
        short = None if peak_horizon is None else max(int(peak_horizon) - shift, 1)
        kwargs = {
            "solver": solver,
            "options": options,
            "peak_horizon": short,
            "anneal": anneal,
            "elapsed": shift,
        }
        choice = plateau_anneal(problem, **kwargs)
        if ramp is not None and choice.plateau < problem.learning_rate.max * (1 - 1e-9):
            # the ramp went to the cap; it must end at the plateau: lower the cap to it and solve again
            notes = choice.notes  # of the plateau against the cap as given
            lowered = ramp.problem.with_control("learning_rate", max=choice.plateau)
            problem, ramp = problem_after_warmup(lowered, warmup, warmup_shape)
            choice = dataclasses.replace(plateau_anneal(problem, **kwargs), notes=notes)
        solution = choice.solution
        say(
            f"plateau-anneal form: {choice.anneal} anneal over the last {choice.anneal_fraction:.0%} of the steps"
        )
        if choice.prefix is not None:  # a pinned plateau: a fixed prefix, like the warmup ramp
            ramp = _fixed_prefix(problem, ramp, choice.prefix)
    else:
        solution = solve(problem, solver=solver, throw=False, options=options)
    say(f"solved: {solution.status} after {solution.iterations} iterations, {solution.wall_time:.1f} s")
    tuned = tune_baselines(problem, names=baselines, progress=progress) if baselines != () else {}
    if tuned:
        say(f"done in {time.perf_counter() - start:.1f} s")
    full = problem if ramp is None else ramp.problem
    return Design(
        solution=solution,
        baselines=tuned,
        phase=phase(full.model),
        exponents=estimate_exponents(full.model),
        warmup=ramp,
        form=choice.to_dict() if choice is not None else {"form": "free"},
    )


def _fixed_prefix(problem: Problem, ramp: Warmup | None, plateau: np.ndarray) -> Warmup:
    """The warmup ramp (if any) and a pinned plateau as one fixed prefix of the design."""
    full = problem if ramp is None else ramp.problem
    head = np.zeros(0) if ramp is None else ramp.learning_rate
    level = float(plateau[0])
    units = full.network
    peak = level if units is None else float(units.network_learning_rate(level))
    shape = "plateau" if ramp is None else f"{ramp.shape}+plateau"
    prefix = np.concatenate([head, plateau])
    return Warmup(int(prefix.size), shape, peak, prefix, full, ramp_steps=int(head.size))


#: A baseline the model ranks this much (relative model loss) below a plateau-anneal design is noted.
RANKING_NOTE_RTOL = 1e-3

DESIGN_FILES = ("schedule.json", "schedule.csv", "design.png", "design.json")
"""The files :func:`write_design` writes (``design.png`` only with ``plot=True``)."""


def write_design(
    result: Design, out_dir: str | Path, *, force: bool = False, plot: bool = True, overwrite: bool = True
) -> Design:
    """Write ``schedule.json``, ``schedule.csv``, ``design.json`` and ``design.png`` to ``out_dir``.

    A solve that did not converge is written only with ``force=True``; the files then
    say ``"converged": false``. The files are one transaction
    (:func:`schedopt._io.output_set`): all are written to a staging folder, then
    committed together, so an error, an interrupt or a concurrent run leaves the
    complete old set or the complete new one. ``overwrite=False`` refuses to replace
    an existing file of the set (``schedopt design`` without ``--force``).
    """
    sol = result.solution
    if not sol.converged and not force:
        raise SolverError(
            f"solver {sol.solver!r} stopped with status {sol.status!r}: {sol.message}; "
            "nothing written (use --force to write the unconverged schedule)"
        )
    out = Path(out_dir)
    names = {"schedule_json": "schedule.json", "schedule_csv": "schedule.csv"}
    if plot:
        names["plot"] = "design.png"
    names["report"] = "design.json"
    files = {kind: str(out / name) for kind, name in names.items()}
    written = dataclasses.replace(result, files=files)
    stale = () if plot else ("design.png",)  # a plot of an older design must not survive next to this one
    with output_set(out, names.values(), overwrite=overwrite, stale=stale) as stage:
        schedule = result.schedule()
        save_schedule(schedule, stage / names["schedule_json"])
        save_schedule(schedule, stage / names["schedule_csv"])
        if plot:
            _plot(result, str(stage / names["plot"]))
        atomic_write_text(stage / names["report"], json_text(written.to_dict()))
    return written


def _plot(result: Design, path: str) -> None:
    from schedopt.plots import require_matplotlib

    require_matplotlib("design.png (write_design(..., plot=False) writes the rest)")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from schedopt.plots import plot_loss_curves, plot_relative_losses, plot_schedules, robust_top, save_figure

    sol = result.solution
    problem = result.problem  # the full horizon (a warmup ramp is prepended to every schedule)
    head = np.zeros(0) if result.warmup is None else result.warmup.learning_rate
    ramp = np.zeros(0) if result.warmup is None else result.warmup.shared  # what the baselines start with

    def full(values, prefix=head):
        return np.concatenate([prefix, np.asarray(values, dtype=np.float64)])

    def per_step(name):
        values = sol.per_step(name)
        return np.concatenate([np.full(head.size, values[0]), values]) if head.size else values

    designed = result.form.get("form") == "plateau-anneal"  # a shape the model scores, not its optimum
    label = f"designed ({result.form.get('anneal')} anneal)" if designed else f"optimal ({sol.solver})"
    schedules = {label: full(sol.per_step("learning_rate"))}
    schedules.update({name: full(tb.learning_rate, ramp) for name, tb in result.baselines.items()})
    highlight = next(iter(schedules))
    # the optimum with its own batch / momentum schedules; baselines at their fixed values.
    # Losses at checkpoints only: O(N + checkpoints) memory at any horizon; on the compressed
    # spectrum of a large model, heavy ball too (~1e-12 relative, O(T n) work, not O(T N)).
    # log-spaced for the log-log panel, and 100 uniform over the second half for the relative one (a
    # cooldown of the last few percent of the run falls between log-spaced checkpoints)
    late = np.linspace(problem.horizon / 2, problem.horizon, 101).round().astype(np.int64)
    steps = np.unique(np.concatenate([checkpoint_steps(problem.horizon), late]))
    with_momentum = "momentum" in sol.parameters or problem.training.momentum > 0
    modes = auto_compress(problem.model.eigenvalues, problem.model.initial_error)
    batch = per_step("batch_size")
    if result.baselines and not with_momentum:
        # plain SGD throughout: the optimum and the baselines in one call (one program to trace)
        lr = np.stack([schedules[name] for name in (highlight, *result.baselines)])
        batch = np.stack(
            [batch, *[np.full_like(batch, _baseline_batch_size(problem))] * len(result.baselines)]
        )
        losses = loss_at(problem.model, lr, steps, batch_size=batch, modes=modes).loss
        curves = dict(zip([highlight, *result.baselines], losses, strict=True))
    else:
        momentum = per_step("momentum") if with_momentum else None
        optimum = loss_at(
            problem.model, schedules[highlight], steps, batch_size=batch, momentum=momentum, modes=modes
        )
        curves = {highlight: optimum.loss}
    if result.baselines and with_momentum:
        lr = np.stack([schedules[name] for name in result.baselines])
        momentum = problem.training.momentum if problem.training.momentum > 0 else None
        batch = _baseline_batch_size(problem)
        base = loss_at(problem.model, lr, steps, batch_size=batch, momentum=momentum, modes=modes).loss
        curves.update(zip(result.baselines, base, strict=True))
    final = sol.final_loss
    units = problem.network
    if units is not None:  # a fitted spec: the network's learning rates and losses
        schedules = {name: units.network_learning_rate(lr) for name, lr in schedules.items()}
        curves = {name: units.network_loss(np.asarray(loss)) for name, loss in curves.items()}
        final = float(units.network_loss(final))
    extra = [name for name in ("batch_size", "momentum") if name in sol.parameters]
    relative = len(curves) > 1
    panels = 2 + relative + len(extra)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), constrained_layout=True)
    ax1, ax2 = axes[0], axes[1]
    plot_schedules(schedules, ax=ax1, highlight=highlight)
    # the optimum sets the axis; a baseline's spike above it is clipped, not allowed to flatten it
    everything = np.concatenate([np.asarray(v, dtype=np.float64) for v in schedules.values()])
    top = robust_top(everything, floor=1.15 * float(np.max(schedules[highlight])))
    if top > 1e-300:  # below that matplotlib cannot tell 0 from top (a cap of 1e-320 is valid input)
        ax1.set_ylim(0.0, top)
    if np.max(everything) > top:
        ax1.annotate(
            "a baseline exceeds the axis (clipped)", (0.02, 0.95), xycoords="axes fraction", fontsize=7
        )
    plot_loss_curves(curves, ax=ax2, highlight=highlight, steps=steps)
    ax1.set_title(f"{problem.name}: learning rate ({result.phase} phase)")
    ax2.set_title(f"final loss {final:.4g} ({sol.status})")
    if units is not None:
        ax1.set_ylabel("network learning rate (fitted map)")
        ax2.set_ylabel("network loss (fitted map)")
    if ramp.size:
        ax1.axvline(ramp.size, color="0.5", ls=":", lw=1)
        ax1.annotate(f"warmup {ramp.size}", (ramp.size, 0.02), xycoords=("data", "axes fraction"), fontsize=8)
    if head.size > ramp.size:  # the plateau-anneal form's pinned plateau: the anneal starts here
        ax1.axvline(head.size, color="0.5", ls=":", lw=1)
        ax1.annotate(
            f"anneal from {head.size}", (head.size, 0.08), xycoords=("data", "axes fraction"), fontsize=8
        )
    if relative:
        kind = "design" if designed else "optimum"
        plot_relative_losses(
            curves, highlight, steps=steps, ax=axes[2], highlight=highlight, reference_kind=kind
        )
        axes[2].set_title(f"baselines against the {kind}")
    for ax, name in zip(axes[2 + relative :], extra, strict=True):
        ax.plot(np.arange(problem.horizon), per_step(name), color="k", lw=2)
        if name == "batch_size" and problem.sample_budget is not None:
            ax.axhline(_baseline_batch_size(problem), color="C0", ls="--", lw=1, label="baselines: D / T")
            ax.legend(fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel(name.replace("_", " "))
        ax.set_title(f"optimal {name.replace('_', ' ')}")
        ax.grid(alpha=0.3)
    save_figure(fig, path)
