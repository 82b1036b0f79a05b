r"""Joint schedules: batch size and momentum next to the learning rate (THEORY §3-4).

Three studies, each a function returning a frozen record with ``to_dict()``:

* :func:`fewest_steps`, the **wall-clock objective** at a fixed sample budget
  :math:`D`: for a list of step counts :math:`T` solve the budget problem
  (learning rate and batch size, :math:`\sum_t m_t = D`, THEORY §3) and the
  fixed-batch problem (learning rate only, :math:`m = D/T`); the fewest steps
  that reach a target loss is the smallest :math:`T` whose optimum is at or below
  the target, refined by log-log interpolation of :math:`L^*(T)` between the two
  bracketing step counts. The default target is :math:`(1 + \text{slack})` times
  the best joint loss over the list (the largest :math:`T`, where the batch is
  smallest, is usually best). The step saving is
  :math:`T_{\text{fixed}} / T_{\text{joint}}` at the same target. "Lowest loss in
  a step budget" is the budget problem itself at that :math:`T`.
* :func:`fit_batch_ramp` (and :func:`wall_clock_ramp`, which first solves at the
  wall-clock step count): the batch ramp of a budget optimum against the
  easy-phase prediction :math:`m^*(t) \propto (1 - t/T)^{1/(2b) - 1}` (THEORY §4,
  at :math:`\eta = \eta_{\max}`, the wall-clock optimum), a least-squares
  power-law fit of :math:`m_t` against :math:`1 - t/T` over a stated range of
  :math:`t/T`.
* :func:`momentum_study`: optimal SGD and optimal heavy-ball schedules (learning
  rate and momentum jointly, :mod:`schedopt.solvers.jax`) across horizons,
  with the fitted loss exponents and THEORY §4's predictions.

Modules: ``_problems.py`` (the budget, fixed-batch and momentum problems), ``_warm.py`` (a
solution carried to another horizon), ``_wall_clock.py``, ``_ramp.py``, ``_momentum.py`` (the
three studies).

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

from schedopt.studies.joint._momentum import MomentumStudy, momentum_study
from schedopt.studies.joint._problems import fixed_batch_problem, momentum_problem, with_sample_budget
from schedopt.studies.joint._ramp import RAMP_FIT_RANGE, RampFit, fit_batch_ramp, wall_clock_ramp
from schedopt.studies.joint._wall_clock import WallClock, fewest_steps

__all__ = [
    "RAMP_FIT_RANGE",
    "MomentumStudy",
    "RampFit",
    "WallClock",
    "fewest_steps",
    "fit_batch_ramp",
    "fixed_batch_problem",
    "momentum_problem",
    "momentum_study",
    "wall_clock_ramp",
    "with_sample_budget",
]
