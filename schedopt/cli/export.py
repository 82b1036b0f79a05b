"""The ``export`` and ``recommend`` commands: schedules in a training loop's format, and one without pilots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schedopt.cli._app import _command
from schedopt.cli._options import (
    ForceOpt,
    JsonOpt,
    OutFileOpt,
    OutOpt,
    TrustOpt,
    WarmupOpt,
    WarmupShapeOpt,
    _out_file,
    _parse_int,
    _refuse_existing,
)
from schedopt.cli._report import _emit_json, _fmt
from schedopt.errors import ProblemError


@_command
def export(
    schedule: Annotated[
        Path, typer.Argument(help="Schedule file written by `schedopt design` (JSON or CSV).")
    ],
    to: Annotated[
        str, typer.Option("--to", help="json (optax-ready schedule file), csv, or torch (LambdaLR factors).")
    ] = "json",
    out: OutOpt("the input's folder; the file is NAME.optax.json, NAME.export.csv or NAME.torch.json") = None,
    out_file: OutFileOpt("exported file") = None,
    peak: Annotated[float | None, typer.Option(help="Rescale to this peak learning rate.")] = None,
    stretch_to: Annotated[
        str | None,
        typer.Option(
            "--stretch-to",
            metavar="STEPS",
            help="Stretch the schedule in t/T to this many steps, shape unchanged (no model involved: "
            "schedopt transfer moves it by the phase rule, design --horizon solves afresh).",
        ),
    ] = None,
    horizon: Annotated[
        str | None,
        typer.Option("--horizon", metavar="STEPS", hidden=True, help="Deprecated name of --stretch-to."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            metavar="", help="Replace an existing output file; export a schedule from an unconverged solve."
        ),
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
    file's `base_lr` and `factors` with LambdaLR: the factor of step t is factors at
    index min(t, T - 1).

    Example: schedopt export exports/easy-phase/schedule.json --to torch \\
                 --peak 3e-4
    """
    from schedopt.export.files import EXPORT_FORMATS, default_export_name, export_schedule

    if horizon is not None:
        if stretch_to is not None:
            raise ProblemError(
                f"give `--stretch-to` only (`--horizon` is its deprecated name), got both: {stretch_to!r} "
                f"and {horizon!r}",
                field="--horizon",
            )
        typer.echo(
            "note: `export --horizon` is deprecated: it is a plain stretch in t/T, now `--stretch-to`; "
            "`schedopt transfer --horizon` moves a schedule by the phase rule",
            err=True,
        )
        stretch_to, option = horizon, "--horizon"
    else:
        option = "--stretch-to"
    horizon_value = _parse_int(option, stretch_to) if stretch_to is not None else None
    target = None
    if (out is not None or out_file is not None) and to in EXPORT_FORMATS:
        suffixes = (".csv",) if to == "csv" else (".json",)
        target = _out_file(out, out_file, default_export_name(schedule, to), suffixes)
    if warmup:
        from schedopt.schedule._warmup import check_warmup

        check_warmup(warmup, horizon_value, shape=warmup_shape, field="--warmup")
    report = export_schedule(
        schedule,
        to=to,
        out=target,
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


@_command
def recommend(
    horizon: Annotated[str, typer.Option(help="Your run's number of optimizer updates, e.g. 5e4.")],
    peak: Annotated[float, typer.Option(help="The peak learning rate you trust (your optimizer's units).")],
    optimizer: Annotated[
        str, typer.Option(help="The optimizer it drives: adamw, sgd, adam, lion, ...")
    ] = "adamw",
    phase: Annotated[
        str, typer.Option(help="easy, hard, or auto (easy: see the assumptions printed).")
    ] = "auto",
    peak_horizon: Annotated[
        str | None,
        typer.Option(help="The horizon your peak was tuned at, if another (moves it by the phase rule)."),
    ] = None,
    warmup: WarmupOpt = 0,
    warmup_shape: WarmupShapeOpt = "linear",
    out: OutOpt("the current folder; the file is recommended-T<H>.json") = None,
    out_file: OutFileOpt("schedule file (.json or .csv)") = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """A schedule without pilots: the theory's phase shape at your horizon and peak, with its caveats.

    Prints what it assumes and how far from optimal it may be (measured), and how to get the
    calibrated answer (pilots, fit, design).

    Example: schedopt recommend --horizon 50000 --peak 3e-4 --optimizer adamw \\
                 --warmup 500
    """
    from schedopt.recommend import recommend as run_recommend
    from schedopt.schedule import save_schedule

    steps = _parse_int("--horizon", horizon)
    tuned_at = _parse_int("--peak-horizon", peak_horizon) if peak_horizon is not None else None
    target = _out_file(out, out_file, f"recommended-T{steps}.json", (".json", ".csv"))
    _refuse_existing(force, target)
    result = run_recommend(
        steps,
        peak,
        optimizer=optimizer,
        phase=phase,
        peak_horizon=tuned_at,
        warmup=warmup,
        warmup_shape=warmup_shape,
    )
    save_schedule(result.schedule, target)
    report = {**result.to_dict(), "files": {"schedule": str(target)}}
    if as_json:
        _emit_json(report)
        return
    lr = result.schedule.learning_rate
    typer.echo(
        f"{result.phase} phase, {steps} updates of {optimizer}: peak {_fmt(result.peak)}, "
        f"final {_fmt(float(lr[-1]))}" + (f", warmup {warmup} steps" if warmup else "")
    )
    typer.echo("assumes:")
    for line in result.assumptions:
        typer.echo(f"  - {line}")
    typer.echo("how far from optimal it may be (measured):")
    typer.echo(f"  - {result.expected['model_note']} [{result.expected['model_source']}]")
    typer.echo(f"  - {result.expected['real_note']} [{result.expected['real_source']}]")
    for line in result.next_steps:
        typer.echo(f"next: {line}")
    typer.echo(f"wrote schedule: {target}")
