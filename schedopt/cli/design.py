"""Commands on schedules of one problem: ``simulate``, ``design``, ``compare``, ``plot``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schedopt.cli._app import _command
from schedopt.cli._options import (
    MAX_CHECKPOINTS,
    ForceOpt,
    JsonOpt,
    OutDirOpt,
    OutFileOpt,
    OutOpt,
    ProgressOpt,
    TrustOpt,
    WarmupShapeOpt,
    _load,
    _out_file,
    _out_folder,
    _override,
    _parse_int,
    _refuse_existing,
)
from schedopt.cli._report import _emit_json, _fmt, _live, _progress, _table
from schedopt.errors import ProblemError


@_command
def simulate(
    spec: Annotated[Path, typer.Argument(help="Problem spec (TOML).")],
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule",
            "-s",
            help="NAME:ARGS of a schedule family (constant:0.1, cosine:0.3, linear:0.3, "
            "wsd_sqrt:0.3,0.2, power_law:0.3,0.5, exponential:0.3,0.01) or file:PATH of a schedule file.",
        ),
    ] = "constant:0.1",
    horizon: Annotated[
        str | None, typer.Option(metavar="STEPS", help="Simulate at this horizon instead of the spec's.")
    ] = None,
    checkpoints: Annotated[int, typer.Option(help="Number of checkpoints to print.")] = 12,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Simulate the exact SGD loss dynamics of a schedule on a problem.

    Example: schedopt simulate easy-phase --schedule cosine:0.3
    """
    from schedopt.dynamics.recursion import loss_curve
    from schedopt.schedule import parse_schedule_text

    if not 1 <= checkpoints <= MAX_CHECKPOINTS:
        raise ProblemError(
            f"`--checkpoints` must be between 1 and {MAX_CHECKPOINTS}, got {checkpoints}",
            field="--checkpoints",
        )
    from schedopt.compare import extrapolation_notes, model_learning_rate

    problem = _override(_load(spec), horizon=horizon)
    sched = parse_schedule_text(schedule, problem.horizon)
    if sched.horizon != problem.horizon:
        problem = problem.with_horizon(sched.horizon)
    momentum = sched.momentum if sched.momentum is not None else problem.training.momentum
    network = problem.network  # a fitted spec: learning rates and losses in the network's units
    traj = loss_curve(
        problem.model,
        model_learning_rate(sched, problem),
        batch_size=sched.batch_size if sched.batch_size is not None else problem.training.batch_size,
        momentum=momentum if (sched.momentum is not None or problem.training.momentum > 0) else None,
    )
    import numpy as np

    steps = np.unique(np.geomspace(1, problem.horizon, max(2, checkpoints)).round().astype(int))
    steps = np.unique(np.concatenate([[0], steps]))

    def shown(loss):
        return float(loss if network is None else network.network_loss(loss))

    points = [{"step": int(t), "loss": shown(traj.loss[t])} for t in steps]
    if network is not None:
        for p, t in zip(points, steps, strict=True):
            p["model_loss"] = float(traj.loss[t])
    result = {
        "problem": problem.name,
        "schedule": schedule,
        "horizon": problem.horizon,
        "units": {"learning_rate": "network", "loss": "network", "model_loss": "model"}
        if network is not None
        else {"learning_rate": "model", "loss": "model"},
        "final_loss": shown(traj.final_loss),
        "loss_floor": shown(problem.model.residual),
        "diverged": bool(traj.diverged),
        "divergence_step": int(traj.divergence_step),
        "checkpoints": points,
    }
    if network is not None:
        result["model_final_loss"] = float(traj.final_loss)
        result["notes"] = extrapolation_notes(problem, [schedule], model_learning_rate(sched, problem))
    if as_json:
        _emit_json(result)
    else:
        if network is None:
            columns, rows = ["step", "excess loss"], [[p["step"], _fmt(p["loss"])] for p in points]
        else:
            columns = ["step", "network loss", "model excess loss"]
            rows = [[p["step"], _fmt(p["loss"]), _fmt(p["model_loss"])] for p in points]
        _table(f"{problem.name}: {schedule} (T = {problem.horizon})", columns, rows)
        if network is None:
            typer.echo(f"final loss L_T = {_fmt(result['final_loss'])}")
        else:
            typer.echo(
                f"final network loss {_fmt(result['final_loss'])} (model L_T = {_fmt(traj.final_loss)}); "
                "learning rates read as the network's (the spec's [network] map)"
            )
            for note in result["notes"]:
                typer.echo(f"note: {note}", err=True)
    if traj.diverged:
        typer.echo(
            f"error: the loss diverged at step {int(traj.divergence_step)} "
            "(learning rate above the stability threshold)",
            err=True,
        )
        raise typer.Exit(1)


@_command
def design(
    spec: Annotated[
        Path | None, typer.Argument(help="Problem spec (TOML); default: the embedded easy-phase problem.")
    ] = None,
    solver: Annotated[str, typer.Option(help="jax, casadi or pontryagin.")] = "jax",
    horizon: Annotated[
        str | None,
        typer.Option(
            metavar="STEPS",
            help="Design for this horizon instead of the spec's, e.g. 1e5: the schedule is solved "
            "afresh there (transfer moves a designed one by the phase rule; export --stretch-to stretches it).",
        ),
    ] = None,
    blocks: Annotated[int | None, typer.Option(help="Override the number of control blocks.")] = None,
    grid: Annotated[str | None, typer.Option(help="uniform, geometric-end or geometric-both.")] = None,
    out: OutDirOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            metavar="", help="Replace existing output files; write them even if the solve did not converge."
        ),
    ] = False,
    baselines: Annotated[
        bool, typer.Option(metavar="", help="Tune and compare the baseline schedules.")
    ] = True,
    warmup: Annotated[
        int | None,
        typer.Option(
            "--warmup",
            metavar="STEPS",
            help="The first STEPS steps ramp up to the peak (0: none; default: the pilots' warmup "
            "for a fitted spec, else 0).",
        ),
    ] = None,
    warmup_shape: WarmupShapeOpt = "linear",
    form: Annotated[
        str,
        typer.Option(
            help="auto, free or plateau-anneal: a constant plateau, then an anneal the model shapes "
            "(auto: plateau-anneal for a spec fitted to a real network, free otherwise)."
        ),
    ] = "auto",
    anneal: Annotated[
        str,
        typer.Option(
            help="plateau-anneal form only: model (the anneal the model solves for) or 1-sqrt (WSD's "
            "1-sqrt cooldown from the plateau the model chooses); auto: 1-sqrt for a spec fitted to a "
            "real network (measured better on real tasks, docs/calibration.md), model otherwise."
        ),
    ] = "auto",
    plateau_tolerance: Annotated[
        float | None,
        typer.Option(
            help="1-sqrt anneal only: the model does not rank plateau levels whose final losses differ by "
            "less than this fraction; the plateau is the geometric centre of those within it of the "
            "best (default 0.003, below fitted models' errors; 0: the model's minimum)."
        ),
    ] = None,
    figure: Annotated[
        str,
        typer.Option(
            metavar="FORMAT",
            help="The figure: svg (design.svg), png (design.png, needs the plots extra) or none.",
        ),
    ] = "svg",
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Design the optimal learning-rate schedule; compare it with tuned baselines; write files.

    Writes schedule.json, schedule.csv, design.json and design.svg to exports/<problem>/.
    With --warmup W the first W steps ramp to the learning-rate cap and stay fixed; the
    solver optimises the steps after them (the baselines get the same ramp).

    Example: schedopt design hard-phase --horizon 1e5 --grid geometric-end
    """
    from schedopt.design import DESIGN_FILES, check_figure, write_design
    from schedopt.design import design as run_design

    if check_figure(figure) == "png":
        from schedopt.plots import require_matplotlib

        require_matplotlib("--figure png")
    given = _load(spec)
    problem = _override(given, horizon=horizon, blocks=blocks, grid=grid)
    # a fitted spec's own horizon is its longest pilot's: the plateau is chosen there (--form)
    peak_horizon = given.horizon if given.network is not None and problem.horizon > given.horizon else None
    if warmup is None:  # a fitted spec designs with the warmup its pilots ran
        warmup = given.network.pilot_warmup if given.network is not None else 0
    folder = _out_folder(out, Path("exports") / problem.name)
    _refuse_existing(force, *(folder / name for name in DESIGN_FILES))
    with _live(False if as_json and progress is None else progress):
        result = run_design(
            problem,
            solver=solver,
            baselines=None if baselines else (),
            progress=_progress(False if as_json and progress is None else progress),
            warmup=warmup,
            warmup_shape=warmup_shape,
            form=form,
            peak_horizon=peak_horizon,
            anneal=anneal,
            plateau_tolerance=plateau_tolerance,
        )
    sol = result.solution
    failed = not sol.converged
    if not failed or force:
        result = write_design(result, folder, force=force, overwrite=force, figure=figure)
    report = result.to_dict()
    if as_json:
        _emit_json(report)
    else:
        _show_design(result, report, problem)
    if failed:
        typer.echo(
            f"error: solver {sol.solver!r} did not converge (status {sol.status!r}: {sol.message})"
            + ("; files written and marked unconverged" if force else "; nothing written (use --force)"),
            err=True,
        )
        raise typer.Exit(1)


def _show_design(result, report: dict, problem) -> None:
    """The human-readable design report: notes, the schedule table, its footnotes and the files written."""
    for note in report["form"].get("notes", ()):
        typer.echo(f"warning: {note}", err=True)
    hedge = report["form"].get("offset_hedge")
    if hedge and hedge["taken"] == "free":
        typer.echo(
            f"note: the pilots do not identify the irreducible loss: fitted with it free, the model puts the plateau "
            f"at {hedge['free_plateau']:.4g}, with its floor at {hedge['floored_plateau']:.4g}; the design takes the "
            "larger (docs/calibration.md)",
            err=True,
        )
    for note in report["notes"]:
        typer.echo(f"note: {note}", err=True)
    columns, rows = _design_rows(result.solution, report)
    a, b = result.exponents
    _table(
        f"{problem.name}: {result.phase} phase (a={a:.3g}, b={b:.3g}), T={problem.horizon}, N={problem.model.n_modes}",
        columns,
        rows,
    )
    if result.warmup is not None:
        w = result.warmup.to_dict()
        if w["ramp_steps"]:
            typer.echo(
                f"warmup: the first {w['ramp_steps']} steps ramp ({w['shape'].removesuffix('+plateau')}) to "
                f"{_fmt(w['peak'])} ({w['peak_units']} learning rate) and are fixed; every schedule above "
                "shares them"
            )
        if w["steps"] > w["ramp_steps"]:
            typer.echo(
                f"plateau: the design holds {_fmt(w['peak'])} until step {w['steps']}, then anneals "
                "(the baselines run their own shapes after the warmup)"
            )
    deg = report.get("degeneracy")
    if deg is not None:
        typer.echo(
            f"sample budget D = {_fmt(report['sample_budget'])} (baselines at batch D/T = "
            f"{_fmt(report['baseline_batch_size'])}); flatness along the eta/m-preserving direction "
            f"{deg['flatness']:.3g} ({'degenerate' if deg['degenerate'] else 'not degenerate'}, "
            f"tie-break {'applied' if deg['tie_break_applied'] else 'not applied'}); "
            f"steps needed with the learning rate at its cap: {deg['steps_at_cap']}"
        )
    net = report.get("network")
    if net is not None:
        typer.echo(
            f"network units (fitted): peak learning rate {_fmt(net['peak_learning_rate'])}, final "
            f"{_fmt(net['final_learning_rate'])}; predicted final loss {_fmt(net['final_loss'])} "
            f"(exports carry the network's learning rate)"
        )
        if net.get("prediction_evidence"):
            typer.echo(f"note: {net['prediction_evidence']['note']}")
    for kind, path in report["files"].items():
        typer.echo(f"wrote {kind}: {path}")


def _design_rows(sol, report: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the design table: the optimum, then each tuned baseline by final loss.

    For a fitted spec the network's loss and learning rates come first, the model's loss beside.
    """
    net = report.get("network")
    details = f"{sol.solver}, {sol.status}, {sol.iterations} it, {sol.wall_time:.2f} s"
    if net is None:
        columns = ["schedule", "final loss", "ratio to optimal", "details"]
        rows = [["optimal", _fmt(sol.final_loss), "1", details]]
    else:
        columns = ["schedule", "network loss", "model loss", "model ratio", "details (network lr)"]
        details += f", peak={_fmt(net['peak_learning_rate'])}"
        label = "designed" if report["form"]["form"] == "plateau-anneal" else "optimal"
        rows = [[label, _fmt(net["final_loss"]), _fmt(sol.final_loss), "1", details]]
    for name, entry in sorted(report["baselines"].items(), key=lambda kv: kv[1]["final_loss"]):
        params = dict(entry["params"])
        if net is not None and "peak" in params:
            params["peak"] = net["baselines"][name]["peak_learning_rate"]
        text = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        if entry["status"] != "converged":
            text += f" ({entry['status']})"
        if net is None:
            rows.append([name, _fmt(entry["final_loss"]), f"{entry['ratio']:.4f}", text])
        else:
            network_loss = net["baselines"][name]["final_loss"]
            rows.append([name, _fmt(network_loss), _fmt(entry["final_loss"]), f"{entry['ratio']:.4f}", text])
    return columns, rows


@_command
def compare(
    spec: Annotated[Path, typer.Argument(help="Problem spec (TOML) to compare on.")],
    schedules: Annotated[list[Path] | None, typer.Argument(help="Schedule files (JSON or CSV).")] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline", "-b", metavar="FAMILY", help="Baseline family to tune and include (repeatable)."
        ),
    ] = None,
    horizon: Annotated[
        str | None,
        typer.Option(
            metavar="STEPS",
            help="Compare at this horizon (default: the schedule files' own, else the spec's).",
        ),
    ] = None,
    out: OutDirOpt = None,
    force: ForceOpt = False,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare schedule files and tuned baselines on one problem: final losses, ratios, a PNG.

    Writes compare.json and compare.png.

    Example: schedopt compare easy-phase exports/easy-phase/schedule.json \\
                 -b cosine -b wsd_sqrt
    """
    from schedopt.compare import compare_schedules

    problem = _load(spec)
    folder = _out_folder(out, Path("exports") / problem.name)
    _refuse_existing(force, folder / "compare.json", folder / "compare.png")
    from schedopt.plots import require_matplotlib

    require_matplotlib("compare.png")
    steps = None if horizon is None else _parse_int("--horizon", horizon)
    result = compare_schedules(problem, list(schedules or []), list(baseline or []), horizon=steps)
    report = result.write(folder, overwrite=force)
    if as_json:
        _emit_json(report)
    else:
        if problem.network is None:
            columns = ["schedule", "final loss", "ratio to best", "source"]
            rows = [
                [e["name"], _fmt(e["final_loss"]), f"{e['ratio']:.4f}", e["source"]]
                for e in report["entries"]
            ]
        else:
            columns = ["schedule", "network loss", "ratio", "model loss", "model ratio", "source"]
            rows = [
                [
                    e["name"],
                    _fmt(e["final_loss"]),
                    f"{e['ratio']:.4f}",
                    _fmt(e["model_final_loss"]),
                    f"{e['model_ratio']:.4f}",
                    e["source"],
                ]
                for e in report["entries"]
            ]
        _table(f"{problem.name}: T={report['horizon']}", columns, rows)
        for note in report["notes"]:
            typer.echo(f"note: {note}", err=True)
        for kind, path in report["files"].items():
            typer.echo(f"wrote {kind}: {path}")


@_command
def plot(
    schedules: Annotated[list[Path], typer.Argument(help="Schedule files (JSON or CSV).")],
    spec: Annotated[Path | None, typer.Option(help="Problem spec: also plot the loss curves on it.")] = None,
    out: OutOpt("the current folder; the file is schedules.png") = None,
    out_file: OutFileOpt("PNG") = None,
    force: ForceOpt = False,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Plot schedule files (and their loss curves on a problem) to a PNG.

    Example: schedopt plot exports/easy-phase/schedule.json --spec easy-phase
    """
    from schedopt.compare import plot_schedule_files

    target = _out_file(out, out_file, "schedules.png", (".png",))
    _refuse_existing(force, target)
    path = plot_schedule_files(schedules, problem=_load(spec) if spec is not None else None, out=target)
    if as_json:
        _emit_json({"files": {"plot": str(path)}})
    else:
        typer.echo(f"wrote plot: {path}")
