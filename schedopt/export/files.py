"""The ``schedopt export`` files: a schedule file → optax-ready JSON, CSV, or a torch ``LambdaLR`` file (``.torch.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from schedopt._io import atomic_write_text, json_text, refuse_existing
from schedopt.errors import ExportError
from schedopt.schedule import load_schedule, save_schedule

__all__ = ["EXPORT_FORMATS", "default_export_name", "export_schedule"]

EXPORT_FORMATS = ("json", "csv", "torch")
_SUFFIX = {"json": ".optax.json", "csv": ".export.csv", "torch": ".torch.json"}  # never a design's own file


def default_export_name(path: str | Path, to: str) -> str:
    """The file name an export of ``path`` gets: ``NAME.optax.json``, ``NAME.export.csv`` or ``NAME.torch.json``."""
    return Path(path).stem + _SUFFIX[to]


def export_schedule(
    path: str | Path,
    *,
    to: str = "json",
    out: str | Path | None = None,
    peak: float | None = None,
    horizon: int | None = None,
    force: bool = False,
    overwrite: bool = True,
    warmup: int = 0,
    warmup_shape: str = "linear",
) -> dict[str, Any]:
    """Write a schedule in a training-loop format; return what was written.

    ``json`` is a schedule file (read it with :func:`schedopt.export.to_optax`);
    ``torch`` is ``{"kind": "schedopt.torch_lambda", "base_lr", "factors"}`` for
    ``LambdaLR(optimizer, lambda t: factors[min(t, len(factors) - 1)])`` with the
    optimizer built at ``lr=base_lr``. Unconverged schedules need ``force``. A
    schedule designed from a fitted spec is written in the network's learning-rate
    units (:meth:`~schedopt.schedule.Schedule.for_network`; ``peak`` is in those units).
    The default output is ``NAME.optax.json``, ``NAME.export.csv`` or
    ``NAME.torch.json`` next to the input, never a design's own ``schedule.csv``;
    ``overwrite=False`` refuses to replace an existing file (``schedopt export``
    without ``--force``). ``warmup`` steps (after any rescaling) ramp to the peak inside
    the horizon (:func:`schedopt.schedule.with_warmup`).
    """
    from schedopt.export._values import rescale_schedule

    if to not in EXPORT_FORMATS:
        raise ExportError(f"`--to` must be one of {', '.join(EXPORT_FORMATS)}, got {to!r}")
    src = Path(path)
    schedule = load_schedule(src).for_network()
    if not schedule.converged and not force:
        raise ExportError(f"{str(src)!r} comes from an unconverged solve; use --force to export it anyway")
    if peak is not None or horizon is not None:
        schedule = rescale_schedule(schedule, peak=peak, horizon=horizon)
    if warmup:
        from schedopt.schedule._warmup import check_warmup, with_warmup

        check_warmup(warmup, schedule.horizon, shape=warmup_shape, field="--warmup")
        schedule = with_warmup(schedule, warmup, shape=warmup_shape)
    target = Path(out) if out is not None else src.with_name(default_export_name(src, to))
    if target.resolve() == src.resolve():
        raise ExportError(f"`--out-file` must differ from the input file {str(src)!r}")
    if not overwrite:
        refuse_existing([target])
    lr = schedule.learning_rate
    if to == "json":
        if target.suffix != ".json":
            raise ExportError(f"`--out-file` of a json export must end in .json, got {str(target)!r}")
        save_schedule(schedule, target)
    elif to == "csv":
        if target.suffix != ".csv":
            raise ExportError(f"`--out-file` of a csv export must end in .csv, got {str(target)!r}")
        save_schedule(schedule, target)
    else:
        base = float(np.max(lr))
        if base <= 0:
            raise ExportError("a torch LambdaLR export needs a positive peak learning rate")
        payload = {
            "kind": "schedopt.torch_lambda",
            "schema_version": 1,
            "base_lr": base,
            "factors": (lr / base).tolist(),
            "usage": "optimizer = SGD(params, lr=base_lr); "
            "LambdaLR(optimizer, lambda t: factors[min(t, len(factors) - 1)])",
            "provenance": dict(schedule.provenance),
        }
        atomic_write_text(target, json_text(payload))
    return {
        "format": to,
        "path": str(target),
        "horizon": schedule.horizon,
        "peak": float(np.max(lr)),
        "converged": schedule.converged,
        "warmup": warmup,
    }
