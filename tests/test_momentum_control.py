"""Momentum as a control: the heavy-ball stability threshold, the adjoint the solver uses,
the solver's momentum optimum against SGD, and the solver's dynamics against Monte-Carlo."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.interpolate import PchipInterpolator

import schedopt
from schedopt.dynamics.momentum import momentum_init, momentum_step
from schedopt.dynamics.momentum_adjoint import momentum_final_loss
from schedopt.dynamics.ops import JAX
from schedopt.dynamics.recursion import final_loss_jax, loss_curve
from schedopt.dynamics.stability import (
    _heavy_ball_blocks,
    momentum_spectral_radius,
    momentum_stability_threshold,
    stability_threshold,
)
from schedopt.errors import ProblemError
from schedopt.montecarlo import simulate_sgd
from schedopt.problem import ControlSpec, Model, Problem, Training
from schedopt.solvers import solve
from schedopt.solvers._common import check_bounds, momentum_cap_table
from schedopt.solvers.jax import JaxOptions
from schedopt.studies.joint import momentum_problem

#: Structured spectral radius vs dense eigenvalues (both float64).
RADIUS_RTOL = 1e-9
#: Threshold bisection accuracy (relative).
THRESHOLD_RTOL = 1e-8
#: Hand-written adjoint vs autodiff of the recursion (relative to the largest entry).
ADJOINT_RTOL = 1e-11
#: The momentum optimum may exceed the SGD optimum by at most this (rounding only:
#: beta = 0 is feasible with the same learning-rate range and is the solver's start).
MOMENTUM_VS_SGD_RTOL = 1e-10
#: Monte-Carlo mean within this many standard errors of the recursion.
Z_MAX = 3.0


def dense_map(model: Model, eta: float, beta: float, m: float) -> np.ndarray:
    """The full 3N x 3N heavy-ball second-moment map, built independently of the structure."""
    lam = model.eigenvalues
    n = lam.size
    mat = np.zeros((3 * n, 3 * n))
    for k in range(n):
        # columns: how (A_k, B_k, C_k) and the loss L feed the next state, from the step equations
        e = np.zeros((3, 3 * n))
        e[0, 3 * k], e[1, 3 * k + 1], e[2, 3 * k + 2] = 1.0, 1.0, 1.0
        a, b, c = e
        grad_sq = (1 + 1 / m) * lam[k] ** 2 * a + lam[k] / m * np.concatenate(
            [[lam[j], 0.0, 0.0] for j in range(n)]
        )
        c_new = beta**2 * c + 2 * beta * lam[k] * b + grad_sq
        cross = beta * b + lam[k] * a
        mat[3 * k] = a - 2 * eta * cross + eta**2 * c_new
        mat[3 * k + 1] = cross - eta * c_new
        mat[3 * k + 2] = c_new
    return mat


@pytest.fixture(scope="module")
def tiny() -> Model:
    return Model.powerlaw(1.5, 1.5, 12, noise_std=0.3)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("m", [1.0, 16.0, 1e4])
def test_structured_radius_matches_dense_eigenvalues(tiny, beta, m):
    threshold = momentum_stability_threshold(tiny, beta, m)
    for eta in np.array([0.05, 0.5, 0.9, 0.999, 1.001, 1.2]) * threshold:
        dense = np.max(np.abs(np.linalg.eigvals(dense_map(tiny, eta, beta, m))))
        assert_allclose(momentum_spectral_radius(tiny, eta, beta, m), dense, rtol=RADIUS_RTOL)


def test_structured_blocks_equal_the_dense_map(tiny):
    eta, beta, m = 0.2, 0.7, 3.0
    p, u = _heavy_ball_blocks(tiny.eigenvalues, eta, beta, m)
    n = tiny.n_modes
    mat = np.zeros((3 * n, 3 * n))
    for k in range(n):
        mat[3 * k : 3 * k + 3, 3 * k : 3 * k + 3] = p[k]
    v = np.zeros(3 * n)
    v[0::3] = tiny.eigenvalues
    assert_allclose(mat + np.outer(u.reshape(-1), v), dense_map(tiny, eta, beta, m), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize(("beta", "m"), [(0.0, 1.0), (0.9, 1.0), (0.9, 1e4), (0.99, 8.0)])
def test_stable_learning_rates_form_an_interval_below_the_threshold(tiny, beta, m):
    threshold = momentum_stability_threshold(tiny, beta, m)
    etas = np.linspace(0.002, 2.0, 120) * threshold
    radius = np.array([np.max(np.abs(np.linalg.eigvals(dense_map(tiny, e, beta, m)))) for e in etas])
    assert np.array_equal(radius < 1.0, etas < threshold)
    # at the threshold the dense radius crosses 1
    below = np.max(np.abs(np.linalg.eigvals(dense_map(tiny, threshold * (1 - 1e-6), beta, m))))
    above = np.max(np.abs(np.linalg.eigvals(dense_map(tiny, threshold * (1 + 1e-6), beta, m))))
    assert below < 1.0 < above


def test_zero_momentum_threshold_is_the_sgd_threshold(tiny):
    for m in (1.0, 4.0):
        assert_allclose(
            momentum_stability_threshold(tiny, 0.0, m), stability_threshold(tiny, m), rtol=THRESHOLD_RTOL
        )


def test_vectorised_thresholds_equal_scalar_ones(tiny):
    betas = np.array([0.0, 0.3, 0.95])
    together = momentum_stability_threshold(tiny, betas, 2.0)
    alone = [momentum_stability_threshold(tiny, b, 2.0) for b in betas]
    assert_allclose(together, alone, rtol=THRESHOLD_RTOL)  # the bisection accuracy


def test_threshold_rejects_momentum_outside_unit_interval(tiny):
    with pytest.raises(ProblemError) as err:
        momentum_stability_threshold(tiny, 1.0)
    assert err.value.field == "momentum"


def plain_scan_loss(lam, c0, noise, lr, batch, beta):
    """The heavy-ball recursion as one plain ``lax.scan`` of ``momentum_step`` (autodiff reference)."""

    def step(state, u):
        return momentum_step(state, u[0], u[1], u[2], lam, noise, JAX), None

    final, _ = jax.lax.scan(step, momentum_init(c0), (lr, batch, beta))
    return jnp.dot(lam, final[0])


def test_momentum_adjoint_matches_autodiff_of_the_recursion(tiny):
    rng = np.random.default_rng(3)
    horizon = 97  # not a multiple of the chunk size: padding is exercised
    args = (
        jnp.asarray(tiny.eigenvalues),
        jnp.asarray(tiny.initial_error),
        jnp.asarray(0.09),
        jnp.asarray(0.05 + 0.2 * rng.random(horizon)),
        jnp.asarray(1.0 + 3.0 * rng.random(horizon)),
        jnp.asarray(0.95 * rng.random(horizon)),
    )
    v_auto, g_auto = jax.value_and_grad(plain_scan_loss, argnums=tuple(range(6)))(*args)
    assert_allclose(final_loss_jax(*args), v_auto, rtol=1e-14)
    v_hand, g_hand = jax.value_and_grad(momentum_final_loss, argnums=tuple(range(6)))(*args)
    assert_allclose(v_hand, v_auto, rtol=1e-14)
    for name, a, b in zip(("lam", "c0", "noise", "lr", "batch", "beta"), g_hand, g_auto, strict=True):
        scale = float(jnp.max(jnp.abs(b)))
        assert float(jnp.max(jnp.abs(a - b))) <= ADJOINT_RTOL * scale, name


def _lr_problem(model: Model, horizon: int, cap_fraction: float, blocks: int) -> Problem:
    cap = cap_fraction * stability_threshold(model, 1.0)
    spec = ControlSpec("learning_rate", 0.0, cap, blocks=blocks, grid="geometric-end")
    return Problem("momentum-test", model, Training(horizon=horizon), controls={"learning_rate": spec})


def test_check_bounds_box_versus_joint_momentum_cap(tiny):
    problem = momentum_problem(_lr_problem(tiny, 50, 0.9, 5), 0.9)
    threshold, note = check_bounds(problem)  # the box [0, 0.9 eta_c(0)] x [0, 0.9] has unstable points
    assert threshold < problem.learning_rate.max
    assert "heavy ball" in note and f"{threshold:.6g}" in note
    joint, none = check_bounds(problem, momentum_cap="joint")
    assert joint == pytest.approx(stability_threshold(tiny, 1.0), rel=1e-8)
    assert none is None
    # a fixed momentum is checked too (it used to be skipped)
    fixed = _lr_problem(tiny, 50, 0.9, 5).replace(training=Training(horizon=50, momentum=0.9))
    assert re.search(r"momentum = 0\.9", check_bounds(fixed)[1])


@pytest.fixture(scope="module")
def sgd_and_momentum():
    """Hard phase, batch 1 with label noise: SGD optimum and the (learning rate, momentum) optimum."""
    model = Model.powerlaw(2.0, 3.0, 40, noise_std=0.5)
    problem = _lr_problem(model, 200, 0.9, 10)
    sgd = solve(problem, "jax")
    joint = momentum_problem(problem, 0.95)
    mom = solve(
        joint,
        "jax",
        initial={"learning_rate": np.asarray(sgd.parameters["learning_rate"]), "momentum": np.zeros(11)},
    )
    return sgd, mom


def test_momentum_optimum_is_at_most_the_sgd_optimum(sgd_and_momentum):
    sgd, mom = sgd_and_momentum
    assert mom.converged
    assert mom.final_loss <= sgd.final_loss * (1 + MOMENTUM_VS_SGD_RTOL)
    assert mom.per_step("momentum").max() > 0.1  # momentum is actually used
    # the learning rate stays within the same bounds, and below the joint cap
    assert mom.per_step("learning_rate").max() <= mom.problem.learning_rate.max * (1 + 1e-12)


def test_solver_objective_is_the_recursion_loss(sgd_and_momentum):
    _, mom = sgd_and_momentum
    p = mom.problem
    direct = schedopt.final_loss(p.model, mom.per_step(), momentum=mom.per_step("momentum"))
    assert_allclose(mom.final_loss, direct, rtol=1e-13)
    hand = momentum_final_loss(
        jnp.asarray(p.model.eigenvalues),
        jnp.asarray(p.model.initial_error),
        jnp.asarray(p.model.effective_noise),
        jnp.asarray(mom.per_step()),
        jnp.ones(p.horizon),
        jnp.asarray(mom.per_step("momentum")),
    )
    assert_allclose(float(hand) + p.model.residual, direct, rtol=1e-12)


def test_solver_momentum_dynamics_match_monte_carlo(small_model):
    """A designed schedule (learning rate and momentum both scheduled) against heavy-ball SGD."""
    problem = momentum_problem(_lr_problem(small_model, 120, 0.3, 6), 0.9)
    design = solve(problem, "jax", options={"max_iter": 300})
    lr, beta = design.per_step(), design.per_step("momentum")
    assert np.ptp(beta) > 0.05 and np.ptp(lr) > 0  # genuinely scheduled
    expected = loss_curve(small_model, lr, batch_size=2, momentum=beta).loss
    mc = simulate_sgd(small_model, lr, batch_size=2, momentum=beta, seeds=3000, rng=11)
    steps = np.unique(np.geomspace(1, 120, 12).astype(int))
    z = np.abs(mc.zscore(expected)[steps])
    assert np.all(np.isfinite(mc.loss))
    assert z.max() < Z_MAX, z


def test_designed_momentum_schedule_is_exported(sgd_and_momentum):
    """The schedule file and the optax optimizer carry the designed per-step momentum."""
    from schedopt.export import to_optax_optimizer
    from schedopt.schedule import schedule_from_solution

    _, mom = sgd_and_momentum
    schedule = schedule_from_solution(mom)
    assert_allclose(schedule.momentum, mom.per_step("momentum"), rtol=0, atol=0)
    assert_allclose(schedule.learning_rate, mom.per_step(), rtol=0, atol=0)
    opt = to_optax_optimizer(schedule)
    params = jnp.zeros(3)
    state = opt.init(params)
    for t in range(5):
        _, state = opt.update(jnp.ones(3), state, params)
        assert_allclose(float(state.hyperparams["momentum"]), schedule.momentum[t], rtol=1e-12)


class _Quadratic:
    """Stand-in for the solver's objective: stacked problems ``f_i(x) = x^T A_i x / 2 + x_i^3 / 6``."""

    def __init__(self, mats):
        self.mats = mats
        self.evaluations = 0

    def evaluate(self, flat):
        self.evaluations += 1
        x = flat.reshape(len(self.mats), -1)
        values = np.array([0.5 * xi @ a @ xi + np.sum(xi**3) / 6 for xi, a in zip(x, self.mats, strict=True)])
        grads = np.stack([a @ xi + 0.5 * xi**2 for xi, a in zip(x, self.mats, strict=True)])
        return values, grads


def test_hessian_columns_of_stacked_problems_by_forward_differences():
    """Column j of every stacked problem's Hessian from one evaluation, inside the box (closed form)."""
    from schedopt.solvers.jax._newton import FD_STEP, _hessian_columns

    rng = np.random.default_rng(5)
    mats = []
    for _ in range(3):
        q = rng.standard_normal((6, 6))
        mats.append(q @ q.T + np.eye(6))
    fun = _Quadratic(mats)
    x = rng.uniform(0.0, 1.0, (3, 6))
    lo, hi = np.zeros((3, 6)), np.ones((3, 6))
    x[1, 2] = 1.0  # at the upper bound: the column is taken backwards
    free = np.ones((3, 6), dtype=bool)
    free[:, 4] = False  # a column no problem needs is not evaluated
    hess = _hessian_columns(fun, x, lo, hi, free)
    assert fun.evaluations == 1 + 5
    for i in range(3):
        exact = mats[i] + np.diag(x[i])  # Hessian of the cubic term: diag(x)
        cols = [j for j in range(6) if j != 4]
        # forward differences: error FD_STEP / 2 per unit third derivative
        assert_allclose(hess[i][:, cols], exact[:, cols], rtol=0, atol=FD_STEP)
        assert np.all(hess[i][:, 4] == 0)


def test_joint_cap_is_the_monotone_cubic_through_the_table(tiny):
    """The solver's cap fraction (JAX and NumPy) is scipy's PCHIP of the table: exact at the nodes, <= 1."""
    from schedopt.solvers.jax._objective import _cap_at, _cap_spline

    problem = momentum_problem(_lr_problem(tiny, 50, 0.9, 5), 0.95)
    u, frac = momentum_cap_table(problem, 0.95)
    coef = _cap_spline(u, frac)
    points = np.concatenate([u, np.linspace(u[0], u[-1], 501)])
    want = PchipInterpolator(u, frac)(points)
    assert_allclose(_cap_at(points, u, coef, np), want, rtol=1e-13)
    assert_allclose(np.asarray(_cap_at(jnp.asarray(points), u, coef, jnp)), want, rtol=1e-13)
    assert np.all(_cap_at(points, u, coef, np) <= 1.0 + 1e-15)


@pytest.fixture(scope="module")
def checked_momentum_problem():
    """Hard phase, 40 modes, T = 200: (learning rate, momentum) with 10 blocks each."""
    model = Model.powerlaw(2.0, 3.0, 40, noise_std=0.5)
    return momentum_problem(_lr_problem(model, 200, 0.9, 10), 0.95)


def test_second_order_check_certifies_a_local_minimum(checked_momentum_problem):
    """A passed check is a local minimum: no small feasible move lowers the loss (recursion, not the solver)."""
    problem = checked_momentum_problem
    sol = solve(problem, "jax")
    report = sol.info["second_order"]
    assert sol.converged and report["passed"] and report["negative_directions"] == 0
    assert report["newton_decrement"] <= report["newton_rtol"]
    assert 0 < report["min_eigenvalue"] <= report["max_eigenvalue"]
    # the softest direction is the momentum-rate valley (the eta / (1 - beta) degeneracy)
    assert report["softest_momentum_share"] > 0.5
    # moves within the joint cap: eta = s * frac(beta) * eta_max, s in [0, 1], at every learning-rate knot
    grids, lr_spec, beta_spec = sol.grids, problem.learning_rate, problem.controls["momentum"]
    cap_fraction = PchipInterpolator(*momentum_cap_table(problem, JaxOptions().stability_margin))

    def cap(beta_knots):
        beta = grids["momentum"].evaluate(beta_knots, grids["learning_rate"].knots)
        return cap_fraction(-np.log1p(-beta)) * lr_spec.max

    beta0 = np.asarray(sol.parameters["momentum"])
    s0 = np.asarray(sol.parameters["learning_rate"]) / cap(beta0)
    assert s0.max() <= 1 + 1e-12
    rng = np.random.default_rng(0)
    for _ in range(40):
        beta = np.clip(beta0 + 1e-3 * rng.standard_normal(beta0.size), beta_spec.min, beta_spec.max)
        lr = np.clip(s0 + 1e-3 * rng.standard_normal(s0.size), 0.0, 1.0) * cap(beta)
        loss = schedopt.final_loss(
            problem.model,
            grids["learning_rate"].interpolation().expand(lr),
            momentum=grids["momentum"].interpolation().expand(beta),
        )
        assert loss >= sol.final_loss * (1 - 1e-12)


def test_second_order_check_decides_the_status(checked_momentum_problem):
    """Stopped early, the check fails (status not converged); its Newton steps then make it pass."""
    problem = checked_momentum_problem
    early = solve(problem, "jax", options={"max_iter": 20, "newton_steps": 0}, throw=False)
    report = early.info["second_order"]
    assert not early.converged and not report["passed"] and report["newton_steps"] == 0
    gain = report["newton_decrement"]  # None: negative curvature, not a minimum either
    assert report["negative_directions"] > 0 if gain is None else gain > report["newton_rtol"]
    assert "second-order check not passed" in early.message
    polished = solve(problem, "jax", options={"max_iter": 20}, throw=False)
    assert polished.converged and polished.info["second_order"]["passed"]
    assert polished.info["second_order"]["newton_steps"] >= 1
    assert polished.final_loss < early.final_loss
    unchecked = solve(problem, "jax", options={"second_order": "none"})
    assert "second_order" not in unchecked.info


def test_second_order_check_counts_a_variable_an_ulp_inside_its_bound_as_on_it():
    """Quadratic whose minimum lies outside the box [0, 1] in coordinate 0; the point is the
    constrained minimum (closed form: the others solve A_FF) but coordinate 0 is an ulp inside its
    bound, as L-BFGS-B leaves it. Counted free, its Newton step is clipped to nothing and the
    others' steps only climb: no step is accepted and the check fails (it did on the hard phase)."""
    from types import SimpleNamespace

    from schedopt.solvers.jax._newton import second_order

    rng = np.random.default_rng(2)
    q = rng.standard_normal((5, 5))
    a = 2.0 * np.eye(5) + 0.05 * (q + q.T)
    centre = np.array([3.0, 0.2, 0.4, 0.6, 0.5])  # coordinate 0 wants to leave the box

    class Fun:
        group = SimpleNamespace(count=1, n_params=5, slices={"momentum": slice(3, 5)})
        evaluations = 0

        def evaluate(self, flat):
            self.evaluations += 1
            r = flat - centre
            return np.array([0.5 * r @ a @ r]), (a @ r)[None, :]

    free = slice(1, 5)
    edge = np.nextafter(1.0, 0.0)
    want = centre[free] - np.linalg.solve(a[free, free], a[free, 0] * (edge - centre[0]))
    assert np.all((want > 0) & (want < 1))  # only coordinate 0 is on a bound
    x0 = np.concatenate([[edge], want])
    assert (a @ (x0 - centre))[0] < 0  # its gradient pushes it out of the box
    x, (report,) = second_order(Fun(), x0, np.zeros(5), np.ones(5), JaxOptions())
    assert report["passed"] and report["free"] == 4 and report["newton_steps"] == 0
    assert report["newton_decrement"] <= report["newton_rtol"]
    assert_allclose(x, x0, rtol=0)
