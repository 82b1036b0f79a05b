"""Baseline schedule families and their tuning on the exact recursion.

The tuning tests compare against optima found independently: a closed form of
the loss at a constant learning rate (matrix powers, not the recursion) and
dense brute-force scans of each family's parameters.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from helpers import capped_problem
from numpy.testing import assert_allclose

from schedopt.baselines import (
    BASELINES,
    Cosine,
    TunedBaseline,
    _horizon,
    _objective,
    _tuning,
    baseline_schedule,
    tune_baseline,
    tune_baselines,
)
from schedopt.dynamics.compression import auto_compress
from schedopt.dynamics.recursion import final_loss
from schedopt.dynamics.stability import momentum_stability_threshold, stability_threshold
from schedopt.errors import ProblemError
from schedopt.problem import ControlSpec, Model, Problem, Training

#: Formula checks: float64 round-off only.
FORMULA_RTOL = 1e-12
#: Compiled against eager evaluation of ``wsd_sqrt``: its step means difference two
#: powers of order 1 (cancellation of ~1e-12 relative in the last steps).
STEP_MEAN_RTOL = 1e-10
#: The tuned loss may exceed the best point of a dense scan by at most this (relative).
SCAN_RTOL = 1e-9
#: Two evaluations of the same schedule by different code paths of the recursion.
ENGINE_RTOL = 1e-12
#: The tuned optimum against the optimum of the closed form (relative, in loss).
CLOSED_FORM_RTOL = 1e-9
#: The search at a shorter horizon, polished at the horizon, against the search at the horizon
#: (relative, in loss; either can be the lower, each stops at the search's tolerance).
SHORTER_RTOL = 1e-7
#: A compressed spectrum's final loss against the full one's (``dynamics.compression``).
COMPRESSION_RTOL = 1e-10


_problem = capped_problem


def _scan(problem: Problem, name: str, values: np.ndarray) -> np.ndarray:
    """Final losses of many parameter sets ``values[i] = (peak, shape...)`` (one batched run)."""
    family = BASELINES[name]
    lr = np.asarray(jax.vmap(lambda x: family.values(x, problem.horizon))(jnp.asarray(values)))
    return np.asarray(final_loss(problem.model, lr, batch_size=problem.training.batch_size), dtype=np.float64)


# --------------------------------------------------------------------------- formulas


def test_registry_names_and_parameters():
    assert list(BASELINES) == [
        "constant",
        "power_law",
        "cosine",
        "linear",
        "wsd_linear",
        "wsd_sqrt",
        "exponential",
    ]
    assert BASELINES["power_law"].param_names == ("peak", "exponent")
    assert BASELINES["power_law"].bounds["exponent"] == (0.0, 1.5)
    assert BASELINES["wsd_sqrt"].bounds["cooldown_fraction"] == (1e-4, 1.0)
    assert BASELINES["exponential"].bounds["final_ratio"] == (1e-6, 1.0)
    assert BASELINES["cosine"].param_names == ("peak",)


def test_constant_power_law_exponential_values():
    T = 50
    assert_allclose(baseline_schedule("constant", {"peak": 0.3}, T), np.full(T, 0.3), rtol=FORMULA_RTOL)
    t = np.arange(T)
    assert_allclose(
        baseline_schedule("power_law", {"peak": 0.4, "exponent": 0.7}, T),
        0.4 * (t + 1.0) ** -0.7,
        rtol=FORMULA_RTOL,
    )
    lr = baseline_schedule("exponential", {"peak": 0.5, "final_ratio": 1e-3}, T)
    assert lr[0] == pytest.approx(0.5, rel=FORMULA_RTOL)
    assert lr[-1] == pytest.approx(0.5e-3, rel=FORMULA_RTOL)
    assert_allclose(lr[1:] / lr[:-1], np.full(T - 1, 1e-3 ** (1 / (T - 1))), rtol=FORMULA_RTOL)


def test_linear_is_the_midpoint_value():
    lr = baseline_schedule("linear", {"peak": 2.0}, 10)
    assert lr[0] == pytest.approx(2.0 * 0.95, rel=FORMULA_RTOL)
    assert lr[9] == pytest.approx(2.0 * 0.05, rel=FORMULA_RTOL)
    assert lr.sum() == pytest.approx(2.0 * 10 / 2, rel=FORMULA_RTOL)  # area under the line


def test_cosine_is_the_step_mean():
    T, peak = 40, 0.8
    lr = baseline_schedule("cosine", {"peak": peak}, T)
    t = np.arange(T)
    # mean of cos(pi s / T) over [t, t+1], by hand
    mean_cos = (T / math.pi) * (np.sin(math.pi * (t + 1) / T) - np.sin(math.pi * t / T))
    assert_allclose(lr, peak * 0.5 * (1 + mean_cos), rtol=FORMULA_RTOL, atol=1e-15)
    # the two halves of a cosine to zero add up to the peak, step by step
    assert_allclose(lr + lr[::-1], np.full(T, peak), rtol=FORMULA_RTOL)
    floor = baseline_schedule(Cosine(final_ratio=0.1), {"peak": peak}, T)
    assert_allclose(floor, 0.1 * peak + 0.9 * lr, rtol=FORMULA_RTOL)


def test_wsd_linear_values():
    T, peak = 100, 0.5
    lr = baseline_schedule("wsd_linear", {"peak": peak, "cooldown_fraction": 0.2}, T)
    assert_allclose(lr[:80], np.full(80, peak), rtol=0)  # constant before the cooldown
    assert lr[80] == pytest.approx(peak * (100 - 80.5) / 20, rel=FORMULA_RTOL)
    assert lr[99] == pytest.approx(peak * 0.5 / 20, rel=FORMULA_RTOL)
    # cooldown start s0 = 79.5 inside step 79: half a step at the peak, half on the line
    lr = baseline_schedule("wsd_linear", {"peak": peak, "cooldown_fraction": 0.205}, T)
    assert_allclose(lr[:79], np.full(79, peak), rtol=0)
    on_line = (100 - 79.75) / 20.5  # mean of (T - s) / (fT) over [79.5, 80]
    assert lr[79] == pytest.approx(peak * (0.5 + 0.5 * on_line), rel=FORMULA_RTOL)
    # f = 1 is the linear schedule
    assert_allclose(
        baseline_schedule("wsd_linear", {"peak": peak, "cooldown_fraction": 1.0}, T),
        baseline_schedule("linear", {"peak": peak}, T),
        rtol=FORMULA_RTOL,
    )


def test_wsd_sqrt_values():
    T, peak = 100, 0.5
    lr = baseline_schedule("wsd_sqrt", {"peak": peak, "cooldown_fraction": 0.2}, T)
    assert_allclose(lr[:80], np.full(80, peak), rtol=0)
    # mean of 1 - sqrt((s - 80) / 20) over [80, 81] and over [99, 100]
    assert lr[80] == pytest.approx(peak * (1 - (2 / 3) / math.sqrt(20)), rel=FORMULA_RTOL)
    assert lr[99] == pytest.approx(peak * (1 - (2 / 3) * 20 * (1 - (19 / 20) ** 1.5)), rel=FORMULA_RTOL)


def test_every_family_respects_its_bounds():
    rng = np.random.default_rng(0)
    for name, family in BASELINES.items():
        lows = [0.01] + [p.lower for p in family.shape_parameters]
        highs = [2.0] + [p.upper for p in family.shape_parameters]
        for x in [lows, highs, *rng.uniform(lows, highs, size=(3, len(lows)))]:
            params = dict(zip(family.param_names, map(float, x), strict=True))
            for T in (1, 7, 300):
                lr = baseline_schedule(name, params, T)
                assert lr.shape == (T,)
                assert np.all(np.isfinite(lr)), name
                assert np.all(lr >= 0.0), name
                assert np.all(lr <= params["peak"] * (1 + FORMULA_RTOL)), name
                assert np.all(np.diff(lr) <= 1e-15), f"{name} is not non-increasing"


def test_schedule_closure_is_jit_safe_and_holds_past_the_horizon():
    family = BASELINES["wsd_sqrt"]
    params = {"peak": 0.3, "cooldown_fraction": 0.25}
    fn = jax.jit(family.schedule(params, 64))
    values = np.asarray(family.values(params, 64))
    assert_allclose(np.asarray(jax.vmap(fn)(jnp.arange(64))), values, rtol=FORMULA_RTOL)
    assert float(fn(1000)) == pytest.approx(values[-1], rel=FORMULA_RTOL)


def test_values_are_differentiable_in_the_shape_parameters():
    points = {
        "power_law": [[0.3, 0.0], [0.3, 0.8]],
        "wsd_linear": [[0.3, 0.25], [0.3, 0.3], [0.3, 1.0]],  # 0.25: the cooldown starts on a step edge
        "wsd_sqrt": [[0.3, 0.25], [0.3, 0.3], [0.3, 1.0]],
        "exponential": [[0.3, 1e-6], [0.3, 1.0]],
    }
    for name, x in points.items():
        family = BASELINES[name]
        grad = jax.jit(jax.vmap(jax.grad(lambda p, f=family: jnp.sum(f.values(p, 64)))))(jnp.asarray(x))
        assert np.all(np.isfinite(np.asarray(grad))), name


def test_bad_input_names_the_parameter():
    with pytest.raises(ProblemError, match="`name` must be one of"):
        baseline_schedule("cosine_restarts", {"peak": 0.1}, 10)
    with pytest.raises(ProblemError, match="exactly the keys"):
        baseline_schedule("power_law", {"peak": 0.1}, 10)
    with pytest.raises(ProblemError, match="`exponent` of power_law must be in"):
        baseline_schedule("power_law", {"peak": 0.1, "exponent": 2.0}, 10)
    with pytest.raises(ProblemError, match="`peak` must be a positive number"):
        baseline_schedule("constant", {"peak": -1.0}, 10)
    with pytest.raises(ProblemError, match="`horizon` must be a positive integer"):
        baseline_schedule("constant", {"peak": 0.1}, 0)
    with pytest.raises(ProblemError, match="`final_ratio` must be in"):
        Cosine(final_ratio=1.5)


# --------------------------------------------------------------------------- tuning


def _closed_form_constant_loss(model: Model, eta: float, horizon: int, batch_size: float = 1.0) -> float:
    r"""L_T at a constant learning rate from the eigendecomposition of the one-step map.

    :math:`c_T = M^T c_0 + \frac{\eta^2 \sigma^2}{m} \sum_{s<T} M^s \lambda` with the symmetric
    :math:`M = \mathrm{diag}(d) + \frac{\eta^2}{m}\lambda\lambda^\top` (THEORY §2.1).
    """
    lam, c0, m = model.eigenvalues, model.initial_error, batch_size
    d = 1.0 - 2.0 * eta * lam + (1.0 + 1.0 / m) * eta**2 * lam**2
    w, q = np.linalg.eigh(np.diag(d) + eta**2 / m * np.outer(lam, lam))
    power = w**horizon
    geometric = -np.expm1(horizon * np.log(w)) / (1.0 - w)  # sum_{s<T} w^s
    c_T = q @ (power * (q.T @ c0)) + eta**2 * model.effective_noise / m * (q @ (geometric * (q.T @ lam)))
    return float(lam @ c_T) + model.residual


def test_constant_optimum_matches_closed_form_and_dense_scan():
    model = Model.powerlaw(2.0, 1.5, 20, noise_std=0.5)
    problem = _problem(model, 300)
    tuned = tune_baseline(problem, "constant")

    lo, hi = problem.learning_rate.max * 1e-4, problem.learning_rate.max
    best = scipy.optimize.minimize_scalar(
        lambda x: _closed_form_constant_loss(model, math.exp(x), 300),
        bounds=(math.log(lo), math.log(hi)),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert math.exp(best.x) < 0.9 * hi  # an interior optimum
    assert tuned.final_loss == pytest.approx(best.fun, rel=CLOSED_FORM_RTOL)
    assert tuned.params["peak"] == pytest.approx(math.exp(best.x), rel=1e-4)

    peaks = np.geomspace(lo, hi, 2001)
    scan = _scan(problem, "constant", peaks[:, None])
    assert tuned.final_loss <= scan.min() * (1 + SCAN_RTOL)


def _dense_values(name: str, problem: Problem) -> np.ndarray:
    """A dense (peak, shape) grid: 161 log-spaced peaks times 81-121 shape values."""
    hi = problem.learning_rate.max
    peaks = np.geomspace(hi * 1e-3, hi, 161)
    fractions = np.unique(np.r_[np.geomspace(1e-3, 1, 81), np.linspace(0.5, 1, 41)])
    shape = {
        "power_law": np.linspace(0.0, 1.5, 81),
        "wsd_linear": fractions,
        "wsd_sqrt": fractions,
        "exponential": np.geomspace(1e-6, 1, 81),
    }[name]
    p, s = np.meshgrid(peaks, shape, indexing="ij")
    return np.stack([p.ravel(), s.ravel()], axis=1)


@pytest.mark.parametrize(
    ("a", "b", "noise_std"),
    [(3.0, 1.5, 0.3), (1.5, 2.5, 0.3)],
    ids=["easy-phase", "hard-phase"],
)
@pytest.mark.parametrize("name", ["power_law", "wsd_linear", "wsd_sqrt", "exponential"])
@pytest.mark.parametrize("search_horizon", [None, 30], ids=["at-T", "at-T/10"])
def test_two_parameter_families_beat_a_dense_scan(name, a, b, noise_std, search_horizon):
    problem = _problem(Model.powerlaw(a, b, 20, noise_std=noise_std), 300)
    tuned = tune_baseline(problem, name, search_horizon=search_horizon)
    scan = _scan(problem, name, _dense_values(name, problem))
    assert tuned.final_loss <= scan.min() * (1 + SCAN_RTOL)
    assert tuned.converged


@pytest.mark.parametrize(
    ("a", "b", "noise_std"),
    [(3.0, 1.5, 0.3), (1.5, 2.5, 0.3)],
    ids=["easy-phase", "hard-phase"],
)
def test_search_at_a_shorter_horizon_finds_the_optimum_at_the_horizon(a, b, noise_std):
    """The long-horizon path (grid and searches at T / 10, carried to T) against the search at T."""
    problem = _problem(Model.powerlaw(a, b, 20, noise_std=noise_std), 2000)
    for name in BASELINES:
        at_horizon = tune_baseline(problem, name)
        shorter = tune_baseline(problem, name, search_horizon=200)
        assert shorter.converged, name
        assert shorter.at_bounds == at_horizon.at_bounds, name
        assert_allclose(shorter.final_loss, at_horizon.final_loss, rtol=SHORTER_RTOL, err_msg=name)
        assert shorter.final_loss <= at_horizon.final_loss * (1 + SCAN_RTOL), name
        again = final_loss(problem.model, shorter.learning_rate, batch_size=1.0)
        assert shorter.final_loss == pytest.approx(again, rel=ENGINE_RTOL), name


def test_long_horizons_search_at_a_hundredth_of_the_horizon():
    model = Model.powerlaw(2.0, 2.0, 1000, noise_std=0.5)  # compressed to 128 modes
    for horizon, expected in (
        (100_000, 100_000),
        (390_000, 390_000),
        (1_000_000, 10_000),
        (10_000_000, 100_000),
    ):
        obj = _objective._Objective(_problem(model, horizon), BASELINES["cosine"], 1e-6)
        assert obj.n_modes == 128
        assert _horizon.shorter_horizon(obj, None) == expected
        assert _horizon.shorter_horizon(obj, 777) == 777


def test_fitted_batches_give_the_losses_of_full_batches():
    problem = _problem(Model.powerlaw(2.0, 1.5, 20, noise_std=0.3), 300)
    u = np.random.default_rng(0).uniform(size=(11, 2))  # a call of 8 rows and one of 3
    obj = _objective._Objective(problem, BASELINES["wsd_sqrt"], 1e-6)
    full = obj.loss(u)
    obj.fitted_batches = True
    fitted, one = obj.loss(u), obj.loss(u[:1])
    assert_allclose(fitted, full, rtol=ENGINE_RTOL)
    assert_allclose(one, full[:1], rtol=ENGINE_RTOL)
    assert_allclose(full, _scan(problem, "wsd_sqrt", obj.natural(u)), rtol=ENGINE_RTOL)


def test_beyond_the_full_check_work_the_compressed_loss_is_reported(monkeypatch):
    model = Model.powerlaw(2.0, 1.5, 600, noise_std=0.3)
    problem = _problem(model, 300)
    checked = tune_baseline(problem, "cosine")
    monkeypatch.setattr(_tuning, "FULL_CHECK_WORK", 300 * 600 - 1)
    unchecked = tune_baseline(problem, "cosine")
    assert unchecked.params == checked.params  # the same search
    modes = auto_compress(model.eigenvalues, model.initial_error)
    compressed = final_loss(model, unchecked.learning_rate, batch_size=1.0, modes=modes)
    assert unchecked.final_loss == pytest.approx(compressed, rel=ENGINE_RTOL)
    assert unchecked.final_loss == pytest.approx(checked.final_loss, rel=COMPRESSION_RTOL)


def test_tuned_record_is_consistent_with_the_recursion():
    model = Model.powerlaw(1.5, 1.5, 20, noise_std=0.1, finite_size=True)
    problem = _problem(model, 300, batch_size=4.0)
    tuned = tune_baseline(problem, "wsd_sqrt")
    assert isinstance(tuned, TunedBaseline)
    assert tuned.learning_rate.shape == (300,)
    assert not tuned.learning_rate.flags.writeable
    assert_allclose(
        tuned.learning_rate, baseline_schedule("wsd_sqrt", tuned.params, 300), rtol=STEP_MEAN_RTOL
    )
    again = final_loss(model, tuned.learning_rate, batch_size=4.0)
    assert tuned.final_loss == pytest.approx(again, rel=ENGINE_RTOL)
    assert tuned.final_loss > model.residual
    assert tuned.evaluations > 0 and tuned.wall_time > 0


def test_momentum_and_sample_budget_use_the_fixed_settings():
    model = Model.powerlaw(2.0, 1.5, 20, noise_std=0.3)
    threshold = momentum_stability_threshold(model, 0.5, 1.0)
    spec = ControlSpec("learning_rate", 0.0, 0.9 * threshold, blocks=10)
    heavy_ball = Problem("hb", model, Training(horizon=300, momentum=0.5), {"learning_rate": spec})
    tuned = tune_baseline(heavy_ball, "linear")
    assert tuned.final_loss == pytest.approx(
        final_loss(model, tuned.learning_rate, momentum=0.5), rel=ENGINE_RTOL
    )
    budget = Problem(
        "budget",
        model,
        Training(horizon=300),
        {"learning_rate": spec, "batch_size": ControlSpec("batch_size", 1.0, 16.0, blocks=10)},
        sample_budget=1200,
    )
    tuned = tune_baseline(budget, "linear")  # batch size D / T = 4
    assert tuned.final_loss == pytest.approx(
        final_loss(model, tuned.learning_rate, batch_size=4.0), rel=ENGINE_RTOL
    )


def test_peak_stays_within_the_control_bounds():
    model = Model.powerlaw(1.5, 2.5, 20, noise_std=0.1)
    threshold = stability_threshold(model, 1.0)
    capped = _problem(model, 300, cap=0.05)  # the hard phase wants a large peak: the cap binds
    tuned = tune_baseline(capped, "cosine")
    assert tuned.params["peak"] == pytest.approx(0.05 * threshold, rel=1e-15)
    assert tuned.at_bounds == ("peak",)
    floor = _problem(Model.powerlaw(2.5, 1.2, 20, noise_std=1.0), 300, lr_min=0.2)
    tuned = tune_baseline(floor, "constant")  # much noise wants a small rate: the floor binds
    assert tuned.params["peak"] == pytest.approx(0.2, rel=1e-15)


def test_other_problems_with_the_same_size_do_not_recompile():
    first = _problem(Model.powerlaw(2.0, 1.5, 20, noise_std=0.5), 300)
    tune_baseline(first, "exponential")
    size = _objective._batch_final_loss._cache_size()
    second = _problem(Model.powerlaw(1.3, 2.2, 20, noise_std=0.1), 300, cap=0.5)
    tune_baselines(second, ["power_law", "wsd_linear", "linear"])
    assert _objective._batch_final_loss._cache_size() == size


def test_bad_options_name_the_option():
    problem = _problem(Model.powerlaw(2.0, 1.5, 10), 50)
    with pytest.raises(ProblemError, match="`grid`"):
        tune_baseline(problem, "constant", grid=(1, 4))
    with pytest.raises(ProblemError, match="`tol`"):
        tune_baseline(problem, "constant", tol=0.0)
    with pytest.raises(ProblemError, match="`peak_range`"):
        tune_baseline(problem, "constant", peak_range=2.0)
    with pytest.raises(ProblemError, match="`search_horizon`"):
        tune_baseline(problem, "constant", search_horizon=51)


def test_cap_above_the_stability_threshold_is_searched_across_it():
    """The peak search crosses the threshold: as good as with the cap below it, some peaks above it."""
    model = Model.powerlaw(2.0, 2.0, 50, noise_std=0.5, initial_loss="raw")
    threshold = stability_threshold(model, 5.0)
    above = tune_baselines(_problem(model, 100, cap=1.5, batch_size=5.0))
    below = tune_baselines(_problem(model, 100, cap=0.9, batch_size=5.0))
    for name, tuned in above.items():
        assert tuned.status == "converged", name
        assert tuned.final_loss <= below[name].final_loss * (1 + 1e-5), name
        assert f"{threshold:.6g}" in tuned.note and below[name].note is None
    assert max(t.params["peak"] for t in above.values()) > threshold


def test_a_family_whose_every_schedule_diverges_reports_it_as_a_status():
    model = Model.powerlaw(2.0, 2.0, 50, noise_std=0.5, initial_loss="raw")
    threshold = stability_threshold(model, 5.0)
    problem = _problem(model, 200, cap=3.0, lr_min=2.0 * threshold, batch_size=5.0)  # peaks >= 2 eta_c
    tuned = tune_baselines(problem, ["constant", "cosine"])
    for name in ("constant", "cosine"):
        assert tuned[name].status == "diverged"
        assert tuned[name].final_loss == math.inf
        assert tuned[name].params["peak"] == pytest.approx(2.0 * threshold)


def test_ordering_on_a_noisy_easy_phase_problem():
    """THEORY §4: annealed schedules beat the best constant; the power law includes it."""
    problem = _problem(Model.powerlaw(2.5, 1.2, 200, noise_std=1.0), 2000)
    tuned = tune_baselines(problem)
    loss = {name: tb.final_loss for name, tb in tuned.items()}
    for name in ("linear", "cosine", "wsd_linear", "wsd_sqrt", "exponential"):
        assert loss[name] < loss["constant"], name
    assert loss["power_law"] <= loss["constant"] * (1 + SCAN_RTOL)
    # wsd_linear contains linear (cooldown_fraction = 1)
    assert loss["wsd_linear"] <= loss["linear"] * (1 + SCAN_RTOL)
