"""Numbers the theory predicts (THEORY §4), measured with the solvers across horizons.

These are asymptotic statements measured at T <= 1e4, so tolerances are those of
the issue, and each test says what it measures.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import PROBLEMS

import schedopt
from schedopt.problem import Model
from schedopt.studies.phase import study_horizons
from schedopt.theory import predicted_exponents

#: |measured xi - (1 - b/a)| allowed over T in [1e2, 1e4] (issue 3).
XI_TOLERANCE = 0.1
#: Allowed relative change of the hard-phase plateau over one decade of T (issue 3).
PLATEAU_CHANGE = 0.10


def _shrunk(name: str, n_modes: int, blocks: int):
    problem = schedopt.load_problem(PROBLEMS / f"{name}.toml")
    m = problem.model
    model = Model.powerlaw(m.a, m.b, n_modes, noise_std=np.sqrt(m.noise_variance), finite_size=m.residual > 0)
    cap = 0.9 * schedopt.stability_threshold(model, problem.training.batch_size)
    problem = problem.replace(model=model).with_control("learning_rate", blocks=blocks, max=cap)
    return problem


@pytest.mark.slow
def test_easy_phase_xi_and_loss_exponent():
    problem = _shrunk("easy-phase", n_modes=1000, blocks=40)
    study = study_horizons(problem, [100, 1000, 10000])
    measured = study.measured()
    predicted = predicted_exponents(problem.model.a, problem.model.b)
    assert all(s.converged for s in study.solutions)
    assert abs(measured["xi"] - predicted["xi"]) < XI_TOLERANCE
    # the optimal schedule's loss decays faster than the best constant's
    assert measured["loss_optimal"] > measured["loss_constant"]


@pytest.mark.slow
def test_hard_phase_plateau_is_flat_while_anneal_fraction_falls():
    problem = _shrunk("hard-phase", n_modes=1000, blocks=40)
    study = study_horizons(problem, [1000, 10000])
    rows = study.table()
    plateau = [r["plateau_lr"] for r in rows]
    anneal = [r["anneal_fraction"] for r in rows]
    assert all(s.converged for s in study.solutions)
    assert abs(plateau[1] / plateau[0] - 1.0) < PLATEAU_CHANGE
    assert anneal[1] < anneal[0]
