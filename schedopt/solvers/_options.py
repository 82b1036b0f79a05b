"""The base of every solver's options: a frozen record, checked when built, made from a mapping by name.

Each solver declares its options as a frozen dataclass subclass of :class:`SolverOptions`
(``JaxOptions``, ``CasadiOptions``, ``PontryaginOptions``): every field typed, with its
default and a line in the class's ``Attributes:``; ``__post_init__`` checks the values.
:func:`schedopt.solvers.solve` takes the record or a mapping (:meth:`SolverOptions.coerce`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np

from schedopt.errors import ProblemError

__all__ = ["SolverOptions", "as_dict", "choice", "nonnegative_int", "positive_int", "real_in"]


@dataclasses.dataclass(frozen=True)
class SolverOptions:
    """Options of one solver; subclasses are frozen dataclasses whose fields are the options."""

    #: The solver these options belong to (named in errors).
    solver: ClassVar[str] = ""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The options' names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> Self:
        """The defaults overridden by ``options``; an unknown name is refused, naming it."""
        options = dict(options or {})
        unknown = set(options) - set(cls.names())
        if unknown:
            raise ProblemError(
                f"unknown option(s) for solver {cls.solver!r}: {', '.join(sorted(unknown))} "
                f"(allowed: {', '.join(cls.names())})",
                field="options",
            )
        return cls(**options)

    @classmethod
    def coerce(cls, options: SolverOptions | Mapping[str, Any] | None) -> Self:
        """``options`` as this solver's record: ``None`` gives the defaults, a mapping :meth:`from_mapping`."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if isinstance(options, Mapping):
            return cls.from_mapping(options)
        raise ProblemError(
            f"options of solver {cls.solver!r} must be a {cls.__name__} or a mapping, "
            f"got {type(options).__name__}",
            field="options",
        )

    def to_dict(self) -> dict[str, Any]:
        """Every option by name (for records and JSON)."""
        return {name: getattr(self, name) for name in self.names()}

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)


def as_dict(options: SolverOptions | Mapping[str, Any] | None) -> dict[str, Any]:
    """Options as a plain dict (a record's every field, a mapping's keys), for records and JSON."""
    if isinstance(options, SolverOptions):
        return options.to_dict()
    return dict(options or {})


def choice(name: str, value: object, allowed: tuple[str, ...], why: str = "") -> None:
    """Refuse ``value`` of option ``name`` unless it is one of ``allowed`` (``why``: said after them)."""
    if value not in allowed:
        why = f" ({why})" if why else ""
        raise ProblemError(
            f"option `{name}` must be {' or '.join(repr(a) for a in allowed)}{why}, got {value!r}", field=name
        )


def _require(name: str, value: object, ok: bool, what: str) -> None:
    if not ok:
        raise ProblemError(f"option `{name}` must be {what}, got {value!r}", field=name)


def _is_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def nonnegative_int(name: str, value: Any) -> int:
    """Option ``name`` as an ``int``, refused unless a non-negative integer (bools and floats refused)."""
    _require(name, value, _is_int(value) and value >= 0, "a non-negative integer")
    return int(value)


def positive_int(name: str, value: Any) -> int:
    """Option ``name`` as an ``int``, refused unless a positive integer (bools and floats refused)."""
    _require(name, value, _is_int(value) and value > 0, "a positive integer")
    return int(value)


def real_in(name: str, value: Any, what: str, *, zero: bool = False) -> float:
    """Option ``name`` as a ``float``, refused unless a finite number above zero (or zero, with ``zero``);
    ``what`` says so in the error."""
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    _require(name, value, number and (0 <= value if zero else 0 < value) and value < math.inf, what)
    return float(value)
