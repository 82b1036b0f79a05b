"""The ``schedopt`` command line: a thin typer layer over the library.

Exit codes: 0 success; 1 solver failure (did not converge, diverged); 2 usage or
spec error (one line naming the key). ``--json`` prints one documented JSON object
on standard output (see README, "JSON output").
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from schedopt.errors import ProblemError, SchedoptError

app = typer.Typer(
    name="schedopt",
    help="Design optimal learning-rate schedules by optimal control of a solvable SGD model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON object instead of a table.")]


def _version(value: bool) -> None:
    if value:
        from schedopt import __version__

        typer.echo(f"schedopt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """schedopt: optimal training schedules from a solvable model of SGD."""


def _command(fn):
    """Register a command whose SchedoptError becomes one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SchedoptError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return app.command()(wrapper)


def _emit_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=1, allow_nan=True))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(x) for x in row])
    Console().print(table)


def _load(spec: Path | None):
    from schedopt.spec import default_problem, load_problem

    return default_problem() if spec is None else load_problem(spec)


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


def _parse_int(option: str, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ProblemError(f"`{option}` must be a positive integer, got {text!r}", field=option) from None
    if not value.is_integer() or value < 1:
        raise ProblemError(f"`{option}` must be a positive integer, got {text!r}", field=option)
    return int(value)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


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
    horizon: Annotated[str | None, typer.Option(help="Override the spec's horizon.")] = None,
    checkpoints: Annotated[int, typer.Option(help="Number of checkpoints to print.")] = 12,
    as_json: JsonOpt = False,
) -> None:
    """Simulate the exact SGD loss dynamics of a schedule on a problem.

    Example: schedopt simulate problems/easy-phase.toml --schedule cosine:0.3
    """
    from schedopt.dynamics.recursion import loss_curve
    from schedopt.schedule_text import parse_schedule_text

    problem = _override(_load(spec), horizon=horizon)
    sched = parse_schedule_text(schedule, problem.horizon)
    if sched.horizon != problem.horizon:
        problem = problem.with_horizon(sched.horizon)
    momentum = sched.momentum if sched.momentum is not None else problem.training.momentum
    traj = loss_curve(
        problem.model,
        sched.learning_rate,
        batch_size=sched.batch_size if sched.batch_size is not None else problem.training.batch_size,
        momentum=momentum if (sched.momentum is not None or problem.training.momentum > 0) else None,
    )
    steps = np.unique(np.geomspace(1, problem.horizon, max(2, checkpoints)).round().astype(int))
    steps = np.unique(np.concatenate([[0], steps]))
    points = [{"step": int(t), "loss": float(traj.loss[t])} for t in steps]
    result = {
        "problem": problem.name,
        "schedule": schedule,
        "horizon": problem.horizon,
        "final_loss": float(traj.final_loss),
        "loss_floor": problem.model.residual,
        "diverged": bool(traj.diverged),
        "divergence_step": int(traj.divergence_step),
        "checkpoints": points,
    }
    if as_json:
        _emit_json(result)
    else:
        _table(
            f"{problem.name}: {schedule} (T = {problem.horizon})",
            ["step", "excess loss"],
            [[p["step"], _fmt(p["loss"])] for p in points],
        )
        typer.echo(f"final loss L_T = {_fmt(result['final_loss'])}")
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
    horizon: Annotated[str | None, typer.Option(help="Override the horizon (steps), e.g. 1e5.")] = None,
    blocks: Annotated[int | None, typer.Option(help="Override the number of control blocks.")] = None,
    grid: Annotated[str | None, typer.Option(help="uniform, geometric-end or geometric-both.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default exports/<problem>/).")] = None,
    force: Annotated[bool, typer.Option(help="Write files even if the solve did not converge.")] = False,
    baselines: Annotated[bool, typer.Option(help="Tune and compare the baseline schedules.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Design the optimal learning-rate schedule; compare it with tuned baselines; write files.

    Writes schedule.json, schedule.csv, design.json and design.png to exports/<problem>/.

    Example: schedopt design problems/hard-phase.toml --horizon 1e5 --grid geometric-end
    """
    from schedopt.design import design as run_design
    from schedopt.design import write_design

    problem = _override(_load(spec), horizon=horizon, blocks=blocks, grid=grid)
    result = run_design(problem, solver=solver, baselines=None if baselines else ())
    sol = result.solution
    folder = out if out is not None else Path("exports") / problem.name
    failed = not sol.converged
    if not failed or force:
        result = write_design(result, folder, force=force)
    report = result.to_dict()
    if as_json:
        _emit_json(report)
    else:
        rows = [
            [
                "optimal",
                _fmt(sol.final_loss),
                "1",
                f"{sol.solver}, {sol.status}, {sol.iterations} it, {sol.wall_time:.2f} s",
            ]
        ]
        for name, entry in sorted(report["baselines"].items(), key=lambda kv: kv[1]["final_loss"]):
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in entry["params"].items())
            rows.append([name, _fmt(entry["final_loss"]), f"{entry['ratio']:.4f}", params])
        a, b = result.exponents
        _table(
            f"{problem.name}: {result.phase} phase (a={a:.3g}, b={b:.3g}), T={problem.horizon}, N={problem.model.n_modes}",
            ["schedule", "final loss", "ratio to optimal", "details"],
            rows,
        )
        for kind, path in report["files"].items():
            typer.echo(f"wrote {kind}: {path}")
    if failed:
        typer.echo(
            f"error: solver {sol.solver!r} did not converge (status {sol.status!r}: {sol.message})"
            + ("; files written and marked unconverged" if force else "; nothing written (use --force)"),
            err=True,
        )
        raise typer.Exit(1)


@_command
def phase(
    spec: Annotated[
        Path | None, typer.Argument(help="Problem spec (TOML); default: the embedded problem.")
    ] = None,
    horizons: Annotated[
        str, typer.Option(help="LO:HI:COUNT log-spaced horizons, or a comma list.")
    ] = "1e2:1e4:5",
    solver: Annotated[str, typer.Option(help="jax, casadi or pontryagin.")] = "jax",
    out: Annotated[Path | None, typer.Option(help="Output folder (default exports/<problem>/).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Solve across horizons; fit the schedule and loss exponents next to the theory's predictions.

    Writes phase.json and phase.png.

    Example: schedopt phase problems/easy-phase.toml --horizons 1e2:1e4:5
    """
    from rich.progress import Progress

    from schedopt.horizons import parse_horizons, study_horizons
    from schedopt.plots import plot_horizon_study

    problem = _load(spec)
    values = parse_horizons(horizons)
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("solving horizons", total=len(values))
        study = study_horizons(
            problem, values, solver=solver, progress=lambda i, n: bar.update(task, completed=i)
        )
    folder = out if out is not None else Path("exports") / problem.name
    report = study.to_dict()
    report["files"] = {"report": str(folder / "phase.json"), "plot": str(folder / "phase.png")}
    plot_horizon_study(study, report["files"]["plot"])
    from schedopt._io import atomic_write_text

    atomic_write_text(report["files"]["report"], json.dumps(report, indent=1) + "\n")
    if as_json:
        _emit_json(report)
    else:
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


def main() -> None:
    """Console-script entry point."""
    app()
