"""One TOML table of a spec and its key path, with typed accessors that raise :class:`SpecError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from schedopt.errors import SpecError
from schedopt.spec._schema import _REQUIRED, _kind, _number, _show

if TYPE_CHECKING:
    from schedopt.spec._read import _Reader


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
