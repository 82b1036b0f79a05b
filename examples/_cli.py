"""The command-line pieces both example loops share: the schedule options and the summary line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from examples.runlog import json_number, sidecar_path
from examples.tinygpt.schedules import KINDS, schedule_from_option

__all__ = ["add_schedule_arguments", "print_summary", "schedule_from_arguments"]


def add_schedule_arguments(p: argparse.ArgumentParser, *, steps: int, seed: int) -> None:
    """``--schedule`` (a kind or a schedopt schedule file), its shape, ``--steps``, ``--seed`` and ``--out``."""
    p.add_argument(
        "--schedule",
        required=True,
        help=f"one of {', '.join(KINDS)}, or a schedopt schedule file (.json/.csv)",
    )
    p.add_argument("--peak", type=float, help="peak learning rate (required for a kind; rescales a file)")
    p.add_argument("--steps", type=int, default=steps, help="number of updates T (default %(default)s)")
    p.add_argument("--out", type=Path, help="CSV log to write (plus <stem>.json); none if omitted")
    p.add_argument("--seed", type=int, default=seed, help="default %(default)s")
    p.add_argument("--warmup", type=int, default=0, help="linear warmup updates (default 0)")
    p.add_argument("--cooldown", type=float, default=0.2, help="wsd cooldown fraction (default 0.2)")
    p.add_argument("--floor", type=float, default=0.0, help="final learning rate of the decays (default 0)")


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
