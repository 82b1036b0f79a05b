r"""What the theory predicts, and fits that measure it.

Phases (THEORY §4): *easy* when :math:`a > b`, *hard* when :math:`b > a`,
*boundary* when equal. The predicted exponents are asymptotic in the horizon
:math:`T`; measured ones at :math:`T \le 10^4` are pre-asymptotic, so every fit
reports its range and residual.

References:
    B. Bordelon and N. Mori, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from schedopt.errors import ProblemError
from schedopt.problem import Model

__all__ = [
    "PHASE_TOLERANCE",
    "PowerLawFit",
    "anneal_fraction",
    "estimate_exponents",
    "fit_power_law",
    "phase",
    "plateau_height",
    "predicted_exponents",
]

#: |a - b| below this counts as the boundary a = b.
PHASE_TOLERANCE = 1e-9


def estimate_exponents(model: Model) -> tuple[float, float]:
    r"""``(a, b)`` of a model: exact for power laws, a log-log fit for custom spectra.

    For a custom spectrum, :math:`b` is fitted to :math:`\log\lambda_k` and
    :math:`a` to :math:`\log(\lambda_k c_k(0))` against :math:`\log k` over the
    modes with non-zero initial error.
    """
    if model.is_powerlaw:
        return float(model.a), float(model.b)
    k = np.arange(1, model.n_modes + 1, dtype=np.float64)
    if model.n_modes < 3:
        raise ProblemError(
            "a custom spectrum needs at least 3 modes to estimate exponents", field="eigenvalues"
        )
    lam = model.eigenvalues
    order = np.argsort(-lam)
    power = (lam * model.initial_error)[order]
    b = -fit_power_law(k, lam[order]).exponent
    keep = power > 0
    if keep.sum() < 3:
        raise ProblemError("a custom spectrum needs initial error on at least 3 modes", field="initial_error")
    a = -fit_power_law(k[keep], power[keep]).exponent
    return float(a), float(b)


def phase(model: Model) -> str:
    """``"easy"`` (a > b), ``"hard"`` (b > a) or ``"boundary"`` (a = b)."""
    a, b = estimate_exponents(model)
    if abs(a - b) <= PHASE_TOLERANCE * max(a, b):
        return "boundary"
    return "easy" if a > b else "hard"


def predicted_exponents(a: float, b: float) -> dict[str, float | None]:
    r"""THEORY §4's predictions; ``None`` where the theory makes none for this phase.

    Keys (all positive numbers are decay exponents in ``T`` or ``C``):

    * ``xi``: optimal peak learning rate :math:`\propto T^{-\xi}` (easy: :math:`1 - b/a`; hard: 0);
    * ``delta``: easy-phase shape :math:`(1 - t/T)^\delta`, :math:`\delta = 2b - 1`;
    * ``loss_optimal``: :math:`L_T \sim T^{-(a-1)/a}` (easy) or :math:`T^{-(a-1)/b}` (hard);
    * ``loss_constant``: best constant (and best power law): :math:`(a-1)/(a-1+b)`;
    * ``constant_lr``: best constant learning rate :math:`\sim T^{-(a-1)/(a-1+b)}`;
    * ``anneal_fraction``: hard phase, :math:`(b-a)/(b-1)`;
    * ``batch_ramp``: wall-clock batch ramp :math:`m^*(t) \propto (1-t/T)^{1/(2b)-1}` (easy);
    * ``model_size``, ``loss_compute``: compute-optimal :math:`N^* \sim C^{1/(\max(a,b)+1)}`,
      :math:`L^* \sim C^{-(a-1)/(\max(a,b)+1)}`.
    """
    boundary = abs(a - b) <= PHASE_TOLERANCE * max(a, b)
    easy = a > b and not boundary
    hard = b > a and not boundary
    top = max(a, b)
    return {
        "xi": (1.0 - b / a) if easy else 0.0,
        "delta": (2.0 * b - 1.0) if easy else None,
        "loss_optimal": (a - 1.0) / a if not hard else (a - 1.0) / b,
        "loss_constant": (a - 1.0) / (a - 1.0 + b),
        "constant_lr": (a - 1.0) / (a - 1.0 + b),
        "anneal_fraction": (b - a) / (b - 1.0) if hard and b > 1 else None,
        "batch_ramp": 1.0 / (2.0 * b) - 1.0 if easy else None,
        "model_size": 1.0 / (top + 1.0),
        "loss_compute": (a - 1.0) / (top + 1.0),
    }


@dataclass(frozen=True)
class PowerLawFit:
    """A least-squares fit :math:`y = c\\,x^{p}` in log-log space.

    Attributes:
        exponent: :math:`p`.
        prefactor: :math:`c`.
        residual: root-mean-square residual of :math:`\\log y`.
        stderr: standard error of the exponent (``nan`` with two points).
        x_min, x_max: fit range.
        points: number of points.
    """

    exponent: float
    prefactor: float
    residual: float
    stderr: float
    x_min: float
    x_max: float
    points: int

    def to_dict(self) -> dict:
        return asdict(self)


def fit_power_law(x, y) -> PowerLawFit:
    """Fit :math:`y = c x^p` by least squares on logs (positive finite data only)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if keep.sum() < 2:
        raise ProblemError(
            f"a power-law fit needs at least 2 positive points, got {int(keep.sum())}", field="data"
        )
    lx, ly = np.log(x[keep]), np.log(y[keep])
    design = np.stack([lx, np.ones_like(lx)], axis=1)
    coef, *_ = np.linalg.lstsq(design, ly, rcond=None)
    resid = ly - design @ coef
    n = lx.size
    if n > 2:
        sigma2 = float(resid @ resid) / (n - 2)
        cov = sigma2 * np.linalg.inv(design.T @ design)
        stderr = float(np.sqrt(cov[0, 0]))
    else:
        stderr = float("nan")
    return PowerLawFit(
        exponent=float(coef[0]),
        prefactor=float(np.exp(coef[1])),
        residual=float(np.sqrt(np.mean(resid**2))),
        stderr=stderr,
        x_min=float(x[keep].min()),
        x_max=float(x[keep].max()),
        points=int(n),
    )


def plateau_height(learning_rate, *, window: tuple[float, float] = (0.1, 0.5)) -> float:
    """Median learning rate over a window of the horizon (default 10 %–50 %): the plateau."""
    lr = np.asarray(learning_rate, dtype=np.float64)
    t = (np.arange(lr.size) + 0.5) / lr.size
    sel = (t >= window[0]) & (t <= window[1])
    return float(np.median(lr[sel] if sel.any() else lr))


def anneal_fraction(learning_rate, *, level: float = 0.5) -> float:
    """Fraction of the horizon after the learning rate last stood at ``level`` x its plateau."""
    lr = np.asarray(learning_rate, dtype=np.float64)
    plateau = plateau_height(lr)
    above = np.flatnonzero(lr >= level * plateau)
    if above.size == 0:
        return 1.0
    return float((lr.size - 1 - above[-1]) / lr.size)
