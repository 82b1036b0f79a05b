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


#: Every command's ``--out`` is a folder it writes its files into (under their default names);
#: a command that writes one file also takes ``--out-file FILE`` for that file's exact path.
_FILE_SUFFIXES = (".json", ".csv", ".tsv", ".png", ".pdf", ".svg", ".toml", ".txt", ".yaml", ".yml", ".npz")


def OutOpt(default: str) -> object:
    """The ``--out DIR`` option of a command; ``default`` says where its files go without it."""
    return Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help=f"Folder to write into, created if missing (default {default})."
        ),
    ]


def OutFileOpt(what: str) -> object:
    """The ``--out-file FILE`` option of a command that writes one file."""
    return Annotated[
        Path | None,
        typer.Option("--out-file", metavar="FILE", help=f"Exact path of the {what} (instead of --out DIR)."),
    ]


OutDirOpt = OutOpt("exports/<problem>/")


def _out_folder(out: Path | None, default: Path) -> Path:
    """The folder of ``--out``: an existing file, or a path named like a file, is a usage error."""
    if out is None:
        return default
    if out.exists() and not out.is_dir():
        raise ProblemError(
            f"`--out` must be a folder (the command writes its files into it), got {str(out)!r}, "
            "an existing file",
            field="--out",
        )
    if not out.exists() and out.suffix.lower() in _FILE_SUFFIXES:
        raise ProblemError(
            f"`--out` must be a folder (the command writes its files into it), got {str(out)!r}, a file name",
            field="--out",
        )
    return out


def _out_file(out: Path | None, out_file: Path | None, name: str, suffixes: tuple[str, ...]) -> Path:
    """The file a one-file command writes: ``--out-file``, else ``--out`` / ``name``, else ``name`` here.

    ``--out FILE`` (a name ending in one of ``suffixes``, not an existing folder) was the
    file itself before ``--out`` meant a folder everywhere: still accepted, with a note.
    """
    if out is not None and out_file is not None:
        raise ProblemError(
            f"give `--out` (a folder) or `--out-file` (a file), not both: got {str(out)!r} and {str(out_file)!r}",
            field="--out-file",
        )
    if out is not None and not out.is_dir() and out.suffix.lower() in suffixes:
        typer.echo(
            f"note: `--out {out}` names a file; `--out` is a folder in every command: use `--out-file {out}` "
            "(deprecated; the old form still works)",
            err=True,
        )
        out, out_file = None, out
    if out_file is None:
        return _out_folder(out, Path(".")) / name
    if out_file.is_dir():
        raise ProblemError(
            f"`--out-file` must be a file, got {str(out_file)!r}, an existing folder (use --out for a folder)",
            field="--out-file",
        )
    if out_file.suffix.lower() not in suffixes:
        raise ProblemError(
            f"`--out-file` must end in {' or '.join(suffixes)}, got {str(out_file)!r}", field="--out-file"
        )
    return out_file


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
