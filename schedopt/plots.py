"""Matplotlib figures (imported lazily; ``ax=None`` creates a figure; never shows)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from schedopt._io import atomic_write

__all__ = [
    "have_matplotlib",
    "plot_loss_curves",
    "plot_relative_losses",
    "plot_schedules",
    "relative_losses",
    "require_matplotlib",
    "robust_top",
    "save_figure",
]

PLOTS_EXTRA = "install the plots extra (pip install 'schedopt[plots]')"


def have_matplotlib() -> bool:
    """Whether matplotlib is installed (the ``plots`` extra), without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a broken installation counts as none
        return False


def require_matplotlib(what: str) -> None:
    """Refuse, in one line naming ``what``, a figure when matplotlib is not installed."""
    if not have_matplotlib():
        from schedopt.errors import ProblemError

        raise ProblemError(f"{what} needs matplotlib: {PLOTS_EXTRA}", field="plots")


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    return fig, ax


def plot_schedules(schedules: Mapping[str, np.ndarray], *, ax=None, highlight: str | None = None, logx=False):
    """Per-step learning rates of several schedules against the step."""
    fig, ax = _axes(ax)
    for name, lr in schedules.items():
        lr = np.asarray(lr)
        steps = np.arange(lr.size)
        bold = name == highlight
        ax.plot(
            steps + (1 if logx else 0),
            lr,
            lw=2.2 if bold else 1.0,
            alpha=1.0 if bold else 0.75,
            label=name,
            zorder=3 if bold else 2,
            color="black" if bold else None,
        )
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("step" + (" + 1" if logx else ""))
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig, ax


def plot_loss_curves(
    curves: Mapping[str, np.ndarray],
    *,
    ax=None,
    highlight: str | None = None,
    steps: np.ndarray | None = None,
):
    """Excess loss against the step, log-log.

    ``steps``: the steps of every curve's values (checkpoints, :func:`~schedopt.dynamics.recursion.loss_at`);
    default ``0..T`` (one value per step).
    """
    fig, ax = _axes(ax)
    for name, loss in curves.items():
        loss = np.asarray(loss)
        bold = name == highlight
        ax.loglog(
            (np.arange(loss.size) if steps is None else np.asarray(steps)) + 1,
            loss,
            lw=2.2 if bold else 1.0,
            alpha=1.0 if bold else 0.75,
            label=name,
            zorder=3 if bold else 2,
            color="black" if bold else None,
        )
    ax.set_xlabel("step + 1")
    ax.set_ylabel("excess loss $L_t$")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    _plain_log_ticks(ax)  # a fitted spec's network losses span under a decade
    return fig, ax


def robust_top(
    values: np.ndarray, *, quantile: float = 0.99, margin: float = 1.15, floor: float = 0.0
) -> float:
    """An axis top that a few outlying values (one baseline's spike) do not set: a high quantile."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 1.0
    return max(float(np.quantile(finite, quantile)) * margin, floor)


def plot_relative_losses(
    curves: Mapping[str, np.ndarray],
    reference: str,
    *,
    steps: np.ndarray,
    ax=None,
    highlight: str | None = None,
    reference_kind: str = "optimum",
):
    """Each curve's loss relative to ``reference``'s, in percent, over the second half of the run.

    The end-of-training differences (a few percent) that a log-log loss panel hides. The
    y range holds most curves (a far-off one is clipped and said so), and each label
    carries the final difference. Colours are those :func:`plot_loss_curves` gives the same
    curves (``highlight`` black, the others the colour cycle in order); ``reference_kind``
    names the reference on the y axis (the optimum, the best, ...).
    """
    fig, ax = _axes(ax)
    rel = relative_losses(curves, reference, steps)
    colours, cycle = {}, 0
    for name in curves:
        colours[name] = "black" if name == highlight else f"C{cycle}"
        cycle += name != highlight
    for name, values in rel.curves.items():
        label = f"{name}: {values[-1]:+.2f} % at the end"
        ax.plot(rel.steps, values, lw=1.0, alpha=0.85, color=colours[name], label=label)
    ax.axhline(0.0, color=colours[reference], lw=2.2, label=f"{reference} (reference)")
    ax.set_ylim(*rel.ylim)
    if rel.clipped:
        ax.annotate("curves above the axis are clipped", (0.02, 0.02), xycoords="axes fraction", fontsize=7)
    ax.set_xlabel("step (second half of the run)")
    ax.set_ylabel(f"loss relative to the {reference_kind} (%)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig, ax


@dataclasses.dataclass(frozen=True)
class RelativeLosses:
    """What :func:`relative_losses` returns: the curves of the relative panel and its y range."""

    steps: np.ndarray
    """The steps of the second half of the run."""
    curves: dict[str, np.ndarray]
    """Each curve but the reference's: its loss relative to the reference's, in percent, at ``steps``."""
    ylim: tuple[float, float]
    """The y range: every curve but those far above the rest."""
    clipped: bool
    """Whether a curve goes above ``ylim``."""


def relative_losses(curves: Mapping[str, np.ndarray], reference: str, steps: np.ndarray) -> RelativeLosses:
    """The data of :func:`plot_relative_losses` (the SVG figure draws the same, :mod:`schedopt.svg`)."""
    ref = np.asarray(curves[reference], dtype=np.float64)
    x = np.asarray(steps)
    late = x >= x[-1] / 2
    highs, lows = [], [0.0]
    out = {}
    for name, loss in curves.items():
        if name == reference:
            continue
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rel = 100.0 * (np.asarray(loss, dtype=np.float64) / ref - 1.0)
        out[name] = rel[late]
        finite = rel[late][np.isfinite(rel[late])]
        if finite.size:
            highs.append(float(finite.max()))
            lows.append(float(finite.min()))
    # the top holds every curve but those far above the rest (over 3x the median high)
    limit = 3.0 * float(np.median(np.abs(highs))) if highs else 1.0
    hi = max([h for h in highs if h <= max(limit, 1.0)] + [0.1])
    lo = min(lows)
    pad = 0.1 * (hi - lo)
    return RelativeLosses(x[late], out, (lo - pad, hi + pad), bool(highs) and max(highs) > hi + pad)


def save_figure(fig, path: str | Path, *, dpi: int = 120) -> Path:
    """Save a figure atomically as PNG and close it.

    A figure with a layout engine (``constrained_layout``) already fits its contents to the
    canvas; only one without is cropped to them (``bbox_inches="tight"``, a second drawing
    of the whole figure: about a sixth of ``design.png``'s CPU time).
    """
    import matplotlib.pyplot as plt

    crop = None if fig.get_layout_engine() is not None else "tight"

    def write(tmp: Path) -> None:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches=crop)

    try:
        return atomic_write(path, write)
    finally:
        plt.close(fig)


def plot_horizon_study(study, path: str | Path) -> Path:
    """Four panels: schedules in t/T, loss vs T, learning-rate level vs T, anneal fraction vs T."""
    require_matplotlib("phase.png")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = study.table()
    T = np.array([r["horizon"] for r in rows], dtype=float)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)  # no label overlaps
    ax = axes[0, 0]
    for sol in study.solutions:
        lr = sol.per_step("learning_rate")
        ax.plot((np.arange(lr.size) + 0.5) / lr.size, lr, label=f"T={lr.size}")
    ax.set_xlabel("t / T")
    ax.set_ylabel("optimal learning rate")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    floor = study.problem.model.residual
    for key, label in (
        ("final_loss", "optimal"),
        ("constant_loss", "best constant"),
        ("power_law_loss", "best power law"),
    ):
        ax.loglog(T, np.array([r[key] for r in rows]) - floor, "o-", label=label)
    ax.set_xlabel("horizon T")
    ax.set_ylabel("final loss above floor")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    ax.loglog(T, [r["level_lr"] for r in rows], "o-", label="optimal, median over t/T in [0.2, 0.4]")
    ax.loglog(T, [r["constant_lr"] for r in rows], "s-", label="best constant")
    ax.set_xlabel("horizon T")
    ax.set_ylabel("learning rate")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.loglog(T, [max(r["anneal_fraction"], 1e-12) for r in rows], "o-")
    ax.set_xlabel("horizon T")
    ax.set_ylabel("anneal fraction")
    fig.suptitle(f"{study.problem.name}: {study.phase} phase")
    for a in axes.flat:
        a.grid(alpha=0.3, which="both")
        _plain_log_ticks(a)
    return save_figure(fig, path)


def _plain_log_ticks(ax) -> None:
    """On a log y axis spanning less than a decade, plain numbers (0.34, 6) instead of 3.4x10^-1, 6x10^0.

    Matplotlib labels a subset of the minor ticks there (all of them over a short span, 2, 3, 4, 6
    over a longer one): the same ticks, written plainly."""
    if ax.get_yscale() != "log":
        return
    lo, hi = ax.get_ylim()
    if lo > 0 and hi / lo < 10:
        from matplotlib.ticker import LogFormatter

        class Plain(LogFormatter):
            def _num_to_string(self, x, vmin, vmax):
                return f"{x:.3g}"

        ax.yaxis.set_major_formatter(Plain(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(Plain(labelOnlyBase=False))


def plot_scaling(study, path: str | Path) -> Path:
    """Four panels of a :class:`~schedopt.studies.scaling.ScalingStudy`: :math:`N^*(C)`, :math:`T^*(C)`,
    :math:`L^*(C)` with fits, and the scans :math:`L(N)`."""
    require_matplotlib("scaling.png")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    predicted = study.predicted()
    labels = {"model_size": "model size $N^*$", "horizon": "horizon $T^*$", "loss": "loss $L^*$"}
    for ax, key in zip(axes.flat[:3], ("model_size", "horizon", "loss"), strict=True):
        for kind in study.schedules:
            rows = study.frontiers[kind]
            c = np.array([r["compute"] for r in rows])
            y = np.array([r["n_modes" if key == "model_size" else key] for r in rows])
            (line,) = ax.loglog(c, y, "o", label=kind)
            fit = study.fits[kind][key]
            if fit is not None:
                cc = np.geomspace(fit.x_min, fit.x_max, 50)
                pred = predicted[kind][key]
                note = "" if pred is None else f", theory {pred:+.3f}"
                ax.loglog(
                    cc,
                    fit.prefactor * cc**fit.exponent,
                    "-",
                    color=line.get_color(),
                    alpha=0.7,
                    label=f"fit {fit.exponent:+.3f}{note}",
                )
        ax.set_xlabel("compute $C = N T m$")
        ax.set_ylabel(labels[key])
        ax.legend(fontsize=7)
    ax = axes[1, 1]
    kind = "optimal" if "optimal" in study.schedules else study.schedules[0]
    for c in study.computes:
        pts = [p for p in study.points if p["compute"] == c and kind in p["results"]]
        ns = [p["n_modes"] for p in pts]
        ls = [p["results"][kind]["loss"] for p in pts]
        ax.loglog(ns, ls, ".-", label=f"C={c:.3g}")
    rows = study.frontiers[kind]
    ax.loglog([r["n_modes"] for r in rows], [r["loss"] for r in rows], "k*", label="refined minimum")
    ax.set_xlabel("model size N")
    ax.set_ylabel(f"final loss ({kind} schedule)")
    ax.legend(fontsize=6)
    a, b = study.problem.model.a, study.problem.model.b
    fig.suptitle(f"{study.problem.name}: compute-optimal frontier ({study.phase} phase, a={a:g}, b={b:g})")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    for ax in axes.flat:
        ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)


def plot_fit(result, runs, path: str | Path) -> Path:
    """Measured pilot losses (dots) and the fitted model's curves (lines), one colour per run."""
    require_matplotlib("the fit plot (--plot)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from schedopt.calibration.fit import predict_network_loss, warmup_steps

    fig, ax = plt.subplots(figsize=(7, 4.5))
    fitted_losses = []
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        start = 2 * warmup_steps(run) if result.min_step == "auto" else int(result.min_step)
        curve = predict_network_loss(result.problem, run.learning_rate)
        fitted = run.loss_steps >= start
        fitted_losses.append(run.losses[fitted])
        ax.plot(run.loss_steps[fitted] + 1, run.losses[fitted], "o", ms=3, mfc="none", color=color, alpha=0.7)
        ax.plot(run.loss_steps[~fitted] + 1, run.losses[~fitted], "o", ms=3, mfc="none", color="0.7")
        label = f"{Path(run.name).name} (peak lr {run.peak_learning_rate:.3g})"
        steps = np.arange(curve.size)
        ax.plot(steps[start:] + 1, curve[start:], "-", color=color, lw=1.5, label=label)
    if any(np.any(run.loss_steps < 1) for run in runs) or result.min_step != 0:
        ax.plot([], [], "o", ms=3, mfc="none", color="0.7", label="not fitted (before --min-step)")
    low = min(float(x.min()) for x in fitted_losses if x.size)
    high = max(float(x.max()) for x in fitted_losses if x.size)
    ax.set_ylim(low - 0.1 * (high - low), high + 0.25 * (high - low))
    first = min(int(run.loss_steps[run.losses >= 0][0]) for run in runs)
    starts = [2 * warmup_steps(r) if result.min_step == "auto" else int(result.min_step) for r in runs]
    ax.set_xlim(left=max(1.0, max(first, min(starts)) / 2.0))
    ax.set_xscale("log")
    ax.set_xlabel("step + 1")
    ax.set_ylabel(f"loss ({runs[0].loss_column})")
    p = result.parameters
    ax.set_title(
        f"fit: a={p['a']:.3g}, b={p['b']:.3g} ({result.phase} phase), "
        f"error {100 * result.fit_error['rms_error']:.2f}% RMS"
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)
