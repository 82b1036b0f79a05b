r"""The continuous-time SGD model (THEORY §2.4), solved by an exponential integrator on a geometric time grid.

One optimiser step is one unit of time: :math:`dc_k/dt = -r_k(t)\,c_k + f_k(t)` with
:math:`r_k = 2\eta\lambda_k - (1+\tfrac1m)\eta^2\lambda_k^2` and
:math:`f_k = \tfrac{\eta^2}{m}\lambda_k (L + \sigma^2)`, the right-hand side of
:func:`schedopt.dynamics.sgd.sgd_parts`. A step costs :math:`O(N)` whatever :math:`T`, so the
ODE reaches horizons the recursion cannot; ``benchmarks/README.md`` measures where it is
faithful to the recursion (final losses: closely; the first steps: not).

- ``_field.py``: the vector field and the moments of its exponential kernel; ``form="plain"``
  (THEORY's ODE) or ``"matched"`` (a constant-:math:`\eta` interval decays each mode exactly
  by the recursion's factor).
- ``_integrator.py``: the exponential integrator (``solver="exponential"``, default; also a
  ``diffrax.AbstractSolver``). ``solver="tsit5"`` is diffrax's explicit reference.
- ``_grid.py``: :func:`time_grid` (block edges, sub-steps, geometric refinement at both ends).
- ``_jax.py``: :func:`loss_at_jax` / :func:`final_loss_jax` (jit-, grad- and vmap-safe).
- ``_solve.py``: :func:`solve` / :func:`final_loss` (NumPy in, a ``Model`` and a grid or per-step values).

References:
    M. Hochbruck and A. Ostermann, *Exponential integrators*, Acta Numerica 19 (2010) 209–286.
"""

from __future__ import annotations

from schedopt.dynamics.ode._field import FORMS, OdeArgs, SGDField
from schedopt.dynamics.ode._grid import FIRST_STEP, GROWTH, SUBSTEPS, pad_grid, time_grid
from schedopt.dynamics.ode._integrator import ExponentialIntegrator
from schedopt.dynamics.ode._jax import INTEGRATORS, final_loss_jax, loss_at_jax
from schedopt.dynamics.ode._solve import OdeSolution, final_loss, solve

__all__ = [
    "FIRST_STEP",
    "FORMS",
    "GROWTH",
    "INTEGRATORS",
    "SUBSTEPS",
    "ExponentialIntegrator",
    "OdeArgs",
    "OdeSolution",
    "SGDField",
    "final_loss",
    "final_loss_jax",
    "loss_at_jax",
    "pad_grid",
    "solve",
    "time_grid",
]
