"""PyTorch export: LambdaLR learning rates equal the optax schedule step for step.

Tests that need torch skip when it is not installed (it is an optional extra);
the error raised without torch is tested by hiding the module.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpy.testing import assert_allclose

from schedopt import Schedule, save_schedule
from schedopt.errors import ExportError
from schedopt.export import to_optax, to_torch_lambda, to_torch_scheduler, torch_optimizer_lr

#: torch's lr = peak * (value / peak): equal to the optax value up to two roundings.
RTOL_LR = 1e-12
#: Parameter trajectories of torch and optax SGD in float64 (same arithmetic, other order).
RTOL_TRAJECTORY = 1e-10
#: Steps compared (the issue's T = 1e4).
HORIZON = 10_000


@pytest.fixture(scope="module")
def schedule() -> Schedule:
    t = np.arange(HORIZON, dtype=np.float64)
    lr = 0.3 * np.minimum(1.0, (t + 1) / 100) * (1.0 - t / (HORIZON + 1.0)) ** 1.4  # warm-up, anneal
    return Schedule(learning_rate=lr)


def torch_lrs(torch, optimizer, scheduler, steps: int) -> np.ndarray:
    """The learning rate used by each of ``steps`` optimizer steps."""
    out = np.empty(steps)
    for t in range(steps):
        out[t] = optimizer.param_groups[0]["lr"]
        optimizer.step()  # no gradients: a no-op that keeps LambdaLR's order check happy
        scheduler.step()
    return out


def test_lambda_lr_equals_optax_step_for_step(schedule):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=torch_optimizer_lr(schedule))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=to_torch_lambda(schedule))
    steps = HORIZON + 50
    got = torch_lrs(torch, optimizer, scheduler, steps)
    expected = np.asarray(to_optax(schedule)(jnp.arange(steps)))
    assert_allclose(got, expected, rtol=RTOL_LR, atol=0)
    assert_allclose(got[HORIZON:], schedule.learning_rate[-1], rtol=RTOL_LR)  # holds the last value


def test_to_torch_scheduler_sets_the_peak_and_rescales(schedule):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=123.0)  # replaced by the peak
    scheduler = to_torch_scheduler(optimizer, schedule, peak=0.05, horizon=2 * HORIZON)
    got = torch_lrs(torch, optimizer, scheduler, 2 * HORIZON)
    expected = np.asarray(to_optax(schedule, peak=0.05, horizon=2 * HORIZON)(jnp.arange(2 * HORIZON)))
    assert_allclose(got, expected, rtol=RTOL_LR, atol=0)
    assert got.max() == pytest.approx(0.05, rel=RTOL_LR)
    assert torch_optimizer_lr(schedule, peak=0.05) == 0.05


def test_torch_and_optax_heavy_ball_trajectories_agree():
    """torch SGD(momentum=beta) + LambdaLR and optax sgd(momentum=beta) + to_optax: same iterates."""
    torch = pytest.importorskip("torch")
    horizon = 60
    lr = np.linspace(0.05, 0.4, horizon) * np.linspace(1.0, 0.1, horizon)
    schedule = Schedule(learning_rate=lr)
    curvature = np.array([1.0, 0.3, 0.05])
    target = np.array([1.0, -2.0, 0.5])

    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=1.0, momentum=0.6)
    scheduler = to_torch_scheduler(optimizer, schedule)
    a, b = torch.tensor(curvature), torch.tensor(target)
    torch_path = []
    for _ in range(horizon):
        optimizer.zero_grad()
        loss = 0.5 * torch.sum(a * (param - b) ** 2)
        loss.backward()
        optimizer.step()
        scheduler.step()
        torch_path.append(param.detach().numpy().copy())

    opt = optax.sgd(to_optax(schedule), momentum=0.6)
    w = jnp.zeros(3)
    state = opt.init(w)
    optax_path = []
    for _ in range(horizon):
        updates, state = opt.update(curvature * (w - target), state, w)
        w = optax.apply_updates(w, updates)
        optax_path.append(np.asarray(w))
    assert_allclose(np.array(torch_path), np.array(optax_path), rtol=RTOL_TRAJECTORY, atol=1e-14)


def test_lambda_is_saved_in_the_scheduler_state(schedule, tmp_path):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = to_torch_scheduler(optimizer, save_schedule(schedule, tmp_path / "s.json"))
    state = scheduler.state_dict()
    assert state["lr_lambdas"][0]["peak"] == schedule.learning_rate.max()


def test_lambda_factors_without_torch(schedule):
    fn = to_torch_lambda(schedule)
    peak = schedule.learning_rate.max()
    assert fn.peak == peak
    for t in (0, 1, 99, 5000, HORIZON - 1):
        assert fn(t) == pytest.approx(schedule.learning_rate[t] / peak, rel=1e-15)
    assert fn(HORIZON + 10) == fn(HORIZON - 1)
    assert fn(-1) == fn(0)
    assert max(fn(t) for t in range(HORIZON)) == 1.0


def test_missing_torch_raises_export_error(schedule, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ExportError, match="install the torch extra"):
        to_torch_scheduler(object(), schedule)


def test_invalid_inputs():
    with pytest.raises(ExportError, match="zero at every step"):
        to_torch_lambda(Schedule(learning_rate=[0.0, 0.0]))
    with pytest.raises(ExportError, match="`horizon`"):
        to_torch_lambda(Schedule(learning_rate=[0.1, 0.2]), horizon=0)
    torch = pytest.importorskip("torch")
    del torch
    with pytest.raises(ExportError, match="`optimizer`"):
        to_torch_scheduler(object(), Schedule(learning_rate=[0.1]))


def test_varying_momentum_warns():
    schedule = Schedule(learning_rate=[0.1, 0.2], momentum=[0.5, 0.9])
    with pytest.warns(UserWarning, match="momentum"):
        to_torch_lambda(schedule)


def _varying_momentum_schedule(horizon=40):
    lr = np.linspace(0.2, 0.02, horizon)
    beta = np.linspace(0.3, 0.9, horizon)
    return Schedule(learning_rate=lr, momentum=beta)


def test_a_designed_momentum_is_driven_step_for_step_on_sgd():
    """torch SGD(dampening=0) under to_torch_scheduler is the heavy ball with beta_t and eta_t of the
    schedule: v = beta_t v + g, w = w - eta_t v (checked against NumPy, to float64 rounding)."""
    torch = pytest.importorskip("torch")
    schedule = _varying_momentum_schedule()
    curvature, target = np.array([1.0, 0.3, 0.05]), np.array([1.0, -2.0, 0.5])
    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = torch.optim.SGD([param], lr=1.0, momentum=0.0)
    scheduler = to_torch_scheduler(optimizer, schedule)
    a, b = torch.tensor(curvature), torch.tensor(target)
    w, v = np.zeros(3), np.zeros(3)
    for t in range(schedule.horizon):
        assert optimizer.param_groups[0]["momentum"] == pytest.approx(schedule.momentum[t], rel=1e-15)
        optimizer.zero_grad()
        (0.5 * torch.sum(a * (param - b) ** 2)).backward()
        optimizer.step()
        scheduler.step()
        v = schedule.momentum[t] * v + curvature * (w - target)
        w = w - schedule.learning_rate[t] * v
        assert_allclose(param.detach().numpy(), w, rtol=1e-12, atol=1e-14)
    assert "momentum_values" in scheduler.state_dict()


def test_a_designed_momentum_drives_adams_first_beta():
    torch = pytest.importorskip("torch")
    schedule = _varying_momentum_schedule()
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([param], lr=1.0, betas=(0.9, 0.95))
    scheduler = to_torch_scheduler(optimizer, schedule)
    for t in range(schedule.horizon):
        b1, b2 = optimizer.param_groups[0]["betas"]
        assert b1 == pytest.approx(schedule.momentum[t], rel=1e-15) and b2 == 0.95
        assert optimizer.param_groups[0]["lr"] == pytest.approx(schedule.learning_rate[t], rel=1e-12)
        param.grad = torch.ones(2)
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda torch, p: torch.optim.SGD([p], lr=1.0, momentum=0.5, dampening=0.1), "dampening=0.1"),
        (lambda torch, p: torch.optim.SGD([p], lr=1.0, momentum=0.5, nesterov=True), "nesterov"),
        (lambda torch, p: torch.optim.Adagrad([p], lr=1.0), "Adagrad"),
    ],
)
def test_an_optimizer_that_cannot_take_the_designed_momentum_is_refused(build, match):
    torch = pytest.importorskip("torch")
    optimizer = build(torch, torch.nn.Parameter(torch.zeros(2)))
    with pytest.raises(ExportError, match=match):
        to_torch_scheduler(optimizer, _varying_momentum_schedule())
