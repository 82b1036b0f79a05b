"""JAX set-up shared by every module that uses JAX: float64 on.

schedopt's dynamics span losses from 1 down to 1e-12 and need float64
(ARCHITECTURE: "float64 everywhere in solvers and dynamics"). Importing this
module (every schedopt module that runs JAX does, so the first use of such a function
does; ``import schedopt`` alone loads no JAX) therefore turns on ``jax_enable_x64`` for
the process; code that wants float32 (a training loop) passes explicit dtypes.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

__all__ = ["jax"]
