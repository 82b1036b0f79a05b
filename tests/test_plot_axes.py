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
