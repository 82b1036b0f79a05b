"""Real training tasks: does the fitted model predict held-out runs, and does the design beat tuned WSD?

For each task of ``examples/tasks.py`` (corpora, optimisers and sizes of the tiny GPT):

Every schedule starts with the task's linear warmup (5 % of the horizon).

* **pilots** (``long60-wider``, what ``schedopt pilots`` proposes): WSD runs (20 % 1-sqrt
  cooldown) of 0.6 of the horizon at the guess and of 0.2 at x 0.25 and x 4 of it: one
  full-run equivalent of compute, never on the tuning grid's results (the earlier protocols,
  ``long60-wide``'s x 0.35 / x 2.8 among them, and the others tried: ``PILOT_PROTOCOLS``);
* **grid**: cosine, linear and WSD (20 % 1-sqrt cooldown) at the full horizon on
  7 peaks spaced x sqrt(2) (seed 0); **seeds**: each family's best peak on seeds 1 and 2;
* **predict**: ``schedopt fit`` on the pilots, then its predicted final loss for
  every full-length run (the panel), next to the Multi-Power Law fitted on the
  same pilots (``benchmarks/mpl.py``);
* **design**: each design arm (``DESIGN_ARMS``: the plateau-anneal design ``schedopt design``
  writes for a fitted spec, and the earlier free-form one), WSD at each arm's peak and the
  MPL-optimised schedule, on seeds 0-2; **transfer**: the designs at twice the horizon
  against WSD at the peak tuned at the horizon (one seed); **transfer-seeds**: the headline
  design's 2T pair on seeds 1-4 too (``TRANSFER_SEEDS``); **headline-seeds**: the headline
  design and tuned WSD at the horizon on seeds 5-9 too (``HEADLINE_SEEDS``; the extra-seeds stage
  gave seeds 3-4 to them and to earlier headlines); **pilot-seeds**: the default pilots and
  ``long60-high``'s (the long pilot at x 2 the guess) on pilot seed 1 too (``PILOT_SEEDS``), whose
  fits' errors the report gives beside seed 0's (``prediction_by_pilot_seed``, with ``long60-mid``'s);
  **pilot-seed-design**: the headline design made from those seed-1 pilots, trained on seeds 0-4 and
  paired with tuned WSD (``design_by_pilot_seed``, beside the seed-0 pilots' design on the same seeds).

Runs are cached (``benchmarks/runcache.py``), so every stage resumes.
Writes ``benchmarks/results/realtasks.json`` and ``realtasks.png``.

Usage::

    uv run python benchmarks/realtasks.py runs --stage pilots grid seeds design extra-seeds transfer transfer-seeds
    uv run python benchmarks/realtasks.py report      # fit, predict, design, write
    uv run python benchmarks/realtasks.py report --task NAME --merge   # one task, the others kept

The first trains (hours; a task's pilots are the default protocol's unless ``--protocol`` says
otherwise). A new task needs only its entry in ``examples/tasks.py``: its design arm is the
headline (the other arms need pilots of earlier protocols).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from runcache import RUNS, Job, read_run, run_jobs  # noqa: E402

from examples.tasks import TASKS, Task  # noqa: E402

FAMILIES = {
    "cosine": {"kind": "cosine"},
    "linear": {"kind": "linear"},
    "wsd": {"kind": "wsd", "cooldown": 0.2},
}


def _low_guess_protocols() -> dict[str, tuple]:
    """The plan for a guess four times too low (``low4``) and with the k pilots above it (``low4-up{k}``)."""
    base = ((0.6, -2.0), (0.2, -4.0), (0.2, 0.0))
    return {
        "low4": base,
        **{f"low4-up{k}": (*base, *((0.2, float(i)) for i in range(1, k + 1))) for k in range(1, 5)},
    }


PILOT_PROTOCOLS = {
    # (fraction of the horizon, log2 of peak / guess[, cooldown fraction]) per pilot; each costs one full run
    "long-short": ((0.5, 0.0), (0.25, -1.0), (0.25, 1.0)),
    "quarters": ((0.25, -1.5), (0.25, -0.5), (0.25, 0.5), (0.25, 1.5)),
    # the short pilots x 2**1.5 from the guess (long-short's: x 2): brackets a guess off by up to ~x 3
    "long-wide": ((0.5, 0.0), (0.25, -1.5), (0.25, 1.5)),
    # the long pilot anneals over as many updates as the target's 20 % cooldown (0.4 of T/2 = 0.2 T)
    "long-anneal": ((0.5, 0.0, 0.4), (0.25, -1.0), (0.25, 1.0)),
    # the high pilot anneals abruptly (10 %): how fast the loss follows a drop, which 20 % hides
    "short-anneal": ((0.5, 0.0), (0.25, -1.0), (0.25, 1.0, 0.1)),
    # more of the budget on the long pilot: a shorter extrapolation in time (x 1.33 / x 1.67 to the horizon)
    "longer-wide": ((0.75, 0.0), (0.125, -1.5), (0.125, 1.5)),
    "long60-wide": ((0.6, 0.0), (0.2, -1.5), (0.2, 1.5)),
    # the same budget split, short pilots x 4 from the guess: brackets a guess off by up to ~x 4
    "long60-wider": ((0.6, 0.0), (0.2, -2.0), (0.2, 2.0)),
    # the long pilot above the guess (x sqrt 2, x 2), the short ones as long60-wider's: a larger
    # cumulative learning rate for the extrapolation in time (the target runs reach 2.5-5 x the guess
    # pilot's), and a larger noise floor for the anneal to show
    "long60-mid": ((0.6, 0.5), (0.2, -2.0), (0.2, 2.0)),
    "long60-high": ((0.6, 1.0), (0.2, -2.0), (0.2, 2.0)),
    # long60-wider plus its x 4 pilot's first half (at least twice the warmup) on the next seed:
    # ``schedopt pilots --twin``; where the two disagree, fit caps the design below that rate (0.1 run more)
    "long60-wider-twin": ((0.6, 0.0), (0.2, -2.0), (0.2, 2.0), ("twin",)),
    # long60-wider plus the pilot fit's note asks for when the x 4 pilot is still far ahead of the guess's
    # (_checks._top_pilot_lead): one more short pilot at twice the top rate (1.2 runs). Trained only where
    # that note fired (the eleventh task), as a user who follows it would
    "long60-wider-up": ((0.6, 0.0), (0.2, -2.0), (0.2, 2.0), (0.2, 3.0)),
    # the same budget with the short pilots skewed up (x 0.5 / x 8) and spread wider still (x 0.25 / x 8):
    # benchmarks/pilot_spread.py, added 2026-12-07 after the guesses of the held-out tasks were 4-8x too low
    # on five of sixteen and never more than 1.4x too high
    "long60-skew": ((0.6, 0.0), (0.2, -1.0), (0.2, 3.0)),
    "long60-widest": ((0.6, 0.0), (0.2, -2.0), (0.2, 3.0)),
    # the plan with its x 0.25 pilot traded for one at x 8 (and the low-guess plan's at x 1/16 for one at x 2):
    # the second stage of an adaptive plan, where the x 4 pilot is still far ahead of the guess's when it ends
    # (benchmarks/adaptive_pilots.py, added 2026-12-07); every pilot of both was trained already
    "long60-traded": ((0.6, 0.0), (0.2, 2.0), (0.2, 3.0)),
    # the plan plus its x 4 pilot again with a gradual decay (1-sqrt over its last 70 %, just past the warmup; 1.2 runs): can a
    # pilot that is not WSD-shaped identify how the network responds to a decay within a run (lr_memory.py)?
    # Added 2026-12-08 after prediction_bias.py found the largest error left is cosine at a high peak, too low
    "long60-wider-decay": ((0.6, 0.0), (0.2, -2.0), (0.2, 2.0), (0.2, 2.0, 0.7)),
    "lowguess-traded": ((0.6, -2.0), (0.2, 0.0), (0.2, 1.0)),
    # the plan for a guess four times too low (LOW_GUESS), and with the k pilots above it that fit's
    # top-pilot note asks for in turn (schedopt pilots --above k): x 2**k the plan's top rate each
    **_low_guess_protocols(),
    # the same with the top pilot's twin (schedopt pilots --above k --twin), on seed 1: added after the
    # low-guess designs were in, where following the notes on code/AdamW had stalled 3 long runs of 5
    **{f"{name}-twin": (*pilots, ("twin",)) for name, pilots in _low_guess_protocols().items()},
}
#: the protocol ``schedopt pilots`` proposes (schedopt.calibration.plan.PLAN), and its design arm: what a
#: user gets from ``schedopt pilots`` -> training -> ``schedopt fit`` -> ``schedopt design``
DEFAULT_PROTOCOL = "long60-wider"
#: the plateau tolerance of the "-flat" arm (schedopt.calibration.form.sqrt_plateau): below the fitted
#: models' errors (0.4-0.9 % RMS); benchmarks/plateau_rules.py scored 0.1-0.5 % offline
FLAT_TOLERANCE = 0.003
HEADLINE = "designed-default"
PILOT_EVAL_EVERY = 20
SEEDS = (0, 1, 2)


def baseline_lrs(kind: str, peak: float, horizon: int, **options) -> np.ndarray:
    """The per-update learning rates of a baseline family (``examples.tinygpt.schedules``)."""
    import jax

    from examples.tinygpt.schedules import make_schedule, schedule_values

    # evaluated in float64 whatever the process's JAX setting: the run cache is keyed by these values
    with jax.enable_x64(True):
        return schedule_values(make_schedule(kind, peak=peak, horizon=horizon, **options), horizon)


def _label(family: str, peak: float, horizon: int) -> str:
    return f"{family}-{peak:.4g}-T{horizon}"


def pilot_jobs(task: Task, protocol: str = "long-short", seed: int = 0) -> list[Job]:
    """The protocol's pilots on ``seed``; a ``("twin",)`` entry is the highest pilot so far cut as
    ``schedopt pilots --twin`` cuts it (:func:`schedopt.calibration.plan.twin_steps`), on ``seed + 1``."""
    from schedopt.calibration.plan import twin_steps

    jobs = []
    for fraction, *entry in PILOT_PROTOCOLS[protocol]:
        if fraction == "twin":
            top = max(jobs, key=lambda j: j.meta["peak"])
            n = twin_steps(top.lrs.size, task.warmup)
            meta = {**top.meta, "twin_of": top.label}
            jobs.append(
                Job(task.name, f"{top.label}-first{n}", top.lrs[:n], seed + 1, PILOT_EVAL_EVERY, meta)
            )
            continue
        offset, *rest = entry
        cooldown = rest[0] if rest else 0.2
        steps = int(round(fraction * task.horizon))
        peak = float(f"{task.guess * 2.0**offset:.4g}")
        lrs = baseline_lrs("wsd", peak, steps, cooldown=cooldown, warmup=task.warmup)
        family = "wsd" if cooldown == 0.2 else f"wsd{round(100 * cooldown)}"
        meta = {"peak": peak, "cooldown": cooldown}
        jobs.append(Job(task.name, "pilot-" + _label(family, peak, steps), lrs, seed, PILOT_EVAL_EVERY, meta))
    return jobs


MAX_EXTENSION = 6  # peaks a family's grid may grow past an edge whose peak was the best (3 until the eleventh task, whose best peaks lay past 8x its guess)


def _family_job(task: Task, family: str, peak: float, seed: int = 0) -> Job:
    options = FAMILIES[family]
    extra = {k: v for k, v in options.items() if k != "kind"}
    lrs = baseline_lrs(options["kind"], peak, task.horizon, warmup=task.warmup, **extra)
    return Job(task.name, _label(family, peak, task.horizon), lrs, seed, meta={"peak": peak})


def family_grid(task: Task, family: str) -> list[float]:
    """The family's tuning peaks: the task's 7, grown by x sqrt(2) past an edge while the edge is best (seed 0)."""
    peaks = list(task.peak_grid)
    for _ in range(MAX_EXTENSION):
        jobs = [_family_job(task, family, p) for p in peaks]
        if not all(j.done() for j in jobs):
            break
        losses = [read_run(j)["final_val_loss"] for j in jobs]
        best = int(np.nanargmin(losses))
        if best == len(peaks) - 1:
            peaks.append(float(f"{peaks[-1] * np.sqrt(2):.4g}"))
        elif best == 0:
            peaks.insert(0, float(f"{peaks[0] / np.sqrt(2):.4g}"))
        else:
            break
    return peaks


def grid_jobs(task: Task, seed: int = 0) -> list[Job]:
    return [_family_job(task, family, p, seed) for family in FAMILIES for p in family_grid(task, family)]


def best_peaks(task: Task) -> dict[str, float]:
    """Each family's peak with the lowest seed-0 final loss on its grid (the grid must be finished)."""
    out = {}
    for family in FAMILIES:
        runs = [_family_job(task, family, p) for p in family_grid(task, family)]
        losses = [read_run(j)["final_val_loss"] for j in runs]
        out[family] = runs[int(np.nanargmin(losses))].meta["peak"]
    return out


def seed_jobs(task: Task) -> list[Job]:
    best = best_peaks(task)
    return [_family_job(task, family, best[family], s) for family in FAMILIES for s in SEEDS[1:]]


def _centre_first(n: int) -> list[int]:
    """Indices ``0..n-1`` of a family-major grid of 7 peaks, each family's centre peaks first."""
    grid = len(next(iter(TASKS.values())).peak_grid)
    rank = sorted(range(grid), key=lambda i: abs(i - (grid - 1) / 2))
    return sorted(range(n), key=lambda i: (rank.index(i % grid) if n % grid == 0 else 0, i))


FITS = ROOT / "benchmarks" / "results" / "realtasks" / "fits"
from schedopt.calibration.fit import FIT_MODES, OFFSET_FLOOR  # noqa: E402  (fit's defaults)

#: fitted model variants: their terms and the floor of the loss offset (``schedopt-null``: the null modes
#: without the exponent, p = 1). ``schedopt-floor`` is ``schedopt fit``'s default since the offset floor
#: came in (``OFFSET_FLOOR``); the others are the fits every earlier arm was designed from (offset free).
MODELS = {
    "schedopt": (("exponent", "null_modes"), 0.0),
    "schedopt-base": ((), 0.0),
    "schedopt-null": (("null_modes",), 0.0),
    "schedopt-floor": (("exponent", "null_modes"), OFFSET_FLOOR),
    # schedopt fit's defaults as they stand when a fit is made (cached apart from schedopt-floor, whose fits
    # predate later rules: benchmarks/pilot_spread.py refits every protocol it compares with today's code)
    "schedopt-today": (("exponent", "null_modes"), OFFSET_FLOOR),
    # the same with the irreducible loss free (benchmarks/offset_hedge.py, added 2026-12-07 after the seventeenth task)
    "schedopt-today-free": (("exponent", "null_modes"), 0.0),
    # schedopt fit as it stands after the offset hedge (its refit with the offset free is in the spec; cached apart
    # from schedopt-today, whose fits predate it: benchmarks/hedged_design.py)
    "schedopt-hedged": (("exponent", "null_modes"), OFFSET_FLOOR),
}
#: the models fitted to the first pilots (``long-short``) of the first three tasks
FIRST_MODELS = ("schedopt", "schedopt-base", "schedopt-null")


def _piloted(task: Task, protocol: str, seed: int = 0) -> bool:
    """Whether every pilot of the protocol has finished for the task."""
    return all(j.done() for j in pilot_jobs(task, protocol, seed))


def pilot_runs(task: Task, protocol: str = "long-short", seed: int = 0):
    from schedopt.calibration.pilots import read_pilot

    return [read_pilot(j.log) for j in pilot_jobs(task, protocol, seed)]


def _tag(protocol: str, seed: int = 0) -> str:
    """File-name part of a pilot protocol (none for the first protocol, whose files came first) and seed."""
    return ("" if protocol == "long-short" else f"-{protocol}") + ("" if seed == 0 else f"-pilot-s{seed}")


def fitted(task: Task, model: str = "schedopt", protocol: str = "long-short", seed: int = 0):
    """``schedopt fit`` on the task's pilots (cached as the fitted spec and its JSON report)."""
    from schedopt.calibration.fit import fit_pilots
    from schedopt.spec import load_problem

    spec = FITS / f"{task.name}{_tag(protocol, seed)}-{model}.toml"
    report = spec.with_suffix(".json")
    if not (spec.exists() and report.exists()):
        runs = pilot_runs(task, protocol, seed)
        terms, floor = MODELS[model]
        result = fit_pilots(runs, n_modes=FIT_MODES, holdout="none", terms=terms, offset_floor=floor)
        spec.parent.mkdir(parents=True, exist_ok=True)
        here = str(ROOT) + "/"  # no absolute path of this machine in the results
        spec.write_text(result.spec_text().replace(here, ""))
        report.write_text(json.dumps(result.to_dict(), indent=1, allow_nan=False).replace(here, "") + "\n")
    return load_problem(spec), json.loads(report.read_text())


def mpl_law(task: Task, protocol: str = "long-short", seed: int = 0):
    """The Multi-Power Law fitted to the task's pilots (cached: its coordinates, reference and warmup)."""
    import mpl

    cache = FITS / f"{task.name}{_tag(protocol, seed)}-mpl.json"
    if not cache.exists():
        runs = pilot_runs(task, protocol, seed)
        law = mpl.fit([(r.learning_rate, r.loss_steps, r.losses) for r in runs], warmup=task.warmup)
        cache.parent.mkdir(parents=True, exist_ok=True)
        record = {"theta": law.theta.tolist(), "eta_ref": law.eta_ref, "rms_log_error": law.rms_log_error}
        cache.write_text(json.dumps({**record, "parameters": law.parameters()}, indent=1) + "\n")
    record = json.loads(cache.read_text())
    return mpl.MultiPowerLaw(
        np.asarray(record["theta"]), record["eta_ref"], task.warmup, record["rms_log_error"]
    )


def with_warmup(lrs: np.ndarray, warmup: int) -> np.ndarray:
    """The task's linear warmup on a designed schedule: update ``t < W`` runs at most ``peak (t + 1) / W``."""
    out = np.array(lrs, dtype=np.float64)
    ramp = out.max() * (np.arange(warmup) + 1.0) / warmup
    out[:warmup] = np.minimum(out[:warmup], ramp)
    return out


def _arm_tag(arm: str | None) -> str:
    """File-name part of an arm with its own cached schedules (:data:`_OWN_CACHE`)."""
    return f"-{arm.removeprefix('designed-')}" if arm in _OWN_CACHE else ""


def _design_record(
    task: Task, horizon: int, form: str, protocol: str, model: str, anneal: str, pilot_seed: int = 0
):
    """What the installed schedopt designs for the fitted problem at ``horizon`` (no cache).

    ``anneal`` as an arm gives it: ``1-sqrt-flat`` is the 1-sqrt anneal from a plateau chosen with
    :data:`FLAT_TOLERANCE` (``form.sqrt_plateau``).
    """
    tolerance = FLAT_TOLERANCE if anneal.endswith("-flat") else 0.0
    anneal = anneal.removesuffix("-flat")
    problem, _ = fitted(task, model, protocol, pilot_seed)
    if form == "free":
        import schedopt

        solution = schedopt.solve(problem.with_horizon(horizon), solver="jax")
        network = problem.network.network_learning_rate(solution.per_step("learning_rate"))
        record = {"status": str(solution.status), "learning_rate": np.asarray(network).tolist()}
    else:
        result = design_result(task, problem, horizon, form, anneal, tolerance)
        network = problem.network.network_learning_rate(result.schedule().learning_rate)
        record = {
            "status": str(result.solution.status),
            "form": dict(result.form),
            "learning_rate": np.asarray(network).tolist(),
        }
    return record


def design_result(task: Task, problem, horizon: int, form: str, anneal: str, tolerance: float):
    """``schedopt design``'s result for a fitted ``problem`` at ``horizon`` with the task's warmup, its plateau
    chosen at the pilots' horizon (``form``: a plateau form; ``anneal``: ``1-sqrt`` or ``model``)."""
    from schedopt.design import design

    return design(
        problem.with_horizon(horizon),
        baselines=(),
        warmup=task.warmup,
        form=form,
        peak_horizon=problem.horizon,
        anneal=anneal,
        plateau_tolerance=tolerance,
    )


def _design_cache(
    task: Task,
    horizon: int,
    form: str,
    protocol: str,
    model: str,
    anneal: str,
    arm: str | None,
    pilot_seed: int,
) -> Path:
    """Where :func:`designed_lrs` caches a design (its schedule, status and form, the form's notes included)."""
    variant = "" if model == "schedopt" else model.removeprefix("schedopt-") + "-"
    shaped = "" if anneal == "model" else f"-{anneal}"
    tag = _tag(protocol, pilot_seed)
    return FITS / (
        f"{task.name}{tag}-{variant}design-T{horizon}.json"
        if form == "free"
        else f"{task.name}{tag}-{variant}design-{form}{shaped}{_arm_tag(arm)}-T{horizon}.json"
    )


def designed_lrs(
    task: Task,
    horizon: int,
    form: str = "plateau-anneal",
    protocol: str = "long-short",
    model: str = "schedopt",
    anneal: str = "model",
    arm: str | None = None,
    pilot_seed: int = 0,
) -> np.ndarray:
    """The schedule ``schedopt design`` gives for the fitted problem at ``horizon``, in network units.

    ``pilot_seed``: the seed of the pilots the problem was fitted to (:data:`PILOT_SEEDS`).

    ``plateau-anneal`` (the default of ``schedopt design`` for a fitted spec) is what
    ``schedopt design FITTED.toml --horizon T --warmup W`` writes: the task's warmup is a
    fixed ramp inside the design. ``free`` is the earlier free-form design (kept as an
    arm of the comparison): solved without a warmup, which is laid on afterwards.
    """
    cache = _design_cache(task, horizon, form, protocol, model, anneal, arm, pilot_seed)
    if not cache.exists():
        record = _design_record(task, horizon, form, protocol, model, anneal, pilot_seed)
        cache.write_text(json.dumps(record) + "\n")
    lrs = np.asarray(json.loads(cache.read_text())["learning_rate"])
    return with_warmup(lrs, task.warmup) if form == "free" else lrs


def mpl_lrs(task: Task, horizon: int) -> np.ndarray:
    """The Multi-Power Law's optimised schedule at ``horizon``: peak chosen by the law among the pilot range.

    Fitted to the first pilots a task has of ``long-short`` (the first three tasks), ``long60-wide``
    (the fourth task's default when its runs were made) and the default protocol (a new task);
    once made, a schedule stays with the pilots it was made from.
    """
    import mpl

    order = ("long-short", "long60-wide", DEFAULT_PROTOCOL)
    made = [p for p in order if (FITS / f"{task.name}{_tag(p)}-mpl-T{horizon}.json").exists()]
    protocol = made[0] if made else next(p for p in order if _piloted(task, p))  # the one it was run with
    cache = FITS / f"{task.name}{_tag(protocol)}-mpl-T{horizon}.json"
    if not cache.exists():
        law = mpl_law(task, protocol)
        peaks = sorted(r.peak_learning_rate for r in pilot_runs(task, protocol))
        grid = peaks[0] * np.sqrt(2.0) ** np.arange(int(round(2 * np.log2(peaks[-1] / peaks[0]))) + 1)
        scores = [
            law.final_loss(baseline_lrs("wsd", p, horizon, cooldown=0.2, warmup=task.warmup)) for p in grid
        ]
        peak = float(grid[int(np.argmin(scores))])
        lrs = mpl.optimize_schedule(law, horizon, peak)
        cache.write_text(
            json.dumps({"peak": peak, "parameters": law.parameters(), "learning_rate": lrs.tolist()})
        )
    return np.asarray(json.loads(cache.read_text())["learning_rate"])


#: label prefix -> (design form, pilot protocol, fitted model, anneal) of each designed arm. (The
#: "long-anneal" pilots gave the same plateau-anneal designs as "long-short", to 0.5 % in the plateau:
#: no arm of their own.) ``designed-sqrt`` is what ``schedopt design`` writes for a fitted spec; the
#: model-annealed arms are the evidence for that choice (seed 0 only for the two other models).
DESIGN_ARMS = {
    "designed-sqrt": ("plateau-anneal", "long-short", "schedopt", "1-sqrt"),
    "designed-sqrt-wide": ("plateau-anneal", "long-wide", "schedopt", "1-sqrt"),
    "designed-sqrt-long60": ("plateau-anneal", "long60-wide", "schedopt", "1-sqrt"),
    "designed-sqrt-wider": ("plateau-anneal", "long60-wider", "schedopt", "1-sqrt"),
    # the same pilots, the fit with the loss offset's floor (schedopt fit's default since)
    "designed-sqrt-floor": ("plateau-anneal", "long60-wider", "schedopt-floor", "1-sqrt"),
    # the same fit; the plateau the geometric centre of the levels within FLAT_TOLERANCE of the model's best
    "designed-sqrt-flat": ("plateau-anneal", "long60-wider", "schedopt-floor", "1-sqrt-flat"),
    # the same, designed by today's `schedopt design` (its own cached schedules, checked by `report`). The
    # designed-sqrt-flat schedules were cached before e505efc: their warmup ramps to the plateau chosen and
    # the plateau after it is chosen again under the lowered cap, 3-30 % lower on five tasks of six
    "designed-default": ("plateau-anneal", "long60-wider", "schedopt-floor", "1-sqrt-flat"),
    # the same with the x 4 pilot's twin (schedopt pilots --twin), fitted with the others
    "designed-twin": ("plateau-anneal", "long60-wider-twin", "schedopt-floor", "1-sqrt-flat"),
    # the same with the pilot fit's note asked for (long60-wider-up): where the x 4 pilot was still far ahead
    "designed-followup": ("plateau-anneal", "long60-wider-up", "schedopt-floor", "1-sqrt-flat"),
    "designed-plateau": ("plateau-anneal", "long-short", "schedopt", "model"),
    "designed": ("free", "long-short", "schedopt", "model"),
    "designed-plateau-null": ("plateau-anneal", "long-short", "schedopt-null", "model"),
    "designed-plateau-base": ("plateau-anneal", "long-short", "schedopt-base", "model"),
}
_SEED0_ONLY = ("designed-plateau-null", "designed-plateau-base")
#: arms that are WSD's shape already (the library's per-step mean of 1-sqrt, within 3.3 % of the peak of
#: the benchmark's point values at the first cooldown step): no separate WSD-at-their-peak runs
_WSD_SHAPED = (
    "designed-sqrt",
    "designed-sqrt-wide",
    "designed-sqrt-long60",
    "designed-sqrt-wider",
    "designed-sqrt-floor",
    "designed-sqrt-flat",
    "designed-default",
    "designed-twin",
    "designed-followup",
)
#: arms whose cached schedules carry their arm's name (every arm before them shares one cache per design)
_OWN_CACHE = ("designed-default", "designed-twin", "designed-followup")


def _arms(task: Task) -> dict[str, tuple[str, str, str, str]]:
    return {k: v for k, v in DESIGN_ARMS.items() if _piloted(task, v[1])}


def design_jobs(task: Task) -> list[Job]:
    jobs = []
    for prefix, (form, protocol, model, anneal) in _arms(task).items():
        designed = designed_lrs(task, task.horizon, form, protocol, model, anneal, prefix)
        peak = float(designed.max())
        wsd = baseline_lrs("wsd", peak, task.horizon, cooldown=0.2, warmup=task.warmup)
        for seed in SEEDS[:1] if prefix in _SEED0_ONLY else SEEDS:
            jobs += [
                Job(
                    task.name, f"{prefix}-T{task.horizon}", designed, seed, meta={"peak": peak, "form": form}
                ),
            ]
            if prefix not in _WSD_SHAPED:
                jobs.append(
                    Job(
                        task.name,
                        f"wsd-at-{prefix}-{peak:.4g}-T{task.horizon}",
                        wsd,
                        seed,
                        meta={"peak": peak},
                    )
                )
    # the peer's optimised schedule: one seed (its fits on these pilots are degenerate, see README)
    if not (_piloted(task, "long-short") or _piloted(task, DEFAULT_PROTOCOL)):
        return jobs
    mpl_opt = mpl_lrs(task, task.horizon)
    jobs.append(
        Job(task.name, f"mpl-optimised-T{task.horizon}", mpl_opt, 0, meta={"peak": float(mpl_opt.max())})
    )
    return jobs


def transfer_jobs(task: Task) -> list[Job]:
    horizon = 2 * task.horizon
    tuned = best_peaks(task)["wsd"]
    wsd = baseline_lrs("wsd", tuned, horizon, cooldown=0.2, warmup=task.warmup)
    jobs = [Job(task.name, _label("wsd", tuned, horizon), wsd, 0, meta={"peak": tuned})]
    for prefix, (form, protocol, model, anneal) in _arms(task).items():
        if prefix in _SEED0_ONLY:
            continue
        designed = designed_lrs(task, horizon, form, protocol, model, anneal, prefix)
        jobs.append(Job(task.name, f"{prefix}-T{horizon}", designed, 0, meta={"peak": float(designed.max())}))
    return jobs


#: Seeds added to the headline design and to tuned WSD only, the pair behind the headline claim
#: (added after 3 seeds left code-sgdm's difference at 1.5 standard errors; on every task alike).
EXTRA_SEEDS = (3, 4)
#: the design arms given the extra seeds: the headline, and the two earlier headlines
EXTRA_SEED_ARMS = (
    "designed-sqrt-wide",
    "designed-sqrt-long60",
    "designed-sqrt-wider",
    "designed-sqrt-floor",
    "designed-sqrt-flat",
    "designed-default",
    "designed-followup",
)


def _arm_jobs(task: Task, arm: str, seeds) -> list[Job]:
    """A design arm's schedule at the task's horizon, on ``seeds``."""
    form, protocol, model, anneal = _arms(task)[arm]
    designed = designed_lrs(task, task.horizon, form, protocol, model, anneal, arm)
    meta = {"peak": float(designed.max()), "form": form}
    return [Job(task.name, f"{arm}-T{task.horizon}", designed, seed, meta=meta) for seed in seeds]


def extra_seed_jobs(task: Task) -> list[Job]:
    """Tuned WSD at its best peak and the :data:`EXTRA_SEED_ARMS` designs, on :data:`EXTRA_SEEDS`."""
    best = best_peaks(task)
    jobs = [_family_job(task, "wsd", best["wsd"], seed) for seed in EXTRA_SEEDS]
    arms = _arms(task)  # a new task has the headline's pilots only
    for arm in (a for a in EXTRA_SEED_ARMS if a in arms):
        jobs += _arm_jobs(task, arm, EXTRA_SEEDS)
    return jobs


#: Seeds added to the headline design and to tuned WSD at the horizon, on every task alike, decided
#: before any of their runs: at 5 seeds the paired standard error (0.004-0.009 nats) was as large as
#: the differences the design claim rests on (code-adamw-wd missed it by 0.002).
HEADLINE_SEEDS = (5, 6, 7, 8, 9)


def headline_seed_jobs(task: Task) -> list[Job]:
    """Tuned WSD at its best peak and the :data:`HEADLINE` design, on :data:`HEADLINE_SEEDS`."""
    best = best_peaks(task)
    wsd = [_family_job(task, "wsd", best["wsd"], seed) for seed in HEADLINE_SEEDS]
    return wsd + _arm_jobs(task, HEADLINE, HEADLINE_SEEDS)


#: every run seed tuned WSD has at the horizon: seeds 0-9
WSD_SEEDS = (*SEEDS, *EXTRA_SEEDS, *HEADLINE_SEEDS)


def guess_wsd_jobs(task: Task) -> list[Job]:
    """WSD at the task's guess (the long pilot's rate), the schedule of a user who tunes nothing, on
    :data:`WSD_SEEDS`: a fit that finds no learning-rate response designs it (``schedopt fit`` caps such a
    design at the longest pilot's rate)."""
    return [_family_job(task, "wsd", task.guess, seed) for seed in WSD_SEEDS]


TWIN = "designed-twin"


def twin_seed_jobs(task: Task) -> list[Job]:
    """The :data:`TWIN` arm on :data:`WSD_SEEDS` (where its schedule equals the headline's, the run cache
    copies the headline's runs: ``runcache._reuse``)."""
    return _arm_jobs(task, TWIN, WSD_SEEDS) if TWIN in _arms(task) else []


FOLLOWUP = "designed-followup"


def followup_seed_jobs(task: Task) -> list[Job]:
    """The :data:`FOLLOWUP` arm (the pilots plus the one ``fit``'s top-pilot note asks for) on :data:`WSD_SEEDS`,
    where that pilot was trained (the task whose note fired)."""
    return _arm_jobs(task, FOLLOWUP, WSD_SEEDS) if FOLLOWUP in _arms(task) else []


#: Seeds added to the headline's 2T design and to WSD at the T-tuned peak at 2T (the transfer pair): one
#: 2T run spreads by ~0.02 nats between seeds, as much as the differences the transfer claim rests on.
#: Seeds 3 and 4 were added when the designs at 2T came out within 2-11 % of tuned WSD's peak with the same
#: anneal, and 3 seeds' paired differences (up to 0.034 nats on one seed) could not tell them apart.
TRANSFER_SEEDS = (1, 2, 3, 4)


def _transfer_pair(task: Task, arm: str = HEADLINE) -> tuple[str, str]:
    """The labels of an arm's transfer pair: WSD at the T-tuned peak at 2T, the arm's design (the headline's)."""
    return _label("wsd", best_peaks(task)["wsd"], 2 * task.horizon), f"{arm}-T{2 * task.horizon}"


def _transfer_arms(task: Task) -> tuple[str, ...]:
    """The arms whose transfer pair runs on :data:`TRANSFER_SEEDS`: the headline, the twin and the follow-up arms."""
    return (HEADLINE, *(arm for arm in (TWIN, FOLLOWUP) if arm in _arms(task)))


def transfer_seed_jobs(task: Task) -> list[Job]:
    """The :func:`_transfer_arms`' transfer pairs (``transfer_jobs``' schedules) on :data:`TRANSFER_SEEDS`."""
    labels = {label for arm in _transfer_arms(task) for label in _transfer_pair(task, arm)}
    pair = [j for j in transfer_jobs(task) if j.label in labels]
    return [Job(j.task, j.label, j.lrs, seed, meta=j.meta) for seed in TRANSFER_SEEDS for j in pair]


#: a second seed of the pilots of the default protocol and of the protocol with the long pilot at x 2 the
#: guess: how much of a protocol's prediction error is the pilots' own seed
PILOT_SEEDS = (1,)
PILOT_SEED_PROTOCOLS = (DEFAULT_PROTOCOL, "long60-high")


#: seeds of the long runs of the headline design made from the other pilot seeds (paired with tuned WSD's)
PILOT_SEED_DESIGN_SEEDS = (0, 1, 2, 3, 4)


def _pilot_seed_design(task: Task, pilot_seed: int, arm: str = HEADLINE) -> list[Job]:
    """An arm's design (default the headline) from pilot seed ``pilot_seed``'s pilots, on
    :data:`PILOT_SEED_DESIGN_SEEDS`."""
    lrs = designed_lrs(task, task.horizon, *DESIGN_ARMS[arm], arm, pilot_seed)
    label = f"{arm}-pilot-s{pilot_seed}-T{task.horizon}"
    meta = {"peak": float(lrs.max()), "pilot_seed": pilot_seed}
    return [Job(task.name, label, lrs, seed, meta=meta) for seed in PILOT_SEED_DESIGN_SEEDS]


def pilot_seed_design_jobs(task: Task) -> list[Job]:
    """The headline design from each of :data:`PILOT_SEEDS`' pilots, on :data:`PILOT_SEED_DESIGN_SEEDS`."""
    return [job for pilot_seed in PILOT_SEEDS for job in _pilot_seed_design(task, pilot_seed)]


def followup_pilot_seed_jobs(task: Task) -> list[Job]:
    """Where the :data:`FOLLOWUP` arm was trained: its pilots on :data:`PILOT_SEEDS` (the planned ones are
    the ``pilot-seeds`` stage's: only the pilot fit's note asked for is new) and, once they are in, its
    design from them on :data:`PILOT_SEED_DESIGN_SEEDS`. Another draw of the follow-up pilots: is the arm's
    result a property of the procedure or of one draw?"""
    if FOLLOWUP not in _arms(task):
        return []
    protocol = DESIGN_ARMS[FOLLOWUP][1]
    jobs = [j for s in PILOT_SEEDS for j in pilot_jobs(task, protocol, s)]
    for pilot_seed in (s for s in PILOT_SEEDS if _piloted(task, protocol, s)):
        jobs += _pilot_seed_design(task, pilot_seed, FOLLOWUP)
    return jobs


def tuned_wsd_by_seed(task: Task) -> dict[int, float]:
    """Tuned WSD's final loss at the horizon (its seed-0 grid's best peak) by run seed, on the :data:`WSD_SEEDS`
    that finished: what a design's runs are paired with."""
    best = best_peaks(task)["wsd"]
    return {
        j.seed: r["final_val_loss"]
        for j, r in _finished([_family_job(task, "wsd", best, s) for s in WSD_SEEDS])
    }


def design_by_pilot_seed(task: Task) -> dict | None:
    """Design - tuned WSD (paired by run seed) for the headline made from each pilot seed's pilots, and for
    the :data:`FOLLOWUP` arm where it has another draw (``followup, pilot seed N``)."""
    wsd = tuned_wsd_by_seed(task)
    arms = {"pilot seed 0": _finished(_arm_jobs(task, HEADLINE, PILOT_SEED_DESIGN_SEEDS))}
    for pilot_seed in (s for s in PILOT_SEEDS if _piloted(task, DEFAULT_PROTOCOL, s)):
        arms[f"pilot seed {pilot_seed}"] = _finished(_pilot_seed_design(task, pilot_seed))
    if FOLLOWUP in _arms(task):
        protocol = DESIGN_ARMS[FOLLOWUP][1]
        arms["followup, pilot seed 0"] = _finished(_arm_jobs(task, FOLLOWUP, PILOT_SEED_DESIGN_SEEDS))
        for pilot_seed in (s for s in PILOT_SEEDS if _piloted(task, protocol, s)):
            arms[f"followup, pilot seed {pilot_seed}"] = _finished(
                _pilot_seed_design(task, pilot_seed, FOLLOWUP)
            )
    out = {}
    for key, runs in arms.items():
        common = [(j, r) for j, r in runs if j.seed in wsd]
        if len(common) < 2:
            continue
        lrs = common[0][0].lrs
        out[key] = {
            "plateau": float(lrs[lrs.size // 2]),
            "tuned_wsd_peak": best_peaks(task)["wsd"],
            "design_minus_tuned_wsd": _stats([r["final_val_loss"] - wsd[j.seed] for j, r in common]),
            "run_seeds": [j.seed for j, _ in common],
        }
    return out or None


def pilot_seed_jobs(task: Task) -> list[Job]:
    """The pilots of :data:`PILOT_SEED_PROTOCOLS` on :data:`PILOT_SEEDS` (a pilot two protocols share: once)."""
    jobs = [j for s in PILOT_SEEDS for p in PILOT_SEED_PROTOCOLS for j in pilot_jobs(task, p, s)]
    return list({(j.label, j.seed): j for j in jobs}.values())


#: A guess four times too low. The tasks' guesses are a practitioner's (their best WSD peaks 0.7-8x them); a
#: new user's may be further off. Each task below trains the plan around guess / 4, fits it, and, while fit's
#: top-pilot note or design's cap note asks for a pilot above (``schedopt pilots --above k``, at most
#: MAX_ABOVE; neither asks once the pilots bracket the best peak from above, ``_checks._bracket_above``),
#: trains that one and fits again: what a user who follows the notes trains. The design from the first fit (the note not
#: followed) and from the last, each on PILOT_SEED_DESIGN_SEEDS, paired with tuned WSD. Tasks chosen before
#: any of these runs: two GPT tasks (AdamW, SGD with momentum), the one whose high rates stall (batch 8) and
#: the LSTM (whose guess was already 8x low: this one is 32x).
LOW_GUESS = 4.0
LOW_GUESS_FIRST = ("code-adamw", "code-sgdm", "prose-adamw-b8", "code-lstm-torch")
#: The same experiment on the eight other tasks, held out for the bracket rule (``_checks._bracket_above``: no
#: pilot above is asked for once the top pilot ended no lower than a lower pilot of its schedule), defined
#: with that rule and before any of its runs (2026-12-06).
LOW_GUESS_HELD_OUT = (
    "prose-adamw",
    "code-adamw-wd",
    "prose-sgdm",
    "code-adamw-deep",
    "prose-adamw-ctx128",
    "code-adamw-1l",
    "prose-sgdm-1l",
    "prose-lstm-torch",
)
LOW_GUESS_TASKS = LOW_GUESS_FIRST + LOW_GUESS_HELD_OUT
LOW_GUESS_ARM = ("plateau-anneal", "schedopt-floor", "1-sqrt-flat")  # as designed-default


def _asks_above(task: Task, protocol: str, bracket: bool = True) -> bool:
    """Whether ``fit``'s notes (``_checks._top_pilot_lead``) or ``design``'s for the task's horizon
    (``form._cap_notes``: the plateau at or near the largest pilot's rate) ask for a pilot above the pilots.
    A user reads both; the experiment first followed ``fit``'s alone, quiet on three tasks of four, and
    was widened to ``design``'s before any of its designs had run. Neither asks once the pilots bracket the
    best peak from above (``_checks._bracket_above``, the rule both notes now follow; added after the first
    four tasks' chains had run). ``bracket=False``: whether they would ask without that rule (``design``'s
    bracket note took the place of its request)."""
    from schedopt.calibration._checks import CONTRADICTION, _bracket_above, _top_pilot_lead

    runs = pilot_runs(task, protocol)
    if bracket and _bracket_above(runs) is not None:
        return False
    lead = _top_pilot_lead(runs)  # the test behind fit's note, on the pilots it fits
    if lead is not None and lead[3] > CONTRADICTION:
        return True
    form, model, anneal = LOW_GUESS_ARM
    designed_lrs(task, task.horizon, form, protocol, model, anneal)
    record = json.loads(_design_cache(task, task.horizon, form, protocol, model, anneal, None, 0).read_text())
    asks = ("would tell",) if bracket else ("would tell", "bracket the best peak from above")
    return any(a in note for note in record.get("form", {}).get("notes", []) for a in asks)


def past_bracket(task: Task) -> str | None:
    """The protocol one pilot past where the bracket rule stopped the task's low-guess chain, where a note would
    have asked for it without the rule (and ``MAX_ABOVE`` allows it), unless the bracketing pilot diverged (no
    user trains above a rate that diverged); else ``None``. Its design measures what the rule saved (stage
    ``low-guess-past-bracket``, added after the held-out chains had run)."""
    from schedopt.calibration._checks import _bracket_above, _spike
    from schedopt.calibration.plan import MAX_ABOVE

    if task.name not in LOW_GUESS_TASKS or not _piloted(task, "low4"):
        return None
    chain, complete = low_guess_chain(task)
    last = chain[-1]
    bracket = _bracket_above(pilot_runs(task, last)) if complete else None
    if bracket is None or len(chain) > MAX_ABOVE or _spike(bracket[0]) is not None:
        return None
    return f"low4-up{len(chain)}" if _asks_above(task, last, bracket=False) else None


def past_bracket_jobs(task: Task) -> list[Job]:
    """:func:`past_bracket`'s pilot and, once it is in, the design from it on the low-guess run seeds."""
    protocol = past_bracket(task)
    if protocol is None:
        return []
    jobs = pilot_jobs(task, protocol)
    return jobs + (_low_guess_design(task, protocol) if _piloted(task, protocol) else [])


def low_guess_chain(task: Task) -> tuple[list[str], bool]:
    """The protocols a user who follows the notes trains in turn (``low4``, ``low4-up1``, ...), as far as
    their pilots are finished; and whether the chain is complete (the last fit's and design's notes ask for
    no pilot above (:func:`_asks_above`), or ``MAX_ABOVE`` pilots above were trained)."""
    from schedopt.calibration.plan import MAX_ABOVE

    chain = ["low4"]
    while _piloted(task, chain[-1]):
        if not _asks_above(task, chain[-1]) or len(chain) > MAX_ABOVE:
            return chain, True
        chain.append(f"low4-up{len(chain)}")
    return chain, False


def _low_guess_design(task: Task, protocol: str) -> list[Job]:
    form, model, anneal = LOW_GUESS_ARM
    lrs = designed_lrs(task, task.horizon, form, protocol, model, anneal)
    meta = {"peak": float(lrs.max()), "protocol": protocol}
    label = f"lowguess-{protocol}-T{task.horizon}"
    return [Job(task.name, label, lrs, seed, meta=meta) for seed in PILOT_SEED_DESIGN_SEEDS]


def low_guess_jobs(task: Task) -> list[Job]:
    """:data:`LOW_GUESS`'s pilots, as far as the notes ask for them; once the chain is complete, the designs
    from its first and last fits, and the last one's top pilot's twin and the design with it."""
    if task.name not in LOW_GUESS_TASKS:
        return []
    chain, complete = low_guess_chain(task)
    jobs = pilot_jobs(task, chain[-1])
    if complete:
        jobs += _low_guess_design(task, chain[0])
        if chain[-1] != chain[0]:
            jobs += _low_guess_design(task, chain[-1])
        twin = f"{chain[-1]}-twin"
        jobs += pilot_jobs(task, twin)
        if _piloted(task, twin):
            jobs += _low_guess_design(task, twin)
    return jobs


def low_guess(task: Task) -> dict | None:
    """What :data:`LOW_GUESS` gave: each fit of the chain (its top rate, whether a note asks for a pilot above,
    the terms fitted) and the designs (notes not followed, followed, followed with the twin), minus tuned WSD
    paired by run seed."""
    if task.name not in LOW_GUESS_TASKS or not _piloted(task, "low4"):
        return None
    chain, complete = low_guess_chain(task)
    wsd = tuned_wsd_by_seed(task)
    out = {"guess": task.guess / LOW_GUESS, "tuned_wsd_peak": best_peaks(task)["wsd"], "complete": complete}
    out["fits"] = {}
    for protocol in chain:
        if not _piloted(task, protocol):
            continue
        _, fit_report = fitted(task, "schedopt-floor", protocol)
        out["fits"][protocol] = {
            "top_pilot_rate": max(j.meta["peak"] for j in pilot_jobs(task, protocol)),
            "asks_above": _asks_above(task, protocol),
            "notes": [n for n in fit_report["notes"] if "above" in n or "null modes" in n],
            "terms": fit_report["terms"],
            "pilot_runs": sum(j.lrs.size for j in pilot_jobs(task, protocol)) / task.horizon,
        }
    out["designs"] = {}
    arms = (
        ("note not followed", chain[0]),
        ("note followed", chain[-1]),
        ("followed, --twin", f"{chain[-1]}-twin"),
        ("one pilot past the bracket", past_bracket(task)),
    )
    for which, protocol in arms:
        if (
            not complete
            or protocol is None
            or (which == "note followed" and protocol == chain[0])
            or not _piloted(task, protocol)
        ):
            continue
        runs = [(j, r) for j, r in _finished(_low_guess_design(task, protocol)) if j.seed in wsd]
        if len(runs) < 2:
            continue
        lrs = runs[0][0].lrs
        out["designs"][which] = {
            "protocol": protocol,
            "plateau": float(lrs[lrs.size // 2]),
            "design_minus_tuned_wsd": _stats([r["final_val_loss"] - wsd[j.seed] for j, r in runs]),
            "run_seeds": [j.seed for j, _ in runs],
        }
    return out


STAGES = {
    "pilots": pilot_jobs,
    "grid": grid_jobs,
    "seeds": seed_jobs,
    "design": design_jobs,
    "transfer": transfer_jobs,
    "extra-seeds": extra_seed_jobs,
    "transfer-seeds": transfer_seed_jobs,
    "headline-seeds": headline_seed_jobs,
    "pilot-seeds": pilot_seed_jobs,
    "pilot-seed-design": pilot_seed_design_jobs,
    "guess-wsd": guess_wsd_jobs,
    "twin-seeds": twin_seed_jobs,
    "followup-seeds": followup_seed_jobs,
    "followup-pilot-seed": followup_pilot_seed_jobs,
    "low-guess": low_guess_jobs,
    "low-guess-past-bracket": past_bracket_jobs,
}


RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("cosine", "linear", "wsd")


def _finished(jobs: list[Job]) -> list[tuple[Job, dict]]:
    return [(j, read_run(j)) for j in jobs if j.done()]


def _stats(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    se = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else None
    return {"per_seed": arr.tolist(), "mean": float(arr.mean()), "stderr": se, "seeds": int(arr.size)}


def _panel(task: Task) -> list[tuple[Job, dict]]:
    """Every finished full-length run of the task that is not a pilot (the held-out panel), each schedule and
    seed once (an arm whose schedule equals another's shares its runs: ``runcache._reuse``)."""
    jobs = grid_jobs(task) + seed_jobs(task) if all(j.done() for j in grid_jobs(task)) else grid_jobs(task)
    extra = []
    for stage in (design_jobs, transfer_jobs, transfer_seed_jobs):
        try:
            extra += stage(task)
        except FileNotFoundError:
            pass
    seen, out = set(), []
    for job, run in _finished(jobs + extra):
        if (run["lr_digest"], job.seed) not in seen:
            seen.add((run["lr_digest"], job.seed))
            out.append((job, run))
    return out


def _errors(rows: list[dict], key: str) -> dict:
    errs = np.abs([r[key] for r in rows])
    finite = errs[np.isfinite(errs)]
    return {
        "median_abs": float(np.median(finite)),
        "max_abs": float(np.max(finite)),
        "runs": len(rows),
        "not_finite": int(errs.size - finite.size),  # predictions that overflowed (counted, not scored)
    }


def _strict(value):
    """Non-finite floats as ``null`` (strict JSON)."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _prediction_rows(panel, problems: dict, peers: dict) -> list[dict]:
    """Per panel run: each fitted problem's and each peer's predicted final loss and relative error."""
    from schedopt.calibration.fit import predict_network_loss

    rows = []
    for job, run in panel:
        actual = run["final_val_loss"]
        row = {"label": job.label, "seed": job.seed, "actual": actual}
        for name, problem in problems.items():
            row[name] = float(predict_network_loss(problem, job.lrs)[-1])
        for name, peer in peers.items():
            row[name] = peer.final_loss(job.lrs)
        for name in (*problems, *peers):
            row[f"{name}_error"] = row[name] / actual - 1
        rows.append(row)
    return rows


def seed_floor(panel) -> dict:
    """What the runs' own seeds allow any predictor of the panel: a prediction is one number a schedule,
    so on a schedule run on several seeds its largest error is at least half their relative range
    ((max - min) / (max + min), reached at their midpoint). The largest of these over the panel bounds the
    maximum error from below; their median says how much of a median error is seed noise."""
    by_schedule: dict[str, list[float]] = {}  # by learning rates (two arms may share a schedule), first label
    labels: dict[str, str] = {}
    for job, run in panel:
        key = run.get("lr_digest", job.label)
        labels.setdefault(key, job.label)
        by_schedule.setdefault(key, []).append(run["final_val_loss"])
    halves = {labels[k]: (max(v) - min(v)) / (max(v) + min(v)) for k, v in by_schedule.items() if len(v) > 1}
    if not halves:
        return {"schedules_with_seeds": 0}
    worst = max(halves, key=halves.get)
    return {
        "schedules_with_seeds": len(halves),
        "least_max_abs_error": halves[worst],
        "least_max_abs_error_schedule": worst,
        "median_half_range": float(np.median(list(halves.values()))),
    }


def predictions(task: Task, panel) -> dict:
    """Each fitted model's predicted final validation loss for every panel run, and their errors.

    Models and peers are fitted to every pilot protocol the task has finished pilots of (a task added
    later, ``code-adamw-wd``, has no ``long-short`` pilots).
    """

    models, peers = {}, {}
    if _piloted(task, "long-short"):
        models.update({name: fitted(task, name) for name in FIRST_MODELS})
        peers["mpl"] = mpl_law(task)
    if _piloted(task, "long-anneal"):  # the same model from the other pilots
        models["schedopt-long-anneal"] = fitted(task, "schedopt", "long-anneal")
    for protocol, tag in (
        ("long-wide", "wide"),
        ("long60-wide", "long60"),
        (DEFAULT_PROTOCOL, "plan"),
    ):  # plan: what `schedopt pilots` plans
        if _piloted(task, protocol):
            models[f"schedopt-{tag}"] = fitted(task, "schedopt", protocol)
            peers[f"mpl-{tag}"] = mpl_law(task, protocol)
    if _piloted(task, DEFAULT_PROTOCOL):  # schedopt fit's default now: the planned pilots, the offset's floor
        models["schedopt-plan-floor"] = fitted(task, "schedopt-floor", DEFAULT_PROTOCOL)
    rows = _prediction_rows(panel, {name: problem for name, (problem, _) in models.items()}, peers)
    summary = {name: _errors(rows, f"{name}_error") for name in [*models, *peers]}
    fits = {name: report for name, (_, report) in models.items()}
    for name, peer in peers.items():
        fits[name] = {"parameters": peer.parameters(), "rms_log_error": peer.rms_log_error}
    signed = {
        name: {
            f"T{horizon}": _signed_median(rows, f"{name}_error", task.horizon, horizon == task.horizon)
            for horizon in (task.horizon, 2 * task.horizon)
        }
        for name in ("schedopt-plan-floor", "mpl-plan")
        if name in summary
    }
    return {
        "runs": rows,
        "summary": summary,
        "fits": fits,
        "seed_floor": seed_floor(panel),
        "signed_median_error": signed,
        "data_passes": data_passes(task),
    }


def data_passes(task: Task) -> dict[str, float]:
    """Passes over the task's training tokens (byte-level: one token a byte) of a run at T and at 2T.

    The model, like the Multi-Power Law, assumes every update sees fresh data; past one pass it does not.
    """
    from examples.tasks import task_corpus

    tokens = int(np.asarray(task_corpus(task.corpus).train).size)
    per_update = task.config.batch_size * task.config.context
    return {f"T{h}": per_update * h / tokens for h in (task.horizon, 2 * task.horizon)}


def _signed_median(rows: list[dict], key: str, horizon: int, at_horizon: bool) -> float | None:
    errs = [r[key] for r in rows if r["label"].endswith(f"-T{horizon}") == at_horizon]
    return float(np.median(errs)) if errs else None


def pilot_sensitivity(task: Task, panel) -> dict:
    """The panel's prediction errors from each long-pilot rate and pilot seed (every one fitted alike).

    The protocols of :data:`PILOT_SEED_PROTOCOLS` and ``long60-mid`` differ only in the long pilot's rate
    (x 1, x sqrt 2, x 2 the guess); each is fitted by ``schedopt fit``'s default (``schedopt-floor``) and
    by the Multi-Power Law, on pilot seed 0 and :data:`PILOT_SEEDS`. Also the pilots' own spread: the
    relative difference of each pilot's final validation loss between seeds.
    """

    out: dict = {"fits": {}, "pilot_final_loss_seed_difference": {}}
    for protocol in (*PILOT_SEED_PROTOCOLS, "long60-mid"):
        for seed in (0, *PILOT_SEEDS):
            if not _piloted(task, protocol, seed):
                continue
            problem, report = fitted(task, "schedopt-floor", protocol, seed)
            law = mpl_law(task, protocol, seed)
            rows = _prediction_rows(panel, {"schedopt": problem}, {"mpl": law})
            out["fits"][f"{protocol}@pilot-seed-{seed}"] = {
                "long_pilot_peak": pilot_jobs(task, protocol, seed)[0].meta["peak"],
                "at_bound": report["at_bound"],
                **{
                    name: {
                        **_errors(rows, f"{name}_error"),
                        "signed_median_at_T": _signed_median(rows, f"{name}_error", task.horizon, True),
                        "signed_median_beyond_T": _signed_median(rows, f"{name}_error", task.horizon, False),
                    }
                    for name in ("schedopt", "mpl")
                },
            }
    for protocol in PILOT_SEED_PROTOCOLS:
        for seed in PILOT_SEEDS:
            for first, other in zip(
                pilot_jobs(task, protocol), pilot_jobs(task, protocol, seed), strict=True
            ):
                if first.done() and other.done():
                    a, b = read_run(first)["final_val_loss"], read_run(other)["final_val_loss"]
                    out["pilot_final_loss_seed_difference"][f"{other.label}: s{seed} / s0 - 1"] = b / a - 1
    return out


def comparison(task: Task) -> dict:
    """Designed schedule vs tuned baselines (paired by seed), WSD at the designed peak, MPL-optimised."""
    best = best_peaks(task)
    methods: dict[str, dict] = {}
    extra = extra_seed_jobs(task) + headline_seed_jobs(task) + twin_seed_jobs(task) + followup_seed_jobs(task)
    tuned = _finished(grid_jobs(task) + seed_jobs(task) + extra)  # read once, not once per family
    for family in METHODS:
        label = _label(family, best[family], task.horizon)
        runs = {j.seed: r["final_val_loss"] for j, r in tuned if j.label == label}
        methods[f"tuned {family}"] = {
            "peak": best[family],
            "losses": runs,
            "full_length_runs": len(family_grid(task, family)) + 2,
        }
    arms = {f"{prefix}-": prefix for prefix in DESIGN_ARMS}
    headline_extra = [
        j for j in extra if j.label.startswith(tuple(f"{arm}-" for arm in (*EXTRA_SEED_ARMS, TWIN, FOLLOWUP)))
    ]
    for job, run in _finished(design_jobs(task) + headline_extra):
        if job.label.startswith("mpl-optimised"):
            name = "mpl-optimised"
        elif job.label.startswith("wsd-at-"):
            prefix = job.label[len("wsd-at-") :].rsplit("-", 2)[0]
            name = f"wsd at {prefix} peak"
        else:
            name = arms[job.label.rsplit("T", 1)[0]]
        # peak: the schedule's largest rate; plateau: its rate at mid-run (below the peak where a warmup
        # overshoots the plateau, as designed-sqrt-flat's does)
        plateau = float(job.lrs[job.lrs.size // 2])
        entry = methods.setdefault(
            name, {"peak": job.meta["peak"], "plateau": plateau, "losses": {}, "full_length_runs": 0}
        )
        entry["losses"][job.seed] = run["final_val_loss"]
    out = {}
    for name, entry in methods.items():
        seeds = sorted(entry["losses"])
        res = {"peak": entry["peak"], "full_length_runs": entry["full_length_runs"], "seeds": seeds}
        if "plateau" in entry:
            res["plateau"] = entry["plateau"]
        if seeds:
            res.update(_stats([entry["losses"][s] for s in seeds]))
        for prefix in DESIGN_ARMS:  # paired differences of each design arm against every other method
            arm = methods.get(prefix, {}).get("losses", {})
            common = [s for s in seeds if s in arm]
            if name != prefix and len(common) >= 2:
                res[f"{prefix}_minus_this"] = _stats([arm[s] - entry["losses"][s] for s in common])
        out[name] = res
    return out


def headline_check(task: Task) -> dict:
    """Whether the headline arm's cached schedules are what the installed ``schedopt design`` gives now.

    Per horizon, the largest difference of the two schedules relative to their peak; ``matches``
    when below 1e-9 (a change of the design code since they were cached would show here).
    """
    arm = DESIGN_ARMS[HEADLINE]
    out = {}
    for horizon in (task.horizon, 2 * task.horizon):
        cached = designed_lrs(task, horizon, *arm, HEADLINE)
        now = np.asarray(_design_record(task, horizon, *arm)["learning_rate"])
        out[f"T{horizon}"] = float(np.max(np.abs(now - cached)) / np.max(cached))
    return {"arm": HEADLINE, "max_difference_over_peak": out, "matches": max(out.values()) < 1e-9}


def transfer(task: Task) -> dict | None:
    """Seed 0's final loss per 2T label, and ``headline_seeds``: the headline's pair on every seed it has.

    The pair is the :data:`HEADLINE` design at 2T and WSD at the T-tuned peak at 2T, on seed 0 and
    :data:`TRANSFER_SEEDS`; ``met`` when the mean paired difference design - WSD is at most its
    standard error (None below two seeds).
    """
    seed0 = _finished(transfer_jobs(task))
    found = {j.label: r["final_val_loss"] for j, r in seed0}
    if not found:
        return None
    runs = {(j.label, j.seed): r["final_val_loss"] for j, r in seed0 + _finished(transfer_seed_jobs(task))}
    for arm in _transfer_arms(task):
        wsd_label, design_label = _transfer_pair(task, arm)
        seeds = [s for s in (0, *TRANSFER_SEEDS) if (wsd_label, s) in runs and (design_label, s) in runs]
        if not seeds:
            continue
        design = [runs[design_label, s] for s in seeds]
        wsd = [runs[wsd_label, s] for s in seeds]
        difference = _stats([d - w for d, w in zip(design, wsd, strict=True)])
        mean, se = difference["mean"], difference["stderr"]
        found[{HEADLINE: "headline_seeds", TWIN: "twin_seeds", FOLLOWUP: "followup_seeds"}[arm]] = {
            "arm": arm,
            "design_label": design_label,
            "wsd_label": wsd_label,
            "seeds": seeds,
            "design": design,
            "wsd": wsd,
            "difference_per_seed": difference["per_seed"],
            "difference_mean": mean,
            "difference_se": se,
            "met": None if se is None else bool(mean <= se),
        }
    return found


def bracket_check(task: Task) -> dict:
    """The claim behind ``_checks._bracket_above`` on the task's own pilots (pilot seed 0, every protocol; twins,
    a prefix of another pilot, left out): in each set of pilots of one schedule (the same length and shape), each
    rate that ended no lower than a lower rate of the set, and whether the best WSD peak at the full horizon
    (tuned, seed 0) is at or below it."""
    import glob

    from schedopt.calibration._checks import _bracket_above, _final_loss, _same_shape
    from schedopt.calibration.pilots import read_pilot

    tuned = best_peaks(task)["wsd"]
    files = sorted(glob.glob(str(RUNS / task.name / "pilot-*-s0.csv")))
    runs = [read_pilot(f) for f in files if "-first" not in Path(f).name]
    sets: list[list] = []
    for run in runs:
        home = next((s for s in sets if _same_shape(s[0], run)), None)
        if home is None:
            sets.append([run])
        else:
            home.append(run)
    cases = []
    for same in sets:
        for top in same:  # the set up to this rate: does it bracket from above at this rate?
            bracket = _bracket_above([r for r in same if r.peak_learning_rate <= top.peak_learning_rate])
            if bracket is not None and bracket[0] is top:
                below = bracket[1]
                cases.append(
                    {
                        "updates": top.horizon,
                        "rate": top.peak_learning_rate,
                        "ended_no_lower_than": below.peak_learning_rate,
                        "final_losses": [_final_loss(top), _final_loss(below)],
                        "tuned_wsd_peak_at_or_below": bool(tuned <= top.peak_learning_rate * (1 + 1e-6)),
                    }
                )
    return {"tuned_wsd_peak": tuned, "cases": cases}


def report(names: list[str] | None = None, merge: bool = False) -> dict:
    """Fit, predict and compare the tasks ``names`` (all by default) and write ``realtasks.json`` and its
    figure. With ``merge``, the other tasks' entries are kept from the file as it is (they are re-scored
    only when named), so that one new task can be reported without re-scoring twelve."""
    import os
    import platform

    out = {
        "protocol": {
            "pilots": "WSD (20 % 1-sqrt cooldown unless a third number gives it) at guess * 2**offset for "
            "(fraction of T, offset) in each protocol; every one costs one full run, but long60-wider-twin 1.1 "
            "(its twin, the x 4 pilot's first half on seed 1, on top)",
            "pilot_protocols": PILOT_PROTOCOLS,
            "default_protocol": DEFAULT_PROTOCOL,
            "headline_arm": HEADLINE,
            "design_arms": DESIGN_ARMS,
            "families": FAMILIES,
            "seeds": SEEDS,
            "extra_seeds": {"seeds": EXTRA_SEEDS, "methods": ["tuned wsd", *EXTRA_SEED_ARMS]},
            "headline_seeds": {"seeds": HEADLINE_SEEDS, "methods": ["tuned wsd", HEADLINE]},
            "transfer_seeds": {"seeds": TRANSFER_SEEDS, "methods": ["wsd at the tuned peak", HEADLINE]},
            "pilot_seeds": {"seeds": PILOT_SEEDS, "protocols": PILOT_SEED_PROTOCOLS},
            "models": {name: {"terms": list(t), "offset_floor": f} for name, (t, f) in MODELS.items()},
        },
        "tasks": {},
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
    }
    for task in (TASKS[n] for n in names or TASKS):
        panel = _panel(task)
        if not (_piloted(task, DEFAULT_PROTOCOL) and panel):
            print(
                f"{task.name}: no {DEFAULT_PROTOCOL} pilots or no finished panel run yet: left out",
                file=sys.stderr,
            )
            continue
        entry = {
            "about": task.about,
            "horizon": task.horizon,
            "warmup": task.warmup,
            "guess": task.guess,
            "peak_grid": task.peak_grid,
            "cpu_seconds_of_runs": sum(r.get("cpu_time", 0.0) for _, r in panel),
            "prediction": predictions(task, panel),
            "prediction_by_pilot_seed": pilot_sensitivity(task, panel),
            "design_by_pilot_seed": design_by_pilot_seed(task),
            "low_guess": low_guess(task),
            "bracket_check": bracket_check(task),
        }
        try:
            entry["design"] = comparison(task)
        except (FileNotFoundError, ValueError):
            entry["design"] = None
        entry["headline_design_check"] = headline_check(task)
        entry["transfer"] = transfer(task) if all(j.done() for j in grid_jobs(task)) else None
        out["tasks"][task.name] = entry
    path = RESULTS / "realtasks.json"
    if merge and path.exists():
        kept = json.loads(path.read_text())["tasks"]
        scored = out["tasks"]
        out["tasks"] = {n: scored.get(n, kept.get(n)) for n in TASKS if n in scored or n in kept}
    path.write_text(json.dumps(_strict(out), indent=1, allow_nan=False) + "\n")
    plot(out, RESULTS / "realtasks.png")
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    tasks = results["tasks"]
    fig, axes = plt.subplots(2, len(tasks), figsize=(5 * len(tasks), 9), squeeze=False)
    for col, (name, entry) in enumerate(tasks.items()):
        ax = axes[0, col]
        rows = entry["prediction"]["runs"]
        actual = np.array([r["actual"] for r in rows])
        for key, marker in (("schedopt-plan-floor", "o"), ("schedopt-plan", "."), ("mpl-plan", "^")):
            s = entry["prediction"]["summary"][key]
            ax.scatter(
                actual,
                [r[key] for r in rows],
                marker=marker,
                s=18,
                label=f"{key}: median {100 * s['median_abs']:.1f} %, max {100 * s['max_abs']:.1f} %",
            )
        lo, hi = actual.min() * 0.97, actual.max() * 1.03
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo * 0.85, hi * 1.15)
        ax.set_xlabel("final validation loss reached (nats/byte)")
        ax.set_ylabel("predicted from the pilots")
        ax.set_title(f"{name}: {len(rows)} held-out runs")
        ax.legend(fontsize=7)
        ax = axes[1, col]
        grid = {}
        for r in rows:
            family, _, rest = r["label"].partition("-")
            peak, _, horizon = rest.partition("-")
            if r["seed"] == 0 and family in METHODS and horizon == f"T{entry['horizon']}":
                grid.setdefault(family, []).append((float(peak), r["actual"]))
        for family, points in grid.items():
            points.sort()
            ax.plot(*zip(*points, strict=True), "o-", ms=3, label=f"{family} (seed 0)")
        design = entry.get("design") or {}
        values = [v for points in grid.values() for _, v in points]
        top = max(values) + 0.3 * (max(values) - min(values)) if values else None
        markers = (
            (HEADLINE, "*"),
            ("designed-sqrt", "X"),
            ("designed-plateau", "P"),
            ("wsd at designed-plateau peak", "s"),
            ("mpl-optimised", "^"),
        )
        for key, marker in markers:
            if key in design and "mean" in design[key]:
                mean, shown = design[key]["mean"], design[key]["mean"]
                label = f"{key} (mean of {design[key]['seeds']}): {mean:.3f}"
                if top is not None and mean > top:
                    shown, label = top, label + " (off scale, drawn at the top)"
                ax.errorbar(
                    [design[key]["peak"]],
                    [shown],
                    yerr=[design[key]["stderr"] or 0],
                    fmt=marker,
                    ms=9,
                    label=label,
                )
        if top is not None:
            ax.set_ylim(min(values) - 0.05 * (max(values) - min(values)), top * 1.002)
        ax.set_xscale("log")
        ticks = entry["peak_grid"][::2]
        ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("peak learning rate")
        ax.set_ylabel("final validation loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("runs", help="run (or resume) the training runs of some stages")
    r.add_argument("--stage", nargs="+", choices=list(STAGES), required=True)
    r.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS))
    r.add_argument("--workers", type=int, default=2)
    r.add_argument(
        "--protocol",
        choices=list(PILOT_PROTOCOLS),
        default=DEFAULT_PROTOCOL,
        help="pilot protocol (stage pilots)",
    )
    rp = sub.add_parser("report", help="fit, predict and compare the finished runs; write realtasks.json/png")
    rp.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS))
    rp.add_argument("--merge", action="store_true", help="keep the other tasks' entries from realtasks.json")
    args = p.parse_args(argv)
    if args.command == "report":
        report(args.task, merge=args.merge)
        return
    if args.command == "runs":
        for stage in args.stage:
            while True:  # a grid grows past an edge once its edge results are in: run until it stops
                if stage == "pilots":
                    per_task = [pilot_jobs(TASKS[name], args.protocol) for name in args.task]
                else:
                    per_task = [STAGES[stage](TASKS[name]) for name in args.task]
                order = _centre_first(max(len(j) for j in per_task))
                jobs = [js[i] for i in order for js in per_task if i < len(js)]  # interleaved, centres first
                todo = [j for j in jobs if not j.done()]
                print(f"stage {stage}: {len(jobs)} runs, {len(todo)} to run", file=sys.stderr, flush=True)
                if not todo:
                    break
                run_jobs(todo, workers=args.workers)


if __name__ == "__main__":
    main()
