"""``design.png``: the designed learning rate against the tuned baselines, their loss curves, the
baselines relative to the design, and the designed batch size and momentum.

Every schedule is drawn over the full horizon (a fixed prefix is prepended to the design, its
warmup ramp to the baselines). Matplotlib is imported inside (it is an optional extra).
"""

from __future__ import annotations

import numpy as np

from schedopt.design._record import Design
from schedopt.dynamics.compression import auto_compress
from schedopt.dynamics.recursion import checkpoint_steps, loss_at

__all__ = ["plot_design"]


def plot_design(result: Design, path: str) -> None:
    """Draw the design's figure and save it to ``path``."""
    from schedopt.plots import require_matplotlib

    require_matplotlib("design.png (write_design(..., plot=False) writes the rest)")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from schedopt.plots import plot_loss_curves, plot_relative_losses, save_figure

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
    relative = len(curves) > 1
    panels = 2 + relative + len(extra)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), constrained_layout=True)
    ax1, ax2 = axes[0], axes[1]
    _plot_learning_rates(ax1, schedules, highlight)
    plot_loss_curves(curves, ax=ax2, highlight=highlight, steps=steps)
    ax1.set_title(f"{problem.name}: learning rate ({result.phase} phase)")
    ax2.set_title(f"final loss {final:.4g} ({sol.status})")
    if units is not None:
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


def _plot_learning_rates(ax, schedules: dict[str, np.ndarray], highlight: str) -> None:
    """The schedules' panel; the design sets the axis, a baseline's spike above it is clipped, not allowed to
    flatten it."""
    from schedopt.plots import plot_schedules, robust_top

    plot_schedules(schedules, ax=ax, highlight=highlight)
    everything = np.concatenate([np.asarray(v, dtype=np.float64) for v in schedules.values()])
    top = robust_top(everything, floor=1.15 * float(np.max(schedules[highlight])))
    if top > 1e-300:  # below that matplotlib cannot tell 0 from top (a cap of 1e-320 is valid input)
        ax.set_ylim(0.0, top)
    if np.max(everything) > top:
        ax.annotate(
            "a baseline exceeds the axis (clipped)", (0.02, 0.95), xycoords="axes fraction", fontsize=7
        )


def _mark_prefix(ax, result: Design) -> None:
    """Mark where the warmup ramp ends and, after a pinned plateau, where the anneal starts.

    Dotted lines in the panel; their words go in the x-axis label, where the legend (placed
    among the curves) cannot cover them."""
    head, ramp = _prefixes(result)
    marks = []
    if ramp.size:
        ax.axvline(ramp.size, color="0.5", ls=":", lw=1)
        marks.append(f"warmup ends at {ramp.size}")
    if head.size > ramp.size:  # the plateau-anneal form's pinned plateau: the anneal starts here
        ax.axvline(head.size, color="0.5", ls=":", lw=1)
        marks.append(f"anneal from {head.size}")
    if marks:
        ax.set_xlabel(f"{ax.get_xlabel()} (dotted: {', '.join(marks)})")


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
