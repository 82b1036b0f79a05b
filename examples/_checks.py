"""Checks the examples' run settings share (``TrainConfig``, ``LSTMConfig``): each error names the field and the value."""

from __future__ import annotations

import math
from numbers import Integral, Real

__all__ = ["check_grad_clip", "check_positive_ints", "check_seed", "check_weight_decay"]


def check_positive_ints(record: object, names: tuple[str, ...]) -> None:
    """Each attribute ``names`` of ``record`` is a positive integer (not a bool)."""
    for name in names:
        value = getattr(record, name)
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}")


def check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}")


def check_weight_decay(weight_decay: object) -> None:
    wd = weight_decay
    if isinstance(wd, bool) or not isinstance(wd, Real) or not math.isfinite(wd) or wd < 0:
        raise ValueError(f"`weight_decay` must be a finite number >= 0, got {wd!r}")


def check_grad_clip(clip: object) -> None:
    if clip is not None and (
        isinstance(clip, bool) or not isinstance(clip, Real) or not math.isfinite(clip) or clip <= 0
    ):
        raise ValueError(f"`grad_clip` must be a positive finite number or None, got {clip!r}")
