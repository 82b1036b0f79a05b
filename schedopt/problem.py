"""The control problem: a model, a training setup and the controls to design.

All records are frozen dataclasses that validate at construction; arrays are
stored read-only. A :class:`Problem` is what every solver, baseline and
simulator takes.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from schedopt import _validate as v
from schedopt.errors import ProblemError

__all__ = [
    "CONTROL_NAMES",
    "GRID_KINDS",
    "PARAMETERISATIONS",
    "ControlSpec",
    "FreeOffsetFit",
    "Model",
    "NetworkUnits",
    "Problem",
    "SpecSource",
    "Training",
]

CONTROL_NAMES = ("learning_rate", "batch_size", "momentum")
GRID_KINDS = ("uniform", "geometric-end", "geometric-both", "custom")
PARAMETERISATIONS = ("linear", "constant")


@dataclass(frozen=True, eq=False)
class Model:
    r"""A linear model in the eigenbasis of its features.

    Attributes:
        eigenvalues: feature covariance spectrum :math:`\lambda_k > 0`, shape ``(N,)``.
        initial_error: mean squared weight error :math:`c_k(0) \ge 0` per mode.
        noise_variance: label-noise variance :math:`\sigma^2`.
        residual: loss :math:`R_N` of the modes the model does not keep (finite
            model size, THEORY §2.2). It is a floor on the loss and feeds the
            SGD noise like extra label noise.
        a, b: power-law exponents when the spectrum is a power law, else ``None``.
        null_modes, null_eigenvalue: a power-law model's block of modes with no
            signal (``Model.powerlaw``), the last ``null_modes`` entries of the spectrum.
    """

    eigenvalues: np.ndarray
    initial_error: np.ndarray
    noise_variance: float = 0.0
    residual: float = 0.0
    a: float | None = None
    b: float | None = None
    null_modes: int = 0
    null_eigenvalue: float | None = None

    def __post_init__(self) -> None:
        lam = v.frozen_array("eigenvalues", self.eigenvalues, positive=True)
        c0 = v.frozen_array("initial_error", self.initial_error)
        if lam.shape != c0.shape:
            raise ProblemError(
                f"`initial_error` must have the length of `eigenvalues` ({lam.size}), got {c0.size}",
                field="initial_error",
            )
        object.__setattr__(self, "eigenvalues", lam)
        object.__setattr__(self, "initial_error", c0)
        object.__setattr__(self, "noise_variance", v.nonnegative("noise_variance", self.noise_variance))
        object.__setattr__(self, "residual", v.nonnegative("residual", self.residual))
        for name in ("a", "b"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, v.positive(name, value))

    @classmethod
    def powerlaw(
        cls,
        a: float,
        b: float,
        n_modes: int,
        *,
        noise_std: float = 0.0,
        initial_loss: float | str = 1.0,
        finite_size: bool = False,
        null_modes: int = 0,
        null_eigenvalue: float | None = None,
    ) -> Model:
        r"""The power-law model :math:`\lambda_k = k^{-b}`, :math:`\lambda_k c_k(0) \propto k^{-a}`.

        Args:
            a: target exponent (> 1 so that the initial loss is finite).
            b: capacity exponent (> 1).
            n_modes: number of modes ``N`` the model keeps.
            noise_std: label-noise standard deviation :math:`\sigma`.
            initial_loss: total initial excess loss, or ``"raw"`` for the
                unnormalised :math:`c_k(0) = k^{b-a}`.
            finite_size: if true, the model is the top ``N`` modes of an infinite
                power law; the modes beyond ``N`` are frozen and their loss
                :math:`R_N = \sum_{k>N} k^{-a}` (same normalisation) is the
                residual. If false the spectrum simply ends at ``N``.
            null_modes: modes appended with eigenvalue ``null_eigenvalue`` and no
                initial error: directions the target does not use, where SGD noise
                still accumulates and relaxes only at rate ``2 eta null_eigenvalue``
                (a penalty on large learning rates that a short anneal does not
                remove; fitted to real networks by ``schedopt fit``).
            null_eigenvalue: their eigenvalue, in ``(0, 1]`` (required with ``null_modes``).
        """
        a = v.greater_than("a", a, 1.0) if finite_size else v.positive("a", a)
        b = v.positive("b", b)
        n = v.positive_int("n_modes", n_modes)
        sigma = v.nonnegative("noise_std", noise_std)
        k = np.arange(1, n + 1, dtype=np.float64)
        lam = k**-b
        power = k**-a  # lambda_k c_k(0), unnormalised
        tail = 0.0
        if finite_size:
            import scipy.special  # ~0.3 s to import: only for a finite model's tail

            tail = float(scipy.special.zeta(a, n + 1))
        if isinstance(initial_loss, str):
            if initial_loss != "raw":
                raise ProblemError(
                    f'`initial_loss` must be a positive number or "raw", got {initial_loss!r}',
                    field="initial_loss",
                )
            scale = 1.0
        else:
            total = v.positive("initial_loss", initial_loss)
            scale = total / (power.sum() + tail)
        c0 = scale * power / lam
        null_modes = v.nonnegative_int("null_modes", null_modes)
        if null_modes:
            if null_eigenvalue is None:
                raise ProblemError("`null_eigenvalue` is required with `null_modes`", field="null_eigenvalue")
            null_eigenvalue = v.positive("null_eigenvalue", null_eigenvalue)
            if null_eigenvalue > 1.0:
                raise ProblemError(
                    f"`null_eigenvalue` must be in (0, 1], got {null_eigenvalue!r}", field="null_eigenvalue"
                )
            lam = np.concatenate([lam, np.full(null_modes, null_eigenvalue)])
            c0 = np.concatenate([c0, np.zeros(null_modes)])
        else:
            null_eigenvalue = None
        return cls(
            eigenvalues=lam,
            initial_error=c0,
            noise_variance=sigma**2,
            residual=scale * tail,
            a=a,
            b=b,
            null_modes=null_modes,
            null_eigenvalue=null_eigenvalue,
        )

    @property
    def n_modes(self) -> int:
        return int(self.eigenvalues.size)

    @property
    def initial_loss(self) -> float:
        """Excess loss at step 0 of the kept modes, :math:`\\sum_k \\lambda_k c_k(0)`."""
        return float(self.eigenvalues @ self.initial_error)

    @property
    def effective_noise(self) -> float:
        """Noise that drives SGD: :math:`\\sigma^2 + R_N`."""
        return self.noise_variance + self.residual

    @property
    def is_powerlaw(self) -> bool:
        return self.a is not None and self.b is not None

    def __repr__(self) -> str:
        kind = f"powerlaw a={self.a:g} b={self.b:g}" if self.is_powerlaw else "custom"
        return (
            f"Model({kind}, n_modes={self.n_modes}, noise_variance={self.noise_variance:g}, "
            f"residual={self.residual:.3g}, initial_loss={self.initial_loss:.4g})"
        )


@dataclass(frozen=True)
class Training:
    """Fixed training settings (used where a quantity is not a control).

    Attributes:
        horizon: number of SGD steps ``T``.
        batch_size: samples per step ``m`` (>= 1).
        momentum: heavy-ball coefficient ``beta`` in [0, 1) (optax ``sgd(momentum=...)``).
    """

    horizon: int
    batch_size: float = 1.0
    momentum: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizon", v.horizon("horizon", self.horizon))  # <= MAX_HORIZON
        m = v.real("batch_size", self.batch_size)
        if m < 1:
            raise ProblemError(f"`batch_size` must be >= 1, got {self.batch_size!r}", field="batch_size")
        object.__setattr__(self, "batch_size", m)
        beta = v.nonnegative("momentum", self.momentum)
        if beta >= 1:
            raise ProblemError(f"`momentum` must be in [0, 1), got {self.momentum!r}", field="momentum")
        object.__setattr__(self, "momentum", beta)


@dataclass(frozen=True)
class ControlSpec:
    """Bounds and discretisation of one control.

    Attributes:
        name: ``learning_rate``, ``batch_size`` or ``momentum``.
        min, max: box bounds of the control's value at every step.
        blocks: number of control blocks ``K``.
        grid: placement of block edges: ``uniform``, ``geometric-end``,
            ``geometric-both`` or ``custom`` (then ``edges`` is required).
        parameterisation: ``linear`` (values at the K+1 edges, linear in between)
            or ``constant`` (one value per block).
        edges: custom block edges in steps (``0 = e_0 < ... < e_K = horizon``).
    """

    name: str
    min: float
    max: float
    blocks: int = 100
    grid: str = "uniform"
    parameterisation: str = "linear"
    edges: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        v.one_of("name", self.name, CONTROL_NAMES)
        lo = v.real("min", self.min)
        hi = v.real("max", self.max)
        if lo < 0:
            raise ProblemError(f"`min` must be >= 0, got {self.min!r}", field="min")
        if hi <= lo and hi > 0 and lo > 0:  # either bound may be the typo: name both
            raise ProblemError(
                f"`min` ({self.min!r}) must be less than `max` ({self.max!r}); one of the two is wrong",
                field="min_max",
            )
        if hi <= lo:
            raise ProblemError(f"`max` must be greater than `min` ({lo:g}), got {self.max!r}", field="max")
        if self.name == "momentum" and hi >= 1:
            raise ProblemError(f"`max` of momentum must be < 1, got {self.max!r}", field="max")
        if self.name == "batch_size" and lo < 1:
            raise ProblemError(f"`min` of batch_size must be >= 1, got {self.min!r}", field="min")
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)
        object.__setattr__(self, "blocks", v.positive_int("blocks", self.blocks))
        v.one_of("grid", self.grid, GRID_KINDS)
        v.one_of("parameterisation", self.parameterisation, PARAMETERISATIONS)
        if self.grid == "custom":
            if self.edges is None:
                raise ProblemError('`edges` is required when grid = "custom"', field="edges")
            edges = tuple(v.positive_int("edges", e) if e != 0 else 0 for e in self.edges)
            if len(edges) < 2 or edges[0] != 0 or any(b <= a for a, b in itertools.pairwise(edges)):
                raise ProblemError(
                    f"`edges` must be strictly increasing integers starting at 0, got {list(self.edges)!r}",
                    field="edges",
                )
            object.__setattr__(self, "edges", edges)
            object.__setattr__(self, "blocks", len(edges) - 1)
        elif self.edges is not None:
            raise ProblemError(
                f'`edges` is only allowed with grid = "custom", got grid = {self.grid!r}',
                field="edges",
            )


@dataclass(frozen=True)
class FreeOffsetFit:
    r"""The same pilots fitted with the irreducible loss free (``schedopt fit --offset-floor 0``).

    ``schedopt fit`` bounds the offset :math:`\ell_\infty` below (``--offset-floor``) because pilots shorter
    than the run do not identify it; but the plateau the design chooses moves with it. Where the pilots do not
    identify the offset, the fit is made again without the floor and recorded here, and ``schedopt design`` takes the larger of the two
    fits' plateaus (:mod:`schedopt.design._plateau`). Priced on the real tasks other than the one it was formed on, the
    larger plateau lost 0.27 nats less in sum than the floored fit's, and no task more than 0.02 more
    (``benchmarks/offset_hedge.py``). The learning-rate reference, pilot warmup and horizon are the fit's own.

    Attributes:
        a, b, noise_std, null_modes, null_eigenvalue: the refitted model (``null_modes`` whole modes; 0: none).
        learning_rate_scale, loss_scale, loss_offset, learning_rate_exponent: its network map.
    """

    a: float
    b: float
    noise_std: float
    null_modes: int
    null_eigenvalue: float
    learning_rate_scale: float
    loss_scale: float
    loss_offset: float
    learning_rate_exponent: float

    def __post_init__(self) -> None:
        for name in (
            "a",
            "b",
            "null_eigenvalue",
            "learning_rate_scale",
            "loss_scale",
            "learning_rate_exponent",
        ):
            object.__setattr__(self, name, v.positive(name, getattr(self, name)))
        object.__setattr__(self, "noise_std", v.nonnegative("noise_std", self.noise_std))
        object.__setattr__(self, "loss_offset", v.real("loss_offset", self.loss_offset))
        object.__setattr__(self, "null_modes", v.nonnegative_int("null_modes", self.null_modes))

    def to_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class NetworkUnits:
    r"""How a real network's learning rate and loss map onto the model's (a fitted spec).

    The model's learning rate is :math:`\eta = \kappa\,(\eta_{net}/\eta_{ref})^{p}` and
    the network's loss is :math:`\ell(t) = \ell_\infty + s\,L(t)`, where :math:`L(t)`
    is the model's loss (``schedopt fit`` estimates them). An exponent
    :math:`p < 1` says the network responds less than proportionally to its
    learning rate (measured for AdamW; see ``docs``/``schedopt.calibration.fit``).

    Attributes:
        learning_rate_scale: :math:`\kappa > 0`, model learning rate at the
            reference network learning rate.
        loss_scale: :math:`s > 0`, network loss per unit of model loss.
        loss_offset: :math:`\ell_\infty`, the network's irreducible loss.
        learning_rate_exponent: :math:`p > 0` (1: a linear map).
        learning_rate_reference: :math:`\eta_{ref} > 0`, network learning rate
            of the reference (irrelevant when ``p = 1``).
        pilot_warmup: updates of warmup the pilots ran (``schedopt fit`` reads it off
            them); ``schedopt design`` uses it when ``--warmup`` is not given.
        pilot_horizon: updates of the longest pilot (0: not known). ``schedopt design``
            says how far past it the prediction reaches, and what such predictions
            measured on real networks.
        bracketed_above: the network learning rate of the top pilot when it ended no lower
            than a pilot of its schedule at a lower rate (0: the pilots do not show it). The
            best peak is then not above it, and ``schedopt design`` does not ask for a pilot
            above its cap (:func:`schedopt.calibration._checks._bracket_above`).
        top_pilot_ahead: the network learning rate of the top pilot when it was still well ahead of the
            next lower one and the pilots do not bracket the best peak from above (0: not shown;
            :func:`schedopt.calibration._checks._top_pilot_ahead`). The loss still falls steeply there,
            so ``schedopt design`` does not put its plateau below it (within the cap).
        free_offset: the pilots fitted again with the irreducible loss free, where they did not identify it
            (:class:`FreeOffsetFit`); ``None``: not made.
    """

    learning_rate_scale: float
    loss_scale: float = 1.0
    loss_offset: float = 0.0
    learning_rate_exponent: float = 1.0
    learning_rate_reference: float = 1.0
    pilot_warmup: int = 0
    pilot_horizon: int = 0
    bracketed_above: float = 0.0
    top_pilot_ahead: float = 0.0
    free_offset: FreeOffsetFit | None = None

    def __post_init__(self) -> None:
        if self.free_offset is not None and not isinstance(self.free_offset, FreeOffsetFit):
            raise ProblemError(
                f"`free_offset` must be FreeOffsetFit, got {type(self.free_offset).__name__}",
                field="free_offset",
            )
        for name in (
            "learning_rate_scale",
            "loss_scale",
            "learning_rate_exponent",
            "learning_rate_reference",
        ):
            object.__setattr__(self, name, v.positive(name, getattr(self, name)))
        object.__setattr__(self, "loss_offset", v.real("loss_offset", self.loss_offset))
        for name in ("bracketed_above", "top_pilot_ahead"):
            given = getattr(self, name)
            rate = v.real(name, given)
            if rate < 0:
                raise ProblemError(
                    f"`{name}` must be a network learning rate >= 0 (0: not shown), got {given!r}", field=name
                )
            object.__setattr__(self, name, rate)
        for name in ("pilot_warmup", "pilot_horizon"):
            given = getattr(self, name)
            updates = v.real(name, given)
            if updates < 0 or updates != int(updates) or updates > 10**7:
                raise ProblemError(
                    f"`{name}` must be a whole number of updates in [0, 1e7], got {given!r}", field=name
                )
            object.__setattr__(self, name, int(updates))

    @property
    def linear(self) -> bool:
        return self.learning_rate_exponent == 1.0

    def network_learning_rate(self, eta):
        """The network's learning rate for a model learning rate (array or float)."""
        if self.linear:
            return eta / (self.learning_rate_scale / self.learning_rate_reference)
        return self.learning_rate_reference * (eta / self.learning_rate_scale) ** (
            1.0 / self.learning_rate_exponent
        )

    def model_learning_rate(self, network_eta):
        """The model's learning rate for a network learning rate (array or float)."""
        if self.linear:
            return (self.learning_rate_scale / self.learning_rate_reference) * network_eta
        return self.learning_rate_scale * (network_eta / self.learning_rate_reference) ** (
            self.learning_rate_exponent
        )

    def network_loss(self, loss):
        """The network's loss for a model loss (array or float)."""
        return self.loss_offset + self.loss_scale * loss

    def to_dict(self) -> dict[str, float]:
        out = {
            "learning_rate_scale": self.learning_rate_scale,
            "loss_scale": self.loss_scale,
            "loss_offset": self.loss_offset,
        }
        if not self.linear or self.learning_rate_reference != 1.0:
            out["learning_rate_exponent"] = self.learning_rate_exponent
            out["learning_rate_reference"] = self.learning_rate_reference
        if self.pilot_warmup:
            out["pilot_warmup"] = self.pilot_warmup
        if self.pilot_horizon:
            out["pilot_horizon"] = self.pilot_horizon
        if self.bracketed_above:
            out["bracketed_above"] = self.bracketed_above
        if self.top_pilot_ahead:
            out["top_pilot_ahead"] = self.top_pilot_ahead
        return out


@dataclass(frozen=True)
class SpecSource:
    """Where a problem came from: the spec file and its exact text (for provenance)."""

    path: str | None
    text: str
    sha256: str


@dataclass(frozen=True, eq=False)
class Problem:
    """A schedule-design problem: minimise the final excess loss ``L_T``.

    Attributes:
        name: short identifier (used for export folders).
        model: the model and its spectrum.
        training: horizon and the fixed values of batch size and momentum.
        controls: the controls being designed, by name; ``learning_rate`` is
            always present.
        sample_budget: total samples ``D = sum_t m_t`` when batch size is a control.
        network: the fitted map to a real network's learning rate and loss, if any.
        source: the spec the problem was read from, if any.
    """

    name: str
    model: Model
    training: Training
    controls: Mapping[str, ControlSpec] = field(default_factory=dict)
    sample_budget: float | None = None
    network: NetworkUnits | None = None
    source: SpecSource | None = None

    def __post_init__(self) -> None:
        v.file_name("name", self.name)  # it names the export folder: a plain file name
        if not isinstance(self.model, Model):
            raise ProblemError(f"`model` must be a Model, got {type(self.model).__name__}", field="model")
        if not isinstance(self.training, Training):
            raise ProblemError(
                f"`training` must be a Training, got {type(self.training).__name__}",
                field="training",
            )
        controls = dict(self.controls)
        for key, spec in controls.items():
            if not isinstance(spec, ControlSpec) or spec.name != key:
                raise ProblemError(f"`controls.{key}` must be a ControlSpec named {key!r}", field="controls")
        if "learning_rate" not in controls:
            raise ProblemError("`controls` must include `learning_rate`", field="controls")
        for spec in controls.values():
            if spec.blocks > self.training.horizon:
                raise ProblemError(
                    f"`blocks` of {spec.name} ({spec.blocks}) must not exceed the horizon "
                    f"({self.training.horizon})",
                    field="blocks",
                )
            if spec.edges is not None and spec.edges[-1] != self.training.horizon:
                raise ProblemError(
                    f"`edges` of {spec.name} must end at the horizon ({self.training.horizon}), "
                    f"got {spec.edges[-1]}",
                    field="edges",
                )
        object.__setattr__(self, "controls", MappingProxyType(controls))
        if self.sample_budget is not None:
            object.__setattr__(self, "sample_budget", v.positive("sample_budget", self.sample_budget))
        if self.network is not None and not isinstance(self.network, NetworkUnits):
            raise ProblemError(
                f"`network` must be NetworkUnits, got {type(self.network).__name__}", field="network"
            )

    @property
    def horizon(self) -> int:
        return self.training.horizon

    @property
    def learning_rate(self) -> ControlSpec:
        return self.controls["learning_rate"]

    def replace(self, **changes: object) -> Problem:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def mean_batch_size(self) -> float:
        """The mean batch size: the budget's :math:`D/T` under a sample budget, else the fixed one."""
        if self.sample_budget is None:
            return self.training.batch_size
        return self.sample_budget / self.horizon

    def with_horizon(self, horizon: int) -> Problem:
        """The same problem at another horizon, grids as they are (custom edges are not rescaled).

        :meth:`at_horizon` adapts the grids instead, for a problem carried to another horizon.
        """
        return self.replace(training=dataclasses.replace(self.training, horizon=horizon))

    def at_horizon(self, horizon: int) -> Problem:
        """The problem at another horizon, its grids adapted so that it stays valid.

        Blocks are capped at the horizon; custom block edges are rescaled in ``t/T``
        (rounded, duplicates removed).
        """
        horizon = v.positive_int("horizon", horizon)
        controls = {}
        for name, spec in self.controls.items():
            if spec.grid == "custom":
                scaled = np.round(np.asarray(spec.edges, dtype=np.float64) * horizon / self.horizon)
                edges = tuple(int(e) for e in np.unique(np.clip(scaled, 0, horizon)))
                controls[name] = dataclasses.replace(spec, edges=edges, blocks=len(edges) - 1)
            elif spec.blocks > horizon:
                controls[name] = dataclasses.replace(spec, blocks=horizon)
            else:
                controls[name] = spec
        training = dataclasses.replace(self.training, horizon=horizon)
        return self.replace(training=training, controls=controls)

    def with_control(self, name: str, **changes: object) -> Problem:
        """A copy with one control's settings changed."""
        controls = dict(self.controls)
        controls[name] = dataclasses.replace(controls[name], **changes)
        return self.replace(controls=controls)
