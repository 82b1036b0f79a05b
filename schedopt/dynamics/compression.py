r"""Mode compression: the spectrum as a Gauss quadrature in :math:`\log\lambda`.

The modes of the SGD recursion are coupled only through the scalar loss
:math:`L_t = \sum_k \lambda_k c_{t,k}`. Given the learning-rate path, each mode's error is
the same function of its eigenvalue, :math:`c_{t,k} = c_k(0)\,P_t(\lambda_k) + Q_t(\lambda_k)`
(:math:`P_t` the product of the per-step decays, :math:`Q_t` the accumulated noise), so the
loss is a *sum over the spectrum* of smooth functions of :math:`u = \log\lambda`:

.. math::  L_t = \sum_k \lambda_k c_k(0) P_t(\lambda_k) + \sum_k \lambda_k Q_t(\lambda_k).

A quadrature of that sum with :math:`n \ll N` nodes, each node standing for
:math:`\omega_j` modes, is a model with :math:`n` modes whose loss readout is
:math:`\sum_j \omega_j \lambda_j c_j` (the ``loss_weights`` :math:`\omega_j\lambda_j` of
:func:`schedopt.dynamics.sgd.sgd_parts`); every node is driven by the same noise
:math:`\frac{\eta^2}{m}\lambda_j (L + \sigma^2)` as a real mode.

**Construction** (:func:`compress_modes`). The ``exact`` largest eigenvalues (the fast modes,
far apart in :math:`u`, where :math:`\eta\lambda` is of order one) stay modes of their own.
The rest, the *tail*, is replaced by the ``nodes``-point Gauss quadrature of its discrete
counting measure :math:`\sum_k \delta(u - u_k)` (Golub-Welsch: Lanczos on
:math:`\mathrm{diag}(u)` with full reorthogonalisation, then the Jacobi matrix's
eigen-decomposition). It integrates polynomials of degree :math:`2n - 1` in :math:`u`
exactly, and :math:`e^{-2\lambda\tau}`-like functions of :math:`u` are analytic and bounded
in the strip :math:`|\Im u| < \pi/2`, so the error falls geometrically with :math:`n`. The
initial error at the nodes is the least-squares projection of :math:`c_k(0)` on polynomials
of degree :math:`< n` in :math:`u` (weighted by the counting measure), so the initial-error
part is exact for the same smooth integrands whatever :math:`c(0)` looks like (a rough custom
initial error may give a node a negative value; the sums stay right). Modes with equal
eigenvalues are merged exactly first.

The defaults (:data:`EXACT_MODES` + :data:`QUADRATURE_NODES` = 32 + 96 modes) reproduce final
losses to ~1e-12 relative (``tests/test_compression.py`` checks 1e-10; measurements in
``benchmarks/README.md``). Solvers that run on the compressed
spectrum check their result on the full one (``modes`` in :mod:`schedopt.solvers.jax`).

References:
    G. H. Golub and J. H. Welsch, Calculation of Gauss quadrature rules, Math. Comp. 23 (1969).
    B. Bordelon and N. Mori, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schedopt import _validate as v
from schedopt.errors import ProblemError

__all__ = [
    "EXACT_MODES",
    "QUADRATURE_NODES",
    "CompressedModes",
    "auto_compress",
    "compress_modes",
    "spectrum",
    "worth_compressing",
]

#: Largest eigenvalues kept as modes of their own.
EXACT_MODES = 32
#: Gauss nodes standing for the remaining modes.
QUADRATURE_NODES = 96
#: Lanczos stops when the next off-diagonal falls below this (relative): the measure has fewer points.
_BREAKDOWN = 1e-12


@dataclass(frozen=True, eq=False)
class CompressedModes:
    r"""A spectrum of ``n`` nodes standing for ``source_modes`` modes.

    Attributes:
        eigenvalues: node eigenvalues :math:`\lambda_j > 0`, descending, ``(n,)``.
        multiplicity: modes each node stands for, :math:`\omega_j > 0` (1 for an exact mode).
        initial_error: initial error per mode at each node, :math:`c_j(0)`.
        exact: how many leading nodes are modes of the source spectrum, unchanged.
        source_modes: ``N``, the number of modes of the source spectrum.
    """

    eigenvalues: np.ndarray
    multiplicity: np.ndarray
    initial_error: np.ndarray
    exact: int
    source_modes: int

    def __post_init__(self) -> None:
        lam = v.frozen_array("eigenvalues", self.eigenvalues, positive=True)
        weight = v.frozen_array("multiplicity", self.multiplicity, positive=True)
        c0 = np.array(self.initial_error, dtype=np.float64)
        if not (lam.shape == weight.shape == c0.shape) or not np.all(np.isfinite(c0)):
            raise ProblemError(
                "`multiplicity` and `initial_error` must be finite and of the length of `eigenvalues` "
                f"({lam.size}), got {weight.size} and {c0.size}",
                field="multiplicity",
            )
        c0.setflags(write=False)
        object.__setattr__(self, "eigenvalues", lam)
        object.__setattr__(self, "multiplicity", weight)
        object.__setattr__(self, "initial_error", c0)

    @property
    def n_modes(self) -> int:
        return int(self.eigenvalues.size)

    @property
    def loss_weights(self) -> np.ndarray:
        r"""The loss readout :math:`\omega_j \lambda_j`: :math:`L = \sum_j \omega_j \lambda_j c_j`."""
        return self.multiplicity * self.eigenvalues

    @property
    def initial_loss(self) -> float:
        return float(self.loss_weights @ self.initial_error)

    def describe(self) -> dict:
        return {"n_modes": self.n_modes, "exact_modes": self.exact, "source_modes": self.source_modes}


def spectrum(model, modes: CompressedModes | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(eigenvalues, initial error, loss readout)`` the dynamics run on: ``modes`` when given, with
    their readout :attr:`CompressedModes.loss_weights`, else the model's own modes and ``None``
    (the readout is then the eigenvalues). The one place a compressed spectrum is unpacked."""
    if modes is None:
        return model.eigenvalues, model.initial_error, None
    return modes.eigenvalues, modes.initial_error, modes.loss_weights


def _merge_equal(lam: np.ndarray, c0: np.ndarray):
    """Modes with equal eigenvalues as one (exact): descending eigenvalues, counts, mean initial errors."""
    values, inverse, counts = np.unique(-lam, return_inverse=True, return_counts=True)
    total = np.bincount(inverse, weights=c0, minlength=values.size)
    return -values, counts.astype(np.float64), total / counts


def _lanczos(x: np.ndarray, weight: np.ndarray, steps: int):
    """Jacobi matrix ``(alpha, beta)`` of the measure :math:`\\sum_k w_k \\delta(x - x_k)` and its basis."""
    basis = np.zeros((x.size, steps))
    alpha, beta = np.zeros(steps), np.zeros(steps)
    q = np.sqrt(weight) / np.sqrt(weight.sum())
    for j in range(steps):
        basis[:, j] = q
        alpha[j] = q @ (x * q)
        r = x * q - alpha[j] * q - (beta[j - 1] * basis[:, j - 1] if j else 0.0)
        for _ in range(2):  # full reorthogonalisation, twice is enough
            r -= basis[:, : j + 1] @ (basis[:, : j + 1].T @ r)
        beta[j] = np.linalg.norm(r)
        if beta[j] <= _BREAKDOWN * max(1.0, np.abs(x).max()):
            return alpha[: j + 1], beta[:j], basis[:, : j + 1]
        q = r / beta[j]
    return alpha, beta[:-1], basis


def compress_modes(
    eigenvalues, initial_error, *, exact: int = EXACT_MODES, nodes: int = QUADRATURE_NODES
) -> CompressedModes:
    r"""The spectrum as ``exact`` modes plus a ``nodes``-point Gauss quadrature of the rest (module docstring).

    A spectrum with at most ``exact + nodes`` distinct eigenvalues is returned exactly
    (equal eigenvalues merged).

    Args:
        eigenvalues: :math:`\lambda_k > 0`, ``(N,)``.
        initial_error: :math:`c_k(0)`, ``(N,)``.
        exact: largest eigenvalues kept as modes (>= 0).
        nodes: quadrature nodes for the rest (>= 1).
    """
    lam = v.frozen_array("eigenvalues", eigenvalues, positive=True)
    c0 = v.frozen_array("initial_error", initial_error)
    if lam.shape != c0.shape:
        raise ProblemError(
            f"`initial_error` must have the length of `eigenvalues` ({lam.size}), got {c0.size}",
            field="initial_error",
        )
    exact = v.nonnegative_int("exact", exact)
    nodes = v.positive_int("nodes", nodes)
    lam_d, count, c0_d = _merge_equal(lam, c0)
    if lam_d.size <= exact + nodes:
        return CompressedModes(lam_d, count, c0_d, exact=lam_d.size, source_modes=lam.size)
    u = np.log(lam_d[exact:])
    centre, half = 0.5 * (u[0] + u[-1]), 0.5 * (u[0] - u[-1])
    x = (u - centre) / half  # in [-1, 1]: a well-conditioned Jacobi matrix
    weight = count[exact:]
    alpha, beta, basis = _lanczos(x, weight, nodes)
    theta, vectors = np.linalg.eigh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
    mass = weight.sum()
    omega = mass * vectors[0] ** 2
    # orthonormal polynomials p_i: at the data basis[:, i] / sqrt(w), at the nodes V[i, j] / (V[0, j] sqrt(mass))
    coefficients = (weight * c0_d[exact:]) @ (basis / np.sqrt(weight)[:, None])
    c0_nodes = coefficients @ (vectors / (vectors[0][None, :] * np.sqrt(mass)))
    order = np.argsort(-theta)
    return CompressedModes(
        eigenvalues=np.concatenate([lam_d[:exact], np.exp(centre + half * theta[order])]),
        multiplicity=np.concatenate([count[:exact], omega[order]]),
        initial_error=np.concatenate([c0_d[:exact], c0_nodes[order]]),
        exact=exact,
        source_modes=lam.size,
    )


def worth_compressing(n_modes: int, *, exact: int = EXACT_MODES, nodes: int = QUADRATURE_NODES) -> bool:
    """Whether ``auto`` compresses a spectrum of ``n_modes``: more than twice the compressed size.

    Below that the recursion's cost hardly changes (its steps are latency-bound at a few
    hundred modes) and the exact spectrum is kept.
    """
    return n_modes > 2 * (exact + nodes)


def auto_compress(
    eigenvalues, initial_error, *, exact: int = EXACT_MODES, nodes: int = QUADRATURE_NODES
) -> CompressedModes | None:
    """:func:`compress_modes` where :func:`worth_compressing` says so and it removes modes, else ``None``."""
    eigenvalues = np.asarray(eigenvalues)
    if not worth_compressing(eigenvalues.size, exact=exact, nodes=nodes):
        return None
    modes = compress_modes(eigenvalues, initial_error, exact=exact, nodes=nodes)
    return modes if modes.n_modes < eigenvalues.size else None
