"""Sweeps: one spec, some of its keys varied over ranges, every point designed (``schedopt sweep``).

A variation is ``key=LO:HI:N`` (``N`` values from ``LO`` to ``HI``, evenly spaced) or
``key=LO:HI:N:log`` (geometrically spaced); ``key`` is a dotted key of the spec
(``model.a``, ``training.horizon``, ``controls.learning_rate.max``) that the spec
already sets. Several variations span their Cartesian product. A key whose value in the
spec is an integer takes rounded values. Every point is the spec with its values
substituted, parsed and validated like a spec file: a point the spec reader or the solver
rejects is reported with its error while the valid points are designed, all of them by
:func:`schedopt.design_many` on the chosen backend.
"""

from __future__ import annotations

import copy
import itertools
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schedopt.errors import ProblemError, SchedoptError

__all__ = ["Variation", "parse_variation", "run_sweep", "sweep_problems"]


@dataclass(frozen=True)
class Variation:
    """One varied key and its values."""

    key: str
    values: tuple[Any, ...]


def parse_variation(text: str) -> tuple[str, float, float, int, bool]:
    """``"key=LO:HI:N[:log]"`` → ``(key, lo, hi, n, log)``; a malformed text is an error naming it."""
    key, sep, rng = text.partition("=")
    parts = rng.split(":")
    log = len(parts) == 4 and parts[3].strip() == "log"
    try:
        if not sep or not key.strip() or len(parts) not in (3, 4) or (len(parts) == 4 and not log):
            raise ValueError
        lo, hi, count = float(parts[0]), float(parts[1]), float(parts[2])
        if not (math.isfinite(lo) and math.isfinite(hi)) or not count.is_integer() or count < 1:
            raise ValueError
        if log and (lo <= 0 or hi <= 0):
            raise ValueError
    except ValueError:
        raise ProblemError(
            f"`--vary` must be KEY=LO:HI:N or KEY=LO:HI:N:log (N >= 1; log needs LO, HI > 0), got {text!r}",
            field="vary",
        ) from None
    return key.strip(), lo, hi, int(count), log


def _lookup(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ProblemError(
                f"`--vary` key {key!r} is not set in the spec (vary a key the spec sets, e.g. model.a)",
                field="vary",
            )
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise ProblemError(f"`--vary` key {key!r} is not a number in the spec, got {node!r}", field="vary")
    return node


def _assign(data: dict[str, Any], key: str, value: Any) -> None:
    *path, last = key.split(".")
    node = data
    for part in path:
        node = node[part]
    node[last] = value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            repr(value)
            if math.isfinite(value)
            else ("nan" if value != value else ("inf" if value > 0 else "-inf"))
        )
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ProblemError(f"spec value of type {type(value).__name__} cannot be swept", field="vary")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def _toml_text(data: Mapping[str, Any], prefix: str = "") -> str:
    """TOML text of a parsed spec (tables, arrays and scalars: what spec files hold)."""
    scalars = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    lines = [*([f"[{prefix}]"] if prefix and scalars else []), *scalars]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(_toml_text(v, f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k)))
    return "\n".join(lines)


def variations(spec_text: str, texts: Sequence[str]) -> list[Variation]:
    """The variations ``texts`` checked against the spec: keys it sets, integer keys rounded."""
    data = tomllib.loads(spec_text)
    out, seen = [], set()
    for text in texts:
        key, lo, hi, count, log = parse_variation(text)
        if key in seen:
            raise ProblemError(f"`--vary` key {key!r} is given twice", field="vary")
        seen.add(key)
        current = _lookup(data, key)
        values = np.geomspace(lo, hi, count) if log else np.linspace(lo, hi, count)
        if isinstance(current, int):
            values = tuple(round(float(x)) for x in values)
        else:
            values = tuple(float(x) for x in values)
        out.append(Variation(key=key, values=values))
    if not out:
        raise ProblemError("`--vary` is required at least once (KEY=LO:HI:N)", field="vary")
    return out


def sweep_problems(
    spec_text: str, varied: Sequence[Variation], *, path: str | None = None, base_dir: str | None = None
) -> list[tuple[dict[str, Any], Any]]:
    """Every point of the product: ``(values by key, Problem or the SchedoptError of the point)``."""
    from schedopt.spec import parse_problem

    data = tomllib.loads(spec_text)
    points = []
    for combo in itertools.product(*(v.values for v in varied)):
        values = dict(zip((v.key for v in varied), combo, strict=True))
        point = copy.deepcopy(data)
        for key, value in values.items():
            _assign(point, key, value)
        try:
            problem = parse_problem(_toml_text(point), path=path, base_dir=base_dir)
        except SchedoptError as exc:
            problem = exc
        points.append((values, problem))
    return points


def run_sweep(
    spec_text: str,
    texts: Sequence[str],
    *,
    path: str | None = None,
    solver: str = "jax",
    options: Mapping[str, Any] | None = None,
    backend: Any = "local",
    max_batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Design every point of a sweep; the report: one row per point (values, status, loss, schedule).

    Rows are in the order of the product (last key fastest). An invalid point's row has
    status ``"invalid"`` and the error; the others the solve's status, final loss,
    iterations and control parameters. Timings are left out so that reports compare equal
    across backends.
    """
    from schedopt.batch import MAX_BATCH, design_many

    varied = variations(spec_text, texts)
    base_dir = str(Path(path).parent) if path is not None else None
    points = sweep_problems(spec_text, varied, path=path, base_dir=base_dir)
    valid = [i for i, (_, p) in enumerate(points) if not isinstance(p, SchedoptError)]
    solved = design_many(
        [points[i][1] for i in valid],
        solver,
        options=options,
        backend=backend,
        max_batch=max_batch or MAX_BATCH,
        progress=progress,
    )
    by_index = dict(zip(valid, solved, strict=True))
    rows = []
    for i, (values, problem) in enumerate(points):
        row: dict[str, Any] = {"point": i, "values": values}
        result = by_index.get(i, problem)
        if isinstance(result, SchedoptError):
            row.update(status="invalid", error=str(result))
        elif result.status == "invalid":
            row.update(status="invalid", error=result.message)
        else:
            row.update(
                status=result.status,
                final_loss=float(result.final_loss),
                iterations=int(result.iterations),
                parameters={k: [float(x) for x in v] for k, v in result.parameters.items()},
            )
        rows.append(row)
    return {
        "spec": path,
        "solver": solver,
        "vary": {v.key: list(v.values) for v in varied},
        "points": len(rows),
        "invalid": sum(r["status"] == "invalid" for r in rows),
        "converged": sum(r["status"] == "converged" for r in rows),
        "rows": rows,
    }
