"""The ``export`` command: a schedule file in a training loop's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schedopt.cli._app import _command
from schedopt.cli._options import (
    JsonOpt,
    TrustOpt,
    WarmupOpt,
    WarmupShapeOpt,
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
    warmup: WarmupOpt = 0,
    warmup_shape: WarmupShapeOpt = "linear",
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Export a schedule for a training loop: optax-ready JSON, CSV, or a torch LambdaLR file.

    --warmup W puts a ramp to the peak in the first W steps and the schedule, stretched
    to the remaining steps, after it (the horizon stays the same).

    Load the JSON in a training loop with schedopt.export.to_optax(path), or the torch
    file's `base_lr` and `factors` with LambdaLR(optimizer, lambda t: factors[min(t, T-1)]).

    Example: schedopt export exports/easy-phase/schedule.json --to torch --peak 3e-4
    """
    from schedopt.export.files import export_schedule

    horizon_value = _parse_int("--horizon", horizon) if horizon is not None else None
    if warmup:
        from schedopt.schedule._warmup import check_warmup

        check_warmup(warmup, horizon_value, shape=warmup_shape, field="--warmup")
    report = export_schedule(
        schedule,
        to=to,
        out=out,
        peak=peak,
        horizon=horizon_value,
        force=force,
        overwrite=force,
        warmup=warmup,
        warmup_shape=warmup_shape,
    )
    if as_json:
        _emit_json(report)
    else:
        typer.echo(
            f"wrote {report['format']}: {report['path']} ({report['horizon']} steps, peak {_fmt(report['peak'])}"
            + (f", warmup {report['warmup']} steps" if report.get("warmup") else "")
            + ")"
        )
