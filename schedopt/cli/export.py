"""The ``export`` command: a schedule file in a training loop's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schedopt.cli._app import _command
from schedopt.cli._options import (
    JsonOpt,
    TrustOpt,
    _parse_int,
)
from schedopt.cli._report import _emit_json, _fmt


@_command
def export(
    schedule: Annotated[
        Path, typer.Argument(help="Schedule file written by `schedopt design` (JSON or CSV).")
    ],
    to: Annotated[
        str, typer.Option("--to", help="json (optax-ready schedule file), csv, or torch (LambdaLR factors).")
    ] = "json",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output file (default: next to the input: NAME.optax.json, NAME.export.csv, NAME.torch.json)."
        ),
    ] = None,
    peak: Annotated[float | None, typer.Option(help="Rescale to this peak learning rate.")] = None,
    horizon: Annotated[str | None, typer.Option(help="Time-stretch to this horizon (steps).")] = None,
    force: Annotated[
        bool,
        typer.Option(help="Replace an existing output file; export a schedule from an unconverged solve."),
    ] = False,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Export a schedule for a training loop: optax-ready JSON, CSV, or a torch LambdaLR file.

    Load the JSON in a training loop with schedopt.export.to_optax(path), or the torch
    file's `base_lr` and `factors` with LambdaLR(optimizer, lambda t: factors[min(t, T-1)]).

    Example: schedopt export exports/easy-phase/schedule.json --to torch --peak 3e-4
    """
    from schedopt.export.files import export_schedule

    horizon_value = _parse_int("--horizon", horizon) if horizon is not None else None
    report = export_schedule(
        schedule, to=to, out=out, peak=peak, horizon=horizon_value, force=force, overwrite=force
    )
    if as_json:
        _emit_json(report)
    else:
        typer.echo(
            f"wrote {report['format']}: {report['path']} ({report['horizon']} steps, peak {_fmt(report['peak'])})"
        )
