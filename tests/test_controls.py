"""Control grids: block edges of every grid kind, and the parameter -> per-step map."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from schedopt.controls import ControlGrid, Interpolation, block_edges, grid_for
from schedopt.errors import ProblemError
from schedopt.problem import ControlSpec

GRIDS = ("uniform", "geometric-end", "geometric-both")
HORIZONS = (1, 2, 3, 5, 7, 10, 17, 50, 100, 200, 1000, 10_000, 12_345)

EXACT_ATOL = 1e-14  # an affine map evaluated two ways in float64
FIT_ATOL = 1e-10  # least squares (LSQR, tolerance 1e-14) on a well-posed system of up to 10^4 rows
# geometric-end: at least this fraction of the K + 1 edges lies in the last 10 % of the horizon
# (half the edges are log-spaced in the distance to T; rounding to whole steps merges a few);
# uniform puts only about K / 10 there.
END_EDGE_FRACTION = 0.25
# geometric-both: at least this fraction of the edges lies in each of the first and last 10 %.
BOTH_EDGE_FRACTION = 1 / 6
REFINED_CASES = ((200, 10), (1000, 10), (1000, 40), (10_000, 20), (10_000, 100))


def blocks_for(horizon: int) -> list[int]:
    candidates = {1, 2, 3, 4, 5, 7, 10, 20, 50, 100, horizon, horizon - 1, horizon // 2}
    return sorted(k for k in candidates if 1 <= k <= horizon)


def grid(horizon: int, blocks: int, kind: str = "uniform", parameterisation: str = "linear") -> ControlGrid:
    return ControlGrid(edges=block_edges(horizon, blocks, kind), parameterisation=parameterisation)


# --- block edges


@pytest.mark.parametrize("kind", GRIDS)
@pytest.mark.parametrize("horizon", HORIZONS)
def test_block_edges_give_exactly_k_strictly_increasing_blocks(kind, horizon):
    for blocks in blocks_for(horizon):
        edges = block_edges(horizon, blocks, kind)
        assert edges.dtype.kind == "i"
        assert edges.shape == (blocks + 1,), (kind, horizon, blocks)
        assert edges[0] == 0
        assert edges[-1] == horizon
        assert np.all(np.diff(edges) > 0), (kind, horizon, blocks, edges)


@pytest.mark.parametrize("kind", GRIDS)
def test_one_block_per_step_and_a_single_block(kind):
    assert_array_equal(block_edges(37, 37, kind), np.arange(38))
    assert_array_equal(block_edges(37, 1, kind), [0, 37])


def test_uniform_edges_are_equally_spaced_when_k_divides_t():
    assert_array_equal(block_edges(200, 10, "uniform"), np.arange(0, 201, 20))


@pytest.mark.parametrize(("horizon", "blocks"), REFINED_CASES)
def test_geometric_end_refines_the_end(horizon, blocks):
    end = block_edges(horizon, blocks, "geometric-end")
    uniform = block_edges(horizon, blocks, "uniform")
    in_last = int(np.sum(end >= 0.9 * horizon))
    assert in_last >= END_EDGE_FRACTION * (blocks + 1), (in_last, end)
    assert in_last > int(np.sum(uniform >= 0.9 * horizon))
    # the last block is a few steps at most: the anneal is resolved
    assert end[-1] - end[-2] <= max(1, horizon // 100)


@pytest.mark.parametrize(("horizon", "blocks"), REFINED_CASES)
def test_geometric_both_refines_start_and_end(horizon, blocks):
    both = block_edges(horizon, blocks, "geometric-both")
    uniform = block_edges(horizon, blocks, "uniform")
    in_first = int(np.sum(both <= 0.1 * horizon))
    in_last = int(np.sum(both >= 0.9 * horizon))
    assert in_first >= BOTH_EDGE_FRACTION * (blocks + 1), (in_first, both)
    assert in_last >= BOTH_EDGE_FRACTION * (blocks + 1), (in_last, both)
    assert in_first > int(np.sum(uniform <= 0.1 * horizon))
    assert in_last > int(np.sum(uniform >= 0.9 * horizon))
    assert both[1] == 1  # the first block is one step: a warm-up can be resolved


def test_custom_edges_are_returned_as_given():
    assert_array_equal(block_edges(10, 3, "custom", (0, 3, 7, 10)), [0, 3, 7, 10])


@pytest.mark.parametrize(
    "edges",
    [
        None,
        (),
        (0,),
        (1, 5, 10),  # does not start at 0
        (0, 5, 9),  # does not end at the horizon
        (0, 5, 5, 10),  # repeated edge
        (0, 7, 3, 10),  # decreasing
        ((0, 5, 10),),  # not one-dimensional
    ],
)
def test_bad_custom_edges_raise_problem_error_naming_edges(edges):
    with pytest.raises(ProblemError, match="`edges`") as info:
        block_edges(10, 2, "custom", edges)
    assert info.value.field == "edges"


@pytest.mark.parametrize("kind", (*GRIDS, "custom"))
def test_more_blocks_than_steps_is_an_error(kind):
    with pytest.raises(ProblemError, match=r"`blocks` \(11\) must not exceed the horizon \(10\)") as info:
        block_edges(10, 11, kind, tuple(range(12)))
    assert info.value.field == "blocks"


@pytest.mark.parametrize("blocks", [0, -3])
def test_non_positive_blocks_is_an_error(blocks):
    with pytest.raises(ProblemError, match="`blocks` must be a positive integer") as info:
        block_edges(10, blocks, "uniform")
    assert info.value.field == "blocks"


def test_unknown_grid_kind_is_an_error():
    with pytest.raises(ProblemError, match=r"`grid` must be one of .* got 'log'") as info:
        block_edges(10, 2, "log")
    assert info.value.field == "grid"


@pytest.mark.parametrize("edges", [[0], [0, 5, 5], [1, 4], [[0, 1], [1, 2]]])
def test_control_grid_validates_its_edges(edges):
    with pytest.raises(ProblemError, match="`edges`"):
        ControlGrid(edges=np.array(edges))


def test_control_grid_rejects_unknown_parameterisation():
    with pytest.raises(ProblemError, match=r"`parameterisation`.*got 'cubic'"):
        ControlGrid(edges=np.array([0, 5, 10]), parameterisation="cubic")


def test_grid_for_follows_the_control_spec():
    spec = ControlSpec(
        "learning_rate", 0.0, 0.3, blocks=10, grid="geometric-end", parameterisation="constant"
    )
    g = grid_for(spec, 1000)
    assert_array_equal(g.edges, block_edges(1000, 10, "geometric-end"))
    assert (g.blocks, g.n_params, g.horizon) == (10, 10, 1000)
    custom = ControlSpec("learning_rate", 0.0, 0.3, grid="custom", edges=(0, 2, 9, 10))
    g = grid_for(custom, 10)
    assert_array_equal(g.edges, [0, 2, 9, 10])
    assert (g.blocks, g.n_params) == (3, 4)


def test_describe_reports_block_widths():
    d = ControlGrid(edges=np.array([0, 2, 9, 10])).describe()
    assert d == {
        "blocks": 3,
        "parameterisation": "linear",
        "edges": [0, 2, 9, 10],
        "min_block_steps": 1,
        "max_block_steps": 7,
    }


# --- interpolation: parameters -> per-step values


@pytest.mark.parametrize("kind", GRIDS)
def test_constant_parameterisation_reproduces_block_values(kind):
    g = grid(1000, 10, kind, "constant")
    values = np.arange(1.0, 11.0) ** 2
    per_step = g.interpolation().expand(values)
    expected = np.repeat(values, np.diff(g.edges))
    assert_array_equal(per_step, expected)
    assert g.interpolation().n_params == 10


@pytest.mark.parametrize("kind", GRIDS)
def test_linear_parameterisation_is_exact_on_a_linear_function_at_midpoints(kind):
    horizon = 1000
    g = grid(horizon, 10, kind, "linear")

    def f(t):
        return 0.3 - 2.5e-4 * t

    per_step = g.interpolation().expand(f(g.edges.astype(float)))
    assert_allclose(per_step, f(np.arange(horizon) + 0.5), rtol=0, atol=EXACT_ATOL)


def test_linear_interpolation_weights_in_one_block():
    it = ControlGrid(edges=np.array([0, 4, 6])).interpolation()
    assert_array_equal(it.index, [0, 0, 0, 0, 1, 1])
    assert_allclose(it.weight, [0.125, 0.375, 0.625, 0.875, 0.25, 0.75], rtol=0, atol=EXACT_ATOL)
    assert_allclose(it.expand([0.0, 8.0, 0.0]), [1.0, 3.0, 5.0, 7.0, 6.0, 2.0], rtol=0, atol=EXACT_ATOL)


def test_evaluate_agrees_with_expand_at_midpoints():
    rng = np.random.default_rng(1)
    for par in ("linear", "constant"):
        g = grid(500, 13, "geometric-both", par)
        values = rng.uniform(0.0, 1.0, g.n_params)
        t_mid = np.arange(500) + 0.5
        assert_allclose(g.evaluate(values, t_mid), g.interpolation().expand(values), rtol=0, atol=EXACT_ATOL)


def test_expand_broadcasts_over_leading_axes():
    it = grid(100, 5, "uniform", "linear").interpolation()
    values = np.random.default_rng(2).uniform(size=(3, 4, 6))
    batched = it.expand(values)
    assert batched.shape == (3, 4, 100)
    assert_allclose(batched[2, 1], it.expand(values[2, 1]), rtol=0, atol=EXACT_ATOL)


def test_expand_runs_in_jax():
    import jax.numpy as jnp

    it = grid(100, 5, "geometric-end", "linear").interpolation()
    values = np.linspace(0.1, 0.6, 6)
    assert_allclose(np.asarray(it.expand(jnp.asarray(values), xp=jnp)), it.expand(values), atol=EXACT_ATOL)


@pytest.mark.parametrize("par", ["linear", "constant"])
@pytest.mark.parametrize(
    ("horizon", "blocks", "kind"),
    [
        (200, 10, "uniform"),
        (10_000, 100, "geometric-end"),
        (10_000, 100, "geometric-both"),
        (7, 7, "uniform"),
    ],
)
def test_matrix_equals_expand(par, horizon, blocks, kind):
    it = grid(horizon, blocks, kind, par).interpolation()
    values = np.random.default_rng(3).uniform(0.1, 1.0, it.n_params)
    m = it.matrix()
    assert m.shape == (horizon, it.n_params)
    assert_allclose(m @ values, it.expand(values), rtol=0, atol=EXACT_ATOL)
    # each row is a convex combination of at most two neighbouring parameters
    assert_allclose(np.asarray(m.sum(axis=1)).ravel(), 1.0, rtol=0, atol=EXACT_ATOL)
    assert np.all(np.diff(m.indptr) <= 2)


@pytest.mark.parametrize("par", ["linear", "constant"])
@pytest.mark.parametrize(
    ("horizon", "blocks", "kind"),
    [
        (200, 10, "uniform"),
        (1000, 10, "geometric-end"),
        (10_000, 100, "geometric-end"),
        (10_000, 100, "geometric-both"),
    ],
)
def test_fit_recovers_parameters_from_their_expansion(par, horizon, blocks, kind):
    it = grid(horizon, blocks, kind, par).interpolation()
    values = np.random.default_rng(4).uniform(0.1, 1.0, it.n_params)
    assert_allclose(it.fit(it.expand(values)), values, rtol=0, atol=FIT_ATOL)


def test_fit_is_the_least_squares_projection():
    it = grid(60, 4, "uniform", "linear").interpolation()
    target = np.sin(np.arange(60) / 7.0)
    dense = it.matrix().toarray()
    expected = np.linalg.lstsq(dense, target, rcond=None)[0]
    assert_allclose(it.fit(target), expected, rtol=0, atol=FIT_ATOL)


def test_bounded_fit_is_the_bounded_least_squares_solution():
    # one step per knot: the free fit is not unique and oscillates; clipping it is not the answer
    it = grid(40, 40, "uniform", "linear").interpolation()
    target = np.where(np.arange(40) < 30, 1.2, 0.05)
    dense = it.matrix().toarray()
    import scipy.optimize

    reference = scipy.optimize.lsq_linear(dense, target, bounds=(0.0, 1.4), method="bvls", tol=1e-14).x
    fitted = it.fit(target, 0.0, 1.4)
    assert np.all((fitted >= 0.0) & (fitted <= 1.4))
    residual = np.linalg.norm(dense @ fitted - target)
    assert residual == pytest.approx(np.linalg.norm(dense @ reference - target), rel=1e-6, abs=1e-10)
    clipped = np.clip(it.fit(target), 0.0, 1.4)
    assert residual <= np.linalg.norm(dense @ clipped - target) + 1e-12


@pytest.mark.parametrize("par", ["linear", "constant"])
def test_bounded_fit_on_the_normal_equations_is_the_bounded_least_squares_solution(par):
    """Many steps per knot: the fit runs on the map's normal equations; same minimum as bvls on the map."""
    import scipy.optimize

    it = grid(3000, 30, "geometric-both", par).interpolation()
    t = np.arange(3000)
    target = 0.6 * np.minimum(1.0, 1.5 * (1 - t / 3000)) + 0.05 * np.sin(1.3 * t)  # above the cap early
    dense = it.matrix().toarray()
    reference = scipy.optimize.lsq_linear(dense, target, bounds=(0.0, 0.57), method="bvls", tol=1e-14).x
    fitted = it.fit(target, 0.0, 0.57)
    assert np.all((fitted >= 0.0) & (fitted <= 0.57))
    assert_allclose(fitted, reference, rtol=0, atol=1e-9)
    residual = np.linalg.norm(dense @ fitted - target)
    assert residual <= np.linalg.norm(dense @ reference - target) * (1 + 1e-12)


def test_bounded_fit_inside_the_bounds_is_the_free_fit():
    it = grid(60, 4, "uniform", "linear").interpolation()
    target = 0.5 + 0.1 * np.sin(np.arange(60) / 7.0)
    assert_allclose(it.fit(target, 0.0, 1.0), it.fit(target), rtol=0, atol=FIT_ATOL)


def test_interpolation_is_built_from_arrays():
    it = Interpolation(index=np.array([0, 0, 1]), weight=np.array([0.0, 0.5, 0.0]), n_params=2)
    assert_allclose(it.expand([2.0, 4.0]), [2.0, 3.0, 4.0], rtol=0, atol=EXACT_ATOL)
