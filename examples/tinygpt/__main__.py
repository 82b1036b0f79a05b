"""Command line: train the tiny GPT with one schedule and write its loss curve.

Examples::

    uv run python -m examples.tinygpt --schedule cosine --peak 3e-3 --steps 2000 --out runs/cosine.csv
    uv run python -m examples.tinygpt --schedule wsd --peak 3e-3 --cooldown 0.2 --out runs/wsd.csv
    uv run python -m examples.tinygpt --schedule exports/easy-phase/schedule.json --peak 3e-3 --out runs/designed.csv

``--schedule`` is a kind (constant, cosine, linear, wsd, wsd-linear) or the path
of a schedopt schedule file (JSON or CSV), which is run for its own number of updates
(time-stretched to ``--steps`` if given) and, with ``--peak``, rescaled to that maximum. A summary JSON
object goes to standard output; progress lines go to standard error.
"""

from __future__ import annotations

import argparse
import logging
import sys

from examples._cli import (
    add_eval_every_argument,
    add_schedule_arguments,
    print_summary,
    resolve_eval_every,
    resolve_steps,
    schedule_from_arguments,
)
from examples.tinygpt.train import OPTIMIZERS, TrainConfig, train
from schedopt.errors import SchedoptError

_DEFAULTS = TrainConfig()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.tinygpt",
        description="Train a tiny byte-level GPT on the Python standard library with a learning-rate schedule.",
    )
    add_schedule_arguments(p, steps=_DEFAULTS.steps, seed=_DEFAULTS.seed)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=_DEFAULTS.optimizer, help="default %(default)s")
    p.add_argument("--d-model", type=int, default=_DEFAULTS.d_model, help="default %(default)s")
    p.add_argument("--n-layers", type=int, default=_DEFAULTS.n_layers, help="default %(default)s")
    p.add_argument("--n-heads", type=int, default=_DEFAULTS.n_heads, help="default %(default)s")
    p.add_argument("--context", type=int, default=_DEFAULTS.context, help="default %(default)s")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, help="default %(default)s")
    p.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay, help="adamw and lion only")
    p.add_argument("--grad-clip", type=float, default=_DEFAULTS.grad_clip, help="0 disables (default 1.0)")
    add_eval_every_argument(p, default=_DEFAULTS.eval_every)
    p.add_argument("--eval-batches", type=int, default=_DEFAULTS.eval_batches, help="default %(default)s")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        steps = resolve_steps(args, _DEFAULTS.steps)
        config = TrainConfig(
            d_model=args.d_model,
            n_layers=args.n_layers,
            n_heads=args.n_heads,
            context=args.context,
            batch_size=args.batch_size,
            steps=steps,
            optimizer=args.optimizer,
            weight_decay=args.weight_decay,
            grad_clip=None if args.grad_clip == 0 else args.grad_clip,
            eval_every=resolve_eval_every(args, _DEFAULTS.eval_every),
            eval_batches=args.eval_batches,
            seed=args.seed,
        )
        schedule = schedule_from_arguments(args)
    except (ValueError, SchedoptError) as exc:  # a bad option or an unreadable schedule file: exit 2
        parser.error(str(exc))
    if not args.quiet:
        progress_logger = logging.getLogger("examples.tinygpt")  # only ours, not JAX's
        if not progress_logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            progress_logger.addHandler(handler)
        progress_logger.setLevel(logging.INFO)
    result = train(config, schedule, log_path=args.out, progress=not args.quiet)
    print_summary(
        args.out,
        final_val_loss=result.final_val_loss,
        wall_time=result.wall_time,
        compile_time=result.compile_time,
        steps_per_second=result.steps_per_second,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
