"""optax export: exact per-step values, jit/vmap/grad safety, rescaling, optimizers, batch schedules,
and real optax training loops that reproduce the designed loss curve within Monte-Carlo error.

The training loops are independent of :mod:`schedopt.montecarlo`: they draw Gaussian
features with ``jax.random``, compute the mean-squared-error gradient with
``jax.grad`` and update with the exported optax optimizer, vectorised over seeds
with ``jax.vmap``. Fixed PRNG keys keep the suite deterministic.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import schedopt
from schedopt import ControlSpec, Model, Problem, Schedule, Training, stability_threshold
from schedopt.errors import ExportError
from schedopt.export import (
    batch_size_schedule,
    every_k_schedule,
    rescale_schedule,
    schedule_values,
    to_optax,
    to_optax_multisteps,
    to_optax_optimizer,
)
from schedopt.montecarlo import MonteCarloResult

#: Values at designed steps: a gather, so exact; the tolerance the issue states.
ATOL_EXACT = 1e-12
#: Interpolated / rescaled values: a few float64 roundings.
RTOL_ARITH = 1e-14
#: The Monte-Carlo mean must lie within this many standard errors of the designed curve.
Z_MAX = 3.0
#: A curve of a learning rate 20 % off must be rejected by at least this many standard errors.
Z_REJECT = 6.0
#: Checkpoints compared per Monte-Carlo test.
N_CHECKPOINTS = 12
#: Independent training runs per Monte-Carlo test (vmapped over PRNG keys).
SEEDS = 1000
#: Designed horizon of the training-loop tests.
HORIZON_MC = 200
#: Horizon of the exactness tests (the issue's T = 1e4).
HORIZON_LONG = 10_000


def smooth_schedule(horizon: int) -> Schedule:
    """A schedule with ``horizon`` distinct learning rates and momenta (strictly monotone)."""
    t = np.arange(horizon, dtype=np.float64)
    lr = 0.3 * (1.0 + t) ** -0.5 * (1.0 - t / (horizon + 1.0)) ** 1.4
    momentum = 0.9 * (1.0 - (t / horizon) ** 2) + 1e-3
    batch = 1.0 + 63.0 * t / (horizon - 1)
    return Schedule(learning_rate=lr, momentum=momentum, batch_size=batch, provenance={"converged": True})


@pytest.fixture(scope="module")
def long_schedule() -> Schedule:
    schedule = smooth_schedule(HORIZON_LONG)
    assert np.unique(schedule.learning_rate).size == HORIZON_LONG
    assert np.unique(schedule.momentum).size == HORIZON_LONG
    return schedule


def test_public_api_is_pinned():
    import schedopt.export

    assert sorted(schedopt.export.__all__) == [
        "BASES",
        "TorchLambda",
        "batch_size_schedule",
        "every_k_schedule",
        "rescale_schedule",
        "schedule_values",
        "to_optax",
        "to_optax_multisteps",
        "to_optax_optimizer",
        "to_torch_lambda",
        "to_torch_scheduler",
        "torch_optimizer_lr",
    ]
    assert all(hasattr(schedopt.export, name) for name in schedopt.export.__all__)


# --- exact values at every designed step


def test_every_step_exact_for_T_1e4(long_schedule):
    f = to_optax(long_schedule)
    steps = jnp.arange(HORIZON_LONG)
    got = np.asarray(f(steps))
    assert got.dtype == np.float64
    assert_allclose(got, long_schedule.learning_rate, rtol=0, atol=ATOL_EXACT)
    assert_array_equal(got, long_schedule.learning_rate)  # a gather: bit for bit
    # int32 steps (optax's count dtype) and float steps at whole numbers
    assert_array_equal(np.asarray(f(steps.astype(jnp.int32))), long_schedule.learning_rate)
    assert_allclose(
        np.asarray(f(steps.astype(jnp.float64))), long_schedule.learning_rate, rtol=0, atol=ATOL_EXACT
    )
    mom = np.asarray(to_optax(long_schedule, "momentum")(steps))
    assert_array_equal(mom, long_schedule.momentum)


def test_python_int_steps_exact(long_schedule):
    f = to_optax(long_schedule)
    for t in (0, 1, 2, 17, 999, 5000, HORIZON_LONG - 2, HORIZON_LONG - 1):
        assert float(f(t)) == long_schedule.learning_rate[t]
        assert float(f(np.int64(t))) == long_schedule.learning_rate[t]


def test_under_jit_including_scalar_traced_steps_in_a_scan(long_schedule):
    f = to_optax(long_schedule)
    assert_array_equal(np.asarray(jax.jit(f)(jnp.arange(HORIZON_LONG))), long_schedule.learning_rate)

    @jax.jit
    def scan_values():
        def body(count, _):
            return count + 1, f(count)  # optax's use: a traced int32 scalar count

        return jax.lax.scan(body, jnp.zeros([], jnp.int32), None, length=HORIZON_LONG)[1]

    assert_array_equal(np.asarray(scan_values()), long_schedule.learning_rate)


def test_under_vmap(long_schedule):
    f = to_optax(long_schedule)
    steps = jnp.arange(HORIZON_LONG)
    assert_array_equal(np.asarray(jax.vmap(f)(steps)), long_schedule.learning_rate)
    grid = steps.reshape(100, 100)
    assert_array_equal(np.asarray(jax.vmap(jax.vmap(f))(grid)), long_schedule.learning_rate.reshape(100, 100))


def test_under_grad(long_schedule):
    f = to_optax(long_schedule)
    lr = long_schedule.learning_rate
    steps = jnp.arange(0, HORIZON_LONG, 7)

    # gradient through the schedule's values: d/dx sum(f(t) x) = f(t)
    grad_x = jax.grad(lambda x: jnp.sum(f(steps) * x))(jnp.ones(steps.shape))
    assert_array_equal(np.asarray(grad_x), lr[::7])

    # gradient w.r.t. a scalar multiplying a float step: between designed steps the
    # schedule is linear, so d f(a t) / da at a = 1 is t (lr[i+1] - lr[i])
    t = 1234.25
    slope = jax.grad(lambda a: f(a * t))(1.0)
    assert_allclose(float(slope), t * (lr[1235] - lr[1234]), rtol=1e-12)
    assert_allclose(float(f(t)), lr[1234] + 0.25 * (lr[1235] - lr[1234]), rtol=RTOL_ARITH)
    # jit(grad) and vmap(grad) too
    slopes = jax.jit(jax.vmap(jax.grad(lambda s: f(s))))(jnp.array([10.5, 20.5]))
    assert_allclose(np.asarray(slopes), [lr[11] - lr[10], lr[21] - lr[20]], rtol=1e-12)


def test_holds_last_value_past_horizon_and_first_before_zero(long_schedule):
    f = to_optax(long_schedule)
    lr = long_schedule.learning_rate
    past = jnp.array([HORIZON_LONG, HORIZON_LONG + 1, 10**6, np.iinfo(np.int32).max], dtype=jnp.int64)
    assert_array_equal(np.asarray(f(past)), lr[-1])
    assert_array_equal(np.asarray(jax.jit(f)(past.astype(jnp.int32))), lr[-1])
    assert float(f(HORIZON_LONG + 0.5)) == lr[-1]
    assert_array_equal(np.asarray(f(jnp.array([-1, -1000]))), lr[0])
    assert float(f(-0.5)) == lr[0]
    # past the horizon the slope is zero
    assert float(jax.grad(f)(float(HORIZON_LONG + 3))) == 0.0


# --- rescaling


def test_peak_rescales_to_the_new_maximum(long_schedule):
    lr = long_schedule.learning_rate
    f = to_optax(long_schedule, peak=0.05)
    got = np.asarray(f(jnp.arange(HORIZON_LONG)))
    assert got.max() == 0.05  # exactly: values / max is 1.0 at the maximum
    assert_allclose(got, lr * (0.05 / lr.max()), rtol=RTOL_ARITH)
    assert_allclose(schedule_values(long_schedule, peak=0.05), got, rtol=0, atol=0)


def test_horizon_stretch_numbers():
    # v = (t + 1)^2 at t = 0..3; T2 = 8: step s takes position s * 4 / 8 = s / 2
    s = Schedule(learning_rate=[1.0, 4.0, 9.0, 16.0])
    f = to_optax(s, horizon=8)
    expected = [1.0, 2.5, 4.0, 6.5, 9.0, 12.5, 16.0, 16.0]
    assert_allclose(np.asarray(f(jnp.arange(8))), expected, rtol=RTOL_ARITH)
    assert_allclose(np.asarray(f(jnp.arange(8, 12))), 16.0, rtol=0)  # holds the value at T2 - 1
    assert_allclose(float(f(2.5)), 5.25, rtol=RTOL_ARITH)  # position 1.25: 4 + 0.25 * 5
    # shrink: T2 = 2 takes positions 0 and 2; past T2 it holds the value at step T2 - 1
    g = to_optax(s, horizon=2)
    assert_allclose(np.asarray(g(jnp.arange(5))), [1.0, 9.0, 9.0, 9.0, 9.0], rtol=0)
    # both at once: peak rescales the shape, horizon stretches it
    h = to_optax(s, peak=2.0, horizon=8)
    assert_allclose(np.asarray(h(jnp.arange(8))), np.array(expected) / 8.0, rtol=RTOL_ARITH)
    # same horizon: the identity
    assert_array_equal(np.asarray(to_optax(s, horizon=4)(jnp.arange(4))), s.learning_rate)


def test_rescale_schedule_matches_the_closure(long_schedule):
    new = rescale_schedule(long_schedule, peak=0.1, horizon=25_000)
    assert new.horizon == 25_000
    assert new.learning_rate.max() == 0.1
    f = to_optax(long_schedule, peak=0.1, horizon=25_000)
    steps = jnp.arange(25_000)
    assert_allclose(np.asarray(f(steps)), new.learning_rate, rtol=RTOL_ARITH)
    assert_allclose(
        np.asarray(to_optax(long_schedule, "momentum", horizon=25_000)(steps)), new.momentum, rtol=RTOL_ARITH
    )
    assert new.provenance["rescaled"]["original_horizon"] == HORIZON_LONG


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"control": "lr"}, "`control`"),
        ({"control": "batch"}, "`control`"),
        ({"peak": 0.0}, "`peak`"),
        ({"peak": -1.0}, "`peak`"),
        ({"peak": float("nan")}, "`peak`"),
        ({"peak": float("inf")}, "`peak`"),
        ({"peak": True}, "`peak`"),
        ({"peak": "0.1"}, "`peak`"),
        ({"horizon": 0}, "`horizon`"),
        ({"horizon": -3}, "`horizon`"),
        ({"horizon": 2.5}, "`horizon`"),
        ({"horizon": True}, "`horizon`"),
        ({"horizon": "100"}, "`horizon`"),
        ({"control": "momentum", "peak": 1.0}, "`peak`"),
    ],
)
def test_invalid_options_name_the_option(kwargs, option):
    s = Schedule(learning_rate=[0.1, 0.2], momentum=[0.5, 0.6])
    with pytest.raises(ExportError, match=option):
        to_optax(s, **kwargs)


def test_invalid_schedule_and_missing_control():
    with pytest.raises(ExportError, match="`schedule`"):
        to_optax([0.1, 0.2])
    with pytest.raises(ExportError, match="momentum"):
        to_optax(Schedule(learning_rate=[0.1, 0.2]), "momentum")
    with pytest.raises(ExportError, match=r"`peak`.*zero"):
        to_optax(Schedule(learning_rate=[0.0, 0.0]), peak=0.1)
    with pytest.raises(ExportError, match="no such schedule file"):
        to_optax("/nonexistent/schedule.json")


def test_fixed_control_from_provenance_and_integral_float_horizon():
    s = Schedule(learning_rate=[0.1, 0.2], provenance={"fixed": {"batch_size": 4.0, "momentum": 0.5}})
    assert_array_equal(np.asarray(to_optax(s, "momentum")(jnp.arange(3))), 0.5)
    assert batch_size_schedule(s)(7) == 4
    assert_allclose(
        np.asarray(to_optax(s, horizon=4.0)(jnp.arange(4))), [0.1, 0.15, 0.2, 0.2], rtol=RTOL_ARITH
    )


def test_unconverged_schedule_warns():
    s = Schedule(learning_rate=[0.1, 0.2], provenance={"converged": False, "status": "max_iterations"})
    with pytest.warns(UserWarning, match="max_iterations"):
        to_optax(s)


def test_loads_a_schedule_file(tmp_path, long_schedule):
    path = schedopt.save_schedule(long_schedule, tmp_path / "schedule.json")
    f = to_optax(path)
    assert_array_equal(np.asarray(f(jnp.arange(HORIZON_LONG))), long_schedule.learning_rate)
    opt = to_optax_optimizer(str(path))
    assert float(opt.init(jnp.zeros(2)).hyperparams["momentum"]) == long_schedule.momentum[0]


# --- optimizers


def injected(opt, horizon: int, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The hyperparameters the optimizer used at each of ``horizon`` updates (jit + scan)."""
    params = jnp.zeros(3)

    @jax.jit
    def run():
        def body(state, _):
            _, state = opt.update(jnp.ones(3), state, params)
            return state, {n: state.hyperparams[n] for n in names}

        return jax.lax.scan(body, opt.init(params), None, length=horizon)[1]

    return {k: np.asarray(v) for k, v in run().items()}


def test_sgd_injected_hyperparams_follow_the_schedule(long_schedule):
    opt = to_optax_optimizer(long_schedule, "sgd")
    got = injected(opt, HORIZON_LONG + 5, ("learning_rate", "momentum"))
    assert_array_equal(got["learning_rate"][:HORIZON_LONG], long_schedule.learning_rate)
    assert_array_equal(got["momentum"][:HORIZON_LONG], long_schedule.momentum)
    assert_array_equal(got["learning_rate"][HORIZON_LONG:], long_schedule.learning_rate[-1])


def test_sgd_update_is_the_heavy_ball_of_the_model():
    """v' = beta v + g, w' = w - eta v': the updates on a constant gradient, by hand."""
    s = Schedule(learning_rate=[0.1, 0.2, 0.3], momentum=[0.5, 0.25, 0.75])
    opt = to_optax_optimizer(s)
    state = opt.init(jnp.zeros(1))
    v, expected, got = 0.0, [], []
    for t in range(3):
        v = s.momentum[t] * v + 1.0
        expected.append(-s.learning_rate[t] * v)
        updates, state = opt.update(jnp.ones(1), state)
        got.append(float(updates[0]))
    assert_allclose(got, expected, rtol=RTOL_ARITH)


@pytest.mark.parametrize("base", ["adamw", "adam", "lion"])
def test_other_bases_follow_the_learning_rate(base, long_schedule):
    s = Schedule(learning_rate=long_schedule.learning_rate[:500])
    opt = to_optax_optimizer(s, base, peak=0.01, **({"weight_decay": 0.1} if base == "adamw" else {}))
    got = injected(opt, 500, ("learning_rate",))["learning_rate"]
    assert_allclose(got, s.learning_rate / s.learning_rate.max() * 0.01, rtol=RTOL_ARITH)


def test_optimizer_options_are_validated(long_schedule):
    with pytest.raises(ExportError, match="`base`"):
        to_optax_optimizer(long_schedule, "adamax-foo")
    with pytest.raises(ExportError, match=r"`base`.*momentum") as info:
        to_optax_optimizer(long_schedule, "lion")  # a base with nothing the momentum can drive
    # it says precisely why, and the ways out
    for words in ("'lion'", "b2 tracks the gradients", "base='sgd'", "adamw", "use_momentum=False"):
        assert words in str(info.value)
    with pytest.raises(ExportError, match="`b1` is set by the schedule's momentum"):
        to_optax_optimizer(long_schedule, "adamw", b1=0.9)
    with pytest.raises(ExportError, match="`learning_rate`"):
        to_optax_optimizer(long_schedule, learning_rate=0.1)
    with pytest.raises(ExportError, match="`momentum`"):
        to_optax_optimizer(long_schedule, momentum=0.9)
    with pytest.raises(ExportError, match=r"`base`.*not_an_arg"):
        to_optax_optimizer(long_schedule, not_an_arg=1)
    with pytest.raises(ExportError, match="`use_momentum`"):
        to_optax_optimizer(Schedule(learning_rate=[0.1]), use_momentum=True)
    # dropping the momentum explicitly is allowed
    opt = to_optax_optimizer(long_schedule, "adamw", use_momentum=False)
    assert "momentum" not in opt.init(jnp.zeros(1)).hyperparams


@pytest.mark.parametrize("base", ["adamw", "adam", "nadam", "lamb"])
def test_a_momentum_schedule_drives_adams_b1(base, long_schedule):
    """b1_t = beta_t at every update (issue 16 item 5: it used to raise)."""
    opt = to_optax_optimizer(long_schedule, base)
    got = injected(opt, HORIZON_LONG + 3, ("learning_rate", "b1"))
    assert_array_equal(got["b1"][:HORIZON_LONG], long_schedule.momentum.astype(got["b1"].dtype))
    assert_array_equal(got["b1"][HORIZON_LONG:], got["b1"][HORIZON_LONG - 1])
    assert_array_equal(
        got["learning_rate"][:HORIZON_LONG], long_schedule.learning_rate.astype(got["b1"].dtype)
    )


def test_adamw_with_b1_from_the_schedule_is_optax_adamw_at_that_b1():
    """Updates equal optax.adamw's at b1 = beta (a constant beta), and the varying b1 changes them."""
    horizon = 40
    lr = np.linspace(3e-3, 3e-4, horizon)
    grads = [jnp.asarray(np.sin(np.arange(4) + 0.3 * t), dtype=jnp.float32) for t in range(horizon)]

    def updates(opt):
        w = jnp.zeros(4)
        state, out = opt.init(w), []
        for g in grads:
            u, state = opt.update(g, state, w)
            w = optax.apply_updates(w, u)
            out.append(np.asarray(w))
        return np.array(out)

    constant = Schedule(learning_rate=lr, momentum=np.full(horizon, 0.7))
    ours = updates(to_optax_optimizer(constant, "adamw", weight_decay=0.1))
    reference = updates(optax.adamw(to_optax(constant), b1=0.7, weight_decay=0.1))
    # equal to float32 rounding (b1 enters as a float32 hyperparameter, optax's as a Python float)
    assert_allclose(ours, reference, rtol=0, atol=1e-6 * np.max(np.abs(reference)))
    varying = Schedule(learning_rate=lr, momentum=np.linspace(0.5, 0.95, horizon))
    driven = updates(to_optax_optimizer(varying, "adamw", weight_decay=0.1))
    assert np.max(np.abs(driven - reference)) > 1e-4 * np.max(np.abs(reference))


@pytest.mark.parametrize("mask_kind", ["callable", "pytree"])
def test_adamw_mask_keeps_optax_semantics(mask_kind):
    """A callable ``mask`` is optax's mask (weight decay on the matrices only), not a schedule.

    With a zero gradient, AdamW's update is ``-lr * weight_decay * w`` on masked leaves and
    zero elsewhere: the same numbers as ``optax.adamw`` with the same arguments.
    """
    s = Schedule(learning_rate=[0.1, 0.05, 0.02])
    params = {"w": jnp.full((2, 2), 2.0), "b": jnp.full(2, 2.0)}
    mask = (lambda p: {"w": True, "b": False}) if mask_kind == "callable" else {"w": True, "b": False}
    opt = to_optax_optimizer(s, "adamw", weight_decay=0.5, mask=mask)
    reference = optax.adamw(to_optax(s), weight_decay=0.5, mask=mask)
    state, ref_state = opt.init(params), reference.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    for t in range(3):
        updates, state = opt.update(zeros, state, params)
        expected, ref_state = reference.update(zeros, ref_state, params)
        assert_allclose(updates["w"], -s.learning_rate[t] * 0.5 * 2.0, rtol=RTOL_ARITH)
        assert_array_equal(updates["b"], 0.0)
        for leaf in ("w", "b"):
            assert_allclose(updates[leaf], expected[leaf], rtol=RTOL_ARITH)
    assert {"learning_rate", "weight_decay"} <= set(state.hyperparams)  # numbers stay visible
    assert "mask" not in state.hyperparams


# --- batch size


def test_batch_size_schedule_numbers(long_schedule):
    m = batch_size_schedule(long_schedule)
    expected = np.round(long_schedule.batch_size).astype(int)
    assert [m(t) for t in (0, 1, 5000, HORIZON_LONG - 1, HORIZON_LONG + 7)] == [
        *expected[[0, 1, 5000, -1]].tolist(),
        expected[-1],
    ]
    assert isinstance(m(3), int)
    assert_array_equal(np.asarray(jax.jit(m)(jnp.arange(HORIZON_LONG))), expected)
    s = Schedule(learning_rate=[0.1] * 4, batch_size=[1.0, 2.5, 3.5, 4.4])
    assert [batch_size_schedule(s, rounding=r)(3) for r in ("nearest", "floor", "ceil")] == [4, 4, 5]
    assert_array_equal(np.asarray(batch_size_schedule(s)(jnp.arange(4))), [1, 2, 4, 4])  # halves to even
    with pytest.raises(ExportError, match=r"`rounding`.*step 1"):
        batch_size_schedule(s, rounding="exact")
    with pytest.raises(ExportError, match="`rounding`"):
        batch_size_schedule(s, rounding="up")
    with pytest.raises(ExportError, match="batch size"):
        batch_size_schedule(Schedule(learning_rate=[0.1]))


def test_every_k_schedule_numbers():
    s = Schedule(learning_rate=[0.1] * 4, batch_size=[8.0, 16.0, 24.0, 64.0])
    k = every_k_schedule(s, 8)
    assert_array_equal(np.asarray(k(jnp.arange(6))), [1, 2, 3, 8, 8, 8])
    assert k(2) == 3
    with pytest.raises(ExportError, match="`micro_batch_size`"):
        every_k_schedule(s, 0)
    with pytest.raises(ExportError, match="`micro_batch_size`"):
        every_k_schedule(s, 2.0)
    with pytest.raises(ExportError, match="< 1 at step 0"):
        every_k_schedule(s, 32)


def test_multisteps_steps_after_k_micro_batches():
    s = Schedule(learning_rate=[0.1, 0.2, 0.3, 0.4], batch_size=[1.0, 3.0, 2.0, 1.0])
    opt = to_optax_multisteps(s, 1)
    params = jnp.zeros(1)
    state = opt.init(params)
    update = jax.jit(opt.update)
    updated, lrs = [], []
    for _ in range(1 + 3 + 2 + 1):
        _, state = update(jnp.ones(1), state, params)
        updated.append(bool(opt.has_updated(state)))
        lrs.append(float(state.inner_opt_state.hyperparams["learning_rate"]))
    assert updated == [True, False, False, True, False, True, True]
    assert [lr for lr, u in zip(lrs, updated, strict=True) if u] == [0.1, 0.2, 0.3, 0.4]


# --- real optax training loops against the designed loss curve


def checkpoints(horizon: int, n: int = N_CHECKPOINTS) -> np.ndarray:
    """``n`` distinct steps in ``[1, horizon]``, geometrically spaced."""
    steps = np.unique(np.round(np.geomspace(1, horizon, 4 * n)).astype(int))
    pick = np.unique(np.round(np.linspace(0, steps.size - 1, n)).astype(int))
    return steps[pick]


def train_losses(model: Model, opt, calls: int, micro_batch: int, seeds: int, seed: int) -> np.ndarray:
    """Loss after every ``opt.update`` call of ``seeds`` real optax runs, ``(seeds, calls + 1)``.

    Linear regression on Gaussian features ``x ~ N(0, diag(lambda))``, a teacher
    ``w*_k = ±sqrt(c_k(0))`` with random signs, labels ``x.w* + eps``, student
    ``w0 = 0``, a fresh batch of ``micro_batch`` samples per call, gradient of
    ``0.5 mean((x.w - y)^2)``; loss ``sum_k lambda_k (w - w*)_k^2 + R_N``.

    Each seed is one PRNG key (``rbg``: it compiles several times faster than
    threefry on CPU); its normals are drawn in one call, before the scan.
    """
    lam = jnp.asarray(model.eigenvalues)
    n = lam.size
    sqrt_c0 = jnp.sqrt(jnp.asarray(model.initial_error))
    sigma = math.sqrt(model.effective_noise)

    def mse(w, x, y):
        return 0.5 * jnp.mean((x @ w - y) ** 2)

    def run(key):
        z = jax.random.normal(key, (calls + 1, micro_batch, n + 1))
        w_star = jnp.where(z[0, 0, :n] >= 0, 1.0, -1.0) * sqrt_c0
        xs = z[1:, :, :n] * jnp.sqrt(lam)
        ys = xs @ w_star + sigma * z[1:, :, n]
        w0 = jnp.zeros_like(lam)

        def step(carry, batch):
            w, state = carry
            updates, state = opt.update(jax.grad(mse)(w, *batch), state, w)
            w = optax.apply_updates(w, updates)
            return (w, state), jnp.sum(lam * (w - w_star) ** 2)

        _, losses = jax.lax.scan(step, (w0, opt.init(w0)), (xs, ys))
        return jnp.concatenate([jnp.sum(lam * w_star**2)[None], losses])

    keys = jax.random.split(jax.random.key(seed, impl="rbg"), seeds)
    return np.asarray(jax.jit(jax.vmap(run))(keys)) + model.residual


def max_abs_z(losses: np.ndarray, expected: np.ndarray) -> float:
    result = MonteCarloResult(loss=losses)
    assert np.all(np.isfinite(result.loss))
    assert_allclose(result.loss[:, 0], expected[0], rtol=1e-13)
    steps = checkpoints(result.horizon)
    assert steps.size >= 10
    z = float(np.max(np.abs(result.zscore(expected)[steps])))
    print(f"max |z| = {z:.2f} over steps {steps.tolist()}")
    return z


@pytest.fixture(scope="module")
def mc_model() -> Model:
    return Model.powerlaw(2.0, 1.5, 20, noise_std=0.3)


@pytest.fixture(scope="module")
def designed(mc_model):
    """A designed schedule (Pontryagin sweep) and its solution."""
    threshold = stability_threshold(mc_model, 1)
    problem = Problem(
        name="export-mc",
        model=mc_model,
        training=Training(horizon=HORIZON_MC),
        controls={"learning_rate": ControlSpec("learning_rate", 0.0, 0.9 * threshold, blocks=20)},
    )
    solution = schedopt.solve(problem, "pontryagin")
    return solution, schedopt.schedule_from_solution(solution)


def test_optax_sgd_training_loop_reproduces_the_designed_loss_curve(mc_model, designed, tmp_path):
    solution, schedule = designed
    path = schedopt.save_schedule(schedule, tmp_path / "schedule.json")  # the user's workflow: a file
    opt = to_optax_optimizer(path, "sgd")
    expected = solution.loss_curve
    assert_allclose(expected, schedopt.loss_curve(mc_model, schedule.learning_rate).loss, rtol=1e-12)
    losses = train_losses(mc_model, opt, HORIZON_MC, 1, SEEDS, seed=0)
    # the schedule matters: a constant rate at the schedule's peak ends far higher
    assert expected[-1] < 0.8 * schedopt.final_loss(
        mc_model, np.full(HORIZON_MC, schedule.learning_rate.max())
    )
    assert max_abs_z(losses, expected) < Z_MAX
    # power: the same runs reject the curve of a learning rate 20 % higher
    wrong = schedopt.loss_curve(mc_model, 1.2 * schedule.learning_rate).loss
    assert max_abs_z(losses, wrong) > Z_REJECT


def test_optax_sgd_with_momentum_schedule_reproduces_the_loss_curve(mc_model, designed):
    _, base = designed
    t = np.arange(HORIZON_MC) / HORIZON_MC
    momentum = 0.2 + 0.5 * np.sin(np.pi * t) ** 2  # 0.2 -> 0.7 -> 0.2
    lr = base.learning_rate * (1 - momentum)  # same effective rate eta / (1 - beta)
    schedule = Schedule(learning_rate=lr, momentum=momentum)
    opt = to_optax_optimizer(schedule, "sgd")
    expected = schedopt.loss_curve(mc_model, lr, momentum=momentum).loss
    losses = train_losses(mc_model, opt, HORIZON_MC, 1, SEEDS, seed=1)
    assert max_abs_z(losses, expected) < Z_MAX


def test_multisteps_batch_schedule_reproduces_the_loss_curve(mc_model, designed):
    """A batch-size ramp 1..4 realised by gradient accumulation of single-sample micro-batches."""
    _, base = designed
    batch = 1.0 + np.floor(4 * np.arange(HORIZON_MC) / HORIZON_MC)
    schedule = Schedule(learning_rate=base.learning_rate, batch_size=batch)
    opt = to_optax_multisteps(schedule, micro_batch_size=1)
    k = every_k_schedule(schedule, 1).table
    assert_array_equal(k, batch)
    calls = int(k.sum())
    losses = train_losses(mc_model, opt, calls, 1, SEEDS, seed=2)
    after_step = np.concatenate([[0], np.cumsum(k)])  # loss after each optimiser step
    expected = schedopt.loss_curve(mc_model, schedule.learning_rate, batch_size=batch).loss
    assert max_abs_z(losses[:, after_step], expected) < Z_MAX
