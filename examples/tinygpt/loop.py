"""Close the loop: short pilot runs -> ``schedopt fit`` -> ``schedopt design`` -> train the long run.

The same steps on the command line::

    python -m examples.tinygpt --schedule constant --peak 1e-3 --steps 500 --eval-every 20 --out runs/p1.csv
    python -m examples.tinygpt --schedule constant --peak 3e-3 --steps 500 --eval-every 20 --out runs/p2.csv
    python -m examples.tinygpt --schedule constant --peak 1e-2 --steps 500 --eval-every 20 --out runs/p3.csv
    schedopt fit runs/p1.csv runs/p2.csv runs/p3.csv --out-file runs/fitted.toml --lr-cap best
    schedopt design runs/fitted.toml --horizon 2000 --out runs/design --no-baselines
    python -m examples.tinygpt --schedule runs/design/schedule.json --steps 2000 --out runs/designed.csv

The exported schedule holds the network's learning rate (the fitted
``learning_rate_scale`` is applied by the optax export), so nothing is tuned
at the long horizon.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.tinygpt.data import Corpus, load_corpus
from examples.tinygpt.schedules import make_schedule, schedule_from_file
from examples.tinygpt.train import TrainConfig, TrainResult, train

__all__ = ["LoopResult", "close_the_loop", "pilot_runs"]


@dataclass(frozen=True)
class LoopResult:
    """What the loop produced: the files of every stage and the long runs' results."""

    pilot_logs: tuple[Path, ...]
    fitted_spec: Path
    fit: Any  # schedopt.calibration.fit.FitResult
    design: Any  # schedopt.design.Design
    schedule_file: Path
    runs: tuple[TrainResult, ...]
    run_logs: tuple[Path, ...]


def pilot_runs(
    folder: str | os.PathLike,
    config: TrainConfig,
    peaks: tuple[float, ...],
    *,
    corpus: Corpus | None = None,
    progress: bool = False,
) -> tuple[Path, ...]:
    """Constant-learning-rate pilots (one per peak) of ``config.steps`` updates; their CSV logs."""
    folder = Path(folder)
    logs = []
    for peak in peaks:
        log = folder / f"pilot-lr{peak:g}.csv"
        train(
            config,
            make_schedule("constant", peak=peak, horizon=config.steps),
            log_path=log,
            progress=progress,
            corpus=corpus,
        )
        logs.append(log)
    return tuple(logs)


def close_the_loop(
    folder: str | os.PathLike,
    config: TrainConfig,
    *,
    pilot_steps: int,
    pilot_peaks: tuple[float, ...],
    pilot_eval_every: int,
    seeds: tuple[int, ...] = (0,),
    n_modes: int = 1000,
    lr_cap: str | float = "best",
    solver: str = "jax",
    corpus: Corpus | None = None,
    progress: bool = False,
) -> LoopResult:
    """Pilots -> fit -> design at ``config.steps`` -> train the designed schedule for each seed.

    Args:
        folder: where every file goes (``pilots/``, ``fitted.toml``, ``design/``, ``designed/``).
        config: the long run (its ``steps`` is the target horizon).
        pilot_steps: length of each pilot (e.g. a quarter of ``config.steps``).
        pilot_peaks: the pilots' constant learning rates (at least two).
        pilot_eval_every: validation interval of the pilots (the fit uses their validation loss).
        seeds: seeds of the long runs.
        n_modes: modes of the fitted model.
        lr_cap: the design's learning-rate cap rule (``schedopt fit --lr-cap``).
    """
    from schedopt._io import atomic_write_text
    from schedopt.calibration.fit import fit_pilots
    from schedopt.calibration.pilots import read_pilot
    from schedopt.design import design, write_design
    from schedopt.spec import load_problem

    folder = Path(folder)
    corpus = corpus if corpus is not None else load_corpus()
    pilot_config = dataclasses.replace(config, steps=pilot_steps, eval_every=pilot_eval_every)
    logs = pilot_runs(folder / "pilots", pilot_config, pilot_peaks, corpus=corpus, progress=progress)

    fit = fit_pilots([read_pilot(log) for log in logs], n_modes=n_modes, lr_cap=lr_cap)
    spec = atomic_write_text(folder / "fitted.toml", fit.spec_text())

    problem = load_problem(spec).with_horizon(config.steps)
    result = write_design(design(problem, solver=solver, baselines=()), folder / "design", figure="none")
    schedule_file = folder / "design" / "schedule.json"

    runs, run_logs = [], []
    for seed in seeds:
        log = folder / "designed" / f"seed{seed}.csv"
        run_config = dataclasses.replace(config, seed=seed)
        runs.append(
            train(
                run_config, schedule_from_file(schedule_file), log_path=log, progress=progress, corpus=corpus
            )
        )
        run_logs.append(log)
    return LoopResult(logs, spec, fit, result, schedule_file, tuple(runs), tuple(run_logs))
