r"""Compute-optimal model size and horizon: the frontier :math:`N^*(C)`, :math:`T^*(C)`, :math:`L^*(C)`.

The model is the top :math:`N` modes of an infinite power law (THEORY §2.2,
``Model.powerlaw(..., finite_size=True)``): the modes beyond :math:`N` are frozen,
their loss :math:`R_N \sim N^{-(a-1)}` is a floor and feeds the SGD noise. At a
fixed compute :math:`C = N\,T\,m` (modes x steps x batch size) a larger model has
a lower floor but fewer steps. For each :math:`C`:

1. :math:`N` is scanned on a log grid (``points`` values, ratio ``spacing``)
   centred on a guess: :math:`C^{1/(\max(a,b)+1)}` for the first compute, then the
   previous optimum times :math:`(C/C_{\rm prev})^{1/(\max(a,b)+1)}`;
   :math:`T = \mathrm{round}(C/(N m))` (so :math:`NTm = C` within :math:`1/(2T)`).
2. At each :math:`(N, T)` the optimal schedule is solved (``solve``, the problem's
   own learning-rate grid, blocks capped at :math:`T`) and the baselines are
   tuned (``tune_baseline``: best constant, cosine).
3. Where a schedule's smallest loss sits at an end of the scanned grid, the grid
   is extended on that side (at most ``max_extend`` points) until the minimum is
   interior.
4. The minimum is refined by a parabola in :math:`(\log N, \log L)` through the
   discrete minimum and its two neighbours: :math:`N^*`, :math:`L^*`, and
   :math:`T^* = C/(N^* m)`.

Then :math:`N^*`, :math:`T^*` and :math:`L^*` are fitted as power laws of :math:`C`
(:func:`schedopt.theory.fit_power_law`, range and residual reported) and set next
to THEORY §4: :math:`N^* \sim C^{1/(\max(a,b)+1)}`,
:math:`L^* \sim C^{-(a-1)/(\max(a,b)+1)}`, hence :math:`T^* \sim C^{\max(a,b)/(\max(a,b)+1)}`.
For the best constant schedule the same balance with THEORY's constant-schedule
loss :math:`T^{-(a-1)/(a-1+b)}` gives (derived here) :math:`N^* \sim C^{1/(a+b)}`,
:math:`L^* \sim C^{-(a-1)/(a+b)}`.

**Compute multiplier** of a baseline: the compute it needs to reach the optimal
schedule's frontier loss :math:`L^*_{\rm opt}(C)`, divided by :math:`C`. It is read
off the baseline's measured frontier (log-log interpolation), or its fitted power
law outside the measured range (flagged ``extrapolated``).

**Learning-rate cap.** The stability threshold depends on :math:`N` (it falls as
modes are added). Each model size gets the cap
:math:`\eta_{\max}(N) = \rho\,\eta_c(N)` where :math:`\eta_c` is the threshold at the
problem's batch size and :math:`\rho` the fraction of its own threshold at which the
spec puts ``controls.learning_rate.max``; the cap of every point is reported.

**Cost.** One recursion pass costs :math:`O(NT) = O(C/m)` at every point of a
fixed-compute scan, so a frontier costs about (points per compute) x (sum of the
computes) x (passes per solve), plus one JAX compilation per point (every point
has its own shapes, so the solves cannot be stacked into one vectorised call).
A solve on the recursion starts from the solver's own Pontryagin warm start (a neighbouring
model size's schedule mapped in :math:`t/T` was measured slower there). The solver skips that
warm start where it picks its ODE engine (``T N >= ode_min_work``, ``C >= 10^8`` at batch
size 1), and from half the cap such solves ran out of iterations far from the optimum; there
each solve starts from the nearest solved model size's optimal schedule (this compute's, else
the previous compute's best), mapped in :math:`t/T` as a fraction of the cap (``_start.py``).
Model sizes whose horizon exceeds :data:`~schedopt._validate.MAX_HORIZON` are not scanned; a
minimum held at an end by that (or by ``min_horizon``, or ``max_extend``) is reported
(``interior`` false, ``bound`` says which). Timings and those comparisons:
``benchmarks/README.md``, "Scaling studies".

Modules: ``_problem.py`` (the computes, the checked problem, the problem at one model size),
``_scan.py`` (one compute: scan, extend, refine), ``_start.py`` (the start of an ODE-engine
solve), ``_evaluate.py`` (the points' solves and
tunings on a backend), ``_record.py`` (:class:`ScalingStudy` and the predicted exponents),
``_study.py`` (:func:`study_scaling`, the driver).

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

from schedopt.studies.scaling._problem import parse_compute, scaling_problem
from schedopt.studies.scaling._record import (
    PREDICTION_SOURCES,
    SCHEDULES,
    ScalingStudy,
    frontier_predictions,
)
from schedopt.studies.scaling._study import DEFAULT_OPTIONS, MIN_HORIZON, study_scaling

__all__ = [
    "DEFAULT_OPTIONS",
    "MIN_HORIZON",
    "PREDICTION_SOURCES",
    "SCHEDULES",
    "ScalingStudy",
    "frontier_predictions",
    "parse_compute",
    "scaling_problem",
    "study_scaling",
]
