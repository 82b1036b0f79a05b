"""Baselines: the usual learning-rate schedule families, tuned on the same engine as the design.

- ``_families.py``: the families (constant, power law, cosine, linear, WSD linear / 1−√,
  exponential), :data:`BASELINES` and :func:`baseline_schedule`.
- ``_objective.py``: a family's final loss on a problem, batched, in scaled search coordinates.
- ``_search.py``: a generic bounded trust-region Newton search with finite-difference models.
- ``_horizon.py``: at long horizons, the search at a shorter horizon and its optima carried to ``T``.
- ``_tuning.py``: :func:`tune_baseline` / :func:`tune_baselines` (grid, local searches, faces)
  and their result :class:`TunedBaseline`.
"""

from __future__ import annotations

from schedopt.baselines._families import (
    BASELINES,
    BaselineFamily,
    Constant,
    Cosine,
    Exponential,
    Linear,
    Parameter,
    PowerLaw,
    WSDLinear,
    WSDSqrt,
    baseline_schedule,
)
from schedopt.baselines._tuning import TunedBaseline, tune_baseline, tune_baselines

__all__ = [
    "BASELINES",
    "BaselineFamily",
    "Constant",
    "Cosine",
    "Exponential",
    "Linear",
    "Parameter",
    "PowerLaw",
    "TunedBaseline",
    "WSDLinear",
    "WSDSqrt",
    "baseline_schedule",
    "tune_baseline",
    "tune_baselines",
]
