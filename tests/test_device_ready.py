"""GPU readiness: the programs a solve runs in its loop hold no host callbacks (nothing in them
needs the host, so JAX can place them on any device)."""

from __future__ import annotations

import pytest

from schedopt._jax import jax
from schedopt.problem import ControlSpec, Model, Problem, Training
from schedopt.solvers import _lockstep, solve


def problem(**controls) -> Problem:
    lr = ControlSpec(name="learning_rate", min=0.0, max=0.5, blocks=10, grid="uniform")
    return Problem(
        name="device",
        model=Model.powerlaw(1.5, 1.5, 16, noise_std=0.3),
        training=Training(horizon=100, batch_size=4),
        controls={"learning_rate": lr, **controls},
    )


def primitives(jaxpr) -> set[str]:
    """Names of every primitive in a jaxpr, sub-jaxprs (scan, while, cond, custom rules) included."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for value in eqn.params.values():
            for sub in value if isinstance(value, list | tuple) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    names |= primitives(inner)
    return names


@pytest.mark.parametrize(
    ("controls", "options"),
    [
        ({}, {}),  # recursion, warm-start sweeps
        ({}, {"engine": "ode", "max_iter": 5}),  # the ODE engine
        ({"momentum": ControlSpec(name="momentum", min=0.0, max=0.9, blocks=5, grid="uniform")}, {}),
    ],
)
def test_the_programs_of_a_solve_loop_have_no_host_callbacks(monkeypatch, controls, options):
    calls = {}
    original = _lockstep.call

    def record(function, batched, args, static=(), *, stacked=False, modes=None):
        calls.setdefault(id(batched), (batched, args, static, stacked))
        return original(function, batched, args, static, stacked=stacked, modes=modes)

    monkeypatch.setattr(_lockstep, "call", record)
    solve(problem(**controls), throw=False, options=options)
    assert calls, "the solve made no evaluation through the lockstep hook"
    for batched, args, static, stacked in calls.values():
        if not stacked:  # a per-problem call: the batched program sees a leading axis
            args = jax.tree_util.tree_map(lambda a: jax.numpy.asarray(a)[None], args)
        n = len(args)
        with jax.enable_x64(True):
            jaxpr = jax.make_jaxpr(batched, static_argnums=tuple(range(n, n + len(static))))(*args, *static)
        found = {name for name in primitives(jaxpr.jaxpr) if "callback" in name}
        assert not found, f"{getattr(batched, '__name__', batched)}: {sorted(found)}"
