"""The command line of the offline real-task benchmarks: refit cached pilots, write one results file.

``main(argv, doc, name, run_task)`` parses ``--task NAME ...`` and ``--out`` (default
``results/NAME``), calls ``run_task(task)`` for each task in turn, and writes ``{"fit", "tasks", "clock",
"load_average", "python"}`` (paths relative to the repository) atomically, with ``"summary"``:
``summary(tasks)`` when given.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from pathlib import Path

from _clock import Clock
from realtasks import DEFAULT_PROTOCOL

from examples.tasks import TASKS, Task
from schedopt._io import atomic_write_text, json_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIT = f"schedopt-floor on the {DEFAULT_PROTOCOL} pilots, pilot seed 0"
"""What the benchmarks fit, unless one says otherwise: the default model on the default pilots."""


def main(
    argv,
    doc: str,
    name: str,
    run_task: Callable[[Task], dict],
    fit: str = FIT,
    summary: Callable[[dict], dict] | None = None,
) -> None:
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--out", type=Path, default=RESULTS / name)
    args = p.parse_args(argv)
    out = {"fit": fit, "tasks": {}}
    with Clock() as clock:
        for task in args.task:
            out["tasks"][task] = run_task(TASKS[task])
    if summary is not None:  # what the tasks' rows give together
        out["summary"] = summary(out["tasks"])
    out["clock"] = clock.record()
    out["load_average"] = list(os.getloadavg())
    out["python"] = platform.python_version()
    atomic_write_text(args.out, json_text(out).replace(str(ROOT) + "/", ""))
