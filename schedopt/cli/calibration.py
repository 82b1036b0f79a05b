"""Calibration commands: ``fit`` (the model from pilot runs) and ``pilots`` (which runs to make)."""

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
    ProgressOpt,
    _check_input_file,
    _out_file,
    _out_folder,
    _refuse_existing,
)
from schedopt.cli._report import _emit_json, _fmt, _live, _table
from schedopt.errors import ProblemError


@_command
def fit(
    runs: Annotated[
        list[Path], typer.Argument(help="Pilot runs: CSV logs with step, learning_rate and a loss.")
    ],
    out: OutOpt("the current folder; the spec is fitted.toml") = None,
    out_file: OutFileOpt("fitted problem spec (TOML)") = None,
    loss_column: Annotated[
        str | None,
        typer.Option(
            help="Loss column to fit in every pilot (default: the first of val_loss, train_loss, loss that "
            "every pilot logged at least 5 times)."
        ),
    ] = None,
    n_modes: Annotated[int, typer.Option(help="Power-law modes of the fitted model.")] = 200,
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
            "choose the peak below it; the longest pilot's rate when the fit finds no learning-rate "
            "response), best (peak of the pilot with the lowest final loss) or a network learning rate."
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
    offset_floor: Annotated[
        float,
        typer.Option(
            help="Lower bound of the irreducible loss, as a fraction of the smallest pilot loss; the pilots "
            "rarely identify it, and 0 lets long-run predictions fall as a pure power law."
        ),
    ] = 0.5,
    force: ForceOpt = False,
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the model to the loss curves of pilot runs; write a spec that `schedopt design` accepts.

    Example: schedopt fit runs/lr1e-3.csv runs/lr3e-3.csv runs/lr1e-2.csv \\
                 --out-file fitted.toml
    then:    schedopt design fitted.toml --horizon 8000
    """
    from schedopt.calibration.fit import fit_pilots
    from schedopt.calibration.pilots import read_pilots

    out = _out_file(out, out_file, "fitted.toml", (".toml",))
    if plot is not None and plot.suffix != ".png":
        raise ProblemError(f"`--plot` must end in .png, got {str(plot)!r}", field="--plot")
    if plot is not None:
        from schedopt.plots import require_matplotlib

        require_matplotlib("`--plot`")
    from schedopt._validate import file_name

    file_name("--name", name)  # the fitted spec's name becomes its export folder
    _refuse_existing(force, out, plot)
    cap, chosen, first = _fit_options(lr_cap, terms, min_step, n_modes)
    from schedopt._validate import MAX_PILOT_BYTES  # here: schedopt._validate loads NumPy
    from schedopt.errors import FitError

    files = [*runs, *([Path(holdout)] if holdout not in ("auto", "tail", "none") else [])]
    for path in files:  # by type and size before the reader opens it (a FIFO blocks, /dev/zero never ends)
        _check_input_file(path, MAX_PILOT_BYTES, "a pilot file", FitError)
    pilots = read_pilots(runs, loss_column=loss_column)
    with _live(False if as_json and progress is None else progress):
        result = fit_pilots(
            pilots,
            n_modes=n_modes,
            holdout=holdout,
            learning_rate_scale=lr_scale,
            name=name,
            lr_cap=cap,
            terms=chosen,
            min_step=first,
            offset_floor=offset_floor,
        )
    written = _write_fit(result, pilots, out, plot, force=force)
    report = {**result.to_dict(), "files": written}
    if as_json:
        _emit_json(report)
    else:
        _show_fit(result, report, pilots)


def _holdout_text(holdout: dict, pilots) -> str:
    """The holdout line: what was held out and, for a whole pilot, where its rate lies against the others'."""
    error = f"{100 * holdout['rms_error']:.2f}% RMS"
    if holdout["kind"] != "run":
        return f"holdout ({holdout['held_out']}), predicted from the rest: {error}"
    held = next(p for p in pilots if p.name == holdout["held_out"])
    others = [p.peak_learning_rate for p in pilots if p is not held]
    peak = held.peak_learning_rate
    if peak > max(others):
        where = f"x{peak / max(others):.3g} above the others' largest rate: an extrapolation in learning rate"
    elif peak < min(others):
        where = (
            f"x{min(others) / peak:.3g} below the others' smallest rate: an extrapolation in learning rate"
        )
    else:
        where = "within the others' rates"
    return f"holdout ({holdout['held_out']}, peak {peak:.4g}, {where}), predicted from the others: {error}"


def _show_fit(result, report: dict, pilots) -> None:
    """The human-readable fit: parameters with their errors, phase, fit and holdout errors, cap, warnings."""
    from schedopt.calibration.fit import FIT_PARAMETERS

    rows = []
    for pname in FIT_PARAMETERS:
        status = "fixed" if pname in result.fixed else ("yes" if result.identified[pname] else "NO")
        rows.append([pname, _fmt(result.parameters[pname]), f"{result.std_errors[pname]:.2g}", status])
    _table(
        f"fit to {len(pilots)} pilot run(s), {result.n_points} {pilots[0].loss_column} points, N={result.n_modes}",
        ["parameter", "value", "std error", "identified"],
        rows,
    )
    scatter = [v for v in result.fit_error["scatter_by_run"].values() if v is not None]
    noisy = (
        f" (the pilots' losses scatter by {100 * min(scatter):.2g}-{100 * max(scatter):.2g}% around a smooth "
        "curve: that much is the log's noise)"
        if scatter and max(scatter) > 0.01
        else ""
    )
    typer.echo(f"phase: {result.phase_text}; fit error {100 * result.fit_error['rms_error']:.2f}% RMS{noisy}")
    if result.holdout is not None:
        typer.echo(_holdout_text(result.holdout, pilots))
    cap_info = result.learning_rate_cap
    typer.echo(f"learning-rate cap for design: {_fmt(cap_info['network'])} ({cap_info['rule']})")
    for line in result.info:
        typer.echo(f"note: {line}")
    for note in result.notes:
        typer.echo(f"warning: {note}", err=True)
    for kind, path in report["files"].items():
        typer.echo(f"wrote {kind}: {path}")


def _fit_options(lr_cap: str, terms: str, min_step: str, n_modes: int):
    """``fit``'s text options parsed and checked: the cap (best, max or a number), the terms, the first step."""
    from schedopt.calibration.fit import TERMS
    from schedopt.spec import MAX_MODES

    cap: str | float = lr_cap
    if lr_cap not in ("best", "max"):
        try:
            cap = float(lr_cap)
        except ValueError:
            raise ProblemError(
                f"`--lr-cap` must be best, max or a number, got {lr_cap!r}", field="--lr-cap"
            ) from None
    if not 1 <= n_modes <= MAX_MODES:
        raise ProblemError(f"`--n-modes` must be between 1 and {MAX_MODES}, got {n_modes}", field="--n-modes")
    chosen = {"all": TERMS, "none": ()}.get(terms, tuple(t.strip() for t in terms.split(",") if t.strip()))
    first: str | int = min_step
    if min_step != "auto":
        try:
            first = int(min_step)
        except ValueError:
            raise ProblemError(
                f"`--min-step` must be auto or an integer, got {min_step!r}", field="--min-step"
            ) from None
    return cap, chosen, first


def _write_fit(result, pilots, out: Path, plot: Path | None, *, force: bool) -> dict[str, str]:
    """Write the fitted spec and its plot as one output set (:func:`schedopt._io.output_set`).

    In one folder they are one transaction. In two folders each is committed by a
    rename of its own, both with SIGINT/SIGTERM held (an interrupt cannot fall
    between them); only an I/O error on the second rename could still split them.
    """
    import contextlib

    from schedopt._io import output_set, signals_deferred

    written = {"spec": str(out)} | ({"plot": str(plot)} if plot is not None else {})
    with contextlib.ExitStack() as stack:
        if plot is not None and plot.parent != out.parent:
            stack.enter_context(signals_deferred())  # released last: after both commits
        names = [out.name] + ([plot.name] if plot is not None and plot.parent == out.parent else [])
        spec_stage = stack.enter_context(output_set(out.parent, names, overwrite=force))
        plot_stage = spec_stage
        if plot is not None and plot.parent != out.parent:
            plot_stage = stack.enter_context(output_set(plot.parent, [plot.name], overwrite=force))
        (spec_stage / out.name).write_text(result.spec_text(), encoding="utf-8")
        if plot is not None:
            from schedopt.plots import plot_fit

            plot_fit(result, pilots, plot_stage / plot.name)
    return written


def _same_text(path: Path, text: str) -> bool:
    """Whether the file at ``path`` holds exactly ``text`` (an unreadable one does not)."""
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False


@_command
def pilots(
    horizon: Annotated[int, typer.Option(help="The target run's number of updates T.")],
    peak: Annotated[float, typer.Option(help="Your guess of the peak learning rate (network units).")],
    budget: Annotated[float, typer.Option(help="Compute for the pilots, in runs of length T.")] = 1.0,
    warmup: Annotated[int, typer.Option(help="Linear warmup updates at the start of every pilot.")] = 0,
    twin: Annotated[
        bool,
        typer.Option(
            "--twin",
            help="Also the highest pilot's first half, to train on another seed (0.1 run more at budget 1): "
            "where the two disagree, fit caps the design below that rate.",
        ),
    ] = False,
    above: Annotated[
        int,
        typer.Option(
            help="Also this many pilots above the plan's top rate, each at twice the one before, as long as a "
            "short one (0.2 run each at budget 1): what fit asks for when its top pilot is still far ahead. "
            "The plan's own files are unchanged, so run it again with --above on the same folder.",
        ),
    ] = 0,
    first_logs: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE",
            help="The logs of the plan's long pilot (as far as it got) and its top pilot, trained first (give "
            "the option twice): writes the plan's last pilot, x 0.25 the guess as planned or, where the top "
            "pilot is still far ahead, one at twice its rate instead (the same updates).",
        ),
    ] = None,
    out: OutOpt("pilots/") = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Propose the pilot runs that identify the model for a horizon and budget; write their schedules.

    Example: schedopt pilots --horizon 20000 --budget 1 --peak 3e-4 --warmup 500
    then train each pilots/*.json, log step,learning_rate,val_loss,
    and run schedopt fit on the logs.
    """
    from schedopt.calibration.plan import EVALUATIONS_PER_PILOT, evaluation_interval, plan_pilots
    from schedopt.schedule import Schedule, save_schedule

    folder = _out_folder(out, Path("pilots"))
    last = None
    if first_logs:
        for flag, given in (("--twin", twin), ("--above", above)):
            if given:
                raise ProblemError(
                    f"`--first-logs` writes the plan's last pilot only; give `{flag}` without it",
                    field="--first-logs",
                )
        last = _last_pilot(horizon, budget, peak, warmup, first_logs)
        plans = [last.pilot]
    else:
        plans = plan_pilots(horizon, budget, peak, warmup, twin=twin, above=above)
    schedules = []
    for plan in plans:  # a pilot's file depends on its own plan only, not on --twin or --above
        record = {"horizon": horizon, "budget": budget, "guess": peak, "warmup": plan.warmup}
        record |= {"twin": True} if plan.twin else {}
        record |= {"above": plan.above} if plan.above else {}
        provenance = {"kind": "pilot", "learning_rate_units": "network", "plan": record}
        schedules.append(Schedule(learning_rate=plan.learning_rate, provenance=provenance))
    paths = [folder / f"{plan.name}.json" for plan in plans]
    # a file already there with exactly this content is no conflict: it is left as it is
    unchanged = {
        p for p, s in zip(paths, schedules, strict=True) if p.is_file() and _same_text(p, s.to_json())
    }
    _refuse_existing(force, *(p for p in paths if p not in unchanged))
    from schedopt._io import output_set

    todo = [(s, p) for s, p in zip(schedules, paths, strict=True) if p not in unchanged]
    if todo:
        with output_set(folder, [p.name for _, p in todo], overwrite=force) as stage:  # the pilots as one set
            for schedule, path in todo:
                save_schedule(schedule, stage / path.name)
    rows = [
        [
            plan.name,
            plan.steps,
            f"{plan.peak:g}",
            str(path) + (" (already there)" if path in unchanged else ""),
        ]
        for plan, path in zip(plans, paths, strict=True)
    ]
    if last is not None:
        _show_last_pilot(last, paths[0], paths[0] in unchanged, as_json)
        return
    every = evaluation_interval(plans)
    if as_json:
        _emit_json(
            {
                "pilots": [
                    {
                        "name": p.name,
                        "steps": p.steps,
                        "peak": p.peak,
                        "warmup": p.warmup,
                        "file": str(f),
                        "written": f not in unchanged,
                    }
                    for p, f in zip(plans, paths, strict=True)
                ],
                "updates": sum(p.steps for p in plans),
                "full_runs": sum(p.steps for p in plans) / horizon,
                "eval_every": every,
                # the plan's low pilot, which can wait for --first-logs (none with --twin or --above)
                "can_wait": None if (twin or above) else plans[1].name,
            }
        )
        return
    runs = sum(p.steps for p in plans) / horizon
    _table(
        f"{len(plans)} pilots, {sum(p.steps for p in plans)} updates ({runs:.3g} run{'' if runs == 1 else 's'} of {horizon})",
        ["pilot", "updates", "peak", "schedule file"],
        rows,
    )
    typer.echo(
        f"Train each for its own number of updates (WSD: warmup, constant, 1-sqrt cooldown over the last 20 %), "
        f"logging val_loss at least {EVALUATIONS_PER_PILOT} times in each (every {every} updates in the shortest; "
        "without it, train_loss at every update), then:"
    )
    top = max(plans, key=lambda p: p.peak)
    typer.echo(
        f"  (if {top.name} diverges, train it again at half its peak: the design's learning-rate cap is the "
        "largest pilot rate that did not)"
    )
    if twin:
        typer.echo(
            f"  (train {plans[-1].name} on another seed than {top.name}, the same otherwise: fit compares the two)"
        )
    if not (twin or above):
        long, low, top = plans
        typer.echo(
            f"  ({low.name} can wait: train {long.name} and {top.name} first, side by side; once {top.name} has "
            "ended, the same command with --first-logs <its log> --first-logs <the long one's log> writes "
            "the last pilot: this one, or one at twice the top rate where that is still far ahead)"
        )
    then = f"schedopt design fitted.toml --horizon {horizon}" + (f" --warmup {warmup}" if warmup else "")
    typer.echo(f"  schedopt fit <logs> --out-file fitted.toml && {then}")


def _last_pilot(horizon: int, budget: float, peak: float, warmup: int, logs: list[Path]):
    """:func:`~schedopt.calibration.adapt.last_pilot` on the logs (checked by type and size before reading)."""
    from schedopt._validate import MAX_PILOT_BYTES
    from schedopt.calibration.adapt import last_pilot
    from schedopt.calibration.pilots import read_pilots
    from schedopt.errors import FitError

    for path in logs:
        _check_input_file(path, MAX_PILOT_BYTES, "a pilot file", FitError)
    return last_pilot(horizon, budget, peak, warmup, read_pilots(logs))


def _show_last_pilot(last, path: Path, was_there: bool, as_json: bool) -> None:
    """What ``--first-logs`` decided: the last pilot, its file, and the top pilot's lead that decided it."""
    lead = (
        "no common step at their peak"
        if last.lead is None
        else f"{100 * last.lead:+.1f} % at update {last.step}"
    )
    if as_json:
        _emit_json(
            {
                "pilot": {
                    "name": last.pilot.name,
                    "steps": last.pilot.steps,
                    "peak": last.pilot.peak,
                    "warmup": last.pilot.warmup,
                    "file": str(path),
                    "written": not was_there,
                },
                "traded": last.traded,
                "instead_of": last.instead_of.name if last.traded else None,
                "top_pilot_lead": last.lead,
                "lead_step": last.step,
            }
        )
        return
    typer.echo(f"The top pilot's lead over the long one: {lead}.")
    if last.traded:
        typer.echo(
            f"It is still far ahead (more than 5 %): the best peak may lie above the plan's range. Train "
            f"{last.pilot.name} (peak {last.pilot.peak:g}, {last.pilot.steps} updates) instead of "
            f"{last.instead_of.name}: {path}" + (" (already there)" if was_there else "")
        )
    else:
        typer.echo(
            f"Not far ahead (5 % or less): train {last.pilot.name} as planned: {path}"
            + (" (already there)" if was_there else "")
        )
