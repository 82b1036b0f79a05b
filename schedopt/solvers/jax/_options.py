"""Options of the ``jax`` solver (:data:`DEFAULT_OPTIONS`) and the choices they make: engine, spectrum, ODE grid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from schedopt.solvers._common import (
    merge_options,
)
from schedopt.solvers.budget import FLAT_RATIO

DEFAULT_OPTIONS = {
    "max_iter": 3000,
    "ftol": 1e-13,  # relative decrease of the loss per iteration that ends the solve (see _lbfgsb)
    "gtol": 1e-9,  # projected gradient of the log objective (in scaled units)
    "pgtol_converged": 1e-6,  # accepted as converged when L-BFGS-B stops on its line search
    # An `ftol` stop with a projected gradient above this restarts L-BFGS-B (fresh memory) from
    # where it stopped: a slow stretch (a flat start) is not an optimum. Measured: ftol stops
    # 2e-7 from the optimum had 2e-4..3e-3; one 33 % above it (ftol 1e-8 from half the cap) 0.83.
    "restart_pgtol": 1e-2,
    "max_restarts": 50,
    "memory": 30,
    # Start from a few Pontryagin sweeps projected on the grid: cuts L-BFGS iterations
    # several-fold. With batch-size / momentum controls the sweeps design the learning
    # rate at the mean batch size and momentum at its lower bound. "none" starts from
    # half the cap.
    "warm_start": "pontryagin",
    "warm_sweeps": 200,  # at most this many sweeps ...
    "warm_rtol": 1e-7,  # ... stopping after one that lowers the per-step loss by less than this
    # dynamics behind the objective: "recursion" (exact), "ode" (continuous time, THEORY 2.4),
    # "auto": the ODE from T * N = `ode_min_work` on (learning-rate-only SGD problems)
    "engine": "auto",
    "ode_min_work": 1e8,
    "check_work": 2e8,  # ODE engine: check the schedule on the recursion when T * N is at most this
    # mode compression (schedopt.dynamics.compression): "auto" solves plain-SGD problems with more
    # than 2 * (compressed_exact + compressed_nodes) modes on the compressed spectrum, checks the result
    # on the full one and, if they differ by more than `compression_rtol`, polishes on the full one
    "modes": "auto",  # "auto", "compressed" or "exact"
    "compressed_exact": EXACT_MODES,
    "compressed_nodes": QUADRATURE_NODES,
    "compression_rtol": 1e-9,
    # sample budget: augmented Lagrangian
    "budget_rtol": 1e-10,  # |sum_t m_t / D - 1| before the final exact projection
    "al_penalty": 1e2,  # initial penalty rho
    "al_max_outer": 30,
    "al_ftol": 1e-11,  # relative change of the inner objective that ends an inner solve
    # degeneracy of the budget optimum and its tie-break
    "tie_break": "auto",  # "auto": apply when flat; "none": never
    "flat_ratio": FLAT_RATIO,  # flatness at or above which the optimum counts as degenerate
    "tie_break_rtol": 1e-4,  # keep the tie-break schedule if its loss is within this of the optimum
    # momentum control
    "momentum_cap": "joint",  # "joint": learning-rate cap per momentum value; "box": box must be stable
    "stability_margin": 0.95,  # fraction of the heavy-ball threshold the joint cap allows
}
_CONTROL_ORDER = ("learning_rate", "batch_size", "momentum")

#: Integration grid of the ODE engine (:func:`schedopt.dynamics.ode.time_grid` options), coarser
#: than the module's defaults: 256 steps for K = 100 linear blocks at T = 1e3..1e6. On the
#: benchmark problem (eta = 0.7) its final loss equals the default grid's (512-768 steps) to
#: < 5e-7 relative at T = 1e3 and < 5e-9 at 1e4, 1e5, far below the ODE-vs-recursion gap of
#: the model itself (1.4e-4, 5.8e-6, 1.9e-7), at 1/3 of the cost.
ODE_GRID = {"first_step": 0.5, "growth": 1.2, "substeps": 1, "multiple": 64}


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = merge_options("jax", DEFAULT_OPTIONS, options)
    choices = {
        "warm_start": ("pontryagin", "none"),
        "tie_break": ("auto", "none"),
        "momentum_cap": ("joint", "box"),
        "engine": ("auto", "recursion", "ode"),
        "modes": ("auto", "compressed", "exact"),
    }
    for key, allowed in choices.items():
        if opts[key] not in allowed:
            raise ProblemError(
                f"option `{key}` must be {' or '.join(repr(a) for a in allowed)}, got {opts[key]!r}",
                field=key,
            )
    if not 0 < float(opts["stability_margin"]) <= 1:
        raise ProblemError(
            f"option `stability_margin` must be in (0, 1], got {opts['stability_margin']!r}",
            field="stability_margin",
        )
    return opts


def _ode_capable(problem: Problem) -> bool:
    """The ODE engine models a learning-rate control with plain SGD at a fixed batch size."""
    return (
        set(problem.controls) == {"learning_rate"}
        and problem.training.momentum == 0
        and problem.sample_budget is None
    )


def _engine(problem: Problem, opts) -> str:
    """``"recursion"`` or ``"ode"``: the option, ``"auto"`` resolved by the work ``T * N`` (``ode_min_work``)."""
    if opts["engine"] == "auto":
        work = float(problem.horizon) * problem.model.n_modes
        return "ode" if _ode_capable(problem) and work >= opts["ode_min_work"] else "recursion"
    if opts["engine"] == "ode" and not _ode_capable(problem):
        raise ProblemError(
            "option `engine` = 'ode' needs a learning-rate control alone (no batch-size or momentum "
            "control, no fixed momentum, no sample budget); use engine 'recursion'",
            field="engine",
        )
    return opts["engine"]


def _compressible(problem: Problem) -> bool:
    """Mode compression needs plain SGD (the heavy-ball recursion has no loss readout of its own)."""
    return "momentum" not in problem.controls and problem.training.momentum == 0


def _compression(problem: Problem, opts) -> CompressedModes | None:
    """The compressed spectrum the solve runs on, or ``None`` for the model's own modes (option ``modes``)."""
    if opts["modes"] == "exact":
        return None
    if not _compressible(problem):
        if opts["modes"] == "compressed":
            raise ProblemError(
                "option `modes` = 'compressed' needs plain SGD (no momentum); use 'auto' or 'exact'",
                field="modes",
            )
        return None
    sizes = {"exact": opts["compressed_exact"], "nodes": opts["compressed_nodes"]}
    model = problem.model
    if opts["modes"] == "auto":
        return auto_compress(model.eigenvalues, model.initial_error, **sizes)
    modes = compress_modes(model.eigenvalues, model.initial_error, **sizes)
    return modes if modes.n_modes < model.n_modes else None


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
