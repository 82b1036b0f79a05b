"""Mode compression (:mod:`schedopt.dynamics.compression`): Gauss rules, exactness, accuracy, the
weighted readout through every engine, and the jax solver on a compressed spectrum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

import schedopt
from schedopt.controls import block_edges
from schedopt.dynamics import ode
from schedopt.dynamics.compression import compress_modes
from schedopt.dynamics.recursion import final_loss, final_loss_jax, loss_curve, loss_curve_jax
from schedopt.errors import ProblemError
from schedopt.problem import ControlSpec, Model, Problem, Training
from schedopt.solvers.pontryagin import sgd_sweep

#: Gauss rule against the exact sums of polynomial moments (rounding of sums over ~500 terms).
RTOL_MOMENTS = 1e-10
#: A compression that keeps every distinct eigenvalue (equal ones merged) against the full spectrum.
RTOL_LOSSLESS = 1e-13
#: Compressed final loss against the full recursion, T <= 1e4 (measured < 5e-13; see the module).
RTOL_COMPRESSED = 1e-10
#: Hand-written adjoint of the weighted readout against autodiff of the plain scan.
RTOL_ADJOINT = 1e-10
#: A solve on the compressed spectrum against one on the model's own modes.
RTOL_SOLVE = 1e-9


def schedules(horizon: int, cap: float, seed: int = 0) -> dict[str, np.ndarray]:
    t = np.arange(horizon) / horizon
    rng = np.random.default_rng(seed)
    return {
        "constant": np.full(horizon, 0.5 * cap),
        "cosine": 0.5 * cap * (1 + np.cos(np.pi * t)),
        "wsd": np.where(t < 0.8, 0.9 * cap, 0.9 * cap * (1 - (t - 0.8) / 0.2)),
        "tiny": np.full(horizon, 1e-3 * cap),
        "random": np.interp(t, np.linspace(0, 1, 20), rng.uniform(0, cap, 20)),
    }


def test_gauss_rule_integrates_polynomials_in_log_eigenvalue_exactly():
    """The tail's n nodes integrate u^p (u = log lambda, scaled to [-1, 1]) exactly for p <= 2n - 1."""
    model = Model.powerlaw(2.0, 2.0, 500, initial_loss="raw")
    modes = compress_modes(model.eigenvalues, model.initial_error, exact=8, nodes=10)
    tail, nodes = np.log(model.eigenvalues[8:]), np.log(modes.eigenvalues[8:])
    centre, half = 0.5 * (tail[0] + tail[-1]), 0.5 * (tail[0] - tail[-1])
    x, y = (tail - centre) / half, (nodes - centre) / half
    for p in range(20):
        assert_allclose(modes.multiplicity[8:] @ y**p, np.sum(x**p), rtol=RTOL_MOMENTS, atol=1e-12)
    assert modes.n_modes == 18 and modes.exact == 8 and modes.source_modes == 500
    assert_allclose(modes.eigenvalues[:8], model.eigenvalues[:8], rtol=0)
    assert np.all(np.diff(modes.eigenvalues) < 0)


def test_initial_error_at_the_nodes_is_its_projection_on_polynomials():
    """sum_j w_j c_j u_j^p = sum_k c_k u_k^p for p < n, even for a rough initial error."""
    rng = np.random.default_rng(3)
    lam = np.sort(rng.uniform(1e-6, 1.0, 400))[::-1]
    c0 = rng.exponential(1.0, 400)
    modes = compress_modes(lam, c0, exact=4, nodes=12)
    x, y = np.log(lam[4:]), np.log(modes.eigenvalues[4:])
    for p in range(12):
        assert_allclose(
            (modes.multiplicity * modes.initial_error)[4:] @ y**p, c0[4:] @ x**p, rtol=RTOL_MOMENTS
        )


def test_small_spectrum_and_equal_eigenvalues_compress_losslessly():
    lam = np.repeat([1.0, 0.3, 0.1, 0.02], [1, 3, 5, 7])
    c0 = np.linspace(0.5, 2.0, lam.size)
    model = Model(eigenvalues=lam, initial_error=c0, noise_variance=0.1)
    modes = compress_modes(lam, c0, exact=2, nodes=4)
    assert modes.n_modes == 4 and list(modes.multiplicity) == [1, 3, 5, 7]
    lr = np.full(200, 0.8)
    assert_allclose(
        final_loss(model, lr, batch_size=2, modes=modes),
        final_loss(model, lr, batch_size=2),
        rtol=RTOL_LOSSLESS,
    )


@pytest.mark.parametrize(
    ("a", "b", "n_modes", "horizon"),
    [(2.0, 2.0, 500, 1000), (2.0, 2.0, 500, 10000), (1.5, 2.5, 1000, 3000), (3.0, 1.5, 1000, 3000)],
)
def test_compressed_recursion_matches_the_full_one(a, b, n_modes, horizon):
    model = Model.powerlaw(a, b, n_modes, noise_std=0.5, initial_loss="raw")
    modes = compress_modes(model.eigenvalues, model.initial_error)
    assert modes.n_modes == 128
    cap = 0.95 * schedopt.stability_threshold(model, 5.0)
    for name, lr in schedules(horizon, cap).items():
        full = final_loss(model, lr, batch_size=5.0)
        assert_allclose(
            final_loss(model, lr, batch_size=5.0, modes=modes), full, rtol=RTOL_COMPRESSED, err_msg=name
        )
    curve = loss_curve(model, lr, batch_size=5.0, modes=modes).loss
    assert_allclose(curve, loss_curve(model, lr, batch_size=5.0).loss, rtol=RTOL_COMPRESSED)


def test_weighted_adjoint_equals_autodiff_of_the_scan():
    model = Model.powerlaw(2.0, 1.5, 300, noise_std=0.4)
    modes = compress_modes(model.eigenvalues, model.initial_error, exact=6, nodes=10)
    lam, c0, w = (jnp.asarray(x) for x in (modes.eigenvalues, modes.initial_error, modes.loss_weights))
    lr = jnp.asarray(schedules(150, 1.0)["random"])
    batch = jnp.full(150, 3.0)

    def adjoint(*args):
        return final_loss_jax(args[0], args[1], args[2], args[3], batch, loss_weights=args[4])

    def autodiff(*args):
        return loss_curve_jax(args[0], args[1], args[2], args[3], batch, loss_weights=args[4])[-1]

    args = (lam, c0, jnp.asarray(0.16), lr, w)
    got = jax.grad(adjoint, argnums=range(5))(*args)
    want = jax.grad(autodiff, argnums=range(5))(*args)
    for g, e in zip(got, want, strict=True):
        assert_allclose(g, e, rtol=RTOL_ADJOINT, atol=1e-14 * float(jnp.max(jnp.abs(e))))


def test_sweep_and_ode_on_the_compressed_spectrum_match_the_full_ones():
    model = Model.powerlaw(2.0, 2.0, 800, noise_std=0.5, initial_loss="raw")
    modes = compress_modes(model.eigenvalues, model.initial_error)
    horizon, noise = 2000, model.effective_noise
    lr = jnp.asarray(schedules(horizon, 1.4)["cosine"])
    batch = jnp.full(horizon, 5.0)
    full_lam, full_c0 = jnp.asarray(model.eigenvalues), jnp.asarray(model.initial_error)
    new_full, loss_full = sgd_sweep(full_lam, full_c0, noise, lr, batch, 0.0, 1.4)
    new_c, loss_c = sgd_sweep(
        jnp.asarray(modes.eigenvalues),
        jnp.asarray(modes.initial_error),
        noise,
        lr,
        batch,
        0.0,
        1.4,
        jnp.asarray(modes.loss_weights),
    )
    assert_allclose(loss_c, loss_full, rtol=RTOL_COMPRESSED)
    assert_allclose(new_c, new_full, rtol=RTOL_COMPRESSED, atol=1e-12)
    edges = block_edges(horizon, 20, "uniform")
    values = 0.7 * (1 + np.cos(np.pi * edges / horizon))
    ts = ode.time_grid(horizon, edges)
    full = ode.final_loss_jax(full_lam, full_c0, noise, values, 5.0, edges.astype(float), ts)
    comp = ode.final_loss_jax(
        jnp.asarray(modes.eigenvalues),
        jnp.asarray(modes.initial_error),
        noise,
        values,
        5.0,
        edges.astype(float),
        ts,
        loss_weights=jnp.asarray(modes.loss_weights),
    )
    assert_allclose(comp, full, rtol=RTOL_COMPRESSED)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"exact": -1}, "exact"), ({"nodes": 0}, "nodes"), ({"exact": 2.5}, "exact")],
)
def test_bad_compression_sizes_name_the_argument(kwargs, field):
    with pytest.raises(ProblemError) as err:
        compress_modes(np.ones(3), np.ones(3), **kwargs)
    assert err.value.field == field


def test_mismatched_initial_error_is_rejected():
    with pytest.raises(ProblemError, match="initial_error"):
        compress_modes(np.ones(3), np.ones(4))


def _problem(n_modes: int = 400, horizon: int = 400, momentum: float = 0.0) -> Problem:
    model = Model.powerlaw(2.0, 1.6, n_modes, noise_std=0.3)
    cap = 0.9 * (1.0 - momentum) * schedopt.stability_threshold(model, 2.0)  # heavy ball: a lower cap
    return Problem(
        name="compressed",
        model=model,
        training=Training(horizon=horizon, batch_size=2.0, momentum=momentum),
        controls={"learning_rate": ControlSpec("learning_rate", 0.0, cap, blocks=20, grid="uniform")},
    )


def test_jax_solver_on_the_compressed_spectrum_finds_the_exact_optimum():
    problem = _problem()
    compressed = schedopt.solve(problem, "jax")
    exact = schedopt.solve(problem, "jax", options={"modes": "exact"})
    report = compressed.info["compression"]
    assert report["n_modes"] == 128 and report["source_modes"] == 400 and not report["polished"]
    assert abs(report["relative_gap"]) < RTOL_SOLVE
    assert "compression" not in exact.info
    assert_allclose(compressed.final_loss, exact.final_loss, rtol=RTOL_SOLVE)
    assert_allclose(report["full_final_loss"], compressed.final_loss, rtol=0)
    assert_allclose(compressed.per_step(), exact.per_step(), rtol=1e-4, atol=1e-5)


def test_unconfirmed_compressed_solve_is_polished_on_the_full_spectrum():
    problem = _problem()
    sol = schedopt.solve(problem, "jax", options={"compression_rtol": 0.0, "compressed_nodes": 4})
    report = sol.info["compression"]
    assert report["polished"] and report["polish_iterations"] >= 1 and report["n_modes"] == 36
    exact = schedopt.solve(problem, "jax", options={"modes": "exact"})
    assert_allclose(sol.final_loss, exact.final_loss, rtol=RTOL_SOLVE)


def test_auto_leaves_small_spectra_alone_and_compresses_heavy_ball_too():
    assert "compression" not in schedopt.solve(_problem(n_modes=100, horizon=60), "jax").info
    heavy = _problem(horizon=60, momentum=0.5)
    compressed = schedopt.solve(heavy, "jax")
    exact = schedopt.solve(heavy, "jax", options={"modes": "exact"})
    report = compressed.info["compression"]
    assert report["n_modes"] == 128 and not report["polished"] and abs(report["relative_gap"]) < RTOL_SOLVE
    assert "compression" not in exact.info
    assert_allclose(compressed.final_loss, exact.final_loss, rtol=RTOL_SOLVE)
    with pytest.raises(ProblemError) as err:
        schedopt.solve(heavy, "jax", options={"modes": "some"})
    assert err.value.field == "modes"


@pytest.mark.parametrize(("a", "b"), [(2.5, 1.2), (1.5, 2.5)])
def test_compressed_heavy_ball_matches_the_full_recursion(a, b):
    """Heavy ball on the quadrature (loss readout w = omega lambda) against the full spectrum."""
    model = Model.powerlaw(a, b, 1000, noise_std=0.5, initial_loss=1.0)
    modes = compress_modes(model.eigenvalues, model.initial_error)
    horizon = 2000
    t = np.arange(horizon) / horizon
    cap = 0.9 * schedopt.stability_threshold(model, 1.0)
    rng = np.random.default_rng(1)
    momenta = {
        "constant": np.full(horizon, 0.9),
        "ramp": 0.95 * t,
        "random": np.interp(t, np.linspace(0, 1, 20), rng.uniform(0, 0.95, 20)),
    }
    for name, beta in momenta.items():
        for lr in (
            0.5 * cap * (1 + np.cos(np.pi * t)) * (1 - beta),
            np.full(horizon, 0.5 * cap) * (1 - beta),
        ):
            full = final_loss(model, lr, momentum=beta)
            assert_allclose(
                final_loss(model, lr, momentum=beta, modes=modes), full, rtol=RTOL_COMPRESSED, err_msg=name
            )
    curve = loss_curve(model, lr, momentum=beta, modes=modes).loss
    assert_allclose(curve, loss_curve(model, lr, momentum=beta).loss, rtol=RTOL_COMPRESSED)


def test_weighted_momentum_adjoint_equals_autodiff_of_the_scan():
    """The heavy-ball adjoint with a loss readout w (its own cotangent) against autodiff of the plain scan."""
    from schedopt.dynamics.momentum import momentum_init, momentum_step
    from schedopt.dynamics.momentum_adjoint import momentum_final_loss
    from schedopt.dynamics.ops import JAX

    model = Model.powerlaw(2.0, 1.5, 300, noise_std=0.4)
    modes = compress_modes(model.eigenvalues, model.initial_error, exact=6, nodes=10)
    lam, c0, w = (jnp.asarray(x) for x in (modes.eigenvalues, modes.initial_error, modes.loss_weights))
    rng = np.random.default_rng(0)
    horizon = 97  # not a multiple of the chunk length
    lr, batch, beta = (
        jnp.asarray(0.05 + 0.3 * rng.random(horizon)),
        jnp.asarray(1.0 + 3.0 * rng.random(horizon)),
        jnp.asarray(0.95 * rng.random(horizon)),
    )

    def plain(lam, w, c0, noise, lr, batch, beta):
        def step(state, u):
            return momentum_step(state, u[0], u[1], u[2], lam, noise, JAX, w), None

        final, _ = jax.lax.scan(step, momentum_init(c0), (lr, batch, beta))
        return jnp.dot(w, final[0])

    def hand(lam, w, c0, noise, lr, batch, beta):
        return momentum_final_loss(lam, c0, noise, lr, batch, beta, loss_weights=w)

    args = (lam, w, c0, jnp.asarray(0.16), lr, batch, beta)
    v_auto, want = jax.value_and_grad(plain, argnums=range(7))(*args)
    v_hand, got = jax.value_and_grad(hand, argnums=range(7))(*args)
    assert_allclose(v_hand, v_auto, rtol=1e-14)
    for g, e in zip(got, want, strict=True):
        assert_allclose(g, e, rtol=RTOL_ADJOINT, atol=1e-14 * float(jnp.max(jnp.abs(e))))


def test_baselines_tuned_on_the_compressed_spectrum_match_the_exact_tuning():
    from schedopt.baselines import tune_baseline

    problem = _problem(horizon=300)
    for name in ("cosine", "wsd_sqrt"):
        auto = tune_baseline(problem, name)
        exact = tune_baseline(problem, name, modes="exact")
        assert_allclose(auto.final_loss, exact.final_loss, rtol=RTOL_SOLVE, err_msg=name)
        for key, value in exact.params.items():
            assert_allclose(auto.params[key], value, rtol=1e-5, err_msg=f"{name}.{key}")
        assert_allclose(
            auto.final_loss, final_loss(problem.model, auto.learning_rate, batch_size=2.0), rtol=0
        )
    with pytest.raises(ProblemError) as err:
        tune_baseline(problem, "cosine", modes="compressed")
    assert err.value.field == "modes"
