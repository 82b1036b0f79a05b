r"""A designed schedule: step-indexed control values with provenance, and its files.

File format (JSON, ``schema_version`` 1)::

    {
      "schema_version": 1,
      "kind": "schedopt.schedule",
      "step_units": "optimizer steps; step 0 is the first update (optax count)",
      "horizon": T,
      "learning_rate": [T floats],
      "batch_size": [T floats] | null,
      "momentum": [T floats] | null,
      "provenance": {schedopt_version, created, problem, spec_sha256, spec, solver,
                     status, converged, final_loss, grids, ..., values_sha256}
    }

``values_sha256`` (:func:`values_sha256`, written on every save) and
``spec_sha256`` are checked by :func:`load_schedule`: a file whose values or
embedded spec were edited is refused unless loaded with ``verify=False``.

The CSV twin has the columns ``step,learning_rate[,batch_size][,momentum]``.
Floats are written with ``repr`` precision, so a JSON round trip is exact.

**Network units.** A schedule designed from a fitted spec (``schedopt fit``, a
``[network]`` table) holds the model's learning rate :math:`\eta` and records the
map in ``provenance.network`` (``learning_rate_scale`` :math:`\kappa`,
``loss_scale``, ``loss_offset``). :meth:`Schedule.for_network` gives the
network's learning rate :math:`\eta/\kappa`, which is what the exporters
(optax, PyTorch, ``schedopt export``) hand to a training loop; its CSV has an
extra column ``network_learning_rate``.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import datetime as _dt
import hashlib
import io
import json
import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from schedopt._io import atomic_write_text, json_text
from schedopt.errors import ExportError, ProblemError
from schedopt.problem import NetworkUnits

__all__ = [
    "SCHEDULE_SCHEMA_VERSION",
    "STEP_UNITS",
    "Schedule",
    "load_schedule",
    "save_schedule",
    "schedule_from_solution",
    "trusting",
    "values_sha256",
    "verification",
]

SCHEDULE_SCHEMA_VERSION = 1
STEP_UNITS = "optimizer steps; step 0 is the first update (optax count)"
_CONTROLS = ("learning_rate", "batch_size", "momentum")
_NETWORK_COLUMN = "network_learning_rate"


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
    def horizon(self) -> int:
        return int(self.learning_rate.size)

    @property
    def converged(self) -> bool:
        return self.provenance.get("converged", True) is True

    def controls(self) -> dict[str, np.ndarray]:
        """The controls present, by name."""
        return {n: getattr(self, n) for n in _CONTROLS if getattr(self, n) is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEDULE_SCHEMA_VERSION,
            "kind": "schedopt.schedule",
            "step_units": STEP_UNITS,
            "horizon": self.horizon,
            **{n: (None if getattr(self, n) is None else getattr(self, n).tolist()) for n in _CONTROLS},
            # the hash always describes the values written next to it (never a stale copy)
            "provenance": {**self.provenance, "values_sha256": values_sha256(self)},
        }

    def to_json(self) -> str:
        return json_text(self.to_dict())

    def to_csv(self) -> str:
        buf = io.StringIO()
        controls = self.controls()
        units = self.network
        if units is not None:
            controls[_NETWORK_COLUMN] = units.network_learning_rate(self.learning_rate)
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
        allowed = {"schema_version", "kind", "step_units", "horizon", "provenance", *_CONTROLS}
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
        try:
            return cls(provenance=provenance, **arrays)
        except ExportError as exc:  # provenance.network
            raise ExportError(f"{source}: {exc}") from None


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


def save_schedule(schedule: Schedule, path: str | Path) -> Path:
    """Write ``schedule`` as JSON (``.json``) or CSV (``.csv``), atomically."""
    path = Path(path)
    if path.suffix == ".json":
        return atomic_write_text(path, schedule.to_json())
    if path.suffix == ".csv":
        return atomic_write_text(path, schedule.to_csv())
    raise ExportError(f"{str(path)!r}: schedule files end in .json or .csv, got {path.suffix!r}")


def _read_csv(text: str, source: str) -> Schedule:
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ExportError(f"{source}: invalid CSV: {exc}") from None
    if not rows:
        raise ExportError(f"{source}: empty CSV file")
    header = [h.strip() for h in rows[0]]
    if "learning_rate" not in header:
        raise ExportError(f"{source}: missing column 'learning_rate' (found {', '.join(header) or 'none'})")
    unknown = [h for h in header if h not in ("step", *_CONTROLS, _NETWORK_COLUMN)]
    if unknown:
        raise ExportError(f"{source}: unknown column {unknown[0]!r}")
    columns: dict[str, list[float]] = {h: [] for h in header}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ExportError(f"{source}: line {line}: expected {len(header)} fields, got {len(row)}")
        for h, cell in zip(header, row, strict=True):
            try:
                value = float(cell)
            except ValueError:
                raise ExportError(f"{source}: line {line}: {h}: not a number: {cell!r}") from None
            if not math.isfinite(value):
                raise ExportError(f"{source}: line {line}: {h}: not finite: {cell!r}")
            columns[h].append(value)
    if "step" in columns and columns["step"] != list(range(len(columns["step"]))):
        raise ExportError(f"{source}: step: steps must be 0, 1, 2, ... in order")
    arrays = {h: v for h, v in columns.items() if h not in ("step", _NETWORK_COLUMN)}
    if not arrays["learning_rate"]:
        raise ExportError(f"{source}: no rows")
    provenance: dict[str, Any] = {"source": source}
    if _NETWORK_COLUMN in columns:
        provenance["network"] = _csv_network(columns, source)
    try:
        return Schedule(provenance=provenance, **arrays)
    except ExportError as exc:
        raise ExportError(f"{source}: {exc}") from None


def _csv_network(columns: Mapping[str, list[float]], source: str) -> dict[str, float]:
    r"""The learning-rate map from the CSV's two learning-rate columns.

    One common ratio (a linear map, ``learning_rate_scale``), or else one power
    law :math:`\eta = \kappa\,\eta_{net}^{p}` that every row obeys.
    """
    eta = np.asarray(columns["learning_rate"])
    net = np.asarray(columns[_NETWORK_COLUMN])
    usable = net > 0
    if not np.any(usable):
        raise ExportError(f"{source}: {_NETWORK_COLUMN}: needs a positive value to give the scale")
    zeros_agree = np.all(eta[~usable] == 0)
    ratios = eta[usable] / net[usable]
    kappa = float(np.median(ratios))
    if kappa > 0 and np.allclose(ratios, kappa, rtol=1e-9, atol=0.0) and zeros_agree:
        return {"learning_rate_scale": kappa}
    log_net, log_eta = np.log(net[usable]), np.log(np.where(eta[usable] > 0, eta[usable], np.nan))
    if zeros_agree and np.all(np.isfinite(log_eta)) and np.ptp(log_net) > 0:
        exponent, log_kappa = np.polyfit(log_net, log_eta, 1)
        if exponent > 0 and np.allclose(log_kappa + exponent * log_net, log_eta, rtol=0, atol=1e-9):
            return {
                "learning_rate_scale": float(np.exp(log_kappa)),
                "learning_rate_exponent": float(exponent),
                "learning_rate_reference": 1.0,
            }
    raise ExportError(
        f"{source}: {_NETWORK_COLUMN}: must map to learning_rate by one positive scale (or one power law) "
        "on every row"
    )


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


_VERIFY: contextvars.ContextVar[bool] = contextvars.ContextVar("schedopt_verify_schedules", default=True)
_NOTES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "schedopt_schedule_notes", default=None
)
_STATUS: weakref.WeakKeyDictionary[Schedule, str] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def trusting(trust: bool = True):
    """Within the block, :func:`load_schedule` does not verify provenance hashes (``--trust``).

    Yields a list that collects ``"<file>: <status>"`` for every schedule loaded in the
    block that is not ``verified`` (the CLI prints them as notes).
    """
    notes: list[str] = []
    tokens = (_VERIFY.set(not trust), _NOTES.set(notes))
    try:
        yield notes
    finally:
        _NOTES.reset(tokens[1])
        _VERIFY.reset(tokens[0])


def verification(schedule: Schedule) -> str | None:
    """How a loaded schedule's provenance was checked: ``verified``, ``unverified: ...``,
    ``trusted: ...`` (loaded with ``verify=False``), or ``None`` (not loaded from a JSON file)."""
    return _STATUS.get(schedule)


def _check_provenance(schedule: Schedule, stored: Any, source: str, verify: bool) -> str:
    """Compare the stored hashes with the content; raise on a mismatch unless ``verify`` is off."""
    prov = schedule.provenance
    problems, missing = [], []
    if stored is None:
        missing.append("values_sha256 (written before schedopt recorded it)")
    elif stored != values_sha256(schedule):
        problems.append("provenance.values_sha256 does not match the file's values")
    spec, spec_hash = prov.get("spec"), prov.get("spec_sha256")
    if isinstance(spec, str):
        if spec_hash is None:
            missing.append("spec_sha256")
        elif spec_hash != hashlib.sha256(spec.encode("utf-8", "surrogatepass")).hexdigest():
            problems.append("provenance.spec_sha256 does not match provenance.spec")
    elif spec is not None:
        problems.append("provenance.spec is not a string")
    if problems and verify:
        raise ExportError(
            f"{source}: {'; '.join(problems)} (edited or corrupted); load it anyway with --trust "
            "(verify=False in Python)"
        )
    if problems:
        return f"trusted: {'; '.join(problems)}"
    if missing:
        return f"unverified: no {', no '.join(missing)}"
    return "verified"


def load_schedule(path: str | Path, *, verify: bool | None = None) -> Schedule:
    """Read and validate a schedule file (JSON written by schedopt, or CSV).

    A JSON file's provenance hashes are checked against its content: ``values_sha256``
    against the values, ``spec_sha256`` against the embedded spec. A mismatch is an
    :class:`~schedopt.errors.ExportError` naming the file unless ``verify=False``
    (default: on, off inside :func:`trusting`); a file written before the values
    hash existed loads as unverified. :func:`verification` tells which.
    """
    from schedopt._validate import MAX_DATA_BYTES, input_bytes

    if verify is None:
        verify = _VERIFY.get()

    try:
        path = Path(path)
    except TypeError:
        raise ExportError(f"`path` must be a file path, got {type(path).__name__}") from None
    source = str(path)

    def fail(message: str) -> ExportError:
        if message == "no such file":
            return ExportError(f"{source}: no such schedule file")
        return ExportError(f"{source}: cannot read schedule file: {message}")

    raw = input_bytes(path, limit=MAX_DATA_BYTES, what="a schedule file", fail=fail)  # FIFOs, devices refused
    try:
        text = raw.decode("utf-8-sig")  # a spreadsheet may add a byte-order mark
    except UnicodeDecodeError as exc:
        raise ExportError(f"{source}: cannot read schedule file: {exc}") from None
    if path.suffix == ".csv":
        return _read_csv(text, source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except RecursionError:
        raise ExportError(f"{source}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ExportError(f"{source}: invalid JSON: {str(exc)[:120]}") from None
    stored = None  # the values hash describes the file, not the schedule: checked here, not kept
    if isinstance(data, dict) and isinstance(data.get("provenance"), dict):
        stored = data["provenance"].pop("values_sha256", None)
    schedule = Schedule.from_dict(data, source=source)
    status = _check_provenance(schedule, stored, source, verify)
    _STATUS[schedule] = status
    notes = _NOTES.get()
    if notes is not None and status != "verified":
        notes.append(f"{source}: provenance {status}")
    return schedule
