r"""The schedule record: step-indexed control values with provenance (JSON ``schema_version`` 1).

The dictionary form (:meth:`Schedule.to_dict`) is the file format, read and written by
:mod:`schedopt.schedule._files`::

    {
      "schema_version": 1,
      "kind": "schedopt.schedule",
      "step_units": "optimizer steps; step 0 is the first update (optax count)",
      "horizon": T,
      "units": {"learning_rate": "model" | "network", ...},
      "learning_rate": [T floats],
      "model_learning_rate": [T floats],   (fitted schedules only; see Units)
      "batch_size": [T floats] | null,
      "momentum": [T floats] | null,
      "provenance": {schedopt_version, created, problem, spec_sha256, spec, solver,
                     status, converged, final_loss, grids, ..., values_sha256}
    }

The CSV twin has the columns ``step,learning_rate[,batch_size][,momentum]`` (see
**Units** for a schedule whose unit is known).
Floats are written with ``repr`` precision, so a JSON round trip is exact.

**Units.** A schedule designed from a fitted spec (``schedopt fit``, a
``[network]`` table) is computed in the model's learning rate :math:`\eta` and
records the map in ``provenance.network`` (``learning_rate_scale`` :math:`\kappa`,
``loss_scale``, ``loss_offset``, ...). Its files show the **network's** learning
rate by default, the unit a person trains with, and keep the model's alongside:

* JSON: ``"learning_rate"`` holds the network's values, ``"model_learning_rate"``
  the model's, and ``"units"`` names the unit of each key
  (``{"learning_rate": "network", "model_learning_rate": "model"}``);
* CSV (which has no place for a label): the header names each column's unit,
  ``step,network_learning_rate,model_learning_rate[,...]``.

A file without a map says ``"units": {"learning_rate": "network"}`` in JSON and has the
CSV column ``network_learning_rate`` (an export, :meth:`Schedule.for_network`, a
``pilots`` or ``recommend`` schedule), or JSON ``"model"`` and CSV ``model_learning_rate``
when the schedule records the model's units; a bare CSV ``learning_rate`` column (a
design on a model problem, where the model's is the only unit, or a hand-written file)
states no unit. So the CSV columns ``network_learning_rate`` and ``model_learning_rate``
mean the same in every file schedopt writes or reads, and JSON's ``learning_rate`` is
always the learning rate to train with (``units`` names which). Files written before
read as before: JSON ``learning_rate`` with ``provenance.network`` and no
``model_learning_rate`` is the model's; a CSV ``learning_rate,model_learning_rate`` pair
is (network, model) and a ``learning_rate,network_learning_rate`` pair (model, network).
In Python,
``Schedule.learning_rate`` is always the unit :attr:`Schedule.learning_rate_units`
names (``"model"`` whenever a map is known); ``for_network()`` converts.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real
from types import MappingProxyType
from typing import Any

import numpy as np

from schedopt._io import json_text
from schedopt.errors import ExportError, ProblemError
from schedopt.problem import NetworkUnits

__all__ = [
    "SCHEDULE_SCHEMA_VERSION",
    "STEP_UNITS",
    "Schedule",
    "schedule_from_solution",
    "values_sha256",
]

SCHEDULE_SCHEMA_VERSION = 1
STEP_UNITS = "optimizer steps; step 0 is the first update (optax count)"
_CONTROLS = ("learning_rate", "batch_size", "momentum")
_NETWORK_COLUMN = "network_learning_rate"  # a CSV's column of the network's learning rate
_MODEL_COLUMN = "model_learning_rate"
#: Agreement required between a file's network and model learning rates and its map.
_UNITS_RTOL = 1e-9
UNITS = ("model", "network")


def _network_units(value: Any) -> NetworkUnits | None:
    """``provenance.network`` as a validated record (``None`` when absent)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ExportError(f"provenance.network: must be an object, got {type(value).__name__}")
    known = {
        "learning_rate_scale",
        "loss_scale",
        "loss_offset",
        "learning_rate_exponent",
        "learning_rate_reference",
        "pilot_warmup",
        "pilot_horizon",
        "bracketed_above",
        "top_pilot_ahead",
    }
    unknown = sorted(set(value) - known, key=str)
    if unknown:
        raise ExportError(f"provenance.network.{unknown[0]}: unknown key")
    try:
        return NetworkUnits(**value)
    except (ProblemError, TypeError) as exc:
        raise ExportError(f"provenance.network: {exc}") from None


def _control_array(name: str, value: Any, horizon: int | None) -> np.ndarray:
    if isinstance(value, list | tuple):
        bad = next((x for x in value if isinstance(x, bool) or not isinstance(x, Real)), None)
        if bad is not None:
            raise ExportError(f"`{name}` must be a list of numbers, got {bad!r}")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ExportError(f"`{name}` must be a list of finite numbers") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ExportError(f"`{name}` must be a non-empty list of numbers, got shape {arr.shape}")
    if horizon is not None and arr.size != horizon:
        raise ExportError(f"`{name}` must have one value per step ({horizon}), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ExportError(f"`{name}` must be finite, got {arr[i]!r} at step {i}")
    lower = {"learning_rate": 0.0, "batch_size": 1.0, "momentum": 0.0}[name]
    if np.any(arr < lower):
        i = int(np.flatnonzero(arr < lower)[0])
        raise ExportError(f"`{name}` must be >= {lower:g}, got {arr[i]!r} at step {i}")
    if name == "momentum" and np.any(arr >= 1):
        i = int(np.flatnonzero(arr >= 1)[0])
        raise ExportError(f"`momentum` must be < 1, got {arr[i]!r} at step {i}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Schedule:
    """Per-step control values (``t = 0..T-1``) and where they came from.

    Attributes:
        learning_rate: ``(T,)`` learning rates.
        batch_size: ``(T,)`` batch sizes or ``None`` (fixed, see provenance).
        momentum: ``(T,)`` heavy-ball coefficients or ``None``.
        provenance: JSON-ready facts: schedopt version, spec hash and text, solver,
            status, final loss, creation time.
    """

    learning_rate: np.ndarray
    batch_size: np.ndarray | None = None
    momentum: np.ndarray | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lr = _control_array("learning_rate", self.learning_rate, None)
        object.__setattr__(self, "learning_rate", lr)
        for name in ("batch_size", "momentum"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _control_array(name, value, lr.size))
        if not isinstance(self.provenance, Mapping):
            raise ExportError("`provenance` must be a mapping")
        _network_units(self.provenance.get("network"))
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))

    @property
    def network(self) -> NetworkUnits | None:
        """The fitted map to a real network's learning rate and loss, if the schedule has one."""
        return _network_units(self.provenance.get("network"))

    def for_network(self) -> Schedule:
        r"""The schedule in the network's learning-rate units (itself when it has no network map).

        The result's ``learning_rate`` is :math:`\eta/\kappa`; its provenance
        keeps the map under ``network_units`` (not ``network``, so converting
        twice is a no-op).
        """
        units = self.network
        if units is None:
            return self
        provenance = {k: v for k, v in self.provenance.items() if k != "network"}
        provenance["network_units"] = units.to_dict()
        provenance["learning_rate_units"] = "network (model learning rate / learning_rate_scale)"
        return Schedule(
            learning_rate=units.network_learning_rate(self.learning_rate),
            batch_size=self.batch_size,
            momentum=self.momentum,
            provenance=provenance,
        )

    @property
    def learning_rate_units(self) -> str | None:
        """``"model"``, ``"network"`` or ``None`` (not recorded: a bare CSV, a baseline text).

        A schedule with a network map holds the model's learning rate (``"model"``).
        """
        if self.network is not None:
            return "model"
        units = self.provenance.get("learning_rate_units")
        if isinstance(units, str):
            for name in UNITS:
                if units == name or units.startswith(name + " "):
                    return name
        return None

    def network_learning_rate(self) -> np.ndarray | None:
        """The network's learning rate at every step, when this schedule can tell it."""
        if self.network is not None:
            return self.network.network_learning_rate(self.learning_rate)
        if self.learning_rate_units == "network":
            return self.learning_rate
        return None

    @property
    def horizon(self) -> int:
        return int(self.learning_rate.size)

    @property
    def converged(self) -> bool:
        return self.provenance.get("converged", True) is True

    def controls(self) -> dict[str, np.ndarray]:
        """The controls present, by name."""
        return {n: getattr(self, n) for n in _CONTROLS if getattr(self, n) is not None}

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the network's learning rate under ``learning_rate`` when a map is known."""
        controls = {n: (None if getattr(self, n) is None else getattr(self, n).tolist()) for n in _CONTROLS}
        units = self.learning_rate_units
        labels: dict[str, str] = {}
        if self.network is not None:
            controls = {
                "learning_rate": self.network.network_learning_rate(self.learning_rate).tolist(),
                _MODEL_COLUMN: self.learning_rate.tolist(),
                **{n: v for n, v in controls.items() if n != "learning_rate"},
            }
            labels = {"learning_rate": "network", _MODEL_COLUMN: "model"}
        elif units is not None:
            labels = {"learning_rate": units}
        return {
            "schema_version": SCHEDULE_SCHEMA_VERSION,
            "kind": "schedopt.schedule",
            "step_units": STEP_UNITS,
            "horizon": self.horizon,
            **({"units": labels} if labels else {}),
            **controls,
            # the hash always describes the values written next to it (never a stale copy)
            "provenance": {**self.provenance, "values_sha256": values_sha256(self)},
        }

    def to_json(self) -> str:
        return json_text(self.to_dict())

    def to_csv(self) -> str:
        buf = io.StringIO()
        controls = self.controls()
        units = self.network
        if units is not None:  # the network's learning rate first, the model's next to it
            controls = {
                _NETWORK_COLUMN: units.network_learning_rate(self.learning_rate),
                _MODEL_COLUMN: self.learning_rate,
                **{n: v for n, v in controls.items() if n != "learning_rate"},
            }
        elif self.learning_rate_units is not None:  # the column's name says the unit
            column = _NETWORK_COLUMN if self.learning_rate_units == "network" else _MODEL_COLUMN
            controls = {
                column: self.learning_rate,
                **{n: v for n, v in controls.items() if n != "learning_rate"},
            }
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["step", *controls])
        for t in range(self.horizon):
            writer.writerow([t, *(repr(float(v[t])) for v in controls.values())])
        return buf.getvalue()

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<schedule>") -> Schedule:
        if not isinstance(data, Mapping):
            raise ExportError(f"{source}: a schedule file must hold a JSON object")
        version = data.get("schema_version")
        if type(version) is not int or version != SCHEDULE_SCHEMA_VERSION:
            raise ExportError(
                f"{source}: schema_version: unsupported schedule schema version {version!r} "
                f"(this schedopt reads {SCHEDULE_SCHEMA_VERSION})"
            )
        allowed = {"schema_version", "kind", "step_units", "horizon", "provenance", "units", _MODEL_COLUMN}
        allowed |= set(_CONTROLS)
        unknown = sorted(set(data) - allowed, key=str)
        if unknown:
            raise ExportError(f"{source}: {unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
        if "learning_rate" not in data or data["learning_rate"] is None:
            raise ExportError(f"{source}: learning_rate: missing required key")
        horizon = data.get("horizon")
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ExportError(f"{source}: horizon: must be a positive integer, got {horizon!r}")
        provenance = data.get("provenance", {})
        if not isinstance(provenance, Mapping):
            raise ExportError(f"{source}: provenance: must be an object, got {type(provenance).__name__}")
        arrays = {}
        for name in _CONTROLS:
            if data.get(name) is not None:
                try:
                    arrays[name] = _control_array(name, data[name], horizon)
                except ExportError as exc:
                    raise ExportError(f"{source}: {name}: {exc}") from None
        labels = _units_labels(data.get("units"), source)
        provenance = dict(provenance)
        if data.get(_MODEL_COLUMN) is not None:  # learning_rate is the network's (see Units)
            if (
                labels.get("learning_rate", "network") != "network"
                or labels.get(_MODEL_COLUMN, "model") != "model"
            ):
                raise ExportError(f"{source}: units: learning_rate must be 'network' next to {_MODEL_COLUMN}")
            try:
                model = _control_array("learning_rate", data[_MODEL_COLUMN], horizon)
            except ExportError as exc:
                raise ExportError(f"{source}: {_MODEL_COLUMN}: {exc}") from None
            try:
                units = _network_units(provenance.get("network"))
            except ExportError as exc:
                raise ExportError(f"{source}: {exc}") from None
            if units is None:
                raise ExportError(
                    f"{source}: {_MODEL_COLUMN}: needs provenance.network (the map of the units)"
                )
            _check_agreement(arrays["learning_rate"], units.network_learning_rate(model), source)
            arrays["learning_rate"] = model
        elif "learning_rate" in labels and provenance.get("network") is None:
            provenance.setdefault("learning_rate_units", labels["learning_rate"])
        try:
            return cls(provenance=provenance, **arrays)
        except ExportError as exc:  # provenance.network
            raise ExportError(f"{source}: {exc}") from None


def _units_labels(value: Any, source: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ExportError(f"{source}: units: must be an object, got {type(value).__name__}")
    for key, unit in value.items():
        if key not in ("learning_rate", _MODEL_COLUMN):
            raise ExportError(f"{source}: units.{key}: unknown key (allowed: learning_rate, {_MODEL_COLUMN})")
        if unit not in UNITS:
            raise ExportError(f"{source}: units.{key}: must be one of {', '.join(UNITS)}, got {unit!r}")
    return dict(value)


def _check_agreement(network: np.ndarray, expected: np.ndarray, source: str) -> None:
    """The file's network learning rate must be its model learning rate through its map."""
    if not np.allclose(network, expected, rtol=_UNITS_RTOL, atol=0.0):
        i = int(np.flatnonzero(~np.isclose(network, expected, rtol=_UNITS_RTOL, atol=0.0))[0])
        raise ExportError(
            f"{source}: learning_rate: step {i} is {network[i]!r} but {_MODEL_COLUMN} and "
            f"provenance.network give {expected[i]!r} (edited by hand? the two must agree)"
        )


def schedule_from_solution(solution, *, created: str | None = None) -> Schedule:
    """The schedule of a solved problem, with provenance."""
    from schedopt import __version__

    problem = solution.problem
    controls = {n: solution.per_step(n) for n in solution.parameters}
    source = problem.source
    provenance = {
        "schedopt_version": __version__,
        "created": created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "problem": problem.name,
        "spec_path": source.path if source else None,
        "spec_sha256": source.sha256 if source else None,
        "spec": source.text if source else None,
        "solver": solution.solver,
        "status": solution.status,
        "converged": solution.converged,
        "final_loss": float(solution.final_loss),
        "iterations": int(solution.iterations),
        "horizon": problem.horizon,
        "fixed": {"batch_size": problem.training.batch_size, "momentum": problem.training.momentum},
        "grids": {n: g.describe() for n, g in solution.grids.items()},
        "parameters": {n: v.tolist() for n, v in solution.parameters.items()},
    }
    if problem.network is not None:
        provenance["network"] = problem.network.to_dict()
    return Schedule(provenance=provenance, **controls)


def values_sha256(schedule: Schedule) -> str:
    """SHA-256 of a schedule's values: each control's name and float64 little-endian bytes, in order.

    A JSON round trip is exact (``repr`` floats), so a file's hash is reproduced on load.
    """
    digest = hashlib.sha256()
    for name in _CONTROLS:
        values = getattr(schedule, name)
        digest.update(name.encode("ascii") + b"\0")
        digest.update(b"none" if values is None else np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()
