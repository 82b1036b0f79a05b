"""schedopt leaves the caller's JAX alone: no global float64, and it works with x64 off.

The test session itself turns x64 on (conftest.py: the tests of the internals call traced
functions directly), so every check here runs in a fresh process, where JAX starts with
its own defaults (float32) exactly as in a user's training script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_SPEC, fresh_process_json
from numpy.testing import assert_allclose

import schedopt

ROOT = Path(__file__).resolve().parents[1]

#: Same problem solved with x64 off globally (schedopt scopes its own) and on: same numbers.
SOLVE_RTOL = 1e-10


def _run(code: str, *args: str, x64: bool | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    if x64 is not None:
        env["JAX_ENABLE_X64"] = "1" if x64 else "0"
    return fresh_process_json(code, *args, env=env)


USER_MODEL = """
import json, sys, warnings
warnings.simplefilter("error")
import jax, jax.numpy as jnp, optax
import schedopt
from schedopt.export import to_optax, to_optax_optimizer

problem = schedopt.parse_problem(sys.argv[1])
solution = schedopt.solve(problem)
schedule = schedopt.schedule_from_solution(solution)
curve = schedopt.loss_curve(problem.model, solution.per_step("learning_rate"))

# the user's float32 model, built after schedopt ran
params = {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)}
x = jnp.ones((8, 4))
opt = to_optax_optimizer(schedule, base="adamw", weight_decay=0.1)
state = opt.init(params)

@jax.jit
def step(params, state):
    grads = jax.grad(lambda p: jnp.mean((x @ p["w"] + p["b"] - 1.0) ** 2))(params)
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

for _ in range(3):
    params, state = step(params, state)
lr = to_optax(schedule)
print(json.dumps({
    "x64": bool(jax.config.jax_enable_x64),
    "default": str(jnp.zeros(1).dtype),
    "params": sorted({str(p.dtype) for p in jax.tree.leaves(params)}),
    "updates": sorted({str(p.dtype) for p in jax.tree.leaves(state)
                       if hasattr(p, "dtype") and jnp.issubdtype(p.dtype, jnp.floating)}),
    "schedule": [str(lr(0).dtype), str(lr(jnp.int32(5)).dtype), str(lr(2.5).dtype)],
    "schedule_value": float(lr(7)),
    "designed": float(schedule.learning_rate[7]),
    "learning_rate": solution.per_step("learning_rate").tolist(),
    "final_loss": solution.final_loss,
    "solution_dtype": str(solution.per_step("learning_rate").dtype),
    "curve_dtype": str(curve.loss.dtype),
}))
"""


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    return {
        "default": _run(USER_MODEL, TINY_SPEC),
        "x64": _run(USER_MODEL, TINY_SPEC, x64=True),
    }


def test_import_schedopt_changes_no_setting():
    out = _run(
        "import json, jax, jax.numpy as jnp, numpy as np\n"
        "before = (bool(jax.config.jax_enable_x64), np.geterr(), np.get_printoptions())\n"
        "import schedopt, schedopt.export, schedopt.solvers, schedopt.dynamics.recursion\n"
        "schedopt.solve  # a lazy name loads its module and JAX\n"
        "after = (bool(jax.config.jax_enable_x64), np.geterr(), np.get_printoptions())\n"
        "print(json.dumps({'same': before == after, 'x64': after[0],\n"
        "                  'dtype': str(jnp.ones(2).dtype)}))\n"
    )
    assert out == {"same": True, "x64": False, "dtype": "float32"}


def test_a_library_user_gets_no_compilation_cache(tmp_path):
    """import schedopt and its solves, designs and exports leave every ``jax.config`` value alone.

    The persistent compilation cache is process-wide (and writes to disk): only the CLI, or
    a user who asks for it, turns it on. Run with a cache directory and without the test
    session's SCHEDOPT_NO_CACHE, as in a user's process.
    """
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if k not in ("SCHEDOPT_NO_CACHE", "SCHEDOPT_CACHE")}
    env["SCHEDOPT_CACHE_DIR"] = str(cache)
    code = (
        "import json, sys, jax\n"
        "from jax._src import compilation_cache as cc\n"
        "before, hook = {k: repr(v) for k, v in jax.config.values.items()}, cc.get_file_cache\n"
        "import schedopt\n"
        "from schedopt.export import to_optax\n"
        "problem = schedopt.parse_problem(sys.argv[1])\n"
        "solution = schedopt.solve(problem)\n"
        "schedopt.design_many([problem, problem.with_horizon(problem.horizon + 10)])\n"
        "float(to_optax(schedopt.schedule_from_solution(solution))(3))\n"
        "after = {k: repr(v) for k, v in jax.config.values.items()}\n"
        "print(json.dumps({'changed': sorted(k for k in after if after[k] != before.get(k)),\n"
        "                  'hook_replaced': cc.get_file_cache is not hook}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, TINY_SPEC],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"changed": [], "hook_replaced": False}
    assert not cache.exists()


def test_a_float32_model_stays_float32_after_schedopt_ran(runs):
    out = runs["default"]
    assert out["x64"] is False and out["default"] == "float32"
    assert out["params"] == ["float32"] and out["updates"] == ["float32"]
    # the exported schedule gives the caller's float, the designed value rounded once
    assert out["schedule"] == ["float32", "float32", "float32"]
    assert out["schedule_value"] == float(np.float32(out["designed"]))


def test_schedopt_computes_in_float64_whatever_the_callers_setting(runs):
    """A solve with x64 off globally is the float64 solve (it used to fail with 'ABNORMAL')."""
    off, on = runs["default"], runs["x64"]
    assert on["x64"] is True and on["schedule"] == ["float64", "float64", "float64"]
    assert off["solution_dtype"] == off["curve_dtype"] == "float64"
    assert_allclose(off["learning_rate"], on["learning_rate"], rtol=SOLVE_RTOL)
    assert_allclose(off["final_loss"], on["final_loss"], rtol=SOLVE_RTOL)
    assert on["schedule_value"] == on["designed"]


def test_x64_scope_is_restored_after_an_error():
    out = _run(
        "import json, jax, schedopt\n"
        "try:\n"
        "    schedopt.solve(None)\n"
        "except Exception as exc:\n"
        "    kind = type(exc).__name__\n"
        "print(json.dumps({'x64': bool(jax.config.jax_enable_x64), 'raised': kind}))\n"
    )
    assert out["x64"] is False and out["raised"]


def test_public_functions_are_scoped():
    """The functions that run JAX say so (wrapped by ``schedopt._jax.float64``)."""
    from schedopt.calibration.fit import fit_pilots, predict_network_loss
    from schedopt.dynamics import ode, recursion

    for fn in (
        schedopt.solve,
        schedopt.final_loss,
        schedopt.loss_curve,
        recursion.loss_at,
        ode.solve,
        ode.final_loss,
        fit_pilots,
        predict_network_loss,
    ):
        assert hasattr(fn, "__wrapped__"), fn.__qualname__
