"""The design's figure: the designed learning rate against the tuned baselines, their loss curves,
the baselines relative to the design, and the designed batch size and momentum.

Two renderings of the same panels: ``design.svg`` (:func:`svg_design`, the default; SVG text
written by :mod:`schedopt.svg`, no matplotlib) and ``design.png`` (:func:`plot_design`,
matplotlib: the optional ``plots`` extra, imported inside). Every schedule is drawn over the
full horizon (a fixed prefix is prepended to the design, its warmup ramp to the baselines).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from schedopt._io import atomic_write_text
from schedopt.design._record import Design
from schedopt.dynamics.compression import auto_compress
from schedopt.dynamics.recursion import checkpoint_steps, loss_at

__all__ = ["FIGURES", "plot_design", "svg_design"]

FIGURES = {"svg": "design.svg", "png": "design.png", "none": None}
"""The figure's formats (``write_design(..., figure=)``, ``schedopt design --figure``) and file names."""


@dataclasses.dataclass(frozen=True)
class _Panels:
    """What the figure's panels show, in the units they show it (a fitted spec's network units)."""

    schedules: dict[str, np.ndarray]
    highlight: str
    steps: np.ndarray
    curves: dict[str, np.ndarray]
    final: float
    network: bool
    extra: list[str]


def _panels(result: Design) -> _Panels:
    sol = result.solution
    problem = result.problem  # the full horizon (a warmup ramp is prepended to every schedule)
    schedules = _schedules(result)
    highlight = next(iter(schedules))
    steps = _checkpoints(problem.horizon)
    curves = _loss_curves(result, schedules, steps)
    final = sol.final_loss
    units = problem.network
    if units is not None:  # a fitted spec: the network's learning rates and losses
        schedules = {name: units.network_learning_rate(lr) for name, lr in schedules.items()}
        curves = {name: units.network_loss(np.asarray(loss)) for name, loss in curves.items()}
        final = float(units.network_loss(final))
    extra = [name for name in ("batch_size", "momentum") if name in sol.parameters]
    return _Panels(schedules, highlight, steps, curves, final, units is not None, extra)


def _titles(result: Design, data: _Panels) -> tuple[str, str]:
    sol = result.solution
    return (
        f"{result.problem.name}: learning rate ({result.phase} phase)",
        f"final loss {data.final:.4g} ({sol.status})",
    )


def _marks(result: Design) -> list[tuple[int, str]]:
    """The dotted lines of the learning-rate panel: where the warmup ramp ends and, after a pinned
    plateau, where the anneal starts (their words go in the x-axis label, where no legend covers them)."""
    head, ramp = _prefixes(result)
    marks = []
    if ramp.size:
        marks.append((ramp.size, f"warmup ends at {ramp.size}"))
    if head.size > ramp.size:  # the plateau-anneal form's pinned plateau: the anneal starts here
        marks.append((head.size, f"anneal from {head.size}"))
    return marks


def _clip_top(data: _Panels) -> tuple[float, bool]:
    """The learning-rate axis's top (the design sets it; a baseline's spike above is clipped, not allowed
    to flatten it) and whether a schedule exceeds it."""
    from schedopt.plots import robust_top

    everything = np.concatenate([np.asarray(v, dtype=np.float64) for v in data.schedules.values()])
    top = robust_top(everything, floor=1.15 * float(np.max(data.schedules[data.highlight])))
    return top, bool(np.max(everything) > top)


def svg_design(result: Design, path: str) -> None:
    """Draw the design's figure as SVG (no matplotlib) and write it to ``path`` atomically."""
    from schedopt.plots import relative_losses
    from schedopt.svg import COLOURS, Panel, figure_svg

    data = _panels(result)
    title_lr, title_loss = _titles(result, data)
    colours = {
        name: COLOURS[k % len(COLOURS)]
        for k, name in enumerate(n for n in data.schedules if n != data.highlight)
    }
    colours[data.highlight] = "black"

    def styled(name: str) -> dict:
        bold = name == data.highlight
        return {
            "colour": colours[name],
            "width": 2.2 if bold else 1.0,
            "opacity": 1.0 if bold else 0.75,
            "on_top": bold,
        }

    marks = _marks(result)
    xlabel = "step" + (f" (dotted: {', '.join(words for _, words in marks)})" if marks else "")
    units = " (fitted map)" if data.network else ""
    lr = Panel(title_lr, xlabel, f"network learning rate{units}" if data.network else "learning rate")
    for name, values in data.schedules.items():
        lr.line(np.arange(values.size), values, label=name, **styled(name))
    top, clipped = _clip_top(data)
    if top > 1e-300:
        lr.ylim = (0.0, top)
    if clipped:
        lr.note("a baseline exceeds the axis (clipped)")
    for step, _ in marks:
        lr.vline(step, colour="#808080", dash="2,2")
    loss = Panel(
        title_loss,
        "step + 1",
        f"network loss{units}" if data.network else "excess loss L_t",
        xlog=True,
        ylog=True,
    )
    for name, values in data.curves.items():
        loss.line(data.steps + 1, values, label=name, **styled(name))
    panels = [lr, loss]
    if len(data.curves) > 1:
        kind = "design" if _designed(result) else "optimum"
        rel = relative_losses(data.curves, data.highlight, data.steps)
        relative = Panel(
            f"baselines against the {kind}",
            "step (second half of the run)",
            f"loss relative to the {kind} (%)",
            ylim=rel.ylim,
        )
        for name, values in rel.curves.items():
            end = f"{values[-1]:+.2f} %" if np.isfinite(values[-1]) else "nan"
            relative.line(
                rel.steps, values, colour=colours[name], opacity=0.85, label=f"{name}: {end} at the end"
            )
        relative.hline(0.0, colour="black", width=2.2, label=f"{data.highlight} (reference)")
        if rel.clipped:
            relative.note("curves above the axis are clipped")
        panels.append(relative)
    problem = result.problem
    for name in data.extra:
        words = name.replace("_", " ")
        control = Panel(f"optimal {words}", "step", words)
        control.line(np.arange(problem.horizon), _per_step(result, name), colour="black", width=2)
        if name == "batch_size" and problem.sample_budget is not None:
            control.hline(
                float(problem.mean_batch_size), colour=COLOURS[0], dash="6,3", label="baselines: D / T"
            )
        panels.append(control)
    atomic_write_text(path, figure_svg(panels))


def plot_design(result: Design, path: str) -> None:
    """Draw the design's figure with matplotlib and save it to ``path`` as PNG."""
    from schedopt.plots import require_matplotlib

    require_matplotlib("design.png (--figure svg or none do without it)")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from schedopt.plots import plot_loss_curves, plot_relative_losses, save_figure

    data = _panels(result)
    curves, highlight, steps, extra = (
        data.curves,
        data.highlight,
        data.steps,
        data.extra,
    )
    relative = len(curves) > 1
    panels = 2 + relative + len(extra)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), constrained_layout=True)
    ax1, ax2 = axes[0], axes[1]
    _plot_learning_rates(ax1, data)
    plot_loss_curves(curves, ax=ax2, highlight=highlight, steps=steps)
    title_lr, title_loss = _titles(result, data)
    ax1.set_title(title_lr)
    ax2.set_title(title_loss)
    if data.network:
        ax1.set_ylabel("network learning rate (fitted map)")
        ax2.set_ylabel("network loss (fitted map)")
    _mark_prefix(ax1, result)
    if relative:
        kind = "design" if _designed(result) else "optimum"
        plot_relative_losses(
            curves, highlight, steps=steps, ax=axes[2], highlight=highlight, reference_kind=kind
        )
        axes[2].set_title(f"baselines against the {kind}")
    for ax, name in zip(axes[2 + relative :], extra, strict=True):
        _plot_control(ax, result, name)
    save_figure(fig, path)


def _designed(result: Design) -> bool:
    """Whether the design is the plateau-anneal form: a shape the model scores, not its optimum."""
    return result.form.get("form") == "plateau-anneal"


def _prefixes(result: Design) -> tuple[np.ndarray, np.ndarray]:
    """The design's fixed prefix, and the part of it the baselines start with (the warmup ramp)."""
    if result.warmup is None:
        return np.zeros(0), np.zeros(0)
    return result.warmup.learning_rate, result.warmup.shared


def _per_step(result: Design, name: str) -> np.ndarray:
    """A designed control's per-step values over the full horizon (its first value over the prefix)."""
    head = _prefixes(result)[0]
    values = result.solution.per_step(name)
    return np.concatenate([np.full(head.size, values[0]), values]) if head.size else values


def _schedules(result: Design) -> dict[str, np.ndarray]:
    """The learning rate of every schedule compared over the full horizon, by label, the design's first."""
    sol = result.solution
    head, ramp = _prefixes(result)

    def full(values, prefix):
        return np.concatenate([prefix, np.asarray(values, dtype=np.float64)])

    label = (
        f"designed ({result.form.get('anneal')} anneal)" if _designed(result) else f"optimal ({sol.solver})"
    )
    schedules = {label: full(sol.per_step("learning_rate"), head)}
    schedules.update({name: full(tb.learning_rate, ramp) for name, tb in result.baselines.items()})
    return schedules


def _checkpoints(horizon: int) -> np.ndarray:
    """The steps the loss curves are evaluated at.

    Log-spaced for the log-log panel, and 100 uniform over the second half for the relative one (a
    cooldown of the last few percent of the run falls between log-spaced checkpoints).
    """
    late = np.linspace(horizon / 2, horizon, 101).round().astype(np.int64)
    return np.unique(np.concatenate([checkpoint_steps(horizon), late]))


def _loss_curves(
    result: Design, schedules: dict[str, np.ndarray], steps: np.ndarray
) -> dict[str, np.ndarray]:
    """Model losses at ``steps`` of every schedule in ``schedules`` (:func:`_schedules`), by label.

    The design runs with its own batch size and momentum schedules, the baselines at their fixed
    values. Losses at checkpoints only: O(N + checkpoints) memory at any horizon; on the compressed
    spectrum of a large model, heavy ball too (~1e-12 relative, O(T n) work, not O(T N)).
    """
    sol = result.solution
    problem = result.problem
    highlight = next(iter(schedules))
    with_momentum = "momentum" in sol.parameters or problem.training.momentum > 0
    modes = auto_compress(problem.model.eigenvalues, problem.model.initial_error)
    batch = _per_step(result, "batch_size")
    if result.baselines and not with_momentum:
        # plain SGD throughout: the optimum and the baselines in one call (one program to trace)
        lr = np.stack([schedules[name] for name in (highlight, *result.baselines)])
        batch = np.stack(
            [batch, *[np.full_like(batch, float(problem.mean_batch_size))] * len(result.baselines)]
        )
        losses = loss_at(problem.model, lr, steps, batch_size=batch, modes=modes).loss
        curves = dict(zip([highlight, *result.baselines], losses, strict=True))
    else:
        momentum = _per_step(result, "momentum") if with_momentum else None
        optimum = loss_at(
            problem.model, schedules[highlight], steps, batch_size=batch, momentum=momentum, modes=modes
        )
        curves = {highlight: optimum.loss}
    if result.baselines and with_momentum:
        lr = np.stack([schedules[name] for name in result.baselines])
        momentum = problem.training.momentum if problem.training.momentum > 0 else None
        batch = float(problem.mean_batch_size)
        base = loss_at(problem.model, lr, steps, batch_size=batch, momentum=momentum, modes=modes).loss
        curves.update(zip(result.baselines, base, strict=True))
    return curves


def _plot_learning_rates(ax, data: _Panels) -> None:
    """The schedules' panel (matplotlib), clipped at :func:`_clip_top`."""
    from schedopt.plots import plot_schedules

    plot_schedules(data.schedules, ax=ax, highlight=data.highlight)
    top, clipped = _clip_top(data)
    if top > 1e-300:  # below that matplotlib cannot tell 0 from top (a cap of 1e-320 is valid input)
        ax.set_ylim(0.0, top)
    if clipped:
        ax.annotate(
            "a baseline exceeds the axis (clipped)", (0.02, 0.95), xycoords="axes fraction", fontsize=7
        )


def _mark_prefix(ax, result: Design) -> None:
    """The dotted lines of :func:`_marks` (matplotlib), their words in the x-axis label."""
    marks = _marks(result)
    for step, _ in marks:
        ax.axvline(step, color="0.5", ls=":", lw=1)
    if marks:
        ax.set_xlabel(f"{ax.get_xlabel()} (dotted: {', '.join(words for _, words in marks)})")


def _plot_control(ax, result: Design, name: str) -> None:
    """A designed batch-size or momentum schedule's panel (under a sample budget, with the baselines' D / T)."""
    problem = result.problem
    ax.plot(np.arange(problem.horizon), _per_step(result, name), color="k", lw=2)
    if name == "batch_size" and problem.sample_budget is not None:
        ax.axhline(float(problem.mean_batch_size), color="C0", ls="--", lw=1, label="baselines: D / T")
        ax.legend(fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel(name.replace("_", " "))
    ax.set_title(f"optimal {name.replace('_', ' ')}")
    ax.grid(alpha=0.3)
