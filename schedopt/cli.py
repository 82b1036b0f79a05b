"""The ``schedopt`` command line: a thin typer layer over the library.

Exit codes: 0 success; 1 solver failure (did not converge, diverged); 2 usage or
spec error (one line naming the key). ``--json`` prints one documented JSON object
on standard output (see README, "JSON output").
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from schedopt.errors import ProblemError, SchedoptError

app = typer.Typer(
    name="schedopt",
    help="Design optimal learning-rate schedules by optimal control of a solvable SGD model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

MAX_CHECKPOINTS = 10_000  # rows `simulate` prints
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace existing output files.")]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust", help="Load schedule files whose provenance hashes do not match their content (stated)."
    ),
]
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
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the traceback of an error (also: environment SCHEDOPT_DEBUG=1)."),
    ] = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Do not use the compilation cache (also: environment SCHEDOPT_NO_CACHE=1; "
            "SCHEDOPT_CACHE_DIR moves it).",
        ),
    ] = False,
) -> None:
    """schedopt: optimal training schedules from a solvable model of SGD."""
    _DEBUG[0] = debug or _debug_env()
    _schedopt_warnings_on_one_line()
    if no_cache:
        _no_cache()


def _schedopt_warnings_on_one_line() -> None:
    """Show schedopt's own warnings as ``warning: ...`` on stderr (others keep Python's format)."""
    import warnings

    shown = warnings.showwarning
    if getattr(shown, "_schedopt", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("schedopt"):
            typer.echo(f"warning: {_one_line(message)}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    show._schedopt = True
    warnings.showwarning = show


def _no_cache() -> None:
    """Turn the compilation cache off for this process, before or after JAX was loaded."""
    import os
    import sys

    os.environ["SCHEDOPT_NO_CACHE"] = "1"  # read when schedopt first loads JAX
    if "schedopt._jax" in sys.modules:
        sys.modules["schedopt._jax"].disable_cache()


EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
_DEBUG = [False]


def _debug_env() -> bool:
    import os

    return os.environ.get("SCHEDOPT_DEBUG", "").strip().lower() in ("1", "true", "yes")


class Terminated(BaseException):
    """SIGTERM, raised by the handler :func:`main` installs (a BaseException, as KeyboardInterrupt is)."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _error_line(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code of an exception that ends a command."""
    if isinstance(exc, SchedoptError):
        return f"error: {exc}", exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "error: interrupted (SIGINT)", EXIT_INTERRUPTED
    if isinstance(exc, Terminated):
        return "error: terminated (SIGTERM)", EXIT_TERMINATED
    if isinstance(exc, MemoryError):
        return "error: out of memory (lower the horizon, n_modes or the input's size)", 2
    if isinstance(exc, OverflowError):
        return f"error: a number is too large to compute with ({_one_line(exc)})", 2
    if isinstance(exc, OSError):
        where = next((str(p) for p in (exc.filename, exc.filename2) if p is not None), None)
        reason = exc.strerror or _one_line(exc)
        return (f"error: {where!r}: {reason}" if where else f"error: {reason}"), 2
    raise exc


_HANDLED = (SchedoptError, KeyboardInterrupt, Terminated, MemoryError, OverflowError, OSError)


def _command(fn):
    """Register a command whose errors become one line on stderr and an exit code.

    SchedoptError: 2 (bad input) or 1 (solver failure); OSError (with its path),
    MemoryError and OverflowError: 2; Ctrl-C: 130; SIGTERM: 143. ``--debug`` (or
    SCHEDOPT_DEBUG=1) shows the traceback instead. Anything else is a bug and keeps it.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            if "trust" not in kwargs:
                return fn(*args, **kwargs)
            from schedopt.schedule import trusting

            with trusting(kwargs["trust"]) as notes:
                result = fn(*args, **kwargs)
            for note in notes:  # a schedule loaded unverified (--trust, or an older file) is said so
                typer.echo(f"note: {_one_line(note)}", err=True)
            return result
        except _HANDLED as exc:
            if _DEBUG[0] or _debug_env():
                raise
            line, code = _error_line(exc)
            typer.echo(line, err=True)
            raise typer.Exit(code) from None

    return app.command()(wrapper)


def _emit_json(obj: Any) -> None:
    from schedopt._io import json_text

    typer.echo(json_text(obj), nl=False)  # strict JSON: nan/inf as null (README, "JSON output")


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


def _refuse_existing(force: bool, *paths: Path | str | None) -> None:
    """Before any work: an existing output is an error naming it, unless --force."""
    from schedopt._io import refuse_existing

    if not force:
        refuse_existing(p for p in paths if p is not None)


MAX_PILOT_BYTES = (
    4 << 20
)  # a pilot CSV: ~140k rows; the fit holds rows x n_modes floats (~1.1 GB at 1000 modes)


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


def _progress():
    """Progress lines on stderr when it is a terminal (never in pipes, logs or --json output)."""
    import sys
    import time

    if not sys.stderr.isatty():
        return None
    start = time.perf_counter()

    def say(message: str) -> None:
        typer.echo(f"[{time.perf_counter() - start:6.1f} s] {message}", err=True)

    return say


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
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Simulate the exact SGD loss dynamics of a schedule on a problem.

    Example: schedopt simulate problems/easy-phase.toml --schedule cosine:0.3
    """
    from schedopt.dynamics.recursion import loss_curve
    from schedopt.schedule import parse_schedule_text

    if not 1 <= checkpoints <= MAX_CHECKPOINTS:
        raise ProblemError(
            f"`--checkpoints` must be between 1 and {MAX_CHECKPOINTS}, got {checkpoints}",
            field="--checkpoints",
        )
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
    import numpy as np

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
    force: Annotated[
        bool,
        typer.Option(help="Replace existing output files; write them even if the solve did not converge."),
    ] = False,
    baselines: Annotated[bool, typer.Option(help="Tune and compare the baseline schedules.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Design the optimal learning-rate schedule; compare it with tuned baselines; write files.

    Writes schedule.json, schedule.csv, design.json and design.png to exports/<problem>/.

    Example: schedopt design problems/hard-phase.toml --horizon 1e5 --grid geometric-end
    """
    from schedopt.design import DESIGN_FILES, write_design
    from schedopt.design import design as run_design

    problem = _override(_load(spec), horizon=horizon, blocks=blocks, grid=grid)
    folder = out if out is not None else Path("exports") / problem.name
    _refuse_existing(force, *(folder / name for name in DESIGN_FILES))
    result = run_design(
        problem, solver=solver, baselines=None if baselines else (), progress=None if as_json else _progress()
    )
    sol = result.solution
    failed = not sol.converged
    if not failed or force:
        result = write_design(result, folder, force=force, overwrite=force)
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
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Solve across horizons; fit the schedule and loss exponents next to the theory's predictions.

    Writes phase.json and phase.png.

    Example: schedopt phase problems/easy-phase.toml --horizons 1e2:1e4:5
    """
    from rich.progress import Progress

    from schedopt.plots import plot_horizon_study
    from schedopt.studies.phase import parse_horizons, study_horizons

    problem = _load(spec)
    values = parse_horizons(horizons)
    folder = out if out is not None else Path("exports") / problem.name
    _refuse_existing(force, folder / "phase.json", folder / "phase.png")
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("solving horizons", total=len(values))
        study = study_horizons(
            problem, values, solver=solver, progress=lambda i, n: bar.update(task, completed=i)
        )
    report = study.to_dict()
    report["files"] = {"report": str(folder / "phase.json"), "plot": str(folder / "phase.png")}
    plot_horizon_study(study, report["files"]["plot"])
    from schedopt._io import atomic_write_text, json_text

    atomic_write_text(report["files"]["report"], json_text(report))
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
        bool, typer.Option(help="Also measure the best-constant and cosine frontiers.")
    ] = True,
    plot: Annotated[bool, typer.Option(help="Write scaling.png.")] = True,
    out: Annotated[Path | None, typer.Option(help="Output folder (default exports/<problem>/).")] = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Compute-optimal model size and horizon: N*(C), T*(C), L*(C) with fitted exponents vs THEORY §4.

    Each (N, T = C/(N m)) point gets its optimal schedule (and tuned baselines). The cost grows like the sum of the computes: the default takes minutes on one core, 1e6:1e10:9 takes hours.

    Writes scaling.json and scaling.png.

    Example: schedopt scaling problems/easy-phase.toml --compute 1e4:1e6:5
    """
    from rich.progress import Progress

    from schedopt._io import atomic_write_text, json_text
    from schedopt.studies.scaling import SCHEDULES, parse_compute, plot_scaling, study_scaling

    problem = _load(spec)
    values = parse_compute(compute)
    kinds = SCHEDULES if baselines else ("optimal",)
    folder = out if out is not None else Path("exports") / problem.name
    _refuse_existing(force, folder / "scaling.json", folder / "scaling.png" if plot else None)
    with Progress(transient=True, disable=as_json) as bar:
        task = bar.add_task("solving computes", total=len(values))
        study = study_scaling(
            problem,
            values,
            schedules=kinds,
            points=points,
            spacing=spacing,
            blocks=blocks,
            progress=lambda i, n: bar.update(task, completed=i),
        )
    report = study.to_dict()
    report["files"] = {"report": str(folder / "scaling.json")}
    if plot:
        report["files"]["plot"] = str(folder / "scaling.png")
        plot_scaling(study, report["files"]["plot"])
    atomic_write_text(report["files"]["report"], json_text(report))
    if as_json:
        _emit_json(report)
        return
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


@_command
def transfer(
    schedule: Annotated[Path, typer.Argument(help="Schedule written by `schedopt design` (JSON).")],
    horizon: Annotated[str, typer.Option(help="New horizon T2 (steps), e.g. 4e4.")],
    spec: Annotated[
        Path | None,
        typer.Option(help="Problem spec to use instead of the one in the schedule's provenance (e.g. CSV)."),
    ] = None,
    reoptimise: Annotated[
        bool, typer.Option(help="Re-optimise at T2 to measure the transfer's loss gap.")
    ] = True,
    anneal_exponent: Annotated[
        float | None,
        typer.Option(help="Hard phase: exponent e of the anneal fraction ~ T^-e (default (b-a)/(b-1))."),
    ] = None,
    solver: Annotated[
        str, typer.Option(help="Solver of the re-optimisation: jax, casadi or pontryagin.")
    ] = "jax",
    out: Annotated[Path | None, typer.Option(help="Output folder (default exports/<problem>/).")] = None,
    force: ForceOpt = False,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Transfer a designed schedule to a new horizon by the phase's rule; compare with re-optimising.

    Easy phase: learning rate x (T2/T)^-xi, shape in t/T. Hard phase: plateau kept, anneal rescaled by the predicted fraction. Boundary: stretched in t/T.

    Writes schedule-T<T2>.json, schedule-T<T2>.csv and transfer-T<T2>.json.

    Example: schedopt transfer exports/easy-phase/schedule.json --horizon 4e4
    """
    from schedopt._io import json_text, output_set
    from schedopt.schedule import load_schedule, save_schedule
    from schedopt.studies.transfer import problem_at_horizon, problem_from_schedule, transfer_report

    target = _parse_int("--horizon", horizon)
    source = load_schedule(schedule)
    if spec is not None:
        problem = problem_at_horizon(_load(spec), source.horizon)
    else:
        problem = problem_from_schedule(source)
    folder = out if out is not None else Path("exports") / problem.name
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
    )
    files = {kind: str(folder / name) for kind, name in names.items()}
    result = {**report.to_dict(), "source": str(schedule), "files": files}
    with output_set(folder, names.values(), overwrite=force) as stage:  # the three files as one set
        save_schedule(report.transferred, stage / names["schedule_json"])
        save_schedule(report.transferred, stage / names["schedule_csv"])
        (stage / names["report"]).write_text(json_text(result), encoding="utf-8")
    if as_json:
        _emit_json(result)
        return
    plan, losses, gaps = result["transfer"], result["losses"], result["gaps"]
    rows = [
        ["transferred (phase rule)", _fmt(losses["transferred"]), _gap(gaps["transferred"])],
        ["naive stretch in t/T", _fmt(losses["stretch"]), _gap(gaps["stretch"])],
    ]
    if losses["reoptimised"] is not None:
        reopt = result["reoptimised"]
        rows.append(["re-optimised", _fmt(losses["reoptimised"]), f"0 ({reopt['status']})"])
    _table(
        f"{problem.name}: {plan['phase']} phase, T = {result['source_horizon']} -> {target}",
        ["schedule at T2", "final loss", "gap to re-optimised"],
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
    for kind, path in files.items():
        typer.echo(f"wrote {kind}: {path}")


def _stderr(value: float) -> str:
    return "" if not math.isfinite(value) else f" ± {value:.2g}"


def _gap(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3%}"


@_command
def compare(
    spec: Annotated[Path, typer.Argument(help="Problem spec (TOML) to compare on.")],
    schedules: Annotated[list[Path] | None, typer.Argument(help="Schedule files (JSON or CSV).")] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option("--baseline", "-b", help="Baseline family to tune and include (repeatable)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default exports/<problem>/).")] = None,
    force: ForceOpt = False,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare schedule files and tuned baselines on one problem: final losses, ratios, a PNG.

    Example: schedopt compare problems/easy-phase.toml exports/easy-phase/schedule.json -b cosine -b wsd_sqrt
    """
    from schedopt.compare import compare_schedules

    problem = _load(spec)
    folder = out if out is not None else Path("exports") / problem.name
    _refuse_existing(force, folder / "compare.json", folder / "compare.png")
    result = compare_schedules(problem, list(schedules or []), list(baseline or []))
    report = result.write(folder, overwrite=force)
    if as_json:
        _emit_json(report)
    else:
        _table(
            f"{problem.name}: T={problem.horizon}",
            ["schedule", "final loss", "ratio to best", "source"],
            [[e["name"], _fmt(e["final_loss"]), f"{e['ratio']:.4f}", e["source"]] for e in report["entries"]],
        )
        for kind, path in report["files"].items():
            typer.echo(f"wrote {kind}: {path}")


@_command
def fit(
    runs: Annotated[
        list[Path], typer.Argument(help="Pilot runs: CSV logs with step, learning_rate and a loss.")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the fitted problem spec (TOML).")] = Path(
        "fitted.toml"
    ),
    loss_column: Annotated[
        str | None, typer.Option(help="Loss column to fit (default: val_loss, else train_loss, else loss).")
    ] = None,
    n_modes: Annotated[int, typer.Option(help="Modes of the fitted model.")] = 1000,
    holdout: Annotated[
        str,
        typer.Option(help="auto (last pilot if >= 3, else the last quarter of each), tail, none, or a file."),
    ] = "auto",
    lr_scale: Annotated[
        float | None, typer.Option(help="Fix the learning-rate scale (model eta per network learning rate).")
    ] = None,
    name: Annotated[str, typer.Option(help="Name of the fitted problem (its export folder).")] = "fitted",
    lr_cap: Annotated[
        str,
        typer.Option(
            help="The design's learning-rate cap: max (largest pilot learning rate; the model's penalties "
            "choose the peak below it), best (peak of the pilot with the lowest final loss) or a "
            "network learning rate."
        ),
    ] = "max",
    plot: Annotated[Path | None, typer.Option(help="Also write a PNG of the fitted curves.")] = None,
    terms: Annotated[
        str,
        typer.Option(
            help="Optional model terms, comma-separated: exponent (the learning-rate response p), "
            "null_modes (noise-only modes: a penalty an anneal does not remove); all or none."
        ),
    ] = "all",
    min_step: Annotated[
        str, typer.Option(help="Fit losses from this step on; auto: twice each pilot's warmup.")
    ] = "auto",
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fit the model to the loss curves of pilot runs; write a spec that `schedopt design` accepts.

    Example: schedopt fit runs/lr1e-3.csv runs/lr3e-3.csv runs/lr1e-2.csv --out fitted.toml
    then:    schedopt design fitted.toml --horizon 8000
    """
    from schedopt._io import atomic_write_text
    from schedopt.calibration.fit import FIT_PARAMETERS, fit_pilots
    from schedopt.calibration.pilots import read_pilot

    if out.suffix != ".toml":
        raise ProblemError(f"`--out` must end in .toml, got {str(out)!r}", field="--out")
    if plot is not None and plot.suffix != ".png":
        raise ProblemError(f"`--plot` must end in .png, got {str(plot)!r}", field="--plot")
    from schedopt._validate import file_name

    file_name("--name", name)  # the fitted spec's name becomes its export folder
    _refuse_existing(force, out, plot)
    cap: str | float = lr_cap
    if lr_cap not in ("best", "max"):
        try:
            cap = float(lr_cap)
        except ValueError:
            raise ProblemError(
                f"`--lr-cap` must be best, max or a number, got {lr_cap!r}", field="--lr-cap"
            ) from None
    from schedopt.errors import FitError
    from schedopt.spec import MAX_MODES

    if not 1 <= n_modes <= MAX_MODES:
        raise ProblemError(f"`--n-modes` must be between 1 and {MAX_MODES}, got {n_modes}", field="--n-modes")
    files = [*runs, *([Path(holdout)] if holdout not in ("auto", "tail", "none") else [])]
    for path in files:  # by type and size before the reader opens it (a FIFO blocks, /dev/zero never ends)
        _check_input_file(path, MAX_PILOT_BYTES, "a pilot file", FitError)
    from schedopt.calibration.fit import TERMS

    chosen = {"all": TERMS, "none": ()}.get(terms, tuple(t.strip() for t in terms.split(",") if t.strip()))
    first = min_step
    if min_step != "auto":
        try:
            first = int(min_step)
        except ValueError:
            raise ProblemError(
                f"`--min-step` must be auto or an integer, got {min_step!r}", field="--min-step"
            ) from None
    pilots = [read_pilot(path, loss_column=loss_column) for path in runs]
    result = fit_pilots(
        pilots,
        n_modes=n_modes,
        holdout=holdout,
        learning_rate_scale=lr_scale,
        name=name,
        lr_cap=cap,
        terms=chosen,
        min_step=first,
    )
    written = {"spec": str(atomic_write_text(out, result.spec_text()))}
    if plot is not None:
        from schedopt.plots import plot_fit

        written["plot"] = str(plot_fit(result, pilots, plot))
    report = {**result.to_dict(), "files": written}
    if as_json:
        _emit_json(report)
        return
    rows = []
    for pname in FIT_PARAMETERS:
        status = "fixed" if pname in result.fixed else ("yes" if result.identified[pname] else "NO")
        rows.append([pname, _fmt(result.parameters[pname]), f"{result.std_errors[pname]:.2g}", status])
    _table(
        f"fit to {len(pilots)} pilot run(s), {result.n_points} points, N={result.n_modes}",
        ["parameter", "value", "std error", "identified"],
        rows,
    )
    typer.echo(
        f"phase: {result.phase} (a - b = {result.phase_z:.2g} standard errors); "
        f"fit error {100 * result.fit_error['rms_error']:.2f}% RMS"
    )
    if result.holdout is not None:
        typer.echo(f"holdout ({result.holdout['held_out']}): {100 * result.holdout['rms_error']:.2f}% RMS")
    cap_info = result.learning_rate_cap
    typer.echo(f"learning-rate cap for design: {_fmt(cap_info['network'])} ({cap_info['rule']})")
    for note in result.notes:
        typer.echo(f"warning: {note}", err=True)
    for kind, path in written.items():
        typer.echo(f"wrote {kind}: {path}")


@_command
def pilots(
    horizon: Annotated[int, typer.Option(help="The target run's number of updates T.")],
    peak: Annotated[float, typer.Option(help="Your guess of the peak learning rate (network units).")],
    budget: Annotated[float, typer.Option(help="Compute for the pilots, in runs of length T.")] = 1.0,
    warmup: Annotated[int, typer.Option(help="Linear warmup updates at the start of every pilot.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for the pilots' schedule files.")] = Path("pilots"),
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Propose the pilot runs that identify the model for a horizon and budget; write their schedules.

    Example: schedopt pilots --horizon 20000 --budget 1 --peak 3e-4 --warmup 500
    then train each pilots/*.json, log step,learning_rate,val_loss, and run schedopt fit on the logs.
    """
    from schedopt.calibration.plan import plan_pilots
    from schedopt.schedule import Schedule, save_schedule

    plans = plan_pilots(horizon, budget, peak, warmup)
    paths = [out / f"{plan.name}.json" for plan in plans]
    _refuse_existing(force, *paths)
    for plan, path in zip(plans, paths, strict=True):
        provenance = {
            "kind": "pilot",
            "learning_rate_units": "network",
            "plan": {"horizon": horizon, "budget": budget, "guess": peak, "warmup": plan.warmup},
        }
        save_schedule(Schedule(learning_rate=plan.learning_rate, provenance=provenance), path)
    rows = [
        [plan.name, plan.steps, f"{plan.peak:g}", str(path)] for plan, path in zip(plans, paths, strict=True)
    ]
    if as_json:
        _emit_json(
            {
                "pilots": [
                    {"name": p.name, "steps": p.steps, "peak": p.peak, "warmup": p.warmup, "file": str(f)}
                    for p, f in zip(plans, paths, strict=True)
                ],
                "updates": sum(p.steps for p in plans),
                "full_runs": sum(p.steps for p in plans) / horizon,
            }
        )
        return
    _table(
        f"{len(plans)} pilots, {sum(p.steps for p in plans)} updates ({budget:g} runs of {horizon})",
        ["pilot", "updates", "peak", "schedule file"],
        rows,
    )
    typer.echo("Train each (WSD: warmup, constant, 1-sqrt cooldown over the last 20 %), log val_loss, then:")
    typer.echo(f"  schedopt fit <logs> --out fitted.toml && schedopt design fitted.toml --horizon {horizon}")


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


@_command
def plot(
    schedules: Annotated[list[Path], typer.Argument(help="Schedule files (JSON or CSV).")],
    spec: Annotated[Path | None, typer.Option(help="Problem spec: also plot the loss curves on it.")] = None,
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("schedules.png"),
    force: ForceOpt = False,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Plot schedule files (and their loss curves on a problem) to a PNG.

    Example: schedopt plot exports/easy-phase/schedule.json --spec problems/easy-phase.toml --out s.png
    """
    from schedopt.compare import plot_schedule_files

    if out.suffix != ".png":
        raise ProblemError(f"`--out` must end in .png, got {str(out)!r}", field="--out")
    _refuse_existing(force, out)
    path = plot_schedule_files(schedules, problem=_load(spec) if spec is not None else None, out=out)
    if as_json:
        _emit_json({"files": {"plot": str(path)}})
    else:
        typer.echo(f"wrote plot: {path}")


_REDELIVERY_SECONDS = 1.0  # a swallowed interrupt is delivered again this often


def _install_signal_handlers() -> None:
    """SIGTERM raises :class:`Terminated`; SIGINT raises KeyboardInterrupt, at the top level only.

    A signal that arrives while Python runs a callback whose exceptions are swallowed
    (a ``gc`` callback JAX registers, a ``__del__``) would be lost there: the
    unraisable-exception hook sees it and delivers the signal again a moment later.
    Against any other place that swallows it, the first signal also starts a thread
    that delivers it again every ``_REDELIVERY_SECONDS`` until the process has left
    (``main`` exits at once when the exception reaches it), and an output set is
    never committed while a signal is pending (``_io.PENDING_SIGNALS``). So an
    interrupt always stops the command.
    """
    import signal
    import sys
    import threading
    import time

    from schedopt import _io

    def redeliver(signum: int) -> None:
        while True:
            time.sleep(_REDELIVERY_SECONDS)
            signal.raise_signal(signum)

    def on_signal(signum, frame):
        if not _io.PENDING_SIGNALS:
            threading.Thread(target=redeliver, args=(signum,), daemon=True).start()
        _io.PENDING_SIGNALS.append(signum)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()

    previous_hook = sys.unraisablehook

    def on_unraisable(info):
        if isinstance(info.exc_value, KeyboardInterrupt | Terminated):
            signum = signal.SIGINT if isinstance(info.exc_value, KeyboardInterrupt) else signal.SIGTERM
            threading.Timer(0.02, signal.raise_signal, (signum,)).start()
            return
        previous_hook(info)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sys.unraisablehook = on_unraisable


def _given_value(param: Any, argv: list[str]) -> str | None:
    """The value the command line gave an option that click refused (its message omits it)."""
    for opt in getattr(param, "opts", None) or ():
        if not opt.startswith("-"):
            continue
        for i, arg in enumerate(argv):
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1 :]
    return None


def main() -> None:
    """Console-script entry point: every error, usage error and interrupt ends in one line on stderr.

    Exit codes: 0 success, 1 solver failure, 2 bad input or usage, 130 SIGINT, 143 SIGTERM.
    """
    import os
    import sys

    _install_signal_handlers()
    code = 0
    try:
        code = app(standalone_mode=False) or 0
    except typer.TyperException as exc:  # click's usage errors: one line, not a boxed panel
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message(), err=True)
        else:
            where = f"{ctx.command_path}: " if ctx is not None else ""
            given = _given_value(getattr(exc, "param", None), sys.argv[1:])
            got = f" (got {given!r})" if given is not None else ""
            typer.echo(f"error: {where}{_one_line(exc.format_message())}{got}", err=True)
        code = getattr(exc, "exit_code", 2)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        code = 1
    except (KeyboardInterrupt, Terminated) as exc:  # outside a command (parsing, imports)
        if _DEBUG[0] or _debug_env():
            raise
        line, code = _error_line(exc)
        typer.echo(line, err=True)
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        # leave at once: the output is complete; interpreter teardown with JAX's threads
        # mid-computation can crash after an interrupt
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
