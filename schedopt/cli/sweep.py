"""``schedopt sweep`` and the backend options (``--backend``, ``--address``) of the commands that solve many problems."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from schedopt.cli._app import _command
from schedopt.cli._options import ForceOpt, JsonOpt, OutDirOpt, _out_folder, _refuse_existing
from schedopt.cli._report import _bar, _emit_json, _fmt, _table

BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help='Where the independent solves run: "local" (this process) or "ray" (a Ray cluster; '
        'pip install "schedopt\\[ray]"). Results are identical.',
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help='Ray cluster to join ("host:port" or "auto"); default with --backend ray: start a local one.',
    ),
]


@contextlib.contextmanager
def backend_of(name: str, address: str | None) -> Iterator[object]:
    """The backend for a command; a local Ray cluster it starts is stopped when the command ends."""
    from schedopt.backends import get_backend

    with get_backend(name, address) as backend:
        yield backend


@_command
def sweep(
    spec: Annotated[
        Path | None, typer.Argument(help="Problem spec (TOML); default: the embedded problem.")
    ] = None,
    vary: Annotated[
        list[str] | None,
        typer.Option(
            "--vary",
            metavar="KEY=RANGE",
            help="KEY=LO:HI:N (linear) or KEY=LO:HI:N:log, a dotted key the spec sets "
            "(e.g. model.a=1.5:2.5:5); repeat for a product.",
        ),
    ] = None,
    solver: Annotated[str, typer.Option(help="jax, casadi or pontryagin.")] = "jax",
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    max_batch: Annotated[int, typer.Option(help="Problems per vectorised solve.")] = 256,  # batch.MAX_BATCH
    out: OutDirOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Design the optimal schedule at every point of a sweep over spec keys; invalid points are reported per point.

    Writes sweep.json (one row per point: values, status, final loss, control parameters).
    Exit code 1 when some point is invalid or did not converge (the others are still designed).

    Example: schedopt sweep easy-phase --vary model.a=1.5:3:4 \\
                 --vary training.horizon=1e3:1e4:3:log
    """
    from schedopt._io import atomic_write_text, json_text
    from schedopt.spec import load_problem, parse_problem
    from schedopt.sweep import run_sweep, variations

    if spec is None:  # the embedded default problem's spec text
        from importlib import resources

        text, label = (
            resources.files("schedopt").joinpath("data/default.toml").read_text(encoding="utf-8"),
            None,
        )
        name = parse_problem(text).name
    else:
        name = load_problem(spec).name  # the spec itself must be valid; its points may not be
        text, label = spec.read_text(encoding="utf-8"), str(spec)
    variations(text, vary or [])  # bad --vary: an error before any work
    folder = _out_folder(out, Path("exports") / name)
    _refuse_existing(force, folder / "sweep.json")
    with backend_of(backend, address) as engine, _bar(disable=as_json) as bar:
        task = bar.add_task("designing points", total=None)
        report = run_sweep(
            text,
            vary or [],
            path=label,
            solver=solver,
            backend=engine,
            max_batch=max_batch,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    report["backend"] = backend
    report["files"] = {"report": str(folder / "sweep.json")}
    atomic_write_text(report["files"]["report"], json_text(report))
    if as_json:
        _emit_json(report)
    else:
        keys = list(report["vary"])
        _table(
            f"{name}: sweep over {', '.join(keys)} ({report['points']} points, {report['invalid']} invalid)",
            [*keys, "status", "final L_T", "iterations / error"],
            [
                [
                    *(_fmt(r["values"][k]) for k in keys),
                    r["status"],
                    _fmt(r["final_loss"]) if "final_loss" in r else "-",
                    str(r["iterations"]) if "iterations" in r else r["error"],
                ]
                for r in report["rows"]
            ],
        )
        typer.echo(f"wrote report: {report['files']['report']}")
    if report["converged"] < report["points"]:
        typer.echo(
            f"error: {report['points'] - report['converged']} of {report['points']} points invalid or "
            "not converged (see the report)",
            err=True,
        )
        raise typer.Exit(1)
