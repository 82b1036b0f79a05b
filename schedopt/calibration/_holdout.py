"""Which measurements :func:`~schedopt.calibration.fit.fit_pilots` holds out, and how well they are predicted.

``holdout`` names a pilot, or ``"auto"`` takes the last of three or more; ``"tail"``, ``"auto"``
with fewer pilots, or ``"auto"`` when the others cannot identify the learning-rate scale hold out
the last quarter of every curve instead. The model is fitted without the held-out measurements and
scored on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from schedopt.calibration._model import _run_index
from schedopt.calibration._solve import _check_identifiable, _relative_rms, _solve
from schedopt.calibration.pilots import PilotRun
from schedopt.errors import FitError


def _held_out(runs: Sequence[PilotRun], holdout: str, fixed_kappa) -> tuple[str, str, np.ndarray] | None:
    """``(kind, description, mask of held-out measurements)`` or ``None`` for no holdout."""
    if holdout == "none":
        return None
    names = [r.name for r in runs]
    owner = _run_index(runs)
    target = None
    if holdout not in ("auto", "tail"):
        if holdout not in names:
            raise FitError(f"--holdout: {holdout!r} is not one of the pilots ({', '.join(names)})")
        target = names.index(holdout)
    elif holdout == "auto" and len(runs) >= 3:
        target = len(runs) - 1
    if target is not None:
        rest = [r for i, r in enumerate(runs) if i != target]
        if not rest:
            raise FitError("--holdout: holding out the only pilot leaves nothing to fit")
        try:
            _check_identifiable(rest, fixed_kappa)
            return "run", names[target], owner == target
        except FitError:
            if holdout not in ("auto", "tail"):
                raise
    mask = []
    for run in runs:
        cut = int(math.ceil(0.75 * run.losses.size))
        if cut < 5 or run.losses.size - cut < 1:
            raise FitError(
                f"{run.name}: too few loss points to hold out the last quarter (use --holdout none)"
            )
        mask.append(np.arange(run.losses.size) >= cut)
    return "tail", "last quarter of every pilot", np.concatenate(mask)


def _holdout(runs, holdout, layout, fixed_kappa, max_lr, early) -> dict[str, Any] | None:
    split = _held_out(runs, holdout, fixed_kappa)
    if split is None:
        return None
    kind, description, mask = split
    solve = _solve(runs, layout, fixed_kappa, max_lr, held_out=mask | early)
    rms, by_run = _relative_rms(solve, runs, mask & ~early)
    return {"kind": kind, "held_out": description, "rms_error": rms, "by_run": by_run}
