"""Plain option values without pydantic (issue 13).

Typer (0.29) coerces every parameter's value through a pydantic ``TypeAdapter``; importing
pydantic and building the adapters cost ~0.06 CPU s of a ~0.9 s ``schedopt design --json``.
:func:`install` puts a coercion in front of typer's own: a value whose result is certain (a
``str``, a ``bool`` already parsed, a plain decimal ``int`` or ``float``, a ``Path`` given as
text) is converted here, exactly as typer would convert it; any other value (``1_000``,
`` 5``, ``abc``, a list, a choice, a path option with checks, ...) goes to typer's own
coercion, built on first use, so its results and its error messages are unchanged. With
another typer release line than :data:`TESTED_TYPER` (or one without these hooks),
:func:`install` does nothing: typer's own coercion, slower, the same values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["install"]

#: the typer release line whose private hooks this was written and tested against (``tests/test_cli_startup.py``)
TESTED_TYPER = "0.29."

_INT = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_OTHER = object()  # "not certain here": typer's own coercion decides


def _convert_str(value: Any) -> Any:
    return value if isinstance(value, str) else _OTHER


def _convert_bool(value: Any) -> Any:
    return value if isinstance(value, bool) else _OTHER


def _convert_int(value: Any) -> Any:
    if isinstance(value, str) and _INT.match(value):
        return int(value)
    return value if type(value) is int else _OTHER


def _convert_float(value: Any) -> Any:
    if isinstance(value, str) and _FLOAT.match(value):
        return float(value)
    return value if type(value) is float else _OTHER


_CONVERT = {str: _convert_str, bool: _convert_bool, int: _convert_int, float: _convert_float}


class _Plain:
    """A parameter's coercion: :data:`_CONVERT` or a ``Path`` first, typer's own for anything else."""

    __slots__ = ("_build", "_descriptor", "_full", "_path")

    def __init__(self, descriptor, build, path) -> None:
        self._descriptor, self._build, self._path = descriptor, build, path
        self._full = None

    def coerce(self, value: Any, param, ctx) -> Any:
        if not (param.multiple or param.nargs == -1):
            if value is None:
                return None  # as typer's RuntimeParam.coerce
            convert = _CONVERT.get(self._descriptor.annotation)
            if convert is not None:
                done = convert(value)
                if done is not _OTHER:
                    return done
            elif isinstance(value, str) and value and "\0" not in value:
                # a Path option: typer's own path checks, on the Path pydantic would make of the text
                return self._path(
                    Path(value), self._descriptor.parameter_info, path_type=Path, param=param, ctx=ctx
                )
        if self._full is None:
            self._full = self._build(self._descriptor)
        return self._full.coerce(value, param=param, ctx=ctx)


def install() -> None:
    """Coerce plain values without pydantic in typer's parameters (see the module's docstring)."""
    try:
        import typer
        import typer.core as core
        from typer._param_types import _path_options_requested, coerce_cli_path
    except ImportError:  # another typer: nothing to do
        return
    if not typer.__version__.startswith(TESTED_TYPER):  # private hooks: only the version tested against
        return
    build = getattr(core, "build_runtime_param", None)
    if build is None or getattr(build, "schedopt_plain", False):
        return

    def build_runtime_param(descriptor):
        info = descriptor.parameter_info
        annotation = descriptor.annotation
        plain = descriptor.file_annotation is None and getattr(info, "parser", None) is None
        if annotation in (int, float):
            plain = plain and info.min is None and info.max is None and not info.clamp
        elif annotation is Path:
            plain = plain and info.path_type in (None, Path) and not _path_options_requested(info)
        elif annotation not in (str, bool):
            plain = False
        return _Plain(descriptor, build, coerce_cli_path) if plain else build(descriptor)

    build_runtime_param.schedopt_plain = True
    build_runtime_param.typer_own = build
    core.build_runtime_param = build_runtime_param
