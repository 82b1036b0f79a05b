"""Options of the ``jax`` solver (:class:`JaxOptions`) and the choices they make: engine, spectrum, ODE grid."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from schedopt.dynamics.compression import (
    EXACT_MODES,
    QUADRATURE_NODES,
    CompressedModes,
    auto_compress,
    compress_modes,
    spectrum,
)
from schedopt.errors import ProblemError
from schedopt.problem import Problem
from schedopt.solvers._options import SolverOptions, choice, nonnegative_int, positive_int, real_in
from schedopt.solvers.budget import FLAT_RATIO


@dataclasses.dataclass(frozen=True)
class JaxOptions(SolverOptions):
    """Options of the ``jax`` solver (reduced gradient, L-BFGS-B); how each is used: ``docs/architecture.md``.

    Attributes:
        max_iter: L-BFGS-B iterations in all, restarts and augmented-Lagrangian rounds included.
        ftol: relative decrease of the loss per iteration that ends a run of L-BFGS-B.
        gtol: projected gradient of the log objective (in scaled units) that ends a run.
        pgtol_converged: projected gradient accepted as converged when L-BFGS-B stops on its line search.
        restart_pgtol: an ``ftol`` stop with a projected gradient above this restarts L-BFGS-B (fresh memory).
        max_restarts: at most this many such restarts.
        memory: L-BFGS-B's history (``maxcor``), at most the number of parameters.
        warm_start: ``"pontryagin"`` (sweeps of the per-step learning rate fitted to the grid) or ``"none"`` (half the cap).
        warm_sweeps: the warm start's sweeps, at most.
        warm_rtol: the warm start stops after a sweep that lowers the per-step loss by less than this.
        engine: the dynamics: ``"recursion"`` (exact), ``"ode"`` (continuous time) or ``"auto"`` (by ``ode_min_work``).
        ode_min_work: with ``engine = "auto"``, ``T * N`` from which learning-rate-only SGD runs on the ODE.
        check_work: the ODE engine checks its schedule on the recursion while ``T * N`` is at most this.
        modes: ``"auto"`` (compress large spectra), ``"compressed"`` or ``"exact"``.
        compressed_exact: modes a compressed spectrum keeps exactly.
        compressed_nodes: quadrature nodes of a compressed spectrum's remainder.
        compression_rtol: a compressed result off the full spectrum's loss by more than this is polished on it.
        budget_rtol: sample-budget violation ``|sum_t m_t / D - 1|`` that ends the augmented Lagrangian.
        al_penalty: the augmented Lagrangian's initial penalty.
        al_max_outer: its outer rounds, at most.
        al_ftol: ``ftol`` of its inner solves, at least.
        tie_break: ``"auto"`` (apply the budget tie-break when the optimum is flat) or ``"none"``.
        flat_ratio: flatness at or above which the budget optimum counts as degenerate.
        tie_break_rtol: the tie-break schedule is kept if its loss is within this of the optimum.
        momentum_cap: ``"joint"`` (learning-rate cap per momentum value) or ``"box"`` (the box must be stable).
        stability_margin: fraction of the heavy-ball stability threshold the joint cap allows, in (0, 1].
        momentum_memory: L-BFGS-B's history with a momentum control, at most the number of parameters.
        second_order: ``"auto"`` (check a solve with a momentum control on its reduced Hessian) or ``"none"``.
        newton_steps: projected Newton steps of that check, at most.
        newton_rtol: the Newton model's remaining relative loss decrease a checked point may have.
        flat_rtol: reduced-Hessian eigenvalues within this of the largest count as flat.
        basin_search: ``"auto"`` (re-solve a cheap learning-rate problem whose minimum chatters at its cap from strict alternations, ``_basins.py``) or ``"none"``.
        basin_work: ``T * N`` up to which ``basin_search = "auto"`` runs.
    """

    solver: ClassVar[str] = "jax"

    max_iter: int = 3000
    ftol: float = 1e-13
    gtol: float = 1e-9
    pgtol_converged: float = 1e-6
    restart_pgtol: float = 1e-2
    max_restarts: int = 50
    memory: int = 100
    warm_start: str = "pontryagin"
    warm_sweeps: int = 200
    warm_rtol: float = 1e-7
    engine: str = "auto"
    ode_min_work: float = 1e8
    check_work: float = 2e8
    modes: str = "auto"
    compressed_exact: int = EXACT_MODES
    compressed_nodes: int = QUADRATURE_NODES
    compression_rtol: float = 1e-9
    budget_rtol: float = 1e-10
    al_penalty: float = 1e2
    al_max_outer: int = 30
    al_ftol: float = 1e-11
    tie_break: str = "auto"
    flat_ratio: float = FLAT_RATIO
    tie_break_rtol: float = 1e-4
    momentum_cap: str = "joint"
    stability_margin: float = 0.95
    momentum_memory: int = 128
    second_order: str = "auto"
    newton_steps: int = 10
    newton_rtol: float = 1e-10
    flat_rtol: float = 1e-9
    basin_search: str = "auto"
    basin_work: float = 1e5

    def __post_init__(self) -> None:
        choice("warm_start", self.warm_start, ("pontryagin", "none"))
        choice("tie_break", self.tie_break, ("auto", "none"))
        choice("momentum_cap", self.momentum_cap, ("joint", "box"))
        choice("engine", self.engine, ("auto", "recursion", "ode"))
        choice("modes", self.modes, ("auto", "compressed", "exact"))
        choice("second_order", self.second_order, ("auto", "none"))
        choice("basin_search", self.basin_search, ("auto", "none"))
        real_in("basin_work", self.basin_work, "a non-negative number", zero=True)
        positive_int("momentum_memory", self.momentum_memory)
        nonnegative_int("newton_steps", self.newton_steps)
        real_in("newton_rtol", self.newton_rtol, "a positive number")
        real_in("flat_rtol", self.flat_rtol, "a non-negative number", zero=True)
        if not 0 < float(self.stability_margin) <= 1:
            raise ProblemError(
                f"option `stability_margin` must be in (0, 1], got {self.stability_margin!r}",
                field="stability_margin",
            )


_CONTROL_ORDER = ("learning_rate", "batch_size", "momentum")

#: Integration grid of the ODE engine (:func:`schedopt.dynamics.ode.time_grid` options), coarser
#: than the module's defaults: 256 steps for K = 100 linear blocks at T = 1e3..1e6. On the
#: benchmark problem (eta = 0.7) its final loss equals the default grid's (512-768 steps) to
#: < 5e-7 relative at T = 1e3 and < 5e-9 at 1e4, 1e5, far below the ODE-vs-recursion gap of
#: the model itself (1.4e-4, 5.8e-6, 1.9e-7), at 1/3 of the cost.
ODE_GRID = {"first_step": 0.5, "growth": 1.2, "substeps": 1, "multiple": 64}


def _ode_capable(problem: Problem) -> bool:
    """The ODE engine models a learning-rate control with plain SGD at a fixed batch size."""
    return (
        set(problem.controls) == {"learning_rate"}
        and problem.training.momentum == 0
        and problem.sample_budget is None
    )


def _engine(problem: Problem, opts: JaxOptions) -> str:
    """``"recursion"`` or ``"ode"``: the option, ``"auto"`` resolved by the work ``T * N`` (``ode_min_work``)."""
    if opts.engine == "auto":
        work = float(problem.horizon) * problem.model.n_modes
        return "ode" if _ode_capable(problem) and work >= opts.ode_min_work else "recursion"
    if opts.engine == "ode" and not _ode_capable(problem):
        raise ProblemError(
            "option `engine` = 'ode' needs a learning-rate control alone (no batch-size or momentum "
            "control, no fixed momentum, no sample budget); use engine 'recursion'",
            field="engine",
        )
    return opts.engine


def _compression(problem: Problem, opts: JaxOptions) -> CompressedModes | None:
    """The compressed spectrum the solve runs on, or ``None`` for the model's own modes (option ``modes``).

    Plain SGD and heavy ball alike: both recursions read the loss out through ``loss_weights``.
    """
    if opts.modes == "exact":
        return None
    from schedopt.solvers import _lockstep

    model = problem.model
    sizes = {"exact": opts.compressed_exact, "nodes": opts.compressed_nodes}
    lam, c0 = np.asarray(model.eigenvalues), np.asarray(model.initial_error)
    # Inside design_many, the problems of a batch with one spectrum share its compression.
    key = (
        "compression",
        opts.modes,
        *sizes.values(),
        lam.dtype.str,
        lam.tobytes(),
        c0.dtype.str,
        c0.tobytes(),
    )
    return _lockstep.shared(key, lambda: _compress(lam, c0, opts.modes, sizes))


def _compress(lam: np.ndarray, c0: np.ndarray, modes: str, sizes: dict[str, int]) -> CompressedModes | None:
    if modes == "auto":
        return auto_compress(lam, c0, **sizes)
    compressed = compress_modes(lam, c0, **sizes)
    return compressed if compressed.n_modes < lam.size else None


def _spectrum(problem: Problem, modes: CompressedModes | None):
    """``(eigenvalues, initial error, loss readout)`` the objective runs on (the readout is always
    an array: the eigenvalues for the model's own modes)."""
    lam, c0, weights = spectrum(problem.model, modes)
    return lam, c0, lam if weights is None else weights


def _ode_grid(grid) -> np.ndarray:
    """Integration grid of the ODE engine for a control grid (see :data:`ODE_GRID`)."""
    from schedopt.dynamics import ode  # diffrax and equinox load only for the ODE engine

    return ode.time_grid(
        grid.horizon, grid.edges, refine_edges=grid.parameterisation == "constant", **ODE_GRID
    )
