"""The scan engine behind ``ode.loss_at_jax`` / ``final_loss_jax`` against the diffrax form of the same step.

``loss_at_jax`` runs the exponential integrator as a ``lax.scan`` with a hand-written
derivative of the step's moments (``_integrator._quadratic_step``); ``ode.ExponentialIntegrator``
is the same step as a diffrax solver. Both must agree to rounding, values and gradients.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from schedopt.dynamics import ode
from schedopt.dynamics.ode import _integrator
from schedopt.problem import Model

#: Same step, same grid: scan vs diffrax (rounding only).
RTOL_ENGINE = 1e-12
#: Gradients of the two engines and of the chunkings (rounding, summed over steps).
RTOL_ENGINE_GRADIENT = 1e-10
#: Hand-written vs automatic derivative of the step coefficients.
RTOL_STEP_VJP = 1e-11


def _diffrax_losses(lam, c0, noise, values, batch, edges, ts, save_ts, parameterisation, form, degree):
    """``loss_at_jax`` as it was: ``diffeqsolve`` + ``StepTo`` + ``RecursiveCheckpointAdjoint``."""
    field = ode.SGDField(edges=edges, parameterisation=parameterisation, form=form)
    args = ode.OdeArgs(values=values, batch_size=batch, eigenvalues=lam, noise=noise)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        ode.ExponentialIntegrator(degree=degree),
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=c0,
        args=args,
        saveat=diffrax.SaveAt(ts=save_ts, fn=lambda t, y, a: jnp.sum(a.eigenvalues * y)),
        stepsize_controller=diffrax.StepTo(ts=ts),
        max_steps=ts.shape[0] - 1,
        adjoint=diffrax.RecursiveCheckpointAdjoint(),
    )
    return sol.ys


@pytest.fixture(scope="module")
def setup():
    model = Model.powerlaw(2.0, 2.0, 60, noise_std=0.5, initial_loss="raw")
    horizon = 20_000
    edges = np.linspace(0, horizon, 9)
    lam, c0, noise = (jnp.asarray(x) for x in (model.eigenvalues, model.initial_error, model.effective_noise))
    return lam, c0, noise, jnp.asarray(5.0), jnp.asarray(edges), horizon


@pytest.mark.parametrize(
    ("parameterisation", "form", "degree"),
    [("linear", "plain", 2), ("constant", "plain", 2), ("linear", "matched", 2), ("constant", "plain", 1)],
)
def test_scan_engine_matches_diffrax(setup, parameterisation, form, degree):
    lam, c0, noise, batch, edges, horizon = setup
    n_values = edges.shape[0] - (parameterisation == "constant")
    rng = np.random.default_rng(1)
    values = jnp.asarray(rng.uniform(0.1, 0.9, n_values))
    values = values.at[-1].set(0.0)  # a zero learning rate (alpha = 0 / 0) is covered
    ts = jnp.asarray(
        ode.time_grid(
            horizon,
            np.asarray(edges),
            first_step=0.5,
            growth=1.2,
            refine_edges=parameterisation == "constant",
        )
    )
    # grid points, and one between two
    save = jnp.sort(
        jnp.concatenate([ts[jnp.asarray([0, 5, ts.shape[0] // 2, ts.shape[0] - 1])], (ts[5:6] + ts[6:7]) / 2])
    )
    kw = dict(parameterisation=parameterisation, form=form, degree=degree)

    def new(v):
        return ode.loss_at_jax(lam, c0, noise, v, batch, edges, ts, save, **kw)[0]

    def old(v):
        return _diffrax_losses(lam, c0, noise, v, batch, edges, ts, save, parameterisation, form, degree)

    assert_allclose(new(values), old(values), rtol=RTOL_ENGINE)
    g_new = jax.grad(lambda v: jnp.log(new(v)[-1]))(values)
    g_old = jax.grad(lambda v: jnp.log(old(v)[-1]))(values)
    assert_allclose(g_new, g_old, rtol=RTOL_ENGINE_GRADIENT, atol=RTOL_ENGINE_GRADIENT * np.abs(g_old).max())


def test_chunking_does_not_change_results(setup):
    """One step per chunk, padded chunks of 7 steps, and a single chunk give the same loss and gradient."""
    lam, c0, noise, batch, edges, horizon = setup
    values = jnp.asarray(np.linspace(0.8, 0.0, edges.shape[0]))
    ts = jnp.asarray(ode.time_grid(horizon, np.asarray(edges), first_step=0.5, growth=1.2))
    n_steps = ts.shape[0] - 1
    results = []
    for checkpoints in (None, n_steps, -(-n_steps // 7), 1):

        def loss(v, checkpoints=checkpoints):
            return jnp.log(
                ode.loss_at_jax(lam, c0, noise, v, batch, edges, ts, ts[-1:], checkpoints=checkpoints)[0][-1]
            )

        results.append(jax.value_and_grad(loss)(values))
    for value, grad in results[1:]:
        assert_allclose(value, results[0][0], rtol=RTOL_ENGINE)
        assert_allclose(
            grad, results[0][1], rtol=RTOL_ENGINE_GRADIENT, atol=RTOL_ENGINE_GRADIENT * np.abs(grad).max()
        )


def test_hand_written_step_derivative_matches_autodiff():
    """``_quadratic_step``'s VJP against JAX's derivative of the same arithmetic.

    Decays from 0 (no step) through the Taylor-series range (< 1/4) to 60, and ratios
    ``r_half / big_r`` inside and outside the clipped range [0.1, 0.9] of ``mu``.
    """
    rng = np.random.default_rng(2)
    n = 400
    big_r = np.concatenate([[0.0, 0.0], 10.0 ** rng.uniform(-6, 1.8, n - 2)])
    ratio = np.where(rng.uniform(size=n) < 0.2, rng.uniform(0.0, 1.0, n), rng.uniform(0.15, 0.85, n))
    r_half = big_r * ratio
    alphas = [rng.uniform(0.05, 0.5, n) for _ in range(3)]
    args = tuple(jnp.asarray(x) for x in (big_r, r_half, *alphas))
    cts = tuple(jnp.asarray(rng.normal(size=n)) for _ in range(7))
    out, vjp = jax.vjp(_integrator._quadratic_step, *args)
    ref_out, ref_vjp = jax.vjp(lambda *a: _integrator._quadratic_step_fwd(*a)[0], *args)
    for a, b in zip(out, ref_out, strict=True):
        assert_allclose(a, b, rtol=0, atol=0)
    for a, b in zip(vjp(cts), ref_vjp(cts), strict=True):
        assert_allclose(a, b, rtol=RTOL_STEP_VJP, atol=RTOL_STEP_VJP * np.abs(b).max())


def test_gradient_at_a_zero_learning_rate_is_the_one_sided_slope(setup):
    """The forcing ratio g / r is 0/0 at eta = 0; its closed form keeps the true slope there."""
    lam, c0, noise, batch, edges, horizon = setup
    values = jnp.asarray(np.linspace(0.8, 0.0, edges.shape[0]))  # the last knot at the bound 0
    ts = jnp.asarray(ode.time_grid(horizon, np.asarray(edges), first_step=0.5, growth=1.2))

    def loss(v):
        return ode.loss_at_jax(lam, c0, noise, v, batch, edges, ts, ts[-1:])[0][-1]

    grad = jax.grad(loss)(values)[-1]

    def one_sided(eps):
        return (loss(values.at[-1].set(eps)) - loss(values)) / eps

    slope = 2.0 * one_sided(1e-6) - one_sided(2e-6)  # Richardson: O(eps^2)
    assert grad < 0.0  # raising the last learning rate from 0 lowers the loss here
    assert_allclose(grad, slope, rtol=1e-5)
