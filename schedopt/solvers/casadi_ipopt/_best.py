"""An IPOPT iteration callback that keeps the best feasible iterate (IPOPT returns its last)."""

from __future__ import annotations

import math

import numpy as np

from schedopt.solvers.casadi_ipopt._options import _casadi


def _best_iterate_callback(nx: int, ng: int, budget_tol: float):
    """An IPOPT iteration callback that keeps the iterate with the lowest objective.

    Iterates that violate the (linear) constraints by more than ``budget_tol`` are skipped.
    """
    ca = _casadi()

    class BestIterate(ca.Callback):
        def __init__(self):
            ca.Callback.__init__(self)
            self.best_f = math.inf
            self.best_x: np.ndarray | None = None
            self.count = 0
            self.construct("best_iterate", {})

        def get_n_in(self):
            return ca.nlpsol_n_out()

        def get_n_out(self):
            return 1

        def get_name_in(self, i):
            return ca.nlpsol_out(i)

        def get_name_out(self, i):
            return "ret"

        def get_sparsity_in(self, i):
            name = ca.nlpsol_out(i)
            if name == "f":
                return ca.Sparsity.scalar()
            if name in ("x", "lam_x"):
                return ca.Sparsity.dense(nx)
            if name in ("g", "lam_g"):
                return ca.Sparsity.dense(ng)
            return ca.Sparsity(0, 0)

        def eval(self, arg):
            self.count += 1
            f = float(arg[ca.nlpsol_out().index("f")])
            g = np.asarray(arg[ca.nlpsol_out().index("g")], dtype=np.float64).ravel()
            if math.isfinite(f) and f < self.best_f and (g.size == 0 or np.all(np.abs(g) <= budget_tol)):
                self.best_f = f
                self.best_x = np.asarray(arg[ca.nlpsol_out().index("x")], dtype=np.float64).ravel().copy()
            return [0]

    return BestIterate()
