"""Loss curves at checkpoints (``loss_at``): the recursion's numbers, in memory that does not grow with T·N."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from schedopt.dynamics import recursion
from schedopt.dynamics.compression import compress_modes
from schedopt.dynamics.recursion import checkpoint_steps, loss_at, loss_curve
from schedopt.errors import ProblemError
from schedopt.problem import Model

#: loss_at and loss_curve run the same step function; only the order of a sum may differ.
SAME_RECURSION_RTOL = 1e-13


@pytest.fixture(scope="module")
def model() -> Model:
    return Model.powerlaw(2.0, 2.0, 60, noise_std=0.5, initial_loss="raw")


def _schedules(horizon: int) -> np.ndarray:
    """A constant, a linear decay, and one above the stability threshold (diverges)."""
    return np.stack([np.full(horizon, 0.5), np.linspace(1.0, 0.0, horizon), np.full(horizon, 1.9)])


def test_checkpoint_steps_are_log_spaced_with_both_ends():
    steps = checkpoint_steps(10**6, count=50)
    assert steps[0] == 0 and steps[-1] == 10**6
    assert np.all(np.diff(steps) > 0)
    ratios = steps[2:] / steps[1:-1]
    assert_allclose(ratios[-10:], (10**6) ** (1 / 49), rtol=1e-3)  # geometric where rounding is negligible
    assert checkpoint_steps(3, count=200).tolist() == [0, 1, 2, 3]


def test_loss_at_equals_the_loss_curve_at_its_steps(model):
    horizon = 300
    lr = _schedules(horizon)
    steps = np.array([0, 1, 7, 50, 299, 300])
    curve = loss_curve(model, lr, batch_size=5.0)
    at = loss_at(model, lr, steps, batch_size=5.0)
    assert at.loss.shape == (3, steps.size)
    finite = np.isfinite(curve.loss[:, steps])
    assert_allclose(at.loss[finite], curve.loss[:, steps][finite], rtol=SAME_RECURSION_RTOL)
    # divergence is checked at every step, not only at the checkpoints
    assert_array_equal(at.divergence_step, curve.divergence_step)
    assert at.diverged.tolist() == [False, False, True] and 0 < at.divergence_step[2] < 50
    assert_array_equal(at.steps, steps)


def test_loss_at_with_momentum_batch_schedule_and_compressed_modes(model):
    horizon = 200
    lr = np.linspace(0.6, 0.05, horizon)
    batch = np.linspace(2.0, 8.0, horizon)
    steps = checkpoint_steps(horizon, count=20)
    curve = loss_curve(model, lr, batch_size=batch, momentum=0.4)
    at = loss_at(model, lr, steps, batch_size=batch, momentum=0.4)
    assert_allclose(at.loss, curve.loss[steps], rtol=SAME_RECURSION_RTOL)
    big = Model.powerlaw(2.0, 1.5, 2000, noise_std=0.5)
    modes = compress_modes(big.eigenvalues, big.initial_error)
    assert_allclose(
        loss_at(big, lr, steps, batch_size=4.0, modes=modes).loss,
        loss_curve(big, lr, batch_size=4.0, modes=modes).loss[steps],
        rtol=SAME_RECURSION_RTOL,
    )


def test_default_steps_end_at_the_final_loss(model):
    lr = np.linspace(1.0, 0.0, 1000)
    at = loss_at(model, lr, batch_size=5.0)
    assert_array_equal(at.steps, checkpoint_steps(1000))
    assert_allclose(at.final_loss, recursion.final_loss(model, lr, batch_size=5.0), rtol=SAME_RECURSION_RTOL)


@pytest.mark.parametrize("steps", [[3, 2], [0, 0, 1], [-1, 5], [0, 301], [0.5, 2.0], []])
def test_bad_steps_name_the_argument(model, steps):
    with pytest.raises(ProblemError, match="`steps`"):
        loss_at(model, np.full(300, 0.1), np.asarray(steps), batch_size=5.0)


def _temp_bytes(fn, *args, **kwargs) -> int:
    return fn.lower(*args, **kwargs).compile().memory_analysis().temp_size_in_bytes


def test_memory_does_not_grow_with_horizon_times_modes():
    """Compiled working memory: loss_at is O(N + K) (same at T = 1e3 and 1e5), loss_curve O(T)."""
    n = 1000
    lam = jnp.asarray(np.arange(1, n + 1, dtype=np.float64) ** -1.0)
    temp = {}
    for horizon in (1000, 100_000):
        lr, m = jnp.full(horizon, 0.1), jnp.ones(horizon)
        steps = jnp.asarray(checkpoint_steps(horizon))
        at = _temp_bytes(recursion._run_at, lam, lam, 0.25, lr, m, None, steps, 0.0, 1e6, lam)
        curve = _temp_bytes(recursion._run, lam, lam, 0.25, lr, m, None, record=True)
        temp[horizon] = (at, curve)
    assert temp[1000][0] == temp[100_000][0]  # independent of T
    assert temp[100_000][0] < 8 * (4 * n + 1000)  # a few states and the checkpoint buffer
    # the loss curve keeps one loss per step, not one state per step (8 T N bytes = 800 MB here)
    assert temp[100_000][1] < 8 * 100_000 * 10
