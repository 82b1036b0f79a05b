"""The fit's speed-ups change no fit: the lanes' scan is the recursion (values and Jacobians), the threaded scouts the serial ones."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from test_fit import N_MODES, _pilots

from schedopt._jax import float64, jax
from schedopt._progress import reporting
from schedopt.calibration import _solve
from schedopt.calibration._curves import loss_curves
from schedopt.calibration._model import _bounds, _data, _lanes, _Layout, _Objective, _starts
from schedopt.dynamics.recursion import loss_curve_jax


def _spectrum():
    k = jnp.arange(1.0, 41.0)
    lam = jnp.concatenate([k**-1.7, jnp.array([3e-3])])  # a power law and a null-mode node
    weights = jnp.concatenate([lam[:-1], jnp.array([0.2])])
    c0 = jnp.concatenate([k**-1.2 / jnp.sum(k**-1.2), jnp.zeros(1)])
    return lam, c0, weights, jnp.asarray(0.05)


def _schedule(horizon: int, peak: float) -> np.ndarray:
    t = np.arange(horizon)
    cool = int(0.8 * horizon)
    decay = np.where(t < cool, 1.0, 1 - np.sqrt(np.clip(t - cool, 0, None) / (horizon - cool)))
    return peak * np.minimum((t + 1) / (horizon // 10), 1) * decay


def _reference(lam, c0, weights, noise, eta):
    """One run a row, by the recursion of :mod:`schedopt.dynamics` (rounding aside, the same numbers)."""
    ones = jnp.ones(eta.shape[-1])
    return jax.vmap(lambda r: loss_curve_jax(lam, c0, noise, r, ones, loss_weights=weights))(eta)


HORIZONS = (300, 120, 100, 60, 179)  # lanes: 300 | 179 + 120 | 100 + 60 (first fit, longest first)


def _packed():
    """The runs of ``HORIZONS`` one a row (zero-padded), and packed into lanes as the fit packs them."""
    rates = [_schedule(h, 0.2 + 0.1 * i) for i, h in enumerate(HORIZONS)]
    rows = np.zeros((len(HORIZONS), max(HORIZONS)))
    for i, r in enumerate(rates):
        rows[i, : r.size] = r
    lane, offset, n_lanes = _lanes(list(HORIZONS))
    lanes = np.zeros((n_lanes, max(HORIZONS)))
    reset = np.zeros(lanes.shape, dtype=bool)
    for i, r in enumerate(rates):
        lanes[lane[i], offset[i] : offset[i] + r.size] = r
        reset[lane[i], offset[i] - 1] = offset[i] > 0
    return jnp.asarray(rows), jnp.asarray(lanes), jnp.asarray(reset), lane, offset


def test_runs_pack_into_lanes_first_fit_longest_first():
    lane, offset, n_lanes = _lanes(list(HORIZONS))
    assert n_lanes == 3
    assert lane.tolist() == [0, 1, 2, 2, 1] and offset.tolist() == [0, 180, 0, 101, 0]
    assert _lanes([1200, 400, 400])[2] == 2  # the planned pilots: two lanes, not three
    assert _lanes([5])[2] == 1 and _lanes([7, 7, 7])[2] == 3


@float64
def test_runs_packed_into_lanes_have_the_curves_and_jacobians_of_runs_one_a_row():
    lam, c0, weights, noise = _spectrum()
    rows, lanes, reset, lane, offset = _packed()
    want = _reference(lam, c0, weights, noise, rows)
    got = loss_curves(lam, c0, weights, noise, lanes, reset)
    for i, h in enumerate(HORIZONS):
        np.testing.assert_allclose(got[lane[i], offset[i] : offset[i] + h + 1], want[i, : h + 1], rtol=1e-13)
    spectrum = (lam, c0, weights, noise)
    for k in range(4):  # each input's Jacobian, against automatic differentiation of the recursion

        def ours(v, k=k):
            return loss_curves(*spectrum[:k], v, *spectrum[k + 1 :], lanes, reset)

        def theirs(v, k=k):
            return _reference(*spectrum[:k], v, *spectrum[k + 1 :], rows)

        d_got, d_want = jax.jacfwd(ours)(spectrum[k]), jax.jacfwd(theirs)(spectrum[k])
        scale = float(jnp.max(jnp.abs(d_want)))
        assert scale > 0
        for i, h in enumerate(HORIZONS):
            np.testing.assert_allclose(
                d_got[lane[i], offset[i] : offset[i] + h + 1], d_want[i, : h + 1], rtol=0, atol=1e-12 * scale
            )


@float64
def test_the_jacobian_in_the_learning_rates_is_the_recursions():
    lam, c0, weights, noise = _spectrum()
    rows = jnp.asarray(np.stack([_schedule(150, 0.6), np.r_[_schedule(90, 0.3), np.zeros(60)]]))
    none = jnp.zeros(rows.shape, dtype=bool)
    d_got = jax.jacfwd(lambda eta: loss_curves(lam, c0, weights, noise, eta, none))(rows)
    d_want = jax.jacfwd(lambda eta: _reference(lam, c0, weights, noise, eta))(rows)
    np.testing.assert_allclose(d_got, d_want, rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(d_want))))


@float64
def test_reverse_mode_through_the_lanes_agrees_too():
    lam, c0, weights, noise = _spectrum()
    rows, lanes, reset, lane, offset = _packed()

    def ours(eta):
        curves = loss_curves(lam, c0, weights, noise, eta, reset)
        return sum(
            jnp.sum(curves[lane[i], offset[i] : offset[i] + h + 1 : 7]) for i, h in enumerate(HORIZONS)
        )

    def theirs(eta):
        curves = _reference(lam, c0, weights, noise, eta)
        return sum(jnp.sum(curves[i, : h + 1 : 7]) for i, h in enumerate(HORIZONS))

    got, want = jax.grad(ours)(lanes), jax.grad(theirs)(rows)
    scale = float(jnp.max(jnp.abs(want)))
    for i, h in enumerate(HORIZONS):
        np.testing.assert_allclose(
            got[lane[i], offset[i] : offset[i] + h], want[i, :h], rtol=0, atol=1e-12 * scale
        )


@float64
def _scouted(monkeypatch, threads: int):
    monkeypatch.setattr(_solve, "scout_threads", lambda starts: threads)
    runs = _pilots(noise=0.005)
    layout = _Layout(n_modes=N_MODES, fixed_kappa=False, exponent=True, null_modes=True)
    data = _data(runs, max(r.peak_learning_rate for r in runs))
    objective = _Objective(data, layout, None)
    seen = []
    with reporting(lambda *event: seen.append(event[0])):
        scouts = _solve._scouts(objective, _starts(runs, data, layout)[:4], _bounds(layout))
    return scouts, seen, objective.evaluations


@pytest.fixture
def x64_off_outside_schedopt():
    """JAX's float64 off outside schedopt's own scope, as in a user's process (the test session turns it on)."""
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", True)


@pytest.mark.parametrize("threads", [2, 3])
def test_scouts_on_threads_are_the_scouts_run_one_after_another(
    monkeypatch, threads, x64_off_outside_schedopt
):
    serial, serial_seen, serial_count = _scouted(monkeypatch, 1)
    threaded, seen, count = _scouted(monkeypatch, threads)
    for one, other in zip(serial, threaded, strict=True):
        assert np.array_equal(one.x, other.x) and one.cost == other.cost and one.nfev == other.nfev
        assert one.x.dtype == np.float64
    assert count == serial_count == sum(s.nfev for s in serial)  # every evaluation counted once
    assert seen == serial_seen == ["fit"] * count  # the progress line hears the threads' evaluations


def test_scout_threads_are_one_a_usable_core_and_at_most_one_a_start(monkeypatch):
    monkeypatch.setattr(_solve, "usable_cores", lambda: 2)
    assert _solve.scout_threads(15) == 2
    assert _solve.scout_threads(1) == 1
    monkeypatch.setattr(_solve, "usable_cores", lambda: 64)
    assert _solve.scout_threads(15) == 15


class _SlowObjective:
    """Evaluations that take a while; start ``start``'s ``count``-th one raises ``error`` (by default the
    first start's third is interrupted: Ctrl-C)."""

    def __init__(self, start: float = 0.0, count: int = 3, error: BaseException | type = KeyboardInterrupt):
        self.calls: dict[float, int] = {}
        self.lock = threading.Lock()
        self.failure = (start, count, error)

    def fun(self, x):
        with self.lock:
            self.calls[float(x[0])] = self.calls.get(float(x[0]), 0) + 1
            count = self.calls[float(x[0])]
        start, failing, error = self.failure
        if x[0] == start and count == failing:
            raise error
        time.sleep(0.02)
        return np.asarray(x)


def _scout_of_fixed_length(objective, x0, bounds, budget):
    """A scout that never converges early: ``budget`` evaluations."""
    for _ in range(budget):
        objective.fun(x0)
    return SimpleNamespace(x=x0, cost=0.0)


def test_an_interrupt_stops_the_threaded_scouts_at_their_next_evaluation(monkeypatch):
    monkeypatch.setattr(_solve, "scout_threads", lambda starts: 2)
    monkeypatch.setattr(_solve, "_run_start", _scout_of_fixed_length)
    objective = _SlowObjective()
    starts = [np.array([float(i), 0.5]) for i in range(4)]
    with pytest.raises(KeyboardInterrupt):
        _solve._scouts(objective, starts, None)
    time.sleep(0.2)  # a scout still running would go on evaluating meanwhile
    with objective.lock:
        calls = dict(objective.calls)
    assert calls[0.0] == 3
    assert calls.get(1.0, 0) < _solve._SCOUT_EVALUATIONS // 2  # stopped, not run to its 50 evaluations
    assert 2.0 not in calls and 3.0 not in calls  # the starts not begun never began


def test_a_scout_that_fails_stops_the_others_and_its_own_error_is_raised(monkeypatch):
    monkeypatch.setattr(_solve, "scout_threads", lambda starts: 2)
    monkeypatch.setattr(_solve, "_run_start", _scout_of_fixed_length)
    objective = _SlowObjective(1.0, 2, ValueError("a scout's own error"))  # while the first start still runs
    starts = [np.array([float(i), 0.5]) for i in range(4)]
    with pytest.raises(ValueError, match="a scout's own error"):  # not the stop of the scout awaited first
        _solve._scouts(objective, starts, None)
    assert objective.calls[0.0] < _solve._SCOUT_EVALUATIONS // 2
    assert 2.0 not in objective.calls and 3.0 not in objective.calls
