r"""Problem specs: TOML text -> validated :class:`~schedopt.problem.Problem`, and back.

A spec is a small TOML file (``schema_version = 1``)::

    schema_version = 1
    name = "easy-phase"

    [model]
    kind = "powerlaw"          # or "custom"
    a = 2.5                    # target exponent: lambda_k c_k(0) ~ k^-a
    b = 1.2                    # capacity exponent: lambda_k = k^-b
    n_modes = 1000
    noise_std = 1.0            # label-noise sigma (default 0)
    initial_loss = 1.0         # or "raw" (default 1.0)
    finite_size = false        # optional (default false)

    [training]
    horizon = 10000
    batch_size = 1             # default 1
    momentum = 0.0             # default 0
    # sample_budget = 1e6      # only with a batch_size control

    [controls.learning_rate]   # required; batch_size and momentum are optional
    min = 0.0
    max = 0.35
    blocks = 100               # default 100 (set by `edges` when grid = "custom")
    grid = "uniform"           # uniform | geometric-end | geometric-both | custom
    parameterisation = "linear"  # linear | constant
    # edges = [0, ..., 10000]  # only with grid = "custom"

    [network]                  # optional: a fitted map to a real network (schedopt fit)
    learning_rate_scale = 0.8  # model eta per unit of the network's learning rate
    loss_scale = 3.1           # network loss = loss_offset + loss_scale * model loss
    loss_offset = 1.2

A custom spectrum (``kind = "custom"``) gives its arrays either in a file
(``file = "spectrum.csv"``, relative to the spec's folder: a CSV with the
header ``eigenvalues,initial_error``, ``#`` comment lines allowed, or a
``.npz`` holding exactly those two arrays) or inline (``eigenvalues = [...]``,
``initial_error = [...]``), plus ``noise_std`` and an optional ``residual``.
``problems/README.md`` documents every key.

Every invalid input raises exactly one :class:`~schedopt.errors.SpecError`
naming the file, the key path (``model.a``, ``controls.learning_rate.max``) and
the bad value; no other exception escapes :func:`parse_problem` or
:func:`load_problem`. The checks of values are those of the records in
:mod:`schedopt.problem` (their ``ProblemError.field`` is mapped back to the key
path); this module adds what only the file knows: syntax, unknown and missing
keys, types, the schema version and the custom-spectrum file. The stability
bound on ``controls.learning_rate.max`` is checked by the solvers, not here.

References:
    B. Bordelon and N. Mori, *Theory of Optimal Learning Rate Schedules and
    Scaling Laws for a Random Feature Model*, arXiv:2602.04774 (2026).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import tomllib
import zipfile
from collections.abc import Callable, Mapping
from importlib import resources
from numbers import Real
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from schedopt import _validate as v
from schedopt._validate import MAX_DATA_BYTES, MAX_SPEC_BYTES, input_bytes
from schedopt.errors import ProblemError, SpecError
from schedopt.problem import (
    CONTROL_NAMES,
    ControlSpec,
    Model,
    NetworkUnits,
    Problem,
    SpecSource,
    Training,
)

__all__ = [
    "MAX_MODES",
    "SCHEMA_VERSION",
    "default_problem",
    "dump_problem",
    "load_problem",
    "parse_problem",
]

SCHEMA_VERSION = 1
"""The spec schema this version of schedopt reads and writes."""

MAX_MODES = 1_000_000
"""Largest ``model.n_modes`` of a power-law spec (problems/README.md, "Limits": at 10^6 modes and
T = 200 a design took 100-255 s and 2.2-2.4 GB on two busy cores; 10^7 did not finish in 5 minutes)."""

MODEL_KINDS = ("powerlaw", "custom")
SPECTRUM_COLUMNS = ("eigenvalues", "initial_error")

_DEFAULT_RESOURCE = "data/default.toml"
_DEFAULT_LABEL = "schedopt/data/default.toml"
_STRING_LABEL = "<string>"

_TOP_KEYS = ("schema_version", "name", "model", "training", "controls", "network")
_NETWORK_KEYS = (
    "learning_rate_scale",
    "loss_scale",
    "loss_offset",
    "learning_rate_exponent",
    "learning_rate_reference",
)
_POWERLAW_KEYS = (
    "kind",
    "a",
    "b",
    "n_modes",
    "noise_std",
    "initial_loss",
    "finite_size",
    "null_modes",
    "null_eigenvalue",
)
_CUSTOM_KEYS = ("kind", "file", "eigenvalues", "initial_error", "noise_std", "residual")
_TRAINING_KEYS = ("horizon", "batch_size", "momentum", "sample_budget")
_CONTROL_KEYS = ("min", "max", "blocks", "grid", "parameterisation", "edges")

_REQUIRED = object()
_MAX_SHOWN = 60  # characters of a bad value quoted in a message
_T = TypeVar("_T")


# --- public API


def load_problem(path: str | os.PathLike[str]) -> Problem:
    """Read a problem spec file.

    Args:
        path: the TOML spec. A custom spectrum's ``file`` is resolved relative
            to the spec's folder.

    Returns:
        The validated problem, with ``source`` set to the file's path, text and
        SHA-256.

    Raises:
        SpecError: the file cannot be read or the spec is invalid; the message
            names the file, the key path and the bad value.
    """
    label = os.fspath(path)
    raw = input_bytes(
        label,
        limit=MAX_SPEC_BYTES,
        what="the spec",
        fail=lambda message: SpecError(
            "cannot read the spec file: no such file" if message == "no such file" else message, path=label
        ),
    )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            f"the spec is not valid UTF-8 (byte {raw[err.start]:#04x} at offset {err.start})",
            path=label,
        ) from None
    return parse_problem(text, path=label, base_dir=Path(label).parent)


def parse_problem(
    text: str,
    *,
    path: str | os.PathLike[str] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Problem:
    """Parse spec text into a validated :class:`~schedopt.problem.Problem`.

    Args:
        text: the TOML text.
        path: the file the text came from, used in error messages and in
            ``Problem.source`` (``None`` for text from elsewhere).
        base_dir: folder against which a custom spectrum's relative ``file`` is
            resolved; defaults to the folder of ``path``, else the working
            directory.

    Raises:
        SpecError: the spec is invalid; the message names the file (or
            ``<string>``), the key path and the bad value.
    """
    label = os.fspath(path) if path is not None else None
    if base_dir is None:
        base_dir = Path(label).parent if label is not None else Path.cwd()
    reader = _Reader(label if label is not None else _STRING_LABEL, Path(base_dir))
    if not isinstance(text, str):
        raise reader.error(None, f"spec text must be a str, got {type(text).__name__}")
    source = SpecSource(
        path=label,
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
    )
    return reader.problem(text, source)


def default_problem() -> Problem:
    """The embedded default problem (the easy phase; identical to ``problems/easy-phase.toml``)."""
    text = resources.files("schedopt").joinpath(_DEFAULT_RESOURCE).read_text(encoding="utf-8")
    return parse_problem(text, path=_DEFAULT_LABEL)


def dump_problem(problem: Problem) -> str:
    """Write a problem as spec text that :func:`parse_problem` reads back to an equal problem.

    A power-law model is written as ``kind = "powerlaw"`` when its parameters
    reproduce its arrays exactly; any other model as ``kind = "custom"`` with
    ``eigenvalues`` and ``initial_error`` inline. Floats are written with
    ``repr`` so they read back bit for bit.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"dump_problem takes a Problem, got {type(problem).__name__}")
    lines = [
        "# schedopt problem spec (written by schedopt.spec.dump_problem)",
        f"schema_version = {SCHEMA_VERSION}",
        f"name = {_toml_str(problem.name)}",
        "",
        "[model]",
        *_dump_model(problem.model),
        "",
        "[training]",
        f"horizon = {problem.training.horizon}",
        f"batch_size = {_toml_float(problem.training.batch_size)}",
        f"momentum = {_toml_float(problem.training.momentum)}",
    ]
    if problem.sample_budget is not None:
        lines.append(f"sample_budget = {_toml_float(problem.sample_budget)}")
    for name in CONTROL_NAMES:
        spec = problem.controls.get(name)
        if spec is None:
            continue
        lines += ["", f"[controls.{name}]"]
        lines.append(f"min = {_toml_float(spec.min)}")
        lines.append(f"max = {_toml_float(spec.max)}")
        if spec.grid != "custom":
            lines.append(f"blocks = {spec.blocks}")
        lines.append(f"grid = {_toml_str(spec.grid)}")
        lines.append(f"parameterisation = {_toml_str(spec.parameterisation)}")
        if spec.edges is not None:
            lines.append("edges = [" + ", ".join(str(e) for e in spec.edges) + "]")
    if problem.network is not None:
        lines += ["", "[network]"]
        lines += [f"{key} = {_toml_float(value)}" for key, value in problem.network.to_dict().items()]
    return "\n".join(lines) + "\n"


# --- reading


class _Table:
    """One TOML table and its key path, with typed accessors that raise SpecError."""

    def __init__(self, reader: _Reader, data: Mapping[str, Any], prefix: str):
        self.reader = reader
        self.data = data
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str | None, message: str) -> SpecError:
        return self.reader.error(self.key(name) if name else self.prefix or None, message)

    def check_keys(self, allowed: tuple[str, ...], *, other: tuple[str, ...] = (), why: str = "") -> None:
        for name in self.data:
            if name in allowed:
                continue
            shown = _show(self.data[name])
            if name in other:
                raise self.fail(name, f"key {name!r} (= {shown}) is not allowed {why}")
            raise self.fail(
                name,
                f"unknown key {name!r} (= {shown}); allowed keys here: {', '.join(allowed)}",
            )

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = _REQUIRED) -> Any:
        if name not in self.data:
            if default is _REQUIRED:
                where = f"[{self.prefix}]" if self.prefix else "the top level"
                raise self.fail(name, f"missing required key {name!r} in {where}")
            return default
        return self.data[name]

    def table(self, name: str) -> _Table:
        value = self.raw(name)
        if not isinstance(value, dict):
            raise self.fail(name, f"must be a table, got {_show(value)} ({_kind(value)})")
        return _Table(self.reader, value, self.key(name))

    def number(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.raw(name, default)
        if value is default and name not in self.data:
            return value
        return _number(value, lambda msg: self.fail(name, msg))

    def integer(self, name: str, default: Any = _REQUIRED) -> Any:
        """A number; the records check integrality (``1e4`` is fine, ``2.5`` is not)."""
        return self.number(name, default)

    def string(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.raw(name, default)
        if value is default and name not in self.data:
            return value
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, got {_show(value)} ({_kind(value)})")
        return value

    def boolean(self, name: str, default: Any = _REQUIRED) -> Any:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, got {_show(value)} ({_kind(value)})")
        return value

    def numbers(self, name: str) -> list[Any]:
        value = self.raw(name)
        if not isinstance(value, list):
            raise self.fail(name, f"must be an array of numbers, got {_show(value)} ({_kind(value)})")
        out = []
        for i, item in enumerate(value):
            out.append(_number(item, lambda msg, i=i: self.fail(name, f"element {i} {msg}")))
        return out


class _Reader:
    """Turns parsed TOML into records; knows the file label for error messages."""

    def __init__(self, label: str, base_dir: Path):
        self.label = label
        self.base_dir = base_dir

    def error(self, key: str | None, message: str) -> SpecError:
        return SpecError(message, path=self.label, key=key)

    def build(
        self,
        fields: Mapping[str, str],
        fallback: str,
        make: Callable[[], _T],
        notes: Mapping[str, str] | None = None,
    ) -> _T:
        """Call a record constructor; map its ``ProblemError.field`` to a key path.

        ``notes`` maps a key path to a prefix that puts the message in context
        (which file, which parameters).
        """
        notes = notes or {}
        try:
            with np.errstate(all="ignore"):
                return make()
        except ProblemError as err:
            key = fields.get(err.field or "", fallback)
            raise self.error(key or None, f"{notes.get(key, '')}{err}") from None
        except OverflowError:
            note = notes.get(fallback, "")
            raise self.error(fallback or None, f"{note}a number is too large to compute with") from None

    # -- document

    def problem(self, text: str, source: SpecSource) -> Problem:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise self.error(None, f"invalid TOML: {err}") from None
        except (ValueError, RecursionError) as err:  # over-long integers, over-deep nesting
            raise self.error(_long_integer_key(text), f"invalid TOML: {str(err)[:200]}") from None
        top = _Table(self, data, "")
        self.schema_version(top)  # first: a newer spec is best told so, not about its new keys
        top.check_keys(_TOP_KEYS)
        name = top.string("name")
        model = self.model(top.table("model"))
        training_table = top.table("training")
        training = self.training(training_table)
        controls = self.controls(top.table("controls"), training_table)
        sample_budget = training_table.number("sample_budget", None)
        if sample_budget is not None and "batch_size" not in controls:
            raise training_table.fail(
                "sample_budget",
                f"`sample_budget` (= {_show(sample_budget)}) is only allowed when "
                "[controls.batch_size] is set",
            )
        # Validate the controls one at a time (learning_rate first) so that an
        # error of the Problem record (blocks or edges against the horizon) names its control.
        checked: dict[str, ControlSpec] = {}
        for cname, spec in controls.items():
            checked[cname] = spec
            trial = dict(checked)
            self.build(
                {
                    "name": "name",
                    "blocks": f"controls.{cname}.blocks",
                    "edges": f"controls.{cname}.edges",
                },
                f"controls.{cname}",
                lambda trial=trial: Problem(name=name, model=model, training=training, controls=trial),
            )
        network = self.network(top.table("network")) if top.has("network") else None
        return self.build(
            {"name": "name", "sample_budget": "training.sample_budget"},
            "",
            lambda: Problem(
                name=name,
                model=model,
                training=training,
                controls=controls,
                sample_budget=sample_budget,
                network=network,
                source=source,
            ),
        )

    def network(self, table: _Table) -> NetworkUnits:
        table.check_keys(_NETWORK_KEYS)
        kappa = table.number("learning_rate_scale")
        scale = table.number("loss_scale", 1.0)
        offset = table.number("loss_offset", 0.0)
        exponent = table.number("learning_rate_exponent", 1.0)
        reference = table.number("learning_rate_reference", 1.0)
        return self.build(
            {name: f"network.{name}" for name in _NETWORK_KEYS},
            "network",
            lambda: NetworkUnits(
                learning_rate_scale=kappa,
                loss_scale=scale,
                loss_offset=offset,
                learning_rate_exponent=exponent,
                learning_rate_reference=reference,
            ),
        )

    def schema_version(self, top: _Table) -> None:
        version = top.raw("schema_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise top.fail(
                "schema_version",
                f"must be the integer {SCHEMA_VERSION}, got {_show(version)} ({_kind(version)})",
            )
        if version != SCHEMA_VERSION:
            raise top.fail(
                "schema_version",
                f"unsupported schema_version {version}; this schedopt reads {SCHEMA_VERSION}",
            )

    # -- model

    def model(self, table: _Table) -> Model:
        kind = table.string("kind", "powerlaw")
        if kind not in MODEL_KINDS:
            raise table.fail("kind", f"must be one of {', '.join(map(repr, MODEL_KINDS))}, got {kind!r}")
        if kind == "powerlaw":
            table.check_keys(_POWERLAW_KEYS, other=_CUSTOM_KEYS, why='with kind = "powerlaw"')
            return self.powerlaw(table)
        table.check_keys(_CUSTOM_KEYS, other=_POWERLAW_KEYS, why='with kind = "custom"')
        return self.custom(table)

    def powerlaw(self, table: _Table) -> Model:
        a = table.number("a")
        b = table.number("b")
        n_modes = table.integer("n_modes")
        noise_std = table.number("noise_std", 0.0)
        initial_loss = table.raw("initial_loss", 1.0)
        if not isinstance(initial_loss, str):  # "raw" or a number
            initial_loss = table.number("initial_loss", 1.0)
        finite_size = table.boolean("finite_size", False)
        null_modes = table.integer("null_modes", 0)
        null_eigenvalue = table.number("null_eigenvalue") if table.has("null_eigenvalue") else None
        if n_modes > MAX_MODES:
            raise table.fail("n_modes", f"must be at most {MAX_MODES}, got {_show(n_modes)}")
        if null_modes > MAX_MODES - n_modes:
            raise table.fail(
                "null_modes",
                f"must be at most {MAX_MODES} - n_modes = {MAX_MODES - n_modes}, got {null_modes}",
            )
        fields = {
            name: f"model.{name}"
            for name in ("a", "b", "n_modes", "noise_std", "initial_loss", "null_modes", "null_eigenvalue")
        }
        # Anything else (eigenvalues underflowing to 0, an overflowing noise
        # variance) comes from the combination of the parameters: name them all.
        context = (
            f"with a = {_show(a)}, b = {_show(b)}, n_modes = {_show(n_modes)}, "
            f"noise_std = {_show(noise_std)}, initial_loss = {_show(initial_loss)}: "
        )
        return self.build(
            fields,
            "model",
            lambda: Model.powerlaw(
                a,
                b,
                n_modes,
                noise_std=noise_std,
                initial_loss=initial_loss,
                finite_size=finite_size,
                null_modes=null_modes,
                null_eigenvalue=null_eigenvalue,
            ),
            notes={"model": context},
        )

    def custom(self, table: _Table) -> Model:
        inline = [name for name in SPECTRUM_COLUMNS if table.has(name)]
        if table.has("file") and inline:
            raise table.fail(inline[0], f"give either `file` or inline `{inline[0]}`, not both")
        notes: dict[str, str] = {}
        if table.has("file"):
            eigenvalues, initial_error, where = self.spectrum_file(table)
            keys = {"eigenvalues": "model.file", "initial_error": "model.file"}
            notes["model.file"] = f"{where}: "
        elif inline:
            for name in SPECTRUM_COLUMNS:
                table.raw(name)  # both arrays are required
            eigenvalues = table.numbers("eigenvalues")
            initial_error = table.numbers("initial_error")
            if len(eigenvalues) != len(initial_error):
                raise table.fail(
                    "initial_error",
                    f"must have the length of `eigenvalues` ({len(eigenvalues)}), got {len(initial_error)}",
                )
            keys = {"eigenvalues": "model.eigenvalues", "initial_error": "model.initial_error"}
        else:
            raise table.fail(
                None,
                'a custom model needs `file = "..."` or inline `eigenvalues = [...]` '
                "and `initial_error = [...]`",
            )
        noise_std = table.number("noise_std", 0.0)
        residual = table.number("residual", 0.0)
        # The record takes the variance, whose square would hide a negative sigma.
        self.build({}, "model.noise_std", lambda: v.nonnegative("noise_std", noise_std))
        fields = {**keys, "noise_variance": "model.noise_std", "residual": "model.residual"}
        return self.build(
            fields,
            "model",
            lambda: Model(
                eigenvalues=np.asarray(eigenvalues, dtype=np.float64),
                initial_error=np.asarray(initial_error, dtype=np.float64),
                noise_variance=noise_std**2,
                residual=residual,
            ),
            notes=notes,
        )

    def spectrum_file(self, table: _Table) -> tuple[np.ndarray, np.ndarray, str]:
        name = table.string("file")
        if not name.strip():
            raise table.fail("file", f"must name a .csv or .npz file, got {name!r}")
        path = self.base_dir / name
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".npz"):
            raise table.fail("file", f"must be a .csv or .npz file, got {name!r}")
        where = repr(name)

        def fail(message: str) -> SpecError:
            return table.fail("file", f"{where}: {message}")

        raw = input_bytes(
            path,
            limit=MAX_DATA_BYTES,
            what="the spectrum file",
            fail=lambda message: fail(
                f"file not found (looked for {str(path)!r})" if message == "no such file" else message
            ),
        )
        if suffix == ".csv":
            lam, c0 = _read_csv(raw, fail)
        else:
            lam, c0 = _read_npz(raw, fail)
        if lam.size != c0.size:
            raise fail(f"`initial_error` has {c0.size} values but `eigenvalues` has {lam.size}")
        return lam, c0, where

    # -- training and controls

    def training(self, table: _Table) -> Training:
        table.check_keys(_TRAINING_KEYS)
        horizon = table.integer("horizon")
        batch_size = table.number("batch_size", 1.0)
        momentum = table.number("momentum", 0.0)
        fields = {name: f"training.{name}" for name in ("horizon", "batch_size", "momentum")}
        return self.build(
            fields,
            "training",
            lambda: Training(horizon=horizon, batch_size=batch_size, momentum=momentum),
        )

    def controls(self, table: _Table, training: _Table) -> dict[str, ControlSpec]:
        for name in table.data:
            if name not in CONTROL_NAMES:
                raise table.fail(
                    name,
                    f"unknown control {name!r} (= {_show(table.data[name])}); "
                    f"allowed controls: {', '.join(CONTROL_NAMES)}",
                )
        if "learning_rate" not in table.data:
            raise table.fail("learning_rate", "missing required table [controls.learning_rate]")
        out = {}
        for name in CONTROL_NAMES:
            if name in table.data:
                out[name] = self.control(name, table.table(name))
        return out

    def control(self, name: str, table: _Table) -> ControlSpec:
        table.check_keys(_CONTROL_KEYS)
        lo = table.number("min")
        hi = table.number("max")
        grid = table.string("grid", "uniform")
        parameterisation = table.string("parameterisation", "linear")
        blocks = table.integer("blocks", None)
        edges = None
        if table.has("edges"):
            edges = tuple(table.numbers("edges"))
        if grid == "custom" and edges is not None and blocks is not None and blocks != len(edges) - 1:
            raise table.fail(
                "blocks",
                f"`blocks` = {_show(blocks)} disagrees with the {len(edges) - 1} blocks "
                'that `edges` defines (leave `blocks` out with grid = "custom")',
            )
        fields = {f: f"controls.{name}.{f}" for f in _CONTROL_KEYS}
        kwargs = {} if blocks is None else {"blocks": blocks}
        return self.build(
            fields,
            f"controls.{name}",
            lambda: ControlSpec(
                name=name,
                min=lo,
                max=hi,
                grid=grid,
                parameterisation=parameterisation,
                edges=edges,
                **kwargs,
            ),
        )


# --- custom spectrum files


def _read_csv(raw: bytes, fail: Callable[[str], SpecError]) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise fail(f"not valid UTF-8 (offset {err.start})") from None
    rows: list[tuple[int, list[str]]] = []
    try:
        for lineno, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            rows.append((lineno, [cell.strip() for cell in row]))
    except csv.Error as err:
        raise fail(f"invalid CSV: {err}") from None
    if not rows:
        raise fail("the file is empty; expected the header `eigenvalues,initial_error`")
    lineno, header = rows[0]
    if sorted(header) != sorted(SPECTRUM_COLUMNS):
        raise fail(f"line {lineno}: the header must be `eigenvalues,initial_error`, got {','.join(header)!r}")
    order = [header.index(col) for col in SPECTRUM_COLUMNS]
    if len(rows) == 1:
        raise fail("no data rows after the header")
    columns: list[list[float]] = [[], []]
    for lineno, row in rows[1:]:
        if len(row) != len(header):
            raise fail(f"line {lineno}: expected {len(header)} values, got {len(row)} ({','.join(row)!r})")
        for j, col in enumerate(SPECTRUM_COLUMNS):
            cell = row[order[j]]
            try:
                x = float(cell)
            except ValueError:
                raise fail(f"line {lineno}: `{col}` must be a number, got {cell!r}") from None
            if not math.isfinite(x):
                raise fail(f"line {lineno}: `{col}` must be a finite number, got {cell!r}")
            columns[j].append(x)
    return np.array(columns[0], dtype=np.float64), np.array(columns[1], dtype=np.float64)


def _read_npz(raw: bytes, fail: Callable[[str], SpecError]) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            if not isinstance(npz, Mapping):
                raise fail("not an .npz archive")
            names = sorted(npz.files)
            if names != sorted(SPECTRUM_COLUMNS):
                raise fail(f"must hold exactly the arrays `eigenvalues` and `initial_error`, got {names!r}")
            arrays = [npz[col] for col in SPECTRUM_COLUMNS]
    except SpecError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise fail(f"cannot read the .npz archive: {str(err)[:200]}") from None
    out = []
    for col, arr in zip(SPECTRUM_COLUMNS, arrays, strict=True):
        if arr.ndim != 1 or arr.dtype.kind not in "iuf":
            raise fail(
                f"`{col}` must be a 1-d array of real numbers, got dtype {arr.dtype} shape {arr.shape}"
            )
        arr = arr.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise fail(f"`{col}` must be finite, got {arr[bad[0]]!r} at index {int(bad[0])}")
        out.append(arr)
    return out[0], out[1]


# --- writing


def _dump_model(model: Model) -> list[str]:
    sigma = _noise_std(model.noise_variance)
    params = _powerlaw_params(model, sigma)
    if params is not None:
        initial_loss, finite_size = params
        loss = _toml_str(initial_loss) if isinstance(initial_loss, str) else _toml_float(initial_loss)
        lines = [
            'kind = "powerlaw"',
            f"a = {_toml_float(model.a)}",
            f"b = {_toml_float(model.b)}",
            f"n_modes = {model.n_modes - model.null_modes}",
            f"noise_std = {_toml_float(sigma)}",
            f"initial_loss = {loss}",
            f"finite_size = {'true' if finite_size else 'false'}",
        ]
        if model.null_modes:
            lines += [
                f"null_modes = {model.null_modes}",
                f"null_eigenvalue = {_toml_float(model.null_eigenvalue)}",
            ]
        return lines
    return [
        'kind = "custom"',
        f"noise_std = {_toml_float(sigma)}",
        f"residual = {_toml_float(model.residual)}",
        "eigenvalues = " + _toml_array(model.eigenvalues),
        "initial_error = " + _toml_array(model.initial_error),
    ]


def _noise_std(variance: float) -> float:
    """A sigma with ``sigma**2 == variance`` exactly, when one exists near the square root."""
    s = math.sqrt(variance)
    candidate = s
    for _ in range(4):
        if candidate * candidate == variance:
            return candidate
        candidate = math.nextafter(candidate, math.inf)
    candidate = s
    for _ in range(4):
        if candidate * candidate == variance:
            return candidate
        candidate = math.nextafter(candidate, 0.0)
    return s


def _powerlaw_params(model: Model, sigma: float) -> tuple[float | str, bool] | None:
    """``(initial_loss, finite_size)`` that make ``Model.powerlaw`` reproduce ``model`` exactly."""
    if not model.is_powerlaw or sigma * sigma != model.noise_variance:
        return None
    total = model.initial_loss + model.residual
    candidates: list[float | str] = ["raw"]
    for digits in (6, 9, 12, 15, 17):
        candidates.append(float(f"{total:.{digits}g}"))
    up = down = total
    for _ in range(4):
        up, down = math.nextafter(up, math.inf), math.nextafter(down, 0.0)
        candidates += [up, down]
    seen: set[object] = set()
    for finite_size in (model.residual > 0, model.residual == 0):
        for initial_loss in candidates:
            if (finite_size, initial_loss) in seen:
                continue
            seen.add((finite_size, initial_loss))
            try:
                with np.errstate(all="ignore"):
                    trial = Model.powerlaw(
                        model.a,
                        model.b,
                        model.n_modes - model.null_modes,
                        noise_std=sigma,
                        initial_loss=initial_loss,
                        finite_size=finite_size,
                        null_modes=model.null_modes,
                        null_eigenvalue=model.null_eigenvalue,
                    )
            except (ProblemError, OverflowError):
                continue
            if (
                trial.residual == model.residual
                and np.array_equal(trial.eigenvalues, model.eigenvalues)
                and np.array_equal(trial.initial_error, model.initial_error)
            ):
                return initial_loss, finite_size
    return None


def _toml_float(x: float) -> str:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot write a non-finite number {x!r} in a spec")
    return repr(x)


def _toml_array(values: np.ndarray) -> str:
    items = [_toml_float(x) for x in np.asarray(values, dtype=np.float64)]
    lines = ["["]
    for i in range(0, len(items), 4):
        lines.append("    " + ", ".join(items[i : i + 4]) + ",")
    lines.append("]")
    return "\n".join(lines)


def _toml_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --- helpers


def _long_integer_key(text: str) -> str | None:
    """The key path holding the first integer too long for Python to convert (tomllib does not say)."""
    import re

    table = ""
    for line in text.splitlines():
        header = re.match(r"\s*\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$", line)
        if header:
            table = header.group(1)
        elif re.search(r"\d{4000}", line) and "=" in line:
            key = line.split("=", 1)[0].strip().strip('"')
            return f"{table}.{key}" if table else key
    return None


def _number(value: Any, fail: Callable[[str], SpecError]) -> int | float:
    """A finite int or float from TOML (no strings, booleans, arrays or tables)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise fail(f"must be a number, got {_show(value)} ({_kind(value)})")
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise fail(f"must be a finite number, got {_show(value)} (too large)") from None
        return value
    if not math.isfinite(value):
        raise fail(f"must be a finite number, got {_show(value)}")
    return float(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"  # dates and times


def _show(value: Any) -> str:
    """The value as the user wrote it, roughly, cut to a readable length."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    else:
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
