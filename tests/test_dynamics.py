"""The exact recursions against closed forms and brute-force computations (no Monte Carlo).

Covers :mod:`schedopt.dynamics.sgd`, :mod:`schedopt.dynamics.momentum`,
:mod:`schedopt.dynamics.recursion` and :mod:`schedopt.dynamics.stability`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from schedopt.dynamics.momentum import momentum_init, momentum_step
from schedopt.dynamics.ops import NUMPY, TREE_WIDTH, tree_sum
from schedopt.dynamics.recursion import (
    DIVERGENCE_FACTOR,
    final_loss,
    final_loss_jax,
    loss_curve,
)
from schedopt.dynamics.sgd import sgd_step
from schedopt.dynamics.stability import spectral_radius, stability_threshold
from schedopt.problem import Model

#: Closed forms evaluated in float64 over up to a few hundred steps.
RTOL_EXACT = 1e-12
#: Two algebraically identical recursions (momentum at beta = 0 vs SGD).
RTOL_SAME = 1e-14
#: A long run against its analytic fixed point (convergence to 1e-14 plus rounding).
RTOL_STATIONARY = 1e-10
#: Batched (vmapped) against one-by-one evaluation.
RTOL_BATCHED = 1e-13
#: Reverse-mode gradient against a central finite difference.
RTOL_GRADIENT = 1e-6
#: Relative offset from the stability threshold on either side.
THRESHOLD_OFFSET = 1e-6


def test_one_mode_decays_geometrically():
    """One mode, no noise: L = lam c feeds back, factor 1 - 2 eta lam + (1 + 2/m) eta^2 lam^2.

    (Directly: E g^2 = lam^2 Delta^2 + Var(x^2 Delta)/m = (1 + 2/m) lam^2 Delta^2.)
    """
    lam, c0, eta, horizon = 0.7, 2.0, 0.4, 120
    model = Model(eigenvalues=[lam], initial_error=[c0])
    for m in (1, 3, 8):
        q = 1 - 2 * eta * lam + (1 + 2 / m) * eta**2 * lam**2
        expected = lam * c0 * q ** np.arange(horizon + 1)
        traj = loss_curve(model, np.full(horizon, eta), batch_size=m)
        assert_allclose(traj.loss, expected, rtol=RTOL_EXACT)
        assert not traj.diverged


def stationary(model: Model, eta: float, m: float):
    """Analytic fixed point of the SGD recursion at constant eta and m: (c*, L* of kept modes)."""
    lam = model.eigenvalues
    r = 2 * eta * lam - (1 + 1 / m) * eta**2 * lam**2
    s = eta**2 / m * np.sum(lam**2 / r)
    noise = model.effective_noise
    loss = s * noise / (1 - s)
    c = eta**2 / m * lam * (loss + noise) / r
    return c, loss


@pytest.mark.parametrize(
    ("model", "m", "fraction"),
    [
        (Model(np.linspace(0.2, 1.0, 12), np.linspace(1.0, 0.1, 12), noise_variance=0.3), 1, 0.5),
        (Model(np.linspace(0.2, 1.0, 12), np.linspace(1.0, 0.1, 12), noise_variance=0.3), 4, 0.8),
        (Model.powerlaw(2.0, 1.2, 8, noise_std=0.2, finite_size=True), 2, 0.6),
    ],
    ids=["batch1", "batch4-near-threshold", "finite-size"],
)
def test_constant_lr_converges_to_stationary_level(model, m, fraction):
    eta = fraction * stability_threshold(model, m)
    c_star, loss_star = stationary(model, eta, m)
    noise = model.effective_noise
    # c* is an exact fixed point of one step
    stepped = sgd_step(c_star, eta, m, model.eigenvalues, noise, NUMPY)
    assert_allclose(stepped, c_star, rtol=RTOL_EXACT)
    # and a long run reaches it: contraction rho^T < 1e-14
    rho = spectral_radius(model, eta, m)
    horizon = math.ceil(math.log(1e-14) / math.log(rho))
    traj = loss_curve(model, np.full(horizon, eta), batch_size=m)
    assert_allclose(traj.loss[-1], loss_star + model.residual, rtol=RTOL_STATIONARY)
    c = model.initial_error
    for _ in range(horizon):
        c = sgd_step(c, eta, m, model.eigenvalues, noise, NUMPY)
    assert_allclose(c, c_star, rtol=RTOL_STATIONARY)


def schedules(horizon: int, rng: np.random.Generator):
    """A varied learning rate, batch size and momentum schedule."""
    t = np.arange(horizon)
    lr = 0.15 * (1 + np.sin(t / 7.0)) * rng.uniform(0.5, 1.0, horizon)
    batch = rng.integers(1, 6, horizon).astype(float)
    beta = 0.85 * np.minimum(t / (horizon / 2), 1.0)
    return lr, batch, beta


def test_momentum_zero_equals_sgd(small_model):
    lr, batch, _ = schedules(150, np.random.default_rng(0))
    sgd = loss_curve(small_model, lr, batch_size=batch).loss
    heavy_ball = loss_curve(small_model, lr, batch_size=batch, momentum=0.0).loss
    assert_allclose(heavy_ball, sgd, rtol=RTOL_SAME, atol=0)


def fourth_moment(lam: np.ndarray) -> np.ndarray:
    """Isserlis: E[x_a x_b x_c x_d] for x ~ N(0, diag(lam)), as an explicit 4-tensor."""
    cov = np.diag(lam)
    return (
        np.einsum("ab,cd->abcd", cov, cov)
        + np.einsum("ac,bd->abcd", cov, cov)
        + np.einsum("ad,bc->abcd", cov, cov)
    )


def brute_force_second_moments(lam, w_star, noise, lr, batch, beta):
    r"""Full (2N x 2N) second moment of z = (Delta, v) under heavy-ball SGD, step by step.

    With :math:`\hat\Lambda = \frac1m\sum_i x_i x_i^\top`, :math:`Q = \hat\Lambda\Delta` and
    :math:`n = \frac1m\sum_i x_i\epsilon_i`:  :math:`z' = G z + H Q + K n`,
    :math:`G = [[I, -\eta\beta I], [0, \beta I]]`, :math:`H = [-\eta I; I]`,
    :math:`K = [\eta I; -I]`. Expectations use only :math:`E\hat\Lambda = \Lambda`,
    :math:`E[\hat\Lambda X \hat\Lambda] = (1 - \frac1m)\Lambda X\Lambda + \frac1m E[x x^\top X x x^\top]`
    (fourth moments from the Isserlis tensor, off-diagonal X included) and
    :math:`E[n n^\top] = \sigma^2\Lambda/m`. Returns the diagonals of the three blocks per step.
    """
    n = lam.size
    eye = np.eye(n)
    cov = np.diag(lam)
    quartic = fourth_moment(lam)
    z0 = np.concatenate([-w_star, np.zeros(n)])
    p = np.outer(z0, z0)
    out = [(np.diag(p[:n, :n]), np.diag(p[:n, n:]), np.diag(p[n:, n:]))]
    for eta, m, b in zip(lr, batch, beta, strict=True):
        g = np.block([[eye, -eta * b * eye], [np.zeros((n, n)), b * eye]])
        h = np.vstack([-eta * eye, eye])
        k = np.vstack([eta * eye, -eye])
        p_dd = p[:n, :n]
        w = (1 - 1 / m) * cov @ p_dd @ cov + np.einsum("abcd,bc->ad", quartic, p_dd) / m
        z_q = p[:, :n] @ cov  # E[z Q^T] = E[z Delta^T] Lambda
        p = g @ p @ g.T + g @ z_q @ h.T + h @ z_q.T @ g.T + h @ w @ h.T + k @ (noise * cov / m) @ k.T
        out.append((np.diag(p[:n, :n]), np.diag(p[:n, n:]), np.diag(p[n:, n:])))
    return [np.array(block) for block in zip(*out, strict=True)]


@pytest.mark.parametrize("with_momentum", [False, True], ids=["sgd", "heavy-ball"])
def test_recursion_matches_full_covariance_brute_force(with_momentum):
    """The per-mode closure is exact even when the teacher makes Delta's covariance non-diagonal."""
    rng = np.random.default_rng(1)
    lam = np.array([1.0, 0.45, 0.2])
    w_star = np.array([0.8, -1.3, 0.6])  # fixed signs: E[Delta_j Delta_k] != 0 for j != k
    noise, horizon = 0.15, 40
    lr, batch, beta = schedules(horizon, rng)
    if not with_momentum:
        beta = np.zeros(horizon)
    a_bf, b_bf, c_bf = brute_force_second_moments(lam, w_star, noise, lr, batch, beta)

    state = momentum_init(w_star**2)
    a_rec, b_rec, c_rec = [state[0]], [state[1]], [state[2]]
    for eta, m, b in zip(lr, batch, beta, strict=True):
        state = momentum_step(state, eta, m, b, lam, noise, NUMPY)
        a_rec.append(state[0])
        b_rec.append(state[1])
        c_rec.append(state[2])
    assert_allclose(np.array(a_rec), a_bf, rtol=RTOL_EXACT)
    assert_allclose(np.array(b_rec), b_bf, rtol=RTOL_EXACT, atol=RTOL_EXACT * np.abs(b_bf).max())
    assert_allclose(np.array(c_rec), c_bf, rtol=RTOL_EXACT)

    model = Model(eigenvalues=lam, initial_error=w_star**2, noise_variance=noise)
    traj = loss_curve(model, lr, batch_size=batch, momentum=beta if with_momentum else None)
    assert_allclose(traj.loss, a_bf @ lam, rtol=RTOL_EXACT)


def secular(eta: float, lam: np.ndarray, m: float) -> float:
    return eta / m * np.sum(lam / (2 - (1 + 1 / m) * eta * lam))


@pytest.mark.parametrize("m", [1, 4, 32])
def test_stability_threshold(small_model, m):
    eta_c = stability_threshold(small_model, m)
    assert_allclose(secular(eta_c, small_model.eigenvalues, m), 1.0, rtol=1e-9)
    assert spectral_radius(small_model, eta_c * (1 - THRESHOLD_OFFSET), m) < 1
    assert spectral_radius(small_model, eta_c * (1 + THRESHOLD_OFFSET), m) > 1


@pytest.mark.parametrize("m", [1, 4])
def test_lr_above_threshold_is_reported_as_diverged(small_model, m):
    eta_c = stability_threshold(small_model, m)
    limit = DIVERGENCE_FACTOR * (small_model.initial_loss + small_model.effective_noise)
    # just above: slow exponential growth, enough steps to pass the limit three times over
    eta = 1.2 * eta_c
    rho = spectral_radius(small_model, eta, m)
    horizon = 3 * math.ceil(math.log(limit) / math.log(rho))
    for lr in (np.full(horizon, eta), np.full(horizon, 50 * eta_c)):  # slow growth, overflow
        traj = loss_curve(small_model, lr, batch_size=m)
        assert traj.diverged
        step = int(traj.divergence_step)
        assert 1 <= step <= horizon
        assert np.all(np.isfinite(traj.loss[:step])) and np.all(traj.loss[:step] <= limit)
        assert not (np.isfinite(traj.loss[step]) and traj.loss[step] <= limit)
        assert final_loss(small_model, lr, batch_size=m) == np.inf
    # just below: finite, and near the stationary level
    eta = 0.95 * eta_c
    traj = loss_curve(small_model, np.full(horizon, eta), batch_size=m)
    assert not traj.diverged and traj.divergence_step == -1
    assert np.all(np.isfinite(traj.loss))
    assert np.isfinite(final_loss(small_model, np.full(horizon, eta), batch_size=m))


def test_momentum_divergence_is_reported(small_model):
    lr = np.full(2000, 0.2)  # beta = 0.9: mean-square threshold of this model is eta ~ 0.07
    traj = loss_curve(small_model, lr, momentum=0.9)
    assert traj.diverged and traj.divergence_step >= 1
    assert final_loss(small_model, lr, momentum=0.9) == np.inf
    assert np.isfinite(final_loss(small_model, np.full(2000, 0.025), momentum=0.9))


@pytest.mark.parametrize("with_momentum", [False, True], ids=["sgd", "heavy-ball"])
def test_batched_schedules_equal_one_by_one(small_model, with_momentum):
    rng = np.random.default_rng(2)
    horizon = 60
    rows = [schedules(horizon, rng) for _ in range(6)]
    lr = np.array([r[0] for r in rows]).reshape(2, 3, horizon)
    batch = np.array([r[1] for r in rows]).reshape(2, 3, horizon)
    beta = np.array([r[2] for r in rows]).reshape(2, 3, horizon) if with_momentum else None
    traj = loss_curve(small_model, lr, batch_size=batch, momentum=beta)
    finals = final_loss(small_model, lr, batch_size=batch, momentum=beta)
    assert traj.loss.shape == (2, 3, horizon + 1)
    assert np.all(np.isfinite(traj.loss)) and not traj.diverged.any()
    assert finals.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            one = loss_curve(
                small_model,
                lr[i, j],
                batch_size=batch[i, j],
                momentum=None if beta is None else beta[i, j],
            )
            assert_allclose(traj.loss[i, j], one.loss, rtol=RTOL_BATCHED)
            assert_allclose(finals[i, j], one.loss[-1], rtol=RTOL_BATCHED)


def test_batched_final_loss_marks_only_diverged_rows(small_model):
    eta_c = stability_threshold(small_model, 1)
    lr = np.stack([np.full(3000, 0.5 * eta_c), np.full(3000, 1.5 * eta_c)])
    finals = final_loss(small_model, lr)
    traj = loss_curve(small_model, lr)
    assert np.isfinite(finals[0]) and finals[1] == np.inf
    assert_array_equal(traj.diverged, [False, True])
    assert traj.divergence_step[0] == -1 and traj.divergence_step[1] >= 1


def adjoint_gradient(model: Model, lr, batch):
    """THEORY §3: nu_T = lam, nu_t = M_t nu_{t+1}; dL_T/d eta_t from the forward c_t."""
    lam, noise = model.eigenvalues, model.effective_noise
    cs = [model.initial_error]
    for eta, m in zip(lr, batch, strict=True):
        cs.append(sgd_step(cs[-1], eta, m, lam, noise, NUMPY))
    nu = lam.copy()
    grad = np.empty(lr.size)
    for t in reversed(range(lr.size)):
        eta, m, c = lr[t], batch[t], cs[t]
        loss = lam @ c
        grad[t] = nu @ ((-2 * lam + 2 * (1 + 1 / m) * eta * lam**2) * c + 2 * eta / m * lam * (loss + noise))
        d = 1 - 2 * eta * lam + (1 + 1 / m) * eta**2 * lam**2
        nu = d * nu + eta**2 / m * lam * (lam @ nu)
    return grad


@pytest.mark.parametrize("with_momentum", [False, True], ids=["sgd", "heavy-ball"])
def test_gradient_matches_finite_difference(with_momentum):
    model = Model.powerlaw(1.5, 1.3, 10, noise_std=0.3, finite_size=True)
    horizon = 37  # not a square: exercises the padded last checkpoint chunk
    lr, batch, beta = schedules(horizon, np.random.default_rng(3))
    lr = 0.5 * lr
    mom = jnp.asarray(beta) if with_momentum else None
    args = (jnp.asarray(model.eigenvalues), jnp.asarray(model.initial_error), model.effective_noise)

    def objective(x):
        return final_loss_jax(*args, x, jnp.asarray(batch), mom)

    grad = np.asarray(jax.grad(objective)(jnp.asarray(lr)))
    steps = [0, 1, 5, 17, 30, 35, 36]
    for t in steps:
        h = 1e-5 * lr[t]
        up, down = lr.copy(), lr.copy()
        up[t] += h
        down[t] -= h
        fd = (float(objective(jnp.asarray(up))) - float(objective(jnp.asarray(down)))) / (2 * h)
        assert_allclose(grad[t], fd, rtol=RTOL_GRADIENT)
    if not with_momentum:
        assert_allclose(grad, adjoint_gradient(model, lr, batch), rtol=RTOL_EXACT)


def _adjoint_arguments(n_modes: int, seed: int) -> tuple:
    """``sgd_final_loss``'s six arguments on a power-law model (a readout apart from the eigenvalues)."""
    model = Model.powerlaw(1.5, 1.3, n_modes, noise_std=0.3, finite_size=True)
    horizon = 37  # not a square: the padded last chunk
    lr, batch, _ = schedules(horizon, np.random.default_rng(seed))
    lam = jnp.asarray(model.eigenvalues)
    args = (lam, jnp.asarray(model.initial_error), jnp.asarray(model.effective_noise))
    return (*args, jnp.asarray(0.5 * lr), jnp.asarray(batch), 1.1 * lam)


@pytest.mark.parametrize("n_modes", [10, TREE_WIDTH + 72], ids=["split", "fused"])
def test_both_adjoint_forms_give_every_cotangent(n_modes, monkeypatch):
    """The adjoint's two forms (split up to TREE_WIDTH modes, fused above) agree on every cotangent."""
    from schedopt.dynamics import adjoint

    args = _adjoint_arguments(n_modes, seed=5)

    def gradients(width):
        monkeypatch.setattr(adjoint, "TREE_WIDTH", width)
        return jax.grad(adjoint.sgd_final_loss, argnums=range(6))(*args)

    split, fused = gradients(10**9), gradients(0)
    for name, a, b in zip(("lam", "c0", "noise", "lr", "batch", "weights"), split, fused, strict=True):
        assert_allclose(a, b, rtol=RTOL_EXACT, atol=1e-15 * float(jnp.max(jnp.abs(b))), err_msg=name)


@pytest.mark.parametrize("n", [1, 2, 3, 127, TREE_WIDTH, TREE_WIDTH + 1, 500, 4099])
def test_tree_sum_equals_the_sum_over_the_last_axis(n):
    x = np.random.default_rng(n).normal(size=(3, 2, n))
    out = np.asarray(jax.jit(tree_sum)(jnp.asarray(x)))
    assert out.shape == (3, 2)
    assert_allclose(out, x.sum(axis=-1), rtol=1e-13, atol=1e-13 * np.abs(x).sum(axis=-1).max())


@pytest.mark.parametrize("n_modes", [37, 100, TREE_WIDTH, TREE_WIDTH + 53])
def test_modes_padded_outside_the_loops_give_the_same_loss_and_cotangents(n_modes):
    """``sgd_final_loss`` pads the modes to ``tree_width`` with zeros before its loops: the loss
    and every cotangent equal those of the unpadded custom VJP, bitwise (zeros add nothing)."""
    from schedopt.dynamics import adjoint
    from schedopt.dynamics.ops import tree_width

    assert (
        tree_width(n_modes)
        == {37: 64, 100: 128, TREE_WIDTH: TREE_WIDTH, TREE_WIDTH + 53: 2 * TREE_WIDTH}[n_modes]
    )
    args = _adjoint_arguments(n_modes, seed=7)

    def padded(lam, c0, noise, lr, batch, weights):
        return adjoint.sgd_final_loss(lam, c0, noise, lr, batch, weights)

    def unpadded(lam, c0, noise, lr, batch, weights):
        return adjoint._final_loss(lam, weights, c0, noise, lr, batch)

    for value_a, value_b in zip(
        jax.jit(jax.value_and_grad(padded, argnums=range(6)))(*args),
        jax.jit(jax.value_and_grad(unpadded, argnums=range(6)))(*args),
        strict=True,
    ):
        for a, b in zip(jax.tree_util.tree_leaves(value_a), jax.tree_util.tree_leaves(value_b), strict=True):
            assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_loops_step_is_sgd_step_bitwise():
    """The adjoint's step with 1/m and eta^2/m computed outside the loop is ``sgd_step``, bitwise."""
    from schedopt.dynamics import adjoint
    from schedopt.dynamics.ops import JAX

    rng = np.random.default_rng(11)
    lam = jnp.asarray(np.sort(rng.uniform(1e-4, 1.0, 100))[::-1])
    weights = 1.3 * lam
    c = jnp.asarray(rng.uniform(0.0, 1.0, 100))
    for eta, m in zip(rng.uniform(0.0, 1.5, 20), rng.integers(1, 9, 20).astype(float), strict=True):
        inv_m, g = adjoint._per_step(jnp.asarray(eta), jnp.asarray(m))
        ours = jax.jit(adjoint._step)(c, eta, inv_m, g, lam, 0.07, weights)
        reference = jax.jit(lambda c, eta, m: sgd_step(c, eta, m, lam, 0.07, JAX, weights))(c, eta, m)
        assert_array_equal(np.asarray(ours), np.asarray(reference))


def _numpy_sweep(lam, c0, noise, lr, batch, lower, upper, weights):
    """One Pontryagin sweep (THEORY §3) step by step in NumPy: the per-step optimum backwards."""
    cs = [c0]
    for eta, m in zip(lr, batch, strict=True):
        cs.append(sgd_step(cs[-1], eta, m, lam, noise, NUMPY, weights))
    nu, new = weights.copy(), np.empty(lr.size)
    for t in reversed(range(lr.size)):
        c, m = cs[t], batch[t]
        s = weights @ c + noise
        den = (1 + 1 / m) * (nu @ (lam * lam * c)) + (nu @ lam) * s / m
        eta = np.clip((nu @ (lam * c)) / den, lower, upper) if den > 0 else upper
        new[t] = eta
        d = 1 - 2 * eta * lam + (1 + 1 / m) * eta**2 * lam**2
        nu = d * nu + eta**2 / m * (lam @ nu) * weights
    return new, weights @ cs[-1]


@pytest.mark.parametrize("n_modes", [10, 100, TREE_WIDTH + 53])
def test_pontryagin_sweep_equals_a_step_by_step_sweep(n_modes):
    """``sgd_sweep`` (modes padded, the loss read off a chunk's states at once) against NumPy."""
    from schedopt.solvers.pontryagin import sgd_sweep

    model = Model.powerlaw(1.5, 1.3, n_modes, noise_std=0.3, finite_size=True)
    lr, batch, _ = schedules(37, np.random.default_rng(9))
    lam, c0 = model.eigenvalues, model.initial_error
    weights = 1.1 * lam
    args = (lam, c0, model.effective_noise, 0.5 * lr, batch, 0.01, 0.6, weights)
    new, loss = sgd_sweep(*(jnp.asarray(a) for a in args))
    new_np, loss_np = _numpy_sweep(*args)
    assert_allclose(np.asarray(new), new_np, rtol=1e-12)
    assert_allclose(float(loss), loss_np, rtol=1e-13)
