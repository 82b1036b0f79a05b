"""The ``[model]`` table of a spec: a power law, or a custom spectrum inline or in a file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from schedopt import _validate as v
from schedopt._validate import MAX_DATA_BYTES, input_bytes
from schedopt.errors import SpecError
from schedopt.problem import Model
from schedopt.spec._schema import (
    _CUSTOM_KEYS,
    _POWERLAW_KEYS,
    MAX_MODES,
    MODEL_KINDS,
    SPECTRUM_COLUMNS,
    _show,
)
from schedopt.spec._spectrum_files import _read_csv, _read_npz
from schedopt.spec._table import _Table

if TYPE_CHECKING:
    from schedopt.spec._read import _Reader


def read_model(reader: _Reader, table: _Table) -> Model:
    """The model of ``[model]``: its ``kind`` picks the keys allowed and the reader."""
    kind = table.string("kind", "powerlaw")
    if kind not in MODEL_KINDS:
        raise table.fail("kind", f"must be one of {', '.join(map(repr, MODEL_KINDS))}, got {kind!r}")
    if kind == "powerlaw":
        table.check_keys(_POWERLAW_KEYS, other=_CUSTOM_KEYS, why='with kind = "powerlaw"')
        return _powerlaw(reader, table)
    table.check_keys(_CUSTOM_KEYS, other=_POWERLAW_KEYS, why='with kind = "custom"')
    return _custom(reader, table)


def _powerlaw(reader: _Reader, table: _Table) -> Model:
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
    return reader.build(
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


def _custom(reader: _Reader, table: _Table) -> Model:
    inline = [name for name in SPECTRUM_COLUMNS if table.has(name)]
    if table.has("file") and inline:
        raise table.fail(inline[0], f"give either `file` or inline `{inline[0]}`, not both")
    notes: dict[str, str] = {}
    if table.has("file"):
        eigenvalues, initial_error, where = _spectrum_file(reader, table)
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
            'a custom model needs `file = "..."` or inline `eigenvalues = [...]` and `initial_error = [...]`',
        )
    noise_std = table.number("noise_std", 0.0)
    residual = table.number("residual", 0.0)
    # The record takes the variance, whose square would hide a negative sigma.
    reader.build({}, "model.noise_std", lambda: v.nonnegative("noise_std", noise_std))
    fields = {**keys, "noise_variance": "model.noise_std", "residual": "model.residual"}
    return reader.build(
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


def _spectrum_file(reader: _Reader, table: _Table) -> tuple[np.ndarray, np.ndarray, str]:
    name = table.string("file")
    if not name.strip():
        raise table.fail("file", f"must name a .csv or .npz file, got {name!r}")
    path = reader.base_dir / name
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
