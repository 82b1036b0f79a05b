"""THEORY §4 predictions, phases, power-law fits, schedule-shape measures and horizon parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from numpy.testing import assert_allclose

from schedopt.errors import ProblemError
from schedopt.problem import Model
from schedopt.studies.phase import parse_horizons
from schedopt.theory import (
    PHASE_TOLERANCE,
    anneal_fraction,
    estimate_exponents,
    fit_power_law,
    phase,
    plateau_height,
    predicted_exponents,
)

EXACT_RTOL = 1e-12  # closed forms and exact power-law data, up to float64 rounding in logs
EXACT_ATOL = 1e-12
FIT_RTOL = 1e-10  # OLS standard error computed two ways

PREDICTION_KEYS = {
    "xi",
    "delta",
    "loss_optimal",
    "loss_constant",
    "constant_lr",
    "anneal_fraction",
    "batch_ramp",
    "model_size",
    "loss_compute",
}


# --- predicted exponents (THEORY §4 table, worked by hand)


def assert_predictions(a, b, expected):
    got = predicted_exponents(a, b)
    assert set(got) == PREDICTION_KEYS
    for key, value in expected.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert_allclose(got[key], value, rtol=EXACT_RTOL, err_msg=key)


def test_predictions_easy_phase():
    # a = 2.5, b = 1.2 (problems/easy-phase.toml): xi = 0.52, delta = 1.4, L_T ~ T^-0.6
    assert_predictions(
        2.5,
        1.2,
        {
            "xi": 0.52,
            "delta": 1.4,
            "loss_optimal": 0.6,
            "loss_constant": 1.5 / 2.7,
            "constant_lr": 1.5 / 2.7,
            "anneal_fraction": None,
            "batch_ramp": 1 / 2.4 - 1,
            "model_size": 1 / 3.5,
            "loss_compute": 1.5 / 3.5,
        },
    )


def test_predictions_easy_phase_second_point():
    # a = 3, b = 1.5: xi = 1/2, delta = 2, L_T ~ T^-2/3, constant: 2/3.5
    assert_predictions(
        3.0,
        1.5,
        {
            "xi": 0.5,
            "delta": 2.0,
            "loss_optimal": 2 / 3,
            "loss_constant": 2 / 3.5,
            "anneal_fraction": None,
            "batch_ramp": -2 / 3,
            "model_size": 0.25,
            "loss_compute": 0.5,
        },
    )


def test_predictions_hard_phase():
    # a = 1.5, b = 2.5: no xi decay, anneal fraction ~ T^-(1/1.5), L_T ~ T^-(0.5/2.5)
    assert_predictions(
        1.5,
        2.5,
        {
            "xi": 0.0,
            "delta": None,
            "loss_optimal": 0.2,
            "loss_constant": 0.5 / 3.0,
            "constant_lr": 0.5 / 3.0,
            "anneal_fraction": 2 / 3,
            "batch_ramp": None,
            "model_size": 1 / 3.5,
            "loss_compute": 0.5 / 3.5,
        },
    )


def test_predictions_boundary():
    # a = b = 1.5: both loss formulas give (a-1)/a = 1/3; no phase-specific exponents
    assert_predictions(
        1.5,
        1.5,
        {
            "xi": 0.0,
            "delta": None,
            "loss_optimal": 1 / 3,
            "loss_constant": 0.25,
            "anneal_fraction": None,
            "batch_ramp": None,
            "model_size": 0.4,
            "loss_compute": 0.2,
        },
    )


def test_predictions_are_continuous_across_the_boundary():
    eps = 1e-9
    easy, hard, edge = (predicted_exponents(*ab) for ab in ((1.5 + eps, 1.5), (1.5, 1.5 + eps), (1.5, 1.5)))
    for key in ("xi", "loss_optimal", "loss_constant", "model_size", "loss_compute"):
        assert_allclose(easy[key], edge[key], atol=1e-8, err_msg=key)
        assert_allclose(hard[key], edge[key], atol=1e-8, err_msg=key)


# --- phases


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(2.5, 1.2, "easy"), (3.0, 1.5, "easy"), (1.5, 2.5, "hard"), (1.2, 1.8, "hard"), (1.5, 1.5, "boundary")],
)
def test_phase_of_power_law_models(a, b, expected):
    assert phase(Model.powerlaw(a, b, 30, noise_std=0.1)) == expected


def test_phase_boundary_tolerance():
    just_inside = 1.5 * (1 + 0.5 * PHASE_TOLERANCE)
    just_outside = 1.5 * (1 + 10 * PHASE_TOLERANCE)
    assert phase(Model.powerlaw(just_inside, 1.5, 10)) == "boundary"
    assert phase(Model.powerlaw(just_outside, 1.5, 10)) == "easy"
    assert phase(Model.powerlaw(1.5, just_outside, 10)) == "hard"


# --- estimating (a, b) of a custom spectrum


def custom_powerlaw(a: float, b: float, n: int, *, permute: bool = False) -> Model:
    k = np.arange(1, n + 1, dtype=np.float64)
    lam, c0 = k**-b, 0.7 * k ** (b - a)
    if permute:
        order = np.random.default_rng(5).permutation(n)
        lam, c0 = lam[order], c0[order]
    return Model(eigenvalues=lam, initial_error=c0, noise_variance=0.1)


@pytest.mark.parametrize(("a", "b"), [(2.5, 1.2), (1.5, 2.5), (1.7, 1.7)])
@pytest.mark.parametrize("permute", [False, True])
def test_estimate_exponents_recovers_an_exact_power_law(a, b, permute):
    model = custom_powerlaw(a, b, 200, permute=permute)
    assert not model.is_powerlaw
    assert_allclose(estimate_exponents(model), (a, b), rtol=EXACT_RTOL)


def test_phase_of_a_custom_spectrum():
    assert phase(custom_powerlaw(2.5, 1.2, 100)) == "easy"
    assert phase(custom_powerlaw(1.5, 2.5, 100)) == "hard"


def test_estimate_exponents_of_a_power_law_model_is_exact():
    assert estimate_exponents(Model.powerlaw(2.5, 1.2, 10)) == (2.5, 1.2)


def test_estimate_exponents_ignores_modes_without_initial_error():
    model = custom_powerlaw(2.0, 1.3, 50)
    c0 = model.initial_error.copy()
    c0[[3, 10, 20]] = 0.0
    sparse = Model(eigenvalues=model.eigenvalues, initial_error=c0)
    a, b = estimate_exponents(sparse)
    assert_allclose(b, 1.3, rtol=EXACT_RTOL)
    # the zero-error modes are dropped, but the remaining points keep their ranks k, so the
    # fitted a is no longer exact; it stays close
    assert abs(a - 2.0) < 0.05


def test_estimate_exponents_needs_three_modes():
    with pytest.raises(ProblemError, match="at least 3 modes") as info:
        estimate_exponents(custom_powerlaw(2.0, 1.5, 2))
    assert info.value.field == "eigenvalues"
    with pytest.raises(ProblemError, match="initial error on at least 3 modes") as info:
        estimate_exponents(Model(eigenvalues=[1.0, 0.5, 0.2, 0.1], initial_error=[1.0, 1.0, 0.0, 0.0]))
    assert info.value.field == "initial_error"


# --- power-law fits


def test_fit_power_law_recovers_an_exact_power_law():
    x = np.geomspace(10, 1e4, 9)
    fit = fit_power_law(x, 3.0 * x**-0.7)
    assert_allclose(fit.exponent, -0.7, rtol=EXACT_RTOL)
    assert_allclose(fit.prefactor, 3.0, rtol=EXACT_RTOL)
    assert fit.residual < EXACT_ATOL
    assert fit.stderr < EXACT_ATOL
    assert (fit.x_min, fit.x_max, fit.points) == (10.0, 1e4, 9)
    assert fit.to_dict()["exponent"] == fit.exponent


def test_fit_power_law_residual_and_stderr_match_ordinary_least_squares():
    rng = np.random.default_rng(6)
    x = np.geomspace(1, 1000, 20)
    noise = rng.normal(0.0, 0.1, x.size)
    y = 2.0 * x**1.3 * np.exp(noise)
    fit = fit_power_law(x, y)
    ref = scipy.stats.linregress(np.log(x), np.log(y))
    assert_allclose(fit.exponent, ref.slope, rtol=FIT_RTOL)
    assert_allclose(fit.prefactor, math.exp(ref.intercept), rtol=FIT_RTOL)
    assert_allclose(fit.stderr, ref.stderr, rtol=FIT_RTOL)
    resid = np.log(y) - (ref.intercept + ref.slope * np.log(x))
    assert_allclose(fit.residual, np.sqrt(np.mean(resid**2)), rtol=FIT_RTOL)
    # the exponent is within 4 standard errors of the truth (noise sigma 0.1 in log y)
    assert abs(fit.exponent - 1.3) < 4 * fit.stderr


def test_fit_power_law_drops_non_positive_and_non_finite_points():
    x = np.array([1.0, 2.0, 4.0, 8.0, -1.0, 16.0, np.nan])
    y = np.array([5.0, 5.0 * 2**-2, 0.0, 5.0 * 8**-2, 1.0, np.inf, 1.0])
    fit = fit_power_law(x, y)
    assert fit.points == 3
    assert_allclose(fit.exponent, -2.0, rtol=EXACT_RTOL)
    assert (fit.x_min, fit.x_max) == (1.0, 8.0)


def test_fit_power_law_with_two_points_has_no_stderr():
    fit = fit_power_law([1.0, 10.0], [1.0, 0.1])
    assert_allclose(fit.exponent, -1.0, rtol=EXACT_RTOL)
    assert math.isnan(fit.stderr)


def test_fit_power_law_needs_two_points():
    with pytest.raises(ProblemError, match="at least 2 positive points, got 1"):
        fit_power_law([1.0, 2.0], [1.0, 0.0])


# --- shape measures on a hand-made warmup-stable-decay schedule

T = 1000
PEAK = 0.25  # dyadic: the thresholds below (PEAK / 2, PEAK / 4) are hit exactly in float64


def wsd(cooldown: int, *, floor: float = 0.0) -> np.ndarray:
    """Stable at PEAK, then linear from PEAK (at step T - cooldown) toward ``floor`` at step T."""
    t = np.arange(T)
    start = T - cooldown
    decay = PEAK - (PEAK - floor) * (t - start) / cooldown
    return np.where(t < start, PEAK, decay)


def test_plateau_height_of_wsd():
    assert plateau_height(wsd(200)) == PEAK
    # cooldown from step 200: the window t = 100..499 holds 100 plateau values and 300 decaying
    # ones; the median is the mean of the values at t = 299 and t = 300
    assert_allclose(plateau_height(wsd(800)), PEAK * (1 - 99.5 / 800), rtol=EXACT_RTOL)


def test_plateau_height_window():
    lr = np.concatenate([np.full(500, 0.2), np.full(500, 0.05)])
    assert plateau_height(lr) == 0.2
    assert plateau_height(lr, window=(0.6, 0.9)) == 0.05


def test_anneal_fraction_of_linear_cooldown():
    # lr >= PEAK / 2 until step 900 (1000 - t >= 100): 99 steps of 1000 come after it
    assert_allclose(anneal_fraction(wsd(200)), 0.099, rtol=EXACT_RTOL)
    # level 0.25: lr >= PEAK / 4 up to 1000 - t >= 50, t = 950
    assert_allclose(anneal_fraction(wsd(200), level=0.25), 0.049, rtol=EXACT_RTOL)


def test_anneal_fraction_of_a_step_drop():
    lr = np.where(np.arange(T) < 800, PEAK, 0.01)
    assert_allclose(anneal_fraction(lr), 0.2, rtol=EXACT_RTOL)


def test_anneal_fraction_of_a_constant_schedule_is_zero():
    assert anneal_fraction(np.full(T, PEAK)) == 0.0


def test_anneal_fraction_scales_with_the_cooldown():
    assert_allclose(anneal_fraction(wsd(400)), (T - 1 - 800) / T, rtol=EXACT_RTOL)


# --- horizons


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e2:1e4:3", [100, 1000, 10000]),
        ("1e2:1e5:4", [100, 1000, 10000, 100000]),
        ("100:400:3", [100, 200, 400]),
        ("100,200,400", [100, 200, 400]),
        ("400, 100,200", [100, 200, 400]),
        ("1e2,1e3", [100, 1000]),
        ("100,100,200", [100, 200]),
    ],
)
def test_parse_horizons(text, expected):
    got = parse_horizons(text)
    assert got == expected
    assert all(type(h) is int for h in got)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "100",
        "100,100",
        "0,100",
        "-5,10",
        "1e2:1e4",
        "1e2:1e4:3:4",
        "1e4:1e2:3",
        "1e2:1e2:3",
        "1e2:1e4:1",
        "0:1e4:3",
        "1e2:1e4:x",
        "1:1.4:5",
        "100;200",
    ],
)
def test_parse_horizons_rejects_bad_text(text):
    with pytest.raises(ProblemError, match="`--horizons`") as info:
        parse_horizons(text)
    assert info.value.field == "horizons"
