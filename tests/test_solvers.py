"""The three solvers agree, satisfy first-order optimality, beat every tuned baseline,
and report failures honestly."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import PROBLEMS
from numpy.testing import assert_allclose

import schedopt
from schedopt.dynamics.recursion import final_loss_jax
from schedopt.errors import DivergenceError, ProblemError, SolverError
from schedopt.problem import Model, Problem
from schedopt.solvers import solve
from schedopt.solvers._common import control_grids

SHIPPED = ["easy-phase", "hard-phase", "boundary", "custom-spectrum"]

#: Relative agreement of final losses between solvers (issue: 1e-5).
LOSS_AGREEMENT = 1e-5
#: Relative L2 distance between per-step schedules of two solvers.
SCHEDULE_AGREEMENT = 2e-2
#: Projected gradient of log L_T w.r.t. parameters scaled by their caps, relative to the gradient scale.
KKT_TOLERANCE = 1e-4


def small(
    name: str,
    *,
    n_modes: int = 100,
    horizon: int = 300,
    blocks: int | None = None,
    parameterisation: str = "constant",
    grid: str = "uniform",
) -> Problem:
    """A shipped problem at test size (same exponents, noise and floor kind)."""
    problem = schedopt.load_problem(PROBLEMS / f"{name}.toml")
    model = problem.model
    if model.is_powerlaw:
        model = Model.powerlaw(
            model.a, model.b, n_modes, noise_std=np.sqrt(model.noise_variance), finite_size=model.residual > 0
        )
    cap = 0.9 * schedopt.stability_threshold(model, problem.training.batch_size)
    lr = dataclasses.replace(
        problem.learning_rate,
        blocks=blocks or horizon,
        grid=grid,
        edges=None,
        parameterisation=parameterisation,
        max=cap,
    )
    return problem.replace(
        model=model,
        training=dataclasses.replace(problem.training, horizon=horizon),
        controls={"learning_rate": lr},
    )


def _relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("name", SHIPPED)
def test_jax_and_pontryagin_agree_per_step(name):
    problem = small(name)
    a = solve(problem, "jax")
    b = solve(problem, "pontryagin")
    assert _relative(a.final_loss, b.final_loss) < LOSS_AGREEMENT
    lr_a, lr_b = a.per_step(), b.per_step()
    assert np.linalg.norm(lr_a - lr_b) / np.linalg.norm(lr_b) < SCHEDULE_AGREEMENT


@pytest.mark.parametrize("name", SHIPPED)
def test_casadi_agrees_with_jax(name):
    problem = small(name, horizon=400, blocks=20, parameterisation="linear", grid="geometric-both")
    a = solve(problem, "jax")
    b = solve(problem, "casadi")
    assert _relative(a.final_loss, b.final_loss) < LOSS_AGREEMENT
    assert np.linalg.norm(a.per_step() - b.per_step()) / np.linalg.norm(b.per_step()) < SCHEDULE_AGREEMENT


def _projected_gradient(solution) -> tuple[float, float]:
    problem = solution.problem
    grid = control_grids(problem)["learning_rate"]
    it = grid.interpolation()
    spec = problem.learning_rate
    m = problem.model
    batch = jnp.full(problem.horizon, problem.training.batch_size)

    def log_loss(x):
        lr = it.expand(x * spec.max, xp=jnp)
        return jnp.log(final_loss_jax(m.eigenvalues, m.initial_error, m.effective_noise, lr, batch))

    x = solution.parameters["learning_rate"] / spec.max
    g = np.asarray(jax.grad(log_loss)(jnp.asarray(x)))
    lo, hi = spec.min / spec.max, 1.0
    pg = x - np.clip(x - g, lo, hi)
    return float(np.abs(pg).max()), float(np.abs(g).max())


@pytest.mark.parametrize("name", SHIPPED)
def test_first_order_optimality(name):
    problem = small(name, horizon=1000, blocks=40, parameterisation="linear", grid="geometric-both")
    solution = solve(problem, "jax")
    pg, scale = _projected_gradient(solution)
    assert pg <= KKT_TOLERANCE * max(scale, 1.0)


@pytest.mark.parametrize("name", SHIPPED)
def test_optimum_beats_every_tuned_baseline(name):
    from schedopt.baselines import tune_baselines

    problem = small(
        name, n_modes=200, horizon=2000, blocks=40, parameterisation="linear", grid="geometric-both"
    )
    solution = solve(problem, "jax")
    tuned = tune_baselines(problem)
    assert set(tuned) >= {
        "constant",
        "power_law",
        "cosine",
        "linear",
        "wsd_linear",
        "wsd_sqrt",
        "exponential",
    }
    for name_, baseline in tuned.items():
        assert solution.final_loss <= baseline.final_loss * (1 + 1e-9), name_


def test_per_step_optimum_bounds_the_block_optimum():
    fine = solve(small("easy-phase", horizon=300), "pontryagin")
    coarse = solve(small("easy-phase", horizon=300, blocks=10), "jax")
    assert fine.final_loss <= coarse.final_loss * (1 + 1e-12)


def test_vectorised_solve_equals_one_by_one():
    from schedopt.solvers.jax import solve_jax_many

    problems = [
        small("easy-phase", horizon=300, blocks=20, parameterisation="linear"),
        small("hard-phase", horizon=300, blocks=20, parameterisation="linear"),
    ]
    together = solve_jax_many(problems, options={"warm_start": "none"})
    for problem, joint in zip(problems, together, strict=True):
        alone = solve(problem, "jax", options={"warm_start": "none"})
        assert joint.converged
        assert joint.info["batched_with"] == 2
        assert _relative(joint.final_loss, alone.final_loss) < LOSS_AGREEMENT


def test_reported_loss_is_the_recursion_loss_of_the_schedule():
    solution = solve(small("boundary", horizon=300, blocks=15, parameterisation="linear"), "jax")
    problem = solution.problem
    direct = schedopt.final_loss(problem.model, solution.per_step(), batch_size=problem.training.batch_size)
    assert_allclose(solution.final_loss, direct, rtol=1e-13)
    assert_allclose(solution.loss_curve[-1], direct, rtol=1e-13)


@pytest.mark.parametrize("solver", ["jax", "pontryagin", "casadi"])
def test_learning_rate_cap_above_stability_threshold_is_accepted_with_a_note(solver):
    """A cap above the threshold is a larger feasible set: every solver starts below the threshold,
    reports the threshold in a note, and does at least as well as with the cap below it."""
    problem = small("easy-phase")  # cap 0.9 of the threshold
    threshold = schedopt.stability_threshold(problem.model, 1.0)
    above = problem.with_control("learning_rate", max=1.5 * threshold)
    below, solution = solve(problem, solver), solve(above, solver)
    assert solution.status == "converged"
    assert solution.info["stability_threshold"] == threshold
    assert "stability_note" not in below.info
    note = solution.info["stability_note"]
    assert "`controls.learning_rate.max`" in note and f"{threshold:.6g}" in note
    assert solution.final_loss <= below.final_loss * (1 + LOSS_AGREEMENT)


def test_steps_that_overflow_the_loss_are_backtracked():
    """With a cap 70 times the stability threshold L-BFGS-B's first steps overflow the loss (on
    ``inf`` SciPy stops at once and reports convergence): the solve backtracks and reaches the
    optimum found with a cap 7 times the threshold, from the same stable start."""
    model = Model.powerlaw(2.0, 2.0, 50, noise_std=0.5, initial_loss="raw")

    def problem(cap: float) -> Problem:
        lr = schedopt.ControlSpec("learning_rate", 0.0, cap, blocks=100, parameterisation="constant")
        return Problem(
            "overflow", model, schedopt.Training(horizon=1000, batch_size=5), {"learning_rate": lr}
        )

    start = {"learning_rate": np.full(100, 1.3)}  # 0.92 of the threshold
    far, near = solve(problem(100.0), initial=start), solve(problem(10.0), initial=start)
    assert far.final_loss <= near.final_loss * (1 + LOSS_AGREEMENT)


#: The seed paper's default problem (a = b = 2, sigma = 0.5, N = 500, batch 5, raw initial
#: errors, T = 100, K = 100 piecewise-constant blocks, eta <= 2): the optimum of the authors'
#: script uses eta = 2, above the stability threshold 1.40569, on several blocks.
SEED_PAPER_LOSS = 0.0813770


@pytest.mark.slow
def test_seed_paper_problem_with_its_cap_above_the_stability_threshold():
    model = Model.powerlaw(2.0, 2.0, 500, noise_std=0.5, initial_loss="raw")
    lr = schedopt.ControlSpec("learning_rate", 0.0, 2.0, blocks=100, parameterisation="constant")
    problem = Problem(
        "seed-paper", model, schedopt.Training(horizon=100, batch_size=5), {"learning_rate": lr}
    )
    threshold = schedopt.stability_threshold(model, 5.0)
    assert threshold < 2.0
    solution = solve(problem)  # the default solver, converged (throw=True)
    assert solution.final_loss <= SEED_PAPER_LOSS * (1 + 1e-6)
    assert solution.per_step().max() > threshold
    assert f"{threshold:.6g}" in solution.info["stability_note"]


#: The seed paper's problem with the cap at the stability threshold (1.405686): L-BFGS-B from the
#: Pontryagin start stops at a local minimum whose capped blocks are one or two apart; CasADi
#: (IPOPT) and the authors' script reach 0.0814660 (issue 17).
SEED_AT_THRESHOLD_LOCAL = 0.0814764
SEED_AT_THRESHOLD_CASADI = 0.0814660


def _seed_problem_at_threshold() -> Problem:
    model = Model.powerlaw(2.0, 2.0, 500, noise_std=0.5, initial_loss="raw")
    lr = schedopt.ControlSpec("learning_rate", 0.0, 1.405686, blocks=100, parameterisation="constant")
    return Problem("seed-paper", model, schedopt.Training(horizon=100, batch_size=5), {"learning_rate": lr})


def test_seed_paper_problem_at_the_threshold_is_not_left_at_its_first_local_minimum():
    """The basin search re-solves from strict cap / no-cap alternations and beats CasADi's optimum."""
    problem = _seed_problem_at_threshold()
    local = solve(problem, options={"basin_search": "none"})
    assert local.final_loss == pytest.approx(SEED_AT_THRESHOLD_LOCAL, rel=2e-7)
    assert "basin_search" not in local.info
    solution = solve(problem)  # the default solver, converged (throw=True)
    assert solution.final_loss <= SEED_AT_THRESHOLD_CASADI * (1 + 1e-6)
    report = solution.info["basin_search"]
    assert report["local_minimum_loss"] == pytest.approx(local.final_loss, rel=1e-12)
    assert report["chosen"].startswith("cap on every other block")
    assert [run["status"] for run in report["runs"]] == ["converged"] * 3
    assert "basin search: the alternation start" in solution.message
    lr = solution.per_step()
    assert np.all(lr[1:38:2] >= problem.learning_rate.max * (1 - 1e-9))  # a strict alternation
    assert solution.final_loss == pytest.approx(
        schedopt.final_loss(problem.model, lr, batch_size=5), rel=1e-12
    )
    from schedopt.design import design as run_design

    design = run_design(problem, baselines=())
    assert design.solution.final_loss == pytest.approx(solution.final_loss, rel=1e-12)
    assert report["note"] in design.notes and report["note"] in design.to_dict()["notes"]


def test_basin_search_leaves_a_plateau_at_the_cap_alone():
    """Capped blocks in one stretch (a plateau, then the anneal) do not trigger the search."""
    from schedopt.solvers.jax._basins import alternations, chatters

    cap = 1.0
    assert not chatters(np.array([1.0, 1.0, 1.0, 0.5, 0.2]), cap)
    assert not chatters(np.array([0.5, 1.0, 0.4]), cap)
    values = np.array([0.5, 1.0, 0.6, 0.7, 1.0, 0.8, 0.3])
    assert chatters(values, cap)
    starts = dict(alternations(values, cap))
    assert list(starts) == [
        "cap on every other block of 0..5, from 0",
        "cap on every other block of 0..5, from 1",
    ]
    assert_allclose(starts["cap on every other block of 0..5, from 1"], [0.5, 1.0, 0.6, 1.0, 0.75, 1.0, 0.3])
    assert_allclose(starts["cap on every other block of 0..5, from 0"], [1.0, 0.55, 1.0, 0.7, 1.0, 0.8, 0.3])
    problem = small("hard-phase")  # T * N = 3e4: eligible; its first blocks sit at the cap, together
    plain = solve(problem)
    values, cap = plain.parameters["learning_rate"], problem.learning_rate.max
    assert values[0] >= cap * (1 - 1e-9) and not chatters(values, cap)
    assert "basin_search" not in plain.info and "basin search" not in plain.message


def test_pontryagin_fails_when_its_per_step_optimum_does_not_survive_the_grid():
    """Cap 100 on the seed paper's problem at T = 1000: the sweeps settle (per-step loss 0.0241)
    but their schedule, fitted to 100 constant blocks, blows up to 269; that is not converged."""
    model = Model.powerlaw(2.0, 2.0, 500, noise_std=0.5, initial_loss="raw")
    lr = schedopt.ControlSpec("learning_rate", 0.0, 100.0, blocks=100, parameterisation="constant")
    problem = Problem(
        "seed-paper", model, schedopt.Training(horizon=1000, batch_size=5), {"learning_rate": lr}
    )
    solution = solve(problem, "pontryagin", throw=False)
    assert solution.status == "failed" and not solution.converged
    assert solution.final_loss > 100 * solution.info["per_step_loss"]
    assert "does not survive the fit to the 100-block grid" in solution.message
    with pytest.raises(SolverError, match="does not survive"):
        solve(problem, "pontryagin")


def test_unknown_solver_is_rejected():
    with pytest.raises(ProblemError, match=r"`solver` must be one of jax, casadi, pontryagin, got .newton."):
        solve(small("easy-phase"), "newton")


def test_unknown_option_is_rejected():
    with pytest.raises(ProblemError, match=r"unknown option.*max_iters"):
        solve(small("easy-phase"), "jax", options={"max_iters": 3})


OPTION_RECORDS = {
    "jax": schedopt.JaxOptions,
    "casadi": schedopt.CasadiOptions,
    "pontryagin": schedopt.PontryaginOptions,
}


@pytest.mark.parametrize("solver", list(OPTION_RECORDS))
def test_every_option_has_a_type_a_default_and_a_line_of_documentation(solver):
    record = OPTION_RECORDS[solver]
    assert record.solver == solver
    documented = {
        line.strip().split(":", 1)[0]
        for line in record.__doc__.split("Attributes:", 1)[1].splitlines()
        if line.startswith(" " * 8) and ":" in line
    }
    for field in dataclasses.fields(record):
        assert field.type not in ("", None)
        assert field.default is not dataclasses.MISSING, field.name
        assert field.name in documented, field.name
    assert record().to_dict() == record.from_mapping({}).to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record().max_iter = 1


@pytest.mark.parametrize(
    ("record", "changes", "field"),
    [
        (schedopt.JaxOptions, {"engine": "euler"}, "engine"),
        (schedopt.JaxOptions, {"stability_margin": 1.5}, "stability_margin"),
        (schedopt.JaxOptions, {"basin_search": "always"}, "basin_search"),
        (schedopt.PontryaginOptions, {"patience": 0}, "patience"),
        (schedopt.PontryaginOptions, {"rtol": -1.0}, "rtol"),
        (schedopt.PontryaginOptions, {"max_iter": 2.5}, "max_iter"),
    ],
)
def test_a_bad_option_value_is_refused_naming_it(record, changes, field):
    ((key, value),) = changes.items()
    for build in (
        lambda: record(**changes),
        lambda: record.from_mapping(changes),
        lambda: record().replace(**changes),
    ):
        with pytest.raises(ProblemError, match=rf"option `{key}` must be .*, got {value!r}") as info:
            build()
        assert info.value.field == field


def test_options_of_another_solver_are_refused():
    with pytest.raises(
        ProblemError, match="must be a JaxOptions or a mapping, got PontryaginOptions"
    ) as info:
        solve(small("easy-phase"), "jax", options=schedopt.PontryaginOptions())
    assert info.value.field == "options"


@pytest.mark.parametrize("solver", ["jax", "pontryagin"])
def test_an_options_record_solves_as_its_mapping(solver):
    problem = small("easy-phase", horizon=300, blocks=20)
    changes = {"max_iter": 3, "warm_start": "none"} if solver == "jax" else {"max_iter": 3}
    by_mapping = solve(problem, solver, throw=False, options=changes)
    by_record = solve(problem, solver, throw=False, options=OPTION_RECORDS[solver](**changes))
    assert by_record.final_loss == by_mapping.final_loss
    assert by_record.iterations == by_mapping.iterations
    for name, values in by_mapping.parameters.items():
        np.testing.assert_array_equal(by_record.parameters[name], values)


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"blocks": 0}, "blocks"), ({"grid": "logarithmic"}, "grid"), ({"max": -1.0}, "max")],
)
def test_bad_control_options_name_the_option(changes, field):
    with pytest.raises(ProblemError) as info:
        small("easy-phase").with_control("learning_rate", **changes)
    assert info.value.field == field


def test_more_blocks_than_steps_is_rejected():
    problem = small("easy-phase", horizon=50, blocks=50)
    with pytest.raises(
        ProblemError, match=r"`blocks` of learning_rate \(60\) must not exceed the horizon \(50\)"
    ):
        problem.with_control("learning_rate", blocks=60)


def test_unconverged_solve_reports_status_and_best_iterate():
    problem = small("easy-phase", horizon=300, blocks=20, parameterisation="linear")
    solution = solve(problem, "jax", throw=False, options={"max_iter": 1, "warm_start": "none"})
    assert solution.status == "max_iterations"
    assert np.isfinite(solution.final_loss)
    start = schedopt.final_loss(problem.model, np.full(300, 0.5 * problem.learning_rate.max))
    assert solution.final_loss < start  # the best iterate, not the start
    with pytest.raises(SolverError, match="max_iterations") as info:
        solve(problem, "jax", options={"max_iter": 1, "warm_start": "none"})
    assert info.value.solution.status == "max_iterations"


def test_a_diverged_solve_raises_divergence_error(monkeypatch):
    """A solve whose status is diverged raises DivergenceError, which is a SolverError."""
    import schedopt.solvers

    problem = small("easy-phase", horizon=300, blocks=20)
    solution = solve(problem, "jax", throw=False, options={"max_iter": 1, "warm_start": "none"})
    diverged = dataclasses.replace(solution, status="diverged", final_loss=np.inf)
    monkeypatch.setattr(schedopt.solvers, "_solver_function", lambda name: lambda problem, **_: diverged)
    with pytest.raises(DivergenceError, match="diverged") as info:
        solve(problem, "jax")
    assert isinstance(info.value, SolverError) and info.value.exit_code == 1
    assert info.value.solution is diverged


def test_solver_needs_no_recompile_for_new_problem_numbers():
    """Problem numbers are traced arguments: a new noise level reuses the compiled objective."""
    from schedopt.solvers.jax import _objective

    p1 = small("easy-phase", horizon=300, blocks=20, parameterisation="linear")
    solve(p1, "jax", options={"warm_start": "none"})
    before = _objective._value_and_grad_many._cache_size()
    p2 = p1.replace(model=dataclasses.replace(p1.model, noise_variance=0.5))
    solve(p2, "jax", options={"warm_start": "none"})
    assert _objective._value_and_grad_many._cache_size() == before


#: ODE-engine optimum against the recursion-engine optimum, both losses by the exact recursion.
ODE_ENGINE_AGREEMENT = 1e-3


def _bench_problem(n_modes: int, horizon: int, blocks: int = 50) -> Problem:
    """The solver benchmark's problem (a = b = 2, sigma = 0.5, batch 5, linear uniform blocks)."""
    model = Model.powerlaw(2.0, 2.0, n_modes, noise_std=0.5, initial_loss="raw")
    return Problem(
        name="ode-engine",
        model=model,
        training=schedopt.Training(horizon=horizon, batch_size=5),
        controls={"learning_rate": schedopt.ControlSpec("learning_rate", 0.0, 1.4, blocks=blocks)},
    )


@pytest.mark.slow
def test_ode_engine_optimum_is_the_recursion_optimum():
    problem = _bench_problem(200, 20_000)
    options = {"ftol": 1e-9}
    on_ode = solve(problem, "jax", options={**options, "engine": "ode"})
    on_recursion = solve(problem, "jax", options={**options, "engine": "recursion"})
    assert on_ode.info["engine"] == "ode"
    assert on_recursion.info["engine"] == "recursion"
    # the reported loss is the exact recursion's (T * N = 4e6 is below check_work)
    exact = schedopt.final_loss(problem.model, on_ode.per_step(), batch_size=5)
    assert_allclose(on_ode.final_loss, exact, rtol=1e-13)
    assert on_ode.info["recursion_final_loss"] == on_ode.final_loss
    assert _relative(on_ode.final_loss, on_recursion.final_loss) < ODE_ENGINE_AGREEMENT
    assert on_ode.final_loss >= on_recursion.final_loss * (1 - LOSS_AGREEMENT)


def test_auto_engine_picks_the_ode_from_ode_min_work_and_reports_an_unchecked_loss():
    """Smoke test of the engine choice (by T * N) and of the unchecked report (one iteration)."""
    problem = _bench_problem(100, 40_000, blocks=10)  # T * N = 4e6
    options = {"max_iter": 1, "check_work": 1e6, "ode_min_work": 4e6}
    solution = solve(problem, "jax", throw=False, options=options)
    assert solution.info["engine"] == "ode"
    assert solution.info["warm_start_sweeps"] == 0  # the sweeps run the recursion: not on the ODE
    assert solution.info["recursion_final_loss"] is None
    assert solution.info["recursion_check"].startswith("not checked")
    assert solution.final_loss == solution.info["ode_final_loss"]
    short = solve(_bench_problem(100, 300, blocks=10), "jax", options={"ftol": 1e-9, "ode_min_work": 4e6})
    assert short.info["engine"] == "recursion"
    assert short.info["warm_start_sweeps"] >= 2
    default = solve(problem, "jax", throw=False, options={"max_iter": 1})  # 4e6 < 1e8: the recursion
    assert default.info["engine"] == "recursion"


def test_ode_engine_needs_a_learning_rate_only_problem():
    problem = small("easy-phase", horizon=300, blocks=20, parameterisation="linear")
    bad = problem.replace(training=dataclasses.replace(problem.training, momentum=0.5))
    bad = bad.with_control("learning_rate", max=0.1)  # below the heavy-ball threshold 0.238
    with pytest.raises(ProblemError, match="engine") as info:
        solve(bad, "jax", options={"engine": "ode"})
    assert info.value.field == "engine"


def test_preconditioner_is_the_root_of_steps_per_knot():
    from schedopt.solvers.jax._objective import _preconditioner

    grid = control_grids(small("easy-phase", horizon=1000, blocks=20, grid="geometric-end"))["learning_rate"]
    counts = np.asarray(grid.interpolation().matrix().sum(axis=0)).ravel()
    assert_allclose(_preconditioner(grid), np.sqrt(counts / counts.max()), rtol=1e-12)


def test_ode_engine_on_compressed_modes_checks_the_full_spectrum():
    """The ODE engine on a compressed spectrum re-evaluates the full spectrum's ODE on the same grid
    (a path no other fast test runs: it once lost its ``jax`` import in a merge)."""
    solution = solve(_bench_problem(400, 2000), "jax", options={"engine": "ode", "modes": "compressed"})
    assert solution.info["engine"] == "ode" and solution.info["compression"]["source_modes"] == 400
    assert abs(solution.info["compression"]["relative_gap"]) < 1e-6
