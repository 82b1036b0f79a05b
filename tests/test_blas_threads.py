"""One BLAS thread inside schedopt's calls, the caller's thread counts restored (issues 13 and 16).

The checks of a real process run in a fresh one without the BLAS thread variables, as a
library user's process starts (with ``OPENBLAS_NUM_THREADS`` set, schedopt keeps the user's
count and there is nothing to scope). The counting of the process-wide scope is checked
here on stand-in libraries.
"""

from __future__ import annotations

import os
import threading

import pytest
from helpers import TINY_SPEC, fresh_process_json

from schedopt import _blas

PROBE = """
import json, sys
import numpy as np, scipy.optimize
from threadpoolctl import threadpool_info, threadpool_limits

def counts():
    return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

inside = []
minimize = scipy.optimize.minimize
def spy(*args, **kwargs):  # the jax solver's L-BFGS-B: what BLAS runs on during the solve
    inside.append(counts())
    return minimize(*args, **kwargs)
scipy.optimize.minimize = spy

import schedopt
from schedopt import _blas
from schedopt.baselines import tune_baselines

problem = schedopt.parse_problem(sys.argv[1])
out = {}
with threadpool_limits(limits=2, user_api="blas"):  # the caller's own setting, not 1
    out["before"] = counts()
    solution = schedopt.solve(problem)
    out["after_solve"] = counts()
    tuned = tune_baselines(problem, ["cosine", "wsd_linear"])
    out["after_tuning"] = counts()
    try:
        schedopt.solve(None)
    except Exception:
        pass
    out["after_error"] = counts()
out["inside"] = list(inside)

def fingerprint(solution, tuned):
    return {
        "loss": float(solution.final_loss).hex(),
        "parameters": {k: np.asarray(v).tobytes().hex() for k, v in solution.parameters.items()},
        "baselines": {k: [float(t.final_loss).hex(), np.asarray(t.learning_rate).tobytes().hex()]
                      for k, t in tuned.items()},
    }

scoped = fingerprint(solution, tuned)
_blas.enabled = False  # BLAS at the process's default thread count, as before the scope
inside.clear()
unscoped = fingerprint(schedopt.solve(problem), tune_baselines(problem, ["cosine", "wsd_linear"]))
out["inside_unscoped"] = list(inside)
out["identical"] = scoped == unscoped
print(json.dumps(out))
"""


def _fresh(code: str, **env_extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _blas.BLAS_THREAD_VARIABLES}
    env.update(env_extra)
    return fresh_process_json(code, TINY_SPEC, env=env)


@pytest.fixture(scope="module")
def probe() -> dict:
    return _fresh(PROBE)


def test_a_solve_runs_blas_on_one_thread_and_restores_the_callers_count(probe):
    assert probe["before"] and set(probe["before"]) == {2}
    assert probe["inside"] and all(set(c) == {1} for c in probe["inside"])
    assert probe["after_solve"] == probe["after_tuning"] == probe["after_error"] == probe["before"]


def test_results_are_identical_with_and_without_the_scope(probe):
    assert all(set(c) == {2} for c in probe["inside_unscoped"])  # the switch did turn it off
    assert probe["identical"] is True


def test_a_thread_count_the_user_set_is_kept():
    out = _fresh(PROBE, OPENBLAS_NUM_THREADS="2")
    assert out["inside"] and all(set(c) == {2} for c in out["inside"])
    assert out["identical"] is True


# --- the process-wide scope's counting, on stand-in libraries


class _Library:
    def __init__(self, name: str, threads: int) -> None:
        self.filepath, self.num_threads, self.calls = name, threads, 0

    def set_num_threads(self, n: int) -> None:
        self.num_threads, self.calls = n, self.calls + 1


@pytest.fixture
def libraries(monkeypatch):
    for name in _blas.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    libs = [_Library("a", 4), _Library("b", 1)]
    monkeypatch.setattr(_blas, "_libraries", libs)
    monkeypatch.setattr(_blas, "_scan", lambda: None)
    return libs


def test_nested_scopes_restore_once_on_the_outermost_exit(libraries):
    a, b = libraries
    with _blas.one_blas_thread():
        assert (a.num_threads, b.num_threads) == (1, 1)
        with _blas.one_blas_thread():
            assert a.num_threads == 1
        assert a.num_threads == 1
    assert (a.num_threads, b.num_threads) == (4, 1)
    assert b.calls == 0  # already on one thread: never touched


def test_the_count_is_restored_after_an_error(libraries):
    with pytest.raises(RuntimeError), _blas.one_blas_thread():
        raise RuntimeError("inside")
    assert libraries[0].num_threads == 4


def test_concurrent_scopes_restore_when_the_last_one_leaves(libraries):
    a = libraries[0]
    entered, leave_first, first_left = threading.Event(), threading.Event(), threading.Event()

    def first():
        with _blas.one_blas_thread():
            entered.set()
            leave_first.wait(10)
        first_left.set()

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(10)
    with _blas.one_blas_thread():
        leave_first.set()
        first_left.wait(10)
        assert a.num_threads == 1  # the other call left, this one still runs
    thread.join(10)
    assert a.num_threads == 4


def test_a_library_loaded_inside_the_scope_is_limited_and_restored(libraries, monkeypatch):
    late = _Library("late", 3)
    with _blas.one_blas_thread():
        libraries.append(late)  # SciPy's OpenBLAS, loaded by the first solve
        with _blas.one_blas_thread():
            assert late.num_threads == 1
    assert late.num_threads == 3


@pytest.mark.parametrize("how", ["variable", "switch"])
def test_nothing_is_touched_when_the_user_set_a_count_or_the_switch_is_off(libraries, monkeypatch, how):
    if how == "variable":
        monkeypatch.setenv("OMP_NUM_THREADS", "4")
    else:
        monkeypatch.setattr(_blas, "enabled", False)
    with _blas.one_blas_thread():
        assert libraries[0].num_threads == 4
    assert libraries[0].calls == 0


def test_a_batch_chunk_holds_one_scope_across_its_solves(libraries, monkeypatch):
    """design_many's chunk runs inside one scope: BLAS stays on one thread between its solves (whose
    own scopes come and go) and is restored once, after the chunk."""
    from schedopt import batch
    from schedopt.problem import ControlSpec, Model, Problem, Training

    a = libraries[0]
    seen = []
    solve_chunk_inner = batch._solve_chunk

    def spy(*args):
        seen.append(a.num_threads)  # before any solve has entered its own scope
        out = solve_chunk_inner(*args)
        seen.append(a.num_threads)  # after every solve has left its own
        return out

    monkeypatch.setattr(batch, "_solve_chunk", spy)
    model = Model.powerlaw(1.5, 1.5, 16, noise_std=0.3)
    lr = ControlSpec(name="learning_rate", min=0.0, max=0.5, blocks=8, grid="uniform")
    problems = [
        Problem(
            name="blas",
            model=model,
            training=Training(horizon=60 + 10 * i, batch_size=4),
            controls={"learning_rate": lr},
        )
        for i in range(2)
    ]
    out = batch.design_many(problems)
    assert all(not isinstance(r, batch.InvalidDesign) for r in out)
    assert seen and set(seen) == {1}
    assert a.num_threads == 4
