"""Compare schedule files and tuned baselines on one problem (``schedopt compare`` / ``plot``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schedopt._io import atomic_write_text, json_text, output_set
from schedopt.dynamics.recursion import loss_curve
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.schedule import Schedule, load_schedule

__all__ = ["Comparison", "compare_schedules", "model_learning_rate", "plot_schedule_files"]


def model_learning_rate(schedule: Schedule, problem: Problem) -> np.ndarray:
    """A schedule's learning rate in ``problem``'s model units.

    On a fitted problem (a ``[network]`` map) a person's numbers are the network's: a
    schedule in network units, or one that does not say (a bare CSV, ``cosine:0.003``),
    is converted with the problem's map; a schedule with its own map goes through the
    network's learning rate (the physical quantity) to the problem's model; one that
    says ``model`` is used as is. Without a map the values are used as they are.
    """
    lr = schedule.learning_rate
    units = problem.network
    if units is None or (schedule.learning_rate_units == "model" and schedule.network is None):
        return lr
    if schedule.network is not None:
        if schedule.network == units:
            return lr
        return units.model_learning_rate(schedule.network.network_learning_rate(lr))
    return units.model_learning_rate(lr)


def extrapolation_notes(problem: Problem, names: Sequence[str], learning_rates) -> list[str]:
    """On a fitted problem, where a schedule's loss is the fitted model's extrapolation: a schedule whose peak
    (``learning_rates``: model units, one row per name) is above the fitted cap (the pilots' range, as
    ``schedopt fit`` set it), and a horizon past the longest pilot's. Empty on any other problem."""
    net = problem.network
    if net is None:
        return []
    notes = []
    cap = float(net.network_learning_rate(problem.learning_rate.max))
    for name, lr in zip(names, np.atleast_2d(learning_rates), strict=True):
        peak = float(net.network_learning_rate(float(np.max(lr))))
        if peak > cap * (1 + 1e-9):
            notes.append(
                f"{name}: its peak learning rate, {peak:.4g}, is x{peak / cap:.3g} the fitted cap, {cap:.4g} "
                "(the pilots' range): its loss there is the model's extrapolation in learning rate, which no "
                "pilot tested"
            )
    if net.pilot_horizon and problem.horizon > net.pilot_horizon:
        notes.append(
            f"the horizon, {problem.horizon}, is x{problem.horizon / net.pilot_horizon:.3g} the longest "
            f"pilot's ({net.pilot_horizon}): every loss here is the fitted model's extrapolation in time "
            "(what such predictions were off by on real tasks: docs/calibration.md)"
        )
    return notes


@dataclass(frozen=True, eq=False)
class Comparison:
    """Loss curves of several schedules on one problem, best first.

    ``learning_rates`` and ``losses`` are the model's; on a fitted problem the report,
    the table and the plot show the network's (``network_*``), the model's alongside.
    """

    problem: Problem
    names: tuple[str, ...]
    sources: tuple[str, ...]
    learning_rates: np.ndarray  # (S, T), model units
    losses: np.ndarray  # (S, T + 1), model units

    @property
    def units(self) -> str:
        return "network" if self.problem.network is not None else "model"

    @property
    def shown_learning_rates(self) -> np.ndarray:
        net = self.problem.network
        return self.learning_rates if net is None else net.network_learning_rate(self.learning_rates)

    @property
    def shown_losses(self) -> np.ndarray:
        net = self.problem.network
        return self.losses if net is None else net.network_loss(self.losses)

    def entries(self) -> list[dict[str, Any]]:
        final = self.shown_losses[:, -1]
        model = self.losses[:, -1]
        best, model_best = float(np.min(final)), float(np.min(model))
        order = np.argsort(model)
        out = []
        for i in order:
            entry = {
                "name": self.names[i],
                "source": self.sources[i],
                "final_loss": float(final[i]),
                "ratio": float(final[i] / best) if best > 0 else float("inf"),
            }
            if self.problem.network is not None:
                entry["model_final_loss"] = float(model[i])
                entry["model_ratio"] = float(model[i] / model_best) if model_best > 0 else float("inf")
            out.append(entry)
        return out

    def notes(self) -> list[str]:
        """Where a compared loss is the fitted model's extrapolation (:func:`extrapolation_notes`)."""
        return extrapolation_notes(self.problem, self.names, self.learning_rates)

    def figure(self):
        """Learning rates, loss curves and, with two or more schedules, each one's loss relative to the
        best's over the second half of the run (the few-percent differences a log-log panel hides)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from schedopt.plots import plot_loss_curves, plot_relative_losses, plot_schedules

        relative = len(self.names) > 1
        fig, axes = plt.subplots(1, 2 + relative, figsize=(12 + 6 * relative, 4.5))
        curves = dict(zip(self.names, self.shown_losses, strict=True))
        plot_schedules(dict(zip(self.names, self.shown_learning_rates, strict=True)), ax=axes[0])
        plot_loss_curves(curves, ax=axes[1])
        axes[0].set_title(f"{self.problem.name}: learning rates ({self.units})")
        axes[1].set_title(f"loss curves ({self.units}; exact recursion)")
        if self.problem.network is not None:
            axes[0].set_ylabel("network learning rate")
            axes[1].set_ylabel("network loss (fitted map of the model's)")
        if relative:
            best = self.entries()[0]["name"]
            steps = np.arange(self.problem.horizon + 1)
            plot_relative_losses(curves, best, steps=steps, ax=axes[2], reference_kind="best")
            axes[2].set_title(f"against the best ({best})")
        return fig

    def write(self, folder: str | Path, *, overwrite: bool = True) -> dict[str, Any]:
        """Write ``compare.json`` and ``compare.png`` as one set; return the JSON object.

        ``overwrite=False`` refuses to replace an existing file of the set.
        """
        from schedopt.plots import require_matplotlib, save_figure

        require_matplotlib("compare.png")
        folder = Path(folder)
        files = {"report": str(folder / "compare.json"), "plot": str(folder / "compare.png")}
        fig = self.figure()
        report = {
            "problem": self.problem.name,
            "horizon": self.problem.horizon,
            "units": {"final_loss": self.units, "learning_rate": self.units}
            | ({"model_final_loss": "model"} if self.problem.network is not None else {}),
            "entries": self.entries(),
            "notes": self.notes(),
            "files": files,
        }
        with output_set(folder, ("compare.png", "compare.json"), overwrite=overwrite) as stage:
            save_figure(fig, stage / "compare.png")
            atomic_write_text(stage / "compare.json", json_text(report))
        return report


MAX_PLOTTED_LEARNING_RATE = 1e100  # matplotlib cannot place ticks on an axis reaching ~1e308


def _plottable(path: str | Path, schedule: Schedule) -> Schedule:
    peak = float(np.max(schedule.learning_rate))
    if peak > MAX_PLOTTED_LEARNING_RATE:
        raise ProblemError(
            f"{str(path)!r}: learning_rate: {peak:.6g} is too large to compare or plot "
            f"(limit {MAX_PLOTTED_LEARNING_RATE:g})",
            field="learning_rate",
        )
    return schedule


def _file_schedule(path: Path, schedule: Schedule, horizon: int) -> Schedule:
    schedule = _plottable(path, schedule)
    if schedule.horizon != horizon:
        raise ProblemError(
            f"{str(path)!r}: schedule has {schedule.horizon} steps but the problem's horizon is {horizon}",
            field="horizon",
        )
    return schedule


def _files_horizon(files: Sequence[tuple[Path, Schedule]]) -> int | None:
    """The one horizon of the schedule files (``None`` without files); files that disagree are refused."""
    horizons = {str(path): schedule.horizon for path, schedule in files}
    if len(set(horizons.values())) > 1:
        listed = ", ".join(f"{path!r}: {steps}" for path, steps in horizons.items())
        raise ProblemError(f"the schedule files have different horizons ({listed})", field="schedules")
    return next(iter(horizons.values()), None)


def compare_schedules(
    problem: Problem,
    paths: Sequence[str | Path],
    baselines: Sequence[str] = (),
    *,
    horizon: int | None = None,
) -> Comparison:
    """Loss curves of schedule files and tuned baseline families on ``problem``.

    The comparison runs at ``horizon`` if given (the files must have that many steps),
    else at the files' own horizon (as ``simulate`` does), else at the problem's.
    """
    from schedopt.baselines import BASELINES, tune_baseline

    if not paths and not baselines:
        raise ProblemError("give at least one schedule file or --baseline", field="schedules")
    files = [(Path(path), load_schedule(path)) for path in paths]  # each file read once
    steps = horizon if horizon is not None else _files_horizon(files)
    if steps is not None and steps != problem.horizon:
        problem = problem.with_horizon(steps)
    names, sources, lrs = [], [], []
    for given, (path, loaded) in zip(paths, files, strict=True):  # names and sources as given
        schedule = _file_schedule(path, loaded, problem.horizon)
        names.append(path.stem if path.stem not in names else str(given))
        sources.append(str(given))
        lrs.append(model_learning_rate(schedule, problem))
    for name in baselines:
        if name not in BASELINES:
            raise ProblemError(
                f"`--baseline` must be one of {', '.join(BASELINES)}, got {name!r}", field="baseline"
            )
        tuned = tune_baseline(problem, name)
        names.append(f"{name} (tuned)")
        params = dict(tuned.params)
        if problem.network is not None and "peak" in params:  # a person reads the network's peak
            params = {"peak": float(problem.network.network_learning_rate(params.pop("peak"))), **params}
        sources.append("baseline " + ", ".join(f"{k}={v:.6g}" for k, v in params.items()))
        lrs.append(np.asarray(tuned.learning_rate))
    lr = np.stack(lrs)
    traj = loss_curve(problem.model, lr, batch_size=problem.training.batch_size)
    return Comparison(problem, tuple(names), tuple(sources), lr, traj.loss)


def plot_schedule_files(
    paths: Sequence[str | Path], *, problem: Problem | None = None, out: str | Path = "schedules.png"
) -> Path:
    """Plot schedule files; with a problem, also their loss curves on it."""
    from schedopt.plots import require_matplotlib

    require_matplotlib("plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from schedopt.plots import plot_schedules, save_figure

    if not paths:
        raise ProblemError("give at least one schedule file", field="schedules")
    schedules = {str(p): _plottable(p, load_schedule(p)) for p in paths}
    if problem is None:
        fig, ax = plt.subplots(figsize=(6, 4))
        plot_schedules({k: s.learning_rate for k, s in schedules.items()}, ax=ax)
        return save_figure(fig, out)
    return save_figure(compare_schedules(problem, list(paths)).figure(), out)
