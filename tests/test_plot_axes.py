"""Figure axes show the differences that matter: robust limits and the relative-to-optimum panel."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from schedopt.plots import plot_relative_losses, robust_top


def test_a_spike_does_not_set_the_learning_rate_axis():
    values = np.concatenate([np.linspace(0.03, 0.001, 1990), np.full(10, 5.0)])  # one baseline's spike
    assert robust_top(values) == pytest.approx(0.03 * 1.15, rel=0.05)
    assert robust_top(values, floor=0.05) == 0.05


def test_relative_panel_shows_percent_differences_at_the_end():
    steps = np.arange(0, 1001, 10)
    reference = 1.0 / (1.0 + steps)
    curves = {
        "optimal": reference,
        "a": reference * 1.02,
        "b": reference * 1.05,
        "c": reference * 1.03,
        "d": reference * 1.01,
        "far": reference * 11.0,
    }
    fig, ax = plot_relative_losses(curves, "optimal", steps=steps)
    lo, hi = ax.get_ylim()
    assert lo < 0 < 5 < hi < 20  # the 1-5 % spread fills the axis; the +1000 % curve is clipped
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "a: +2.00 % at the end" in labels and "far: +1000.00 % at the end" in labels
    assert ax.get_xlim()[0] >= 450  # the second half of the run
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_phase_figure_labels_do_not_overlap(monkeypatch, tmp_path):
    """The right column's y labels used to run into the left panels (no layout engine)."""
    from types import SimpleNamespace

    import matplotlib.pyplot as plt

    import schedopt.plots as plots

    captured = {}

    def keep(fig, path, **kwargs):
        captured["fig"] = fig
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    horizons = [100, 316, 1000]
    rows = [
        {
            "horizon": T,
            "final_loss": 0.5 * T**-0.6,
            "constant_loss": 0.6 * T**-0.6,
            "power_law_loss": 0.55 * T**-0.6,
            "level_lr": T**-0.5,
            "constant_lr": 0.6 * T**-0.5,
            "anneal_fraction": 0.28 + 0.03 * np.log10(T),
        }
        for T in horizons
    ]
    solutions = [
        SimpleNamespace(per_step=lambda name, T=T: np.linspace(0.1, 0.01, T) * T**-0.5) for T in horizons
    ]
    study = SimpleNamespace(
        table=lambda: rows,
        solutions=solutions,
        problem=SimpleNamespace(name="p", model=SimpleNamespace(residual=0.0)),
        phase="easy",
    )
    plots.plot_horizon_study(study, tmp_path / "phase.png")
    fig = captured["fig"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    for right, left in ((axes[1], axes[0]), (axes[3], axes[2])):
        label = right.yaxis.label.get_window_extent(renderer)
        panel = left.get_window_extent(renderer)
        assert label.x0 > panel.x1, "a right-hand y label overlaps the left panel"
    # a log axis spanning under a decade reads in plain numbers (0.3, not 3x10^-1)
    texts = [t.get_text() for t in axes[3].get_yticklabels() if t.get_text()]
    assert texts and all("10^" not in t and "times" not in t for t in texts)
    plt.close(fig)


def test_relative_panel_colours_match_the_loss_panel_whichever_curve_is_the_reference():
    """compare's reference is the best schedule, anywhere in the list: each curve keeps its colour."""
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    from schedopt.plots import plot_loss_curves

    steps = np.arange(0, 101)
    base = 1.0 / (1.0 + steps)
    curves = {"first": base * 1.02, "best": base, "third": base * 1.04}
    fig, (left, right) = plt.subplots(1, 2)
    plot_loss_curves(curves, ax=left)
    plot_relative_losses(curves, "best", steps=steps, ax=right, reference_kind="best")
    loss_colours = {line.get_label(): mcolors.to_hex(line.get_color()) for line in left.get_lines()}
    for line in right.get_lines():
        name = line.get_label().split(":")[0].removesuffix(" (reference)")
        assert mcolors.to_hex(line.get_color()) == loss_colours[name], name
    assert right.get_ylabel() == "loss relative to the best (%)"
    plt.close(fig)


def test_design_figure_names_the_warmup_where_the_legend_cannot_cover_it(monkeypatch, tmp_path):
    """The "warmup N" words sat at the panel's foot, under the legend (a fitted design, T = 1500)."""
    import matplotlib.pyplot as plt
    from helpers import TINY_SPEC
    from matplotlib.text import Text

    import schedopt
    import schedopt.plots as plots
    from schedopt.design import design
    from schedopt.design._figure import plot_design

    captured = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: captured.setdefault("fig", fig))
    result = design(schedopt.parse_problem(TINY_SPEC), baselines=("cosine", "constant"), warmup=20)
    plot_design(result, str(tmp_path / "design.png"))
    fig = captured["fig"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panel = fig.axes[0]
    assert "dotted: warmup ends at 20" in panel.get_xlabel()
    legend = panel.get_legend().get_window_extent(renderer)
    inside = [t for t in panel.get_children() if type(t) is Text and t.get_text() and t.get_visible()]
    inside += list(panel.texts)
    assert not [t.get_text() for t in inside if t.get_window_extent(renderer).overlaps(legend)]
    plt.close(fig)


@pytest.mark.parametrize(("lo", "hi"), [(1.6, 7.2), (0.27, 0.4)])
def test_a_loss_panel_under_a_decade_reads_in_plain_numbers(lo, hi):
    """A fitted spec's network losses (1.6 to 7.2) read 2, 3, 4, 6, not 2x10^0 ... 6x10^0."""
    import matplotlib.pyplot as plt

    from schedopt.plots import plot_loss_curves

    steps = np.arange(0, 1001, 10)
    fig, ax = plot_loss_curves({"a": np.geomspace(hi, lo, steps.size)}, steps=steps)
    fig.canvas.draw()
    texts = [t.get_text() for m in (False, True) for t in ax.get_yticklabels(minor=m) if t.get_text()]
    assert len(texts) >= 2, texts
    assert all("10^" not in t and "times" not in t and "e" not in t for t in texts), texts
    plt.close(fig)
