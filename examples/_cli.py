"""The command-line pieces both example loops share: the schedule options and the summary line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from examples.runlog import json_number, sidecar_path
from examples.tinygpt.schedules import KINDS, is_schedule_file, schedule_file_horizon, schedule_from_option
from schedopt.calibration.plan import EVALUATIONS_PER_PILOT, evaluation_every

__all__ = [
    "add_eval_every_argument",
    "add_schedule_arguments",
    "print_summary",
    "resolve_eval_every",
    "resolve_steps",
    "schedule_from_arguments",
]


def add_schedule_arguments(p: argparse.ArgumentParser, *, steps: int, seed: int) -> None:
    """``--schedule`` (a kind or a schedopt schedule file), its shape, ``--steps``, ``--seed`` and ``--out``."""
    p.add_argument(
        "--schedule",
        required=True,
        help=f"one of {', '.join(KINDS)}, or a schedopt schedule file (.json/.csv)",
    )
    p.add_argument("--peak", type=float, help="peak learning rate (required for a kind; rescales a file)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"number of updates T (default: a schedule file's own length, which --steps stretches; else {steps})",
    )
    p.add_argument("--out", type=Path, help="CSV log to write (plus <stem>.json); none if omitted")
    p.add_argument("--seed", type=int, default=seed, help="default %(default)s")
    p.add_argument("--warmup", type=int, default=0, help="linear warmup updates (default 0)")
    p.add_argument("--cooldown", type=float, default=0.2, help="wsd cooldown fraction (default 0.2)")
    p.add_argument("--floor", type=float, default=0.0, help="final learning rate of the decays (default 0)")


def add_eval_every_argument(p: argparse.ArgumentParser, *, default: int) -> None:
    """``--eval-every``: by default :data:`~schedopt.calibration.plan.EVALUATIONS_PER_PILOT` validation losses a
    run, what ``schedopt pilots`` asks of a pilot, at most every ``default`` updates (:func:`resolve_eval_every`)."""
    p.add_argument(
        "--eval-every",
        type=int,
        help=f"updates between validation losses (default: T / {EVALUATIONS_PER_PILOT}, at most {default})",
    )


def resolve_steps(args: argparse.Namespace, default: int) -> int:
    """``--steps`` as given; else a schedule file's own length (a pilot file trains for exactly its updates,
    not stretched to the loop's default), else ``default``. Sets ``args.steps``."""
    if args.steps is None:
        args.steps = schedule_file_horizon(args.schedule) if is_schedule_file(args.schedule) else default
    return args.steps


def resolve_eval_every(args: argparse.Namespace, default: int) -> int:
    """``--eval-every`` as given; else ``schedopt pilots``' interval for the run's updates
    (:func:`~schedopt.calibration.plan.evaluation_every`), at most ``default`` (after :func:`resolve_steps`)."""
    if args.eval_every is None:
        args.eval_every = min(default, evaluation_every(args.steps))
    return args.eval_every


def schedule_from_arguments(args: argparse.Namespace):
    """The schedule the options of :func:`add_schedule_arguments` name (``schedule_from_option``)."""
    return schedule_from_option(
        args.schedule,
        peak=args.peak,
        horizon=args.steps,
        warmup=args.warmup,
        cooldown=args.cooldown,
        floor=args.floor,
    )


def print_summary(out: Path | None, **numbers: float) -> None:
    """One JSON line on standard output: ``numbers`` (a non-finite float as null), the log and its sidecar."""
    summary = {
        name: value if isinstance(value, int) else json_number(value) for name, value in numbers.items()
    }
    summary.update(
        log=None if out is None else str(out), sidecar=None if out is None else str(sidecar_path(out))
    )
    print(json.dumps(summary))
