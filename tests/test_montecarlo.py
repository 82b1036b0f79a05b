"""The exact recursion against Monte-Carlo SGD on Gaussian data (mean within 3 standard errors).

Every comparison uses a fixed ``rng`` so the suite is deterministic; the seed
counts make the relative standard error of the mean about 1 % or less. Step
sizes are kept well inside the stable region: near the edge of mean-square
stability the per-seed loss is heavy-tailed and its standard error is not
trustworthy (LAB-FINDINGS). The checkpoints are spread geometrically over the
horizon (early transients and the late noise floor both count).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from schedopt.dynamics.recursion import loss_curve
from schedopt.dynamics.stability import stability_threshold
from schedopt.errors import ProblemError
from schedopt.montecarlo import MonteCarloResult, simulate_sgd
from schedopt.problem import Model

#: The Monte-Carlo mean must lie within this many standard errors of the recursion.
Z_MAX = 3.0
#: A wrong recursion must be rejected by at least this many standard errors.
Z_REJECT = 6.0
#: Number of checkpoints (distinct steps) compared per test.
N_CHECKPOINTS = 12
#: The initial loss is deterministic: exact up to summation order.
RTOL_INITIAL = 1e-13


def checkpoints(horizon: int, n: int = N_CHECKPOINTS) -> np.ndarray:
    """``n`` distinct steps in ``[1, horizon]``, geometrically spaced."""
    steps = np.unique(np.round(np.geomspace(1, horizon, 4 * n)).astype(int))
    pick = np.unique(np.round(np.linspace(0, steps.size - 1, n)).astype(int))
    out = steps[pick]
    assert out.size == n
    return out


def max_abs_z(result: MonteCarloResult, expected: np.ndarray, steps: np.ndarray) -> float:
    return float(np.max(np.abs(result.zscore(expected)[steps])))


def check_agreement(result: MonteCarloResult, expected: np.ndarray) -> float:
    steps = checkpoints(result.horizon)
    assert np.all(np.isfinite(result.loss))
    assert_allclose(result.loss[:, 0], expected[0], rtol=RTOL_INITIAL)
    z = max_abs_z(result, expected, steps)
    print(f"max |z| = {z:.2f} over steps {steps.tolist()}")
    assert z < Z_MAX, f"max |z| = {z:.2f} at steps {steps}"
    return z


@pytest.fixture(scope="module")
def batch1_run(small_model):
    """Constant eta at 0.35 x the batch-1 threshold: the recursion and 6000 seeds of SGD."""
    horizon = 200
    lr = np.full(horizon, 0.35 * stability_threshold(small_model, 1))
    return lr, simulate_sgd(small_model, lr, batch_size=1, seeds=6000, rng=101)


def test_sgd_batch1_with_noise(small_model, batch1_run):
    lr, mc = batch1_run
    check_agreement(mc, loss_curve(small_model, lr, batch_size=1).loss)


def test_sgd_batch1_rejects_recursion_without_curvature(small_model, batch1_run):
    """Power check: dropping the 1/m part of the curvature term (a ~5 % effect) is detected."""
    lr, mc = batch1_run
    eta = lr[0]
    lam, c = small_model.eigenvalues, small_model.initial_error.copy()
    wrong = [lam @ c]
    for _ in range(lr.size):  # c' = (1 - eta lam)^2 c + eta^2 lam (L + sigma^2): (1 + 1/m) -> 1
        c = (1 - eta * lam) ** 2 * c + eta**2 * lam * (lam @ c + small_model.noise_variance)
        wrong.append(lam @ c)
    assert max_abs_z(mc, np.array(wrong), checkpoints(lr.size)) > Z_REJECT


def test_sgd_batch4_with_noise(small_model):
    horizon = 200
    lr = np.full(horizon, 0.35 * stability_threshold(small_model, 4))
    mc = simulate_sgd(small_model, lr, batch_size=4, seeds=3000, rng=102)
    check_agreement(mc, loss_curve(small_model, lr, batch_size=4).loss)


def test_scheduled_lr_and_batch_size(small_model):
    """Warm-up then linear decay of eta_t, batch size growing 1 -> 2 -> 4."""
    horizon = 200
    t = np.arange(horizon)
    peak = 0.4 * stability_threshold(small_model, 1)
    lr = peak * np.minimum((t + 1) / 20, (horizon - t) / (horizon - 20))
    batch = np.where(t < 60, 1, np.where(t < 130, 2, 4))
    mc = simulate_sgd(small_model, lr, batch_size=batch, seeds=4000, rng=103)
    check_agreement(mc, loss_curve(small_model, lr, batch_size=batch).loss)


@pytest.fixture(scope="module")
def heavy_ball_run(small_model):
    """beta = 0.9 at eta = 0.025 (the mean-square threshold of this model is eta ~ 0.07)."""
    lr = np.full(300, 0.025)
    return lr, simulate_sgd(small_model, lr, momentum=0.9, seeds=5000, rng=104)


def test_heavy_ball_constant_momentum(small_model, heavy_ball_run):
    lr, mc = heavy_ball_run
    check_agreement(mc, loss_curve(small_model, lr, momentum=0.9).loss)


def test_heavy_ball_rejects_recursion_without_curvature(small_model, heavy_ball_run):
    """Power check: E[g^2] with (1 + 1/m) lam^2 A replaced by lam^2 A is detected."""
    lr, mc = heavy_ball_run
    beta, lam, noise = 0.9, small_model.eigenvalues, small_model.noise_variance
    a = small_model.initial_error.copy()
    b, c = np.zeros_like(a), np.zeros_like(a)
    wrong = [lam @ a]
    for eta in lr:
        c = beta**2 * c + 2 * beta * lam * b + lam**2 * a + lam * (lam @ a + noise)
        cross = beta * b + lam * a
        b = cross - eta * c
        a = a - 2 * eta * cross + eta**2 * c
        wrong.append(lam @ a)
    assert max_abs_z(mc, np.array(wrong), checkpoints(lr.size)) > Z_REJECT


def test_heavy_ball_scheduled_momentum_and_lr(small_model):
    """beta_t ramps 0 -> 0.9 over 100 steps; eta_t decays as a cosine; batch 2."""
    horizon = 300
    t = np.arange(horizon)
    beta = 0.9 * np.minimum(t / 100, 1.0)
    lr = 0.04 * (0.55 + 0.45 * np.cos(np.pi * t / horizon))
    mc = simulate_sgd(small_model, lr, batch_size=2, momentum=beta, seeds=3000, rng=105)
    check_agreement(mc, loss_curve(small_model, lr, batch_size=2, momentum=beta).loss)


def test_finite_size_residual(finite_size_model):
    """Unseen teacher modes: extra label noise R_N and a loss floor R_N."""
    model = finite_size_model
    assert model.residual > 0.1
    horizon = 200
    lr = np.full(horizon, 0.35 * stability_threshold(model, 1))
    mc = simulate_sgd(model, lr, seeds=6000, rng=106)
    expected = loss_curve(model, lr).loss
    check_agreement(mc, expected)
    # Without the residual in the noise the recursion would be visibly wrong.
    without = loss_curve(Model(model.eigenvalues, model.initial_error, model.noise_variance), lr).loss
    assert max_abs_z(mc, without + model.residual, checkpoints(horizon)) > Z_REJECT


def test_positive_teacher_signs_same_mean(small_model):
    horizon = 100
    lr = np.full(horizon, 0.35 * stability_threshold(small_model, 1))
    mc = simulate_sgd(small_model, lr, seeds=4000, rng=107, teacher_signs="positive")
    check_agreement(mc, loss_curve(small_model, lr).loss)


def test_zero_learning_rate_keeps_loss_exactly(finite_size_model):
    mc = simulate_sgd(finite_size_model, np.zeros(5), momentum=0.5, seeds=3, rng=0)
    expected = finite_size_model.initial_loss + finite_size_model.residual
    assert_allclose(mc.loss, expected, rtol=RTOL_INITIAL)
    assert_array_equal(mc.zscore(mc.mean[0]), 0.0)


def test_same_rng_same_result(small_model):
    lr = np.full(10, 0.1)
    first = simulate_sgd(small_model, lr, seeds=5, rng=7).loss
    again = simulate_sgd(small_model, lr, seeds=5, rng=np.random.default_rng(7)).loss
    assert_array_equal(first, again)


def test_divergence_gives_inf_without_warnings(small_model):
    lr = np.full(400, 10.0 * stability_threshold(small_model, 1))
    mc = simulate_sgd(small_model, lr, seeds=4, rng=0)
    assert not np.all(np.isfinite(mc.loss[:, -1]))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 1.5}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"momentum": 1.0}, "momentum"),
        ({"seeds": 0}, "seeds"),
        ({"rng": -1}, "rng"),
        ({"teacher_signs": "negative"}, "teacher_signs"),
    ],
)
def test_invalid_options_name_the_field(small_model, kwargs, field):
    with pytest.raises(ProblemError) as err:
        simulate_sgd(small_model, np.full(3, 0.1), **kwargs)
    assert err.value.field == field


@pytest.mark.parametrize("lr", [np.array([0.1, -0.1]), np.ones((2, 3)), np.array([0.1, np.nan])])
def test_invalid_learning_rate(small_model, lr):
    with pytest.raises(ProblemError) as err:
        simulate_sgd(small_model, lr)
    assert err.value.field == "learning_rate"


def test_result_statistics_and_immutability():
    result = MonteCarloResult(loss=[[1.0, 2.0, 5.0], [3.0, 4.0, 5.0]])
    assert (result.seeds, result.horizon) == (2, 2)
    assert_allclose(result.mean, [2.0, 3.0, 5.0], rtol=RTOL_INITIAL)
    assert_allclose(result.stderr, [1.0, 1.0, 0.0], rtol=RTOL_INITIAL)  # std(ddof=1) / sqrt(2)
    assert_allclose(result.zscore([0.0, 3.0, 5.0]), [2.0, 0.0, 0.0], rtol=RTOL_INITIAL)
    assert_array_equal(result.zscore([0.0, 3.0, 4.0])[2], np.inf)
    assert not result.loss.flags.writeable
    with pytest.raises(ProblemError) as err:
        MonteCarloResult(loss=np.ones(3))
    assert err.value.field == "loss"
