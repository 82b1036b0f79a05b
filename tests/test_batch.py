"""design_many: vectorised solves of equal-shape problems equal one-by-one solves, in input order."""

from __future__ import annotations

import dataclasses
from functools import partial

import pytest
from numpy.testing import assert_allclose

from schedopt.batch import InvalidDesign, chunks, design_many
from schedopt.errors import ProblemError
from schedopt.problem import ControlSpec, Model, Problem, Training
from schedopt.solvers import _lockstep, solve

#: Final losses of a vectorised and a one-by-one solve (same iterates up to the rounding of
#: the vectorised kernels; measured on this CPU: parameters and iterations bitwise equal, the
#: final loss, whose full-spectrum check is a row of a vectorised call in a batch, within 2 ulp).
LOSS_RTOL = 1e-10
#: Their parameters, in units of the control's cap.
PARAMETER_ATOL = 1e-7


def problem(a: float = 1.5, noise: float = 0.3, horizon: int = 200, blocks: int = 20, **extra) -> Problem:
    model = Model.powerlaw(a, 1.5, 24, noise_std=noise)
    lr = ControlSpec(name="learning_rate", min=0.0, max=0.5, blocks=blocks, grid="uniform")
    controls = {"learning_rate": lr, **extra.pop("controls", {})}
    training = Training(horizon=horizon, batch_size=4, momentum=extra.pop("momentum", 0.0))
    return Problem(name="batch-test", model=model, training=training, controls=controls, **extra)


def mixed_problems() -> list[Problem]:
    """Two shapes interleaved (so the results must be put back in order) and a momentum control."""
    momentum = ControlSpec(name="momentum", min=0.0, max=0.9, blocks=10, grid="uniform")
    return [
        problem(a=1.5, noise=0.3),
        problem(a=1.4, noise=0.2, horizon=150, blocks=15),
        problem(a=1.8, noise=0.5),
        problem(a=2.2, noise=0.1),
        problem(a=1.6, noise=0.4, horizon=150, blocks=15),
        problem(a=1.7, noise=0.3, controls={"momentum": momentum}),
    ]


def assert_same(batched, alone) -> None:
    assert batched.status == alone.status
    assert batched.iterations == alone.iterations
    assert_allclose(batched.final_loss, alone.final_loss, rtol=LOSS_RTOL)
    for name, values in alone.parameters.items():
        cap = alone.problem.controls[name].max
        assert_allclose(batched.parameters[name] / cap, values / cap, rtol=0, atol=PARAMETER_ATOL)


def test_design_many_equals_one_by_one_in_input_order():
    problems = mixed_problems()
    alone = [solve(p, throw=False) for p in problems]
    batched = design_many(problems)
    assert [s.problem for s in batched] == problems
    for b, a in zip(batched, alone, strict=True):
        assert_same(b, a)
    assert {s.status for s in alone} == {"converged"}


def test_statuses_are_per_problem_and_equal_one_by_one():
    """An iteration limit stops some solves and not others; each keeps its own status."""
    problems = [problem(a=a, noise=n) for a, n in ((1.3, 0.1), (1.5, 0.1), (2.5, 0.3), (3.0, 0.3))]
    options = {"max_iter": 25, "warm_start": "none"}  # measured: 7, 12, 46 and 70 iterations without a limit
    alone = [solve(p, throw=False, options=options) for p in problems]
    batched = design_many(problems, options=options)
    for b, a in zip(batched, alone, strict=True):
        assert_same(b, a)
    assert len({s.status for s in alone}) > 1, [s.status for s in alone]


def test_one_vectorised_call_serves_every_problem_of_a_step():
    problems = [problem(a=a, noise=n) for a, n in ((1.5, 0.3), (1.6, 0.2), (1.9, 0.4), (2.1, 0.1))]
    tasks = [partial(solve, p, throw=False) for p in problems]
    results, lockstep = _lockstep.run(tasks, workers=1)  # more threads split a step's rows between them
    # evaluations, warm-start sweeps, and three final-loss checks (two of the warm start, one of the result)
    per_problem = [s.info["evaluations"] + s.info["warm_start_sweeps"] + 3 for s in results]
    # every step of the longest solve is one call; the others ride along (a step where solves ask
    # for different things, such as a sweep and a check, takes one call for each)
    assert lockstep.calls <= max(per_problem) + 3 * len(problems)
    assert lockstep.calls < sum(per_problem)


def test_a_step_cut_into_pieces_gives_the_same_numbers(monkeypatch):
    """On a CPU a vectorised step is cut into pieces of at most CPU_ROW_ENTRIES / modes rows
    (here 2 rows of 24 modes): every row is the same program's."""
    monkeypatch.setattr(_lockstep, "CPU_ROW_ENTRIES", 2 * 24)
    problems = [
        problem(a=a, noise=n) for a, n in ((1.5, 0.3), (1.6, 0.2), (1.9, 0.4), (2.1, 0.1), (1.7, 0.2))
    ]
    tasks = [partial(solve, p, throw=False) for p in problems]
    results, lockstep = _lockstep.run(tasks, workers=1)
    assert lockstep.largest_piece == 2  # five rows: pieces of 2, 2 and 1
    for b, p in zip(results, problems, strict=True):
        assert_same(b, solve(p, throw=False))


def test_calls_on_several_threads_give_the_same_numbers(monkeypatch):
    """On a CPU a batch's vectorised calls run on several threads at once, full pieces as soon as they
    fill while other solves run host code: every row is still the same program's."""
    monkeypatch.setattr(_lockstep, "CPU_ROW_ENTRIES", 2 * 24)  # pieces of 2 rows: several in flight
    problems = [problem(a=1.4 + 0.1 * i, noise=0.1 + 0.05 * i) for i in range(7)]
    tasks = [partial(solve, p, throw=False) for p in problems]
    results, lockstep = _lockstep.run(tasks, workers=3)
    assert lockstep.most_concurrent > 1
    for b, p in zip(results, problems, strict=True):
        assert_same(b, solve(p, throw=False))


def test_without_a_row_limit_a_step_is_one_padded_call(monkeypatch):
    """Elsewhere than on a CPU (no row limit) every solve's request of a step waits for the others and
    the step is one call, padded to a power of two with other solves' requests: same numbers."""
    monkeypatch.setattr(_lockstep, "max_rows", lambda modes: None)
    problems = [problem(a=1.4 + 0.1 * i, noise=0.1 + 0.05 * i) for i in range(5)]
    tasks = [partial(solve, p, throw=False) for p in problems]
    results, lockstep = _lockstep.run(tasks, workers=1)
    assert lockstep.largest_piece == 8  # five requests padded to 8 rows
    assert lockstep.pieces == lockstep.calls  # a step's requests of one signature: one compiled call
    for b, p in zip(results, problems, strict=True):
        assert_same(b, solve(p, throw=False))


def test_last_requests_of_a_step_are_spread_over_the_free_threads():
    """Requests no solve will add to go to at most one job a free thread, near-equal in rows, no
    compiled piece above its row limit, every request once."""

    def requests(n, rows, signature):
        return [
            _lockstep._Request(
                slot=i,
                signature=signature,
                function=len,
                args=(),
                static=(),
                stacked=False,
                x64=True,
                rows=rows,
            )
            for i in range(n)
        ]

    groups = [requests(11, 4, "a"), requests(3, 4, "b")]
    jobs = _lockstep._spread(groups, 3)
    assert len(jobs) == 3
    loads = sorted(sum(len(part) for part in job) for job in jobs)
    assert loads[-1] - loads[0] <= 4 and sum(loads) == 14
    parts = [part for job in jobs for part in job]
    assert all(len(part) <= 4 and len({r.signature for r in part}) == 1 for part in parts)
    assert sorted(id(r) for part in parts for r in part) == sorted(id(r) for g in groups for r in g)
    assert len(_lockstep._spread([requests(2, 8, "a")], 4)) == 2  # no more jobs than requests


def test_problems_with_one_spectrum_share_its_compression():
    options = {"modes": "compressed", "compressed_exact": 4, "compressed_nodes": 6}
    problems = [problem(a=1.5, noise=n) for n in (0.1, 0.3, 0.5)]  # one spectrum, three noises
    tasks = [partial(solve, p, throw=False, options=options) for p in problems]
    results, lockstep = _lockstep.run(tasks)
    assert len([k for k in lockstep.memo if k[0] == "compression"]) == 1
    for b, p in zip(results, problems, strict=True):
        assert b.info["compression"]["n_modes"] == 10
        assert_same(b, solve(p, throw=False, options=options))


def test_invalid_problem_is_reported_in_place_while_the_others_complete():
    orphan = problem(a=1.5, sample_budget=800.0)  # a sample budget without a batch-size control
    problems = [problem(a=1.5), orphan, problem(a=1.9)]
    results = design_many(problems)
    assert isinstance(results[1], InvalidDesign)
    assert results[1].status == "invalid" and results[1].field == "sample_budget"
    assert "sample budget" in results[1].message
    assert [r.status for r in (results[0], results[2])] == ["converged", "converged"]
    assert_same(results[2], solve(problems[2], throw=False))


def test_chunks_group_equal_shapes_and_split_evenly():
    problems = [problem(horizon=200 if i % 3 else 150, blocks=15) for i in range(10)]
    pieces = chunks(problems, max_batch=3)
    assert sorted(i for piece in pieces for i in piece) == list(range(10))
    for piece in pieces:
        assert len({problems[i].horizon for i in piece}) == 1
    sizes = sorted(len(piece) for piece in pieces)
    assert sizes == [2, 2, 3, 3]  # 4 of horizon 150 in two, 6 of horizon 200 in two


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"solver": "nope"}, "solver"),
        ({"options": {"max_itr": 3}}, "options"),
        ({"max_batch": 0}, "max_batch"),
        ({"initial": [None]}, "initial"),
    ],
)
def test_bad_batch_settings_name_the_field(kwargs, field):
    with pytest.raises(ProblemError) as err:
        design_many([problem(), problem()], **kwargs)
    assert err.value.field == field


def test_other_solvers_solve_one_by_one():
    p = problem(horizon=40, blocks=40)
    p = dataclasses.replace(
        p, controls={"learning_rate": dataclasses.replace(p.learning_rate, grid="uniform")}
    )
    (batched,) = design_many([p], solver="pontryagin")
    assert_same(batched, solve(p, solver="pontryagin", throw=False))


def test_empty_input_gives_no_results():
    assert design_many([]) == []


def test_whole_loop_kernels_give_each_row_the_one_row_programs_numbers():
    """A multi-row program's loops compile as single kernels (``adjoint.whole_loops``); each row's
    loss equals the one-row program's bit for bit and its gradient to the last bit or so (here a
    few entries differ by 1 ulp: a whole-loop kernel may contract another product into a fused
    multiply-add; the solver's own programs were measured bitwise, ``tests`` above)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from schedopt.dynamics.adjoint import sgd_final_loss, whole_loops

    modes, horizon, rows = 128, 300, 4
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        lam = jnp.arange(1, modes + 1, dtype=jnp.float64) ** -1.5
        c0 = jnp.arange(1, modes + 1, dtype=jnp.float64) ** -1.2
        rates = jnp.asarray(0.2 + 0.5 * rng.random((rows, horizon)))
        batch = jnp.ones(horizon)

        def loss(lr):
            return sgd_final_loss(lam, c0, 0.1, lr, batch)

        many = jax.jit(jax.vmap(jax.value_and_grad(loss)))
        with whole_loops(True):
            text = many.lower(rates).as_text()
            values, grads = many(rates)
        assert "xla_cpu_small_call" in text  # the path under test: loops emitted as whole kernels
        one = jax.jit(jax.value_and_grad(loss))
        for i in range(rows):
            value, grad = one(rates[i])
            assert np.asarray(values[i]) == np.asarray(value)
            scale = float(np.max(np.abs(np.asarray(grad))))
            np.testing.assert_allclose(np.asarray(grads[i]), np.asarray(grad), rtol=0, atol=1e-13 * scale)


def _sweep_args(modes: int, horizon: int = 300) -> tuple:
    import jax.numpy as jnp

    lam = jnp.arange(1, modes + 1, dtype=jnp.float64) ** -1.5
    c0 = jnp.arange(1, modes + 1, dtype=jnp.float64) ** -1.2
    return (lam, c0, 0.1, jnp.full(horizon, 0.3), jnp.ones(horizon), 0.0, 1.0)


def test_one_row_programs_of_small_state_run_whole_loop_kernels_with_the_same_numbers():
    """A one-by-one solve's programs on a compressed spectrum (one row, at most WHOLE_LOOP_ENTRIES
    modes) compile their loops as whole kernels too, a larger one does not; the lockstep's pieces
    fit the bound; and a one-row sweep's numbers are those of the plain sweep to rounding."""
    import jax
    import numpy as np

    from schedopt.dynamics.adjoint import WHOLE_LOOP_ENTRIES
    from schedopt.solvers.pontryagin import _sgd_sweep_one, sgd_sweep

    assert _lockstep.CPU_ROW_ENTRIES <= WHOLE_LOOP_ENTRIES
    on_cpu = jax.default_backend() == "cpu"
    with jax.enable_x64(True):
        for modes, kernels in ((128, on_cpu), (WHOLE_LOOP_ENTRIES + 1, False)):
            text = jax.jit(_sgd_sweep_one).lower(*_sweep_args(modes)).as_text()
            assert ("xla_cpu_small_call" in text) == kernels
        new_one, loss_one = _sgd_sweep_one(*_sweep_args(128))
        new_plain, loss_plain = sgd_sweep(*_sweep_args(128))
        np.testing.assert_allclose(np.asarray(loss_one), np.asarray(loss_plain), rtol=1e-14)
        np.testing.assert_allclose(np.asarray(new_one), np.asarray(new_plain), rtol=1e-12)


def test_cores_limit_bounds_the_cores_a_batch_plans_for_and_restores_them():
    from schedopt.solvers import _lockstep

    seen = _lockstep.usable_cores()
    with _lockstep.cores_limit(1):
        assert _lockstep.usable_cores() == 1
        assert _lockstep.default_workers() == 2  # two threads a usable core
        with _lockstep.cores_limit(64):  # an allotment above the affinity does not add cores
            assert _lockstep.usable_cores() == seen
        assert _lockstep.usable_cores() == 1
    assert _lockstep.usable_cores() == seen
