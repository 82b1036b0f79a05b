"""Commands that solve a problem many times: ``phase``, ``scaling``, ``transfer``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schedopt.cli._app import _command
from schedopt.cli._options import (
    ForceOpt,
    JsonOpt,
    OutDirOpt,
    TrustOpt,
    WarmupOpt,
    WarmupShapeOpt,
    _load,
    _out_folder,
    _parse_int,
    _refuse_existing,
)
from schedopt.cli._report import _bar, _emit_json, _fmt, _gap, _stderr, _table
from schedopt.cli.sweep import AddressOpt, BackendOpt, backend_of


@_command
def phase(
    spec: Annotated[
        Path | None, typer.Argument(help="Problem spec (TOML); default: the embedded problem.")
    ] = None,
    horizons: Annotated[
        str, typer.Option(help="LO:HI:COUNT log-spaced horizons, or a comma list.")
    ] = "1e2:1e4:5",
    solver: Annotated[str, typer.Option(help="jax, casadi or pontryagin.")] = "jax",
    out: OutDirOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
) -> None:
    """Solve across horizons; fit the schedule and loss exponents next to the theory's predictions.

    Writes phase.json and phase.png.

    Example: schedopt phase easy-phase --horizons 1e2:1e4:5
    """
    from schedopt.plots import plot_horizon_study
    from schedopt.studies.phase import parse_horizons, study_horizons

    problem = _load(spec)
    values = parse_horizons(horizons)
    folder = _out_folder(out, Path("exports") / problem.name)
    _refuse_existing(force, folder / "phase.json", folder / "phase.png")
    from schedopt.plots import require_matplotlib

    require_matplotlib("phase.png")
    with backend_of(backend, address) as engine, _bar(disable=as_json) as bar:
        task = bar.add_task("solving horizons", total=2 * len(values))
        study = study_horizons(
            problem,
            values,
            solver=solver,
            progress=lambda i, n: bar.update(task, completed=i, total=n),
            backend=engine,
        )
    report = study.to_dict()
    report["files"] = {"report": str(folder / "phase.json"), "plot": str(folder / "phase.png")}
    from schedopt._io import json_text, output_set

    with output_set(folder, ("phase.png", "phase.json"), overwrite=force) as stage:  # one set
        plot_horizon_study(study, stage / "phase.png")
        (stage / "phase.json").write_text(json_text(report), encoding="utf-8")
    if as_json:
        _emit_json(report)
    else:
        _show_phase(study, report, problem)


@_command
def scaling(
    spec: Annotated[
        Path | None,
        typer.Argument(help="Problem spec (TOML) with a power-law model; default: the embedded problem."),
    ] = None,
    compute: Annotated[
        str,
        typer.Option(help="Computes C = N*T*m: LO:HI:COUNT log-spaced (e.g. 1e6:1e10:9) or a comma list."),
    ] = "1e4:1e6:5",
    points: Annotated[int, typer.Option(help="Model sizes N scanned per compute (log grid).")] = 5,
    spacing: Annotated[float, typer.Option(help="Ratio between neighbouring model sizes.")] = 2**0.5,
    blocks: Annotated[
        int | None, typer.Option(help="Learning-rate blocks of the optimal schedule (default: the spec's).")
    ] = None,
    baselines: Annotated[
        bool, typer.Option(metavar="", help="Also measure the best-constant and cosine frontiers.")
    ] = True,
    plot: Annotated[bool, typer.Option(metavar="", help="Write scaling.png.")] = True,
    out: OutDirOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
) -> None:
    """Compute-optimal model size and horizon: N*(C), T*(C), L*(C) with fitted exponents vs THEORY §4.

    Each (N, T = C/(N m)) point gets its optimal schedule (and tuned baselines). The cost grows like the sum of the computes: the default takes minutes on one core, 1e6:1e10:9 takes hours.

    Writes scaling.json and scaling.png.

    Example: schedopt scaling easy-phase --compute 1e4:1e6:5
    """
    from schedopt._io import json_text, output_set
    from schedopt.plots import plot_scaling
    from schedopt.studies.scaling import SCHEDULES, parse_compute, study_scaling

    problem = _load(spec)
    values = parse_compute(compute)
    kinds = SCHEDULES if baselines else ("optimal",)
    folder = _out_folder(out, Path("exports") / problem.name)
    _refuse_existing(force, folder / "scaling.json", folder / "scaling.png" if plot else None)
    if plot:
        from schedopt.plots import require_matplotlib

        require_matplotlib("scaling.png (--no-plot skips it)")
    with backend_of(backend, address) as engine, _bar(disable=as_json) as bar:
        task = bar.add_task("solving computes", total=len(values))
        study = study_scaling(
            problem,
            values,
            schedules=kinds,
            points=points,
            spacing=spacing,
            blocks=blocks,
            progress=lambda i, n: bar.update(task, completed=i),
            backend=engine,
        )
    report = study.to_dict()
    report["files"] = {"report": str(folder / "scaling.json")}
    if plot:
        report["files"]["plot"] = str(folder / "scaling.png")
    names = ("scaling.png", "scaling.json") if plot else ("scaling.json",)
    stale = () if plot else ("scaling.png",)  # a plot of an older study must not survive next to this one
    with output_set(folder, names, overwrite=force, stale=stale) as stage:  # one set
        if plot:
            plot_scaling(study, stage / "scaling.png")
        (stage / "scaling.json").write_text(json_text(report), encoding="utf-8")
    if as_json:
        _emit_json(report)
    else:
        _show_scaling(study, report, problem, kinds)


@_command
def transfer(
    schedule: Annotated[Path, typer.Argument(help="Schedule written by `schedopt design` (JSON).")],
    horizon: Annotated[
        str,
        typer.Option(
            metavar="STEPS",
            help="The new horizon T2, e.g. 4e4: the schedule is moved there by the phase rule "
            "(design --horizon solves afresh; export --stretch-to only stretches).",
        ),
    ],
    spec: Annotated[
        Path | None,
        typer.Option(help="Problem spec to use instead of the one in the schedule's provenance (e.g. CSV)."),
    ] = None,
    reoptimise: Annotated[
        bool, typer.Option(metavar="", help="Re-optimise at T2 to measure the transfer's loss gap.")
    ] = True,
    anneal_exponent: Annotated[
        float | None,
        typer.Option(help="Hard phase: exponent e of the anneal fraction ~ T^-e (default (b-a)/(b-1))."),
    ] = None,
    solver: Annotated[
        str, typer.Option(help="Solver of the re-optimisation: jax, casadi or pontryagin.")
    ] = "jax",
    out: OutDirOpt = None,
    force: ForceOpt = False,
    trust: TrustOpt = False,
    warmup: WarmupOpt = 0,
    warmup_shape: WarmupShapeOpt = "linear",
    as_json: JsonOpt = False,
) -> None:
    """Transfer a designed schedule to a new horizon by the phase's rule; compare with re-optimising.

    Easy phase: learning rate x (T2/T)^-xi, shape in t/T. Hard phase: plateau kept, anneal rescaled by the predicted fraction. Boundary: stretched in t/T.

    Writes schedule-T<T2>.json, schedule-T<T2>.csv and transfer-T<T2>.json.

    Example: schedopt transfer exports/easy-phase/schedule.json --horizon 4e4
    """
    from schedopt._io import json_text, output_set
    from schedopt.schedule import load_schedule, save_schedule
    from schedopt.studies.transfer import problem_from_schedule, transfer_report

    target = _parse_int("--horizon", horizon)
    if warmup:
        from schedopt.schedule._warmup import check_warmup

        check_warmup(warmup, target, shape=warmup_shape, field="--warmup")
    source = load_schedule(schedule)
    if spec is not None:
        problem = _load(spec).at_horizon(source.horizon)
    else:
        problem = problem_from_schedule(source)
    folder = _out_folder(out, Path("exports") / problem.name)
    names = {
        "schedule_json": f"schedule-T{target}.json",
        "schedule_csv": f"schedule-T{target}.csv",
        "report": f"transfer-T{target}.json",
    }
    _refuse_existing(force, *(folder / name for name in names.values()))
    report = transfer_report(
        source,
        problem,
        target,
        reoptimise=reoptimise,
        solver=solver,
        anneal_exponent=anneal_exponent,
        source_label=str(schedule),
        warmup=warmup,
        warmup_shape=warmup_shape,
    )
    files = {kind: str(folder / name) for kind, name in names.items()}
    result = {**report.to_dict(), "source": str(schedule), "files": files}
    written = report.written
    with output_set(folder, names.values(), overwrite=force) as stage:  # the three files as one set
        save_schedule(written, stage / names["schedule_json"])
        save_schedule(written, stage / names["schedule_csv"])
        (stage / names["report"]).write_text(json_text(result), encoding="utf-8")
    if as_json:
        _emit_json(result)
    else:
        _show_transfer(result, problem, target)


def _show_phase(study, report: dict, problem) -> None:
    """The human-readable phase study: the horizons' table, measured vs predicted exponents, files."""
    _table(
        f"{problem.name}: {study.phase} phase (a={study.exponents[0]:.3g}, b={study.exponents[1]:.3g})",
        [
            "T",
            "status",
            "optimal L_T",
            "best const L_T",
            "best power law L_T",
            "peak lr",
            "plateau lr",
            "anneal frac",
        ],
        [
            [
                r["horizon"],
                r["status"],
                _fmt(r["final_loss"]),
                _fmt(r["constant_loss"]),
                _fmt(r["power_law_loss"]),
                _fmt(r["peak_lr"]),
                _fmt(r["plateau_lr"]),
                _fmt(r["anneal_fraction"]),
            ]
            for r in report["rows"]
        ],
    )
    pred, meas = report["predicted"], report["measured"]
    rows = []
    for key in (
        "xi",
        "delta",
        "loss_optimal",
        "loss_constant",
        "loss_power_law",
        "constant_lr",
        "anneal_fraction",
    ):
        fit = report["fits"].get({"xi": "level_lr"}.get(key, key))
        resid = f"{fit['residual']:.3g}" if isinstance(fit, dict) else "-"
        rng = f"{fit['x_min']:.3g}..{fit['x_max']:.3g}" if isinstance(fit, dict) else "-"
        p_val = pred.get(key if key != "loss_power_law" else "loss_constant")
        rows.append(
            [
                key,
                "-" if meas[key] is None else f"{meas[key]:.4f}",
                "-" if p_val is None else f"{p_val:.4f}",
                rng,
                resid,
            ]
        )
    rows.append(["plateau change", f"{meas['plateau_change']:.2%}", "0 (hard phase)", "-", "-"])
    _table(
        "exponents: measured vs predicted (THEORY §4)",
        ["quantity", "measured", "predicted", "fit range", "rms residual"],
        rows,
    )
    for kind, path in report["files"].items():
        typer.echo(f"wrote {kind}: {path}")


def _show_scaling(study, report: dict, problem, kinds) -> None:
    """The human-readable scaling study: the frontier, measured vs predicted exponents, multipliers, files."""
    rows = []
    for i, c in enumerate(study.computes):
        for kind in kinds:
            r = study.frontiers[kind][i]
            rows.append(
                [
                    f"{c:.3g}",
                    kind,
                    f"{r['n_modes']:.4g}" + ("" if r["interior"] else " (edge)"),
                    f"{r['horizon']:.4g}",
                    _fmt(r["loss"]),
                    r["scanned"],
                ]
            )
    _table(
        f"{problem.name}: compute-optimal frontier ({study.phase} phase, "
        f"a={problem.model.a:.3g}, b={problem.model.b:.3g}, m={problem.training.batch_size:g})",
        ["C", "schedule", "N*", "T*", "L*", "N scanned"],
        rows,
    )
    rows = []
    for kind in kinds:
        for key, label in (("model_size", "N*"), ("horizon", "T*"), ("loss", "L*")):
            fit = report["fits"][kind][key]
            pred = report["predicted"][kind][key]
            rows.append(
                [
                    f"{kind} {label}",
                    "-" if fit is None else f"{fit['exponent']:+.4f}" + _stderr(fit["stderr"]),
                    "-" if pred is None else f"{pred:+.4f}",
                    "-" if fit is None else f"{fit['x_min']:.3g}..{fit['x_max']:.3g} ({fit['points']} pts)",
                    "-" if fit is None else f"{fit['residual']:.3g}",
                ]
            )
    _table(
        "exponents p of X ~ C^p: measured vs predicted (THEORY §4; constant: derived)",
        ["quantity", "measured", "predicted", "fit range", "rms residual"],
        rows,
    )
    for kind, entries in report["multipliers"].items():
        text = ", ".join(
            f"C={e['compute']:.3g}: {e['multiplier']:.3g}x" + ("*" if e["extrapolated"] else "")
            for e in entries
        )
        typer.echo(f"compute multiplier of {kind} (compute it needs for the optimal loss / C): {text}")
    if report["multipliers"]:
        typer.echo("(* extrapolated with the baseline's fitted frontier)")
    for kind, path in report["files"].items():
        typer.echo(f"wrote {kind}: {path}")


def _show_transfer(result: dict, problem, target: int) -> None:
    """The human-readable transfer: losses and gaps of the transferred, stretched and re-optimised schedules."""
    plan, losses, gaps = result["transfer"], result["losses"], result["gaps"]
    network = result.get("network_losses")  # a fitted problem: the network's loss first, the model's beside

    def row(label: str, key: str, loss: float, gap: str) -> list[str]:
        return [label, *([_fmt(network[key])] if network else []), _fmt(loss), gap]

    rows = [
        row("transferred (phase rule)", "transferred", losses["transferred"], _gap(gaps["transferred"])),
        row("naive stretch in t/T", "stretch", losses["stretch"], _gap(gaps["stretch"])),
    ]
    if "warmup" in result:
        w = result["warmup"]
        label = f"transferred + warmup {w['steps']} (written)"
        rows.insert(1, row(label, "warmup", w["final_loss"], _gap(w["gap"])))
    if losses["reoptimised"] is not None:
        reopt = result["reoptimised"]
        rows.append(
            row("re-optimised (no warmup)", "reoptimised", losses["reoptimised"], f"0 ({reopt['status']})")
        )
    losses_shown = ["network loss", "model loss"] if network else ["final loss"]
    _table(
        f"{problem.name}: {plan['phase']} phase, T = {result['source_horizon']} -> {target}",
        ["schedule at T2", *losses_shown, "gap to re-optimised" + (" (model)" if network else "")],
        rows,
    )
    if plan["phase"] == "easy":
        typer.echo(f"learning rate x {plan['lr_factor']:.4g} = (T2/T)^-xi, xi = {plan['xi']:.4g}")
    elif plan["phase"] == "hard" and plan["anneal_fraction"] is not None:
        typer.echo(
            f"anneal fraction {plan['anneal_fraction_source']:.4g} -> {plan['anneal_fraction']:.4g} "
            f"(exponent {plan['anneal_exponent']:.4g})"
        )
    if plan["clipped_steps"]:
        typer.echo(f"note: {plan['clipped_steps']} steps set to the learning-rate cap")
    for kind, path in result["files"].items():
        typer.echo(f"wrote {kind}: {path}")
