"""Solver ``casadi`` (IPOPT on the exact recursion): agreement with an independent optimum,
first-order optimality, fidelity of the CasADi graph to the JAX recursion, statuses, options."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from numpy.testing import assert_allclose

from schedopt.dynamics.momentum import momentum_step
from schedopt.dynamics.ops import JAX
from schedopt.dynamics.recursion import final_loss, final_loss_jax
from schedopt.dynamics.sgd import sgd_step
from schedopt.errors import ProblemError, SolverError
from schedopt.problem import CONTROL_NAMES, ControlSpec, Model, Problem, Training
from schedopt.solvers import CasadiOptions, solve
from schedopt.solvers._common import control_grids, initial_parameters, lower_upper
from schedopt.solvers.casadi_ipopt import build_nlp, solve_casadi

#: Relative agreement of final losses between solvers (the project's contract).
LOSS_AGREEMENT = 1e-5
#: Agreement of parameters (in units of the cap) where the objective is not flat.
PARAM_AGREEMENT = 1e-5
#: A parameter counts as "not flat" when its Hessian diagonal is this fraction of the largest.
STIFF_FRACTION = 1e-2
#: Projected gradient of log(L_T - R_N) at the solution, relative to its gradient at the start.
KKT_TOLERANCE = 1e-6
#: The CasADi graph against the JAX recursion (same arithmetic, different engines).
GRAPH_RTOL = 1e-12


def _easy(**changes) -> Problem:
    """Easy phase (a > b) with label noise: the optimum is interior (no active bound)."""
    model = Model.powerlaw(2.5, 1.2, 100, noise_std=0.5)
    spec = dict(name="learning_rate", min=0.0, max=0.4, blocks=20, grid="geometric-end")
    spec.update(changes)
    return Problem("easy", model, Training(500, batch_size=1.0), {"learning_rate": ControlSpec(**spec)})


def _hard(parameterisation: str) -> Problem:
    """Hard phase (b > a), batch 5: the optimum sits on the learning-rate cap for a while."""
    model = Model.powerlaw(1.5, 2.5, 100, noise_std=0.5)
    spec = ControlSpec(
        "learning_rate", 0.0, 1.2, blocks=20, grid="geometric-both", parameterisation=parameterisation
    )
    return Problem("hard", model, Training(500, batch_size=5.0), {"learning_rate": spec})


def _log_loss(problem: Problem):
    """JAX log(L_T - R_N) of the stacked parameters (CONTROL_NAMES order), jitted."""
    grids = control_grids(problem)
    names = [n for n in CONTROL_NAMES if n in problem.controls]
    sizes = [grids[n].n_params for n in names]
    interps = [grids[n].interpolation() for n in names]
    model, horizon = problem.model, problem.horizon
    lam, c0 = jnp.asarray(model.eigenvalues), jnp.asarray(model.initial_error)
    noise = jnp.asarray(model.effective_noise)
    with_momentum = "momentum" in names or problem.training.momentum > 0

    def log_loss(x):
        parts = jnp.split(x, np.cumsum(sizes)[:-1])
        per = {n: it.expand(p, jnp) for n, it, p in zip(names, interps, parts, strict=True)}
        batch = per.get("batch_size", jnp.full(horizon, problem.training.batch_size))
        beta = per.get("momentum", jnp.full(horizon, problem.training.momentum)) if with_momentum else None
        return jnp.log(final_loss_jax(lam, c0, noise, per["learning_rate"], batch, beta))

    bounds = lower_upper(problem, grids)
    lo = np.concatenate([bounds[n][0] for n in names])
    hi = np.concatenate([bounds[n][1] for n in names])
    return jax.jit(log_loss), names, lo, hi


def _stack(solution, names) -> np.ndarray:
    return np.concatenate([solution.parameters[n] for n in names])


def _reference(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Independent optimum: SciPy L-BFGS-B on the JAX gradient, tight tolerances, own start.

    Returns the optimum and the Hessian diagonal of the log loss there (central
    differences of the JAX gradient).
    """
    log_loss, _, lo, hi = _log_loss(problem)
    value_and_grad = jax.jit(jax.value_and_grad(log_loss))

    def fun(x):
        value, grad = value_and_grad(jnp.asarray(x))
        return float(value), np.asarray(grad)

    x0 = lo + 0.3 * (hi - lo)
    result = scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lo, hi, strict=True)),
        options={"maxiter": 20000, "maxfun": 40000, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 50},
    )
    step = 1e-5 * (hi - lo)
    hess_diag = np.array(
        [
            (fun(result.x + e)[1][i] - fun(result.x - e)[1][i]) / (2 * step[i])
            for i, e in enumerate(np.diag(step))
        ]
    )
    return result.x, hess_diag


@pytest.fixture(scope="module")
def easy_reference():
    problem = _easy()
    x, hess_diag = _reference(problem)
    lr = control_grids(problem)["learning_rate"].interpolation().expand(x)
    return problem, x, final_loss(problem.model, lr, batch_size=1.0), hess_diag


@pytest.mark.parametrize("hessian", ["limited-memory", "exact"])
def test_final_loss_and_parameters_match_an_independent_optimum(easy_reference, hessian):
    problem, x_ref, loss_ref, hess_diag = easy_reference
    solution = solve_casadi(problem, options={"hessian": hessian})
    assert solution.status == "converged"
    assert solution.info["hessian"] == hessian
    assert_allclose(solution.final_loss, loss_ref, rtol=LOSS_AGREEMENT)
    stiff = hess_diag >= STIFF_FRACTION * hess_diag.max()
    assert stiff.sum() >= x_ref.size // 2
    cap = problem.learning_rate.max
    assert_allclose(
        solution.parameters["learning_rate"][stiff], x_ref[stiff], rtol=0, atol=PARAM_AGREEMENT * cap
    )
    assert_allclose(solution.info["objective"], np.log(solution.final_loss), rtol=1e-12)


@pytest.mark.parametrize("parameterisation", ["linear", "constant"])
def test_projected_gradient_vanishes_at_the_solution(parameterisation):
    problem = _hard(parameterisation)
    solution = solve_casadi(problem)
    assert solution.status == "converged"
    log_loss, names, lo, hi = _log_loss(problem)
    grad = jax.grad(log_loss)
    x = _stack(solution, names)
    g = np.asarray(grad(jnp.asarray(x)))
    x0 = np.concatenate(list(initial_parameters(problem, control_grids(problem)).values()))
    scale = np.abs(np.asarray(grad(jnp.asarray(x0)))).max()
    projected = x - np.clip(x - g, lo, hi)
    assert np.abs(projected).max() <= KKT_TOLERANCE * scale
    assert np.sum(x >= hi - 1e-6) >= 3  # the cap is active: the projection is exercised


def _graph_problem(kind: str, horizon: int) -> Problem:
    model = Model.powerlaw(2.0, 1.5, 30, noise_std=0.3, finite_size=True)
    blocks = min(7, horizon)
    lr = ControlSpec("learning_rate", 0.0, 0.3, blocks=blocks, grid="geometric-both")
    if kind == "sgd":
        return Problem("g", model, Training(horizon, batch_size=2.0), {"learning_rate": lr})
    batch = ControlSpec("batch_size", 1.0, 8.0, blocks=blocks, parameterisation="constant")
    if kind == "batch":
        return Problem(
            "g",
            model,
            Training(horizon),
            {"learning_rate": lr, "batch_size": batch},
            sample_budget=3.0 * horizon,
        )
    lr = ControlSpec("learning_rate", 0.0, 0.05, blocks=blocks)
    beta = ControlSpec("momentum", 0.0, 0.8, blocks=blocks)
    return Problem(
        "g", model, Training(horizon), {"learning_rate": lr, "batch_size": batch, "momentum": beta}
    )


@pytest.mark.parametrize(
    ("kind", "horizon"), [("sgd", 1), ("sgd", 10), ("sgd", 437), ("batch", 437), ("momentum", 437)]
)
def test_casadi_graph_equals_the_jax_recursion(kind, horizon):
    problem = _graph_problem(kind, horizon)
    nlp = build_nlp(problem)
    rng = np.random.default_rng(0)
    model = problem.model
    lam, n = model.eigenvalues, model.n_modes
    # one step
    if kind == "momentum":
        state = (model.initial_error * rng.uniform(0.5, 2, n), rng.normal(size=n) * 0.1, rng.uniform(0, 1, n))
        casadi_next = np.asarray(nlp.step(np.concatenate(state), 0.04, 3.0, 0.7)).ravel()
        jax_next = np.concatenate(
            momentum_step(tuple(map(jnp.asarray, state)), 0.04, 3.0, 0.7, lam, model.effective_noise, JAX)
        )
    else:
        state = model.initial_error * rng.uniform(0.5, 2, n)
        casadi_next = np.asarray(nlp.step(state, 0.25, 3.0)).ravel()
        jax_next = sgd_step(jnp.asarray(state), 0.25, 3.0, lam, model.effective_noise, JAX)
    assert_allclose(casadi_next, np.asarray(jax_next), rtol=GRAPH_RTOL)
    # the whole horizon, through the parameter-to-step map
    x = nlp.lower + rng.uniform(0.1, 0.9, nlp.lower.size) * (nlp.upper - nlp.lower)
    log_loss, names, *_ = _log_loss(problem)
    assert names == list(nlp.names)
    assert_allclose(float(nlp.loss(x)), np.exp(float(log_loss(jnp.asarray(x)))), rtol=GRAPH_RTOL)


@pytest.mark.parametrize("limit", [{"max_iter": 1}, {"max_wall_time": 1e-9}])
def test_iteration_limit_returns_the_best_iterate_and_throws(limit):
    problem = _easy()
    solution = solve_casadi(problem, options=limit)
    assert solution.status == "max_iterations"
    assert solution.info["ipopt_status"] in ("Maximum_Iterations_Exceeded", "Maximum_WallTime_Exceeded")
    assert np.isfinite(solution.final_loss)
    start = initial_parameters(problem, control_grids(problem))["learning_rate"]
    start_loss = final_loss(problem.model, solution.grids["learning_rate"].interpolation().expand(start))
    assert solution.final_loss <= start_loss * (1 + 1e-12)  # the start is an iterate too
    with pytest.raises(SolverError, match="max_iterations") as info:
        solve(problem, "casadi", options=limit)
    assert info.value.solution.status == "max_iterations"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"hessian": "bfgs"}, "hessian"),
        ({"linear_solver": "ma97"}, "linear_solver"),
        ({"linear_solver": "ma27"}, "linear_solver"),
        ({"max_iter": -1}, "max_iter"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"tol": 0.0}, "tol"),
        ({"max_wall_time": -1.0}, "max_wall_time"),
        ({"print_level": 5}, "options"),
    ],
)
def test_bad_options_are_rejected_by_name(options, field):
    (key,) = options
    with pytest.raises(ProblemError, match=key) as info:
        solve_casadi(_easy(), options=options)
    assert info.value.field == field
    if field != "options":  # a bad value of a known option: refused by the record itself
        with pytest.raises(ProblemError, match=key) as info:
            CasadiOptions(**options)
        assert info.value.field == field


def test_an_options_record_is_normalised_and_solves_as_its_mapping():
    record = CasadiOptions(max_iter=np.int64(5), tol=1, max_wall_time=100)
    assert (type(record.max_iter), type(record.tol), type(record.max_wall_time)) == (int, float, float)
    by_record = solve(_easy(blocks=5), "casadi", throw=False, options=record)
    by_mapping = solve(_easy(blocks=5), "casadi", throw=False, options=record.to_dict())
    assert by_record.final_loss == by_mapping.final_loss
    assert by_record.iterations == by_mapping.iterations


def test_orphan_budget_is_rejected():
    problem = _easy()
    with pytest.raises(ProblemError, match="sample budget") as info:
        solve_casadi(problem.replace(sample_budget=1000.0))
    assert info.value.field == "sample_budget"


def test_nothing_is_printed(capfd):
    solve_casadi(_easy(blocks=5), options={"max_iter": 5})
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_batch_schedule_under_budget_beats_the_constant_batch():
    model = Model.powerlaw(2.5, 1.2, 100, noise_std=0.5)
    horizon, mean_batch = 500, 5.0
    lr = ControlSpec("learning_rate", 0.0, 0.4, blocks=10)
    batch = ControlSpec("batch_size", 1.0, 20.0, blocks=10)
    both = Problem(
        "b",
        model,
        Training(horizon),
        {"learning_rate": lr, "batch_size": batch},
        sample_budget=mean_batch * horizon,
    )
    only_lr = Problem("b", model, Training(horizon, batch_size=mean_batch), {"learning_rate": lr})
    joint = solve_casadi(both)
    fixed = solve_casadi(only_lr)
    assert joint.converged and fixed.converged
    assert_allclose(joint.per_step("batch_size").sum(), mean_batch * horizon, rtol=1e-8)
    # the constant batch is feasible for the joint problem, so the joint optimum is no worse
    assert joint.final_loss <= fixed.final_loss * (1 + 1e-9)


def test_momentum_control_matches_an_independent_optimum():
    model = Model.powerlaw(2.5, 1.2, 30, noise_std=0.5)
    lr = ControlSpec("learning_rate", 0.0, 0.05, blocks=8)
    beta = ControlSpec("momentum", 0.0, 0.8, blocks=8)
    problem = Problem("m", model, Training(200, batch_size=2.0), {"learning_rate": lr, "momentum": beta})
    solution = solve_casadi(problem)
    assert solution.status == "converged"
    x_ref, hess_diag = _reference(problem)
    log_loss, names, _, hi = _log_loss(problem)
    assert_allclose(solution.final_loss, np.exp(float(log_loss(jnp.asarray(x_ref)))), rtol=LOSS_AGREEMENT)
    stiff = hess_diag >= STIFF_FRACTION * hess_diag.max()
    assert stiff[: problem.learning_rate.blocks + 1].all()  # every learning-rate knot matters
    assert_allclose((_stack(solution, names) / hi)[stiff], (x_ref / hi)[stiff], rtol=0, atol=PARAM_AGREEMENT)
