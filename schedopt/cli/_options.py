"""Options and arguments shared by the commands, and the checks they run before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schedopt.errors import ProblemError, SchedoptError

MAX_CHECKPOINTS = 10_000  # rows `simulate` prints
ForceOpt = Annotated[bool, typer.Option("--force", metavar="", help="Replace existing output files.")]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust/--no-trust",
        metavar="",
        help="Load schedule files whose provenance hashes do not match their content (stated).",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json/--no-json", metavar="", help="Print a JSON object instead of a table.")
]
ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        metavar="",
        help="Live progress on stderr (iteration, objective, elapsed); default: only on a terminal.",
    ),
]
WarmupOpt = Annotated[
    int,
    typer.Option(
        "--warmup",
        metavar="STEPS",
        help="The first STEPS steps of the horizon ramp up to the peak learning rate (0: none).",
    ),
]
WarmupShapeOpt = Annotated[
    str, typer.Option("--warmup-shape", help="Shape of the warmup ramp: linear or cosine.")
]


def _load(spec: Path | None):
    """A spec file, or the name of a shipped problem (``easy-phase``) when no such file exists."""
    from schedopt.spec import default_problem, load_problem

    if spec is None:
        return default_problem()
    if not spec.exists() and spec.suffix == "" and len(spec.parts) == 1:
        from schedopt import problems

        return problems.load(str(spec))
    return load_problem(spec)


def _override(problem, *, horizon=None, blocks=None, grid=None):
    if horizon is not None:
        problem = problem.with_horizon(_parse_int("--horizon", horizon))
    changes = {}
    if blocks is not None:
        changes["blocks"] = blocks
    if grid is not None:
        changes["grid"] = grid
        if grid != "custom":
            changes["edges"] = None
    if changes:
        for name in problem.controls:
            problem = problem.with_control(name, **changes)
    return problem


def _refuse_existing(force: bool, *paths: Path | str | None) -> None:
    """Before any work: an existing output is an error naming it, unless --force."""
    from schedopt._io import refuse_existing

    if not force:
        refuse_existing(p for p in paths if p is not None)


def _check_input_file(path: Path, limit: int, what: str, error: type[SchedoptError]) -> None:
    """Refuse a missing, special (FIFO, device) or oversized input by ``os.stat``, before anyone opens it."""
    import os
    import stat

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return  # the reader names a missing file in its own words
    except (OSError, ValueError) as exc:
        raise error(f"{str(path)!r}: cannot read {what}: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{str(path)!r}: {what} must be a regular file, not a FIFO, device, socket or folder")
    if info.st_size > limit:
        raise error(f"{str(path)!r}: {what} is {info.st_size} bytes; the limit is {limit} bytes")


def _parse_int(option: str, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ProblemError(f"`{option}` must be a positive integer, got {text!r}", field=option) from None
    if not value.is_integer() or value < 1:
        raise ProblemError(f"`{option}` must be a positive integer, got {text!r}", field=option)
    from schedopt._validate import MAX_HORIZON

    if value > MAX_HORIZON:  # every use is a horizon: checked before anything is allocated
        raise ProblemError(f"`{option}` must be at most {MAX_HORIZON} steps, got {text!r}", field=option)
    return int(value)
