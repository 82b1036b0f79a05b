"""Writing a spec: a :class:`~schedopt.problem.Problem` → TOML text that reads back to the same problem."""

from __future__ import annotations

import math

import numpy as np

from schedopt.errors import ProblemError
from schedopt.problem import (
    CONTROL_NAMES,
    Model,
    Problem,
)
from schedopt.spec._schema import SCHEMA_VERSION


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
        lines += _number_lines(problem.network.to_dict())
        if problem.network.free_offset is not None:
            lines += ["", "[network.free_offset]", *_number_lines(problem.network.free_offset.to_dict())]
    return "\n".join(lines) + "\n"


# --- writing


def _number_lines(values: dict[str, float | int]) -> list[str]:
    """``key = value`` lines of a table of numbers (integers as written, floats round-tripping)."""
    return [
        f"{key} = {value}" if isinstance(value, int) else f"{key} = {_toml_float(value)}"
        for key, value in values.items()
    ]


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
