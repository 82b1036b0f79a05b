"""Reading a spec: TOML text → checked tables → a validated :class:`~schedopt.problem.Problem`.

Every invalid input raises exactly one :class:`~schedopt.errors.SpecError` naming the file,
the key path and the bad value; value checks are the records' own (their field is mapped
back to the key path), this module adds what only the file knows.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

import numpy as np

from schedopt._validate import MAX_SPEC_BYTES, input_bytes
from schedopt.errors import ProblemError, SpecError
from schedopt.problem import (
    CONTROL_NAMES,
    ControlSpec,
    FreeOffsetFit,
    Model,
    NetworkUnits,
    Problem,
    SpecSource,
    Training,
)
from schedopt.spec._model import read_model
from schedopt.spec._schema import (
    _CONTROL_KEYS,
    _DEFAULT_LABEL,
    _DEFAULT_RESOURCE,
    _FREE_OFFSET_KEYS,
    _NETWORK_KEYS,
    _STRING_LABEL,
    _T,
    _TOP_KEYS,
    _TRAINING_KEYS,
    SCHEMA_VERSION,
    _kind,
    _long_integer_key,
    _show,
)
from schedopt.spec._table import _Table

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


# --- reading


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
        pilot_warmup = table.integer("pilot_warmup", 0)
        pilot_horizon = table.integer("pilot_horizon", 0)
        bracketed_above = table.number("bracketed_above", 0.0)
        top_pilot_ahead = table.number("top_pilot_ahead", 0.0)
        free_offset = self.free_offset(table.table("free_offset")) if table.has("free_offset") else None
        return self.build(
            {name: f"network.{name}" for name in _NETWORK_KEYS},
            "network",
            lambda: NetworkUnits(
                learning_rate_scale=kappa,
                loss_scale=scale,
                loss_offset=offset,
                learning_rate_exponent=exponent,
                learning_rate_reference=reference,
                pilot_warmup=pilot_warmup,
                pilot_horizon=pilot_horizon,
                bracketed_above=bracketed_above,
                top_pilot_ahead=top_pilot_ahead,
                free_offset=free_offset,
            ),
        )

    def free_offset(self, table: _Table) -> FreeOffsetFit:
        """``[network.free_offset]``: every key required (a partial refit is no fit)."""
        table.check_keys(_FREE_OFFSET_KEYS)
        values = {name: table.number(name) for name in _FREE_OFFSET_KEYS}
        return self.build(
            {name: f"network.free_offset.{name}" for name in _FREE_OFFSET_KEYS},
            "network.free_offset",
            lambda: FreeOffsetFit(**values),
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

    def model(self, table: _Table) -> Model:
        return read_model(self, table)

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
