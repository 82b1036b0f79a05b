r"""IPOPT (through CasADi) on the exact discrete recursion, sized by the control parameters.

The NLP is *single shooting*: its decision variables are the control parameters
only (``K + 1`` knot values per piecewise-linear control, ``K`` per
piecewise-constant one), never the ``T`` per-step states. It is built in three
layers:

1. one optimiser step as a CasADi :class:`~casadi.Function`, made by calling the
   project's step function (:func:`~schedopt.dynamics.sgd.sgd_step`, or
   :func:`~schedopt.dynamics.momentum.momentum_step`) on CasADi symbols with the
   :data:`~schedopt.dynamics.ops.CASADI` namespace: the dynamics are written once;
2. ``T`` steps as a tower of nested ``fold`` calls of at most
   :data:`FOLD_BASE` steps each (:func:`fold_steps`), so the expression graph has
   ``O(FOLD_BASE \log T)`` nodes whatever the horizon, and reverse-mode
   derivatives recompute the states of a block instead of storing all ``T`` of
   them;
3. the per-step controls as a sparse linear map of the parameters,
   :math:`u = B x` with ``B`` the control grid's
   :meth:`~schedopt.controls.Interpolation.matrix`.

The objective is :math:`\log(L_T - R_N)`, the log of the final loss of the kept
modes: it is scale free (losses span 1 to 1e-12) and its optimum is that of
:math:`L_T`. A sample budget :math:`\sum_t m_t = D` (batch size as a control) is
a linear equality constraint.

Hessian: ``"limited-memory"`` (the default) is IPOPT's L-BFGS with a history of
:data:`LBFGS_HISTORY` pairs; ``"exact"`` is CasADi's forward-over-reverse Hessian, about
one gradient per parameter per iteration, so it only pays when steps per parameter are
few (measured: ``benchmarks/README.md``, "CasADi/IPOPT").

Only MUMPS is available as IPOPT's linear solver (the pip build of CasADi has
no HSL; asking for ``ma97`` crashes the process), so no other is accepted.

Modules: ``_options.py`` (:class:`CasadiOptions`, IPOPT's options, the CasADi import), ``_nlp.py``
(:func:`fold_steps`, :func:`build_nlp`), ``_best.py`` (the best-iterate callback),
``_solve.py`` (:func:`solve_casadi`).

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
    A. Wächter and L. T. Biegler, *On the implementation of an interior-point
    filter line-search algorithm for large-scale nonlinear programming*,
    Math. Program. 106 (2006).
"""

from __future__ import annotations

from schedopt.solvers.casadi_ipopt._nlp import FOLD_BASE, CasadiNLP, build_nlp, fold_steps
from schedopt.solvers.casadi_ipopt._options import HESSIANS, LBFGS_HISTORY, LINEAR_SOLVERS, CasadiOptions
from schedopt.solvers.casadi_ipopt._solve import solve_casadi

__all__ = [
    "FOLD_BASE",
    "HESSIANS",
    "LBFGS_HISTORY",
    "LINEAR_SOLVERS",
    "CasadiNLP",
    "CasadiOptions",
    "build_nlp",
    "fold_steps",
    "solve_casadi",
]
