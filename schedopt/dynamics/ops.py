"""Array namespaces for the step functions.

Each right-hand side in :mod:`schedopt.dynamics` is plain arithmetic (``+ - * /``
and ``**``) on arrays plus the few reductions named here, so the *same*
function builds a JAX computation, a NumPy one, or a CasADi expression graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CASADI", "JAX", "NUMPY", "Ops"]


@dataclass(frozen=True)
class Ops:
    """The operations a step function may use beyond arithmetic."""

    name: str
    sum: Callable[[Any], Any]  # sum of a vector's entries (a scalar)


NUMPY = Ops(name="numpy", sum=np.sum)


def _jax_sum(x):
    import jax.numpy as jnp

    return jnp.sum(x, axis=-1)


JAX = Ops(name="jax", sum=_jax_sum)


def _casadi_sum(x):
    import casadi

    return casadi.sum1(x)


CASADI = Ops(name="casadi", sum=_casadi_sum)
