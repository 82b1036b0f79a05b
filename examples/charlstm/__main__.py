"""Command line: train the byte-level LSTM (PyTorch) with one schedule and write its loss curve.

Examples::

    uv run python -m examples.charlstm --schedule wsd --peak 2e-3 --warmup 50 --steps 1000 --out runs/wsd.csv
    uv run python -m examples.charlstm --schedule fitted/design/schedule.json --peak 2e-3 --out runs/designed.csv

``--schedule`` is a kind (constant, cosine, linear, wsd, wsd-linear) or the path of a schedopt
schedule file (JSON or CSV), run for its own number of updates (time-stretched to ``--steps`` if given)
and, with ``--peak``, rescaled to that
maximum: the schedules of ``python -m examples.tinygpt``. A summary JSON object goes to standard output.
"""

from __future__ import annotations

import argparse
import sys

import torch

from examples._cli import (
    add_eval_every_argument,
    add_schedule_arguments,
    print_summary,
    resolve_eval_every,
    resolve_steps,
    schedule_from_arguments,
)
from examples.charlstm.config import OPTIMIZERS, LSTMConfig
from examples.charlstm.training import train
from examples.tinygpt.data import load_corpus, load_prose_corpus
from schedopt.errors import SchedoptError

_DEFAULTS = LSTMConfig()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.charlstm",
        description="Train a byte-level LSTM (PyTorch, AdamW or RMSprop) with a learning-rate schedule.",
    )
    add_schedule_arguments(p, steps=_DEFAULTS.steps, seed=_DEFAULTS.seed)
    p.add_argument("--corpus", choices=("code", "prose"), default="code", help="default %(default)s")
    p.add_argument("--embed", type=int, default=_DEFAULTS.embed, help="default %(default)s")
    p.add_argument("--hidden", type=int, default=_DEFAULTS.hidden, help="default %(default)s")
    p.add_argument("--n-layers", type=int, default=_DEFAULTS.n_layers, help="default %(default)s")
    p.add_argument("--context", type=int, default=_DEFAULTS.context, help="default %(default)s")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, help="default %(default)s")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=_DEFAULTS.optimizer, help="default %(default)s")
    p.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help=f"adamw only (default {_DEFAULTS.weight_decay}; rmsprop and sgd 0)",
    )
    p.add_argument("--grad-clip", type=float, default=_DEFAULTS.grad_clip, help="0 disables (default 1.0)")
    add_eval_every_argument(p, default=_DEFAULTS.eval_every)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    return p


def _weight_decay(args: argparse.Namespace) -> float:
    """The weight decay asked for, else the optimiser's default (AdamW's 0.01; none for RMSprop or SGD)."""
    if args.weight_decay is not None:
        return args.weight_decay
    return _DEFAULTS.weight_decay if args.optimizer == "adamw" else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        steps = resolve_steps(args, _DEFAULTS.steps)
        config = LSTMConfig(
            embed=args.embed,
            hidden=args.hidden,
            n_layers=args.n_layers,
            context=args.context,
            batch_size=args.batch_size,
            steps=steps,
            weight_decay=_weight_decay(args),
            optimizer=args.optimizer,
            grad_clip=None if args.grad_clip == 0 else args.grad_clip,
            eval_every=resolve_eval_every(args, _DEFAULTS.eval_every),
            seed=args.seed,
        )
        schedule = schedule_from_arguments(args)
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be a positive integer, got {args.threads}")
            torch.set_num_threads(args.threads)
    except (ValueError, SchedoptError) as exc:  # a bad option or an unreadable schedule file: exit 2
        parser.error(str(exc))
    corpus = load_corpus() if args.corpus == "code" else load_prose_corpus()
    result = train(config, schedule, log_path=args.out, corpus=corpus)
    print_summary(
        args.out,
        final_val_loss=result.final_val_loss,
        wall_time=result.wall_time,
        steps_per_second=result.steps_per_second,
        n_params=result.n_params,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
