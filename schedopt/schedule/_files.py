"""Schedule files: save and load JSON or CSV, with the provenance hashes checked on load.

``values_sha256`` (written on every save) and ``spec_sha256`` are checked by
:func:`load_schedule`: a file whose values or embedded spec were edited is refused
unless loaded with ``verify=False`` (or inside :func:`trusting`).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from schedopt._csv import csv_records
from schedopt._io import atomic_write_text
from schedopt.errors import ExportError
from schedopt.schedule._record import _CONTROLS, _MODEL_COLUMN, _NETWORK_COLUMN, Schedule, values_sha256

__all__ = ["load_schedule", "save_schedule", "trusting", "verification"]


def save_schedule(schedule: Schedule, path: str | Path) -> Path:
    """Write ``schedule`` as JSON (``.json``) or CSV (``.csv``), atomically."""
    path = Path(path)
    if path.suffix == ".json":
        return atomic_write_text(path, schedule.to_json())
    if path.suffix == ".csv":
        return atomic_write_text(path, schedule.to_csv())
    raise ExportError(f"{str(path)!r}: schedule files end in .json or .csv, got {path.suffix!r}")


_RATE_COLUMNS = ("learning_rate", _NETWORK_COLUMN, _MODEL_COLUMN)


def _read_csv(text: str, source: str) -> Schedule:
    """A schedule from CSV text. The learning-rate columns say their unit (see ``schedopt.schedule._record``):

    ``network_learning_rate`` and ``model_learning_rate`` (a fitted schedule; their ratio is the map),
    ``network_learning_rate`` alone (network units), ``model_learning_rate`` alone (model units) or a
    bare ``learning_rate`` (no unit stated). Older files read as before: ``learning_rate`` beside
    ``model_learning_rate`` is the network's, beside ``network_learning_rate`` the model's.
    """
    rows = [row for _, row in csv_records(text, lambda message: ExportError(f"{source}: {message}"))]
    if not rows:
        raise ExportError(f"{source}: empty CSV file")
    header = [h.strip() for h in rows[0]]
    rates = [h for h in header if h in _RATE_COLUMNS]
    if not rates:
        raise ExportError(
            f"{source}: missing column '{_NETWORK_COLUMN}', '{_MODEL_COLUMN}' or 'learning_rate' "
            f"(found {', '.join(header) or 'none'})"
        )
    unknown = [h for h in header if h not in ("step", *_CONTROLS, _NETWORK_COLUMN, _MODEL_COLUMN)]
    if unknown:
        raise ExportError(f"{source}: unknown column {unknown[0]!r}")
    if len(set(header)) != len(header):
        raise ExportError(f"{source}: a column appears twice in the header")
    if len(rates) > 2:
        raise ExportError(
            f"{source}: at most two learning-rate columns ({_NETWORK_COLUMN} and {_MODEL_COLUMN}), got {', '.join(rates)}"
        )
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
    provenance: dict[str, Any] = {"source": source}
    # an older file's bare learning_rate is the network's beside model_learning_rate, else the model's
    network_column = _NETWORK_COLUMN if _NETWORK_COLUMN in columns else "learning_rate"
    model_column = _MODEL_COLUMN if _MODEL_COLUMN in columns else "learning_rate"
    if len(rates) == 2:  # a fitted schedule: the network's and the model's learning rate
        model, network = columns[model_column], columns[network_column]
        provenance["network"] = _csv_network(model, network, source, column=network_column)
    elif _NETWORK_COLUMN in columns:  # the network's learning rate alone
        model = columns[_NETWORK_COLUMN]
        provenance["learning_rate_units"] = "network"
    elif _MODEL_COLUMN in columns:  # the model's alone
        model = columns[_MODEL_COLUMN]
        provenance["learning_rate_units"] = "model"
    else:
        model = columns["learning_rate"]
    arrays = {h: v for h, v in columns.items() if h not in ("step", *_RATE_COLUMNS)}
    if not model:
        raise ExportError(f"{source}: no rows")
    try:
        return Schedule(provenance=provenance, learning_rate=model, **arrays)
    except ExportError as exc:
        raise ExportError(f"{source}: {exc}") from None


def _csv_network(model: list[float], network: list[float], source: str, column: str) -> dict[str, float]:
    r"""The learning-rate map from a CSV's two learning-rate columns (``column`` names the network's).

    One common ratio (a linear map, ``learning_rate_scale``), or else one power
    law :math:`\eta = \kappa\,\eta_{net}^{p}` that every row obeys.
    """
    eta = np.asarray(model)
    net = np.asarray(network)
    usable = net > 0
    if not np.any(usable):
        raise ExportError(f"{source}: {column}: needs a positive value to give the scale")
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
        f"{source}: {column}: must map to the model's learning rate by one positive scale "
        "(or one power law) on every row"
    )


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
