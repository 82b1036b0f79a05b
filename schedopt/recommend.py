r"""A schedule without pilots: the theory's phase shape at the user's horizon and peak.

``schedopt recommend --horizon 50000 --peak 3e-4`` answers "what schedule?" before any
calibration. It takes the optimal schedule of the shipped problem of the chosen phase
(``problems/easy-phase.toml`` or ``problems/hard-phase.toml``, designed at T = 1e4 and
stored in ``schedopt/data/recommend.json`` by ``benchmarks/recommend.py``), keeps its
shape in :math:`t/T` (the phase rules of THEORY §4: the easy phase's shape
:math:`(1 - t/T)^{\delta}` and the hard phase's plateau and anneal both live in
:math:`t/T`), and scales it so that its maximum is the user's peak. The peak is the
user's: the theory says the optimal peak moves as :math:`T^{-\xi}`,
:math:`\xi = 1 - b/a`, in the easy phase and stays put in the hard phase, so a peak
tuned at another horizon ``peak_horizon`` is moved by that rule.

Everything it does not know is stated (:attr:`Recommendation.assumptions`), and how far
from optimal it may be comes from measurements stored with the shapes
(:attr:`Recommendation.expected`): the model's own transfer gaps and the project's
real training tasks. Needs NumPy only (no JAX, no solve).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from numbers import Integral, Real
from typing import Any

import numpy as np

from schedopt.errors import ProblemError
from schedopt.schedule import Schedule

__all__ = ["OPTIMIZERS", "PHASES", "Recommendation", "recommend"]

PHASES = ("auto", "easy", "hard")
#: The optimizers the exports drive (``schedopt.export.optax.BASES``; a test keeps them equal).
OPTIMIZERS = (
    "sgd",
    "adam",
    "adamw",
    "nadam",
    "nadamw",
    "lion",
    "rmsprop",
    "adagrad",
    "adabelief",
    "lamb",
    "lars",
)


@cache
def _data() -> dict[str, Any]:
    text = resources.files("schedopt").joinpath("data", "recommend.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True, eq=False)
class Recommendation:
    """A recommended schedule with what it assumes and how far from optimal it may be."""

    schedule: Schedule
    phase: str
    peak: float
    optimizer: str
    assumptions: tuple[str, ...]
    expected: dict[str, Any]
    next_steps: tuple[str, ...]
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        lr = self.schedule.learning_rate
        return {
            "phase": self.phase,
            "optimizer": self.optimizer,
            "horizon": self.schedule.horizon,
            "peak": self.peak,
            "final_learning_rate": float(lr[-1]),
            "learning_rate_units": "network (your optimizer's learning rate)",
            "shape": self.source,
            "assumptions": list(self.assumptions),
            "expected": self.expected,
            "next_steps": list(self.next_steps),
        }


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ProblemError(f"`{name}` must be a positive integer, got {value!r}", field=name)
    if not isinstance(value, Integral) and not float(value).is_integer():
        raise ProblemError(f"`{name}` must be a positive integer, got {value!r}", field=name)
    if int(value) < 1:
        raise ProblemError(f"`{name}` must be a positive integer, got {value!r}", field=name)
    return int(value)


def _expected(phase: str) -> dict[str, Any]:
    """The measured gaps that bound how far from optimal the recommendation may be."""
    evidence = _data()["evidence"]
    runs = [r for r in evidence["model_transfer"]["runs"].values() if r["phase"] == phase]
    model = [
        {
            "from_horizon": r["source_horizon"],
            "to_horizon": r["horizon"],
            "gap_phase_rule": r["gap_transferred"],
            "gap_shape_only": r["gap_stretch"],
        }
        for r in runs
    ]
    real = []
    for name, task in evidence["real_tasks"]["tasks"].items():
        diff = task["designed_minus_tuned_wsd"]
        real.append(
            {
                "task": name,
                "about": task["about"],
                "horizon": task["horizon"],
                "designed_minus_tuned_wsd": diff["mean"],
                "stderr": diff["stderr"],
                "relative": diff["mean"] / task["tuned_wsd_mean"],
            }
        )
    if phase == "easy":
        model_note = (
            "in the model (easy phase, re-optimised at 4T as reference): the shape in t/T with the peak "
            "moved by the phase rule is {rule} from optimal; the same shape with the peak not moved is "
            "{shape} (so a peak off by the rule's factor costs that much)"
        )
    else:
        model_note = (
            "in the model (hard phase, re-optimised at the new horizon as reference): the shape in t/T "
            "at the same peak is {shape} from optimal (the phase rule's shortened anneal: {rule})"
        )
    rule = ", ".join(
        f"+{m['gap_phase_rule']:.2%} (T {m['from_horizon']} -> {m['to_horizon']})" for m in model
    )
    shape = ", ".join(
        f"+{m['gap_shape_only']:.2%} (T {m['from_horizon']} -> {m['to_horizon']})" for m in model
    )
    horizons = " or ".join(str(h) for h in sorted({r["horizon"] for r in real}))
    lo = min(r["relative"] for r in real)
    hi = max(r["relative"] for r in real)
    # the same pilots trained on another seed: how much of the range is the draw of the pilots
    redrawn = [
        d["mean"] / task["tuned_wsd_mean"]
        for task in evidence["real_tasks"]["tasks"].values()
        for d in task.get("other_pilot_draws", {}).values()
    ]
    redraw_note = (
        f"; from another draw of the same pilots (their seed), between {min(redrawn):+.1%} and "
        f"{max(redrawn):+.1%} on {len(redrawn)} of them"
        if redrawn
        else ""
    )
    return {
        "model": model,
        "model_note": model_note.format(rule=rule, shape=shape),
        "model_source": evidence["model_transfer"]["source"],
        "real_tasks": real,
        "real_note": (
            f"on the project's {len(real)} small real tasks (tiny GPT, T = {horizons}), schedules designed from "
            f"fitted pilots ended between {lo:+.1%} and {hi:+.1%} from a tuned WSD schedule's final loss "
            f"(negative: lower), with no tuning run{redraw_note}; a pilot-free shape has no better claim"
        ),
        "real_source": evidence["real_tasks"]["source"],
    }


def recommend(
    horizon: int,
    peak: float,
    *,
    optimizer: str = "adamw",
    phase: str = "auto",
    peak_horizon: int | None = None,
    warmup: int = 0,
    warmup_shape: str = "linear",
) -> Recommendation:
    """A schedule of ``horizon`` steps from the phase's shape, with maximum ``peak``.

    Args:
        horizon: the number of optimizer updates of the run.
        peak: the peak learning rate the user trusts, in the optimizer's units.
        optimizer: the optax/torch optimizer the schedule will drive (recorded; the
            shape does not depend on it).
        phase: ``easy``, ``hard``, or ``auto`` (the easy phase: see the assumptions).
        peak_horizon: the horizon ``peak`` was tuned at, if not ``horizon``: the
            easy phase moves the peak by :math:`(T/T_0)^{-\\xi}`; the hard phase keeps it.
        warmup: steps of a ramp to the peak at the start (inside the horizon).
        warmup_shape: ``linear`` or ``cosine``.

    Raises:
        ProblemError: an argument is invalid (the message names it).
    """
    from schedopt.schedule._warmup import with_warmup

    horizon = _checked(horizon, peak, optimizer, phase, warmup, warmup_shape)
    chosen = "easy" if phase == "auto" else phase
    stored = _data()["shapes"][chosen]
    a, b = stored["a"], stored["b"]
    assumptions = []
    if phase == "auto":
        assumptions.append(
            "phase: unknown without pilots; auto takes the easy phase (a > b), the paper's finding for "
            "GPT-2-style language models. Vision-style training (ResNets) behaved like the hard phase: "
            "pass --phase hard"
        )
    scale = 1.0
    if peak_horizon is not None:
        peak_horizon = _positive_int("peak_horizon", peak_horizon)
        scale, note = _moved_peak(chosen, horizon, peak_horizon, a, b)
        assumptions.append(note)
    top = float(peak) * scale
    assumptions += [
        f"shape: the optimal schedule of {stored['source']} (a = {a:g}, b = {b:g}, T = {stored['horizon']}), "
        "kept in t/T; the shape of your task depends on its own exponents",
        f"peak: {top:.6g} is trusted as the best peak for this horizon (the model cannot check it "
        "without pilots); the schedule's maximum equals it",
        f"optimizer: {optimizer}; the schedule is its learning rate, step t = its t-th update",
    ]
    pos = np.arange(horizon, dtype=np.float64) * stored["horizon"] / horizon
    factor = np.interp(pos, np.asarray(stored["steps"], dtype=np.float64), np.asarray(stored["factor"]))
    factor = factor / factor.max()  # the maximum is exactly the peak
    source = {
        "problem": stored["source"],
        "a": a,
        "b": b,
        "designed_horizon": stored["horizon"],
        "written_by": _data()["written_by"],
    }
    provenance = {
        "recommend": {
            "phase": chosen,
            "phase_given": phase,
            "optimizer": optimizer,
            "peak": top,
            "peak_given": float(peak),
            "peak_horizon": peak_horizon,
            "shape": source,
        },
        "learning_rate_units": "network",
        "converged": True,
    }
    schedule = Schedule(learning_rate=top * factor, provenance=provenance)
    if warmup:
        schedule = with_warmup(schedule, warmup, shape=warmup_shape)
    # the warmup the user gave goes on to the pilots (linear ramps) and to the design
    ramp = f" --warmup {warmup}" if warmup else ""
    shaped = ramp + (f" --warmup-shape {warmup_shape}" if warmup and warmup_shape != "linear" else "")
    next_steps = (
        f"calibrated answer: schedopt pilots --horizon {horizon} --peak {peak:g}{ramp} (short runs at a "
        "few learning rates), train them, then schedopt fit runs/*.csv --out-file fitted.toml and "
        f"schedopt design fitted.toml --horizon {horizon}{shaped}",
        "use it: schedopt.export.to_optax_optimizer(path, base=...) or "
        "schedopt.export.torch.to_torch_scheduler(optimizer, path)",
    )
    return Recommendation(
        schedule=schedule,
        phase=chosen,
        peak=top,
        optimizer=optimizer,
        assumptions=tuple(assumptions),
        expected=_expected(chosen),
        next_steps=next_steps,
        source=source,
    )


def _checked(horizon, peak, optimizer, phase, warmup, warmup_shape) -> int:
    """:func:`recommend`'s arguments checked (each error names its argument); the horizon as an int."""
    from schedopt.schedule._warmup import check_warmup

    horizon = _positive_int("horizon", horizon)
    if isinstance(peak, bool) or not isinstance(peak, Real) or not math.isfinite(peak) or peak <= 0:
        raise ProblemError(f"`peak` must be a positive finite number, got {peak!r}", field="peak")
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ProblemError(
            f"`optimizer` must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}", field="optimizer"
        )
    if phase not in PHASES:
        raise ProblemError(f"`phase` must be one of {', '.join(PHASES)}, got {phase!r}", field="phase")
    try:
        check_warmup(warmup, horizon, shape=warmup_shape, field="warmup")
    except Exception as exc:  # ExportError from the shared check, as a problem error here
        raise ProblemError(str(exc), field="warmup") from None
    return horizon


def _moved_peak(phase: str, horizon: int, peak_horizon: int, a: float, b: float) -> tuple[float, str]:
    """The factor on a peak tuned at ``peak_horizon`` for ``horizon`` (THEORY §4), and the assumption it makes."""
    if phase != "easy":
        return 1.0, "hard phase: the optimal peak does not move with the horizon; kept as given"
    xi = 1.0 - b / a
    scale = (horizon / peak_horizon) ** -xi
    return scale, (
        f"peak moved from horizon {peak_horizon} by (T/T0)^-xi = {scale:.4g}, xi = 1 - b/a = {xi:.3g} "
        f"of the shipped easy problem (a = {a:g}, b = {b:g}); your task's a and b set the true xi"
    )
